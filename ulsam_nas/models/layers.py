"""Building blocks shared by the backbones, each with its analytic cost next to it.

Every module that holds weights here has a matching cost function, so the cost model reads the
same layer tables the models are built from and never needs a forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Cost:
    """Cost of a module at a given input size.

    ``params``: every trainable parameter (what ``sum(p.numel())`` gives).
    ``macs``: multiply-accumulates of the conv and linear layers (the paper calls them FLOPs;
    ``torch.utils.flop_counter`` reports twice this).
    ``weights``: conv and linear weights only, no biases and no BatchNorm. This is the paper's
    own parameter count: it reproduces e.g. the "431.6K fewer parameters" of MV2 + (14, 17)
    exactly, which no count that includes BatchNorm does.
    """

    params: int = 0
    macs: int = 0
    weights: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs, self.weights + other.weights)

    def __sub__(self, other: Cost) -> Cost:
        return Cost(self.params - other.params, self.macs - other.macs, self.weights - other.weights)


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: the nearest multiple of ``divisor``, at least ``divisor``
    and never more than 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_output_size(size: int, kernel: int, stride: int) -> int:
    """Spatial output size of a conv/pool with padding kernel // 2."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def conv_cost(
    in_ch: int, out_ch: int, kernel: int, groups: int, out_h: int, out_w: int,
    *, bias: bool = False, batchnorm: bool = True,
) -> Cost:
    """Cost of a Conv2d (optionally with bias) and the BatchNorm after it."""
    weights = kernel * kernel * (in_ch // groups) * out_ch
    params = weights + (out_ch if bias else 0) + (2 * out_ch if batchnorm else 0)
    return Cost(params=params, macs=weights * out_h * out_w, weights=weights)


def linear_cost(in_features: int, out_features: int) -> Cost:
    weights = in_features * out_features
    return Cost(params=weights + out_features, macs=weights, weights=weights)


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias, padding kernel // 2) -> BatchNorm2d -> activation."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1,
        activation: type[nn.Module] | None = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


def init_weights(module: nn.Module) -> None:
    """torchvision's MobileNet initialisation, applied to every layer of the model."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
