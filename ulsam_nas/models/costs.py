"""The analytic cost of every layer the models are built from (params, MACs, the paper's weight
count) and the shape arithmetic it needs, from the layer tables alone.

Torch-free on purpose: the cost model, the search's planning and a simulated training (a
landscape) import this, never torch; the modules that hold weights (``layers.py``, ``ulsam.py``,
the backbones' blocks) each have their cost function here.
"""

from __future__ import annotations

from dataclasses import dataclass

VARIANTS = ("official", "paper")


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


def check_groups(channels: int, groups: int) -> None:
    """Raise ValueError unless ``groups`` is a positive divisor of ``channels``."""
    if groups < 1 or channels % groups:
        raise ValueError(f"ULSAM groups g={groups} must divide channels m={channels}")


def ulsam_cost(channels: int, groups: int, height: int, width: int, variant: str = "official") -> Cost:
    """Analytic cost of one ULSAM block on an (h, w) map.

    MACs are 2*m*h*w for any g (m for the depthwise 1x1 conv, G per group for the pointwise
    G -> 1 conv). Parameters: ``paper`` 2m weights; ``official`` adds each conv's bias and a
    BatchNorm after it: 5G + 3 per group, 5m + 3g in all.
    """
    check_groups(channels, groups)
    check_variant(variant)
    official = variant == "official"
    depthwise = conv_cost(channels, channels, 1, channels, height, width, bias=official, batchnorm=official)
    pointwise = conv_cost(channels, groups, 1, groups, height, width, bias=official, batchnorm=official)
    return depthwise + pointwise


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown ULSAM variant {variant!r}; choose from {', '.join(VARIANTS)}")
