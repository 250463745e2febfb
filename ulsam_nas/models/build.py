"""Genome -> nn.Module: the backbone's layer table with ULSAM inserted or substituted."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .backbones import get_backbone
from .genome import INSERT, Genome
from .layers import init_weights
from .ulsam import ULSAM


class PlacedNet(nn.Module):
    """A backbone with ULSAM placements. ``features`` names its parts by the paper's numbering:
    ``layer11`` is layer 11 (a ULSAM if the genome substitutes it), ``after8`` the ULSAM
    inserted after layer 8; ``head`` is pooling and the classifier."""

    def __init__(self, genome: Genome, features: nn.Sequential, head: nn.Module) -> None:
        super().__init__()
        self.genome = genome
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def extra_repr(self) -> str:
        return f"genome={self.genome}"


def build_model(
    genome: Genome, num_classes: int = 1000, width_mult: float | None = None,
    ulsam_variant: str = "official", *, channel_multiple: int | None = None, input_size: int | None = None,
) -> PlacedNet:
    """Build ``genome`` as a PyTorch module.

    ``width_mult`` overrides the genome's width; ``ulsam_variant`` is "official" or "paper".
    Proxy training adapts the network to cheap settings without changing the genome:
    ``channel_multiple`` rounds the scaled channels to that multiple (16 keeps every g <= 16
    valid at any width) and ``input_size`` lets the last strided layers run at stride 1 until
    the last map is at least 4x4 (see ``Backbone.specs``). The placements are checked against
    the layer table actually built.
    """
    specs = genome.layer_specs(width_mult, channel_multiple, input_size)
    if channel_multiple is None and width_mult is not None:
        genome = genome.with_width(width_mult)
    backbone = get_backbone(genome.backbone)
    parts: OrderedDict[str, nn.Module] = OrderedDict()
    for spec in specs:
        placement = genome.placement(spec.number)
        if placement is None or placement.action == INSERT:
            parts[f"layer{spec.number}"] = backbone.make_layer(spec)
        else:
            parts[f"layer{spec.number}"] = ULSAM(spec.out_ch, placement.groups, ulsam_variant)
        if placement is not None and placement.action == INSERT:
            parts[f"after{spec.number}"] = ULSAM(spec.out_ch, placement.groups, ulsam_variant)
    last_channels = specs[-1].out_ch
    model = PlacedNet(genome, nn.Sequential(parts), backbone.make_head(last_channels, num_classes))
    init_weights(model)
    return model
