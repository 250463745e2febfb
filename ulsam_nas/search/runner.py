"""A search run on Ray Tune: Ray Tune runs the proxy trainings, Optuna chooses the genomes, the
study is the record. ``run_search`` runs (or resumes) a standalone search to its budget,
``train_plan`` a fixed list of (fidelity, genome, seed) trainings (a calibration, a one-shot
search's confirmations), and ``make_tuner`` builds the Ray Tune experiment both run, and the
one-shot search's supernet training too.

The trainable is in ``trainable.py``, the searchers that decide what trains and how it ends in
the study in ``searchers.py``, the lines the user sees in ``progress.py``, and the study's
bookkeeping in ``ledger.py`` and what trains next in ``policy.py``. Importing this module imports
Ray: the commands import it after
``cli.start_ray``.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from ..analysis.front import COST_TOLERANCE
from ..analysis.objectives import DEFAULT, Context, Selection
from ..data import VAL_FRACTION, DataSpec
from ..models.spaces import SearchSpace
from ..names import folder_in
from ..studies import StudyLock, open_storage
from ..train.fidelity import Fidelity
from .ledger import INTERRUPTED, close_interrupted, driver_identity, open_study, requeue_stale
from .policy import DEFAULT_SAMPLER, SearchPolicy
from .progress import PlanProgress, ProgressLine
from .schedulers import MultiObjectiveSuccessiveHalving
from .searchers import PlanSearcher, StudySearcher
from .trainable import Trainer, TrialSettings, run_calibration_trial, run_trial

DRIVER_SEED_STRIDE = 1_000_003  # sampler seeds of drivers started on one study: far apart


def trainer_for(data: DataSpec) -> Trainer:
    """What trains a trial on ``data``: the training loop, or for a landscape (a simulated data
    set whose truth is known) its trainer, which reports the landscape's values without training."""
    if data.name == "landscape":
        from ..landscapes.trainer import train
    else:
        from ..train.loop import train
    return train


def make_tuner(trainable: Callable, parameters: dict[str, Any], resources: dict[str, float], name: str,
               study_dir: Path, callback: tune.Callback, searcher: Searcher | None = None,
               scheduler: TrialScheduler | None = None, metric: str = "top1",
               concurrency: int | None = None) -> tune.Tuner:
    """The Ray Tune experiment ``<study_dir>/ray/<name>``: ``trainable`` called with
    ``parameters``, every trial reserving ``resources``, Ray's console output silent but for
    ``callback``, and a failed trial not retried (the study records it). With ``searcher``: the
    trials it suggests until it says FINISHED, at most ``concurrency`` at once, on reused
    workers, ``scheduler`` stopping weak ones early; without: one trial."""
    # Ray's newer console output prints an experiment banner even at verbose=0; the legacy
    # engine is silent there, and the callback is all the user sees.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # The study is the record: Tune's own per-trial logs (a folder with CSV, JSON and TensorBoard
    # files for every trial) are never read, and cost the driver a folder and three files per training.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if searcher is None:
        tune_config = tune.TuneConfig(num_samples=1)
    else:
        tune_config = tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1, metric=metric,
                                      mode="max", max_concurrent_trials=concurrency, reuse_actors=True)
    return tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, **parameters), resources),
        tune_config=tune_config,
        run_config=tune.RunConfig(name=name, storage_path=str((study_dir / "ray").resolve()), verbose=0,
                                  callbacks=[callback], failure_config=tune.FailureConfig(max_failures=0)),
    )


@dataclass
class SearchConfig:
    """What a search runs with: the command's flags, resolved (the cluster sized, the data's cache keys known)."""

    space: SearchSpace
    data: DataSpec
    num_classes: int
    fidelity: Fidelity
    budget: int
    storage_url: str
    study_name: str
    study_dir: Path
    sampler: str = DEFAULT_SAMPLER
    seed: int = 0  # the sampler's seed, and the base of every training's seed
    repeats: int = 3
    repeat_share: float | None = None  # the largest share of the budget repeats may take (None: no cap)
    val_fraction: float = VAL_FRACTION
    cost_tolerance: float = COST_TOLERANCE
    objectives: str = DEFAULT  # --objectives
    limits: dict[str, float] = field(default_factory=dict)  # --max-NAME: objective name -> largest value allowed
    latency_device: str = "cpu"
    latency_threads: int = 1
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrency: int = 1
    early_stop: bool = False
    early_stop_grace: int = 1  # epochs before the first rung
    early_stop_eta: int = 2  # 1/eta of a rung goes on to the next
    paper_seeds: bool = True

    @property
    def resources(self) -> dict[str, float]:
        return {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial}


def search_identity(config: SearchConfig, context: Context, strategy: str) -> dict[str, Any]:
    """What a study was searched with; resuming it with anything else is refused."""
    return {"space": config.space.name, "backbone": config.space.backbone, "dataset": str(config.data),
            "fidelity": config.fidelity.name, "num_classes": config.num_classes, "seed": config.seed,
            "val_fraction": config.val_fraction, "strategy": strategy, **context.study_attrs}


def open_search_study(storage: optuna.storages.BaseStorage, config: SearchConfig, selection: Selection, context: Context,
                      reference: dict[str, float], strategy: str) -> optuna.Study:
    """Create or load the search study (refusing one made with other settings) and store what
    its readers need: the objectives with their references, the tolerance, the repeats."""
    study = open_study(storage, config.study_name, search_identity(config, context, strategy), selection)
    study.set_user_attr("cost_tolerance", config.cost_tolerance)
    study.set_user_attr("repeats", config.repeats)
    study.set_user_attr("objective_specs", selection.specs(reference))
    return study


def run_search(config: SearchConfig, trainer: Trainer | None = None) -> optuna.Study:
    """Run (or resume) the search until the study holds ``config.budget`` finished trials.
    Ray must be initialised (``ray.init``) by the caller."""
    trainer = trainer or trainer_for(config.data)
    selection = Selection.parse(config.objectives, config.cost_tolerance)
    context = Context(config.space, config.num_classes, config.latency_device, config.latency_threads)
    # Before the study is touched: a latency objective times its table here, once per machine.
    reference = selection.reference_point(context)
    storage = open_storage(config.storage_url, stale_trial_callback=requeue_stale)
    lock = StudyLock(config.storage_url, config.study_name)
    with lock:
        # A resumed search continues the sampler's stream instead of replaying it (the same seed
        # would propose the genomes it proposed before the interruption again), and drivers
        # that start together on one study get streams of their own.
        study = open_search_study(storage, config, selection, context, reference, "standalone")
        starts = int(study.user_attrs.get("driver_starts", 0))
        study.set_user_attr("driver_starts", starts + 1)
        sampler_seed = config.seed + len(study.get_trials(deepcopy=False)) + DRIVER_SEED_STRIDE * starts
        closed = close_interrupted(study, storage)
        policy = SearchPolicy(study, config.space, selection, context, config.budget, base_seed=config.seed,
                              repeats=config.repeats, limits=config.limits, paper_seeds=config.paper_seeds,
                              trial_attrs={"fidelity": config.fidelity.name, "dataset": str(config.data)},
                              driver=driver_identity(), sampler=config.sampler, sampler_seed=sampler_seed,
                              repeat_share=config.repeat_share)
        policy.read()
    if closed:
        print(f"closed {len(closed)} interrupted trial(s) ({', '.join(map(str, closed))}) as FAIL; "
              f"their trainings run again", file=sys.stderr)
    if policy.paper and policy.tally.finished < config.budget:
        print(f"{len(policy.paper)} paper configuration(s) train first", file=sys.stderr)
    if policy.tally.finished >= config.budget:
        print(f"budget already met: study {config.study_name!r} holds {policy.tally.finished} finished trials "
              f"(budget {config.budget})", file=sys.stderr)
        lock.close()
        return study

    scheduler = MultiObjectiveSuccessiveHalving(selection, config.fidelity.epochs, config.early_stop_grace,
                                                config.early_stop_eta) if config.early_stop else None
    searcher = StudySearcher(study, storage, lock, policy, scheduler)
    publish_lock = StudyLock(config.storage_url, config.study_name, purpose="publish")
    progress = ProgressLine(searcher, config.budget, publish_lock)
    settings = TrialSettings(config.data, config.fidelity, config.val_fraction, selection.trained.metric)
    # Each Tune run of each driver process keeps its experiment state in a folder of its own: a
    # driver killed while Tune wrote its snapshot leaves it truncated, and a Tune run that shared
    # the folder (the same command started again) failed reading it back at its end.
    runs = itertools.count()

    def tuner() -> tune.Tuner:
        name = f"{config.study_name}-{os.getpid()}-{next(runs)}"
        folder_in(config.study_dir, "ray", name)  # not a link out of a received study folder
        return make_tuner(run_trial, {"settings": settings, "trainer": trainer}, config.resources, name,
                          config.study_dir, progress, searcher, scheduler, selection.trained.metric, config.concurrency)

    try:
        with searcher.beating():
            tuner().fit()
            while searcher.stepped_out and searcher.wait_for_others():
                tuner().fit()
    finally:
        held = searcher.close_all(INTERRUPTED)
        if held:
            print(f"\nstopped: {held} trial(s) still running were closed as FAIL 'interrupted' and enqueued "
                  f"again; run the same command to continue", file=sys.stderr)
        lock.close()
        progress.publisher.close()
        publish_lock.close()
    return study


def train_plan(study: optuna.Study, storage: optuna.storages.BaseStorage, jobs: list[tuple[str, str, int]],
               data: DataSpec, space: SearchSpace,
               num_classes: int, val_fraction: float, resources: dict[str, float], concurrency: int, study_dir: Path,
               trainer: Trainer | None = None, objectives: tuple[Selection, Context] | None = None,
               attrs: dict | None = None, task: str = "calibrate") -> None:
    """Run the (fidelity, genome, seed) trainings as Ray Tune trials. Ray must be initialised."""
    trainer = trainer or trainer_for(data)
    searcher = PlanSearcher(study, storage, jobs, space, num_classes, {"dataset": str(data), **(attrs or {})}, objectives)
    tuner = make_tuner(run_calibration_trial, {"data": data, "backbone": space.backbone, "val_fraction": val_fraction,
                                               "trainer": trainer},
                       resources, study.study_name, study_dir, PlanProgress(searcher, task), searcher,
                       concurrency=concurrency)
    try:
        with searcher.beating():
            tuner.fit()
    finally:
        held = searcher.close_all()
        if held:
            print(f"\nstopped: {held} training(s) closed as FAIL 'interrupted'; run the same command to continue",
                  file=sys.stderr)
