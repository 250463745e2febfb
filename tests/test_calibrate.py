"""Fidelity calibration: rank statistics against scipy, the recommendation rule, and the real
command (real smoke training on the built-in data) killed with SIGKILL and resumed."""

import json
import math
import subprocess

import optuna
import pytest
from optuna.trial import TrialState
from scipy import stats

from ulsam_nas.analysis.agreement import CeilingAndBaselines, Correlation, bootstrap_interval, kendall_tau, spearman_rho
from ulsam_nas.analysis.front import Signal
from ulsam_nas.calibrate.figures import Calibration, FidelityFigures, fidelity_figures, recommend, top_k_overlap
from ulsam_nas.calibrate.outputs import summary_lines
from ulsam_nas.calibrate.panel import make_panel
from ulsam_nas.models.spaces import load_space

from .commands import QUICK, run_main, run_module, start_module
from .conftest import kill_once_running


def test_rank_statistics_on_known_rankings():
    x = [1, 2, 3, 4, 5]
    assert kendall_tau(x, x) == pytest.approx(1.0) and kendall_tau(x, x[::-1]) == pytest.approx(-1.0)
    # One swapped neighbour pair: 9 concordant, 1 discordant of 10 -> τ = 0.8; Σd² = 2 -> ρ = 1 - 12/120.
    assert kendall_tau(x, [1, 2, 3, 5, 4]) == pytest.approx(0.8)
    assert spearman_rho(x, [1, 2, 3, 5, 4]) == pytest.approx(0.9)
    scores = [40.1, 38.2, 41.5, 36.0, 39.9, 41.5, 35.2]
    reference = [55.0, 51.0, 54.0, 50.5, 53.0, 56.0, 49.0]
    assert kendall_tau(scores, reference) == pytest.approx(stats.kendalltau(scores, reference).statistic)  # τ-b, ties
    assert spearman_rho(scores, reference) == pytest.approx(stats.spearmanr(scores, reference).statistic)


def test_bootstrap_interval_brackets_the_estimate_and_is_repeatable():
    x = [30.0, 32.0, 35.0, 36.0, 38.0, 41.0, 42.0, 44.0]
    y = [50.0, 53.0, 52.0, 56.0, 55.0, 58.0, 61.0, 60.0]
    low, high = bootstrap_interval(kendall_tau, x, y)
    assert low <= kendall_tau(x, y) <= high and -1 <= low < high <= 1
    assert bootstrap_interval(kendall_tau, x, y) == (low, high)


def test_figures_and_top5_overlap():
    runs = {"a": [40.0, 42.0], "b": [35.0, 37.0], "c": [30.0, 30.0], "d": [45.0, 43.0], "e": [20.0, 22.0], "f": [25.0, 25.0]}
    reference = {"a": [60.0, 61.0], "b": [55.0, 54.0], "c": [50.0, 51.0], "d": [65.0, 64.0], "e": [40.0, 41.0],
                 "f": [45.0, 46.0]}
    costs = {g: (1e8 + i * 1e6, 3e6 - i * 1e4) for i, g in enumerate("abcdef")}
    figures = fidelity_figures("smoke", runs, [2.0, 4.0], concurrency=2, costs=costs, reference=reference)
    assert figures.tau == pytest.approx(1.0) and figures.rho == pytest.approx(1.0) and figures.top5_overlap == 1.0
    assert figures.sigma == pytest.approx(math.sqrt((2 + 2 + 0 + 2 + 2 + 0) / 6)) and figures.sigma_df == 6
    assert figures.seconds_per_training == 3.0 and figures.search_minutes == pytest.approx(200 * 3.0 / 2 / 60)
    # At the reference seed A and seed B rank the six genomes alike (a ceiling of 1); MACs grow from a to f, params shrink.
    yardsticks = figures.ceiling_and_baselines
    assert yardsticks.ceiling.value == pytest.approx(1.0) and yardsticks.ceiling.genomes == 6
    assert yardsticks.macs.value == pytest.approx(kendall_tau([0, 1, 2, 3, 4, 5], [60.5, 54.5, 50.5, 64.5, 40.5, 45.5]))
    assert yardsticks.params.value == pytest.approx(-yardsticks.macs.value)
    assert figures.between_genome.std > 0 and figures.between_genome.resolved  # means 5 pp apart, σ about 1.2 pp
    assert top_k_overlap({"a": 3, "b": 2, "c": 1, "d": 0, "e": -1, "f": -2}, {"f": 3, "b": 2, "c": 1, "d": 0, "e": -1, "a": -2}) == 0.8


def test_recommendation_is_the_cheapest_with_a_high_enough_tau_lower_bound():
    def candidate(name, seconds, low):
        return FidelityFigures(name, 16, seconds, 0.0, 1.0, 16, 3.0, tau=low + 0.1, tau_interval=(low, low + 0.2))

    cheap_bad, middle_good, costly_good = candidate("a", 1.0, 0.3), candidate("b", 5.0, 0.65), candidate("c", 9.0, 0.9)
    assert recommend([costly_good, cheap_bad, middle_good], 0.6) is middle_good
    assert recommend([cheap_bad], 0.6) is None
    assert recommend([cheap_bad, middle_good], 0.7) is None


UNRESOLVED = Signal(0.4, 0.0, 1.5, 16, 50.0)  # a between-genome std whose interval reaches 0


def baselines(macs: float, params: float) -> CeilingAndBaselines:
    return CeilingAndBaselines(Correlation(0.8, (0.6, 0.9), 16), Correlation(macs, (macs - 0.2, macs + 0.2), 16),
                               Correlation(params, (params - 0.2, params + 0.2), 16), 16)


def test_a_fidelity_whose_tau_does_not_beat_a_cost_baseline_is_not_recommended():
    def candidate(name, seconds, tau, yardsticks):
        return FidelityFigures(name, 16, seconds, 0.0, 1.0, 16, 3.0, tau=tau, tau_interval=(tau - 0.05, tau + 0.05),
                               ceiling_and_baselines=yardsticks, between_genome=UNRESOLVED)

    no_better_than_params = candidate("smoke", 1.0, 0.7, baselines(0.3, 0.75))  # τ lower bound 0.65 reaches 0.6
    better = candidate("smoke:epochs=8", 4.0, 0.8, baselines(0.3, 0.75))
    assert recommend([no_better_than_params, better], 0.6) is better
    assert recommend([no_better_than_params], 0.6) is None
    assert set(no_better_than_params.not_above_baselines()) == {"params"}

    reference = FidelityFigures("proxy", 16, 9.0, 0.0, 1.0, 16, 3.0, between_genome=UNRESOLVED)
    text = summary_lines(Calibration(reference, [no_better_than_params, better], better, 0.6))
    assert "smoke is not recommended: its τ +0.70 is not above ranking by params (+0.75), which needs no training" in text
    assert text[-1].startswith("recommended: smoke:epochs=8")
    assert "the placements are not told apart at this fidelity" in text[1]  # the reference's yardstick line
    alone = summary_lines(Calibration(reference, [no_better_than_params], None, 0.6))
    assert alone[-1].startswith("no candidate is recommended: those whose τ lower bound reaches 0.6 rank no better "
                                "than MACs/params")


def test_panels():
    space = load_space("mv2")
    default = make_panel(space, "default", seed=0)
    assert len(default) == 16 and len(set(default)) == 16 and all(space.contains(g) for g in default)
    assert len(make_panel(space, "paper", 0)) == 30
    assert make_panel(space, "random:5", 1) == make_panel(space, "random:5", 1)
    with pytest.raises(ValueError, match="random:N needs N >= 3"):
        make_panel(space, "random:2", 0)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return run_module("ulsam_nas.calibrate", *args)


@pytest.mark.parametrize("args, message", [
    (["--fidelities", "smoke:foo=1", "--reference", "smoke"], "unknown fidelity key 'foo'"),
    (["--fidelities", "smoke", "--reference", "smoke"], "--fidelities holds only the reference"),
    (["--fidelities", "smoke", "--reference", "proxy", "--panel", "random:2"], "random:N needs N >= 3"),
    (["--fidelities", "smoke", "--reference", "proxy", "--seeds", "0"], "--seeds must be at least 1"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    result = run_main("ulsam_nas.calibrate", *args, "--study", str(tmp_path / "cal"))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "cal").exists()


def test_a_training_larger_than_the_cluster_is_one_line_exit_2(tmp_path):
    """The calibration sizes its trainings against the Ray cluster as the search does
    (``cli.size_trials``): a training asking for more CPUs than the cluster has is refused before
    anything trains, instead of waiting for resources that never come."""
    result = run_cli("--fidelities", "smoke", "--reference", "proxy", "--cpus-per-trial", "1000",
                     "--study", str(tmp_path / "cal"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --cpus-per-trial 1000: the Ray cluster has "), result.stderr
    assert not (tmp_path / "cal").exists()


CHEAPER = "smoke:epochs=1,train_images=160,test_images=100"  # a candidate with keys of its own: commas inside


def test_killed_calibration_resumes_without_retraining_and_measures_a_oneshot_candidate(tmp_path):
    """A calibration of a standalone candidate (with keys of its own) and a one-shot one, killed
    during its trainings: the rerun trains only what did not finish, then scores the panel with a
    supernet and measures that candidate like any proxy."""
    folder = tmp_path / "cal"
    oneshot = f"oneshot:{QUICK}"
    args = ["--space", "mv2", "--fidelities", f"{CHEAPER},{oneshot}", "--reference", QUICK, "--seeds", "1",
            "--panel", "random:3", "--study", str(folder)]
    driver = start_module("ulsam_nas.calibrate", *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    storage = f"sqlite:///{folder / 'calibration.db'}"
    states = kill_once_running(driver, folder / "calibration.db")
    assert "COMPLETE" in states, states
    before = optuna.load_study(study_name="calibrate-mv2-synthetic", storage=storage)
    finished = {t.number: t.values for t in before.trials if t.state == TrialState.COMPLETE}

    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    after = optuna.load_study(study_name="calibrate-mv2-synthetic", storage=storage)
    for number, values in finished.items():
        assert after.trials[number].values == values
    keys = [(t.user_attrs["fidelity"], t.user_attrs["genome"], t.user_attrs["seed"])
            for t in after.trials if t.state == TrialState.COMPLETE]
    trainings = [key for key in keys if not key[0].startswith("oneshot:")]
    assert len(trainings) == len(set(trainings)) == 6  # 2 fidelities x 3 genomes x 1 seed, none trained twice
    assert f"{len(finished) and 6 - len(finished)} of 6 trainings to run" in result.stderr
    assert not [t for t in after.trials if t.state == TrialState.RUNNING]
    assert f"{oneshot}: training the supernet with seed 0, then scoring 3 genomes" in result.stderr
    scores = [(genome, seed) for fidelity, genome, seed in keys if fidelity == oneshot]
    assert len(scores) == 3 and {genome for genome, _ in scores} == {genome for _, genome, _ in trainings}
    written = json.loads((folder / "calibration.json").read_text())
    assert written["reference"]["fidelity"] == QUICK
    standalone, scored = written["candidates"]
    assert standalone["fidelity"] == CHEAPER and standalone["tau_interval"] is not None
    assert scored["fidelity"] == oneshot and scored["genomes"] == 3 and scored["seconds_per_training"] > 0
    assert "Kendall τ" in result.stdout and ("recommended:" in result.stdout or "no candidate" in result.stdout)
    assert "plotly" in (folder / "calibration.html").read_text()
    assert list(folder.glob("supernet/*-0/supernet.pt"))  # checkpointed: a rerun scores without training again
