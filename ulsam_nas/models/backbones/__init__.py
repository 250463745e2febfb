"""The backbones ULSAM is placed into, by short name."""

from .base import Backbone, LayerSpec
from .mobilenet_v1 import MOBILENET_V1
from .mobilenet_v2 import MOBILENET_V2

BACKBONES: dict[str, Backbone] = {b.name: b for b in (MOBILENET_V1, MOBILENET_V2)}


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}") from None


__all__ = ["BACKBONES", "Backbone", "LayerSpec", "get_backbone"]
