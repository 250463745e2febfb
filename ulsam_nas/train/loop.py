"""Proxy training of one genome: ``train(genome, data, fidelity, seed, report=callback)``.

Also the parts the supernet's training (``supernet``) shares with it: the optimiser step and
the epoch around it (``train_epoch``, timed by :class:`StepClock`), the epoch's mean loss
checked finite (``epoch_loss``), BatchNorm recalibration, evaluation, the network a trial trains
(``build_proxy``), the fidelity's stratified subsets (``stratified``) and the numerics on a
device (``autocast_on``, ``memory_format_on``). The optimiser and schedule are in ``optim``.

The search trains with ``evaluate_on="val"`` (it selects on images held out from the train
split); the test split is read only to report a chosen architecture (``evaluate_on="test"``,
the default of ``train`` and of ``python -m ulsam_nas.train``, see ``command``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..data import VAL_FRACTION, DataError, DataSpec, check_val_fraction, load_images, stratified_subset, train_val_indices
from ..data.loader import BatchLoader, resident
from ..models.build import PlacedNet, build_model
from ..models.genome import Genome
from .fidelity import Fidelity, get_fidelity
from .optim import Schedule, sgd
from .result import EVALUATE_ON, NonFiniteLossError, Report, TrainResult

log = logging.getLogger(__name__)
def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_on(device: torch.device) -> contextlib.AbstractContextManager:
    """What forward passes run under on ``device``: bf16 autocast on CUDA, nothing on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def memory_format_on(device: torch.device) -> torch.memory_format:
    """The layout of a training's network and batches on ``device``: channels-last on CUDA."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def build_proxy(genome: Genome, fidelity: Fidelity, num_classes: int) -> PlacedNet:
    """The network a trial trains: the genome at the fidelity's width, channel rounding and
    resolution (see ``ulsam_nas.train.fidelity``), residual blocks starting as the identity."""
    model = build_model(
        genome, num_classes=num_classes, width_mult=genome.width_mult * fidelity.width_mult,
        channel_multiple=fidelity.channel_multiple if fidelity.width_mult != 1.0 else None,
        input_size=fidelity.resolution,
    )
    for module in model.modules():
        if hasattr(module, "start_as_identity"):
            module.start_as_identity()
    return model


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader: BatchLoader) -> None:
    """Replace every BatchNorm's running statistics by their plain average over ``loader``."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    model.train()
    for images, _ in loader:
        model(images)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum


@torch.inference_mode()
def evaluate(model: nn.Module, loader: BatchLoader, autocast: contextlib.AbstractContextManager) -> tuple[float, float]:
    """Top-1 and top-5 accuracy in %."""
    model.eval()
    hits1 = hits5 = total = 0
    for images, labels in loader:
        with autocast:
            logits = model(images)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits1 += (top[:, 0] == labels).sum()
        hits5 += (top == labels[:, None]).any(dim=1).sum()
        total += len(labels)
    return float(hits1) * 100 / total, float(hits5) * 100 / total


def train(
    genome: Genome, data: DataSpec | str = "synthetic", fidelity: Fidelity | str = "smoke", seed: int = 0,
    report: Report | None = None, device: torch.device | str | None = None, progress: bool = False,
    evaluate_on: str = "test", val_fraction: float = VAL_FRACTION,
) -> TrainResult:
    """Train ``genome`` from scratch on ``data`` at ``fidelity`` and evaluate after every epoch.

    ``evaluate_on="val"`` (what the search selects on): train on the train split less a
    validation split (``val_fraction`` of every class, the same for every trial, see
    ``train_val_indices``) and evaluate on that validation split; the test split is never read.
    ``evaluate_on="test"`` (reporting a chosen architecture): train on the whole train split
    and evaluate on the test split. The fidelity's subsets are stratified draws from these.

    ``report(epoch, metrics)`` is called after each epoch with top1, top5, loss, epoch,
    seconds and images_per_second (Ray Tune's schedulers stop trials from it). Deterministic
    for a seed on the CPU. On CUDA the step never waits for the host: the decoded split stays
    on the GPU when it fits (``data.loader.resident``), the crops' random numbers are drawn
    there, the loss is summed there and read once per epoch; bf16 autocast, channels-last,
    cuDNN's autotuner and fused SGD; step and data-wait times come from CUDA events. Raises
    NonFiniteLossError if the loss becomes NaN or infinite, DataError for unusable data,
    ValueError for a bad ``evaluate_on`` or ``val_fraction``.
    """
    if evaluate_on not in EVALUATE_ON:
        raise ValueError(f"evaluate_on must be one of {EVALUATE_ON}, got {evaluate_on!r}")
    check_val_fraction(val_fraction)  # before decoding anything, whichever the split
    fidelity = get_fidelity(fidelity, genome.backbone) if isinstance(fidelity, str) else fidelity
    data = DataSpec.parse(data) if isinstance(data, str) else data
    device = torch.device(device) if device is not None else default_device()
    cuda = device.type == "cuda"
    train_set = load_images(data, "train", fidelity.resolution)
    train_labels = train_set.labels.numpy()
    if evaluate_on == "val":
        fit_indices, eval_indices = train_val_indices(train_labels, val_fraction)
        eval_set = train_set
    else:
        fit_indices = np.arange(len(train_set))
        eval_set = load_images(data, "test", fidelity.resolution)
        eval_indices = np.arange(len(eval_set))
        if eval_set.classes != train_set.classes:
            raise DataError(f"{data.name}: the train and test splits list different classes")

    eval_labels = eval_set.labels.numpy()  # read on the host before the split may move to the GPU
    torch.manual_seed(seed)
    generator = torch.Generator(device).manual_seed(seed)  # where the crops are drawn
    if cuda:
        torch.backends.cudnn.benchmark = True  # static shapes: the autotuned kernels pay back within the first epoch
        train_set = resident(train_set, device)
        eval_set = train_set if evaluate_on == "val" else resident(eval_set, device)
    model = build_proxy(genome, fidelity, len(train_set.classes)).to(device)
    memory_format = memory_format_on(device)
    model = model.to(memory_format=memory_format)
    train_loader = BatchLoader(
        train_set, stratified(train_labels, fit_indices, fidelity.train_subset),
        fidelity.batch_size, device, train=True, generator=generator, memory_format=memory_format,
        crop_scale=fidelity.crop_scale,
    )
    eval_loader = BatchLoader(
        eval_set, stratified(eval_labels, eval_indices, fidelity.test_subset),
        max(fidelity.batch_size, 256), device, train=False, memory_format=memory_format,
    )
    recalibration_loader = BatchLoader(
        train_set, stratified(train_labels, fit_indices, fidelity.recalibration_images),
        256, device, train=False, memory_format=memory_format,
    ) if fidelity.recalibration_images else None
    optimizer = sgd(model.parameters(), fidelity, device)
    schedule = Schedule(optimizer, fidelity, len(train_loader))
    autocast = autocast_on(device)
    loss_fn = nn.CrossEntropyLoss()

    started = time.perf_counter()
    clock = StepClock(cuda)
    images_seen = 0
    top1 = top5 = 0.0
    for epoch in range(1, fidelity.epochs + 1):
        bar = _progress(len(train_loader), f"epoch {epoch}/{fidelity.epochs}", progress)
        loss_sum = train_epoch(model, train_loader, optimizer, schedule.per_batch, autocast, loss_fn, clock, bar)
        images_seen += len(train_loader.indices)
        schedule.end_epoch()
        mean_loss = epoch_loss(loss_sum, len(train_loader), f"epoch {epoch} of {genome}")
        clock.end_epoch()
        if recalibration_loader is not None:
            with autocast:
                recalibrate_batchnorm(model, recalibration_loader)
        top1, top5 = evaluate(model, eval_loader, autocast)
        elapsed = time.perf_counter() - started
        metrics = {"epoch": epoch, "top1": top1, "top5": top5, "loss": mean_loss, "seconds": elapsed,
                   "images_per_second": images_seen / max(clock.step_seconds, 1e-9)}
        if progress:
            print(f"epoch {epoch}/{fidelity.epochs}: loss {mean_loss:.3f}, top-1 {top1:.2f}%, top-5 {top5:.2f}%",
                  file=sys.stderr)
        if report is not None:
            report(epoch, metrics)
    return TrainResult(
        top1=top1, top5=top5, split=evaluate_on, epochs=fidelity.epochs, seconds=time.perf_counter() - started,
        images_per_second=images_seen / max(clock.step_seconds, 1e-9),
        data_wait_share=clock.wait_seconds / max(clock.step_seconds, 1e-9), model=model,
    )


class StepClock:
    """Training-step time and the part of it spent waiting for the batch (``start``, ``fetched``,
    ``stopped`` around each step). On the CPU, host time. On CUDA, the host only queues work,
    so host time would count launches, not work: CUDA events on the stream time each step and
    its batch preparation there, read at ``end_epoch`` after the epoch's one synchronisation."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.step_seconds = self.wait_seconds = 0.0
        self.marks: list = []  # per step: (start, fetched, stopped)
        self.pending: list = []

    def _now(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def start(self) -> None:
        self.pending = [self._now()]

    def fetched(self) -> None:
        self.pending.append(self._now())

    def stopped(self) -> None:
        start, fetched = self.pending
        stopped = self._now()
        if self.cuda:
            self.marks.append((start, fetched, stopped))
        else:
            self.wait_seconds += fetched - start
            self.step_seconds += stopped - start

    def end_epoch(self) -> None:
        if not self.marks:
            return
        self.marks[-1][2].synchronize()
        for start, fetched, stopped in self.marks:  # elapsed_time is in milliseconds
            self.wait_seconds += start.elapsed_time(fetched) / 1000
            self.step_seconds += start.elapsed_time(stopped) / 1000
        self.marks = []


def train_epoch(model: nn.Module, loader: BatchLoader, optimizer: torch.optim.Optimizer,
                step_scheduler, autocast: contextlib.AbstractContextManager, loss_fn: nn.Module,
                clock: StepClock, bar=None, path: Callable[[], nn.Module] | None = None) -> torch.Tensor:
    """One pass over ``loader``, one optimiser step per batch, stepping ``step_scheduler`` (if
    any) after every batch. Each batch trains ``model``, or the network ``path()`` returns when
    called after the batch is fetched (a supernet's sampled path, sharing ``model``'s modules).
    Returns the summed loss where it was computed: on CUDA nothing in here reads from the GPU,
    so the host queues the steps ahead of the GPU's work."""
    model.train()
    loss_sum = torch.zeros((), device=loader.device)
    batches = iter(loader)
    while True:
        clock.start()
        try:
            images, labels = next(batches)
        except StopIteration:
            break
        clock.fetched()
        network = model if path is None else path()
        with autocast:
            loss = loss_fn(network(images), labels)
        # Zeroing to None leaves the modules off a supernet's path without a gradient, so SGD skips
        # them entirely: no weight decay or momentum step for weights the path did not use.
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step_scheduler is not None:
            step_scheduler.step()
        loss_sum += loss.detach()
        clock.stopped()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return loss_sum


def epoch_loss(loss_sum: torch.Tensor, batches: int, where: str) -> float:
    """The mean loss of an epoch of ``batches`` from ``train_epoch``'s sum: the epoch's one read
    from the device. Raises NonFiniteLossError, saying ``where``, if it is NaN or infinite."""
    mean = float(loss_sum) / max(1, batches)
    if not math.isfinite(mean):
        raise NonFiniteLossError(f"training loss became {mean} in {where}")
    return mean


def stratified(labels: np.ndarray, indices: np.ndarray, count: int | None) -> torch.Tensor:
    """``count`` of ``indices`` (all if None) with the classes of ``labels[indices]`` in
    proportion: a fidelity's subset drawn from the images of one role, never across roles."""
    return torch.from_numpy(indices[stratified_subset(labels[indices], count)])


def _progress(total: int, description: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="batch", leave=False, file=sys.stderr)
