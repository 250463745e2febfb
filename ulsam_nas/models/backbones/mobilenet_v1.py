"""MobileNet-V1 in the paper's layer numbering (Table 3)."""

from __future__ import annotations

import functools
from dataclasses import replace

from ..costs import Cost, conv_cost, make_divisible
from .base import Backbone, LayerSpec

# Table 3: layer, block, in, out, stride. Output maps at 224: 112, 112, 56, 56, 28, 28, 14 (x6), 7, 7.
TABLE = (
    LayerSpec(1, "conv3x3", 3, 32, 2),
    LayerSpec(2, "dws", 32, 64, 1),
    LayerSpec(3, "dws", 64, 128, 2),
    LayerSpec(4, "dws", 128, 128, 1),
    LayerSpec(5, "dws", 128, 256, 2),
    LayerSpec(6, "dws", 256, 256, 1),
    LayerSpec(7, "dws", 256, 512, 2),
    LayerSpec(8, "dws", 512, 512, 1),
    LayerSpec(9, "dws", 512, 512, 1),
    LayerSpec(10, "dws", 512, 512, 1),
    LayerSpec(11, "dws", 512, 512, 1),
    LayerSpec(12, "dws", 512, 512, 1),
    LayerSpec(13, "dws", 512, 1024, 2),
    LayerSpec(14, "dws", 1024, 1024, 1),
)


def scale_channels(channels: int, width_mult: float, multiple: int | None) -> int:
    """MobileNet-V1's width multiplier alpha: int(channels * alpha) as in the reference code,
    or the nearest multiple of ``multiple``."""
    return int(channels * width_mult) if multiple is None else make_divisible(channels * width_mult, multiple)


@functools.lru_cache(maxsize=64)  # immutable specs, read by every genome's validation
def layers(width_mult: float = 1.0, channel_multiple: int | None = None) -> tuple[LayerSpec, ...]:
    return tuple(
        replace(
            spec,
            in_ch=spec.in_ch if spec.number == 1 else scale_channels(spec.in_ch, width_mult, channel_multiple),
            out_ch=scale_channels(spec.out_ch, width_mult, channel_multiple),
        )
        for spec in TABLE
    )


def layer_cost(spec: LayerSpec, in_h: int, in_w: int) -> Cost:
    out_h, out_w = spec.output_size(in_h), spec.output_size(in_w)
    if spec.block == "conv3x3":
        return conv_cost(spec.in_ch, spec.out_ch, 3, 1, out_h, out_w)
    depthwise = conv_cost(spec.in_ch, spec.in_ch, 3, spec.in_ch, out_h, out_w)
    return depthwise + conv_cost(spec.in_ch, spec.out_ch, 1, 1, out_h, out_w)


def layer_source(spec: LayerSpec) -> str:
    if spec.block == "conv3x3":
        return f"ConvBNAct({spec.in_ch}, {spec.out_ch}, 3, {spec.stride})"
    return f"DepthwiseSeparable({spec.in_ch}, {spec.out_ch}, {spec.stride})"


MOBILENET_V1 = Backbone(
    name="mv1", title="MobileNet-V1", layers=layers, layer_cost=layer_cost, layer_source=layer_source,
    blocks=f"{__package__}.mobilenet_v1_blocks",
)
