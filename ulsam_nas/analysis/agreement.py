"""Rank agreement and what to read it against.

Kendall τ and Spearman ρ with percentile-bootstrap intervals over genomes (``calibrate`` and
one-shot mode both use them). A τ against reference means says little on its own, so it comes
with two yardsticks (``CeilingAndBaselines``):

- **the ceiling**: the reference's split-half τ, its genomes ranked by one half of their seeds
  against the other half. No cheap ranking can be expected to agree with the reference much
  better than the reference agrees with itself.
- **the free baselines**: τ of ranking by MACs and by params (more cost ranked as higher
  top-1) against the same reference means. They cost no training; a ranking that does not beat
  them is no reason to train.

``RankAgreement`` is how far a one-shot search's ranking held: one-shot scores against the
standalone means of the genomes it trained, with the ceiling and baselines of those means. The
search computes it (``oneshot.py``) and stores it on its study; the summary and the report show it.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import optuna

BOOTSTRAP_RESAMPLES = 2000
COST_NAMES = ("MACs", "params")  # the order of a genome's cost tuple here


# -- rank statistics ----------------------------------------------------------------------------------


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b (ties handled) between two score lists over the same genomes; NaN when
    either list is constant. scipy's ``kendalltau`` gives the same value 60x slower, which a
    bootstrap of 2000 resamples per τ feels."""
    x_array, y_array = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    first, second = np.triu_indices(len(x_array), 1)
    x_signs, y_signs = np.sign(x_array[first] - x_array[second]), np.sign(y_array[first] - y_array[second])
    # τ-b: (concordant - discordant) / √(pairs untied in x × pairs untied in y)
    untied = math.sqrt(np.count_nonzero(x_signs) * np.count_nonzero(y_signs))
    return float(np.dot(x_signs, y_signs) / untied) if untied else math.nan


def spearman_rho(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def bootstrap_interval(statistic: Callable[[list[float], list[float]], float], x: list[float], y: list[float],
                       confidence: float = 0.9, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(x, y)``, resampling genomes (pairs) with
    replacement. Resamples where the statistic is undefined (all scores tied) are dropped."""
    rng = np.random.default_rng(seed)
    x_array, y_array = np.asarray(x), np.asarray(y)
    values = []
    with warnings.catch_warnings():  # scipy warns on the constant resamples that are dropped
        warnings.simplefilter("ignore")
        for _ in range(BOOTSTRAP_RESAMPLES):
            index = rng.integers(0, len(x_array), len(x_array))
            value = statistic(list(x_array[index]), list(y_array[index]))
            if math.isfinite(value):
                values.append(value)
    if not values:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class Correlation:
    """A Kendall τ with its bootstrap 90% interval, over ``genomes`` genomes."""

    value: float
    interval: tuple[float, float]
    genomes: int

    def describe(self) -> str:
        return f"{self.value:+.2f} [{self.interval[0]:+.2f}, {self.interval[1]:+.2f}]"

    def to_json(self) -> dict:
        return {"value": self.value, "interval": list(self.interval), "genomes": self.genomes}

    @classmethod
    def from_json(cls, stored: dict | None) -> Correlation | None:
        return None if stored is None else cls(stored["value"], tuple(stored["interval"]), stored["genomes"])


def tau_with_interval(x: Sequence[float], y: Sequence[float]) -> Correlation | None:
    """Kendall τ of ``x`` against ``y`` with its interval; None under three genomes or when
    either side is constant (no ranking to compare)."""
    if len(x) < 3:
        return None
    tau = kendall_tau(x, y)
    if not math.isfinite(tau):
        return None
    return Correlation(tau, bootstrap_interval(kendall_tau, list(x), list(y)), len(x))


# -- the ceiling and the baselines --------------------------------------------------------------------

TIED_HALF = ("one half of the seeds gives every genome the same top-1, so that half ranks nothing and the "
             "split-half τ is undefined")


def split_half_tau(runs: Mapping[str, Sequence[float]]) -> Correlation | None:
    """The reference's reliability: Kendall τ between its genomes ranked by the first half of
    their seeds and by the second (seed A against seed B with two seeds), with a bootstrap
    interval over genomes. ``runs``: genome -> top-1 per seed, in seed order.

    The halves are equal: the first n // 2 seeds against the next n // 2 (with three seeds, the
    third is left out). Genomes with one seed are left out; None under three genomes with two
    seeds or more. This is the reliability of a ranking on half the seeds: the full reference,
    on twice as many, agrees with itself somewhat better, so read it as a conservative ceiling."""
    first, second = [], []
    for scores in runs.values():
        half = len(scores) // 2
        if half:
            first.append(statistics.fmean(scores[:half]))
            second.append(statistics.fmean(scores[half:2 * half]))
    return tau_with_interval(first, second)


def cost_baseline(costs: Sequence[float], means: Sequence[float]) -> Correlation | None:
    """τ of ranking by a cost against the reference means, in one fixed direction: more cost
    ranked as higher top-1 (a bigger network learns more). Its sign is the data's: a negative τ
    says the cheaper genomes did better. None when every genome costs the same."""
    return tau_with_interval(costs, means)


def genome_costs(genomes: Iterable[str], num_classes: int) -> dict[str, tuple[float, float]]:
    """genome -> (MACs, params) at 224 px, as the search's objectives count them."""
    from ..cost import count_cost
    from ..models.genome import Genome

    costs = {}
    for genome in genomes:
        cost = count_cost(Genome.from_string(genome), num_classes=num_classes)
        costs[genome] = (float(cost.macs), float(cost.params))
    return costs


@dataclass(frozen=True)
class CeilingAndBaselines:
    """What a τ against the reference means is read against, over the same genomes: the
    reference's split-half τ (``ceiling``, None when fewer than three genomes have two seeds),
    and the τ of ranking by MACs and by params (None when that cost is the same for all)."""

    ceiling: Correlation | None
    macs: Correlation | None
    params: Correlation | None
    repeated: int  # genomes with two seeds or more: the ceiling needs three

    @classmethod
    def of(cls, runs: Mapping[str, Sequence[float]], costs: Mapping[str, tuple[float, float]]) -> CeilingAndBaselines:
        """``runs``: genome -> reference top-1 per seed, in seed order; ``costs``: genome -> (MACs, params)."""
        genomes = [g for g, scores in runs.items() if scores]
        means = [statistics.fmean(runs[g]) for g in genomes]
        macs, params = ([costs[g][k] for g in genomes] for k in range(len(COST_NAMES)))
        return cls(split_half_tau(runs), cost_baseline(macs, means), cost_baseline(params, means),
                   sum(len(scores) >= 2 for scores in runs.values()))

    @property
    def baselines(self) -> dict[str, Correlation | None]:
        return dict(zip(COST_NAMES, (self.macs, self.params)))

    def not_beaten_by(self, tau: float) -> dict[str, Correlation]:
        """The cost baselines ``tau`` is not above (a baseline that cannot be measured does not count)."""
        return {name: b for name, b in self.baselines.items() if b is not None and tau <= b.value}

    def describe_ceiling(self) -> str:
        if self.ceiling is None and self.repeated >= 3:
            return f"ceiling not measurable ({TIED_HALF})"
        if self.ceiling is None:
            return (f"ceiling not measurable (the split-half τ needs 3 genomes with 2 or more seeds, "
                    f"{self.repeated} have them)")
        return f"ceiling τ {self.ceiling.describe()} (reference split-half, {self.ceiling.genomes} genomes)"

    def describe_baselines(self) -> str:
        """E.g. "MACs τ +0.30 [-0.05, +0.62], params τ +0.14 [-0.20, +0.45]": ranking by each cost."""
        return ", ".join(f"{name} τ " + ("- (the same for every genome)" if b is None else b.describe())
                         for name, b in self.baselines.items())

    def to_json(self) -> dict:
        as_json = {name: None if c is None else c.to_json()
                   for name, c in (("ceiling", self.ceiling), ("macs", self.macs), ("params", self.params))}
        return {**as_json, "repeated": self.repeated}

    @classmethod
    def from_json(cls, stored: dict) -> CeilingAndBaselines:
        return cls(Correlation.from_json(stored["ceiling"]), Correlation.from_json(stored["macs"]),
                   Correlation.from_json(stored["params"]), stored["repeated"])


# -- one-shot mode ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankAgreement:
    """How the one-shot scores rank the genomes trained standalone, against their means, and the
    ceiling and cost baselines of those means (None in a study stored before they were measured)."""

    pairs: dict[str, tuple[float, float]]  # genome -> (one-shot score, standalone mean)
    tau: float | None
    tau_interval: tuple[float, float] | None
    rho: float | None
    rho_interval: tuple[float, float] | None
    ceiling_and_baselines: CeilingAndBaselines | None = None

    @classmethod
    def of(cls, scores: Mapping[str, float], runs: Mapping[str, Sequence[float]],
           costs: Mapping[str, tuple[float, float]]) -> RankAgreement:
        """``scores``: genome -> one-shot score; ``runs``: genome -> standalone top-1 per seed, in
        seed order; ``costs``: genome -> (MACs, params). Over the genomes with a score and a run."""
        genomes = [g for g in runs if g in scores and runs[g]]
        pairs = {g: (scores[g], statistics.fmean(runs[g])) for g in genomes}
        yardsticks = CeilingAndBaselines.of({g: runs[g] for g in genomes}, costs)
        if len(pairs) < 3:
            return cls(pairs, None, None, None, None, yardsticks)
        x, y = [p[0] for p in pairs.values()], [p[1] for p in pairs.values()]
        with warnings.catch_warnings():  # scipy warns on constant scores or means, which the NaN below stands for
            warnings.simplefilter("ignore")
            tau, rho = kendall_tau(x, y), spearman_rho(x, y)
        if math.isnan(tau):  # constant scores or means: no ranking to compare
            return cls(pairs, None, None, None, None, yardsticks)
        return cls(pairs, tau, bootstrap_interval(kendall_tau, x, y), rho, bootstrap_interval(spearman_rho, x, y),
                   yardsticks)

    @property
    def includes_zero(self) -> bool:
        return self.tau_interval is None or self.tau_interval[0] <= 0 <= self.tau_interval[1]

    def not_above_baselines(self) -> dict[str, Correlation]:
        """The cost baselines the one-shot τ is not above; empty when none or not measured."""
        if self.tau is None or self.ceiling_and_baselines is None:
            return {}
        return self.ceiling_and_baselines.not_beaten_by(self.tau)

    def lines(self) -> list[str]:
        if self.tau is None:  # the ceiling and baselines below are still the standalone means' own
            lines = [f"one-shot ranking: not measurable on {len(self.pairs)} genome(s) trained standalone "
                     f"(needs 3 with different scores and means)"]
        else:
            lines = [f"one-shot ranking against standalone means over {len(self.pairs)} genomes trained: Kendall τ "
                     f"{self.tau:+.2f} [{self.tau_interval[0]:+.2f}, {self.tau_interval[1]:+.2f}], Spearman ρ "
                     f"{self.rho:+.2f} [{self.rho_interval[0]:+.2f}, {self.rho_interval[1]:+.2f}] "
                     f"(90% bootstrap intervals)"]
        yardsticks = self.ceiling_and_baselines
        if yardsticks is not None:
            if yardsticks.ceiling is not None:
                ceiling = (f"ceiling: the standalone means against themselves, split-half τ "
                           f"{yardsticks.ceiling.describe()} (one half of each genome's seeds against the other, "
                           f"{yardsticks.ceiling.genomes} genomes)")
            elif yardsticks.repeated >= 3:
                ceiling = f"ceiling not measurable: {TIED_HALF}"
            else:
                ceiling = (f"ceiling not measurable: the split-half τ needs 3 genomes with 2 or more standalone seeds, "
                           f"{yardsticks.repeated} have them (with --confirm-panel above 0 every genome trained gets 2)")
            lines.append(f"{ceiling}; baselines, ranking by cost: {yardsticks.describe_baselines()}")
        if self.tau is not None and self.includes_zero:
            lines.append("warning: the τ interval includes 0: on this evidence the one-shot scores rank no better than "
                         "chance, so only the confirmed (standalone) values mean anything")
        beaten_by = self.not_above_baselines()
        if beaten_by:
            figures = " and ".join(f"by {name} {b.value:+.2f}" for name, b in beaten_by.items())
            lines.append(f"warning: the one-shot ranking is no better than ranking by MACs/params: τ {self.tau:+.2f} is "
                         f"not above ranking {figures}")
        return lines

    def to_json(self) -> dict:
        yardsticks = self.ceiling_and_baselines
        return {"pairs": {g: list(p) for g, p in self.pairs.items()}, "tau": self.tau, "tau_interval": self.tau_interval,
                "rho": self.rho, "rho_interval": self.rho_interval,
                "ceiling_and_baselines": None if yardsticks is None else yardsticks.to_json()}


def agreement_of(study: optuna.Study) -> RankAgreement | None:
    """The rank agreement a one-shot search stored on its study; None for a standalone search."""
    stored = study.user_attrs.get("oneshot")
    return agreement_from_json(stored) if stored else None


def agreement_from_json(stored: dict) -> RankAgreement:
    """The rank agreement from a study's ``oneshot`` attribute. A study stored before the ceiling
    and baselines were measured reads back without them."""
    tau_interval, rho_interval = (tuple(v) if v else None for v in (stored["tau_interval"], stored["rho_interval"]))
    yardsticks = stored.get("ceiling_and_baselines")
    return RankAgreement({g: tuple(p) for g, p in stored["pairs"].items()}, stored["tau"], tau_interval, stored["rho"],
                         rho_interval, None if yardsticks is None else CeilingAndBaselines.from_json(yardsticks))
