"""ULSAM: ultra-lightweight subspace attention (Saini, Jha et al., WACV 2020, Eq. 2-4).

The input (B, m, h, w) is split into g groups of G = m / g channels. Each group n gets one
spatial attention map

    A_n = softmax_{h*w}( PW_1( maxpool_3x3( DW_1x1(F_n) ) ) )

and the output is ``F_n * A_n + F_n`` (the map broadcast over the group's G channels).

:class:`ULSAM` computes all groups at once: the depthwise 1x1 conv is one depthwise conv over
all m channels, the per-group pointwise conv G -> 1 is a single conv m -> g with ``groups=g``
(so every group keeps its own weights), and the softmax runs over the flattened h*w of each of
the g maps. :class:`GroupLoopULSAM` is the literal per-group loop of the authors' public code,
kept as the reference the tests and the benchmark compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .costs import check_groups, check_variant

# The authors' public code builds BatchNorm2d(momentum=0.9): in PyTorch's convention that puts
# 90% of the weight on the *current* batch, which looks like TensorFlow's decay=0.9 carried over
# unchanged (TF's decay weights the running average). We take what they evidently meant:
# PyTorch's momentum 0.1 (= TF decay 0.9), the same value as every other BatchNorm in the
# MobileNets, so running statistics are smooth averages and eval-mode outputs are stable.
BN_MOMENTUM = 0.1


def conv_unit(in_ch: int, out_ch: int, groups: int, official: bool) -> nn.Sequential:
    """1x1 conv, followed (official variant) by BatchNorm and ReLU."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size=1, groups=groups, bias=official)
    if not official:
        return nn.Sequential(conv)
    return nn.Sequential(conv, nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))


class ULSAM(nn.Module):
    """ULSAM over ``channels`` channels in ``groups`` groups, vectorised over the groups.

    ``variant="official"`` follows the authors' public code (conv biases, BatchNorm + ReLU after
    both convs); ``variant="paper"`` is the bare Eq. 2-4 (bias-free convs, 2m parameters).
    """

    def __init__(self, channels: int, groups: int, variant: str = "official") -> None:
        super().__init__()
        check_groups(channels, groups)
        check_variant(variant)
        self.channels, self.groups, self.variant = channels, groups, variant
        official = variant == "official"
        self.depthwise = conv_unit(channels, channels, channels, official)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.pointwise = conv_unit(channels, groups, groups, official)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The g attention maps, shape (B, g, h, w); each map sums to 1 over its h*w positions."""
        # The attention path runs channels-last: PyTorch's NCHW 3x3 max-pool on CPU is about
        # 2.5x slower than its NHWC kernel, and the pool dominates ULSAM's time. The copy costs
        # one clone of x (a no-op when the model already runs channels-last, as on CUDA).
        x = x.contiguous(memory_format=torch.channels_last)
        logits = self.pointwise(self.pool(self.depthwise(x)))
        return F.softmax(logits.flatten(2), dim=-1).view_as(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, m, h, w = x.shape
        maps = self.attention(x).unsqueeze(2)  # (B, g, 1, h, w): broadcast over each group
        grouped = x.view(b, self.groups, m // self.groups, h, w)
        return (grouped * maps + grouped).view(b, m, h, w)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, groups={self.groups}, variant={self.variant!r}"


class _GroupAttention(nn.Module):
    """One group's sub-module of the authors' public code (G channels -> one map)."""

    def __init__(self, channels: int, official: bool) -> None:
        super().__init__()
        self.depthwise = conv_unit(channels, channels, channels, official)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.pointwise = conv_unit(channels, 1, 1, official)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.pointwise(self.pool(self.depthwise(x)))
        maps = F.softmax(logits.flatten(1), dim=-1).view_as(logits)
        return x * maps + x


class GroupLoopULSAM(nn.Module):
    """Reference ULSAM: a Python loop over per-group sub-modules (torch.chunk ... torch.cat),
    as in the authors' public code. Slow by construction; used to pin :class:`ULSAM`'s numerics
    and as the benchmark baseline."""

    def __init__(self, channels: int, groups: int, variant: str = "official") -> None:
        super().__init__()
        check_groups(channels, groups)
        check_variant(variant)
        self.groups = groups
        official = variant == "official"
        self.group_blocks = nn.ModuleList(
            _GroupAttention(channels // groups, official) for _ in range(groups)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = torch.chunk(x, self.groups, dim=1)
        return torch.cat([block(c) for block, c in zip(self.group_blocks, chunks)], dim=1)

    @torch.no_grad()
    def copy_to(self, target: ULSAM) -> None:
        """Copy these per-group weights (and BatchNorm statistics) into a vectorised ULSAM."""
        for unit in ("depthwise", "pointwise"):
            target_unit = getattr(target, unit)
            for index, layer in enumerate(target_unit):
                for name, tensor in list(layer.named_parameters()) + list(layer.named_buffers()):
                    if name == "num_batches_tracked":
                        continue
                    parts = [getattr(getattr(b, unit)[index], name) for b in self.group_blocks]
                    tensor.copy_(torch.cat(parts, dim=0))
