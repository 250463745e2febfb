"""Each fidelity's figures against the reference, and the recommendation: seconds per training
and the cost of a search, the seed noise σ and the spread of the genome means, Kendall τ and
Spearman ρ between its mean ranking and the reference's (bootstrap 90% intervals over the
panel), the top-5 overlap, the yardsticks τ is read against (the reference's split-half ceiling,
the τ of ranking by MACs and by params) and the between-genome std beyond seed noise; then the
cheapest fidelity that ranks like the reference with confidence and better than the costs.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

import optuna

from ..analysis.agreement import (
    CeilingAndBaselines,
    Correlation,
    bootstrap_interval,
    genome_costs,
    kendall_tau,
    spearman_rho,
)
from ..analysis.front import GenomeStats, Signal, between_genome, seed_noise
from .trainings import collect

SEARCH_TRAININGS = 200  # the cost quoted per fidelity: a search of this many trainings


def top_k_overlap(x: dict[str, float], y: dict[str, float], k: int = 5) -> float:
    """Share of the reference's top k (by ``y``) that are also in the candidate's top k."""
    k = min(k, len(x))
    top = lambda scores: set(sorted(scores, key=lambda g: (-scores[g], g))[:k])  # noqa: E731
    return len(top(x) & top(y)) / k


@dataclass
class FidelityFigures:
    """One fidelity's figures over the panel (``fidelity_figures``); top-1 figures in pp."""

    fidelity: str
    genomes: int  # genomes with at least one COMPLETE seed (shared with the reference)
    seconds_per_training: float
    search_minutes: float  # a SEARCH_TRAININGS search at the calibration's concurrency
    sigma: float | None  # pooled seed std of top-1, pp
    sigma_df: int
    spread: float  # std of the genome means, pp
    tau: float | None = None
    tau_interval: tuple[float, float] | None = None
    rho: float | None = None
    rho_interval: tuple[float, float] | None = None
    top5_overlap: float | None = None
    # The reference's split-half τ and the τ of ranking by MACs and params, over the genomes τ is
    # measured on (the reference's own row: over all its genomes).
    ceiling_and_baselines: CeilingAndBaselines | None = None
    between_genome: Signal | None = None  # the std of this fidelity's true genome means beyond seed noise

    def reaches(self, min_tau: float) -> bool:
        return self.tau_interval is not None and self.tau_interval[0] >= min_tau

    def not_above_baselines(self) -> dict[str, Correlation]:
        """The cost baselines (MACs, params) this fidelity's τ is not above."""
        if self.tau is None or self.ceiling_and_baselines is None:
            return {}
        return self.ceiling_and_baselines.not_beaten_by(self.tau)


def between_genome_signal(runs: dict[str, list[float]], costs: dict[str, tuple[float, float]]) -> Signal:
    """The between-genome std of the genome means beyond seed noise (``front.between_genome``)."""
    # Seeds as positions: between_genome reads only the scores and their count.
    stats = [GenomeStats(g, tuple(range(len(v))), tuple(v), costs[g], number)
             for number, (g, v) in enumerate(runs.items()) if v]
    return between_genome(stats, seed_noise(stats))


def fidelity_figures(fidelity: str, runs: dict[str, list[float]], seconds: list[float], concurrency: int,
                     costs: dict[str, tuple[float, float]],
                     reference: dict[str, list[float]] | None = None) -> FidelityFigures:
    """``runs``: genome -> top-1 per seed, in seed order; ``costs``: genome -> (MACs, params);
    ``reference``: the reference's runs (None for the reference itself)."""
    means = {g: statistics.fmean(v) for g, v in runs.items() if v}
    repeated = [v for v in runs.values() if len(v) >= 2]
    df = sum(len(v) - 1 for v in repeated)
    sigma = math.sqrt(sum(statistics.variance(v) * (len(v) - 1) for v in repeated) / df) if df else None
    per_training = statistics.fmean(seconds) if seconds else float("nan")
    figures = FidelityFigures(fidelity, len(means), per_training, SEARCH_TRAININGS * per_training / max(1, concurrency) / 60,
                              sigma, df, statistics.pstdev(means.values()) if len(means) > 1 else 0.0,
                              between_genome=between_genome_signal(runs, costs))
    if reference is None:
        figures.ceiling_and_baselines = CeilingAndBaselines.of({g: runs[g] for g in means}, costs)
        return figures
    reference_means = {g: statistics.fmean(v) for g, v in reference.items() if v}
    shared = sorted(set(means) & set(reference_means))
    if len(shared) >= 3:
        x, y = [means[g] for g in shared], [reference_means[g] for g in shared]
        figures.tau, figures.tau_interval = kendall_tau(x, y), bootstrap_interval(kendall_tau, x, y)
        figures.rho, figures.rho_interval = spearman_rho(x, y), bootstrap_interval(spearman_rho, x, y)
        figures.top5_overlap = top_k_overlap({g: means[g] for g in shared}, {g: reference_means[g] for g in shared})
        figures.ceiling_and_baselines = CeilingAndBaselines.of({g: reference[g] for g in shared}, costs)
    return figures


def recommend(candidates: list[FidelityFigures], min_tau: float) -> FidelityFigures | None:
    """The cheapest candidate whose τ lower bound reaches ``min_tau`` and whose τ is above the τ
    of ranking by MACs and by params (a ranking no better than the costs is not worth a training);
    None if none is."""
    qualified = [c for c in candidates if c.reaches(min_tau) and not c.not_above_baselines()]
    return min(qualified, key=lambda c: c.seconds_per_training, default=None)


@dataclass
class Calibration:
    """The reference's figures, every candidate's, the one recommended (None: none is), and the τ
    lower bound a recommendation needs (``--min-tau``)."""

    reference: FidelityFigures
    candidates: list[FidelityFigures]
    recommended: FidelityFigures | None
    min_tau: float

    def to_json(self) -> dict:
        return {"reference": asdict(self.reference), "candidates": [asdict(c) for c in self.candidates],
                "recommended": self.recommended.fidelity if self.recommended else None, "min_tau": self.min_tau}


def analyse(study: optuna.Study, candidates: list[str], reference: str, concurrency: int, min_tau: float,
            num_classes: int) -> Calibration:
    """The figures of the reference and of every candidate from the study's COMPLETE trials, and the
    recommendation; ``concurrency`` prices a search, ``num_classes`` the genomes' costs."""
    data = collect(study)
    empty = {"runs": {}, "seconds": []}
    costs = genome_costs({g for entry in data.values() for g in entry["runs"]}, num_classes)
    ref_data = data.get(reference, empty)
    ref = fidelity_figures(reference, ref_data["runs"], ref_data["seconds"], concurrency, costs)
    figures = [fidelity_figures(f, data.get(f, empty)["runs"], data.get(f, empty)["seconds"], concurrency, costs,
                                ref_data["runs"]) for f in candidates]
    return Calibration(ref, figures, recommend(figures, min_tau), min_tau)
