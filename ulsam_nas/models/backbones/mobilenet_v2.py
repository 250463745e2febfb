"""MobileNet-V2 in the paper's layer numbering (Table 5); identical to torchvision's
``mobilenet_v2()`` when no ULSAM is placed (layer 1 = features[0], layers 2-18 = the inverted
residual blocks features[1..17], layer 19 = features[18], layer 20 = the classifier)."""

from __future__ import annotations

import functools
from dataclasses import replace

from ..costs import Cost, conv_cost, make_divisible
from .base import Backbone, LayerSpec

# Table 5: layer, block, in, out, stride, expansion t. Output maps at 224:
# 112 (1-2), 56 (3-4), 28 (5-7), 14 (8-14), 7 (15-19).
TABLE = (
    LayerSpec(1, "conv3x3", 3, 32, 2),
    LayerSpec(2, "ir", 32, 16, 1, expansion=1),
    LayerSpec(3, "ir", 16, 24, 2, expansion=6),
    LayerSpec(4, "ir", 24, 24, 1, expansion=6),
    LayerSpec(5, "ir", 24, 32, 2, expansion=6),
    LayerSpec(6, "ir", 32, 32, 1, expansion=6),
    LayerSpec(7, "ir", 32, 32, 1, expansion=6),
    LayerSpec(8, "ir", 32, 64, 2, expansion=6),
    LayerSpec(9, "ir", 64, 64, 1, expansion=6),
    LayerSpec(10, "ir", 64, 64, 1, expansion=6),
    LayerSpec(11, "ir", 64, 64, 1, expansion=6),
    LayerSpec(12, "ir", 64, 96, 1, expansion=6),
    LayerSpec(13, "ir", 96, 96, 1, expansion=6),
    LayerSpec(14, "ir", 96, 96, 1, expansion=6),
    LayerSpec(15, "ir", 96, 160, 2, expansion=6),
    LayerSpec(16, "ir", 160, 160, 1, expansion=6),
    LayerSpec(17, "ir", 160, 160, 1, expansion=6),
    LayerSpec(18, "ir", 160, 320, 1, expansion=6),
    LayerSpec(19, "conv1x1", 320, 1280, 1),
)
DROPOUT = 0.2


def scale_channels(spec: LayerSpec, channels: int, width_mult: float, multiple: int) -> int:
    """torchvision's rounding (to a multiple of 8); the last conv (layer 19) never shrinks."""
    if spec.number == 19 and channels == spec.out_ch:
        return make_divisible(channels * max(1.0, width_mult), multiple)
    return make_divisible(channels * width_mult, multiple)


@functools.lru_cache(maxsize=64)  # immutable specs, read by every genome's validation
def layers(width_mult: float = 1.0, channel_multiple: int | None = None) -> tuple[LayerSpec, ...]:
    multiple = channel_multiple or 8
    return tuple(
        replace(
            spec,
            in_ch=spec.in_ch if spec.number == 1 else scale_channels(spec, spec.in_ch, width_mult, multiple),
            out_ch=scale_channels(spec, spec.out_ch, width_mult, multiple),
        )
        for spec in TABLE
    )


def layer_cost(spec: LayerSpec, in_h: int, in_w: int) -> Cost:
    out_h, out_w = spec.output_size(in_h), spec.output_size(in_w)
    if spec.block != "ir":
        kernel = 3 if spec.block == "conv3x3" else 1
        return conv_cost(spec.in_ch, spec.out_ch, kernel, 1, out_h, out_w)
    hidden = spec.in_ch * spec.expansion
    expand = conv_cost(spec.in_ch, hidden, 1, 1, in_h, in_w) if spec.expansion != 1 else Cost()
    depthwise = conv_cost(hidden, hidden, 3, hidden, out_h, out_w)
    return expand + depthwise + conv_cost(hidden, spec.out_ch, 1, 1, out_h, out_w)


def layer_source(spec: LayerSpec) -> str:
    if spec.block == "ir":
        return f"InvertedResidual({spec.in_ch}, {spec.out_ch}, {spec.stride}, {spec.expansion})"
    kernel = 3 if spec.block == "conv3x3" else 1
    return f"ConvBNAct({spec.in_ch}, {spec.out_ch}, {kernel}, {spec.stride}, activation=nn.ReLU6)"


MOBILENET_V2 = Backbone(
    name="mv2", title="MobileNet-V2", layers=layers, layer_cost=layer_cost, layer_source=layer_source,
    blocks=f"{__package__}.mobilenet_v2_blocks", head_dropout=DROPOUT,
)
