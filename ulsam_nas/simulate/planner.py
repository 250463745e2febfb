"""The planner: what a search of this budget can be expected to find, before it is run.

It runs the search policy (``driver.simulate_search``, no Ray) on a landscape that matches the
user's numbers, ``additive,sigma=S,between=B`` (effects drawn once, landscape seed 0), over
replicates whose search seed is the replicate's index, as ``--seed i`` of the real search would
be, and scores each by the truth (``truth.score``):

- the share of the true front the product reports (``front_share``), and the hypervolume share;
- the false "clearly dominated" rate, per genome judged;
- the power to call a configuration 3σ worse: the same landscape with the planted placements of
  ``landscapes.builtins.PLANTED`` (MV2: layers 16 and 17 substituted with g = 1, a paper
  configuration the search trains first) made 3σ worse than drawn, written to a landscape file;
  the power is the share of replicates in which the product calls a genome holding one clearly
  dominated;
- the budget at which placements are told apart: the smallest rung of ``ladder`` at which at
  least half the replicates' fronts say ``signal.resolved``. Rungs up to the budget are read off
  each replicate's own search after its first ``rung`` trainings (an approximation: a search of
  that budget would have reserved its repeats differently); rungs above it are searched at their
  own budget only with ``beyond=True`` (slow: the front's bookkeeping grows with the square of
  the trainings), else the answer is "not by BUDGET".

Intervals are 90%: bootstrap percentile intervals of a mean over replicates, Clopper-Pearson for
a share of replicates.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
from scipy import stats as distributions

from ..analysis.front import Front, genome_stats
from ..analysis.objectives import DEFAULT
from ..landscapes import load_landscape
from ..landscapes.builtins import PLANTED
from ..models.spaces import SearchSpace, load_space
from ..search.policy import DEFAULT_SAMPLER
from .truth import score, true_front

LADDER = (50, 100, 200, 400, 800)
LEVEL = 0.90  # the intervals' confidence
SHIFT = 3.0  # the planted configuration is this many σ worse


@dataclass(frozen=True)
class Replicate:
    """One replicate's metrics (seed = its index)."""

    seed: int
    front_share: float
    hv_share: float
    false_call_rate: float
    repeats: int
    resolved: dict[int, bool]  # ladder rung -> whether the front after that many trainings says resolved
    planted_called: bool | None = None  # None: the power run was not made
    planted_evaluated: int = 0


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def show(self, percent: bool = False) -> str:
        if percent:
            return f"{100 * self.value:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}]"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def mean_interval(values: Sequence[float], level: float = LEVEL, resamples: int = 2000) -> Estimate:
    """The mean and its bootstrap percentile interval (fixed resampling seed: reproducible)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    draws = np.random.default_rng(0).choice(data, size=(resamples, data.size)).mean(axis=1)
    tail = (1 - level) / 2
    return Estimate(float(data.mean()), float(np.quantile(draws, tail)), float(np.quantile(draws, 1 - tail)))


def share_interval(successes: int, trials: int, level: float = LEVEL) -> Estimate:
    """A share of replicates and its Clopper-Pearson interval."""
    if trials == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    ci = distributions.binomtest(successes, trials).proportion_ci(confidence_level=level, method="exact")
    return Estimate(successes / trials, float(ci.low), float(ci.high))


@dataclass
class PlannerAnswer:
    space: str
    budget: int
    sigma: float
    between: float
    sampler: str
    repeats: int
    replicates: list[Replicate]
    ladder: tuple[int, ...]
    resolved_share: dict[int, float] = field(default_factory=dict)  # rung -> share of replicates resolved
    front_size: int = 0

    @property
    def landscape(self) -> str:
        return landscape_text(self.sigma, self.between)

    @property
    def front_share(self) -> Estimate:
        return mean_interval([r.front_share for r in self.replicates])

    @property
    def hv_share(self) -> Estimate:
        return mean_interval([r.hv_share for r in self.replicates])

    @property
    def false_call_rate(self) -> Estimate:
        return mean_interval([r.false_call_rate for r in self.replicates])

    @property
    def power(self) -> Estimate | None:
        runs = [r for r in self.replicates if r.planted_called is not None]
        return share_interval(sum(r.planted_called for r in runs), len(runs)) if runs else None

    @property
    def resolved_at(self) -> int | None:
        """The smallest rung at which at least half the replicates are resolved (None: none tried is)."""
        return next((rung for rung in sorted(self.resolved_share) if self.resolved_share[rung] >= 0.5), None)

    def told_apart(self) -> str:
        if self.resolved_at is not None:
            return f"placements told apart at budget {self.resolved_at}"
        tried = max(self.resolved_share) if self.resolved_share else self.budget
        return f"placements not told apart by budget {tried}" + ("" if tried >= max(self.ladder) else
                                                                  " (larger budgets not simulated)")

    def summary(self) -> str:
        """One line, for the search's closing summary."""
        power = self.power
        return (f"planner ({len(self.replicates)} replicates of {self.sampler} K={self.repeats}, budget {self.budget}, "
                f"σ {self.sigma:g} pp, between-genome std {self.between:g} pp): front found "
                f"{self.front_share.show(True)}, "
                + (f"power to call a {SHIFT:g}σ-worse configuration {power.show(True)}, " if power else "")
                + f"false calls {self.false_call_rate.show(True)} per genome, {self.told_apart()}")

    def lines(self) -> list[str]:
        power = self.power
        rungs = ", ".join(f"{rung}: {100 * share:.0f}%" for rung, share in sorted(self.resolved_share.items()))
        out = [f"planner: space {self.space}, landscape {self.landscape}, {self.sampler} with K = {self.repeats}, "
               f"budget {self.budget}, {len(self.replicates)} replicates (seeds 0-{len(self.replicates) - 1}); "
               f"true front {self.front_size} genomes; intervals {LEVEL:.0%}",
               f"  share of the true front found:        {self.front_share.show(True)}",
               f"  hypervolume share (truth):            {self.hv_share.show()}",
               f"  false 'clearly dominated' per genome: {self.false_call_rate.show(True)}"]
        if power:
            out.append(f"  power to call a {SHIFT:g}σ-worse config:    {power.show(True)} of replicates")
        out.append(f"  resolved (share of replicates): {rungs}; {self.told_apart()}")
        return out


def landscape_text(sigma: float, between: float) -> str:
    return f"additive,sigma={sigma:g},between={between:g}"


def planted_file(space: SearchSpace, sigma: float, between: float, folder: Path) -> Path:
    """A landscape file: ``additive,sigma,between`` with the planted placements SHIFT σ worse."""
    plain = load_landscape(landscape_text(sigma, between), space)
    planted = set(PLANTED.get(space.backbone, ()))
    effects = dict(plain.effects)
    for p in planted:
        effects[p] = effects.get(p, 0.0) - SHIFT * sigma
    lines = ['name = "planted"', f'backbone = "{space.backbone}"', f"sigma = {sigma!r}", f"base = {plain.base!r}",
             f"num_classes = {plain.num_classes}"]
    for p, value in sorted(effects.items()):
        lines += ["", "[[effect]]", f"layer = {p.layer}", f'action = "{p.action}"', f"g = {p.groups}", f"top1 = {value!r}"]
    path = folder / "planted.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _resolved_after(result, rungs: Sequence[int]) -> dict[int, bool]:
    trials = [t for t in sorted(result.study.get_trials(deepcopy=False), key=lambda t: t.number)
              if t.state == optuna.trial.TrialState.COMPLETE]
    out = {}
    for rung in rungs:
        if rung >= len(trials):
            out[rung] = result.front.signal.resolved
        else:
            out[rung] = Front.of(genome_stats(trials[:rung], result.selection), result.selection).signal.resolved
    return out


def _job(job: tuple) -> tuple:
    """One search in a worker: ("plain" | "planted" | "rung", space path, landscape, budget, seed, ...)."""
    from .driver import simulate_search

    kind, space_path, landscape, budget, seed, sampler, repeats, repeat_share, objectives, rungs = job
    space = load_space(space_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = simulate_search(space, landscape, budget, sampler=sampler, seed=seed, repeats=repeats,
                                 repeat_share=repeat_share, objectives=objectives)
    if kind == "rung":
        return kind, seed, budget, result.front.signal.resolved
    front = _front(result.landscape, space)
    scored = score(result, front)
    if kind == "planted":
        return kind, seed, budget, (scored.planted_found or 0) > 0, scored.planted_evaluated
    return kind, seed, budget, scored, _resolved_after(result, rungs), len(front.genomes)


_FRONTS: dict = {}


def _front(landscape, space):
    key = (landscape.fingerprint, str(space.path))
    if key not in _FRONTS:
        _FRONTS[key] = true_front(landscape, space)
    return _FRONTS[key]


def _run(jobs: list[tuple], processes: int, progress: Callable[[str], None] | None) -> list[tuple]:
    results = []
    if processes <= 1:
        for i, job in enumerate(jobs):
            results.append(_job(job))
            if progress:
                progress(f"{i + 1}/{len(jobs)} searches")
        return results
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        for i, out in enumerate(pool.map(_job, jobs)):
            results.append(out)
            if progress:
                progress(f"{i + 1}/{len(jobs)} searches")
    return results


def plan(space: SearchSpace, budget: int, sigma: float, between: float, replicates: int = 20, *,
         sampler: str = DEFAULT_SAMPLER, repeats: int = 3, repeat_share: float | None = None, objectives: str = DEFAULT,
         processes: int = 2,
         ladder: Sequence[int] = LADDER, beyond: bool = False, power: bool = True,
         progress: Callable[[str], None] | None = None) -> PlannerAnswer:
    """Simulate ``replicates`` searches (seeds 0..replicates-1) of ``budget`` trainings on
    ``additive,sigma=S,between=B`` and score them (module docstring). ``power``: also run the
    planted landscape; ``beyond``: search the ladder's rungs above the budget too."""
    if budget < 1 or replicates < 1 or sigma < 0 or between < 0:
        raise ValueError("budget and replicates must be at least 1, sigma and between at least 0")
    ladder = tuple(sorted(set(ladder)))
    text = landscape_text(sigma, between)
    load_landscape(text, space)  # a bad landscape fails here, in one line
    below = [rung for rung in ladder if rung <= budget]
    args = (sampler, repeats, repeat_share, objectives)
    with tempfile.TemporaryDirectory(prefix="ulsam-planner-") as folder:
        jobs = [("plain", str(space.path), text, budget, seed, *args, tuple(below)) for seed in range(replicates)]
        if power and PLANTED.get(space.backbone):
            path = planted_file(space, sigma, between, Path(folder))
            jobs += [("planted", str(space.path), str(path), budget, seed, *args, ()) for seed in range(replicates)]
        results = _run(jobs, processes, progress)
        plain = {r[1]: r for r in results if r[0] == "plain"}
        planted = {r[1]: r for r in results if r[0] == "planted"}
        shares = {rung: float(np.mean([plain[s][4][rung] for s in plain])) for rung in below}
        if beyond and not any(share >= 0.5 for share in shares.values()):
            for rung in (r for r in ladder if r > budget):
                if progress:
                    progress(f"rung {rung}: {replicates} searches of {rung} trainings")
                rung_jobs = [("rung", str(space.path), text, rung, seed, *args, ()) for seed in range(replicates)]
                shares[rung] = float(np.mean([r[3] for r in _run(rung_jobs, processes, progress)]))
                if shares[rung] >= 0.5:
                    break
    reps = []
    for seed in range(replicates):
        _, _, _, scored, resolved, _ = plain[seed]
        called = planted[seed] if seed in planted else None
        reps.append(Replicate(seed, scored.front_share, scored.hv_share, scored.false_call_rate, scored.repeats,
                              resolved, None if called is None else bool(called[3]), 0 if called is None else called[4]))
    return PlannerAnswer(space.name, budget, sigma, between, sampler, repeats, reps, ladder, shares,
                         front_size=plain[0][5])


def stderr_progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)
