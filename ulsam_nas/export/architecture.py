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


@dataclass(frozen=True)
class Architecture:
    """What is exported: a genome and the settings it is built with."""

    genome: Genome
    num_classes: int
    width_mult: float
    channel_multiple: int | None = None
    input_size: int | None = None  # a proxy's resolution (its strides adapted), or None for 224
    resolution: int = 224

    def build(self) -> PlacedNet:
        return build_model(self.genome, self.num_classes, self.width_mult, channel_multiple=self.channel_multiple,
                           input_size=self.input_size)

    @classmethod
    def from_weights_metadata(cls, genome: Genome, metadata: dict[str, str]) -> Architecture:
        """The architecture a ``python -m ulsam_nas.train --save`` file was trained as."""
        from ..train.fidelity import Fidelity

        fidelity = Fidelity(**json.loads(metadata["fidelity"]))
        scaled = fidelity.width_mult != 1.0
        return cls(genome, int(metadata["num_classes"]), genome.width_mult * fidelity.width_mult,
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
