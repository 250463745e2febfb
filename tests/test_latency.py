"""The latency table against real timings on this CPU: parts as ``build_model`` runs them, a
cache keyed by the target, the end-to-end check through the real command; and, with a fake
clock, how ``fill`` and ``check`` pin down one machine state on a machine whose speed drifts."""

import itertools
import json
import time

import optuna
import pytest
from torch import nn

from ulsam_nas import Genome, build_model
from ulsam_nas.latency import timing as latency
from ulsam_nas.latency.table import PART_PASSES, LatencyTable, check, parts
from ulsam_nas.latency.timing import Target, time_interleaved
from ulsam_nas.models.build import PlacedNet
from ulsam_nas.studies import write_pointer

from .commands import run_main, run_module
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


def run_latency(*args):
    return run_module("ulsam_nas.latency", *args)


def test_the_command_builds_caches_and_checks_the_table(tmp_path):
    space = write_space(tmp_path, TINY_LAYERS)
    study_dir = tmp_path / "study"
    storage = f"sqlite:///{study_dir / 'study.db'}"
    write_pointer(study_dir, storage, "tiny-synthetic", "tiny")
    optuna.create_study(storage=storage, study_name="tiny-synthetic").set_user_attr("num_classes", 10)

    first = run_latency("--space", str(space), "--check", "3", "--study", str(study_dir))
    assert first.returncode == 0, first.stderr
    assert "1 thread(s)" in first.stdout and "batch 1 at 224 px, eval mode" in first.stdout
    assert "within ±10% of end-to-end measurement, RMSE" in first.stdout
    check = optuna.load_study(study_name="tiny-synthetic", storage=storage).user_attrs["latency_check"]
    assert len(check["measured_ms"]) == len(check["predicted_ms"]) == len(check["vanilla_now_ms"]) == 3
    assert all(m > 0 for m in check["measured_ms"])
    table = LatencyTable.load(Target("cpu", 1), "mv2")
    assert table.constant is not None and any(key.startswith("ulsam:") for key in table.entries)
    assert table.constant == pytest.approx(table.vanilla_ms - table.parts_sum(Genome("mv2", (), 1.0), 10))
    for measured, now, vanilla_now in zip(check["measured_ms"], check["measured_now_ms"], check["vanilla_now_ms"]):
        assert measured == pytest.approx(now * table.vanilla_ms / vanilla_now)  # at the table's machine speed
    assert json.loads(LatencyTable.path(Target("cpu", 1), "mv2").read_text())["target"] == Target().key()

    again = run_latency("--space", str(space), "--num-classes", "10")  # cached: nothing timed again
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
    result = run_latency(*args) if args == ["--threads", "0"] else run_main("ulsam_nas.latency", *args)  # one as a process
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ") and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_fill_keeps_each_parts_fastest_pass_and_the_fastest_vanilla_network(monkeypatch):
    part_times = {}  # per module: the second pass is the fastest
    vanilla_times = iter([30.0, 21.0, 25.0, 24.0, 26.0, 28.0, 27.0, 29.0, 23.0])

    def fake_time_module(module, shape, target, min_run_time):
        if isinstance(module, PlacedNet):  # the whole vanilla network
            return next(vanilla_times)
        part_times.setdefault(id(module), iter([5.0, 1.0, 3.0]))
        return next(part_times[id(module)])

    monkeypatch.setattr(latency, "time_module", fake_time_module)
    vanilla = Genome("mv2", (), 1.0)
    table = LatencyTable(Target(), "mv2")
    assert table.fill([vanilla], 10) == len({p.key for p in parts(vanilla, 10)}) and PART_PASSES == 3
    assert set(table.entries.values()) == {1.0} and table.vanilla_ms == 21.0 and table.vanilla_width == 1.0
    assert table.constant == pytest.approx(21.0 - len(parts(vanilla, 10)))
    assert table.predict(vanilla, 10) == pytest.approx(21.0)

    vanilla_times = iter([])  # a table with its constant times only the new parts, not the vanilla network again
    assert table.fill([Genome.from_string("mv2_w1.0(16g4)")], 10) == 1
    assert table.vanilla_ms == 21.0 and table.entries["ulsam:160:g4:official@7"] == 1.0


def test_check_reports_each_genome_at_the_tables_machine_speed(monkeypatch):
    genome = Genome.from_string("mv2_w1.0(16g4)")
    vanilla = Genome("mv2", (), 1.0)
    table = LatencyTable(Target(), "mv2", {p.key: 1.0 for g in (genome, vanilla) for p in parts(g, 10)},
                         constant=2.0, vanilla_ms=len(parts(vanilla, 10)) + 2.0, vanilla_width=1.0)
    # now the machine runs the vanilla network 25% slower than when the table was built
    monkeypatch.setattr(latency, "time_interleaved", lambda modules, shape, target: [30.0, table.vanilla_ms * 1.25])
    result = check(table, [genome], 10)
    assert result.measured == pytest.approx((30.0 / 1.25,)) and result.measured_now == (30.0,)
    assert result.predicted == (table.predict(genome, 10),)
    assert result.to_json()["vanilla_now_ms"] == [table.vanilla_ms * 1.25]


class Sleeper(nn.Module):
    def __init__(self, name: str, seconds: float, calls: list[str]) -> None:
        super().__init__()
        self.name, self.seconds, self.calls = name, seconds, calls

    def forward(self, x):
        self.calls.append(self.name)
        time.sleep(self.seconds)
        return x


def test_time_interleaved_alternates_blocks_of_the_modules():
    calls = []
    wall_clock = Target("cpu", 2)  # a sleep takes no CPU time
    fast, slow = time_interleaved([Sleeper("fast", 0.004, calls), Sleeper("slow", 0.012, calls)], (1, 1), wall_clock,
                                  rounds=3)
    assert 4 <= fast < slow and slow >= 12
    runs = [name for name, _ in itertools.groupby(calls)]
    assert runs == ["fast", "slow"] * 4  # one call each to size the blocks, then three rounds of blocks


def test_timings_keep_freed_memory_and_count_cpu_time_on_one_thread():
    assert latency.keep_freed_memory()  # glibc, as on every Linux this runs on
    assert Target("cpu", 1).clock is time.thread_time and Target("cpu", 2).clock is time.perf_counter
