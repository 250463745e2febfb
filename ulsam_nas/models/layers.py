"""Building blocks shared by the backbones, and their initialisation.

Every module that holds weights here has a matching cost function in ``costs.py``, so the cost
model reads the same layer tables the models are built from and never needs a forward pass.
"""

from __future__ import annotations

from torch import nn


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
