"""Multi-objective successive halving: the sorting it ranks with, its decisions, and a real run.

The run drives ``run_search`` on a real local Ray with a scripted trainer whose top-1 per genome
is fixed, one trial at a time, so the order in which trials reach a rung, and so every decision,
is known in advance.
"""

import math
import sys
import time
from dataclasses import replace
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState
from ray import cloudpickle
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from ulsam_nas import Genome
from ulsam_nas.analysis.objectives import Selection
from ulsam_nas.analysis.pareto import crowding_distance, nondominated_fronts
from ulsam_nas.cost import count_cost
from ulsam_nas.data import DataSpec
from ulsam_nas.models.spaces import load_space
from ulsam_nas.search.runner import SearchConfig, run_search
from ulsam_nas.search.schedulers import MultiObjectiveSuccessiveHalving
from ulsam_nas.studies import open_storage
from ulsam_nas.train.fidelity import SMOKE

from .commands import run_main

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers need not import tests/
DEFAULT = Selection.parse("top1,macs,params")

# -- the sorting ------------------------------------------------------------------------------


def test_nondominated_fronts():
    points = [(1, 5), (2, 2), (5, 1), (3, 3), (4, 4), (2, 2), (6, 6), (3, 5)]
    assert nondominated_fronts(points) == [[0, 1, 2, 5], [3], [4, 7], [6]]
    assert nondominated_fronts([(1, 2, 3)]) == [[0]]
    assert nondominated_fronts([]) == []


def test_crowding_distance():
    # Sorted on either objective the order is 0..4; ranges 4 and 8.
    points = [(0, 8), (1, 6), (2, 4), (3, 2), (4, 0)]
    assert crowding_distance(points) == [math.inf, 2 / 4 + 4 / 8, 2 / 4 + 4 / 8, 2 / 4 + 4 / 8, math.inf]
    uneven = [(0, 4), (1, 3), (3, 1), (4, 0)]
    assert crowding_distance(uneven) == [math.inf, 3 / 4 + 3 / 4, 3 / 4 + 3 / 4, math.inf]
    assert crowding_distance([(0, 1), (1, 0)]) == [math.inf, math.inf]
    # An objective on which all are equal separates no one: only the other one counts.
    assert crowding_distance([(0, 5), (1, 5), (3, 5)]) == [math.inf, 1.0, math.inf]


# -- its decisions, without Ray ---------------------------------------------------------------


def test_rungs():
    assert MultiObjectiveSuccessiveHalving(DEFAULT, max_t=15).rungs == [1, 2, 4, 8]
    assert MultiObjectiveSuccessiveHalving(DEFAULT, max_t=4).rungs == [1, 2]
    assert MultiObjectiveSuccessiveHalving(DEFAULT, max_t=30, grace_period=2, eta=3).rungs == [2, 6, 18]
    with pytest.raises(ValueError, match="eta >= 2"):
        MultiObjectiveSuccessiveHalving(DEFAULT, max_t=4, eta=1)


def decide(scheduler, trial_id: str, iteration: int, top1: float, macs: float, params: float) -> str:
    return scheduler.on_trial_result(None, SimpleNamespace(trial_id=trial_id),
                                     {"training_iteration": iteration, "top1": top1, "macs": macs, "params": params})


def test_a_rung_keeps_the_front_and_stops_the_dominated():
    scheduler = MultiObjectiveSuccessiveHalving(DEFAULT, max_t=4)
    assert decide(scheduler, "a", 1, 60, 3, 3) == TrialScheduler.CONTINUE
    assert decide(scheduler, "b", 1, 70, 4, 4) == TrialScheduler.CONTINUE  # on the front with a
    assert decide(scheduler, "cheap", 1, 10, 1, 1) == TrialScheduler.CONTINUE  # least accurate, cheapest
    assert decide(scheduler, "worse", 1, 50, 5, 5) == TrialScheduler.STOP  # a and b dominate it
    assert scheduler.stopped == {"worse": {"stopped_at_rung": 1, "stopped_rank": 1, "top1_at_rung": 50}}
    assert decide(scheduler, "a", 1, 60, 3, 3) == TrialScheduler.CONTINUE  # judged once per rung
    assert decide(scheduler, "a", 3, 61, 3, 3) == TrialScheduler.CONTINUE  # first at rung 2
    assert decide(scheduler, "z", 1, 0, 9, 9) == TrialScheduler.STOP
    failed = {"training_iteration": 1, "top1": 0.0, "macs": 9, "params": 9, "failure": "RuntimeError: boom"}
    assert scheduler.on_trial_result(None, SimpleNamespace(trial_id="f"), failed) == TrialScheduler.CONTINUE
    assert "f" not in scheduler.recorded[1]


@pytest.mark.parametrize("args, message", [(["--early-stop-grace", "0"], "--early-stop-grace must be at least 1, got 0"),
                                           (["--early-stop-eta", "1"], "--early-stop-eta must be at least 2, got 1")])
def test_bad_early_stop_settings_are_one_line_exit_2(tmp_path, args, message):
    result = run_main("ulsam_nas.search", "--early-stop", *args, "--study", str(tmp_path / "s"))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"error: {message}"], result.stderr
    assert not (tmp_path / "s").exists()


# -- a real run -------------------------------------------------------------------------------


# Costs fall from DOMINATED to CHEAP: (13g4) and (16g4) trade MACs for params, CHEAP has the
# fewest of both and DOMINATED the most of both.
LEVELS = {"mv2_w1.0(16g4)": 60.0, "mv2_w1.0(13g4)": 70.0, "mv2_w1.0(13g4,16g4,17g4)": 40.0, "mv2_w1.0()": 50.0}
CHEAP, DOMINATED = "mv2_w1.0(13g4,16g4,17g4)", "mv2_w1.0()"


def level_trainer(genome, data, fidelity, seed=0, report=None, device=None, **split):
    """Trains nothing: top-1 is the genome's level plus the epoch."""
    for epoch in range(1, fidelity.epochs + 1):
        time.sleep(0.05)
        report(epoch, {"epoch": epoch, "top1": LEVELS[str(genome)] + epoch, "seconds": 0.05})


def test_a_cheap_trial_on_the_front_goes_on_where_asha_would_stop_it(tmp_path, local_ray):
    costs = {g: count_cost(Genome.from_string(g), num_classes=10) for g in LEVELS}
    assert all(costs[CHEAP].macs < c.macs and costs[CHEAP].params < c.params for g, c in costs.items() if g != CHEAP)
    assert all(costs[DOMINATED].macs > c.macs and costs[DOMINATED].params > c.params
               for g, c in costs.items() if g != DOMINATED)
    space = load_space("mv2")
    cfg = SearchConfig(space=space, data=DataSpec("synthetic"), num_classes=10, fidelity=replace(SMOKE, epochs=4),
                       budget=len(LEVELS), storage_url=f"sqlite:///{tmp_path / 'study.db'}", study_name="test",
                       study_dir=tmp_path, concurrency=1, repeats=1, paper_seeds=False, early_stop=True)
    study = optuna.create_study(storage=open_storage(cfg.storage_url), study_name=cfg.study_name,
                                directions=["maximize", "minimize", "minimize"])
    for genome in LEVELS:  # one at a time, in this order: each meets the ones before at every rung
        study.enqueue_trial(space.params(Genome.from_string(genome)))
    study = run_search(cfg, trainer=level_trainer)
    trials = {t.user_attrs["genome"]: t for t in study.trials}
    assert list(trials) == list(LEVELS)

    # Ranked on top-1 alone, CHEAP is the worst at rung 1 and ASHA stops it.
    asha = ASHAScheduler(metric="top1", mode="max", max_t=4, grace_period=1, reduction_factor=2)
    for genome, level in LEVELS.items():
        trial = SimpleNamespace(trial_id=genome)
        asha.on_trial_add(None, trial)
        if genome == CHEAP:
            assert asha.on_trial_result(None, trial, {"training_iteration": 1, "top1": level + 1}) == TrialScheduler.STOP
            break
        asha.on_trial_result(None, trial, {"training_iteration": 1, "top1": level + 1})
        asha.on_trial_result(None, trial, {"training_iteration": 2, "top1": level + 2})

    # Ranked on the front, it trains to the end; DOMINATED stops at rung 1, behind the front.
    cheap, dominated = trials[CHEAP], trials[DOMINATED]
    assert cheap.state == TrialState.COMPLETE and cheap.user_attrs["epochs"] == 4
    assert cheap.values[0] == LEVELS[CHEAP] + 4 < min(t.values[0] for t in study.trials if t.values and t != cheap)
    assert dominated.state == TrialState.PRUNED and dominated.values is None
    assert dominated.user_attrs["stopped_at_rung"] == 1 and dominated.user_attrs["stopped_rank"] >= 1
    assert dominated.user_attrs["top1_at_rung"] == dominated.user_attrs["top1_when_stopped"] == LEVELS[DOMINATED] + 1
    assert dominated.user_attrs["epochs"] < 4
    others = [t for g, t in trials.items() if g != DOMINATED]
    assert all(t.state == TrialState.COMPLETE and "stopped_at_rung" not in t.user_attrs for t in others)
