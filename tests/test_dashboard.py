"""The dashboard on a real SQLite study laid out as the search leaves it: Optuna's per-trial front
beside the product's front over seeds, the figures and the note the search publishes into the study."""

import json
import sys
import urllib.request
import zlib

import optuna
import pytest
from optuna_dashboard import get_note
from ray import cloudpickle

from ulsam_nas.analysis.front import Front
from ulsam_nas.data import DataSpec
from ulsam_nas.models.spaces import load_space
from ulsam_nas.report.publish import PUBLISH_SHARE, DashboardPublisher, publish_front
from ulsam_nas.report.writer import write_report
from ulsam_nas.search.runner import SearchConfig, run_search
from ulsam_nas.studies import StudyLock, artifact_store, open_storage
from ulsam_nas.train.fidelity import SMOKE

from .commands import in_chromium, needs_chromium, serving_dashboard
from .conftest import add

optuna.logging.set_verbosity(optuna.logging.WARNING)
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers need not import tests/

FIGURE_IDS = ["ulsam-front-macs", "ulsam-front-params"]
MACS_TITLE = "Genome means over seeds: top-1 vs MACs"


def load(study_dir, name: str = "mv2-synthetic") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir / 'study.db'}")


def storage_of(study_dir):
    return open_storage(f"sqlite:///{study_dir / 'study.db'}")


@pytest.fixture
def dashboard(study_dir, tmp_path):
    study = load(study_dir)
    summary = write_report(study, study_dir / "report")
    optuna.artifacts.upload_artifact(artifact_store=artifact_store(study_dir), file_path=str(summary.files[0]),
                                     study_or_trial=study)
    publish_front(study, storage_of(study_dir))  # as the search does while it runs and at its end
    with serving_dashboard(study_dir, tmp_path / "dashboard.txt") as base:
        yield base


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_dashboard_api_lists_the_study_names_and_front(dashboard):
    studies = _get(f"{dashboard}/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["mv2-synthetic", "mv2-synthetic:genomes"]
    detail = _get(f"{dashboard}/api/studies/{studies[0]['study_id']}")
    assert detail["objective_names"] == ["top1", "macs", "params"]
    assert detail["directions"] == ["maximize", "minimize", "minimize"]
    # Optuna's own per-trial front counts every difference: the 44 of seed 1 (and its reused copy), the cheapest.
    assert {t["number"] for t in detail["best_trials"]} == {2, 7, 10}
    attrs = {a["key"]: a["value"] for a in detail["trials"][1]["user_attrs"]}
    assert attrs["genome"] == "mv2_w1.0(16g4,17g4)" and attrs["paper_label"] == "MV2 (16, 17) g=4"
    assert [a["filename"] for a in detail["artifacts"]] == ["report.html"]


def test_dashboard_api_serves_the_front_over_seeds_and_its_note(dashboard):
    studies = _get(f"{dashboard}/api/studies")["study_summaries"]
    detail = _get(f"{dashboard}/api/studies/{studies[0]['study_id']}")
    figures = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    assert sorted(figures) == FIGURE_IDS
    macs = figures["ulsam-front-macs"]
    assert macs["layout"]["title"]["text"].startswith(MACS_TITLE)
    traces = {t["name"]: t for t in macs["data"]}
    # One point per genome, not per trial: the front beyond noise has 3 genomes, each with its error bar.
    front = traces["front beyond seed noise"]
    assert len(front["y"]) == 3 and len(front["error_y"]["array"]) == 3 and 43.0 in front["y"]
    assert len(traces["paper configurations"]["x"]) == 3 and len(traces["vanilla backbone"]["x"]) == 1
    note = detail["note"]["body"]
    assert "seed noise σ = 1.15 pp (df 3, 2 genomes with repeats)" in note
    assert "between-genome std" in note and "front beyond seed noise: 3 of 5 genomes" in note
    assert ("paper configurations: 2 on the front (MV2 (16, 17) g=4, MV2 (13, 14, 16, 17) g=4); 1 within noise of a "
            "front genome (MV2 17:1 g=4); 1 clearly dominated (MV2 vanilla)") in note
    assert "keeps the chance of calling it dominated wrongly to 5% per genome" in note


def stored_figures(storage_url: str, study_name: str) -> dict[str, dict]:
    """The figures optuna-dashboard would serve, read back from the study's system attributes."""
    storage = open_storage(storage_url)
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name(study_name))
    keys = [key for key in attrs if key.startswith("dashboard:plot_data:")]
    figures = {}
    for graph in {key.rsplit(":", 1)[0].removeprefix("dashboard:plot_data:") for key in keys}:
        chunks = sum(key.startswith(f"dashboard:plot_data:{graph}:") for key in keys)
        figures[graph] = json.loads("".join(attrs[f"dashboard:plot_data:{graph}:{i}"] for i in range(chunks)))
    return figures


def test_publishing_again_replaces_the_figures_and_the_note(study_dir):
    study = load(study_dir)
    publish_front(study, storage_of(study_dir))
    add(study, "mv2_w1.0(14g2)", 38.0, seed=0)  # a sixth genome, the cheapest: every figure grows, the front too
    publish_front(study, storage_of(study_dir))

    figures = stored_figures(f"sqlite:///{study_dir / 'study.db'}", "mv2-synthetic")
    assert sorted(figures) == FIGURE_IDS
    for figure in figures.values():
        assert sum(len(trace["x"]) for trace in figure["data"][:2]) == 6  # the genomes, on the front or not
    storage = open_storage(f"sqlite:///{study_dir / 'study.db'}")
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name("mv2-synthetic"))
    assert attrs["dashboard:note_ver"] == 2  # one note, in its second version
    assert "front beyond seed noise: 4 of 6 genomes" in get_note(study) and "of 5 genomes" not in get_note(study)


def test_the_search_publishes_every_few_complete_trials_and_never_fails_for_it(study_dir, monkeypatch, capsys):
    now = [0.0]
    published = []
    monkeypatch.setattr("ulsam_nas.report.publish.publish_front", lambda study, storage: published.append(study))
    publisher = DashboardPublisher(load(study_dir), storage_of(study_dir), every=10, min_seconds=60.0,
                                   clock=lambda: now[0])
    publisher.on_progress(9)
    now[0] = 61.0
    publisher.on_progress(9)
    assert not published  # a minute, but 9 complete trials
    publisher.on_progress(10)
    assert len(published) == 1
    publisher.on_progress(30)
    assert len(published) == 1  # 20 more, but not a minute later
    now[0] = 122.0
    publisher.on_progress(30)
    assert len(published) == 2

    def slow(study, storage):
        now[0] += 20.0  # a publication of 20 s: the next waits 20 s / PUBLISH_SHARE (400 s), to keep to that share

    monkeypatch.setattr("ulsam_nas.report.publish.publish_front", slow)
    now[0] = 182.0
    publisher.on_progress(40)
    assert now[0] == 202.0 and publisher.published_at == 202.0
    due = 202.0 + 20.0 / PUBLISH_SHARE
    now[0] = due - 2.0
    publisher.on_progress(50)
    assert now[0] == due - 2.0  # not due
    now[0] = due
    publisher.on_progress(50)
    assert now[0] == due + 20.0

    def broken(study, storage):
        raise OSError("disk full")

    monkeypatch.setattr("ulsam_nas.report.publish.publish_front", broken)
    publisher.publish(31)  # the search's end: whenever it comes
    publisher.publish(31)
    assert capsys.readouterr().err.count("not refreshed (OSError: disk full); the search goes on") == 1


def test_one_driver_of_a_study_publishes_and_the_others_take_over_when_it_ends(study_dir, monkeypatch, request):
    """Drivers sharing a study publish under its publishing lock, apart from its planning lock: the
    driver that takes it publishes until its search ends; the others skip their publications
    (without waiting: their trainings go on, and planning is not held up), and one takes over
    once the lock is free."""
    url, now, published = f"sqlite:///{study_dir / 'study.db'}", [0.0], []
    monkeypatch.setattr("ulsam_nas.report.publish.publish_front", lambda study, storage: published.append(now[0]))
    locks = [StudyLock(url, "mv2-synthetic", purpose) for purpose in ("publish", "publish", "plan")]
    request.addfinalizer(lambda: [lock.close() for lock in locks])
    publisher = DashboardPublisher(load(study_dir), storage_of(study_dir), locks[0], every=10, min_seconds=60.0,
                                   clock=lambda: now[0])
    other = DashboardPublisher(load(study_dir), storage_of(study_dir), locks[1], every=10, min_seconds=60.0,
                               clock=lambda: now[0])
    other.publish(0)  # another driver, publishing
    assert locks[2].acquire(blocking=False)  # planning is not held up
    locks[2].release()
    now[0] = 61.0
    publisher.on_progress(10)  # due, and skipped at once
    assert published == [0.0] and publisher.published_at == 61.0
    now[0] = 100.0
    publisher.on_progress(20)
    assert published == [0.0]  # not due again before a minute after the skipped one
    publisher.publish(20)  # its end: the other driver publishes the study
    assert published == [0.0]
    other.close()  # the other driver's search ends
    now[0] = 161.0
    publisher.on_progress(30)
    assert published == [0.0, 161.0]  # taken over
    now[0] = 300.0
    other.publish(40)
    assert published == [0.0, 161.0]


def seeded_trainer(genome, data, fidelity, seed=0, report=None, device=None, **split):
    """Trains nothing: a fixed top-1 per (genome, seed)."""
    for epoch in range(1, fidelity.epochs + 1):
        report(epoch, {"epoch": epoch, "top1": 30.0 + zlib.crc32(f"{genome}/{seed}".encode()) % 10, "seconds": 0.1})


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")  # see searchers.py
def test_the_search_publishes_the_front_at_its_end(tmp_path, local_ray):
    config = SearchConfig(space=load_space("mv2"), data=DataSpec("synthetic"), num_classes=10, fidelity=SMOKE, budget=6,
                          storage_url=f"sqlite:///{tmp_path / 'study.db'}", study_name="search", study_dir=tmp_path,
                          concurrency=1, paper_seeds=False)
    study = run_search(config, trainer=seeded_trainer)
    assert sorted(stored_figures(config.storage_url, "search")) == FIGURE_IDS
    genomes = len(Front.of_study(study).stats)
    assert f"of {genomes} genomes" in get_note(study) and "after 6 complete trials" in get_note(study)


@needs_chromium
def test_dashboard_renders_the_pareto_front_in_a_real_browser(dashboard, tmp_path):
    studies = _get(f"{dashboard}/api/studies")["study_summaries"]
    url = f"{dashboard}/dashboard/studies/{studies[0]['study_id']}"
    screenshot = tmp_path / "dashboard.png"

    def dom_of(page: str) -> str:
        return in_chromium(page, tmp_path / "profile", "--dump-dom").stdout

    dom = dom_of(url)
    in_chromium(url, tmp_path / "profile", f"--screenshot={screenshot}")
    assert "js-plotly-plot" in dom, dom[-2000:]
    assert "Pareto" in dom
    # The product's front beside Optuna's, on the study's page: the published figures, drawn by plotly.js.
    assert 'id="user-defined-plot:ulsam-front-macs"' in dom and 'id="user-defined-plot:ulsam-front-params"' in dom
    assert MACS_TITLE in dom and "vanilla backbone" in dom  # a title and a legend entry
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
    # The note, on the study's Note page, rendered from markdown.
    note = dom_of(f"{url}/note")
    assert "The front over seeds</h3>" in note and "seed noise σ = 1.15 pp" in note, note[-2000:]
    assert "1 clearly dominated (MV2 vanilla)" in note
