"""What runs inside a Ray worker: the trainable of a search's or a calibration's trials, and the
worker's set-up (its device and torch threads) that every Ray trial and task of the package starts
with. Ray workers import this module to run a trial; it imports nothing of the driver's side
(searchers, progress, the dashboard, Optuna), and no torch: a worker loads torch only when its
trainer does (a landscape's simulated training does not).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray import tune

from ..data import DataSpec
from ..models.genome import Genome
from ..train.fidelity import Fidelity, parse_fidelity

Trainer = Callable[..., Any]  # the signature of ulsam_nas.train.loop.train


def set_up_worker() -> str:
    """In a Ray trial or task: as many torch threads as the CPUs Ray assigned it, and the device to
    train on, ``cuda`` when Ray assigned it a GPU (Ray exposes only the GPUs it assigned), else ``cpu``.
    A trainer that uses torch has imported it by now (Ray unpickled the trainer before calling the
    trainable); one that does not leaves torch unloaded, and there are no threads to set."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
    return "cuda" if ray.get_gpu_ids() else "cpu"


@dataclass
class TrialSettings:
    """What every trial trains with; the seed comes with each trial's config."""

    data: DataSpec
    fidelity: Fidelity
    val_fraction: float
    metric: str = "top1"  # the training metric the study optimises


def run_trial(config: dict, settings: TrialSettings, trainer: Trainer) -> None:
    """The Ray Tune trainable: train one (genome, seed), evaluate on the validation split and
    report after every epoch. A failure is reported as a result (``failure``), so it fails this
    trial only and its reason is kept. Every result carries the genome's computed objectives
    (``costs``): the early-stopping scheduler ranks on all the study's objectives."""
    device = set_up_worker()
    epochs = settings.fidelity.epochs
    costs = config.get("costs", {})

    def report(epoch: int, metrics: dict) -> None:
        tune.report({**metrics, **costs, "complete": epoch == epochs})

    try:
        trainer(Genome.from_string(config["genome"]), settings.data, settings.fidelity, seed=config["seed"],
                report=report, device=device, evaluate_on="val", val_fraction=settings.val_fraction)
    except Exception as error:  # noqa: BLE001 - any failure fails this trial, with its reason
        tune.report({"failure": f"{type(error).__name__}: {error}", settings.metric: 0.0, **costs, "complete": False})


def run_calibration_trial(config: dict, data: DataSpec, backbone: str, val_fraction: float, trainer: Trainer) -> None:
    """The search's trainable, with the fidelity taken from each trial's config (a plan of
    (fidelity, genome, seed) trainings, ``runner.train_plan``)."""
    run_trial(config, TrialSettings(data, parse_fidelity(config["fidelity"], backbone), val_fraction), trainer)
