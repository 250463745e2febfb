"""The product's front: genomes measured over seeds, compared only beyond the measured noise.

The objectives are the study's (``objectives.Selection``): one training metric (top-1) and the
costs computed before training (MACs, params, latency, ...). A trial is one (genome, seed)
training; a genome's top-1 is the mean of its COMPLETE seeds, kept with their std and count
(``GenomeStats``). The seed noise σ is the pooled within-genome std over genomes with at least
two seeds (``SeedNoise``).

Genome A *clearly dominates* B when every cost of A is no worse than B's, values within the
cost's relative tolerance (``--cost-tolerance``, default 1%, or the objective's own) counting as
equal, and A's mean top-1 is above B's by more than 1.96 standard errors of the difference
(Welch: each genome's own variance over its seeds, the pooled σ² where it has fewer than two).
The front is every genome that no genome clearly dominates.
Paper configurations get one of three verdicts: on the front (no genome beats it, even by
mean), within noise of a front genome (beaten by mean, not beyond noise), or clearly dominated.

Optuna's own per-trial front (what optuna-dashboard shows) counts every difference; this one
does not, and it is what the summary, the report, the pick rules and export use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
import pandas as pd

from .objectives import Selection

Z = 1.96  # two-sided 95%
COST_TOLERANCE = 0.01


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

    @property
    def mean(self) -> float:
        return sum(self.scores) / self.n

    @property
    def std(self) -> float | None:
        """Sample std over seeds (ddof 1); None with a single seed."""
        if self.n < 2:
            return None
        mean = self.mean
        return math.sqrt(sum((x - mean) ** 2 for x in self.scores) / (self.n - 1))

    def variance(self, sigma: float) -> float:
        """Variance of one seed's top-1: the genome's own, or σ² with fewer than two seeds."""
        std = self.std
        return std * std if std is not None else sigma * sigma

    def ci95(self, sigma: float) -> float:
        """Half-width of the 95% confidence interval of the mean (normal approximation)."""
        return Z * math.sqrt(self.variance(sigma) / self.n)


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

    @property
    def resolution(self) -> float:
        """Two single runs closer than this are not told apart (1.96 x the std of a difference)."""
        return Z * math.sqrt(2) * self.sigma

    def describe(self) -> str:
        if not self.measured:
            return "seed noise not measured yet (no genome has two seeds): every difference counts"
        return (f"seed noise σ = {self.sigma:.2f} pp (df {self.df}, {self.genomes} genomes with repeats): "
                f"single runs closer than {self.resolution:.1f} pp are not told apart")


def seed_noise(stats: list[GenomeStats]) -> SeedNoise:
    repeated = [s for s in stats if s.n >= 2]
    df = sum(s.n - 1 for s in repeated)
    if not df:
        return SeedNoise(0.0, 0, 0)
    pooled = sum((s.n - 1) * s.std ** 2 for s in repeated) / df
    return SeedNoise(math.sqrt(pooled), df, len(repeated))


def _tied(x: float, y: float, tolerance: float) -> bool:
    return abs(x - y) <= tolerance * max(abs(x), abs(y))


def costs_no_worse(a: GenomeStats, b: GenomeStats, selection: Selection) -> bool:
    """Every cost of ``a`` is no worse than ``b``'s, values within the objective's relative
    tolerance counting as equal."""
    return all(not o.better(y, x) or _tied(x, y, selection.tolerance(o))
               for o, x, y in zip(selection.computed, a.costs, b.costs))


def margin(a: GenomeStats, b: GenomeStats, sigma: float) -> tuple[float, float]:
    """(mean top-1 of a minus b, 1.96 standard errors of that difference; Welch)."""
    error = Z * math.sqrt(a.variance(sigma) / a.n + b.variance(sigma) / b.n)
    return a.mean - b.mean, error


def clearly_dominates(a: GenomeStats, b: GenomeStats, sigma: float, selection: Selection) -> bool:
    if a.genome == b.genome or not costs_no_worse(a, b, selection):
        return False
    difference, error = margin(a, b, sigma)
    return difference > error


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
    (by ``other``, by ``difference`` ± ``error`` pp at no worse cost)."""

    kind: str
    other: GenomeStats | None = None
    difference: float = 0.0
    error: float = 0.0

    def describe(self) -> str:
        if self.kind == "front":
            return "on the front"
        name = f"{self.other.genome}" + (f" ({self.other.label})" if self.other.label else "")
        if self.kind == "within-noise":
            return f"within noise of front genome {name} ({self.difference:+.1f} ± {self.error:.1f} pp)"
        return f"clearly dominated by {name} (by {self.difference:.1f} ± {self.error:.1f} pp at no worse cost)"


@dataclass(frozen=True)
class Front:
    """The genomes of a study, the seed noise and the front beyond it."""

    stats: list[GenomeStats]
    noise: SeedNoise
    members: list[GenomeStats]  # the front, best mean top-1 first
    selection: Selection

    @classmethod
    def of(cls, stats: list[GenomeStats], selection: Selection) -> Front:
        noise = seed_noise(stats)
        members = [b for b in stats if not any(clearly_dominates(a, b, noise.sigma, selection) for a in stats)]
        members.sort(key=lambda s: (-s.mean, s.costs, s.trial))
        return cls(stats, noise, members, selection)

    @classmethod
    def of_study(cls, study: optuna.Study) -> Front:
        selection = Selection.of_study(study)
        return cls.of(genome_stats(study.get_trials(deepcopy=False), selection), selection)

    def values(self, stats: GenomeStats) -> list[float]:
        """A genome's point in study order, top-1 as its mean over seeds."""
        return self.selection.values(stats.mean, stats.costs)

    def contains(self, stats: GenomeStats) -> bool:
        return any(m.genome == stats.genome for m in self.members)

    def verdict(self, stats: GenomeStats) -> Verdict:
        sigma = self.noise.sigma
        dominators = [a for a in self.stats if clearly_dominates(a, stats, sigma, self.selection)]
        if dominators:
            best = max(dominators, key=lambda a: (self.contains(a), margin(a, stats, sigma)[0]))
            return Verdict("dominated", best, *margin(best, stats, sigma))
        beaters = [a for a in self.members if dominates_by_mean(a, stats, self.selection)]
        if beaters:
            best = max(beaters, key=lambda a: a.mean)
            return Verdict("within-noise", best, *margin(best, stats, sigma))
        return Verdict("front")

    def by_genome(self) -> dict[str, GenomeStats]:
        return {s.genome: s for s in self.stats}


def genome_row(stats: GenomeStats, front: Front) -> dict:
    std, name = stats.std, front.selection.trained.name
    return {
        "genome": stats.genome, "label": stats.label, f"{name}_mean": stats.mean, f"{name}_std": std,
        f"{name}_ci95": stats.ci95(front.noise.sigma) if (std is not None or front.noise.measured) else None,
        "seeds": stats.n, **{o.column: v / o.scale for o, v in zip(front.selection.computed, stats.costs)},
        "first_trial": stats.trial, "verdict": front.verdict(stats).describe(),
    }


def genome_columns(selection: Selection) -> list[str]:
    """E.g. genome, label, top1_mean, top1_std, top1_ci95, seeds, macs_M, params_M, first_trial, verdict."""
    name = selection.trained.name
    return ["genome", "label", f"{name}_mean", f"{name}_std", f"{name}_ci95", "seeds",
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
