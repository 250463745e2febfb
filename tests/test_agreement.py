"""The yardsticks of a rank correlation, on simulated references (numpy, no training): the
split-half ceiling, the cost baselines, and how a one-shot agreement is stored and read back."""

import numpy as np
import pytest

from ulsam_nas.analysis.agreement import (
    CeilingAndBaselines,
    RankAgreement,
    agreement_of,
    cost_baseline,
    split_half_tau,
)


def simulated_runs(true_means, sigma: float, seeds: int, rng) -> dict[str, list[float]]:
    """genome -> top-1 per seed: its true mean plus Gaussian seed noise."""
    return {f"g{i}": list(mean + rng.normal(0.0, sigma, seeds)) for i, mean in enumerate(true_means)}


def test_split_half_tau_is_about_zero_when_the_reference_is_pure_noise():
    rng = np.random.default_rng(0)
    taus = [split_half_tau(simulated_runs([50.0] * 30, 2.0, 2, rng)).value for _ in range(20)]
    assert abs(np.mean(taus)) < 0.05  # the τ of one 30-genome panel has a std of about 0.13
    one = split_half_tau(simulated_runs([50.0] * 30, 2.0, 2, rng))
    assert one.interval[0] < 0 < one.interval[1] and one.genomes == 30


def test_split_half_tau_is_about_one_when_the_genomes_are_well_separated():
    rng = np.random.default_rng(1)
    ceiling = split_half_tau(simulated_runs(np.linspace(30, 70, 16), 0.5, 4, rng))  # 2.7 pp apart, σ 0.5
    assert ceiling.value > 0.95 and ceiling.interval[0] > 0.85 and ceiling.genomes == 16


def test_split_half_tau_compares_equal_halves_and_needs_three_genomes_with_two_seeds():
    # Three seeds: the first against the second, the third left out (it would rank them 3, 2, 1).
    runs = {"a": [1.0, 1.0, 9.0], "b": [2.0, 2.0, 8.0], "c": [3.0, 3.0, 7.0], "single": [5.0]}
    assert split_half_tau(runs).value == pytest.approx(1.0) and split_half_tau(runs).genomes == 3
    assert split_half_tau({"a": [1.0, 2.0], "b": [2.0, 3.0], "c": [4.0]}) is None  # two genomes with two seeds


def test_the_cost_baseline_is_about_one_when_the_means_follow_the_cost():
    rng = np.random.default_rng(2)
    params = rng.uniform(2.0e6, 3.5e6, 20)
    means = 40 + 8 * (params - 2e6) / 1.5e6 + rng.normal(0, 0.2, 20)  # top-1 grows with params, little noise
    baseline = cost_baseline(list(params), list(means))
    assert baseline.value > 0.9 and baseline.interval[0] > 0.8
    # The direction is fixed (more cost ranked higher) and the sign is shown as it is.
    assert cost_baseline(list(-params), list(means)).value == pytest.approx(-baseline.value)
    assert cost_baseline([1.0] * 20, list(means)) is None  # every genome costs the same: no ranking


def test_a_ranking_is_judged_against_the_baselines_it_does_not_beat():
    rng = np.random.default_rng(3)
    runs = simulated_runs(np.linspace(40, 60, 12), 0.5, 2, rng)
    costs = {g: (1e8 + i * 1e6, 3e6 - i * 1e4) for i, g in enumerate(runs)}  # MACs follow top-1, params the reverse
    yardsticks = CeilingAndBaselines.of(runs, costs)
    assert yardsticks.macs.value > 0.9 and yardsticks.params.value < -0.9 and yardsticks.repeated == 12
    assert set(yardsticks.not_beaten_by(0.5)) == {"MACs"} and set(yardsticks.not_beaten_by(-1.0)) == {"MACs", "params"}
    assert set(yardsticks.not_beaten_by(yardsticks.macs.value)) == {"MACs"}  # equal is not above


def test_oneshot_agreement_lines_and_storage(tmp_path):
    import optuna

    rng = np.random.default_rng(4)
    runs = simulated_runs(np.linspace(40, 60, 12), 0.5, 2, rng)
    costs = {g: (1e8 + i * 1e6, 3e6) for i, g in enumerate(runs)}  # MACs rank the genomes perfectly; params tie
    noisy = {g: float(np.mean(v)) + rng.normal(0, 3) for g, v in runs.items()}  # one-shot scores, noisier
    agreement = RankAgreement.of(noisy, runs, costs)
    lines = agreement.lines()
    assert lines[1].startswith("ceiling: the standalone means against themselves, split-half τ +")
    assert "baselines, ranking by cost: MACs τ +" in lines[1] and "params τ - (the same for every genome)" in lines[1]
    assert lines[-1].startswith("warning: the one-shot ranking is no better than ranking by MACs/params: τ")

    study = optuna.create_study(directions=["maximize"])
    study.set_user_attr("oneshot", {"confirm": [], **agreement.to_json()})
    assert agreement_of(study) == agreement
    stored_before = {k: v for k, v in agreement.to_json().items() if k != "ceiling_and_baselines"}
    study.set_user_attr("oneshot", stored_before)  # a study stored before the ceiling and baselines
    old = agreement_of(study)
    assert old.ceiling_and_baselines is None and old.tau == agreement.tau and not old.not_above_baselines()
    assert not any("ceiling" in line or "MACs" in line for line in old.lines())


def test_oneshot_agreement_says_when_the_ceiling_is_not_measurable():
    runs = {f"g{i}": [40.0 + i] for i in range(6)}  # one seed each
    agreement = RankAgreement.of({g: float(i) for i, g in enumerate(runs)}, runs,
                                 {g: (1e8 - i, 3e6 - i) for i, g in enumerate(runs)})
    assert agreement.lines()[1].startswith("ceiling not measurable: the split-half τ needs 3 genomes with 2 or more "
                                           "standalone seeds, 0 have them")
