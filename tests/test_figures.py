"""The report's figures can be read at the demo's size: only the paper configurations, the vanilla
backbone and the knee are labelled, and no two labels overlap as headless Chromium draws them
(bounding boxes of the rendered SVG text). The study is the demo's (200 trainings of mv2, placements
not told apart), made by the simulator on a null landscape at the demo's σ."""

import html
import json
import re

import optuna
import pytest

from ulsam_nas.analysis.front import Front
from ulsam_nas.analysis.picks import knee
from ulsam_nas.models.spaces import load_space
from ulsam_nas.report.writer import write_report
from ulsam_nas.simulate.driver import simulate_search

from .commands import in_chromium, needs_chromium

optuna.logging.set_verbosity(optuna.logging.WARNING)

MEASURE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const figures = [...document.querySelectorAll(".js-plotly-plot")].map(plot => {
    const frame = plot.querySelector("svg.main-svg").getBoundingClientRect();
    const labels = [...plot.querySelectorAll("g.annotation")].map(a => {
      const box = a.querySelector("text").getBoundingClientRect();
      return {text: a.textContent, box: [box.left, box.top, box.right, box.bottom]};
    });
    return {title: plot.querySelector(".gtitle")?.textContent ?? "", frame: [frame.left, frame.top, frame.right, frame.bottom],
            labels};
  });
  const out = document.createElement("pre");
  out.id = "label-boxes";
  out.textContent = JSON.stringify(figures);
  document.body.append(out);
}, 1000));
</script>"""


def overlap(a: list[float], b: list[float]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


@pytest.fixture(scope="module")
def demo_study() -> optuna.Study:
    return simulate_search(load_space("mv2"), "null,sigma=5.5", 200, sampler="random", study_name="demo").study


@needs_chromium
@pytest.mark.parametrize("window", ["1400,1000", "900,1000"])
def test_no_two_labels_overlap_at_the_demos_size(demo_study, tmp_path, window):
    front = Front.of_study(demo_study)
    assert len(front.stats) >= 141  # at least the demo's 141 genomes (its run on this machine)
    write_report(demo_study, tmp_path / "report")
    page = tmp_path / "measured.html"
    page.write_text((tmp_path / "report" / "report.html").read_text().replace("</body>", MEASURE + "</body>"))
    dom = in_chromium(page.as_uri(), tmp_path / "profile", "--dump-dom", window=window).stdout
    found = re.search(r'<pre id="label-boxes">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    figures = [f for f in json.loads(html.unescape(found.group(1))) if f["title"].startswith("top-1 vs")]
    assert len(figures) == 2  # MACs and params

    labelled = {s.genome for s in front.stats if s.label} | {knee(front).genome}
    for figure in figures:
        labels = figure["labels"]
        assert len(labels) == len(labelled) >= 30, [label["text"] for label in labels]
        assert any(label["text"].endswith("knee") for label in labels)
        assert any(label["text"].startswith("vanilla") for label in labels)
        clashes = [(a["text"], b["text"]) for i, a in enumerate(labels) for b in labels[i + 1:] if overlap(a["box"], b["box"])]
        assert not clashes, (figure["title"], clashes)
        left, top, right, bottom = figure["frame"]
        outside = [label["text"] for label in labels
                   if label["box"][0] < left or label["box"][2] > right or label["box"][1] < top or label["box"][3] > bottom]
        assert not outside, (figure["title"], outside)  # every label drawn whole, inside its figure
