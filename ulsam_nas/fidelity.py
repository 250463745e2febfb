"""Fidelity presets: how much training a trial gets.

=======  ==========  =====  ======  ========================  =====  ====================================
preset   resolution  width  epochs  train / test images        batch  optimiser
=======  ==========  =====  ======  ========================  =====  ====================================
smoke    32 px       x0.5   2       1600 / 500 (stratified)   64     SGD nesterov, one-cycle lr 0.05
proxy    64 px       x1.0   15      all / all                 128    SGD nesterov, one-cycle lr 0.1
full     224 px      x1.0   150/200 all / all                 128/98 the paper's recipe (see below)
=======  ==========  =====  ======  ========================  =====  ====================================

``smoke`` fits a 2-core CPU (a trial in seconds); ``proxy`` is the GPU default; ``full`` is the
paper's recipe for fine-grained data: MV1 SGD momentum 0.9, lr 0.1 divided by 10 every 30
epochs, batch 128, 150 epochs (the paper gives no weight decay for MV1; we use MV2's 4e-5);
MV2 SGD momentum 0.9, weight decay 4e-5, lr 0.045 x 0.98 every epoch, batch 98, 200 epochs.

Width: the genome's own width times the preset's. A scaled-down proxy rounds channels to
multiples of 16, so every group count the spaces allow (g <= 16) still divides them.
Resolution: below 224 px the last strided layers run at stride 1 until the last feature map is
at least 4x4 (``Backbone.specs``), so the deep layers where ULSAM goes keep a real map. Neither
changes the genome or its cost at 224, which the search's objectives use. Proxies also start
every residual block as the identity (last BatchNorm scale 0, as in Goyal et al. 2017), which
lets a few dozen steps learn far more, and the smoke preset re-estimates BatchNorm statistics
before evaluating (``recalibration_images``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Fidelity:
    name: str
    resolution: int
    width_mult: float  # times the genome's width
    channel_multiple: int | None  # channel rounding of a scaled proxy; None: the backbone's own
    epochs: int
    train_subset: int | None  # training images (stratified, the same for every trial); None: all
    test_subset: int | None  # evaluation images, from the validation or the test split (see train's evaluate_on)
    batch_size: int
    lr: float
    schedule: str  # "onecycle" (per step), "step" (x gamma every step_epochs), "exponential" (x gamma per epoch)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    step_epochs: int = 30
    gamma: float = 0.1
    crop_scale: tuple[float, float] = (0.25, 1.0)  # random-resized-crop area range (plus horizontal flips)
    # Re-estimate BatchNorm statistics on this many training images before each evaluation.
    # A proxy of a few dozen steps moves the weights faster than the running averages follow;
    # without it, eval-mode accuracy of a smoke trial is near chance while batch statistics
    # give three times that.
    recalibration_images: int = 0


SMOKE = Fidelity("smoke", resolution=32, width_mult=0.5, channel_multiple=16, epochs=2, train_subset=1600,
                 test_subset=500, batch_size=64, lr=0.05, schedule="onecycle", crop_scale=(0.5, 1.0),
                 recalibration_images=512)
PROXY = Fidelity("proxy", resolution=64, width_mult=1.0, channel_multiple=None, epochs=15, train_subset=None,
                 test_subset=None, batch_size=128, lr=0.1, schedule="onecycle")
FULL = {
    "mv1": Fidelity("full", resolution=224, width_mult=1.0, channel_multiple=None, epochs=150, train_subset=None,
                    test_subset=None, batch_size=128, lr=0.1, schedule="step", nesterov=False, step_epochs=30, gamma=0.1,
                    crop_scale=(0.08, 1.0)),
    "mv2": Fidelity("full", resolution=224, width_mult=1.0, channel_multiple=None, epochs=200, train_subset=None,
                    test_subset=None, batch_size=98, lr=0.045, schedule="exponential", nesterov=False, gamma=0.98,
                    crop_scale=(0.08, 1.0)),
}
NAMES = ("smoke", "proxy", "full")


def get_fidelity(name: str, backbone: str, epochs: int | None = None) -> Fidelity:
    """The preset ``name`` for ``backbone``, optionally with another number of epochs."""
    if name not in NAMES:
        raise ValueError(f"unknown fidelity {name!r}; choose from {', '.join(NAMES)}")
    fidelity = FULL[backbone] if name == "full" else {"smoke": SMOKE, "proxy": PROXY}[name]
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        fidelity = replace(fidelity, epochs=epochs)
    return fidelity
