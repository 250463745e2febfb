"""Ray Tune runs the proxy trainings, Optuna chooses the genomes, the study is the record.

Why our own ``Searcher`` over Optuna's ask/tell instead of Ray's ``OptunaSearch``: the states
that reach the study must tell the truth, and OptunaSearch decides them in ways we cannot
change through its public API (an ASHA-stopped trial becomes COMPLETE with partial metrics, a
NaN metric leaves the trial RUNNING, an interrupted search leaves RUNNING trials behind). With
ask/tell on one side and Tune's documented ``Searcher`` interface on the other, every state is
ours to set, in a few dozen lines:

- COMPLETE only when the trial trained every epoch of its fidelity; values top1, MACs, params.
- PRUNED when a scheduler stopped it early (its last top-1 kept as user attributes).
- FAIL when training raised or the metric is not finite, with the reason as ``failure``.
- Trials of a driver that died (Ctrl-C, kill -9) are closed as FAIL "interrupted" on the next
  start and their genomes enqueued again. A driver is recognised by host, boot, pid and process
  start time; a trial of a driver on another host is closed only once its heartbeat (a user
  attribute refreshed while it runs) is older than ``STALE_AFTER`` seconds, so a live driver's
  trials on a shared PostgreSQL study are left alone.
- A genome that is already in the study as COMPLETE is not trained again: the new trial takes
  the earlier result (``reused_from``); one being trained right now is waited for.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray
from optuna.trial import TrialState
from ray import tune
from ray.tune.search import Searcher

from .cost import count_cost
from .data import DataSpec
from .fidelity import Fidelity
from .front import DIRECTIONS, OBJECTIVES, dominates
from .genome import Genome
from .spaces import SearchSpace
from .studies import open_storage

HEARTBEAT_SECONDS = 10.0
STALE_AFTER = 120.0
INTERRUPTED = "interrupted"
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
Trainer = Callable[..., Any]  # the signature of ulsam_nas.train.train


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


def driver_is_gone(identity: str, heartbeat: float | None, now: float) -> bool:
    """Whether the driver that started a RUNNING trial is dead."""
    try:
        host, boot, pid, start = identity.split("|")
    except ValueError:
        return heartbeat is None or now - heartbeat > STALE_AFTER
    if host == socket.gethostname() and boot == _boot_id() and start != "None":
        return _process_start(int(pid)) != start
    return heartbeat is None or now - heartbeat > STALE_AFTER


# -- the study ---------------------------------------------------------------------------------


def make_sampler(name: str, seed: int, budget: int, constraints: Callable | None) -> optuna.samplers.BaseSampler:
    if name == "nsga2":
        # A population of about budget / 8 (at least 8) gives several generations in a budget.
        population = max(8, min(50, budget // 8))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed, constraints_func=constraints)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constraints_func=constraints)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, constraints_func=constraints)
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(storage: optuna.storages.BaseStorage, name: str, sampler: optuna.samplers.BaseSampler,
               identity: dict[str, Any]) -> optuna.Study:
    """Create or load the study; refuse one made for another space, data set or fidelity."""
    study = optuna.create_study(storage=storage, study_name=name, directions=list(DIRECTIONS),
                                sampler=sampler, load_if_exists=True)
    stored = {k: study.user_attrs[k] for k in identity if k in study.user_attrs}
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
            study.set_metric_names(list(OBJECTIVES))
    return study


def finished_count(study: optuna.Study) -> int:
    """Finished trials that count toward the budget: COMPLETE, PRUNED and FAIL, except trials
    closed as "interrupted" (their genomes run again as new trials)."""
    return sum(t.user_attrs.get("failure") != INTERRUPTED
               for t in study.get_trials(deepcopy=False, states=FINISHED_STATES))


def close_interrupted(study: optuna.Study) -> list[int]:
    """Close RUNNING trials whose driver is gone as FAIL "interrupted" and enqueue their
    parameters again. Returns the closed trial numbers."""
    now, closed = time.time(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not driver_is_gone(trial.user_attrs.get("driver", ""), trial.user_attrs.get("heartbeat"), now):
            continue
        # Optuna has no public way to set a user attribute on a trial that another process asked
        # for; its storage does it. Pinned by tests/test_search.py (the kill -9 resume test).
        study._storage.set_trial_user_attr(trial._trial_id, "failure", INTERRUPTED)
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"rerun_of": trial.number})
        closed.append(trial.number)
    return closed


def pending_paper_configurations(study: optuna.Study, space: SearchSpace) -> list[tuple[Genome, str]]:
    """The paper configurations the space can express that no trial of the study holds yet.
    The searcher enqueues them one at a time ahead of sampling, after any re-runs of
    interrupted trials; a configuration already tried is never enqueued again."""
    present = {t.user_attrs.get("paper_label") for t in study.get_trials(deepcopy=False)}
    present |= {t.user_attrs.get("genome") for t in study.get_trials(deepcopy=False)}
    return [(g, label) for g, label in space.paper_genomes()
            if space.contains(g) and label not in present and str(g) not in present]


# -- the Ray Tune side -------------------------------------------------------------------------


@dataclass
class TrialSettings:
    """What every trial trains with."""

    data: DataSpec
    fidelity: Fidelity
    seed: int


def run_trial(config: dict, settings: TrialSettings, trainer: Trainer) -> None:
    """The Ray Tune trainable: train one genome, report after every epoch. A failure is
    reported as a result (``failure``), so it fails this trial only and its reason is kept."""
    import torch

    assigned = ray.get_runtime_context().get_assigned_resources()
    torch.set_num_threads(max(1, int(assigned.get("CPU", 1))))
    device = "cuda" if ray.get_gpu_ids() else "cpu"  # Ray exposes only the GPUs it assigned
    epochs = settings.fidelity.epochs

    def report(epoch: int, metrics: dict) -> None:
        tune.report({**metrics, "complete": epoch == epochs})

    try:
        trainer(Genome.from_string(config["genome"]), settings.data, settings.fidelity, seed=settings.seed,
                report=report, device=device)
    except Exception as error:  # noqa: BLE001 - any failure fails this trial, with its reason
        tune.report({"failure": f"{type(error).__name__}: {error}", "top1": 0.0, "complete": False})


def trial_outcome(result: dict | None, error: bool) -> tuple[TrialState, str | None]:
    """The state a finished Tune trial gets in the study, and the failure reason."""
    if result is None or error:
        reason = (result or {}).get("failure") or "the trial's worker crashed (see the Ray logs)"
        return TrialState.FAIL, reason
    if result.get("failure"):
        return TrialState.FAIL, result["failure"]
    top1 = result.get("top1")
    if top1 is None or not math.isfinite(top1):
        return TrialState.FAIL, f"top-1 is {top1}"
    if result.get("complete"):
        return TrialState.COMPLETE, None
    return TrialState.PRUNED, None


@dataclass
class Tally:
    """Counts for the progress line."""

    finished: int = 0
    failed: int = 0
    pruned: int = 0
    reused: int = 0
    front: list[list[float]] = field(default_factory=list)

    def add_complete(self, values: list[float]) -> None:
        if any(dominates(v, values) or v == values for v in self.front):
            return
        self.front = [v for v in self.front if not dominates(values, v)] + [values]


class StudySearcher(Searcher):
    """Ray Tune's Searcher interface over Optuna's ask/tell; see the module docstring."""

    def __init__(self, study: optuna.Study, space: SearchSpace, budget: int, num_classes: int,
                 trial_attrs: dict[str, Any], max_macs: float | None = None, max_params: float | None = None,
                 seeds: list[tuple[Genome, str]] | None = None) -> None:
        super().__init__(metric=None, mode=None)
        self.seeds = list(seeds or [])
        self.study, self.space, self.budget, self.num_classes = study, space, budget, num_classes
        self.trial_attrs, self.max_macs, self.max_params = trial_attrs, max_macs, max_params
        self.driver = driver_identity()
        self.labels = space.paper_labels()
        self.live: dict[str, optuna.Trial] = {}  # Tune trial id -> Optuna trial being trained
        self.training: dict[str, str] = {}  # genome -> Tune trial id
        self.waiting: dict[str, list[optuna.Trial]] = {}  # genome -> trials waiting for its result
        self.last_result: dict[str, dict] = {}
        self.completed: dict[str, tuple[int, list[float]]] = {}
        self.tally = Tally(finished=finished_count(study))
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if "genome" in trial.user_attrs:
                self.completed.setdefault(trial.user_attrs["genome"], (trial.number, trial.values))
                self.tally.add_complete(trial.values)
        self.last_heartbeat = 0.0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    @property
    def in_flight(self) -> int:
        return len(self.live) + sum(len(w) for w in self.waiting.values())

    @property
    def running(self) -> int:
        return len(self.live)

    def suggest(self, trial_id: str):
        for _ in range(100):  # asks answered from the study itself don't need a Tune trial
            if self.tally.finished + self.in_flight >= self.budget:
                return Searcher.FINISHED if not self.in_flight else None
            if self.seeds and not self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                genome, label = self.seeds.pop(0)
                self.study.enqueue_trial(self.space.params(genome), user_attrs={"paper_label": label})
            trial = self.study.ask()
            genome = self.space.suggest(trial)
            key = str(genome)
            cost = count_cost(genome, num_classes=self.num_classes)
            for name, value in {**self.trial_attrs, "genome": key, "macs": cost.macs, "params": cost.params,
                                "driver": self.driver, "heartbeat": time.time()}.items():
                trial.set_user_attr(name, value)
            if genome in self.labels and "paper_label" not in trial.user_attrs:
                trial.set_user_attr("paper_label", self.labels[genome])
            infeasible = self._infeasible(cost.macs, cost.params)
            if infeasible:
                self._finish(trial, TrialState.PRUNED, None, infeasible=infeasible)
            elif key in self.completed:
                number, values = self.completed[key]
                trial.set_user_attr("reused_from", number)
                self._finish(trial, TrialState.COMPLETE, values)
                self.tally.reused += 1
            elif key in self.training:
                self.waiting.setdefault(key, []).append(trial)
            else:
                self.live[trial_id] = trial
                self.training[key] = trial_id
                return {"genome": key, "optuna_trial": trial.number}
        return None

    def _infeasible(self, macs: int, params: int) -> str | None:
        if self.max_macs is not None and macs > self.max_macs:
            return f"MACs {macs / 1e6:.2f}M > --max-macs {self.max_macs / 1e6:.2f}M"
        if self.max_params is not None and params > self.max_params:
            return f"params {params / 1e6:.3f}M > --max-params {self.max_params / 1e6:.3f}M"
        return None

    def _finish(self, trial: optuna.Trial, state: TrialState, values: list[float] | None,
                failure: str | None = None, infeasible: str | None = None) -> None:
        if failure:
            trial.set_user_attr("failure", failure)
        if infeasible:
            trial.set_user_attr("infeasible", infeasible)
        self.study.tell(trial, values if state == TrialState.COMPLETE else None, state=state)
        self.tally.finished += 1
        if state == TrialState.COMPLETE:
            self.tally.add_complete(values)
        elif state == TrialState.FAIL:
            self.tally.failed += 1
        else:
            self.tally.pruned += 1

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.last_result[trial_id] = result

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self.live.pop(trial_id, None)
        if trial is None:
            return
        result = result or self.last_result.get(trial_id)
        self.last_result.pop(trial_id, None)
        key = trial.user_attrs["genome"]
        self.training.pop(key, None)
        state, failure = trial_outcome(result, error)
        values = None
        if result is not None:
            for name in ("seconds", "images_per_second", "epoch"):
                if name in result:
                    trial.set_user_attr("epochs" if name == "epoch" else name, result[name])
            if state == TrialState.PRUNED:
                trial.set_user_attr("top1_when_stopped", result.get("top1"))
        if state == TrialState.COMPLETE:
            values = [float(result["top1"]), float(trial.user_attrs["macs"]), float(trial.user_attrs["params"])]
            self.completed[key] = (trial.number, values)
        self._finish(trial, state, values, failure)
        for waiting in self.waiting.pop(key, []):
            waiting.set_user_attr("reused_from", trial.number)
            self._finish(waiting, state, values, failure)
            self.tally.reused += 1

    def heartbeat(self) -> None:
        """Refresh the heartbeat of every trial this driver holds (at most every 10 s)."""
        now = time.time()
        if now - self.last_heartbeat < HEARTBEAT_SECONDS:
            return
        self.last_heartbeat = now
        for trial in [*self.live.values(), *(t for ts in self.waiting.values() for t in ts)]:
            trial.set_user_attr("heartbeat", now)

    def close_all(self, reason: str) -> int:
        """Close every trial still held (the search was stopped) and enqueue them again."""
        held = [*self.live.values(), *(t for ts in self.waiting.values() for t in ts)]
        for trial in held:
            trial.set_user_attr("failure", reason)
            self.study.tell(trial, state=TrialState.FAIL)
            self.study.enqueue_trial(trial.params, user_attrs={"rerun_of": trial.number})
        self.live.clear()
        self.waiting.clear()
        self.training.clear()
        return len(held)


class ProgressLine(tune.Callback):
    """One live status line instead of Ray's tables."""

    def __init__(self, searcher: StudySearcher, budget: int) -> None:
        self.searcher, self.budget = searcher, budget
        self.started = time.time()
        self.first_finished = searcher.tally.finished
        self.interactive = sys.stderr.isatty()
        self.last_print, self.last_line = 0.0, ""

    def line(self) -> str:
        tally = self.searcher.tally
        elapsed = time.time() - self.started
        done_here = tally.finished - self.first_finished
        remaining = max(0, self.budget - tally.finished)
        eta = f"{remaining * elapsed / done_here:.0f}s" if done_here else "?"
        return (f"{tally.finished}/{self.budget} trials done, {self.searcher.running} running, "
                f"{tally.failed} failed, {tally.pruned} pruned, {tally.reused} reused, "
                f"front {len(tally.front)}, elapsed {elapsed:.0f}s, ETA {eta}")

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        self.searcher.heartbeat()
        line = self.line()
        now = time.time()
        if self.interactive and now - self.last_print >= 1.0:
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
            self.last_print = now
        elif not self.interactive and line != self.last_line and now - self.last_print >= 5.0:
            print(line, file=sys.stderr, flush=True)
            self.last_print = now
        self.last_line = line

    def on_experiment_end(self, trials: list, **info) -> None:
        print(("\r" if self.interactive else "") + self.line() + ("\033[K" if self.interactive else ""),
              file=sys.stderr, flush=True)


# -- one search run ------------------------------------------------------------------------------


@dataclass
class SearchConfig:
    space: SearchSpace
    data: DataSpec
    num_classes: int
    fidelity: Fidelity
    budget: int
    storage_url: str
    study_name: str
    study_dir: Path
    sampler: str = "nsga2"
    seed: int = 0
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrency: int = 1
    max_macs: float | None = None
    max_params: float | None = None
    early_stop: bool = False
    paper_seeds: bool = True


def run_search(config: SearchConfig, trainer: Trainer | None = None) -> optuna.Study:
    """Run (or resume) the search until the study holds ``config.budget`` finished trials.
    Ray must be initialised (``ray.init``) by the caller."""
    from ray.tune.schedulers import ASHAScheduler

    if trainer is None:
        from .train import train as trainer
    # Ray's newer console output prints an experiment banner even at verbose=0; the legacy
    # engine is silent there, and ProgressLine is all the user sees.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

    storage = open_storage(config.storage_url)
    sampler = make_sampler(config.sampler, config.seed, config.budget, None)
    identity = {"space": config.space.name, "backbone": config.space.backbone, "dataset": str(config.data),
                "fidelity": config.fidelity.name, "num_classes": config.num_classes}
    study = open_study(storage, config.study_name, sampler, identity)
    closed = close_interrupted(study)
    if closed:
        print(f"closed {len(closed)} interrupted trial(s) ({', '.join(map(str, closed))}) as FAIL; "
              f"their genomes run again", file=sys.stderr)
    seeds = pending_paper_configurations(study, config.space) if config.paper_seeds else []
    if seeds:
        print(f"{len(seeds)} paper configuration(s) train first", file=sys.stderr)
    finished = finished_count(study)
    if finished >= config.budget:
        print(f"budget already met: study {config.study_name!r} holds {finished} finished trials "
              f"(budget {config.budget})", file=sys.stderr)
        return study

    trial_attrs = {"fidelity": config.fidelity.name, "dataset": str(config.data)}
    searcher = StudySearcher(study, config.space, config.budget, config.num_classes, trial_attrs,
                             config.max_macs, config.max_params, seeds)
    progress = ProgressLine(searcher, config.budget)
    settings = TrialSettings(config.data, config.fidelity, config.seed)
    resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(run_trial, settings=settings, trainer=trainer), resources)
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=config.fidelity.epochs, grace_period=1,
                              reduction_factor=2) if config.early_stop else None
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1, metric="top1",
                                    mode="max", max_concurrent_trials=config.concurrency, reuse_actors=True),
        run_config=tune.RunConfig(name=config.study_name, storage_path=str((config.study_dir / "ray").resolve()),
                                  verbose=0, callbacks=[progress], failure_config=tune.FailureConfig(max_failures=0)),
    )
    try:
        tuner.fit()
    finally:
        held = searcher.close_all(INTERRUPTED)
        if held:
            print(f"\nstopped: {held} trial(s) still running were closed as FAIL 'interrupted' and enqueued "
                  f"again; run the same command to continue", file=sys.stderr)
    return study
