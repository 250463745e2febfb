"""A trainer whose truth is known: ``train`` has the signature of ``ulsam_nas.train.loop.train`` and
reports, epoch by epoch, what training ``genome`` on a landscape (``--dataset landscape:TEXT``)
would: top-1 along the landscape's learning curve, ending at its truth plus seed noise.

Nothing trains and nothing sleeps. The seconds a report gives come from the genome's cost: a
nominal training rate of ``TRAINING_MACS_PER_SECOND`` multiply-accumulates, 3x the forward MACs per
image (forward and backward), over the fidelity's training images (``NOMINAL_TRAIN_IMAGES`` when it
takes all of them). top-5 and the loss are stand-ins that move with top-1; the validation and
test splits read the same truth.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import TYPE_CHECKING

from ..cost import count_cost
from ..data import VAL_FRACTION, DataError, DataSpec, check_val_fraction
from ..models.genome import Genome
from ..train.fidelity import Fidelity, get_fidelity
from ..train.result import EVALUATE_ON, Report, TrainResult
from . import builtin_space, load_landscape

if TYPE_CHECKING:
    import torch

TRAINING_MACS_PER_SECOND = 5e11
NOMINAL_TRAIN_IMAGES = 5000  # the built-in synthetic set's training split
TOP5_SHARE = 0.5  # top-5 closes this share of top-1's gap to 100%


def train(
    genome: Genome, data: DataSpec | str = "synthetic", fidelity: Fidelity | str = "smoke", seed: int = 0,
    report: Report | None = None, device: torch.device | str | None = None, progress: bool = False,
    evaluate_on: str = "test", val_fraction: float = VAL_FRACTION,
) -> TrainResult:
    """"Train" ``genome`` on the landscape ``data`` (``landscape:TEXT``): call ``report(epoch,
    metrics)`` for every epoch of the fidelity with top1, top5, loss, epoch, seconds and
    images_per_second, as ``train.loop.train`` does, and return its result (no model). The
    final top-1 is ``Landscape.observe(genome, seed)`` (clipped to [0, 100]), deterministic in
    (landscape, genome, seed). The parameters and their defaults are train.loop.train's;
    ``device`` is unused. Raises DataError for a data spec that is not a landscape (the default
    ``synthetic`` too), LandscapeError for a landscape that cannot be used, ValueError for a bad
    ``evaluate_on`` or ``val_fraction``."""
    if evaluate_on not in EVALUATE_ON:
        raise ValueError(f"evaluate_on must be one of {EVALUATE_ON}, got {evaluate_on!r}")
    check_val_fraction(val_fraction)
    fidelity = get_fidelity(fidelity, genome.backbone) if isinstance(fidelity, str) else fidelity
    data = DataSpec.parse(data) if isinstance(data, str) else data
    if data.name != "landscape":
        raise DataError(f"the landscape trainer trains on landscape:TEXT, not on {data}")
    landscape = load_landscape(str(data.root), builtin_space(genome.backbone))
    final = landscape.observe(genome, seed)
    images_per_second = _images_per_second(genome, landscape.num_classes)
    epoch_seconds = (fidelity.train_subset or NOMINAL_TRAIN_IMAGES) / images_per_second
    epochs = fidelity.epochs
    top1 = top5 = 0.0
    for epoch in range(1, epochs + 1):
        top1 = min(100.0, max(0.0, landscape.curve_at(final, epoch, epochs, genome, seed)))
        top5 = top1 + (100.0 - top1) * TOP5_SHARE
        loss = -math.log(max(top1, 0.1) / 100)
        if progress:
            print(f"epoch {epoch}/{epochs}: loss {loss:.3f}, top-1 {top1:.2f}%, top-5 {top5:.2f}%", file=sys.stderr)
        if report is not None:
            report(epoch, {"epoch": epoch, "top1": top1, "top5": top5, "loss": loss, "seconds": epoch * epoch_seconds,
                           "images_per_second": images_per_second})
    return TrainResult(top1=top1, top5=top5, split=evaluate_on, epochs=epochs, seconds=epochs * epoch_seconds,
                       images_per_second=images_per_second, data_wait_share=0.0)


@functools.lru_cache(maxsize=4096)
def _images_per_second(genome: Genome, num_classes: int) -> float:
    """Training images per second at the nominal rate: 3x the genome's MACs at 224 px per image."""
    return TRAINING_MACS_PER_SECOND / (3 * count_cost(genome, num_classes=num_classes).macs)
