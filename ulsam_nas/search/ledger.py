"""The study as the ledger of a search: which (genome, seed) trainings exist, which driver holds
which trial, what to train next. Ray-free; ``searchers.py`` and ``runner.py`` are the Ray side
that calls it.

- **Drivers and liveness.** Several drivers may share a study (``--storage postgresql://...``).
  A RUNNING trial whose driver is gone (Ctrl-C, kill -9) is closed as FAIL "interrupted" and
  its (genome, seed) enqueued again, for any driver to train. A driver on this host is
  recognised by boot, pid and process start time, so its death is seen at once; a driver on
  another host by Optuna's heartbeat (``studies.open_storage``): its trials are closed by
  ``optuna.storages.fail_stale_trials`` once it has not beaten for ``STALE_AFTER`` seconds.
- **Trainings.** A trial is one (genome, seed) training. The k-th training of a genome uses seed
  ``base + k`` (``base`` is the study's ``--seed``); a (genome, seed) already COMPLETE is reused,
  never trained twice, and one being trained is waited for.
- **What next** (``Ledger.next_step``): repeats first, for every *contender* (a genome on the
  front by mean, see ``Front.contenders``) with fewer than K seeds; then a new genome from the
  sampler while the rest of the budget can still confirm it and the genomes in flight; then
  wait for the trainings in flight; at the very end, repeats for the undecided genomes nearest
  the front (beaten by mean, not clearly). A clearly dominated genome is settled: no repeat.
"""

from __future__ import annotations

import math
import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..analysis.front import Front, GenomeStats, dominates_by_mean
from ..analysis.objectives import Selection
from ..models.genome import Genome
from ..models.spaces import SearchSpace

INTERRUPTED = "interrupted"
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class StudyMismatch(ValueError):
    """The study exists but was made for another space, data set or fidelity."""


# -- drivers and their liveness ----------------------------------------------------------------


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _process_start(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def driver_identity() -> str:
    """host|boot id|pid|process start: unique to this driver process."""
    return f"{socket.gethostname()}|{_boot_id()}|{os.getpid()}|{_process_start(os.getpid())}"


def driver_is_gone(identity: str) -> bool:
    """Whether the driver that started a RUNNING trial is known dead: it ran on this host, since
    this boot, and its process is gone. Drivers elsewhere are judged by their heartbeat."""
    try:
        host, boot, pid, start = identity.split("|")
    except ValueError:
        return False
    return host == socket.gethostname() and boot == _boot_id() and start != "None" and _process_start(int(pid)) != start


# -- the study -----------------------------------------------------------------------------------


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    # A population of about budget / 8 (at least 8) gives several generations in a budget.
    "nsga2": lambda seed, budget, constraints: optuna.samplers.NSGAIISampler(
        population_size=max(8, min(50, budget // 8)), seed=seed, constraints_func=constraints),
    "tpe": lambda seed, budget, constraints: optuna.samplers.TPESampler(seed=seed, constraints_func=constraints),
    "gp": lambda seed, budget, constraints: optuna.samplers.GPSampler(seed=seed, constraints_func=constraints),
    "random": lambda seed, budget, constraints: optuna.samplers.RandomSampler(seed=seed),
}


def make_sampler(name: str, seed: int, budget: int, constraints: Callable | None) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    return SAMPLERS[name](seed, budget, constraints)


def open_study(storage: optuna.storages.BaseStorage, name: str, identity: dict[str, Any],
               selection: Selection) -> optuna.Study:
    """Create or load the study; refuse one made for another space, data set, fidelity, seed or
    objectives. The caller sets ``study.sampler``."""
    study = optuna.create_study(storage=storage, study_name=name, directions=selection.directions,
                                load_if_exists=True)
    identity = {**identity, "objectives": ",".join(selection.names)}
    stored = {k: study.user_attrs[k] for k in identity if k in study.user_attrs}
    if study.metric_names:  # a study from before the objectives were stored names them here
        stored.setdefault("objectives", ",".join(study.metric_names))
    for key, value in stored.items():
        if value != identity[key]:
            raise StudyMismatch(
                f"study {name!r} was run with {key} {value!r}, not {identity[key]!r}: "
                f"pass the same settings or choose another --study / --study-name"
            )
    for key, value in identity.items():
        if key not in stored:
            study.set_user_attr(key, value)
    if study.metric_names is None:
        with warnings.catch_warnings():  # experimental since Optuna 3.2, and what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(selection.names)
    return study


def is_interrupted(trial: optuna.trial.FrozenTrial) -> bool:
    """Closed because its driver stopped: by a driver (``failure`` "interrupted") or by Optuna's
    heartbeat, which fails a stale trial without a reason (every other FAIL carries one)."""
    return trial.state == TrialState.FAIL and trial.user_attrs.get("failure", INTERRUPTED) == INTERRUPTED


def counts_toward_budget(trial: optuna.trial.FrozenTrial) -> bool:
    """Finished trials count, except interrupted ones (their trainings run again)."""
    return trial.state in FINISHED_STATES and not is_interrupted(trial)


def finished_count(study: optuna.Study) -> int:
    return sum(counts_toward_budget(t) for t in study.get_trials(deepcopy=False, states=FINISHED_STATES))


def requeue_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Optuna's ``failed_trial_callback``: a training its heartbeat found stale runs again. Not
    Optuna's ``RetryHeartbeatStaleTrialCallback``: that copies every user attribute (the dead
    driver, and ``waits_for`` of a trial that only waited for another's result)."""
    if "waits_for" not in trial.user_attrs:
        study.enqueue_trial(trial.params, user_attrs=rerun_attrs(trial))


def close_interrupted(study: optuna.Study, storage: optuna.storages.BaseStorage, requeue: bool = True) -> list[int]:
    """Close RUNNING trials whose driver is gone as FAIL "interrupted" and (``requeue``) enqueue
    their (genome, seed) again; ``storage`` is the study's. Drivers on this host are checked by
    process, others by Optuna's heartbeat (when the storage has it on, ``requeue_stale``
    re-enqueues). The caller holds the study lock (``studies.StudyLock``), or is its only
    driver. Returns the closed trial numbers."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    closed = []
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in running:
        # A trial without a driver was asked for by one that died before claiming it: drivers
        # claim their trials under the study lock, which the callers of this function hold.
        if "driver" in trial.user_attrs and not driver_is_gone(trial.user_attrs["driver"]):
            continue
        # Optuna's Study has no public way to set a user attribute on a trial another process
        # asked for; the storage's public API does. Pinned by the kill -9 resume test.
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, "failure", INTERRUPTED)
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # it finished meanwhile
        if requeue:  # an enqueued trial never suggested holds its parameters as fixed_params
            study.enqueue_trial(trial.params or trial.system_attrs.get("fixed_params", {}), user_attrs=rerun_attrs(trial))
        closed.append(trial.number)
    with warnings.catch_warnings():  # "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    was_running = {t.number for t in running}
    closed += [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
               if t.number in was_running and t.number not in closed and is_interrupted(t)]
    return sorted(closed)


def rerun_attrs(trial: optuna.trial.FrozenTrial | optuna.Trial) -> dict[str, Any]:
    """What an enqueued re-run of an unfinished trial carries over: its seed and repeat link."""
    attrs = {"rerun_of": trial.number}
    for key in ("seed", "repeat_of", "paper_label"):
        if key in trial.user_attrs:
            attrs[key] = trial.user_attrs[key]
    return attrs


def pending_paper_configurations(trials: list[optuna.trial.FrozenTrial], space: SearchSpace) -> list[tuple[Genome, str]]:
    """The paper configurations the space can express that no trial of the study (``trials``,
    any state, queued ones included) holds yet. The searcher enqueues them one at a time ahead
    of everything else except re-runs of interrupted trials, under the study's lock, so each is
    enqueued once however many drivers share the study."""
    present = {t.user_attrs.get("paper_label") for t in trials} | {t.user_attrs.get("genome") for t in trials}
    return [(g, label) for g, label in space.paper_genomes()
            if space.contains(g) and label not in present and str(g) not in present]


def store_noise(study: optuna.Study, front: Front) -> None:
    """σ on the study (user attributes), for the dashboard, the report and other drivers."""
    noise = front.noise
    if noise.measured and study.user_attrs.get("seed_sigma_df") != noise.df:
        study.set_user_attr("seed_sigma", round(noise.sigma, 4))
        study.set_user_attr("seed_sigma_df", noise.df)


# -- trainings and what to train next ------------------------------------------------------------


Key = tuple[str, int]  # (genome, seed)


@dataclass(frozen=True)
class Repeat:
    """Train ``genome`` again with ``seed`` (its first training was trial ``first``)."""

    genome: str
    seed: int
    first: int


SAMPLE, WAIT = "sample", "wait"


class Ledger:
    """The study's trainings as the drivers see them: COMPLETE results by (genome, seed), the ones
    in flight in any driver, and the policy for what to train next (see the module docstring).
    ``refresh`` reads them from the study's trials; a driver calls it under the study's lock."""

    def __init__(self, base_seed: int, repeats: int, selection: Selection) -> None:
        self.base_seed, self.repeats, self.selection = base_seed, repeats, selection
        self.completed: dict[Key, tuple[int, list[float]]] = {}  # -> (trial number, values)
        self.in_flight: dict[Key, int] = {}  # -> trial number of the training
        self.first_trial: dict[str, int] = {}
        self.params: dict[str, dict] = {}
        self.labels: dict[str, str] = {}
        self._front: Front | None = None

    def refresh(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        """Take in the study's trials: new COMPLETE trainings, and the RUNNING trainings of every
        driver (a trial waiting for another's result, ``waits_for``, trains nothing)."""
        self.in_flight = {}
        for trial in sorted(trials, key=lambda t: t.number):
            if "genome" not in trial.user_attrs:
                continue
            key = (trial.user_attrs["genome"], int(trial.user_attrs.get("seed", 0)))
            if trial.state == TrialState.COMPLETE:
                self.record(*key, trial.number, trial.values, trial.params, trial.user_attrs.get("paper_label", ""))
            elif trial.state == TrialState.RUNNING and "waits_for" not in trial.user_attrs:
                self.in_flight.setdefault(key, trial.number)

    def record(self, genome: str, seed: int, number: int, values: list[float], params: dict, label: str = "") -> None:
        """A COMPLETE training of (genome, seed) in trial ``number``."""
        if (genome, seed) in self.completed:
            return
        self.completed[(genome, seed)] = (number, values)
        self.first_trial.setdefault(genome, number)
        self.params.setdefault(genome, params)
        if label:
            self.labels.setdefault(genome, label)
        self._front = None

    def stats(self) -> list[GenomeStats]:
        by_genome: dict[str, list[tuple[int, int, list[float]]]] = {}
        for (genome, seed), (number, values) in self.completed.items():
            by_genome.setdefault(genome, []).append((number, seed, values))
        stats = []
        for genome, runs in by_genome.items():
            runs.sort()
            scores = tuple(self.selection.split(v)[0] for _, _, v in runs)
            costs = self.selection.split(runs[0][2])[1]
            stats.append(GenomeStats(genome, tuple(s for _, s, _ in runs), scores, costs, runs[0][0],
                                     self.labels.get(genome, "")))
        return sorted(stats, key=lambda s: s.trial)

    @property
    def front(self) -> Front:
        if self._front is None:
            self._front = Front.of(self.stats(), self.selection)
        return self._front

    def seeds_claimed(self, genome: str) -> set[int]:
        return {s for g, s in [*self.completed, *self.in_flight] if g == genome}

    def next_seed(self, genome: str) -> int:
        """``base + k`` for the smallest k this genome has not trained and is not training."""
        claimed, k = self.seeds_claimed(genome), 0
        while self.base_seed + k in claimed:
            k += 1
        return self.base_seed + k

    def _repeat(self, genome: str) -> Repeat:
        return Repeat(genome, self.next_seed(genome), self.first_trial[genome])

    def next_step(self, remaining: int) -> Repeat | str:
        """What to train next with ``remaining`` trials of the budget not yet finished or in
        flight: a ``Repeat``, ``SAMPLE`` (ask the sampler) or ``WAIT`` (for results in flight)."""
        under = [m for m in self.front.contenders() if len(self.seeds_claimed(m.genome)) < self.repeats]
        if under:  # fewest seeds first, then the better mean
            return self._repeat(min(under, key=lambda m: (len(self.seeds_claimed(m.genome)), -m.mean)).genome)
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
        clearly dominated is settled: a repeat would not change what the front says."""
        front = self.front
        contenders = {c.genome for c in front.contenders()}
        undecided = [s for s in front.stats if s.genome not in contenders and not front.dominators(s)
                     and len(self.seeds_claimed(s.genome)) < self.repeats]

        def gap(stats: GenomeStats) -> float:
            beaters = [a for a in front.rivals[stats.genome] if dominates_by_mean(a, stats, front.selection)]
            return max((d / e if e > 0 else math.inf) for d, e in (front.margin(a, stats) for a in beaters))

        return min(undecided, key=lambda s: (gap(s), s.trial), default=None)


@dataclass
class Tally:
    """Counts for the progress line."""

    finished: int = 0
    trainings: int = 0  # finished trials that trained (not reused, not rejected by a constraint)
    repeats: int = 0  # of those, trainings of a genome's second or later seed
    failed: int = 0
    pruned: int = 0
    reused: int = 0

    @classmethod
    def of(cls, trials: list[optuna.trial.FrozenTrial]) -> Tally:
        tally = cls()
        for trial in trials:
            if not counts_toward_budget(trial):
                continue
            tally.finished += 1
            trained = "reused_from" not in trial.user_attrs and "infeasible" not in trial.user_attrs
            tally.trainings += trained
            tally.repeats += trained and "repeat_of" in trial.user_attrs
            tally.reused += "reused_from" in trial.user_attrs
            tally.failed += trial.state == TrialState.FAIL
            tally.pruned += trial.state == TrialState.PRUNED
        return tally
