"""A landscape through the real driver: Ray Tune, the Ray searcher, the SQLite study and the
command, against the simulator that runs the same policy without Ray.

One trial at a time, a search is deterministic in its seed (the sampler's, the landscape's seed
noise), so the real driver and the simulator must make the same study trial for trial: that is
what makes the simulator's figures (the planner's, ``benchmarks/search_quality.py``) figures of
the product's own search, not of a copy of its policy.
"""

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ulsam_nas import Genome
from ulsam_nas.data import DataSpec
from ulsam_nas.landscapes import load_landscape
from ulsam_nas.models.spaces import load_space
from ulsam_nas.search.result import planner_answer
from ulsam_nas.search.runner import SearchConfig, run_search
from ulsam_nas.simulate.driver import simulate_search
from ulsam_nas.studies import open_storage
from ulsam_nas.train.fidelity import get_fidelity

from .commands import ONE_AT_A_TIME, run_module

SPACE = load_space("mv2")
LANDSCAPE = "additive,sigma=1,between=1"


def trials_of(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.state, t.user_attrs.get("genome"), t.user_attrs.get("seed"), t.values,
             t.user_attrs.get("repeat_of"), t.user_attrs.get("reused_from"), t.user_attrs.get("paper_label"))
            for t in study.trials]


@pytest.mark.usefixtures("local_ray")
def test_the_real_driver_makes_the_simulated_study_trial_for_trial(tmp_path: Path):
    budget, seed = 30, 4
    truth = load_landscape(LANDSCAPE, SPACE)
    config = SearchConfig(space=SPACE, data=DataSpec.parse(f"landscape:{LANDSCAPE}"), num_classes=truth.num_classes,
                          fidelity=get_fidelity("smoke", "mv2"), budget=budget,
                          storage_url=f"sqlite:///{tmp_path / 'study.db'}", study_name="real", study_dir=tmp_path,
                          seed=seed, repeats=3, concurrency=1, paper_seeds=False)
    real = run_search(config)
    simulated = simulate_search(SPACE, LANDSCAPE, budget, seed=seed, repeats=3, paper_seeds=False)
    assert trials_of(real) == trials_of(simulated.study)
    assert sum(t.state == TrialState.COMPLETE for t in real.trials) == budget
    assert any(t.user_attrs.get("repeat_of") is not None for t in real.trials)  # the policy's repeats, both ways
    for trial in real.trials:  # what the study holds is the landscape's truth plus its seed noise
        genome = trial.user_attrs["genome"]
        assert trial.values[0] == pytest.approx(truth.observe(Genome.from_string(genome), trial.user_attrs["seed"]))
    stored = optuna.load_study(study_name="real", storage=open_storage(config.storage_url))
    assert stored.user_attrs["dataset"] == f"landscape:{LANDSCAPE}"


def test_a_landscape_file_with_interactions_runs_end_to_end(tmp_path: Path):
    landscape = tmp_path / "belief.toml"
    landscape.write_text("""
backbone = "mv2"
sigma = 0.5
base = 60.0

[[effect]]
layer = 17
action = "insert"
g = 1
top1 = 1.0

[[interaction]]
a = "16g4"
b = "17:1g1"
top1 = -3.0
""")
    study_dir = tmp_path / "study"
    done = run_module("ulsam_nas.search", "--space", "mv2", "--budget", "6", "--dataset", f"landscape:{landscape}",
                      "--study", study_dir, *ONE_AT_A_TIME)
    assert done.returncode == 0, done.stderr
    assert "landscape belief" in done.stderr and "Front of 'mv2-landscape-belief'" in done.stdout
    study = optuna.load_study(study_name="mv2-landscape-belief", storage=f"sqlite:///{study_dir / 'study.db'}")
    truth = load_landscape(str(landscape), SPACE)
    pair = Genome.from_string("mv2_w1.0(16g4,17:1g1)")
    assert truth.truth(pair) == pytest.approx(60.0 + 1.0 - 3.0)
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        genome = Genome.from_string(trial.user_attrs["genome"])
        assert trial.values[0] == pytest.approx(truth.observe(genome, trial.user_attrs["seed"]))


def test_a_search_that_does_not_tell_placements_apart_quotes_the_planner():
    search = simulate_search(SPACE, "additive,sigma=4,between=0.5", 50, seed=1)
    front = search.front
    assert front.signal.std is not None and not front.signal.resolved  # σ 8x the signal: not told apart at 50
    line = planner_answer(front, SPACE, 50, 3, "nsga2", 2)
    assert line.startswith(f"if the placements differed by as much as this study allows (between-genome std "
                           f"{front.signal.high:.1f} pp")
    assert "planner (2 replicates of nsga2 K=3, budget 50" in line and "front found" in line
    assert planner_answer(front, SPACE, 50, 3, "nsga2", 0) is None  # --plan-replicates 0
    assert planner_answer(front, SPACE, 49, 3, "nsga2", 2) is None  # under the planner's first rung
