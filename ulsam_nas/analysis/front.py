"""The product's front: genomes measured over seeds, compared only beyond the measured noise.

The objectives are the study's (``objectives.Selection``): one training metric (top-1) and the
costs computed before training (MACs, params, latency, ...). A trial is one (genome, seed)
training; a genome's top-1 is the mean of its COMPLETE seeds, kept with their std and count
(``GenomeStats``). The seed noise σ is the pooled within-genome std over genomes with at least
two seeds (``SeedNoise``).

Genome A *clearly dominates* B when every cost of A is no worse than B's (values within the
cost's relative tolerance, ``--cost-tolerance``, default 1%, or the objective's own, count as
equal) and A's mean top-1 is above B's by more than a simultaneous bound: t(1 - 0.05/m, df)
standard errors of the difference, where m is the number of genomes that cost no more than B,
σ is pooled over the study and df its degrees of freedom. Whatever the true means, the chance
that B is called dominated although none of those m genomes is truly better is at most 5%
(Bonferroni over the m one-sided comparisons, which is also Holm's first step). The front is
every genome that no genome clearly dominates; with no repeat yet (σ unmeasured) no genome is
called dominated.
Paper configurations get one of three verdicts: on the front (no genome beats it, even by
mean), within noise of a front genome (beaten by mean, not beyond the bound), or clearly
dominated.

The signal beside the noise: the between-genome std of true top-1, a random-effects variance
component of the genome means (``between_genome``: Paule-Mandel estimate, Q-profile 95%
interval with F quantiles for the estimated σ). When its interval reaches 0 the placements are not told apart at
this fidelity and the front rests on the costs. The means the product names as winners (the
front's order, the knee and the picks of ``picks.py``) are shrunk toward the grand mean by that
model (empirical Bayes), so that the best of many noisy means does not carry its winner's curse.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass, field

import numpy as np
import optuna
import pandas as pd
from scipy import optimize
from scipy import stats as distributions

from .objectives import Selection

ALPHA = 0.05  # the chance of a false "clearly dominated" per genome, over all the comparisons it makes
COST_TOLERANCE = 0.01
COST_BLOCK_ROWS = 256  # pairs of genomes compared this many rows at a time: temporaries of a few MB


@dataclass(frozen=True)
class GenomeStats:
    """One genome over its COMPLETE seed trials (one value per distinct seed)."""

    genome: str
    seeds: tuple[int, ...]
    scores: tuple[float, ...]  # the training metric (top-1), one per seed
    costs: tuple[float, ...]  # the computed objectives, in ``Selection.computed`` order
    trial: int  # the genome's first COMPLETE trial
    label: str = ""  # paper label, if a paper configuration

    @property
    def n(self) -> int:
        return len(self.scores)

    @functools.cached_property  # read in every comparison the front makes
    def mean(self) -> float:
        return sum(self.scores) / self.n

    @property
    def std(self) -> float | None:
        """Sample std over seeds (ddof 1); None with a single seed."""
        if self.n < 2:
            return None
        mean = self.mean
        return math.sqrt(sum((x - mean) ** 2 for x in self.scores) / (self.n - 1))

    def ci95(self, noise: SeedNoise) -> float | None:
        """Half-width of the 95% confidence interval of the mean (pooled σ, t quantile); None while σ is unmeasured."""
        return noise.quantile(0.975) * noise.sigma / math.sqrt(self.n) if noise.measured else None


def trial_seed(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial.user_attrs.get("seed", 0))


def genome_stats(trials: list[optuna.trial.FrozenTrial], selection: Selection) -> list[GenomeStats]:
    """Per-genome statistics from COMPLETE trials, in order of each genome's first trial. A
    (genome, seed) that appears more than once (a reused result) counts once."""
    by_genome: dict[str, dict] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.state != optuna.trial.TrialState.COMPLETE or "genome" not in trial.user_attrs:
            continue
        score, costs = selection.split(trial.values)
        entry = by_genome.setdefault(trial.user_attrs["genome"], {"seeds": {}, "trial": trial.number, "label": "",
                                                                   "costs": costs})
        entry["seeds"].setdefault(trial_seed(trial), score)
        entry["label"] = entry["label"] or trial.user_attrs.get("paper_label", "")
    return [GenomeStats(genome, tuple(e["seeds"]), tuple(e["seeds"].values()), e["costs"], e["trial"], e["label"])
            for genome, e in by_genome.items()]


@dataclass(frozen=True)
class SeedNoise:
    """Pooled within-genome std of top-1 and its degrees of freedom (sum of n - 1)."""

    sigma: float  # 0.0 while unmeasured
    df: int
    genomes: int  # genomes with at least two seeds

    @property
    def measured(self) -> bool:
        return self.df > 0

    def quantile(self, level: float) -> float:
        """Student's t quantile at ``level`` with this σ's degrees of freedom (infinite while unmeasured)."""
        return _t_quantile(level, self.df) if self.measured else math.inf

    @property
    def resolution(self) -> float:
        """Two single runs closer than this are not told apart by one 95% test (t x the std of a difference)."""
        return self.quantile(0.975) * math.sqrt(2) * self.sigma

    def describe(self) -> str:
        if not self.measured:
            return "seed noise not measured yet (no genome has two seeds): no genome is called dominated"
        return (f"seed noise σ = {self.sigma:.2f} pp (df {self.df}, {self.genomes} genomes with repeats): "
                f"single runs closer than {self.resolution:.1f} pp are not told apart")


@functools.lru_cache(maxsize=256)
def _t_quantile(level: float, df: int) -> float:
    """Cached: a report asks every genome's interval of the same σ, and scipy's ppf costs 0.3 ms a call."""
    return float(distributions.t.ppf(level, df))


def seed_noise(stats: list[GenomeStats]) -> SeedNoise:
    repeated = [s for s in stats if s.n >= 2]
    df = sum(s.n - 1 for s in repeated)
    if not df:
        return SeedNoise(0.0, 0, 0)
    pooled = sum((s.n - 1) * s.std ** 2 for s in repeated) / df
    return SeedNoise(math.sqrt(pooled), df, len(repeated))


@dataclass(frozen=True)
class Signal:
    """The between-genome std of true top-1 (pp) with its 95% interval, over ``genomes`` genomes,
    and the precision-weighted grand mean the genome means are shrunk toward. ``std`` is None
    while it cannot be estimated (σ unmeasured, or fewer than three genomes)."""

    std: float | None
    low: float
    high: float
    genomes: int
    center: float

    @property
    def resolved(self) -> bool:
        """Whether the interval excludes 0: the genomes differ beyond seed noise."""
        return self.std is not None and self.low > 0

    def describe(self) -> str:
        if self.std is None:
            return "between-genome std not measurable yet (needs σ and three genomes)"
        return f"between-genome std {self.std:.1f} pp, 95% CI {self.low:.1f} to {self.high:.1f}"

    def verdict(self, noise: SeedNoise) -> str:
        """One sentence on whether the placements are told apart, for the summary and the report."""
        if self.std is None:
            return f"the signal beyond noise is not measured yet: {self.describe()}"
        figures = f"{self.describe()}, seed σ {noise.sigma:.1f} pp, {self.genomes} genomes"
        if self.resolved:
            return f"the placements differ beyond seed noise ({figures})"
        return f"at this fidelity the placements are not told apart ({figures}); the front rests on the costs"

    def shrink(self, stats: GenomeStats, noise: SeedNoise) -> float:
        """The genome's mean shrunk toward ``center`` by the random-effects model (empirical Bayes):
        weight std² / (std² + σ²/n) on its own mean."""
        if self.std is None:
            return stats.mean
        within = noise.sigma ** 2 / stats.n
        total = self.std ** 2 + within
        return stats.mean if total == 0 else self.center + self.std ** 2 / total * (stats.mean - self.center)


def between_genome(stats: list[GenomeStats], noise: SeedNoise) -> Signal:
    """The between-genome variance component of the genome means, each with variance
    τ² + σ²/n: Paule-Mandel's τ² (the generalised Q statistic at its expected k - 1) and the
    Q-profile 95% interval, Q at the F(k - 1, df) quantiles, since σ² is itself estimated."""
    count = len(stats)
    if not noise.measured or count < 3:
        return Signal(None, 0.0, 0.0, count, sum(s.mean for s in stats) / count if count else math.nan)
    means = [s.mean for s in stats]
    if noise.sigma == 0:  # no seed noise at all: the means are the genomes' values, their spread is the signal
        spread = statistics.stdev(means)
        return Signal(spread, spread, spread, count, statistics.fmean(means))
    within = [noise.sigma ** 2 / s.n for s in stats]

    def q_and_center(tau2: float) -> tuple[float, float]:
        weights = [1.0 / (tau2 + v) for v in within]
        center = sum(w * y for w, y in zip(weights, means)) / sum(weights)
        return sum(w * (y - center) ** 2 for w, y in zip(weights, means)), center

    def solve(target: float) -> float:
        """The τ² where Q falls to ``target`` (Q decreases in τ²); 0 when Q(0) is already below it."""
        if q_and_center(0.0)[0] <= target:
            return 0.0
        high = max(max(means) - min(means), 1e-6) ** 2
        while q_and_center(high)[0] > target:
            high *= 4
        return optimize.brentq(lambda tau2: q_and_center(tau2)[0] - target, 0.0, high, xtol=1e-10)

    # At the true τ², Q / (k - 1) is a χ²(k - 1) / (k - 1) over σ's own estimate, σ̂²/σ², a
    # χ²(df) / df: an F(k - 1, df) variate. Its quantiles (not χ²'s) keep the interval's coverage
    # when σ is estimated from a few dozen repeats.
    between_df = count - 1
    estimate = solve(between_df)
    low = solve(between_df * float(distributions.f.ppf(0.975, between_df, noise.df)))
    high = solve(between_df * float(distributions.f.ppf(0.025, between_df, noise.df)))
    return Signal(math.sqrt(estimate), math.sqrt(low), math.sqrt(high), count, q_and_center(estimate)[1])


def _tied(x: float, y: float, tolerance: float) -> bool:
    return abs(x - y) <= tolerance * max(abs(x), abs(y))


def costs_no_worse(a: GenomeStats, b: GenomeStats, selection: Selection) -> bool:
    """Every cost of ``a`` is no worse than ``b``'s, values within the objective's relative
    tolerance counting as equal."""
    return all(not o.better(y, x) or _tied(x, y, selection.tolerance(o))
               for o, x, y in zip(selection.computed, a.costs, b.costs))


def cost_order(a: np.ndarray, b: np.ndarray, minimised: np.ndarray, tolerance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For cost vectors ``a`` and ``b`` (the last axis the objectives, the others broadcast):
    whether every cost of ``a`` is no worse than ``b``'s, values within the objective's relative
    tolerance counting as equal (``costs_no_worse``), and whether one is better beyond it. One
    objective at a time: the temporaries stay the size of the answer."""
    no_worse = np.ones(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), dtype=bool)
    cheaper = np.zeros_like(no_worse)
    for k in range(a.shape[-1]):
        x, y = a[..., k], b[..., k]
        beyond = np.abs(x - y) > tolerance[k] * np.maximum(np.abs(x), np.abs(y))  # not tied
        x_better, y_better = (x < y, y < x) if minimised[k] else (x > y, y > x)
        no_worse &= ~(y_better & beyond)
        cheaper |= x_better & beyond
    return no_worse, cheaper


def objective_arrays(selection: Selection) -> tuple[np.ndarray, np.ndarray]:
    """Which computed objectives are minimised, and their tolerances, as ``cost_order`` takes them."""
    return (np.array([o.direction == "minimize" for o in selection.computed]),
            np.array([selection.tolerance(o) for o in selection.computed]))


def cost_matrices(stats: list[GenomeStats], selection: Selection) -> tuple[np.ndarray, np.ndarray]:
    """``cost_order`` for every pair (i, j): the front compares every genome with every other,
    which one pair at a time in Python made a search's own bookkeeping its largest cost. In blocks
    of rows: all pairs at once made temporaries of k x k floats (175 MB each at 4,675 genomes, 3 s
    a front)."""
    costs = np.array([s.costs for s in stats], dtype=float).reshape(len(stats), len(selection.computed))
    no_worse = np.empty((len(stats), len(stats)), dtype=bool)
    cheaper = np.empty_like(no_worse)
    minimised, tolerance = objective_arrays(selection)
    for start in range(0, len(stats), COST_BLOCK_ROWS):
        rows = slice(start, start + COST_BLOCK_ROWS)
        no_worse[rows], cheaper[rows] = cost_order(costs[rows, None, :], costs[None, :, :], minimised, tolerance)
    return no_worse, cheaper


def dominates_by_mean(a: GenomeStats, b: GenomeStats, selection: Selection) -> bool:
    """Pareto dominance on the means, costs within their tolerance counting as equal."""
    if a.genome == b.genome or not costs_no_worse(a, b, selection):
        return False
    cheaper = any(o.better(x, y) and not _tied(x, y, selection.tolerance(o))
                  for o, x, y in zip(selection.computed, a.costs, b.costs))
    return a.mean > b.mean or (a.mean == b.mean and cheaper)


@dataclass(frozen=True)
class Verdict:
    """Where a genome stands: ``front``, ``within-noise`` (of genome ``other``) or ``dominated``
    (by ``other``, by ``difference`` pp, beyond the simultaneous ``bound`` over ``comparisons``
    genomes of no worse cost)."""

    kind: str
    other: GenomeStats | None = None
    difference: float = 0.0
    bound: float = 0.0
    comparisons: int = 0

    def describe(self) -> str:
        if self.kind == "front":
            return "on the front"
        name = f"{self.other.genome}" + (f" ({self.other.label})" if self.other.label else "")
        if self.kind == "within-noise":
            bound = "σ not measured" if math.isinf(self.bound) else f"bound {self.bound:.1f}"
            return f"within noise of front genome {name} ({self.difference:+.1f} pp, {bound})"
        return (f"clearly dominated by {name} (by {self.difference:.1f} pp at no worse cost, beyond the {self.bound:.1f} pp "
                f"bound that holds the error to 5% over {self.comparisons} genome{'s' if self.comparisons != 1 else ''} "
                f"of no worse cost)")


@dataclass(frozen=True)
class Front:
    """The genomes of a study, the seed noise, the signal beyond it and the front."""

    stats: list[GenomeStats]
    noise: SeedNoise
    signal: Signal
    members: list[GenomeStats]  # the front, best shrunk mean top-1 first
    selection: Selection
    critical: dict[str, float]  # genome -> t(1 - ALPHA/m, df), m its rivals: the bound in standard errors
    # no_worse[i, j]: stats[i] is a rival of stats[j] (another genome that costs no more);
    # clearly[i, j]: stats[i] clearly dominates stats[j]; by_mean[i, j]: dominates it by mean
    no_worse: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool), repr=False)
    clearly: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool), repr=False)
    by_mean: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool), repr=False)

    @classmethod
    def of(cls, stats: list[GenomeStats], selection: Selection) -> Front:
        noise = seed_noise(stats)
        no_worse, cheaper = cost_matrices(stats, selection)
        np.fill_diagonal(no_worse, False)
        counts = no_worse.sum(axis=0)
        critical_of = (distributions.t.ppf(1 - ALPHA / np.maximum(counts, 1), noise.df) if noise.measured
                       else np.full(len(stats), math.inf))
        critical = {b.genome: float(c) for b, c in zip(stats, critical_of)}
        means = np.array([s.mean for s in stats])
        inverse_n = np.array([1 / s.n for s in stats])
        clearly, by_mean = np.zeros_like(no_worse), np.zeros_like(no_worse)
        for start in range(0, len(stats), COST_BLOCK_ROWS):  # in blocks of rows, as cost_matrices
            rows = slice(start, start + COST_BLOCK_ROWS)
            difference = means[rows, None] - means[None, :]
            by_mean[rows] = no_worse[rows] & ((difference > 0) | ((difference == 0) & cheaper[rows]))
            if noise.measured:
                with np.errstate(invalid="ignore"):  # inf x 0 (σ = 0): no bound is passed
                    bound = critical_of[None, :] * noise.sigma * np.sqrt(inverse_n[rows, None] + inverse_n[None, :])
                clearly[rows] = no_worse[rows] & (difference > np.nan_to_num(bound, nan=math.inf))
        front = cls(stats, noise, between_genome(stats, noise), [], selection, critical, no_worse, clearly, by_mean)
        dominated = clearly.any(axis=0)
        members = sorted((b for j, b in enumerate(stats) if not dominated[j]),
                         key=lambda s: (-front.estimate(s), s.costs, s.trial))
        return cls(stats, noise, front.signal, members, selection, critical, no_worse, clearly, by_mean)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {s.genome: i for i, s in enumerate(self.stats)}

    @classmethod
    def of_study(cls, study: optuna.Study) -> Front:
        selection = Selection.of_study(study)
        return cls.of(genome_stats(study.get_trials(deepcopy=False), selection), selection)

    def values(self, stats: GenomeStats) -> list[float]:
        """A genome's point in study order, top-1 as its mean over seeds."""
        return self.selection.values(stats.mean, stats.costs)

    def shrunk_values(self, stats: GenomeStats) -> list[float]:
        """A genome's point in study order, top-1 as its shrunk mean (``estimate``): what picks and the knee compare."""
        return self.selection.values(self.estimate(stats), stats.costs)

    def estimate(self, stats: GenomeStats) -> float:
        """The genome's mean top-1 shrunk toward the study's (``Signal.shrink``): what a winner is named with."""
        return self.signal.shrink(stats, self.noise)

    @functools.cached_property
    def _member_genomes(self) -> frozenset[str]:
        return frozenset(m.genome for m in self.members)

    @functools.cached_property
    def _member_rows(self) -> np.ndarray:
        return np.array([self._index[m.genome] for m in self.members], dtype=np.int64)

    @functools.cached_property
    def _is_member(self) -> np.ndarray:
        member = np.zeros(len(self.stats), dtype=bool)
        member[self._member_rows] = True
        return member

    @functools.cached_property
    def _means(self) -> np.ndarray:
        return np.array([s.mean for s in self.stats])

    @functools.cached_property
    def _verdicts(self) -> dict[int, Verdict]:
        return {}  # column -> its verdict: a report and a publish ask for each genome's more than once

    def rivals(self, genome: str) -> list[GenomeStats]:
        """The study's other genomes that cost no more than ``genome``: what its verdict compares it with."""
        j = self._index.get(genome)
        return [] if j is None else [self.stats[i] for i in np.flatnonzero(self.no_worse[:, j])]

    def contains(self, stats: GenomeStats) -> bool:
        return stats.genome in self._member_genomes

    def margin(self, a: GenomeStats, b: GenomeStats) -> tuple[float, float]:
        """(mean top-1 of a minus b, the simultaneous bound that difference must pass for a to clearly dominate b)."""
        if not self.noise.measured:
            return a.mean - b.mean, math.inf
        return a.mean - b.mean, self.critical[b.genome] * self.noise.sigma * math.sqrt(1 / a.n + 1 / b.n)

    def _column(self, stats: GenomeStats) -> int | None:
        """The index of ``stats`` in this front's matrices; None for a genome of another study's stats."""
        j = self._index.get(stats.genome)
        return j if j is not None and self.stats[j] == stats else None

    def dominators(self, stats: GenomeStats) -> list[GenomeStats]:
        """The genomes that clearly dominate ``stats``: their mean top-1 above its by more than
        the simultaneous bound (``margin``), at no worse cost."""
        j = self._column(stats)
        if j is not None:
            return [self.stats[i] for i in np.flatnonzero(self.clearly[:, j])]
        clear = []  # a genome of another study's stats: its comparisons one by one
        for rival in self.rivals(stats.genome):
            difference, bound = self.margin(rival, stats)
            if difference > bound:
                clear.append(rival)
        return clear

    def contenders(self) -> list[GenomeStats]:
        """The front by mean: the genomes no genome beats by mean at no worse cost (noise aside).
        Their means decide what the front shows, so their repeats come first (``ledger``)."""
        return [b for j, b in enumerate(self.stats) if not self.by_mean[:, j].any()]

    def verdict(self, stats: GenomeStats) -> Verdict:
        j = self._column(stats)
        if j is None:  # a genome of another study's stats: compared genome by genome
            return self._verdict_of(stats, self.dominators(stats),
                                    [a for a in self.members if dominates_by_mean(a, stats, self.selection)],
                                    len(self.rivals(stats.genome)))
        if j not in self._verdicts:
            self._verdicts[j] = self._verdict_at(j)
        return self._verdicts[j]

    def _verdict_of(self, stats: GenomeStats, dominators: list[GenomeStats], beaters: list[GenomeStats],
                    comparisons: int) -> Verdict:
        """The verdict given the genomes that clearly dominate ``stats`` and the front genomes that beat it by mean."""
        if dominators:  # the front's own first, then the largest lead (the first of equal ones)
            best = max(dominators, key=lambda a: (self.contains(a), self.margin(a, stats)[0]))
            return Verdict("dominated", best, *self.margin(best, stats), comparisons)
        if beaters:
            best = max(beaters, key=lambda a: a.mean)
            return Verdict("within-noise", best, *self.margin(best, stats), comparisons)
        return Verdict("front")

    def _verdict_at(self, j: int) -> Verdict:
        """``_verdict_of`` for column ``j`` of the matrices, where each candidate list is narrowed to
        the one ``_verdict_of`` would pick by one numpy pass over the column: on a study of
        thousands of genomes, each has thousands of rivals."""
        def leader(rows: np.ndarray) -> list[GenomeStats]:  # the first of the largest means, as max() picks
            return [self.stats[rows[np.argmax(self._means[rows])]]] if len(rows) else []

        dominators = np.flatnonzero(self.clearly[:, j])
        on_front = dominators[self._is_member[dominators]]
        beaters = self._member_rows[self.by_mean[self._member_rows, j]]  # in the front's order, as max() sees them
        return self._verdict_of(self.stats[j], leader(on_front if len(on_front) else dominators), leader(beaters),
                                int(self.no_worse[:, j].sum()))

    def by_genome(self) -> dict[str, GenomeStats]:
        return {s.genome: s for s in self.stats}


class Contenders:
    """The front by mean (``Front.contenders``) kept up to date one genome at a time, for the search
    policy, which asks for it before every training. A new genome, or a new seed that moves a
    genome's mean, changes only its own row and column of the by-mean dominance: O(k) numpy work
    per training where rebuilding the front (``Front.of``) is O(k²). Means and costs are the ones
    ``GenomeStats`` holds (scores in trial order), so the answer is ``Front.contenders``' exactly."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self.minimised, self.tolerance = objective_arrays(selection)
        self.genomes: list[str] = []
        self.first_trial: list[int] = []
        self.index: dict[str, int] = {}
        self.costs = np.zeros((0, len(selection.computed)))
        self.means = np.zeros(0)
        self.beaten = np.zeros(0, dtype=np.int64)  # how many genomes dominate each one by mean

    def _beats(self, i: int, mean: float, reverse: bool = False) -> np.ndarray:
        """Whether genome ``i`` at ``mean`` dominates each genome by mean (``reverse``: is dominated by each)."""
        a, b = self.costs[i][None, :], self.costs
        no_worse, cheaper = cost_order(b, a, self.minimised, self.tolerance) if reverse else \
            cost_order(a, b, self.minimised, self.tolerance)
        difference = self.means - mean if reverse else mean - self.means
        beats = no_worse & ((difference > 0) | ((difference == 0) & cheaper))
        beats[i] = False
        return beats

    def update(self, stats: GenomeStats) -> None:
        """Take in a genome's current statistics (a new genome, or one with a new seed)."""
        i = self.index.get(stats.genome)
        if i is None:
            i = self.index[stats.genome] = len(self.genomes)
            self.genomes.append(stats.genome)
            self.first_trial.append(stats.trial)
            self.costs = np.vstack([self.costs, np.asarray(stats.costs, dtype=float)[None, :]])
            self.means = np.append(self.means, stats.mean)
            self.beaten = np.append(self.beaten, 0)
        else:
            self.beaten -= self._beats(i, self.means[i])
            self.first_trial[i] = min(self.first_trial[i], stats.trial)
            self.means[i] = stats.mean
        self.beaten += self._beats(i, stats.mean)
        self.beaten[i] = int(self._beats(i, stats.mean, reverse=True).sum())

    def mean(self, genome: str) -> float:
        return float(self.means[self.index[genome]])

    def genomes_on_front(self) -> list[str]:
        """The genomes no genome beats by mean at no worse cost, in order of their first trial."""
        on_front = np.flatnonzero(self.beaten == 0)
        return sorted((self.genomes[i] for i in on_front), key=lambda g: self.first_trial[self.index[g]])


def genome_row(stats: GenomeStats, front: Front) -> dict:
    std, name = stats.std, front.selection.trained.name
    return {
        "genome": stats.genome, "label": stats.label, f"{name}_mean": stats.mean, f"{name}_std": std,
        f"{name}_ci95": stats.ci95(front.noise), f"{name}_shrunk": front.estimate(stats),
        "seeds": stats.n, **{o.column: v / o.scale for o, v in zip(front.selection.computed, stats.costs)},
        "first_trial": stats.trial, "verdict": front.verdict(stats).describe(),
    }


def genome_columns(selection: Selection) -> list[str]:
    """E.g. genome, label, top1_mean, top1_std, top1_ci95, top1_shrunk, seeds, macs_M, params_M, first_trial, verdict."""
    name = selection.trained.name
    return ["genome", "label", f"{name}_mean", f"{name}_std", f"{name}_ci95", f"{name}_shrunk", "seeds",
            *(o.column for o in selection.computed), "first_trial", "verdict"]


def genomes_table(front: Front, members_only: bool = False) -> pd.DataFrame:
    """One row per genome (or per front genome), best mean top-1 first."""
    chosen = front.members if members_only else sorted(front.stats, key=lambda s: (-s.mean, s.trial))
    return pd.DataFrame([genome_row(s, front) for s in chosen], columns=genome_columns(front.selection))


@dataclass(frozen=True)
class PaperStatus:
    label: str
    stats: GenomeStats | None  # None if the configuration never completed
    verdict: Verdict | None
    selection: Selection | None = None

    def describe(self) -> str:
        if self.stats is None:
            return f"{self.label}: not trained to completion in this study"
        s = self.stats
        spread = f" ± {s.std:.1f}" if s.std is not None else ""
        costs = "".join(f", {o.show(v)}" for o, v in zip(self.selection.computed, s.costs)) if self.selection else ""
        return f"{self.label}: top-1 {s.mean:.1f}{spread}% over {s.n} seed(s){costs}; {self.verdict.describe()}"


def paper_status(front: Front, labels: list[str]) -> list[PaperStatus]:
    """Each paper configuration's statistics, costs and verdict on the study's front."""
    by_label = {s.label: s for s in front.stats if s.label}
    return [PaperStatus(label, by_label.get(label), front.verdict(by_label[label]) if label in by_label else None,
                        front.selection) for label in labels]
