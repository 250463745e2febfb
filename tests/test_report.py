"""Report, pick, hypervolume and the dashboard, on a real SQLite study laid out as the search leaves it."""

import json
import random
import shutil
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest

from ulsam_nas import Genome, count_cost
from ulsam_nas.report import hypervolume, pick, reference_for, write_report
from ulsam_nas.studies import artifact_store, write_pointer

from .conftest import free_port

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_hypervolume_of_hand_computed_cases():
    assert hypervolume([(0.5, 0.5, 0.5)]) == pytest.approx(0.125)
    # Two boxes: 0.125 + 0.75 * 0.25 * 0.25 minus their overlap 0.5 * 0.25 * 0.25.
    assert hypervolume([(0.5, 0.5, 0.5), (0.25, 0.75, 0.75)]) == pytest.approx(0.140625)
    assert hypervolume([(0.5, 0.5, 0.5), (0.6, 0.6, 0.6)]) == pytest.approx(0.125)  # dominated: adds nothing
    assert hypervolume([(1.2, 0.1, 0.1)]) == 0.0  # outside the reference box
    assert hypervolume([]) == 0.0


def test_hypervolume_agrees_with_optunas_plot():
    rng = random.Random(0)
    points = [tuple(rng.random() for _ in range(3)) for _ in range(40)]
    study = optuna.create_study(directions=["minimize"] * 3)
    for p in points:
        study.add_trial(optuna.trial.create_trial(values=list(p)))
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        figure = optuna.visualization.plot_hypervolume_history(study, reference_point=[1.0, 1.0, 1.0])
    assert hypervolume(points) == pytest.approx(figure.data[0].y[-1], rel=1e-9)


def test_pick_rules(study_dir):
    study = optuna.load_study(study_name="mv2-synthetic", storage=f"sqlite:///{study_dir / 'study.db'}")
    genome = lambda t: t.user_attrs["genome"]  # noqa: E731
    assert genome(pick(study, "max-top1")) == "mv2_w1.0(16g4,17g4)"
    assert genome(pick(study, "max-top1 macs<=250e6")) == "mv2_w1.0(13g4,14g4,16g4,17g4)"
    assert genome(pick(study, "max-top1 under params<=1.5M")) == "mv2_w1.0(13g4,14g4,16g4,17g4)"
    assert genome(pick(study, "knee")) in {"mv2_w1.0(16g4,17g4)", "mv2_w1.0(13g4,14g4,16g4,17g4)"}
    with pytest.raises(ValueError, match="no complete trial has macs <= 1e\\+06"):
        pick(study, "max-top1 macs<=1e6")
    with pytest.raises(ValueError, match="unknown rule"):
        pick(study, "best")


def test_report_writes_html_and_tables_with_paper_labels(study_dir, tmp_path):
    study = optuna.load_study(study_name="mv2-synthetic", storage=f"sqlite:///{study_dir / 'study.db'}")
    summary = write_report(study, tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "(16, 17) g=4" in html and "(13, 14, 16, 17) g=4" in html and "vanilla" in html
    assert "Pareto front" in html and "Hypervolume history" in html and "reference point" in html
    assert 'src="https://cdn.plot.ly' not in html and len(html) > 3_000_000  # plotly.js embedded: opens offline
    import pandas as pd

    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert list(trials.columns) == ["trial", "state", "genome", "label", "top1", "macs", "params", "seconds", "failure"]
    assert trials.loc[5, "state"] == "FAIL" and trials.loc[5, "failure"] == "RuntimeError: boom"
    pareto = pd.read_csv(tmp_path / "out" / "pareto.csv")
    # (9, 13, 16, 17) g=8 costs more than (13, 14, 16, 17) and is less accurate: dominated.
    assert set(pareto["genome"]) == {"mv2_w1.0(16g4,17g4)", "mv2_w1.0(13g4,14g4,16g4,17g4)"}
    assert summary.front_size == 2
    ref = reference_for(study)
    assert ref.macs == 1.25 * count_cost(Genome("mv2"), num_classes=10).macs
    text = summary.text()
    assert "MV2 vanilla: dominated by trial 1" in text and "MV2 (16, 17) g=4: on the front" in text
    assert f"hypervolume {summary.hypervolume:.4f}" in text


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120)


def test_report_cli(study_dir):
    result = run("ulsam_nas.report", "--study", str(study_dir))
    assert result.returncode == 0, result.stderr
    assert "front: 2 architectures" in result.stdout and "knee: trial" in result.stdout
    assert (study_dir / "report" / "report.html").is_file()


@pytest.mark.parametrize("case, message", [
    ("no-folder", "no such folder"),
    ("no-study", "no study here"),
    ("bad-storage", "cannot open storage"),
    ("empty", "has no finished trial with results yet"),
])
def test_report_and_dashboard_bad_input(tmp_path, case, message):
    folder = tmp_path / "s"
    if case == "no-study":
        folder.mkdir()
    elif case == "bad-storage":
        write_pointer(folder, "postgresql://nobody@127.0.0.1:1/none", "x", "mv2")
    elif case == "empty":
        url = f"sqlite:///{folder / 'study.db'}"
        write_pointer(folder, url, "x", "mv2")
        optuna.create_study(storage=url, study_name="x", directions=["maximize", "minimize", "minimize"])
    modules = ["ulsam_nas.report"] + (["ulsam_nas.dashboard"] if case != "empty" else [])
    for module in modules:
        result = run(module, "--study", str(folder), "--port", str(free_port())) if module.endswith("dashboard") \
            else run(module, "--study", str(folder))
        assert result.returncode == 2, (module, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture
def dashboard(study_dir):
    study = optuna.load_study(study_name="mv2-synthetic", storage=f"sqlite:///{study_dir / 'study.db'}")
    summary = write_report(study, study_dir / "report")
    optuna.artifacts.upload_artifact(artifact_store=artifact_store(study_dir), file_path=str(summary.files[0]),
                                     study_or_trial=study)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ulsam_nas.dashboard", "--study", str(study_dir), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/api/meta", timeout=1)
            break
        except OSError:
            if server.poll() is not None:
                raise AssertionError(server.stderr.read())
            time.sleep(0.2)
    yield base
    server.terminate()
    server.communicate(timeout=10)


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_dashboard_api_lists_the_study_names_and_front(dashboard):
    studies = _get(f"{dashboard}/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["mv2-synthetic"]
    detail = _get(f"{dashboard}/api/studies/{studies[0]['study_id']}")
    assert detail["objective_names"] == ["top1", "macs", "params"]
    assert detail["directions"] == ["maximize", "minimize", "minimize"]
    best = {t["user_attrs"][0]["value"] if t["user_attrs"] else None for t in detail["best_trials"]}
    assert len(detail["best_trials"]) == 2 and best
    attrs = {a["key"]: a["value"] for a in detail["trials"][1]["user_attrs"]}
    assert attrs["genome"] == "mv2_w1.0(16g4,17g4)" and attrs["paper_label"] == "MV2 (16, 17) g=4"
    assert [a["filename"] for a in detail["artifacts"]] == ["report.html"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_dashboard_renders_the_pareto_front_in_a_real_browser(dashboard, tmp_path):
    studies = _get(f"{dashboard}/api/studies")["study_summaries"]
    url = f"{dashboard}/dashboard/studies/{studies[0]['study_id']}"
    screenshot = tmp_path / "dashboard.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1800", "--virtual-time-budget=20000"]
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    subprocess.run([_chromium(), *flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    assert "js-plotly-plot" in dom, dom[-2000:]
    assert "Pareto" in dom
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
