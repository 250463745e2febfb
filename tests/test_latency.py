"""The latency table against real timings on this CPU: parts as ``build_model`` runs them, a
cache keyed by the target, and the end-to-end check through the real command."""

import json
import subprocess
import sys

import optuna
import pytest

from ulsam_nas import Genome, build_model
from ulsam_nas.latency import LatencyTable, Target, parts
from ulsam_nas.studies import write_pointer

from .conftest import write_space

TINY_LAYERS = """
16 = { actions = ["keep", "substitute"], groups = [4] }
17 = { actions = ["keep", "insert"], groups = [4, 8] }
"""


def test_parts_are_the_modules_build_model_runs():
    genome = Genome.from_string("mv2_w1.0(2:1g4,16g8)")
    listed = parts(genome, 10)
    model = build_model(genome, 10)
    assert len(listed) == len(model.features) + 1  # the head
    kinds = dict(zip((name for name, _ in model.features.named_children()), (p.kind for p in listed)))
    assert kinds["after2"] == kinds["layer16"] == "ulsam" and kinds["layer2"] == "layer"
    assert listed[2].key == "ulsam:16:g4:official@112"  # after layer 2: its 16 channels at 112 px
    assert listed[-1].key == "head:1280>10@7"


def run_latency(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "ulsam_nas.latency", *args], capture_output=True, text=True, **kwargs)


def test_the_command_builds_caches_and_checks_the_table(tmp_path):
    space = write_space(tmp_path, TINY_LAYERS)
    study_dir = tmp_path / "study"
    storage = f"sqlite:///{study_dir / 'study.db'}"
    write_pointer(study_dir, storage, "tiny-synthetic", "tiny")
    optuna.create_study(storage=storage, study_name="tiny-synthetic").set_user_attr("num_classes", 10)

    first = run_latency("--space", str(space), "--check", "3", "--study", str(study_dir), timeout=300)
    assert first.returncode == 0, first.stderr
    assert "1 thread(s)" in first.stdout and "batch 1 at 224 px, eval mode" in first.stdout
    assert "within ±10% of end-to-end measurement, RMSE" in first.stdout
    check = optuna.load_study(study_name="tiny-synthetic", storage=storage).user_attrs["latency_check"]
    assert len(check["measured_ms"]) == len(check["predicted_ms"]) == 3
    assert all(m > 0 for m in check["measured_ms"])
    table = LatencyTable.load(Target("cpu", 1), "mv2")
    assert table.constant is not None and any(key.startswith("ulsam:") for key in table.entries)
    assert json.loads(LatencyTable.path(Target("cpu", 1), "mv2").read_text())["target"] == Target().key()

    again = run_latency("--space", str(space), "--num-classes", "10", timeout=300)  # cached: nothing timed again
    assert again.returncode == 0 and "(0 timed now)" in again.stdout, again.stdout + again.stderr
    genome = Genome.from_string("mv2_w1.0(16g4,17:1g8)")
    assert table.predict(genome, 10) > table.predict(Genome("mv2", (), 1.0), 10) - table.entries[parts(genome, 10)[15].key]


@pytest.mark.parametrize("args, message", [
    (["--device", "tpu"], "latency device must be cpu or cuda, not 'tpu'"),
    (["--threads", "0"], "latency threads must be at least 1, got 0"),
    (["--check", "-1"], "--check must be 0 or more"),
    (["--study", "/nonexistent/study"], "no such folder"),
])
def test_bad_input_is_one_line_exit_2(args, message):
    result = run_latency(*args, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ") and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
