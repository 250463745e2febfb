"""Analytic cost of a genome (params, MACs) from the layer tables, without a forward pass.

``python -m ulsam_nas.cost`` is the command line (``__main__.py``); ``paper.py`` checks the
paper's configurations against their printed figures.
"""

from __future__ import annotations

from ..backbones import get_backbone
from ..genome import SUBSTITUTE, Genome
from ..layers import Cost
from ..ulsam import ulsam_cost

__all__ = ["Cost", "count_cost"]

def count_cost(
    genome: Genome, num_classes: int = 1000, width_mult: float | None = None,
    resolution: int = 224, ulsam_variant: str = "official",
) -> Cost:
    """Params and MACs of ``build_model(genome, num_classes, width_mult)`` on a square
    ``resolution`` input, computed from the layer tables without building the model."""
    genome = genome.with_width(genome.width_mult if width_mult is None else width_mult)
    backbone = get_backbone(genome.backbone)
    total, size = Cost(), resolution
    specs = backbone.layers(genome.width_mult)
    for spec in specs:
        placement = genome.placement(spec.number)
        if placement is not None and placement.action == SUBSTITUTE:
            total += ulsam_cost(spec.out_ch, placement.groups, size, size, ulsam_variant)
            continue
        total += backbone.layer_cost(spec, size, size)
        size = spec.output_size(size)
        if placement is not None:
            total += ulsam_cost(spec.out_ch, placement.groups, size, size, ulsam_variant)
    return total + backbone.head_cost(specs[-1].out_ch, num_classes)
