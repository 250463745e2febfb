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

Fidelity strings (``parse_fidelity``, every ``--fidelity``) are a preset with optional
overrides, ``PRESET[:KEY=VALUE,...]``, e.g. ``smoke:epochs=6,resolution=48``. Keys:
``epochs`` (1..1000), ``resolution`` (16..512 px), ``width`` (times the genome's, in (0, 4]),
``train_images`` and ``test_images`` (at least 10, or ``all``), ``batch`` (1..4096) and ``lr``
(in (0, 10]). A fidelity's ``name`` is its canonical string: the preset, then only the
overrides that change it, in that key order. The study records it, so the same training
always has the same name whichever way it was written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import NamedTuple


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


class _Key(NamedTuple):
    field: str  # the Fidelity field the key sets
    kind: type  # int: low..high inclusive; float: (low, high]
    low: float
    high: float | None  # None: no upper bound
    all_images: bool = False  # "all" is accepted and means None (every image)

    def expected(self) -> str:
        if self.kind is float:
            return f"a number in ({self.low:g}, {self.high:g}]"
        if self.high is None:
            return f"an integer >= {self.low}" + (" or 'all'" if self.all_images else "")
        return f"an integer in {self.low}..{self.high}"


KEYS = {  # in canonical order
    "epochs": _Key("epochs", int, 1, 1000),
    "resolution": _Key("resolution", int, 16, 512),
    "width": _Key("width_mult", float, 0, 4),
    "train_images": _Key("train_subset", int, 10, None, all_images=True),
    "test_images": _Key("test_subset", int, 10, None, all_images=True),
    "batch": _Key("batch_size", int, 1, 4096),
    "lr": _Key("lr", float, 0, 10),
}


def _value(text: str, key: str, raw: str) -> int | float | None:
    spec = KEYS[key]
    if spec.all_images and raw == "all":
        return None
    if spec.kind is int:
        value = int(raw) if re.fullmatch(r"[0-9]+", raw) else None  # plain digits: no sign, "_" or exponent
        valid = value is not None and spec.low <= value and (spec.high is None or value <= spec.high)
    else:
        try:
            value = float(raw)
        except ValueError:
            value = None
        valid = value is not None and spec.low < value <= spec.high  # also rejects nan and inf
    if not valid:
        raise ValueError(f"fidelity {text!r}: {key} must be {spec.expected()}, got {raw!r}")
    return value


def _split(text: str) -> tuple[str, dict[str, str]]:
    """``PRESET[:KEY=VALUE,...]`` as the preset name and the raw values by key, checked for form only."""
    preset, colon, rest = (part.strip() for part in text.partition(":"))
    if preset not in NAMES:
        where = f" in {text!r}" if colon else ""
        raise ValueError(f"unknown fidelity {preset!r}{where}; choose from {', '.join(NAMES)}")
    pairs: dict[str, str] = {}
    for token in rest.split(",") if colon else ():
        key, equals, raw = (part.strip() for part in token.partition("="))
        if not equals:
            raise ValueError(f"fidelity {text!r}: {token.strip()!r} is not KEY=VALUE; keys: {', '.join(KEYS)}")
        if key not in KEYS:
            raise ValueError(f"unknown fidelity key {key!r} in {text!r}; keys: {', '.join(KEYS)}")
        if key in pairs:
            raise ValueError(f"fidelity {text!r}: {key} is given twice")
        pairs[key] = raw
    return preset, pairs


def _preset(name: str, backbone: str) -> Fidelity:
    if name != "full":
        return {"smoke": SMOKE, "proxy": PROXY}[name]
    if backbone not in FULL:
        raise ValueError(f"fidelity full has no training recipe for backbone {backbone!r}; only for {', '.join(FULL)}")
    return FULL[backbone]


def _build(text: str, preset_name: str, pairs: dict[str, str], backbone: str) -> Fidelity:
    preset = _preset(preset_name, backbone)
    values = {key: _value(text, key, pairs[key]) for key in KEYS if key in pairs}  # in canonical order
    changed = {key: value for key, value in values.items() if value != getattr(preset, KEYS[key].field)}
    fidelity = replace(preset, **{KEYS[key].field: value for key, value in changed.items()})
    if fidelity.width_mult != 1.0 and fidelity.channel_multiple is None:
        # A scaled network needs rounded channels, or a group count the space allows may not divide them.
        fidelity = replace(fidelity, channel_multiple=16)
    overrides = ",".join(f"{key}={'all' if value is None else repr(value)}" for key, value in changed.items())
    return replace(fidelity, name=f"{preset_name}:{overrides}" if overrides else preset_name)


def split_fidelities(text: str) -> list[str]:
    """A comma-separated list of fidelities, each of which may hold commas of its own:
    ``smoke:epochs=1,train_images=320,proxy`` is ``smoke:epochs=1,train_images=320`` and ``proxy``.
    A ``KEY=VALUE`` item continues the fidelity before it (a preset name holds no ``=``)."""
    fidelities: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if "=" in item and ":" not in item and fidelities:
            fidelities[-1] += f",{item}"
        else:
            fidelities.append(item)
    return fidelities


def parse_fidelity(text: str, backbone: str) -> Fidelity:
    """The fidelity ``PRESET[:KEY=VALUE,...]`` for ``backbone``, named canonically (so one
    training has one name in a study, and parsing the name gives the same fidelity). Raises
    ValueError, one line, for an unknown preset or key, a repeated key or a value out of range."""
    return _build(text, *_split(text), backbone)


def get_fidelity(name: str, backbone: str, epochs: int | None = None) -> Fidelity:
    """The fidelity string ``name`` for ``backbone``; ``epochs`` (train's ``--epochs``) replaces its epochs."""
    preset, pairs = _split(name)
    if epochs is None:
        return _build(name, preset, pairs, backbone)
    pairs["epochs"] = str(epochs)
    return _build(f"{preset}:{','.join(f'{k}={v}' for k, v in pairs.items())}", preset, pairs, backbone)
