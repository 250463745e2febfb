"""Ray Tune's ``Searcher`` interface over Optuna's ask/tell: which trial Ray Tune trains next, and
the state each one ends in, in the study.

Why our own ``Searcher`` instead of Ray's ``OptunaSearch``: the states that reach the study must
tell the truth, and OptunaSearch decides them in ways we cannot change through its public API
(an ASHA-stopped trial becomes COMPLETE with partial metrics, a NaN metric leaves the trial
RUNNING, an interrupted search leaves RUNNING trials behind). With ask/tell on one side and
Tune's documented ``Searcher`` interface on the other, every state is ours to set:

- COMPLETE only when the trial trained every epoch of its fidelity; values the study's
  objectives (``objectives.Selection``): the training metric (top-1 on the validation split)
  and the costs computed in the driver before the trial started (MACs, params, latency, ...).
- PRUNED when a scheduler stopped it early (its last top-1, the rung and the front rank it was
  stopped at kept as user attributes), or when a ``--max-NAME`` limit rejected the genome
  before training (``infeasible``).
- FAIL when training raised or the metric is not finite, with the reason as ``failure``.

``StudySearcher`` serves a search from the study's bookkeeping (drivers, interrupted trials,
paper configurations, seeds, repeats, what to train next: ``ledger.py``); ``PlanSearcher`` a
fixed list of (fidelity, genome, seed) trainings (a calibration, a one-shot search's
confirmations).
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from ..analysis.objectives import Context, Selection, over_limit
from ..cost import count_cost
from ..models.genome import Genome
from ..models.spaces import SearchSpace
from ..studies import HEARTBEAT_SECONDS, StudyLock
from .ledger import (
    INTERRUPTED,
    WAIT,
    Key,
    Ledger,
    Repeat,
    Tally,
    close_interrupted,
    driver_identity,
    is_interrupted,
    pending_paper_configurations,
    rerun_attrs,
    store_noise,
)
from .schedulers import MultiObjectiveSuccessiveHalving
from .trainable import trial_outcome

# Drivers record Optuna's heartbeat themselves (``beat``); Optuna expects Study.optimize to.
warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize", UserWarning)
POLL_SECONDS = 1.0  # how often a driver with nothing to start looks at the study again


class OptunaTrialsSearcher(Searcher):
    """Ray Tune's Searcher interface over Optuna trials: which Optuna trial each Tune trial
    trains (``live``), each one's last result (Tune may end a trial without a final one), and
    the heartbeat of the trials this driver holds (``held``), which tells other drivers it lives."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
        super().__init__(metric=None, mode=None)
        self.study, self.storage = study, storage
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.live: dict[str, optuna.Trial] = {}  # Tune trial id -> Optuna trial being trained
        self.last_result: dict[str, dict] = {}
        self.last_heartbeat = 0.0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.last_result[trial_id] = result

    def finished(self, trial_id: str, result: dict | None) -> tuple[optuna.Trial | None, dict | None]:
        """The Optuna trial a Tune trial trained (None if not ours) and its final result."""
        last = self.last_result.pop(trial_id, None)
        return self.live.pop(trial_id, None), result or last

    def held(self) -> list[optuna.Trial]:
        return list(self.live.values())

    def heartbeat(self) -> None:
        """Record Optuna's heartbeat for every trial this driver holds (every HEARTBEAT_SECONDS)."""
        now = time.time()
        if now - self.last_heartbeat < HEARTBEAT_SECONDS:
            return
        self.last_heartbeat = now
        for trial in self.held():
            self.beat(trial)

    def beat(self, trial: optuna.Trial) -> None:
        if self.storage.get_heartbeat_interval() is not None:
            self.storage.record_heartbeat(self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number))


class StudySearcher(OptunaTrialsSearcher):
    """Ray Tune's Searcher interface over Optuna's ask/tell and the study's ``Ledger``.

    Several drivers may share the study. Each plans its next trial under the study's lock
    (``studies.StudyLock``) from what the storage holds, so the study, not a driver, decides:
    a (genome, seed) that any driver trains is waited for, never trained twice; each paper
    configuration is enqueued once; and no trial is asked for once the study's finished plus
    running trials reach ``budget``, so the drivers together finish exactly ``budget``.
    """

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage, lock: StudyLock,
                 space: SearchSpace, budget: int, context: Context, ledger: Ledger, trial_attrs: dict[str, Any],
                 limits: dict[str, float] | None = None, paper_seeds: bool = True,
                 scheduler: MultiObjectiveSuccessiveHalving | None = None) -> None:
        super().__init__(study, storage)
        self.lock, self.scheduler = lock, scheduler  # scheduler: where an early-stopped trial's rung is read
        self.space, self.budget, self.context, self.ledger = space, budget, context, ledger
        self.selection: Selection = ledger.selection
        self.limits = dict(limits or {})  # objective name -> the largest value allowed (--max-NAME)
        self.trial_attrs, self.paper_seeds = trial_attrs, paper_seeds
        self.driver = driver_identity()
        self.labels = space.paper_labels()
        self.paper: list[tuple[Genome, str]] = []
        self.training: dict[Key, str] = {}  # (genome, seed) this driver trains -> Tune trial id
        self.waiting: dict[Key, list[optuna.Trial]] = {}  # (genome, seed) -> trials waiting for its result
        self.awaited: dict[Key, int] = {}  # (genome, seed) another driver trains -> its trial number
        self.tally = Tally()
        self.running_in_study = 0  # RUNNING trials of every driver
        self.queued = False  # the study's queue holds a WAITING trial (a re-run)
        self.quiet_until = self.last_liveness = self.last_poll = 0.0

    @property
    def in_flight(self) -> int:
        return len(self.live) + sum(len(w) for w in self.waiting.values())

    @property
    def running(self) -> int:
        return len(self.live)

    def held(self) -> list[optuna.Trial]:
        return [*self.live.values(), *(t for ts in self.waiting.values() for t in ts)]

    def read_study(self) -> None:
        """Bring this driver's view up to date from the storage (under the lock): close the
        trials of stopped drivers, then count, and refresh the ledger and paper queue."""
        now = time.time()
        if now - self.last_liveness >= HEARTBEAT_SECONDS:
            self.last_liveness = now
            closed = close_interrupted(self.study, self.storage)
            if closed:
                print(f"\nclosed {len(closed)} trial(s) of a stopped driver ({', '.join(map(str, closed))}) as FAIL "
                      f"'interrupted'; their trainings run again", file=sys.stderr)
        trials = self.study.get_trials(deepcopy=False)
        self.ledger.refresh(trials)
        self.tally = Tally.of(trials)
        self.running_in_study = sum(t.state == TrialState.RUNNING for t in trials)
        self.queued = any(t.state == TrialState.WAITING for t in trials)
        self.paper = pending_paper_configurations(trials, self.space) if self.paper_seeds else []

    def _plan_next(self) -> bool:
        """Enqueue what the study should train next, unless something already waits in its
        queue (a re-run of an interrupted trial). False: wait for the trainings in flight."""
        if self.queued:
            return True
        if self.paper:
            genome, label = self.paper.pop(0)
            self.study.enqueue_trial(self.space.params(genome), user_attrs={"paper_label": label})
            return True
        step = self.ledger.next_step(self.budget - self.tally.finished - self.running_in_study)
        if step == WAIT:
            return False
        if isinstance(step, Repeat):
            self.study.enqueue_trial(self.ledger.params[step.genome],
                                     user_attrs={"seed": step.seed, "repeat_of": step.first})
        return True

    def suggest(self, trial_id: str):
        # With no trial of its own to run (only trials waiting for another driver's trainings),
        # Tune blocks for the next trial for up to 600 s without calling back (on_step_end): the
        # waiting trials are resolved, and this driver's heartbeat recorded, from here as well.
        self.heartbeat()
        self.poll_awaited()
        if time.time() < self.quiet_until:  # Tune asks in a tight loop while nothing can start
            return None
        with self.lock:
            config = self._suggest(trial_id)
        if config is None:
            self.quiet_until = time.time() + POLL_SECONDS
        return config

    def _suggest(self, trial_id: str):
        self.read_study()
        for _ in range(100):  # asks answered from the study itself don't need a Tune trial
            if self.tally.finished >= self.budget:
                return Searcher.FINISHED if not self.in_flight else None
            if self.tally.finished + self.running_in_study >= self.budget:
                return None  # the rest of the budget is in flight, here or in another driver
            if not self._plan_next():
                return None
            trial = self.study.ask()
            self.queued = False
            self.running_in_study += 1
            genome = self.space.suggest(trial)
            key = (str(genome), self._seed_of(trial, str(genome)))
            costs = self.selection.costs(genome, self.context, self.limits)
            for name, value in {**self.trial_attrs, "genome": key[0], "seed": key[1], **costs,
                                "driver": self.driver}.items():
                trial.set_user_attr(name, value)
            if genome in self.labels and "paper_label" not in trial.user_attrs:
                trial.set_user_attr("paper_label", self.labels[genome])
            infeasible = over_limit(costs, self.limits)
            if infeasible:
                self._finish(trial, TrialState.PRUNED, None, infeasible=infeasible)
            elif key in self.ledger.completed:
                number, values = self.ledger.completed[key]
                trial.set_user_attr("reused_from", number)
                self._finish(trial, TrialState.COMPLETE, values)
            elif key in self.ledger.in_flight:
                trial.set_user_attr("waits_for", self.ledger.in_flight[key])
                self.waiting.setdefault(key, []).append(trial)
                if key not in self.training:
                    self.awaited[key] = self.ledger.in_flight[key]
                self.beat(trial)
            else:
                self.live[trial_id] = trial
                self.training[key] = trial_id
                self.ledger.in_flight[key] = trial.number
                self.beat(trial)
                return {"genome": key[0], "seed": key[1], "optuna_trial": trial.number,
                        "costs": {o.name: costs[o.name] for o in self.selection.computed}}
        return None

    def _seed_of(self, trial: optuna.Trial, genome: str) -> int:
        """An enqueued trial brings its seed. The sampler proposing a genome it has trained
        before buys another seed of it (up to K) rather than a copy of a known result."""
        if "seed" in trial.user_attrs:
            return int(trial.user_attrs["seed"])
        ledger = self.ledger
        if genome in ledger.first_trial and len(ledger.seeds_claimed(genome)) < ledger.repeats:
            trial.set_user_attr("repeat_of", ledger.first_trial[genome])
            return ledger.next_seed(genome)
        return ledger.base_seed

    def _finish(self, trial: optuna.Trial, state: TrialState, values: list[float] | None,
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
        if failure == INTERRUPTED:
            return
        self.tally.finished += 1
        reused = "reused_from" in trial.user_attrs
        if not reused and not infeasible:
            self.tally.trainings += 1
            self.tally.repeats += "repeat_of" in trial.user_attrs
        self.tally.reused += reused
        self.tally.failed += state == TrialState.FAIL
        self.tally.pruned += state == TrialState.PRUNED

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial, result = self.finished(trial_id, result)
        if trial is None:
            return
        self.quiet_until = 0.0
        key = (trial.user_attrs["genome"], trial.user_attrs["seed"])
        self.training.pop(key, None)
        self.ledger.in_flight.pop(key, None)
        metric = self.selection.trained.metric
        state, failure = trial_outcome(result, error, metric)
        values = None
        if result is not None:
            for name in ("seconds", "images_per_second", "epoch"):
                if name in result:
                    trial.set_user_attr("epochs" if name == "epoch" else name, result[name])
            if state == TrialState.PRUNED:
                trial.set_user_attr(f"{metric}_when_stopped", result.get(metric))
                for name, value in (self.scheduler.stopped.get(trial_id, {}) if self.scheduler else {}).items():
                    trial.set_user_attr(name, value)
        if state == TrialState.COMPLETE:
            values = self.selection.values(float(result[metric]),
                                           [float(trial.user_attrs[o.name]) for o in self.selection.computed])
            self.ledger.record(*key, trial.number, values, trial.params, trial.user_attrs.get("paper_label", ""))
        self._finish(trial, state, values, failure)
        self._release_waiters(key, trial.number, state, values, failure)
        if state == TrialState.COMPLETE:
            store_noise(self.study, self.ledger.front)

    def _release_waiters(self, key: Key, number: int, state: TrialState, values: list[float] | None,
                         failure: str | None) -> None:
        """The trials waiting for (genome, seed) take the result of its training, trial ``number``."""
        for waiting in self.waiting.pop(key, []):
            if failure == INTERRUPTED:  # the training runs again; the copy waiting for it is moot
                self._finish(waiting, TrialState.FAIL, None, INTERRUPTED)
            else:
                waiting.set_user_attr("reused_from", number)
                self._finish(waiting, state, values, failure)

    def poll_awaited(self) -> None:
        """Resolve trials waiting for another driver's training once it has finished."""
        now = time.time()
        if not self.awaited or now - self.last_poll < POLL_SECONDS:
            return
        self.last_poll = now
        for key, number in list(self.awaited.items()):
            trial = self.storage.get_trial(self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number))
            if not trial.state.is_finished():
                continue
            del self.awaited[key]
            failure = INTERRUPTED if is_interrupted(trial) else trial.user_attrs.get("failure")
            self._release_waiters(key, number, trial.state, trial.values, failure)
            self.quiet_until = 0.0

    def close_all(self, reason: str) -> int:
        """Close every trial still held (the search was stopped); the trainings run again."""
        held = self.held()
        with self.lock:
            for trial in held:
                self._finish(trial, TrialState.FAIL, None, reason)
            for trial in self.live.values():  # trials waiting for a result are copies: not re-run
                self.study.enqueue_trial(trial.params, user_attrs=rerun_attrs(trial))
        self.live.clear()
        self.waiting.clear()
        self.awaited.clear()
        self.training.clear()
        self.ledger.in_flight.clear()
        return len(held)


class PlanSearcher(OptunaTrialsSearcher):
    """Ray Tune's Searcher interface over a fixed list of (fidelity, genome, seed) trainings,
    each an Optuna trial whose state tells the truth (``trainable.trial_outcome``). Its values are
    top-1 alone (a calibration study), or with ``objectives`` the study's objective vector,
    the costs computed here as a search computes them (a one-shot search's confirmations)."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage, jobs: list[tuple[str, str, int]],
                 num_classes: int, attrs: dict, objectives: tuple[Selection, Context] | None = None,
                 labels: dict[str, str] | None = None) -> None:
        super().__init__(study, storage)
        self.jobs, self.num_classes, self.attrs, self.objectives = list(jobs), num_classes, attrs, objectives
        self.labels = labels or {}  # genome -> paper label
        self.total, self.done, self.failed = len(jobs), 0, 0
        self.driver = driver_identity()

    def suggest(self, trial_id: str):
        if not self.jobs:
            return Searcher.FINISHED if not self.live else None
        fidelity, genome, seed = self.jobs.pop(0)
        if self.objectives is None:
            cost = count_cost(Genome.from_string(genome), num_classes=self.num_classes)
            costs = {"macs": cost.macs, "params": cost.params}
        else:
            selection, context = self.objectives
            costs = selection.costs(Genome.from_string(genome), context)
        trial = self.study.ask()
        label = {"paper_label": self.labels[genome]} if genome in self.labels else {}
        for name, value in {**self.attrs, "fidelity": fidelity, "genome": genome, "seed": seed, **costs,
                            "driver": self.driver, **label}.items():
            trial.set_user_attr(name, value)
        self.live[trial_id] = trial
        return {"fidelity": fidelity, "genome": genome, "seed": seed}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial, result = self.finished(trial_id, result)
        if trial is None:
            return
        state, failure = trial_outcome(result, error)
        if result is not None and "seconds" in result:
            trial.set_user_attr("seconds", result["seconds"])
        if failure:
            trial.set_user_attr("failure", failure)
        values = None
        if state == TrialState.COMPLETE:
            top1 = float(result["top1"])
            values = [top1] if self.objectives is None else self.objectives[0].values(
                top1, [float(trial.user_attrs[o.name]) for o in self.objectives[0].computed])
        self.study.tell(trial, values, state=state)
        self.done += 1
        self.failed += state != TrialState.COMPLETE

    def close_all(self) -> int:
        for trial in self.live.values():
            trial.set_user_attr("failure", INTERRUPTED)
            self.study.tell(trial, state=TrialState.FAIL)
        held, self.live = len(self.live), {}
        return held
