"""What a backbone is to the rest of the package: a layer table in the paper's numbering."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from torch import nn

from ..layers import Cost, conv_output_size, linear_cost


@dataclass(frozen=True)
class LayerSpec:
    """One numbered layer of a paper table (Table 3 for MV1, Table 5 for MV2)."""

    number: int
    block: str  # "conv3x3", "conv1x1", "dws" (depthwise separable), "ir" (inverted residual)
    in_ch: int
    out_ch: int
    stride: int
    expansion: int = 1  # inverted residual expansion t; 1 for every other block

    @property
    def keeps_shape(self) -> bool:
        """Whether ULSAM, which keeps its input's shape, can stand in for this layer."""
        return self.in_ch == self.out_ch and self.stride == 1

    def output_size(self, size: int) -> int:
        # Strided layers are 3x3 convs with padding 1; stride-1 layers keep the size.
        return conv_output_size(size, 3, self.stride)


@dataclass(frozen=True)
class Backbone:
    """A backbone as tables plus builders. ``layers(width_mult, channel_multiple)`` gives the
    numbered layers with channels scaled by the width multiplier (rounded the backbone's own way,
    or to ``channel_multiple`` when given); the head (pooling + classifier, ``make_head``) follows
    the last."""

    name: str
    title: str
    layers: Callable[[float, int | None], tuple[LayerSpec, ...]]
    make_layer: Callable[[LayerSpec], nn.Module]
    layer_cost: Callable[[LayerSpec, int, int], Cost]  # (spec, input h, input w)
    # For standalone export: the Python expression that builds a layer, and the block classes
    # those expressions use (their source is copied into the exported model.py).
    layer_source: Callable[[LayerSpec], str]
    block_classes: tuple[type, ...]
    head_dropout: float = 0.0  # dropout before the classifier's linear layer; 0 for none

    def specs(
        self, width_mult: float = 1.0, channel_multiple: int | None = None, input_size: int | None = None,
    ) -> tuple[LayerSpec, ...]:
        """The layer table at a width. With ``input_size``, the *last* strided layers run at
        stride 1 until the last feature map is at least MIN_PROXY_MAP wide: a low-resolution
        proxy then still gives the deep layers, where ULSAM goes, a map on which a softmax over
        positions means something, while the cheap early layers keep their strides."""
        specs = list(self.layers(width_mult, channel_multiple))
        if input_size is None:
            return tuple(specs)
        strided = [i for i, spec in enumerate(specs) if spec.stride > 1]
        while strided and final_map_size(specs, input_size) < MIN_PROXY_MAP:
            index = strided.pop()
            specs[index] = replace(specs[index], stride=1)
        return tuple(specs)

    def layer(self, number: int, width_mult: float = 1.0) -> LayerSpec:
        specs = self.layers(width_mult, None)
        if not 1 <= number <= len(specs):
            raise ValueError(
                f"{self.name} layer {number}: out of range ({self.name} has layers 1-{len(specs)})"
            )
        return specs[number - 1]

    def substitutable(self) -> tuple[int, ...]:
        return tuple(spec.number for spec in self.layers(1.0, None) if spec.keeps_shape)

    def make_head(self, in_ch: int, num_classes: int) -> nn.Module:
        """The classifier after the last layer: global average pooling, flatten, (dropout,) linear."""
        dropout = [nn.Dropout(self.head_dropout)] if self.head_dropout else []
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), *dropout, nn.Linear(in_ch, num_classes))

    def head_cost(self, in_ch: int, num_classes: int) -> Cost:
        return linear_cost(in_ch, num_classes)

    def head_source(self, in_ch: int) -> str:
        """``make_head`` as a Python expression using ``num_classes``, for the exported model.py."""
        dropout = f"nn.Dropout({self.head_dropout}), " if self.head_dropout else ""
        return f"nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), {dropout}nn.Linear({in_ch}, num_classes))"


MIN_PROXY_MAP = 4


def final_map_size(specs: list[LayerSpec] | tuple[LayerSpec, ...], input_size: int) -> int:
    size = input_size
    for spec in specs:
        size = spec.output_size(size)
    return size
