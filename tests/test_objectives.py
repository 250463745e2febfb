"""Objectives are data: a study's objectives come from the registry by name, a new one is one
registry entry with its value source, and latency runs through search, report and export.

The toy objective runs the real harness (``run_search`` on a real local Ray, a real SQLite
study) with a scripted trainer; the latency test runs the real commands with smoke training."""

import json
import sys
import zlib

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from ray import cloudpickle

from ulsam_nas import Genome
from ulsam_nas.analysis.front import Front
from ulsam_nas.analysis.objectives import REGISTRY, Context, Objective, Selection, parse_limit, register
from ulsam_nas.analysis.picks import pick
from ulsam_nas.data import DataSpec
from ulsam_nas.models.spaces import load_space, random_genomes
from ulsam_nas.report.writer import write_report
from ulsam_nas.search.command import _parser
from ulsam_nas.search.runner import SearchConfig, run_search
from ulsam_nas.train.fidelity import SMOKE

from .commands import ONE_AT_A_TIME, QUICK, run_module
from .conftest import write_space

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers need not import tests/

TINY_LAYERS = """
16 = { actions = ["keep", "substitute"], groups = [4] }
17 = { actions = ["keep", "insert"], groups = [4, 8] }
"""


def test_selection_reads_values_by_name():
    selection = Selection.parse("params,top1,latency", cost_tolerance=0.02)
    assert selection.names == ["params", "top1", "latency"]
    assert selection.directions == ["minimize", "maximize", "minimize"]
    assert selection.trained.name == "top1" and [o.name for o in selection.computed] == ["params", "latency"]
    assert selection.values(41.0, (2e6, 9.5)) == [2e6, 41.0, 9.5]
    assert selection.split([2e6, 41.0, 9.5]) == (41.0, (2e6, 9.5))
    assert selection.tolerance(selection["params"]) == 0.02 and selection.tolerance(selection["latency"]) == 0.05
    assert parse_limit(REGISTRY["macs"], "250M") == parse_limit(REGISTRY["macs"], "250e6") == 250e6
    assert parse_limit(REGISTRY["params"], "2.5M") == 2.5e6
    assert parse_limit(REGISTRY["latency"], "4ms") == parse_limit(REGISTRY["latency"], "4") == 4.0


@pytest.mark.parametrize("text, message", [
    ("top1,flops", "unknown objective 'flops'; choose from top1, macs, params, latency"),
    ("macs,params", "exactly one training metric"),
    ("top1", "exactly one training metric"),
    ("top1,macs,macs", "names an objective twice"),
])
def test_bad_objectives_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        Selection.parse(text)


# -- a toy objective: one registry entry and its value source, nothing else ------------------------


def ulsam_modules(genome: Genome, context: Context) -> float:
    """The toy objective's value source: how many ULSAM modules the genome has."""
    return float(len(genome.placements))


@pytest.fixture
def toy_objective():
    objective = register(Objective("ulsam_modules", "minimize", "ULSAM modules", digits=0, compute=ulsam_modules,
                                   reference=4.0))
    yield objective
    REGISTRY.pop(objective.name, None)  # this test's registration only


def fake_trainer(genome, data, fidelity, seed=0, report=None, device=None, evaluate_on="test", val_fraction=0.1):
    """Trains nothing: a fixed top-1 per (genome, seed)."""
    for epoch in range(1, fidelity.epochs + 1):
        top1 = 30.0 + zlib.crc32(f"{genome}/{seed}".encode()) % 40
        report(epoch, {"epoch": epoch, "top1": top1, "top5": 99.0, "loss": 1.0, "seconds": 0.01})


def test_a_toy_objective_needs_one_registry_entry_and_one_value_source(toy_objective, tmp_path, local_ray):
    assert "--max-ulsam_modules" in _parser().format_help()  # the limit flag comes from the registry
    space = load_space(str(write_space(tmp_path, TINY_LAYERS)))
    config = SearchConfig(space=space, data=DataSpec("synthetic"), num_classes=10, fidelity=SMOKE,
                          budget=8, storage_url=f"sqlite:///{tmp_path / 'study.db'}", study_name="toy",
                          study_dir=tmp_path, concurrency=1, paper_seeds=False, sampler="random", repeats=1,
                          objectives="top1,ulsam_modules,macs", limits={"ulsam_modules": 1})
    study = run_search(config, trainer=fake_trainer)
    assert study.metric_names == ["top1", "ulsam_modules", "macs"]
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, *[optuna.study.StudyDirection.MINIMIZE] * 2]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    for trial in complete:
        assert trial.values[1] == len(Genome.from_string(trial.user_attrs["genome"]).placements) <= 1
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.user_attrs["infeasible"] == "2 ULSAM modules > --max-ulsam_modules 1 ULSAM modules"
                          for t in pruned)
    front = Front.of_study(study)
    assert [o.name for o in front.selection.computed] == ["ulsam_modules", "macs"]
    assert pick(study, "max-top1 ulsam_modules<=1").costs[0] <= 1

    # The report reads the objectives the study stored, even where the toy is not registered.
    del REGISTRY["ulsam_modules"]
    summary = write_report(study, tmp_path / "report")
    trials = pd.read_csv(tmp_path / "report" / "trials.csv")
    assert {"top1", "ulsam_modules", "macs"} <= set(trials.columns)
    genomes = pd.read_csv(tmp_path / "report" / "genomes.csv")
    assert "ulsam_modules" in genomes.columns and "macs_M" in genomes.columns
    assert "top-1 vs ULSAM modules" in (tmp_path / "report" / "report.html").read_text()
    assert 0 < summary.hypervolume < 1


# -- latency through the product --------------------------------------------------------------------


def test_latency_objective_through_search_report_and_export(tmp_path):
    space_file = write_space(tmp_path, TINY_LAYERS)
    space = load_space(str(space_file))
    context = Context(space, num_classes=10)
    table = context.latency_table()  # timed here once; the commands below read the cache
    # A limit between the third and fourth fastest of the space's six genomes rejects three.
    latencies = sorted(table.predict(genome, 10) for genome in random_genomes(space, 6, seed=0))
    limit = (latencies[2] + latencies[3]) / 2
    study_dir = tmp_path / "study"
    result = run_module("ulsam_nas.search", "--space", str(space_file), "--budget", "5", "--repeats", "1",
                 "--objectives", "top1,latency,params", "--max-latency", f"{limit:.4f}ms", "--sampler", "random",
                 "--fidelity", QUICK, "--study", str(study_dir), *ONE_AT_A_TIME)
    assert result.returncode == 0, result.stderr
    assert "latency_ms" in result.stdout and "ms latency" in result.stdout
    study = optuna.load_study(study_name="tiny-synthetic", storage=f"sqlite:///{study_dir / 'study.db'}")
    assert study.metric_names == ["top1", "latency", "params"]
    assert "1 thread(s)" in study.user_attrs["latency_target"]
    for trial in study.trials:
        if trial.state == TrialState.COMPLETE:
            assert trial.values[1] == pytest.approx(table.predict(Genome.from_string(trial.user_attrs["genome"]), 10))
            assert trial.values[1] <= limit
        elif trial.state == TrialState.PRUNED:
            assert "ms latency > --max-latency" in trial.user_attrs["infeasible"] and "epochs" not in trial.user_attrs
    assert any(t.state == TrialState.PRUNED for t in study.trials), "the limit rejected nothing"

    html = (study_dir / "report" / "report.html").read_text()
    assert "top-1 vs latency on CPU" in html and "top-1 vs params" in html and "top-1 vs MACs" not in html
    assert "latency_ms" in pd.read_csv(study_dir / "report" / "genomes.csv").columns

    exported = run_module("ulsam_nas.export", "--study", str(study_dir), "--trial", f"max-top1 latency<={limit:.4f}ms",
                   "--formats", "source", "--out", str(tmp_path / "exported"))
    assert exported.returncode == 0, exported.stderr
    latency = json.loads((tmp_path / "exported" / "arch.json").read_text())["latency"]
    assert latency["predicted_ms"] <= limit and latency["measured_ms"] > 0
    assert latency["target"] == study.user_attrs["latency_target"]
    assert f"predicted {latency['predicted_ms']:.2f} ms, measured" in exported.stdout
