"""What a backbone is to the rest of the package: a layer table in the paper's numbering.

The tables, costs and export source import no torch; a backbone's modules (``blocks``) are
imported when a model is first built, so that planning a search or a simulated training does not
load torch (a simulated Ray worker stays light).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from types import ModuleType
from typing import TYPE_CHECKING, Callable

from ..costs import Cost, conv_output_size, linear_cost

if TYPE_CHECKING:
    from torch import nn


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
    the last. ``blocks`` names the module that builds its layers (``make_layer``) and defines
    the block classes they use (``BLOCK_CLASSES``)."""

    name: str
    title: str
    layers: Callable[[float, int | None], tuple[LayerSpec, ...]]
    layer_cost: Callable[[LayerSpec, int, int], Cost]  # (spec, input h, input w)
    # For standalone export: the Python expression that builds a layer (with the block classes
    # it uses, whose source is copied into the exported model.py).
    layer_source: Callable[[LayerSpec], str]
    blocks: str
    head_dropout: float = 0.0  # dropout before the classifier's linear layer; 0 for none

    def _blocks(self) -> ModuleType:
        return importlib.import_module(self.blocks)

    def make_layer(self, spec: LayerSpec) -> nn.Module:
        return self._blocks().make_layer(spec)

    @property
    def block_classes(self) -> tuple[type, ...]:
        return self._blocks().BLOCK_CLASSES

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
        from torch import nn

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
