"""Training: fidelities, the proxy training loop, the one-shot supernet.

``fidelity`` defines how much training a trial gets; ``loop`` trains one genome
(``train``, re-exported here) and holds the step and epoch every training shares; ``result`` what a
training returns; ``optim`` the optimiser and learning-rate schedule; ``supernet`` the
weight-sharing one-shot mode; ``weights`` writes trained weights; ``python -m ulsam_nas.train``
trains one genome (``command``). The re-exports are imported on first use, so that
``train.fidelity`` and ``train.result`` load no torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"NonFiniteLossError": ".result", "TrainResult": ".result", "train": ".loop"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
