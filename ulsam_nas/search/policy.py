"""The search policy: one object that decides, for every strategy, what trains next and how each
training ends in the study. Ray-free: the Ray Tune searchers (``searchers.py``), the one-shot
exploration and the simulator (``ulsam_nas.simulate``) all drive this object, so a simulation
measures the policy a real search runs, not a copy of it.

A driver reads the study (``read``, under the study's lock when drivers share it), asks for the
next training (``next_training``) and reports how it ended (``finish``). Nothing else writes the
policy's state. A trial is one (genome, seed) training.

- **What next.** First a re-run queued in the study (an interrupted training), then the paper's
  configurations not yet in the study, then the plan's next job (a fixed plan: a calibration, a
  one-shot search's confirmations), or, for a sampled search (``next_step``): repeats for every
  *contender* (a genome on the front by mean, ``Front.contenders``) with fewer than K seeds,
  fewest seeds first; then a new genome from the sampler while the rest of the budget can still
  confirm it and the genomes in flight; then wait for the trainings in flight; at the very end,
  repeats for the undecided genomes nearest the front (beaten by mean, not clearly). A clearly
  dominated genome is settled: no repeat.
- **Seeds.** The k-th training of a genome uses seed ``base + k``. An enqueued trial brings its
  seed; the sampler proposing a genome it has trained before buys another seed of it (up to K).
- **Reuse.** A (genome, seed) already COMPLETE is reused, never trained twice; one being trained
  by any driver is waited for. A genome over a ``--max-NAME`` limit is PRUNED untrained.
- **Counts.** A trial counts toward the budget once it is COMPLETE, PRUNED or FAIL, except an
  interrupted one (its training runs again): ``ledger.counts_toward_budget``, one rule for all.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from ..analysis.front import Contenders, Front, GenomeStats
from ..analysis.objectives import Context, Selection, over_limit
from ..models.genome import Genome
from ..models.spaces import SearchSpace
from ..studies import one_write
from .ledger import INTERRUPTED, counts_toward_budget, is_interrupted, rerun_attrs

Key = tuple[str, int]  # (genome, seed)
FINISHED = "finished"  # next_training: the budget is spent and nothing is in flight here
SAMPLE, WAIT = "sample", "wait"


@dataclass(frozen=True)
class Repeat:
    """Train ``genome`` again with ``seed`` (its first training was trial ``first``)."""

    genome: str
    seed: int
    first: int


@dataclass(frozen=True)
class PlannedTraining:
    """One training of a fixed plan, with the user attributes its trial carries (its fidelity)."""

    genome: str
    seed: int
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Training:
    """What a driver trains: Optuna trial ``trial``, of (``genome``, ``seed``), with the genome's
    computed objectives ``costs`` (the scheduler ranks on them, the study stores them)."""

    trial: optuna.Trial
    genome: str
    seed: int
    costs: dict[str, float]


@dataclass
class Tally:
    """The study's finished trials, counted one way for the budget, the progress line and reports."""

    finished: int = 0
    trainings: int = 0  # finished trials that trained (not reused, not rejected by a constraint)
    repeats: int = 0  # of those, trainings of a genome's second or later seed
    failed: int = 0
    pruned: int = 0
    reused: int = 0

    def count(self, trial: optuna.trial.FrozenTrial | optuna.Trial, state: TrialState) -> None:
        reused = "reused_from" in trial.user_attrs
        trained = not reused and "infeasible" not in trial.user_attrs
        self.finished += 1
        self.trainings += trained
        self.repeats += trained and "repeat_of" in trial.user_attrs
        self.reused += reused
        self.failed += state == TrialState.FAIL
        self.pruned += state == TrialState.PRUNED


def expressible_paper_configurations(space: SearchSpace) -> list[tuple[Genome, str]]:
    """The paper configurations the space can express. The policy enqueues those no trial of the
    study holds yet (any state, queued ones included) one at a time, ahead of everything else
    except re-runs of interrupted trials, under the study's lock, so each is enqueued once however
    many drivers share the study."""
    return [(g, label) for g, label in space.paper_genomes() if space.contains(g)]


# The default by measurement (benchmarks/search_quality.py, README "What a search is worth"): at
# budget 200 on the landscapes with a signal, TPE with K = 3 reached the highest hypervolume share of
# the truth and beat random search (one-sided Mann-Whitney, 10 seeds a cell), with under 1% false
# "clearly dominated" calls per genome on the null; NSGA-II with K = 3 did not beat random on additive.
# Multivariate TPE was not told apart from Optuna's default (univariate) TPE in any of the 12 cells
# after correction, its median higher in all 12, at a seventh of the driver's time: it is "tpe".
DEFAULT_SAMPLER = "tpe"
GP_MAX_BUDGET = 200
GP_LIMIT = ("Optuna's GP sampler refits its Gaussian process to every finished trial for each suggestion, a cost "
            "cubic in the trials; one 200-training search ran over 6 minutes on a 2-core machine without finishing")
SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    # A population of about budget / 8 (at least 8) gives several generations in a budget.
    "nsga2": lambda seed, budget, constraints: optuna.samplers.NSGAIISampler(
        population_size=max(8, min(50, budget // 8)), seed=seed, constraints_func=constraints),
    "tpe": lambda seed, budget, constraints: multivariate_tpe(seed, constraints),
    "gp": lambda seed, budget, constraints: optuna.samplers.GPSampler(seed=seed, constraints_func=constraints),
    "random": lambda seed, budget, constraints: optuna.samplers.RandomSampler(seed=seed),
}


def multivariate_tpe(seed: int, constraints: Callable | None) -> optuna.samplers.TPESampler:
    """Optuna's TPE sampling every parameter of a trial in one joint draw (``multivariate``).
    Its default, one draw per parameter with the constant liar on, reads every running trial back
    from the storage for each of the space's parameters (38 in mv2): three quarters of a driver's
    time with 8 trainings at once (README "Scaling out"). One draw reads them once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RememberingTPESampler(seed=seed, constraints_func=constraints, multivariate=True)


TPE_HISTORY = 1000
"""Finished trials the default TPE models: the most recent ones. Up to this many it is Optuna's TPE
number for number; every search-quality cell was measured below it (budgets 50 to 500)."""


class RememberingTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE, which converts a finished trial's parameters to its internal representation
    once instead of at every suggestion, and models the study's most recent ``history`` finished
    trials.

    Stock TPE converts every trial's parameters, one Python call per parameter, twice per
    suggestion (its Parzen estimators below and above), a cost that grows with the study: at
    2,000 trials a suggestion took 147 ms of CPU stock and 106 ms with this (README "Scaling
    out"). A finished trial's parameters never change, so its converted row is kept; the
    suggestions are those of stock TPE, number for number (tests/test_policy.py). This overrides
    TPESampler's ``_get_internal_repr`` and ``_sample``, which Optuna documents nowhere: the tests
    fail if a release changes them.

    Every suggestion of TPE splits, ranks and weighs every finished trial: 19 ms of CPU at 500
    trials, 137 ms at 5,000 (mv2, three objectives), so a driver's cost per training grew with its
    study without bound. With ``history`` (default ``TPE_HISTORY``) it is Optuna's TPE on the
    study's last ``history`` finished trials, a cost that stops growing there; below it nothing
    changes. The quality of a search past ``history`` trainings has not been measured."""

    def __init__(self, *args: Any, history: int = TPE_HISTORY, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rows: dict[tuple[str, int, tuple[str, ...]], tuple | None] = {}
        self.history = history

    def _sample(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict) -> dict[str, Any]:
        return super()._sample(RecentTrials(study, self.history), trial, search_space)

    def _get_internal_repr(self, trials: list[optuna.trial.FrozenTrial], search_space: dict,
                           study: optuna.Study) -> dict[str, np.ndarray]:
        names = tuple(search_space)
        rows = []
        for trial in trials:
            key = (study.study_name, trial.number, names)
            row = self._rows.get(key, MISSING)
            if row is MISSING:
                params = self._get_params(trial, study)
                row = (tuple(distribution.to_internal_repr(params[name]) for name, distribution in search_space.items())
                       if search_space.keys() <= params.keys() else None)
                if trial.state.is_finished():
                    self._rows[key] = row
            if row is not None:
                rows.append(row)
        columns = zip(*rows) if rows else ((),) * len(names)
        return {name: np.asarray(column) for name, column in zip(names, columns)}


MISSING = object()


class RecentTrials:
    """``study`` as TPE's model reads it: its trials of the states asked, the last ``history`` of
    them by number (TPE reads them sorted by number); everything else is the study's."""

    def __init__(self, study: optuna.Study, history: int) -> None:
        self._study, self._history = study, history

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[optuna.trial.FrozenTrial]:
        trials = self._study._get_trials(*args, **kwargs)
        return trials[-self._history:] if len(trials) > self._history else trials


def make_sampler(name: str, seed: int, budget: int, constraints: Callable | None) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    return SAMPLERS[name](seed, budget, constraints)


class SearchPolicy:
    """What trains next and how it ends, for one driver of ``study`` (module docstring).

    ``repeat_share``: the largest share of the budget repeats may take (None: no cap).
    ``sampler``: the name of the study's sampler (``SAMPLERS``) the policy sets, seeded by
    ``sampler_seed`` (default ``base_seed``); None keeps the study's. ``plan``: a fixed list of
    trainings instead of the sampler (no repeats, reuse or paper
    queue: a calibration trains one (genome, seed) at several fidelities). ``selection`` None:
    the trial's value is the training metric alone (a calibration study), its costs
    ``costs_of(genome)`` stored as user attributes only."""

    def __init__(self, study: optuna.Study, space: SearchSpace, selection: Selection | None, context: Context | None,
                 budget: int, *, base_seed: int = 0, repeats: int = 1, limits: dict[str, float] | None = None,
                 paper_seeds: bool = True, trial_attrs: dict[str, Any] | None = None, driver: str = "",
                 plan: list[PlannedTraining] | None = None,
                 costs_of: Callable[[Genome], dict[str, float]] | None = None,
                 sampler: str | None = None, sampler_seed: int | None = None,
                 repeat_share: float | None = None) -> None:
        self.study, self.space, self.selection, self.context = study, space, selection, context
        if sampler is not None:  # the policy's source of new genomes (SAMPLERS), seeded by the driver
            study.sampler = make_sampler(sampler, base_seed if sampler_seed is None else sampler_seed, budget, None)
        self.budget, self.base_seed, self.repeats = budget, base_seed, repeats
        # At most this share of the budget goes to repeats (None: as many as the contenders need).
        self.repeat_allowance = None if repeat_share is None else int(repeat_share * budget)
        self.limits = dict(limits or {})  # objective name -> the largest value allowed (--max-NAME)
        self.paper_seeds, self.trial_attrs, self.driver = paper_seeds, dict(trial_attrs or {}), driver
        self.plan = None if plan is None else list(plan)
        self.costs_of = costs_of or (lambda genome: self.selection.costs(genome, self.context, self.limits))
        self.labels = space.paper_labels()
        self.paper_candidates = expressible_paper_configurations(space) if paper_seeds and plan is None else []
        # The study's trainings: COMPLETE ones by (genome, seed), and those in flight in any driver.
        self.completed: dict[Key, tuple[int, list[float]]] = {}  # -> (trial number, values)
        self.in_flight: dict[Key, int] = {}  # -> trial number of the training
        self.first_trial: dict[str, int] = {}
        self.genome_labels: dict[str, str] = {}
        # The same COMPLETE trainings by genome, kept as they arrive, so that what each decision
        # reads (a genome's seeds, the front by mean, σ) costs O(genomes) at most, not O(trials).
        self.runs: dict[str, list[tuple[int, int, list[float]]]] = {}  # genome -> (trial number, seed, values)
        self.completed_repeats = 0  # COMPLETE trainings of a genome's second or later seed
        self.within: dict[str, float] = {}  # genome -> (n - 1) x its seed variance, for σ
        self.contenders = Contenders(selection) if selection is not None else None
        self.stored_sigma_df = 0  # the degrees of freedom of the σ this driver last stored on the study
        self._front: Front | None = None
        # What ``read`` has taken in: finished trials are read once; the rest every time.
        self.finished_numbers: set[int] = set()
        self.counted: set[int] = set()  # finished trials in the tally
        self.present: set[str] = set()  # paper labels and genomes any trial holds
        # This driver's trials: its trainings, its copies waiting for a (genome, seed) in flight,
        # and the trainings of other drivers those copies wait for.
        self.training: dict[Key, optuna.Trial] = {}
        self.waiting: dict[Key, list[optuna.Trial]] = {}
        self.awaited: dict[Key, int] = {}
        self.tally = Tally()
        self.running_in_study = 0  # RUNNING trials of every driver
        self.queued = 0  # WAITING trials in the study's queue (re-runs, or what this driver enqueued)
        self.paper: list[tuple[Genome, str]] = []

    # -- the study as this driver sees it ---------------------------------------------------------

    def read(self, trials: list[optuna.trial.FrozenTrial] | None = None) -> None:
        """Take in the study's trials (read now when not given): COMPLETE trainings, the RUNNING
        trainings of every driver (a trial waiting for another's result trains nothing), the
        counts, the queue and the paper configurations still to enqueue. A finished trial is
        taken in once; only the trials still open are looked at again (a few per driver)."""
        trials = self.study.get_trials(deepcopy=False) if trials is None else trials
        self.in_flight, self.running_in_study, self.queued = {}, 0, 0
        newly_finished = []
        for trial in trials:
            if trial.number in self.finished_numbers:
                continue
            self.present.update(trial.user_attrs[name] for name in ("paper_label", "genome") if name in trial.user_attrs)
            if trial.state.is_finished():
                newly_finished.append(trial)
            elif trial.state == TrialState.WAITING:
                self.queued += 1
            elif trial.state == TrialState.RUNNING:
                self.running_in_study += 1
                if "genome" in trial.user_attrs and "waits_for" not in trial.user_attrs:
                    self.in_flight.setdefault((trial.user_attrs["genome"], int(trial.user_attrs.get("seed", 0))),
                                              trial.number)
        for trial in sorted(newly_finished, key=lambda t: t.number):  # the first COMPLETE trial of a key is its record
            self.finished_numbers.add(trial.number)
            if trial.state == TrialState.COMPLETE and "genome" in trial.user_attrs:
                self._record((trial.user_attrs["genome"], int(trial.user_attrs.get("seed", 0))), trial.number,
                             trial.values, trial.user_attrs.get("paper_label", ""))
            if trial.number not in self.counted and counts_toward_budget(trial):
                self._count(trial, trial.state)
        self.paper = [(g, label) for g, label in self.paper_candidates
                      if label not in self.present and str(g) not in self.present]

    def _count(self, trial: optuna.trial.FrozenTrial | optuna.Trial, state: TrialState) -> None:
        self.counted.add(trial.number)
        self.tally.count(trial, state)

    def _record(self, key: Key, number: int, values: list[float], label: str = "") -> None:
        if key in self.completed:
            return
        genome, seed = key
        self.completed[key] = (number, values)
        self.first_trial.setdefault(genome, number)
        if label:
            self.genome_labels.setdefault(genome, label)
        runs = self.runs.setdefault(genome, [])
        runs.append((number, seed, values))
        runs.sort(key=lambda run: run[0])
        self.completed_repeats += seed != self.base_seed
        self._front = None
        if self.selection is not None:
            stats = self.genome_stats(genome)
            self.contenders.update(stats)
            if stats.n >= 2:
                self.within[genome] = (stats.n - 1) * stats.std ** 2

    def genome_stats(self, genome: str) -> GenomeStats:
        """One genome over its COMPLETE seeds, in trial order (as ``analysis.front.genome_stats``)."""
        runs = self.runs[genome]
        scores = tuple(self.selection.split(v)[0] for _, _, v in runs)
        return GenomeStats(genome, tuple(s for _, s, _ in runs), scores, self.selection.split(runs[0][2])[1], runs[0][0],
                           self.genome_labels.get(genome, ""))

    def stats(self) -> list[GenomeStats]:
        return sorted((self.genome_stats(genome) for genome in self.runs), key=lambda s: s.trial)

    @property
    def front(self) -> Front:
        if self._front is None:
            self._front = Front.of(self.stats(), self.selection)
        return self._front

    @property
    def in_flight_here(self) -> int:
        return len(self.training) + sum(len(w) for w in self.waiting.values())

    def held(self) -> list[optuna.Trial]:
        """The RUNNING trials this driver holds: its trainings and its waiting copies."""
        return [*self.training.values(), *(t for ts in self.waiting.values() for t in ts)]

    # -- what next --------------------------------------------------------------------------------

    def seeds_claimed(self, genome: str) -> set[int]:
        return {s for _, s, _ in self.runs.get(genome, ())} | {s for g, s in self.in_flight if g == genome}

    def next_seed(self, genome: str) -> int:
        """``base + k`` for the smallest k this genome has not trained and is not training."""
        claimed, k = self.seeds_claimed(genome), 0
        while self.base_seed + k in claimed:
            k += 1
        return self.base_seed + k

    def _may_repeat(self) -> bool:
        """Whether the repeat allowance (``repeat_share``) leaves room for one more repeat: trainings
        of a genome's second or later seed, finished or in flight."""
        if self.repeat_allowance is None:
            return True
        in_flight = sum(1 for _, seed in self.in_flight if seed != self.base_seed)
        return self.completed_repeats + in_flight < self.repeat_allowance

    def _repeat(self, genome: str) -> Repeat:
        return Repeat(genome, self.next_seed(genome), self.first_trial[genome])

    def next_step(self, remaining: int) -> Repeat | str:
        """What a sampled search trains next with ``remaining`` trials of the budget not yet
        finished or in flight: a ``Repeat``, ``SAMPLE`` (ask the sampler) or ``WAIT``."""
        if self.repeats == 1 or not self._may_repeat():
            return SAMPLE  # nothing (more) to repeat, and no front to build for it
        under = [g for g in self.contenders.genomes_on_front() if len(self.seeds_claimed(g)) < self.repeats]
        if under:  # fewest seeds first, then the better mean
            return self._repeat(min(under, key=lambda g: (len(self.seeds_claimed(g)), -self.contenders.mean(g))))
        # A new genome may need K - 1 repeats, as may each first training in flight; and a
        # repeat that moves a mean can let one more genome onto the front.
        first_in_flight = sum(1 for genome, _ in self.in_flight if genome not in self.first_trial)
        if remaining >= self.repeats + (self.repeats - 1) * (first_in_flight + 1):
            return SAMPLE
        if self.in_flight:
            return WAIT
        near = self._nearest_undecided()
        return self._repeat(near.genome) if near is not None else SAMPLE

    def _nearest_undecided(self) -> GenomeStats | None:
        """The genome beaten by mean but not clearly (its verdict a seed could change), with fewer
        than K seeds, that is nearest the front by mean in standard errors. A genome already
        clearly dominated is settled: a repeat would not change what the front says. Its gap is
        the largest, over the genomes that beat it by mean, of their lead over the bound each lead
        must pass (``Front.margin``); all genomes at once on the front's matrices."""
        front = self.front
        stats = front.stats
        if not stats:
            return None
        claimable = np.array([len(self.seeds_claimed(s.genome)) < self.repeats for s in stats])
        undecided = np.flatnonzero(front.by_mean.any(axis=0) & ~front.clearly.any(axis=0) & claimable)
        if not len(undecided):
            return None
        means = np.array([s.mean for s in stats])
        inverse_n = np.array([1 / s.n for s in stats])
        lead = means[:, None] - means[None, undecided]
        if front.noise.measured:
            scale = np.array([front.critical[stats[j].genome] for j in undecided]) * front.noise.sigma
            bound = scale[None, :] * np.sqrt(inverse_n[:, None] + inverse_n[None, undecided])
        else:
            bound = np.full(lead.shape, math.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            in_bounds = np.where(bound > 0, lead / bound, math.inf)
        gap = np.where(front.by_mean[:, undecided], in_bounds, -math.inf).max(axis=0)
        return stats[undecided[int(np.argmin(gap))]]  # stats are in trial order: ties go to the first trial

    def _enqueue(self, genome: Genome, attrs: dict[str, Any]) -> None:
        self.study.enqueue_trial(self.space.params(genome), user_attrs=attrs)
        self.queued += 1

    def _enqueue_next(self) -> bool:
        """Enqueue what the study trains next, unless its queue already holds a trial (a re-run).
        False: nothing to start now (wait for the trainings in flight, or the plan is done)."""
        if self.queued:
            return True
        if self.plan is not None:
            if not self.plan:
                return False
            job = self.plan.pop(0)
            genome = Genome.from_string(job.genome)
            label = {"paper_label": self.labels[genome]} if genome in self.labels else {}
            self._enqueue(genome, {**job.attrs, **label, "seed": job.seed})
            return True
        if self.paper:
            genome, label = self.paper.pop(0)
            self._enqueue(genome, {"paper_label": label})
            return True
        step = self.next_step(self.budget - self.tally.finished - self.running_in_study)
        if step == WAIT:
            return False
        if isinstance(step, Repeat):
            self._enqueue(Genome.from_string(step.genome), {"seed": step.seed, "repeat_of": step.first})
        return True

    def _seed_of(self, trial: optuna.Trial, genome: str, queued_attrs: dict[str, Any]) -> int:
        if "seed" in queued_attrs:
            return int(queued_attrs["seed"])
        if genome in self.first_trial and len(self.seeds_claimed(genome)) < self.repeats and self._may_repeat():
            trial.set_user_attr("repeat_of", self.first_trial[genome])
            return self.next_seed(genome)
        return self.base_seed

    def next_training(self) -> Training | str | None:
        """The next (genome, seed) for this driver to train; ``FINISHED`` when the budget is spent
        and nothing is in flight here; None: nothing to start now. Asks the study answers itself
        (a known result, a genome over a limit, a training in flight) are closed or held here.
        Call ``read`` first (under the study's lock when drivers share it)."""
        for _ in range(100):  # asks answered from the study itself don't need a training
            if self.tally.finished >= self.budget or (self.plan is not None and not self.plan and not self.queued):
                return FINISHED if not self.in_flight_here else None
            if self.tally.finished + self.running_in_study >= self.budget:
                return None  # the rest of the budget is in flight, here or in another driver
            if not self._enqueue_next():
                return None
            trial = self.study.ask()
            self.queued = max(0, self.queued - 1)
            self.running_in_study += 1
            queued_attrs = trial.user_attrs  # what an enqueued trial came with
            with one_write(self.study):
                genome = self.space.suggest(trial)
                key = (str(genome), self._seed_of(trial, str(genome), queued_attrs))
                costs = self.costs_of(genome)
                labelled = genome in self.labels and "paper_label" not in queued_attrs
                label = {"paper_label": self.labels[genome]} if labelled else {}
                for name, value in {**self.trial_attrs, "genome": key[0], "seed": key[1], **costs,
                                    "driver": self.driver, **label}.items():
                    trial.set_user_attr(name, value)
            infeasible = over_limit(costs, self.limits) if self.plan is None else None
            if infeasible:
                self._close(trial, TrialState.PRUNED, None, infeasible=infeasible)
            elif self.plan is None and key in self.completed:
                number, values = self.completed[key]
                trial.set_user_attr("reused_from", number)
                self._close(trial, TrialState.COMPLETE, values)
            elif self.plan is None and key in self.in_flight:
                trial.set_user_attr("waits_for", self.in_flight[key])
                self.waiting.setdefault(key, []).append(trial)
                if key not in self.training:
                    self.awaited[key] = self.in_flight[key]
            else:
                self.training[key] = trial
                self.in_flight[key] = trial.number
                return Training(trial, key[0], key[1], {o.name: costs[o.name] for o in self.selection.computed}
                                if self.selection else costs)
        return None

    # -- how trainings end ------------------------------------------------------------------------

    def values_of(self, trial: optuna.Trial, metric: float) -> list[float]:
        """The trial's objective values from its training metric and its stored costs."""
        if self.selection is None:
            return [metric]
        return self.selection.values(metric, [float(trial.user_attrs[o.name]) for o in self.selection.computed])

    def finish(self, trial: optuna.Trial, state: TrialState, metric: float | None = None,
               failure: str | None = None) -> list[float] | None:
        """This driver's training ``trial`` ended in ``state`` (its metric when COMPLETE): record
        it, close it and every copy waiting for it. Returns its values (None unless COMPLETE)."""
        key = (trial.user_attrs["genome"], trial.user_attrs["seed"])
        self.training.pop(key, None)
        self.in_flight.pop(key, None)
        values = self.values_of(trial, metric) if state == TrialState.COMPLETE else None
        if values is not None and self.plan is None:
            self._record(key, trial.number, values, trial.user_attrs.get("paper_label", ""))
        self._close(trial, state, values, failure)
        self._release_waiters(key, trial.number, state, values, failure)
        if values is not None and self.plan is None and self.selection is not None:
            self._store_noise()
        return values

    def _store_noise(self) -> None:
        """σ on the study (user attributes), for the dashboard, the report and other drivers."""
        df = sum(len(self.runs[genome]) - 1 for genome in self.within)
        if self.repeats > 1 and df and df != self.stored_sigma_df:
            self.study.set_user_attr("seed_sigma", round(math.sqrt(sum(self.within.values()) / df), 4))
            self.study.set_user_attr("seed_sigma_df", df)
            self.stored_sigma_df = df

    def _close(self, trial: optuna.Trial, state: TrialState, values: list[float] | None,
               failure: str | None = None, infeasible: str | None = None) -> None:
        try:
            if failure:
                trial.set_user_attr("failure", failure)
            if infeasible:
                trial.set_user_attr("infeasible", infeasible)
            self.study.tell(trial, values if state == TrialState.COMPLETE else None, state=state)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            # Another driver took this driver for dead (its heartbeat went stale) and closed
            # the trial; the re-run it enqueued trains the (genome, seed) again.
            print(f"\ntrial {trial.number} was closed by another driver meanwhile; its result is dropped",
                  file=sys.stderr)
            return
        self.running_in_study -= 1
        if failure != INTERRUPTED:
            self._count(trial, state)

    def _release_waiters(self, key: Key, number: int, state: TrialState, values: list[float] | None,
                         failure: str | None) -> None:
        """The trials waiting for (genome, seed) take the result of its training, trial ``number``."""
        for waiting in self.waiting.pop(key, []):
            if failure == INTERRUPTED:  # the training runs again; the copy waiting for it is moot
                self._close(waiting, TrialState.FAIL, None, INTERRUPTED)
            else:
                waiting.set_user_attr("reused_from", number)
                self._close(waiting, state, values, failure)

    def resolve_awaited(self, finished_trial: Callable[[int], optuna.trial.FrozenTrial | None]) -> bool:
        """Close the copies waiting for another driver's trainings that have finished;
        ``finished_trial(number)`` is that trial once finished, else None. True if any closed."""
        resolved = False
        for key, number in list(self.awaited.items()):
            trial = finished_trial(number)
            if trial is None:
                continue
            del self.awaited[key]
            failure = INTERRUPTED if is_interrupted(trial) else trial.user_attrs.get("failure")
            self._release_waiters(key, number, trial.state, trial.values, failure)
            resolved = True
        return resolved

    def close_all(self, reason: str, requeue: bool = True) -> int:
        """Close every trial this driver holds (the search was stopped); with ``requeue`` its
        trainings are enqueued again (a plan instead trains what it lacks when run again)."""
        held = self.held()
        for trial in held:
            self._close(trial, TrialState.FAIL, None, reason)
        for trial in self.training.values() if requeue else ():  # copies waiting for a result are not re-run
            self.study.enqueue_trial(trial.params, user_attrs=rerun_attrs(trial))
        self.training.clear()
        self.waiting.clear()
        self.awaited.clear()
        self.in_flight.clear()
        return len(held)
