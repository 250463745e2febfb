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
from ulsam_nas.landscapes import landscape_slug, load_landscape
from ulsam_nas.models.spaces import load_space
from ulsam_nas.report.writer import write_report
from ulsam_nas.search.result import planner_answer
from ulsam_nas.search.runner import SearchConfig, run_search
from ulsam_nas.simulate.driver import simulate_search
from ulsam_nas.simulate.planner import plan
from ulsam_nas.simulate.truth import score_study, true_front
from ulsam_nas.train.fidelity import get_fidelity


SPACE = load_space("mv2")
LANDSCAPE = "additive,sigma=1,between=1"


def trials_of(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.state, t.user_attrs.get("genome"), t.user_attrs.get("seed"), t.values,
             t.user_attrs.get("repeat_of"), t.user_attrs.get("reused_from"), t.user_attrs.get("paper_label"))
            for t in study.trials]


@pytest.mark.usefixtures("local_ray")
def test_the_real_driver_makes_the_simulated_study_and_the_planners_figures(tmp_path: Path):
    """Two replicates of a search on ``additive,sigma=1,between=1`` through Ray Tune and SQLite, one
    trial at a time, against the simulator and the planner over the same replicates (seeds 0, 1):
    the same studies trial for trial, so the same scores, and the planner's interval holds the
    real driver's mean."""
    budget, truth = 36, load_landscape(LANDSCAPE, SPACE)  # the 30 paper configurations, then the sampler's
    answer = plan(SPACE, budget, 1, 1, replicates=2, power=False, processes=1)
    assert answer.landscape == LANDSCAPE
    front = true_front(truth, SPACE)
    real_scores = []
    for seed in (0, 1):
        config = SearchConfig(space=SPACE, data=DataSpec.parse(f"landscape:{LANDSCAPE}"), num_classes=truth.num_classes,
                              fidelity=get_fidelity("smoke", "mv2"), budget=budget,
                              storage_url=f"sqlite:///{tmp_path / f'study{seed}.db'}", study_name="real",
                              study_dir=tmp_path, seed=seed, repeats=3, concurrency=1)
        real = run_search(config)
        simulated = simulate_search(SPACE, LANDSCAPE, budget, seed=seed, repeats=3)
        assert trials_of(real) == trials_of(simulated.study)
        for trial in real.trials:  # what the study holds is the landscape's truth plus its seed noise
            genome = Genome.from_string(trial.user_attrs["genome"])
            assert trial.values[0] == pytest.approx(truth.observe(genome, trial.user_attrs["seed"]))
        real_scores.append(score_study(real, truth, front))
    assert any(s.repeats for s in real_scores)  # the policy's repeats, both ways
    assert [(s.hv_share, s.false_call_rate) for s in real_scores] == \
        [(r.hv_share, r.false_call_rate) for r in answer.replicates]
    mean = sum(s.hv_share for s in real_scores) / 2
    assert answer.hv_share.low <= mean <= answer.hv_share.high


@pytest.mark.usefixtures("local_ray")
def test_a_landscape_file_with_interactions_runs_end_to_end(tmp_path: Path):
    """A user's belief, with a pairwise interaction, through Ray Tune, the study and the report;
    the command's own landscape lines (its description, the study named after it) are checked
    without Ray by the bad-input tests and ``landscape_slug`` below."""
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
    truth = load_landscape(str(landscape), SPACE)
    pair = Genome.from_string("mv2_w1.0(16g4,17:1g1)")
    assert truth.truth(pair) == pytest.approx(60.0 + 1.0 - 3.0)
    assert landscape_slug(str(landscape)) == "belief" and landscape_slug("additive,sigma=2") == "additive-sigma-2"
    study_dir = tmp_path / "study"
    config = SearchConfig(space=SPACE, data=DataSpec.parse(f"landscape:{landscape}"), num_classes=truth.num_classes,
                          fidelity=get_fidelity("smoke", "mv2"), budget=6,
                          storage_url=f"sqlite:///{study_dir / 'study.db'}", study_name="belief", study_dir=study_dir,
                          concurrency=1, paper_seeds=False)
    study_dir.mkdir()
    for genome in ("mv2_w1.0(16g4,17:1g1)", "mv2_w1.0(17:1g1)"):  # the pair, and one of it alone
        optuna.create_study(storage=config.storage_url, study_name="belief", directions=["maximize", "minimize", "minimize"],
                            load_if_exists=True).enqueue_trial(SPACE.params(Genome.from_string(genome)))
    study = run_search(config)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    for trial in complete:
        genome = Genome.from_string(trial.user_attrs["genome"])
        assert trial.values[0] == pytest.approx(truth.observe(genome, trial.user_attrs["seed"]))
    assert truth.truth(Genome.from_string("mv2_w1.0(17:1g1)")) - truth.truth(pair) == pytest.approx(3.0)
    assert {"mv2_w1.0(16g4,17:1g1)", "mv2_w1.0(17:1g1)"} <= {t.user_attrs["genome"] for t in complete}
    write_report(study, study_dir / "report", root=study_dir)
    assert (study_dir / "report" / "report.html").exists()


def test_a_search_that_does_not_tell_placements_apart_quotes_the_planner():
    search = simulate_search(SPACE, "additive,sigma=4,between=0.5", 50, seed=1)
    front = search.front
    assert front.signal.std is not None and not front.signal.resolved  # σ 8x the signal: not told apart at 50
    line = planner_answer(front, SPACE, 50, 3, "tpe", 2)
    assert line.startswith(f"if the placements differed by as much as this study allows (between-genome std "
                           f"{front.signal.high:.1f} pp")
    assert "planner (2 replicates of tpe K=3, budget 50" in line and "front found" in line
    assert planner_answer(front, SPACE, 50, 3, "tpe", 0) is None  # --plan-replicates 0
    assert planner_answer(front, SPACE, 49, 3, "tpe", 2) is None  # under the planner's first rung
