"""The search policy on its own: no Ray, a real Optuna study in memory, trainings answered here.

What trains next, with which seed, what is reused or waited for, what a limit rejects and how the
budget is counted are the policy's alone (``search/policy.py``); the Ray searchers, the one-shot
exploration and the simulator only drive it, so these rules are tested here once, quickly.
"""

import warnings
import zlib

import numpy as np

import optuna
import pytest
from optuna.trial import TrialState

from ulsam_nas import Genome
from ulsam_nas.analysis.objectives import Context, Selection
from ulsam_nas.models.spaces import load_space
from ulsam_nas.search.ledger import INTERRUPTED, counts_toward_budget
from ulsam_nas.search.policy import (FINISHED, SAMPLERS, PlannedTraining, RememberingTPESampler, SearchPolicy, Training,
                                     make_sampler)
from ulsam_nas.simulate.driver import simulate_search

SPACE = load_space("mv2")
SELECTION = Selection.parse("top1,macs,params")
CONTEXT = Context(SPACE, 10)


def top1(genome: str, seed: int) -> float:
    """A fixed number per (genome, seed): the genome's level plus up to ±2 pp of seed noise."""
    return 30.0 + zlib.crc32(genome.encode()) % 40 + zlib.crc32(f"{genome}/{seed}".encode()) % 5 - 2


def policy_for(budget: int, *genomes: str, sampler: str = "random", seed: int = 0, **settings) -> SearchPolicy:
    """A policy over a fresh in-memory study, ``genomes`` enqueued first."""
    study = optuna.create_study(directions=SELECTION.directions, sampler=make_sampler(sampler, seed, budget, None))
    for text in genomes:
        study.enqueue_trial(SPACE.params(Genome.from_string(text)))
    settings.setdefault("paper_seeds", False)
    return SearchPolicy(study, SPACE, SELECTION, CONTEXT, budget, base_seed=seed, **settings)


def run(policy: SearchPolicy, concurrency: int = 1) -> list[Training]:
    """Drive ``policy`` to its budget, ``concurrency`` trainings in flight, the oldest finishing first."""
    trained, in_flight = [], []
    policy.read()
    while True:
        while len(in_flight) < concurrency and (training := policy.next_training()) not in (None, FINISHED):
            in_flight.append(training)
        if not in_flight:
            return trained
        training = in_flight.pop(0)
        policy.finish(training.trial, TrialState.COMPLETE, top1(training.genome, training.seed))
        trained.append(training)


def test_a_genome_proposed_again_gets_its_next_seed_then_a_copy():
    policy = policy_for(3, *["mv2_w1.0(13g4)"] * 3, repeats=2)
    run(policy)
    first, second, third = policy.study.trials
    assert (first.user_attrs["seed"], second.user_attrs["seed"], second.user_attrs["repeat_of"]) == (0, 1, 0)
    assert second.values[0] == top1("mv2_w1.0(13g4)", 1)
    assert third.user_attrs["seed"] == 0 and third.user_attrs["reused_from"] == 0  # at K seeds: a copy
    assert (policy.tally.finished, policy.tally.trainings, policy.tally.repeats, policy.tally.reused) == (3, 2, 1, 1)


def test_a_training_in_flight_is_waited_for_not_trained_twice():
    policy = policy_for(3, *["mv2_w1.0(13g4)"] * 2, "mv2_w1.0(14g4)", repeats=1)
    trained = run(policy, concurrency=2)
    copy = policy.study.trials[1]
    assert copy.user_attrs["waits_for"] == 0 and copy.user_attrs["reused_from"] == 0
    assert copy.state == TrialState.COMPLETE and copy.values == policy.study.trials[0].values
    assert [t.genome for t in trained] == ["mv2_w1.0(13g4)", "mv2_w1.0(14g4)"]


def test_limits_reject_before_training_and_count_toward_the_budget():
    policy = policy_for(4, "mv2_w1.0()", "mv2_w1.0(16g4,17g4)", limits={"macs": 290e6}, seed=1)
    trained = run(policy)
    vanilla, smaller = policy.study.trials[:2]
    assert vanilla.state == TrialState.PRUNED and "> --max-macs 290.00M" in vanilla.user_attrs["infeasible"]
    assert "mv2_w1.0()" not in [t.genome for t in trained]
    assert smaller.state == TrialState.COMPLETE
    assert policy.tally.finished == 4 and policy.tally.pruned >= 1 and policy.tally.trainings == len(trained)


def test_paper_configurations_train_first_and_once():
    policy = policy_for(3, paper_seeds=True)
    run(policy)
    assert [t.user_attrs.get("paper_label") for t in policy.study.trials] == ["MV2 vanilla", "MV2 17:1 g=1", "MV2 17:1 g=2"]
    resumed = SearchPolicy(policy.study, SPACE, SELECTION, CONTEXT, 5)
    run(resumed)
    assert [t.user_attrs.get("paper_label") for t in policy.study.trials][3:] == ["MV2 17:1 g=4", "MV2 17:1 g=8"]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_contenders_get_k_seeds_within_the_budget(concurrency):
    policy = policy_for(40, repeats=3, seed=5)
    trained = run(policy, concurrency)
    pairs = [(t.genome, t.seed) for t in trained]
    assert len(pairs) == len(set(pairs)) == 40  # no (genome, seed) trained twice, the budget exactly
    front = policy.front
    contenders = front.contenders()
    # The repeats went to the front by mean. A genome first trained in the last K + (K - 1) x (concurrency + 1)
    # trainings, where the budget can no longer confirm it, may end on the front with fewer seeds.
    late = 40 - (3 + 2 * (concurrency + 1))
    assert contenders and all(m.n == 3 or m.trial >= late for m in contenders), [(m.genome, m.n, m.trial) for m in contenders]
    assert sum(m.n == 3 for m in contenders) >= 2
    for genome in {g for g, _ in pairs}:  # the k-th training of a genome uses seed 5 + k
        assert sorted(s for g, s in pairs if g == genome) == list(range(5, 5 + sum(g == genome for g, _ in pairs)))
    assert policy.tally.repeats == sum(s > 5 for _, s in pairs) > 0
    assert policy.study.user_attrs["seed_sigma_df"] == front.noise.df > 0


def test_one_seed_per_genome_needs_no_front():
    policy = policy_for(12, repeats=1)
    run(policy)
    assert policy._front is None  # K = 1: nothing to repeat, so no front is built per decision
    assert policy.tally.repeats == 0 and policy.tally.finished == 12


def test_stopping_closes_what_is_held_and_enqueues_it_again_with_its_seed():
    policy = policy_for(6, repeats=2, seed=3)
    policy.read()
    held = [policy.next_training() for _ in range(2)]
    assert policy.close_all(INTERRUPTED) == 2
    closed = [policy.study.trials[t.trial.number] for t in held]
    assert all(t.state == TrialState.FAIL and not counts_toward_budget(t) for t in closed)
    waiting = policy.study.get_trials(states=(TrialState.WAITING,))
    assert [(t.user_attrs["seed"], t.user_attrs["rerun_of"]) for t in waiting] == [(3, t.trial.number) for t in held]
    resumed = SearchPolicy(policy.study, SPACE, SELECTION, CONTEXT, 6, base_seed=3, repeats=2, paper_seeds=False)
    trained = run(resumed)
    assert [(t.genome, t.seed) for t in trained[:2]] == [(t.genome, t.seed) for t in held]
    assert resumed.tally.finished == 6


def test_a_plan_trains_its_jobs_in_order_with_their_attributes():
    study = optuna.create_study(directions=["maximize"])
    plan = [PlannedTraining("mv2_w1.0(13g4)", 0, {"fidelity": "smoke"}),
            PlannedTraining("mv2_w1.0(13g4)", 0, {"fidelity": "proxy"}),  # the same (genome, seed): trained again
            PlannedTraining("mv2_w1.0()", 7, {"fidelity": "smoke"})]
    policy = SearchPolicy(study, SPACE, None, None, len(plan), plan=plan, paper_seeds=False,
                          costs_of=lambda genome: {"macs": 1.0, "params": 2.0})
    trained = run(policy)
    assert [(t.genome, t.seed, t.trial.user_attrs["fidelity"]) for t in trained] == [
        ("mv2_w1.0(13g4)", 0, "smoke"), ("mv2_w1.0(13g4)", 0, "proxy"), ("mv2_w1.0()", 7, "smoke")]
    assert [t.values for t in study.trials] == [[top1(t.genome, t.seed)] for t in trained]
    assert study.trials[2].user_attrs["paper_label"] == "MV2 vanilla" and study.trials[0].user_attrs["macs"] == 1.0
    assert policy.next_training() == FINISHED


def test_a_repeat_share_caps_the_trainings_spent_on_repeats():
    policy = policy_for(40, repeats=3, seed=2, repeat_share=0.1)
    trained = run(policy, concurrency=2)
    assert policy.tally.repeats == sum(t.seed != 2 for t in trained) == 4  # 10% of 40, not one more
    assert policy.front.noise.measured  # the few repeats still measure σ
    assert len({(t.genome, t.seed) for t in trained}) == len(trained)


def test_the_default_tpe_models_the_last_history_trials_as_optunas_tpe_models_a_study_of_them():
    """Past ``history`` finished trials the default TPE models the most recent ones only, so that
    its cost per suggestion stops growing with the study: its suggestion on a study of 60 trials
    with a history of 20 is Optuna's TPE's on a study holding those 20 trials alone."""
    space = load_space("mv2")
    directions = ["maximize", "minimize", "minimize"]
    whole = optuna.create_study(directions=directions, sampler=optuna.samplers.RandomSampler(seed=1))
    rng = np.random.default_rng(1)
    for _ in range(60):
        trial = whole.ask()
        space.suggest(trial)
        whole.tell(trial, [rng.normal(70, 3), rng.uniform(150, 310), rng.uniform(2, 3.5)])
    recent = optuna.create_study(directions=directions)
    recent.add_trials(whole.trials[-20:])
    whole.sampler = RememberingTPESampler(seed=3, multivariate=True, history=20)
    recent.sampler = optuna.samplers.TPESampler(seed=3, multivariate=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        suggested = [space.suggest(study.ask()) for study in (whole, recent)]
    assert suggested[0] == suggested[1]
    whole.sampler = RememberingTPESampler(seed=3, multivariate=True, history=60)  # the whole study: another model
    assert space.suggest(whole.ask()) != suggested[0]


def test_the_default_tpe_suggests_what_optunas_tpe_does_number_for_number(monkeypatch):
    """The default sampler converts a finished trial's parameters once (RememberingTPESampler):
    a search with it makes the same trials, values and states as with Optuna's own multivariate
    TPE from the same seed, 8 trainings at once (running trials included)."""
    monkeypatch.setitem(SAMPLERS, "stock-tpe", lambda seed, budget, constraints: optuna.samplers.TPESampler(
        seed=seed, constraints_func=constraints, multivariate=True))
    runs = {}
    for sampler in ("tpe", "stock-tpe"):
        simulated = simulate_search(load_space("mv2"), "paper:cub200", 80, sampler=sampler, seed=5, concurrency=8,
                                    paper_seeds=False)
        runs[sampler] = [(t.params, t.state, t.values, t.user_attrs.get("seed")) for t in simulated.study.get_trials()]
        if sampler == "tpe":
            assert isinstance(simulated.study.sampler, RememberingTPESampler) and simulated.study.sampler._rows
    assert len(runs["tpe"]) >= 80 and runs["tpe"] == runs["stock-tpe"]
