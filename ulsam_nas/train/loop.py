"""Proxy training of one genome: ``train(genome, data, fidelity, seed, report=callback)``.

Also the command line for training one architecture, e.g. the one the search picked, at any
fidelity:

    python -m ulsam_nas.train --space mv2 --genome "(16, 17)" --g 4 --dataset cub200:/data/CUB_200_2011 \\
        --fidelity proxy[:epochs=N,...] [--epochs N] [--evaluate-on {test,val}] [--save weights.safetensors]

The search trains with ``evaluate_on="val"`` (it selects on images held out from the train
split); the test split is read only to report a chosen architecture (``evaluate_on="test"``,
this command's default).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data import VAL_FRACTION, DataError, DataSpec, check_val_fraction, load_images, stratified_subset, train_val_indices
from ..data.loader import BatchLoader, resident
from ..models.build import PlacedNet, build_model
from ..models.genome import Genome
from .fidelity import Fidelity, get_fidelity

log = logging.getLogger(__name__)
Report = Callable[[int, dict], None]
EVALUATE_ON = ("test", "val")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    top1: float  # % on ``split`` after the last epoch
    top5: float
    split: str  # where top1 and top5 were measured: "val" (held out from the train split) or "test"
    epochs: int
    seconds: float
    images_per_second: float  # training images per second of training steps
    data_wait_share: float  # share of training-step time spent waiting for batches
    model: PlacedNet | None = field(default=None, repr=False)

    def metrics(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "model"}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def _scheduler(optimizer: torch.optim.Optimizer, fidelity: Fidelity, steps_per_epoch: int):
    """(scheduler, steps it per batch?)"""
    if fidelity.schedule == "onecycle":
        if fidelity.epochs * steps_per_epoch < 8:  # too few steps for warm-up and decay phases
            return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0), True
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=fidelity.lr, epochs=fidelity.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.25
        ), True
    if fidelity.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, fidelity.step_epochs, fidelity.gamma), False
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, fidelity.gamma), False


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
    memory_format = torch.channels_last if cuda else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    train_loader = BatchLoader(
        train_set, _stratified(train_labels, fit_indices, fidelity.train_subset),
        fidelity.batch_size, device, train=True, generator=generator, memory_format=memory_format,
        crop_scale=fidelity.crop_scale,
    )
    eval_loader = BatchLoader(
        eval_set, _stratified(eval_labels, eval_indices, fidelity.test_subset),
        max(fidelity.batch_size, 256), device, train=False, memory_format=memory_format,
    )
    recalibration_loader = BatchLoader(
        train_set, _stratified(train_labels, fit_indices, fidelity.recalibration_images),
        256, device, train=False, memory_format=memory_format,
    ) if fidelity.recalibration_images else None
    # Fused SGD: one kernel for every parameter's update instead of a few per tensor; the CPU keeps
    # the default implementation, and with it its results.
    optimizer = torch.optim.SGD(model.parameters(), lr=fidelity.lr, momentum=fidelity.momentum,
                                nesterov=fidelity.nesterov, weight_decay=fidelity.weight_decay,
                                fused=True if cuda else None)
    scheduler, per_step = _scheduler(optimizer, fidelity, len(train_loader))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    loss_fn = nn.CrossEntropyLoss()

    started = time.perf_counter()
    clock = StepClock(cuda)
    images_seen = 0
    top1 = top5 = 0.0
    for epoch in range(1, fidelity.epochs + 1):
        bar = _progress(len(train_loader), f"epoch {epoch}/{fidelity.epochs}", progress)
        loss_sum = train_epoch(model, train_loader, optimizer, scheduler if per_step else None, autocast, loss_fn,
                               clock, bar)
        images_seen += len(train_loader.indices)
        if not per_step:
            scheduler.step()
        mean_loss = float(loss_sum) / max(1, len(train_loader))  # the epoch's one read from the device
        clock.end_epoch()
        if not torch.isfinite(torch.tensor(mean_loss)):
            raise NonFiniteLossError(f"training loss became {mean_loss} in epoch {epoch} of {genome}")
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
                clock: StepClock, bar=None) -> torch.Tensor:
    """One pass over ``loader``, stepping ``step_scheduler`` (if any) after every batch. Returns
    the summed loss where it was computed: on CUDA nothing in here reads from the GPU, so the
    host queues the steps ahead of the GPU's work."""
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
        with autocast:
            loss = loss_fn(model(images), labels)
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


def _stratified(labels: np.ndarray, indices: np.ndarray, count: int | None) -> torch.Tensor:
    """``count`` of ``indices`` (all if None) with the classes of ``labels[indices]`` in
    proportion: a fidelity's subset drawn from the images of one role, never across roles."""
    return torch.from_numpy(indices[stratified_subset(labels[indices], count)])


def _progress(total: int, description: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="batch", leave=False, file=sys.stderr)


def save_weights(model: PlacedNet, path: Path, metadata: dict[str, str]) -> None:
    """Weights as safetensors (``.safetensors``) or a weights-only torch file (anything else),
    with the build arguments in the metadata so the network can be rebuilt."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path), metadata=metadata)
    else:
        torch.save({"state_dict": state, "metadata": metadata}, path)


# -- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from ..cli import ArgumentParser, fail, genome_from_cli
    from ..models.spaces import load_space

    parser = ArgumentParser(prog="python -m ulsam_nas.train",
                            description="Train one ULSAM placement from scratch and report top-1 / top-5.")
    parser.add_argument("--space", default="mv2", help="search space: mv1, mv2 or a .toml path (default mv2)")
    parser.add_argument("--genome", default="vanilla",
                        help="placement in the paper's notation, e.g. '(16, 17)', or a canonical genome string")
    parser.add_argument("--g", type=int, default=None, help="group count for placements without their own gN")
    parser.add_argument("--width", type=float, default=None, help="width multiplier (default: the space's first)")
    parser.add_argument("--dataset", default="synthetic", help="NAME[:ROOT]: synthetic, food101, cub200, dogs, folder")
    parser.add_argument("--fidelity", default=None,
                        help="smoke, proxy or full, optionally with overrides, e.g. smoke:epochs=8,resolution=48 "
                             "(keys in ulsam_nas.train.fidelity; default: proxy with a GPU, smoke without)")
    parser.add_argument("--epochs", type=int, default=None, help="override the fidelity's number of epochs (shorthand)")
    parser.add_argument("--evaluate-on", choices=EVALUATE_ON, default="test",
                        help="test: train on the whole train split, report on the test split (default; for a chosen "
                             "architecture); val: hold out --val-fraction of the train split and evaluate there "
                             "(what the search selects on)")
    parser.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                        help=f"share of each class's training images held out with --evaluate-on val (default {VAL_FRACTION})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--save", type=Path, default=None,
                        help="write the trained weights: .safetensors, or a weights-only torch file (.pt)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        check_val_fraction(args.val_fraction)
        space = load_space(args.space)
        genome = genome_from_cli(args.genome, args.g, args.width, space)
        fidelity_name = args.fidelity or ("proxy" if torch.cuda.is_available() else "smoke")
        fidelity = get_fidelity(fidelity_name, genome.backbone, args.epochs)
        data = DataSpec.parse(args.dataset)
        device = torch.device(args.device) if args.device else default_device()
        if device.type == "cuda" and not torch.cuda.is_available():
            fail("--device cuda: no CUDA GPU is available here")
        print(f"training {genome} on {data} at fidelity {fidelity.name} "
              f"({fidelity.resolution}px, width x{fidelity.width_mult}, {fidelity.epochs} epochs) on {device}",
              file=sys.stderr)
        result = train(genome, data, fidelity, seed=args.seed, device=device, progress=True,
                       evaluate_on=args.evaluate_on, val_fraction=args.val_fraction)
    except ValueError as error:  # bad genome, space, data set, fidelity or val fraction (DataError, SpaceError)
        fail(str(error))
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.save is not None:
        metadata = {"genome": str(genome), "num_classes": str(result.model.head[-1].out_features),
                    "fidelity": json.dumps(asdict(fidelity)), "dataset": str(data), "seed": str(args.seed),
                    "top1": f"{result.top1:.4f}", "top5": f"{result.top5:.4f}", "split": result.split}
        save_weights(result.model, args.save, metadata)
    if args.json:
        print(json.dumps({"genome": str(genome), **result.metrics()}))
    else:
        split = "validation" if result.split == "val" else "test"
        print(f"{genome}: top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}% on the {split} split  "
              f"({result.epochs} epochs, {result.seconds:.1f} s, {result.images_per_second:.0f} images/s)")
        if args.save is not None:
            print(f"weights written to {args.save}")
    return 0

