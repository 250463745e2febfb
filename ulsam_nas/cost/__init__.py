"""Analytic cost of a genome (params, MACs) from the layer tables, without a forward pass.

``python -m ulsam_nas.cost`` is the command line (``__main__.py``); ``paper.py`` checks the
paper's configurations against their printed figures.
"""

from __future__ import annotations

from ..models.backbones import get_backbone
from ..models.genome import SUBSTITUTE, Genome
from ..models.costs import Cost, ulsam_cost

__all__ = ["Cost", "count_cost"]

def count_cost(
    genome: Genome, num_classes: int = 1000, width_mult: float | None = None,
    resolution: int = 224, ulsam_variant: str = "official", *, channel_multiple: int | None = None,
    proxy: bool = False,
) -> Cost:
    """Params and MACs of ``build_model(genome, num_classes, width_mult, ulsam_variant)`` on a
    square ``resolution`` input, computed from the layer tables without building the model.
    ``channel_multiple`` and ``proxy`` (the model built with ``input_size=resolution``) give the
    cost of a proxy-training network; the search's objectives use neither."""
    backbone = get_backbone(genome.backbone)
    specs = genome.layer_specs(width_mult, channel_multiple, resolution if proxy else None)
    total, size = Cost(), resolution
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
