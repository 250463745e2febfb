"""The dominance rule beyond noise, pinned with hand-made trials in a real SQLite study."""

import math

import optuna
import pytest
from scipy import stats as distributions

from ulsam_nas.analysis.front import Front, GenomeStats, genome_stats, paper_status, seed_noise
from ulsam_nas.analysis.objectives import Selection

from .conftest import add

optuna.logging.set_verbosity(optuna.logging.WARNING)
DEFAULT = Selection.parse("top1,macs,params")


@pytest.fixture
def study(tmp_path):
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s",
                               directions=["maximize", "minimize", "minimize"])


def seeds(study, genome: str, *top1s: float, label: str = "") -> None:
    for seed, top1 in enumerate(top1s):
        add(study, genome, top1, label, seed=seed)


def stats(study) -> dict:
    return {s.genome: s for s in genome_stats(study.trials, DEFAULT)}


def test_genome_stats_are_means_over_distinct_seeds(study):
    seeds(study, "mv2_w1.0()", 30.0, 34.0, 32.0, label="MV2 vanilla")
    add(study, "mv2_w1.0()", 30.0, seed=0, reused_from=0)  # a reused result is not a new seed
    add(study, "mv2_w1.0(16g4,17g4)", None, state=optuna.trial.TrialState.FAIL, seed=0)
    vanilla = stats(study)["mv2_w1.0()"]
    assert vanilla.n == 3 and vanilla.seeds == (0, 1, 2) and vanilla.mean == pytest.approx(32.0)
    assert vanilla.std == pytest.approx(2.0) and vanilla.label == "MV2 vanilla"
    assert list(stats(study)) == ["mv2_w1.0()"]  # the failed genome has no statistics


def test_pooled_sigma_and_its_degrees_of_freedom(study):
    seeds(study, "mv2_w1.0()", 30.0, 34.0, 32.0)  # variance 4, df 2
    seeds(study, "mv2_w1.0(16g4,17g4)", 40.0, 44.0)  # variance 8, df 1
    seeds(study, "mv2_w1.0(17:1g4)", 50.0)  # one seed: no contribution
    noise = seed_noise(genome_stats(study.trials, DEFAULT))
    assert noise.df == 3 and noise.genomes == 2
    assert noise.sigma == pytest.approx(math.sqrt((2 * 4 + 1 * 8) / 3))
    assert "single runs closer than" in noise.describe() and f"{noise.sigma:.2f} pp" in noise.describe()
    assert not seed_noise([]).measured and "not measured" in seed_noise([]).describe()


def test_equal_costs_with_overlapping_means_are_within_noise(study):
    # Same architecture cost (g changes params by 9 of 2.1M): 33 vs 31 with a spread of several pp.
    seeds(study, "mv2_w1.0(13g4)", 30.0, 36.0, 33.0)
    seeds(study, "mv2_w1.0(13g1)", 28.0, 34.0, 31.0, label="MV2 (13) g=1")
    front = Front.of_study(study)
    assert {m.genome for m in front.members} == {"mv2_w1.0(13g4)", "mv2_w1.0(13g1)"}
    verdict = front.verdict(stats(study)["mv2_w1.0(13g1)"])
    assert verdict.kind == "within-noise" and verdict.other.genome == "mv2_w1.0(13g4)"
    assert verdict.difference == pytest.approx(2.0)
    assert "within noise of front genome mv2_w1.0(13g4)" in paper_status(front, ["MV2 (13) g=1"])[0].describe()


def test_well_separated_means_at_equal_cost_clearly_dominate(study):
    seeds(study, "mv2_w1.0(13g4)", 36.0, 36.5, 35.5)
    seeds(study, "mv2_w1.0(13g1)", 30.5, 30.0, 31.0, label="MV2 (13) g=1")
    front = Front.of_study(study)
    assert [m.genome for m in front.members] == ["mv2_w1.0(13g4)"]
    status = paper_status(front, ["MV2 (13) g=1", "MV2 vanilla"])
    assert status[0].verdict.kind == "dominated" and status[0].verdict.difference == pytest.approx(5.5)
    # One genome costs no more: the bound is t(0.95, df 4) standard errors, 2.13 x 0.5 x sqrt(2/3) = 0.87 pp.
    assert ("clearly dominated by mv2_w1.0(13g4) (by 5.5 pp at no worse cost, beyond the 0.9 pp bound that holds "
            "the error to 5% over 1 genome of no worse cost)") in status[0].describe()
    assert "not trained to completion" in status[1].describe()


def test_nine_fewer_parameters_of_two_million_is_a_tie_not_a_trade_off(study):
    # (13) g=1 has 9 parameters fewer than (13) g=4 (2,118,893 vs 2,118,902) and the same MACs:
    # without a tolerance it would sit on the front beside the clearly better g=4.
    seeds(study, "mv2_w1.0(13g4)", 36.0, 36.4, 35.6)
    seeds(study, "mv2_w1.0(13g1)", 30.6, 30.2, 31.0)
    by_genome = stats(study)
    g1, g4 = by_genome["mv2_w1.0(13g1)"], by_genome["mv2_w1.0(13g4)"]
    assert g1.costs[1] == g4.costs[1] - 9 and g1.costs[0] == g4.costs[0]
    assert Front.of([g1, g4], DEFAULT).dominators(g1) == [g4]
    strict = Selection.parse("top1,macs,params", cost_tolerance=0.0)
    assert Front.of([g1, g4], strict).dominators(g1) == []  # the strict reading: a trade-off
    assert [m.genome for m in Front.of_study(study).members] == ["mv2_w1.0(13g4)"]


def test_higher_mean_at_five_percent_more_macs_is_no_dominance():
    cheap = GenomeStats("a", (0, 1, 2), (30.0, 30.5, 29.5), (100e6, 2.0e6), trial=0)
    costly = GenomeStats("b", (0, 1, 2), (40.0, 40.5, 39.5), (105e6, 2.0e6), trial=3)
    front = Front.of([cheap, costly], DEFAULT)
    assert front.dominators(cheap) == []
    assert {m.genome for m in front.members} == {"a", "b"} and front.verdict(cheap).kind == "front"
    # ... and 0.5% more MACs is within the tolerance: then the better mean dominates.
    near = GenomeStats("c", (0, 1, 2), (40.0, 40.5, 39.5), (100.5e6, 2.0e6), trial=6)
    assert Front.of([cheap, near], DEFAULT).dominators(cheap) == [near]


def test_single_seed_genomes_use_the_pooled_sigma(study):
    seeds(study, "mv2_w1.0()", 30.0, 40.0)  # sigma about 7.1 pp from this genome
    seeds(study, "mv2_w1.0(13g4)", 45.0)
    seeds(study, "mv2_w1.0(13g1)", 38.0)
    front = Front.of_study(study)
    # 7 pp apart on one seed each, σ with 1 df: t(0.975, 1) * sqrt(2) * 7.07 = 127 pp would be needed.
    assert {m.genome for m in front.members} >= {"mv2_w1.0(13g4)", "mv2_w1.0(13g1)"}
    assert front.noise.resolution == pytest.approx(distributions.t.ppf(0.975, 1) * math.sqrt(2) * math.sqrt(50))
