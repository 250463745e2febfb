"""Weight-sharing one-shot mode: train one supernet, then rank genomes with its inherited weights.

This is single-path one-shot NAS (SPOS, Guo et al. 2020) over a search space of ULSAM placements.
A :class:`SuperNet` holds, per layer n of the backbone, the original block and every ULSAM an
allowed (action, g) of layer n needs: one standing in for layer n per g when the space lets it
be substituted, one after layer n per g when the space lets ULSAM be inserted there. No
parameters are shared between different (layer, action, g). ``supernet(x, genome)`` runs exactly
the path of ``genome``; ``supernet.path_net(genome)`` is that path as a :class:`PlacedNet` whose
modules are the supernet's own, with ``build_model``'s state-dict names, so ``extract(genome)``
is the standalone ``build_proxy`` network with the inherited weights (export and ``train --save``
tooling read it unchanged).

Every module is built by ``build_proxy`` itself: the blocks and the head come from the vanilla
network, the ULSAMs of one (action, g) from the genome that places that ULSAM at every layer
allowing it. Width, channel rounding, resolution, initialisation and identity start are then
those of a search trial by construction, and the supernet cannot drift from ``build_proxy``.

``train_supernet`` trains one uniformly sampled path per step (SPOS's uniform sampling, drawn
per layer as Optuna's RandomSampler draws ``space.suggest``) with the fidelity's optimiser and
schedule (``optim``) and a trial's step (``loop.train_epoch``), on the train split less the
validation split the search selects on. It checkpoints
after every epoch and resumes an interrupted run; a JSON key beside the checkpoint refuses a
checkpoint directory that belongs to another run.

``score`` (or a :class:`PathScorer`, to score more genomes later on the same data) re-estimates
each path's BatchNorm statistics on a fixed set of training images, as SPOS does (the running
averages seen in training mix every path), then measures top-1 on the validation split. The
images are loaded onto the device once; a genome costs two forward passes over them.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import VAL_FRACTION, DataError, DataSpec, check_val_fraction, load_images, train_val_indices
from ..data.loader import BatchLoader
from ..models.build import PlacedNet
from ..models.genome import INSERT, SUBSTITUTE, Genome, Placement
from ..models.spaces import SearchSpace
from ..safe_files import check_no_links, replace_file, write_file
from .fidelity import Fidelity, get_fidelity
from .loop import (
    Report,
    StepClock,
    autocast_on,
    build_proxy,
    default_device,
    epoch_loss,
    evaluate,
    memory_format_on,
    recalibrate_batchnorm,
    stratified,
    train_epoch,
)
from .optim import Schedule, sgd

log = logging.getLogger(__name__)

CHECKPOINT = "supernet.pt"
CHECKPOINT_KEY = "supernet.json"
SAMPLERS = ("uniform",)
DEFAULT_BN_IMAGES = 512  # the smoke fidelity's recalibration_images
BN_BATCH = 256  # as loop.train recalibrates: the cumulative average weighs batches, not images


class SuperNet(nn.Module):
    """Every path of ``space`` at one of its widths (default the first), built for ``fidelity``."""

    def __init__(self, space: SearchSpace, num_classes: int, fidelity: Fidelity | str,
                 width_mult: float | None = None) -> None:
        super().__init__()
        width = space.width_mults[0] if width_mult is None else float(width_mult)
        if width not in space.width_mults:
            raise ValueError(f"space {space.name} has no width {width} (widths: {', '.join(map(str, space.width_mults))})")
        self.space, self.num_classes, self.width_mult = space, num_classes, width
        self.fidelity = get_fidelity(fidelity, space.backbone) if isinstance(fidelity, str) else fidelity

        vanilla = build_proxy(Genome(space.backbone, (), width), self.fidelity, num_classes)
        self.blocks = nn.ModuleDict(vanilla.features.named_children())
        self.head = vanilla.head
        self.substitutes = nn.ModuleDict()  # "layer{n}" -> "g{g}" -> the ULSAM standing in for layer n
        self.inserts = nn.ModuleDict()  # "after{n}" -> "g{g}" -> the ULSAM after layer n
        for action, table in ((SUBSTITUTE, self.substitutes), (INSERT, self.inserts)):
            for groups in sorted({g for choice in space.layers.values() for g in choice.groups}):
                layers = [n for n, choice in sorted(space.layers.items())
                          if action in choice.actions and groups in choice.groups]
                if not layers:
                    continue
                genome = Genome(space.backbone, tuple(Placement(n, action, groups) for n in layers), width)
                placed = build_proxy(genome, self.fidelity, num_classes)
                for n in layers:
                    name = f"layer{n}" if action == SUBSTITUTE else f"after{n}"
                    if name not in table:
                        table[name] = nn.ModuleDict()
                    table[name][f"g{groups}"] = placed.features.get_submodule(name)

    def check(self, genome: Genome) -> None:
        """Raise ValueError unless this supernet holds every module of ``genome``."""
        if not self.space.contains(genome) or genome.width_mult != self.width_mult:
            raise ValueError(f"{genome} is not a path of the supernet of space {self.space.name} at width {self.width_mult}")

    def path_net(self, genome: Genome) -> PlacedNet:
        """``genome``'s path as a network sharing the supernet's modules (training it trains
        the supernet), its parts named as ``build_model`` names them."""
        self.check(genome)
        parts: OrderedDict[str, nn.Module] = OrderedDict()
        for name, block in self.blocks.items():
            placement = genome.placement(int(name.removeprefix("layer")))
            if placement is not None and placement.action == SUBSTITUTE:
                block = self.substitutes[name][f"g{placement.groups}"]
            parts[name] = block
            if placement is not None and placement.action == INSERT:
                after = f"after{placement.layer}"
                parts[after] = self.inserts[after][f"g{placement.groups}"]
        return PlacedNet(genome, nn.Sequential(parts), self.head)

    def forward(self, x: torch.Tensor, genome: Genome) -> torch.Tensor:
        return self.path_net(genome)(x)

    def extract(self, genome: Genome) -> PlacedNet:
        """The standalone network a search trial would train for ``genome``, with the weights
        (and BatchNorm statistics) this supernet holds for its path, on the supernet's device."""
        path = self.path_net(genome)
        # build_proxy initialises weights that are overwritten at once: keep it from advancing
        # the global RNG, so extracting never changes what a seeded run does next.
        with torch.random.fork_rng(devices=[]):
            model = build_proxy(genome, self.fidelity, self.num_classes)
        model.load_state_dict(path.state_dict())
        device = next(self.parameters()).device
        # The layout a trial's network has on that device (see train): on CUDA the two layouts
        # run different convolution kernels (TF32 by default), whose outputs differ slightly.
        return model.to(device=device, memory_format=memory_format_on(device)).train(self.training)


def uniform_genome(space: SearchSpace, width_mult: float, generator: torch.Generator) -> Genome:
    """A genome of ``space`` at ``width_mult`` drawn uniformly: per searched layer an action,
    then a group count (drawn for a kept layer too, and ignored, as ``space.suggest`` does)."""
    def pick(options: tuple) -> Any:
        return options[int(torch.randint(len(options), (), generator=generator))]

    placements = []
    for layer, choice in sorted(space.layers.items()):
        if set(choice.actions) == {"keep"}:
            continue
        action, groups = pick(choice.actions), pick(choice.groups)
        if action != "keep":
            placements.append(Placement(layer, action, groups))
    return Genome(space.backbone, tuple(placements), width_mult)


# -- training ----------------------------------------------------------------------------------


def train_supernet(
    space: SearchSpace, data: DataSpec | str, fidelity: Fidelity | str, num_classes: int, seed: int,
    checkpoint_dir: Path | str, epochs: int | None = None, report: Report | None = None,
    device: torch.device | str | None = None, val_fraction: float = VAL_FRACTION, sampler: str = "uniform",
    width_mult: float | None = None, root: Path | str | None = None,
) -> SuperNet:
    """Train the supernet of ``space`` (at ``width_mult``, default its first width) at ``fidelity``
    (``epochs`` replaces its epochs), one uniformly sampled path per step, and return it.

    Trains on the train split less the validation split (``val_fraction`` of every class, the
    images the search selects on), its subset and its batches as a trial's (see ``train``).
    After every epoch the model, optimiser, schedule, RNG states and epoch go to
    ``checkpoint_dir/supernet.pt`` (written atomically) and ``report(epoch, metrics)`` is
    called with epoch, loss, seconds and images_per_second. A call that finds a checkpoint
    resumes after its last finished epoch, exactly as if never stopped (on the CPU), and
    returns at once if it is finished. ``checkpoint_dir/supernet.json`` keys the checkpoint by
    space, data, fidelity (epochs included: they shape the schedule), seed, width and split: a
    checkpoint of another run raises ValueError, as do an unknown sampler and a
    ``num_classes`` the data disagrees with (DataError). Raises NonFiniteLossError when the
    loss becomes NaN or infinite. ``root``: the study folder ``checkpoint_dir`` is in (default
    ``checkpoint_dir``): nothing below it is written or read through a symbolic link
    (``safe_files``; LinkRefused, a ValueError).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown path sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    check_val_fraction(val_fraction)
    if isinstance(fidelity, str):
        fidelity = get_fidelity(fidelity, space.backbone, epochs)
    elif epochs is not None:
        fidelity = replace(fidelity, epochs=epochs)
    data = DataSpec.parse(data) if isinstance(data, str) else data
    device = torch.device(device) if device is not None else default_device()
    cuda = device.type == "cuda"
    width = space.width_mults[0] if width_mult is None else float(width_mult)
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint = checkpoint_dir / CHECKPOINT
    key = _run_key(space, data, fidelity, seed, width, val_fraction, sampler, num_classes)
    root = checkpoint_dir if root is None else Path(root)
    _claim(checkpoint_dir, key, root)

    train_set = load_images(data, "train", fidelity.resolution)
    if len(train_set.classes) != num_classes:
        raise DataError(f"{data}: {len(train_set.classes)} classes, but the supernet was asked for {num_classes}")
    train_labels = train_set.labels.numpy()
    fit_indices, _ = train_val_indices(train_labels, val_fraction)

    torch.manual_seed(seed)
    # The paths come from the batches' generator (order and crops): one state to checkpoint.
    generator = torch.Generator().manual_seed(seed)
    memory_format = memory_format_on(device)
    model = SuperNet(space, num_classes, fidelity, width).to(device=device, memory_format=memory_format)
    loader = BatchLoader(
        train_set, stratified(train_labels, fit_indices, fidelity.train_subset), fidelity.batch_size, device,
        train=True, generator=generator, memory_format=memory_format, crop_scale=fidelity.crop_scale,
    )
    optimizer = sgd(model.parameters(), fidelity, device)
    schedule = Schedule(optimizer, fidelity, len(loader))
    finished = 0
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if cuda and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        generator.set_state(state["rng"]["generator"])
        finished = state["epoch"]
        log.info("%s: resuming after epoch %d of %d", checkpoint, finished, fidelity.epochs)

    autocast = autocast_on(device)
    loss_fn = nn.CrossEntropyLoss()
    started = time.perf_counter()
    clock = StepClock(cuda)  # times batches and steps, not checkpoints
    images_seen = 0

    def sample_path() -> PlacedNet:
        return model.path_net(uniform_genome(space, width, generator))

    for epoch in range(finished + 1, fidelity.epochs + 1):
        loss_sum = train_epoch(model, loader, optimizer, schedule.per_batch, autocast, loss_fn, clock, path=sample_path)
        images_seen += len(loader.indices)
        schedule.end_epoch()
        mean_loss = epoch_loss(loss_sum, len(loader), f"epoch {epoch} of the supernet")
        clock.end_epoch()
        rng = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
        if cuda:
            rng["cuda"] = torch.cuda.get_rng_state(device)
        _save_atomically(checkpoint, root, {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                      "scheduler": schedule.scheduler.state_dict(), "rng": rng})
        if report is not None:
            report(epoch, {"epoch": epoch, "loss": mean_loss, "seconds": time.perf_counter() - started,
                           "images_per_second": images_seen / max(clock.step_seconds, 1e-9)})
    return model


def _run_key(space: SearchSpace, data: DataSpec, fidelity: Fidelity, seed: int, width: float, val_fraction: float,
             sampler: str, num_classes: int) -> dict[str, Any]:
    """What a checkpoint is a checkpoint of, as JSON values (the space by content, not name)."""
    layers = {str(n): {"actions": list(c.actions), "groups": list(c.groups)} for n, c in sorted(space.layers.items())}
    key = {"space": {"name": space.name, "backbone": space.backbone, "layers": layers}, "data": str(data),
           "fidelity": asdict(fidelity), "seed": seed, "width_mult": width, "val_fraction": val_fraction,
           "sampler": sampler, "num_classes": num_classes}
    return json.loads(json.dumps(key))  # tuples become lists, as they will when read back


def _claim(checkpoint_dir: Path, key: dict[str, Any], root: Path) -> None:
    """Write the run key beside the checkpoint, or raise ValueError if the checkpoint there
    belongs to another run (LinkRefused if either is a symbolic link, or a folder above them
    below ``root``)."""
    key_path = checkpoint_dir / CHECKPOINT_KEY
    check_no_links(root, checkpoint_dir / CHECKPOINT)
    check_no_links(root, key_path)
    if (checkpoint_dir / CHECKPOINT).is_file():
        if not key_path.is_file():
            raise ValueError(f"{checkpoint_dir}: {CHECKPOINT} without its {CHECKPOINT_KEY}; cannot tell which run it is")
        stored = json.loads(key_path.read_text(encoding="utf-8"))
        differing = sorted(name for name in key.keys() | stored.keys() if key.get(name) != stored.get(name))
        if differing:
            raise ValueError(f"{checkpoint_dir}: the checkpoint there is of another run (it differs in "
                             f"{', '.join(differing)}); give another checkpoint directory")
        return
    write_file(root, key_path, json.dumps(key, indent=2))


def _save_atomically(path: Path, root: Path, state: dict[str, Any]) -> None:
    """``state`` to ``path`` through a temporary file renamed over it, so a run killed mid-write
    leaves the previous checkpoint whole, and through no symbolic link (``safe_files.replace_file``)."""
    replace_file(root, path, lambda file: torch.save(state, file))


# -- scoring -----------------------------------------------------------------------------------


class PathScorer:
    """Validation top-1 of paths of ``supernet`` with inherited weights, each after
    re-estimating its BatchNorm statistics on the same ``bn_images`` training images.

    The images (stratified draws from the train split less the validation split, and from the
    validation split as a trial evaluates on it) are loaded onto the supernet's device once.
    Scoring leaves the supernet's weights, BatchNorm statistics and mode as they were.
    """

    def __init__(self, supernet: SuperNet, data: DataSpec | str, val_fraction: float = VAL_FRACTION,
                 bn_images: int = DEFAULT_BN_IMAGES) -> None:
        check_val_fraction(val_fraction)
        if bn_images < 1:
            raise ValueError(f"bn_images must be positive, got {bn_images}")
        fidelity = supernet.fidelity
        data = DataSpec.parse(data) if isinstance(data, str) else data
        train_set = load_images(data, "train", fidelity.resolution)
        if len(train_set.classes) != supernet.num_classes:
            raise DataError(f"{data}: {len(train_set.classes)} classes, the supernet has {supernet.num_classes}")
        labels = train_set.labels.numpy()
        fit_indices, val_indices = train_val_indices(labels, val_fraction)
        device = next(supernet.parameters()).device
        self.supernet = supernet
        # Channels-last inputs make every conv run channels-last, on the CPU too (the weights'
        # layout does not matter): scoring a smoke genome on one core takes 0.39 s instead of 0.65 s.
        self.bn_batches = list(BatchLoader(train_set, stratified(labels, fit_indices, bn_images), BN_BATCH, device,
                                           train=False, memory_format=torch.channels_last))
        self.val_batches = list(BatchLoader(train_set, stratified(labels, val_indices, fidelity.test_subset),
                                            max(fidelity.batch_size, 256), device, train=False,
                                            memory_format=torch.channels_last))
        self.autocast = autocast_on(device)

    def __call__(self, genome: Genome) -> float:
        """Top-1 in % of ``genome``'s path on the validation split."""
        path = self.supernet.path_net(genome)
        training = self.supernet.training
        buffers = list(path.buffers())
        saved = [buffer.clone() for buffer in buffers]
        try:
            with torch.inference_mode():
                with self.autocast:
                    recalibrate_batchnorm(path, self.bn_batches)
                top1, _ = evaluate(path, self.val_batches, self.autocast)
        finally:
            with torch.no_grad():
                for buffer, value in zip(buffers, saved):
                    buffer.copy_(value)
            self.supernet.train(training)
        return top1


def score(supernet: SuperNet, genomes: Iterable[Genome], data: DataSpec | str, val_fraction: float = VAL_FRACTION,
          bn_images: int = DEFAULT_BN_IMAGES) -> list[float]:
    """Validation top-1 in % of every genome with the supernet's weights (see :class:`PathScorer`)."""
    scorer = PathScorer(supernet, data, val_fraction, bn_images)
    return [scorer(genome) for genome in genomes]
