"""What is exported: a genome and the settings it is built with (``Architecture``), and the
weights that go with it (read by ``train.weights.read_weights``), checked tensor by tensor against
the built model before anything is written. A weights file saved with its training fidelity
tells the architecture it was trained as (``Architecture.from_weights_metadata``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from ..models.build import PlacedNet, build_model
from ..models.genome import Genome

MAX_WIDTH = 8.0  # a genome's width (1.4 at most in the shipped spaces) times a proxy fidelity's (at most 4)


@dataclass(frozen=True)
class Architecture:
    """What is exported: a genome and the settings it is built with."""

    genome: Genome
    num_classes: int
    width_mult: float
    channel_multiple: int | None = None
    input_size: int | None = None  # a proxy's resolution (its strides adapted), or None for 224
    resolution: int = 224

    def __post_init__(self) -> None:
        """ValueError unless every size is within what the parsers accept: a weights file's metadata
        or a study is data, and a crafted resolution of 10^6 or 10^12 classes would otherwise be
        allocated."""
        from ..studies import MAX_CLASSES
        from ..train.fidelity import KEYS

        low, high = KEYS["resolution"].low, KEYS["resolution"].high
        checks = [("num_classes", self.num_classes, 1, MAX_CLASSES), ("resolution", self.resolution, low, high),
                  ("input_size", self.input_size, low, high), ("channel_multiple", self.channel_multiple, 1, 64)]
        for name, value, smallest, largest in checks:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not smallest <= value <= largest):
                raise ValueError(f"the architecture's {name}: expected a whole number from {smallest} to {largest}, "
                                 f"got {value!r}")
        if not 0 < self.width_mult <= MAX_WIDTH:
            raise ValueError(f"the architecture's width multiplier: expected a number in (0, {MAX_WIDTH:g}], "
                             f"got {self.width_mult!r}")

    def build(self) -> PlacedNet:
        return build_model(self.genome, self.num_classes, self.width_mult, channel_multiple=self.channel_multiple,
                           input_size=self.input_size)

    @classmethod
    def from_weights_metadata(cls, genome: Genome, metadata: dict[str, str]) -> Architecture:
        """The architecture a ``python -m ulsam_nas.train --save`` file was trained as."""
        from ..train.fidelity import KEYS, Fidelity

        try:
            fidelity = Fidelity(**json.loads(metadata["fidelity"]))
            num_classes = int(metadata["num_classes"])
        except (KeyError, TypeError, ValueError, RecursionError) as error:
            raise ValueError(f"the weights' metadata: not a training's fidelity and class count ({error})") from None
        width = KEYS["width"]
        if isinstance(fidelity.width_mult, bool) or not isinstance(fidelity.width_mult, (int, float)) \
                or not width.low < fidelity.width_mult <= width.high:
            raise ValueError(f"the weights' fidelity width: expected a number in ({width.low:g}, {width.high:g}], "
                             f"got {fidelity.width_mult!r}")
        scaled = fidelity.width_mult != 1.0
        return cls(genome, num_classes, genome.width_mult * fidelity.width_mult,
                   fidelity.channel_multiple if scaled else None, fidelity.resolution, fidelity.resolution)


def check_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """ValueError naming the first tensor that does not fit the architecture."""
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise ValueError(f"the weights do not fit the architecture: tensor {name!r} is missing")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(f"the weights do not fit the architecture: tensor {name!r} has shape "
                             f"{tuple(state[name].shape)}, the model needs {tuple(tensor.shape)}")
    extra = [name for name in state if name not in expected]
    if extra:
        raise ValueError(f"the weights do not fit the architecture: unexpected tensor {extra[0]!r}")
