"""ulsam-nas: neural architecture search for placing ULSAM attention in compact CNNs.

The names below are imported on first use: importing a subpackage (a Ray worker running a
simulated training, the cost model) then loads no torch unless it needs it."""

from __future__ import annotations

import importlib

_EXPORTS = {"Genome": ".models.genome", "Placement": ".models.genome", "ULSAM": ".models.ulsam",
            "build_model": ".models.build", "count_cost": ".cost"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
