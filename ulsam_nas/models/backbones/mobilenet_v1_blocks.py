"""MobileNet-V1's modules (``mobilenet_v1.py`` holds its table, costs and export source)."""

from __future__ import annotations

from torch import nn

from ..layers import ConvBNAct
from .base import LayerSpec


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise conv -> BN -> ReLU -> 1x1 pointwise conv -> BN -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__(ConvBNAct(in_ch, in_ch, 3, stride, groups=in_ch), ConvBNAct(in_ch, out_ch, 1))


def make_layer(spec: LayerSpec) -> nn.Module:
    if spec.block == "conv3x3":
        return ConvBNAct(spec.in_ch, spec.out_ch, 3, spec.stride)
    return DepthwiseSeparable(spec.in_ch, spec.out_ch, spec.stride)


BLOCK_CLASSES = (DepthwiseSeparable,)  # their source is copied into an exported model.py
