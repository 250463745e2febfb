"""MobileNet-V2's modules (``mobilenet_v2.py`` holds its table, costs and export source)."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import ConvBNAct
from .base import LayerSpec


class InvertedResidual(nn.Module):
    """1x1 expand (t > 1) -> 3x3 depthwise -> 1x1 linear projection, residual when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNAct(in_ch, hidden, 1, activation=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6),
            ConvBNAct(hidden, out_ch, 1, activation=None),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)

    def start_as_identity(self) -> None:
        """Zero the last BatchNorm scale, so a residual block starts as the identity."""
        if self.use_residual:
            nn.init.zeros_(self.conv[-1][1].weight)


def make_layer(spec: LayerSpec) -> nn.Module:
    if spec.block == "ir":
        return InvertedResidual(spec.in_ch, spec.out_ch, spec.stride, spec.expansion)
    kernel = 3 if spec.block == "conv3x3" else 1
    return ConvBNAct(spec.in_ch, spec.out_ch, kernel, spec.stride, activation=nn.ReLU6)


BLOCK_CLASSES = (InvertedResidual,)  # their source is copied into an exported model.py
