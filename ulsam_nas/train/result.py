"""What a training returns and reports, shared by every trainer (the training loop, a landscape's
simulated training): torch-free, so that a simulated worker never loads torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models.build import PlacedNet

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
