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

Both searchers are thin: what trains next, its seed, reuse, waiting and the counts are the
search policy's (``policy.SearchPolicy``), which the one-shot exploration and the simulator drive
too. ``StudySearcher`` serves a search (and the drivers' liveness, ``ledger.py``); ``PlanSearcher``
a fixed list of (fidelity, genome, seed) trainings (a calibration, a one-shot search's
confirmations).
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
import warnings

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from ..analysis.objectives import Context, Selection
from ..cost import count_cost
from ..models.genome import Genome
from ..models.spaces import SearchSpace
from ..studies import HEARTBEAT_SECONDS, StudyLock
from .ledger import INTERRUPTED, close_interrupted, driver_identity
from .policy import FINISHED, WAIT, PlannedTraining, SearchPolicy
from .schedulers import MultiObjectiveSuccessiveHalving

# Drivers record Optuna's heartbeat themselves (``beat``); Optuna expects Study.optimize to.
warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize", UserWarning)
POLL_SECONDS = 1.0  # how often a driver with nothing to start looks at the study again


def trial_outcome(result: dict | None, error: bool, metric: str = "top1") -> tuple[TrialState, str | None]:
    """The state a finished Tune trial gets in the study, and the failure reason."""
    if result is None or error:
        reason = (result or {}).get("failure") or "the trial's worker crashed (see the Ray logs)"
        return TrialState.FAIL, reason
    if result.get("failure"):
        return TrialState.FAIL, result["failure"]
    value = result.get(metric)
    if value is None or not math.isfinite(value):
        return TrialState.FAIL, f"{metric} is {value}"
    if result.get("complete"):
        return TrialState.COMPLETE, None
    return TrialState.PRUNED, None


def set_attrs_unless_closed(trial: optuna.Trial, attrs: dict) -> None:
    """Set a finished training's user attributes, unless another driver has closed its trial
    meanwhile (it took this driver for dead): then the policy's ``finish``, which must still run
    to let the training go, says so and drops the result. Raising here left the training held
    for ever, and its driver waiting in Tune for a trial that never came."""
    try:
        for name, value in attrs.items():
            trial.set_user_attr(name, value)
    except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
        pass


class OptunaTrialsSearcher(Searcher):
    """Ray Tune's Searcher interface over Optuna trials: which Optuna trial each Tune trial
    trains (``live``), each one's last result (Tune may end a trial without a final one), and
    the heartbeat of the trials this driver holds (``held``), which tells other drivers it lives.

    Inside ``beating()`` the heartbeat is recorded by a thread of its own, the way Optuna's
    ``Study.optimize`` records it: the driver's main thread can be busy for minutes (a dashboard
    publish of a large study, Tune's own bookkeeping), and other drivers close the trials of a
    driver whose heartbeat is older than the grace period. The main thread hands the thread the
    trials it holds each time it calls ``heartbeat``."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
        super().__init__(metric=None, mode=None)
        self.study, self.storage = study, storage
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.live: dict[str, optuna.Trial] = {}  # Tune trial id -> Optuna trial being trained
        self.last_result: dict[str, dict] = {}
        self.last_heartbeat = 0.0
        self.held_numbers: tuple[int, ...] = ()  # what the heartbeat thread beats: replaced, never mutated
        self.beat_lock = threading.Lock()  # one heartbeat write at a time, from either thread
        self.beating_thread: threading.Thread | None = None

    def __getstate__(self) -> dict:
        # Tune pickles its searcher with the experiment's state; a lock or a thread does not pickle.
        return {**self.__dict__, "beat_lock": None, "beating_thread": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, beat_lock=threading.Lock())

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
        """Keep Optuna's heartbeat for every trial this driver holds: hand them to ``beating``'s
        thread, or without one record it here (every HEARTBEAT_SECONDS)."""
        self.held_numbers = tuple(trial.number for trial in self.held())
        if self.beating_thread is not None:
            return
        now = time.time()
        if now - self.last_heartbeat < HEARTBEAT_SECONDS:
            return
        self.last_heartbeat = now
        for number in self.held_numbers:
            self.beat_number(number)

    def beat(self, trial: optuna.Trial) -> None:
        self.beat_number(trial.number)

    def beat_number(self, number: int) -> None:
        if self.storage.get_heartbeat_interval() is not None:
            with self.beat_lock:
                self.storage.record_heartbeat(self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number))

    @contextlib.contextmanager
    def beating(self, interval: float = HEARTBEAT_SECONDS):
        """Record the held trials' heartbeat every ``interval`` seconds from a thread of its own
        while the block runs. A storage error there is reported once and the thread goes on."""
        stop = threading.Event()

        def beat_until_stopped() -> None:
            reported = False
            while not stop.wait(interval):
                try:
                    for number in self.held_numbers:
                        self.beat_number(number)
                except Exception as error:  # the storage's, whichever driver raised it: the next beat may pass
                    if not reported:
                        print(f"\nheartbeat not recorded ({type(error).__name__}: {error}); retrying every "
                              f"{interval:.0f} s", file=sys.stderr)
                        reported = True

        self.heartbeat()
        self.beating_thread = threading.Thread(target=beat_until_stopped, name="ulsam-nas heartbeat", daemon=True)
        self.beating_thread.start()
        try:
            yield
        finally:
            stop.set()
            self.beating_thread.join()
            self.beating_thread = None


class StudySearcher(OptunaTrialsSearcher):
    """Ray Tune's Searcher interface over the search policy (``policy.SearchPolicy``).

    Several drivers may share the study. Each plans its next trial under the study's lock
    (``studies.StudyLock``) from what the storage holds, so the study, not a driver, decides:
    a (genome, seed) that any driver trains is waited for, never trained twice; each paper
    configuration is enqueued once; and no trial is asked for once the study's finished plus
    running trials reach the budget, so the drivers together finish exactly the budget.
    """

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage, lock: StudyLock, policy: SearchPolicy,
                 scheduler: MultiObjectiveSuccessiveHalving | None = None) -> None:
        super().__init__(study, storage)
        self.lock, self.policy = lock, policy
        self.scheduler = scheduler  # where an early-stopped trial's rung is read
        self.trained_metric = policy.selection.trained.metric
        self.beaten: set[int] = set()  # trials whose first heartbeat is recorded
        self.quiet_until = self.last_liveness = self.last_poll = 0.0
        self.stepped_out = False  # the last Tune run ended with only other drivers' trainings left

    def wait_for_others(self) -> bool:
        """After a Tune run this driver stepped out of: wait, outside Tune, until the study holds the
        budget (False) or holds work for this driver again (True: a re-run queued, a paper
        configuration to enqueue, or room in the budget, after a failure, that the policy would
        fill now rather than wait). Meanwhile this driver's copies waiting for other drivers'
        trainings are resolved and their heartbeat recorded."""
        while True:
            self.heartbeat()
            self.poll_awaited()
            with self.lock:
                self.read_study()
            policy = self.policy
            if policy.tally.finished >= policy.budget and not policy.in_flight_here:
                return False
            room = policy.budget - policy.tally.finished - policy.running_in_study
            if policy.queued or policy.paper or (room > 0 and policy.next_step(room) != WAIT):
                self.stepped_out = False
                return True
            time.sleep(POLL_SECONDS)

    @property
    def tally(self):
        return self.policy.tally

    @property
    def running(self) -> int:
        return len(self.live)

    def held(self) -> list[optuna.Trial]:
        return self.policy.held()

    def read_study(self) -> None:
        """Bring this driver's view up to date from the storage (under the lock): close the
        trials of stopped drivers, then let the policy read the study."""
        now = time.time()
        if now - self.last_liveness >= HEARTBEAT_SECONDS:
            self.last_liveness = now
            closed = close_interrupted(self.study, self.storage)
            if closed:
                print(f"\nclosed {len(closed)} trial(s) of a stopped driver ({', '.join(map(str, closed))}) as FAIL "
                      f"'interrupted'; their trainings run again", file=sys.stderr)
        self.policy.read()

    def suggest(self, trial_id: str):
        # With no trial of its own to run (only trials waiting for another driver's trainings),
        # Tune blocks for the next trial for up to 600 s without calling back (on_step_end): the
        # waiting trials are resolved, and this driver's heartbeat recorded, from here as well.
        self.heartbeat()
        self.poll_awaited()
        if time.time() < self.quiet_until:  # Tune asks in a tight loop while nothing can start
            return None
        with self.lock:
            self.read_study()
            training = self.policy.next_training()
            for trial in self.policy.held():
                if trial.number not in self.beaten:
                    self.beaten.add(trial.number)
                    self.beat(trial)
        if training == FINISHED:
            return Searcher.FINISHED
        if training is None and not self.policy.training:
            # Nothing of this driver's own is training: what is left of the budget is other
            # drivers' trainings. Tune would keep a cached worker (and its CPU or GPU) for a
            # trial that never comes; where the drivers share a cluster, that worker can be the
            # one another driver's last training waits for. This Tune run ends; ``run_search``
            # waits for the study outside it and starts another if work comes back.
            self.stepped_out = True
            return Searcher.FINISHED
        if training is None:
            self.quiet_until = time.time() + POLL_SECONDS
            return None
        self.live[trial_id] = training.trial
        return {"genome": training.genome, "seed": training.seed, "optuna_trial": training.trial.number,
                "costs": training.costs}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial, result = self.finished(trial_id, result)
        if trial is None:
            return
        self.quiet_until = 0.0
        state, failure = trial_outcome(result, error, self.trained_metric)
        attrs = {}
        if result is not None:
            attrs = {"epochs" if name == "epoch" else name: result[name]
                     for name in ("seconds", "images_per_second", "epoch") if name in result}
            if state == TrialState.PRUNED:
                attrs[f"{self.trained_metric}_when_stopped"] = result.get(self.trained_metric)
                attrs.update(self.scheduler.stopped.get(trial_id, {}) if self.scheduler else {})
        set_attrs_unless_closed(trial, attrs)
        self.policy.finish(trial, state, float(result[self.trained_metric]) if state == TrialState.COMPLETE else None, failure)

    def poll_awaited(self) -> None:
        """Resolve trials waiting for another driver's training once it has finished."""
        now = time.time()
        if not self.policy.awaited or now - self.last_poll < POLL_SECONDS:
            return
        self.last_poll = now

        def finished_trial(number: int) -> optuna.trial.FrozenTrial | None:
            trial = self.storage.get_trial(self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number))
            return trial if trial.state.is_finished() else None

        if self.policy.resolve_awaited(finished_trial):
            self.quiet_until = 0.0

    def close_all(self, reason: str) -> int:
        """Close every trial still held (the search was stopped); the trainings run again."""
        with self.lock:
            held = self.policy.close_all(reason)
        self.live.clear()
        return held


class PlanSearcher(OptunaTrialsSearcher):
    """Ray Tune's Searcher interface over a fixed plan of (fidelity, genome, seed) trainings, each
    an Optuna trial whose state tells the truth (``trial_outcome``), through the search
    policy's plan mode. Its values are top-1 alone (a calibration study), or with ``objectives``
    the study's objective vector, the costs computed here as a search computes them (a one-shot
    search's confirmations)."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage, jobs: list[tuple[str, str, int]],
                 space: SearchSpace, num_classes: int, attrs: dict,
                 objectives: tuple[Selection, Context] | None = None) -> None:
        super().__init__(study, storage)
        selection, context = objectives or (None, None)

        def paper_table_costs(genome: Genome) -> dict[str, float]:
            cost = count_cost(genome, num_classes=num_classes)
            return {"macs": cost.macs, "params": cost.params}

        plan = [PlannedTraining(genome, seed, {"fidelity": fidelity}) for fidelity, genome, seed in jobs]
        self.policy = SearchPolicy(study, space, selection, context, len(plan), trial_attrs=attrs, plan=plan,
                                   paper_seeds=False, driver=driver_identity(),
                                   costs_of=None if objectives else paper_table_costs)
        self.total = len(jobs)

    @property
    def done(self) -> int:
        return self.policy.tally.finished

    @property
    def failed(self) -> int:
        return self.policy.tally.failed + self.policy.tally.pruned

    def suggest(self, trial_id: str):
        training = self.policy.next_training()
        if training == FINISHED:
            return Searcher.FINISHED
        if training is None:
            return None
        self.live[trial_id] = training.trial
        return {"fidelity": training.trial.user_attrs["fidelity"], "genome": training.genome, "seed": training.seed}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial, result = self.finished(trial_id, result)
        if trial is None:
            return
        state, failure = trial_outcome(result, error)
        set_attrs_unless_closed(trial, {"seconds": result["seconds"]} if result is not None and "seconds" in result else {})
        self.policy.finish(trial, state, float(result["top1"]) if state == TrialState.COMPLETE else None, failure)

    def close_all(self) -> int:
        """Close the trainings still running as FAIL "interrupted"; the plan's next run trains them."""
        self.live.clear()
        return self.policy.close_all(INTERRUPTED, requeue=False)
