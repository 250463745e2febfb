"""The optimiser and learning-rate schedule a fidelity prescribes, for every training here.

A trial's training (``loop.train``) and the supernet's (``supernet.train_supernet``) both build
their optimiser with ``sgd`` and their schedule with :class:`Schedule`, so the two cannot train
with different recipes: SGD with the fidelity's learning rate, momentum, Nesterov and weight
decay (fused on CUDA), its learning rate on the fidelity's schedule (one-cycle, stepped after
every batch; step or exponential decay, stepped after every epoch). The optimiser step itself
is ``loop.train_epoch``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .fidelity import Fidelity


def sgd(parameters: Iterable[torch.nn.Parameter], fidelity: Fidelity, device: torch.device) -> torch.optim.SGD:
    """SGD over ``parameters`` (on ``device``) with the fidelity's settings."""
    # Fused SGD: one kernel for every parameter's update instead of a few per tensor; the CPU keeps
    # the default implementation, and with it its results.
    return torch.optim.SGD(parameters, lr=fidelity.lr, momentum=fidelity.momentum, nesterov=fidelity.nesterov,
                           weight_decay=fidelity.weight_decay, fused=True if device.type == "cuda" else None)


class Schedule:
    """The fidelity's learning-rate schedule on ``optimizer`` over its epochs of
    ``steps_per_epoch`` batches. One-cycle steps after every batch: ``per_batch`` is then the
    scheduler for ``train_epoch`` to step, else None. Step and exponential decay step in
    ``end_epoch``. ``scheduler`` is the torch scheduler (its state goes into checkpoints)."""

    def __init__(self, optimizer: torch.optim.Optimizer, fidelity: Fidelity, steps_per_epoch: int) -> None:
        lr_scheduler = torch.optim.lr_scheduler
        if fidelity.schedule == "onecycle":
            if fidelity.epochs * steps_per_epoch < 8:  # too few steps for warm-up and decay phases
                self.scheduler = lr_scheduler.ConstantLR(optimizer, factor=1.0)
            else:
                self.scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=fidelity.lr, epochs=fidelity.epochs,
                                                         steps_per_epoch=steps_per_epoch, pct_start=0.25)
        elif fidelity.schedule == "step":
            self.scheduler = lr_scheduler.StepLR(optimizer, fidelity.step_epochs, fidelity.gamma)
        else:
            self.scheduler = lr_scheduler.ExponentialLR(optimizer, fidelity.gamma)
        self.per_batch = self.scheduler if fidelity.schedule == "onecycle" else None

    def end_epoch(self) -> None:
        if self.per_batch is None:
            self.scheduler.step()
