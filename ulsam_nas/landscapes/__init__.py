"""Landscapes: searches whose truth is known.

A landscape gives every genome of a backbone a true top-1; a training observes it plus seed noise,
along a learning curve. ``ulsam_nas.landscapes.trainer.train`` is a trainer with the signature of
``ulsam_nas.train.loop.train`` that reports such trainings epoch by epoch, in no time, so a whole
search (runner, sampler, Ray Tune, the early-stopping scheduler, the study) can be run and scored
against the truth. Selected with ``--dataset landscape:TEXT``, TEXT a built-in
(``NAME[,KEY=VALUE,...]``, see ``builtins``) or a path to a landscape file (TEXT ending in
``.toml`` or holding a ``/``).

A landscape file (TOML; ``search_spaces/landscapes/example.toml`` is an annotated one)::

    name = "my belief"        # optional, default the file's stem
    backbone = "mv2"          # required: mv1 or mv2
    sigma = 1.0               # required: std of the seed noise, pp (>= 0)
    base = 63.0               # required: top-1 of the vanilla genome at width 1.0, %
    num_classes = 200         # optional (default 10): the class count the cost objectives use

    [curve]                   # optional: the learning curve (defaults shown)
    shape = "exponential"     # or "linear"
    rate = 3.0                # exponential: share reached = (1 - exp(-rate t)) / (1 - exp(-rate)), t = epoch / epochs
    start = 0.3               # share of the final top-1 at epoch 0
    wiggle = 0.5              # per-epoch noise before the last epoch, in units of sigma, fading to 0

    [[effect]]                # pp added when the genome holds this placement; absent ones add 0
    layer = 16
    action = "substitute"     # or "insert"
    g = 1
    top1 = -2.0

    [[interaction]]           # pp added when the genome holds both, in the genome notation:
    a = "16g1"                # LgG substitutes layer L, L:1gG inserts after it
    b = "17:1g4"
    top1 = -1.5

    [[width]]                 # pp added at this width multiplier
    width_mult = 0.75
    top1 = -4.0

Unknown keys, wrong types, non-finite numbers, a negative sigma and placements the backbone cannot
hold are refused: one ``LandscapeError`` line naming the file and the key.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from ..models.spaces import SearchSpace
from .builtins import builtin_landscape, builtin_space
from .files import read_landscape_file
from .landscape import Curve, Landscape, LandscapeError

__all__ = ["Curve", "Landscape", "LandscapeError", "builtin_space", "load_landscape", "names_a_file"]


def names_a_file(text: str) -> bool:
    """Whether a landscape text is a path to a file (it ends in ``.toml`` or holds a ``/``), not a built-in."""
    text = text.strip()
    return text.lower().endswith(".toml") or "/" in text


def landscape_slug(text: str) -> str:
    """A folder-name form of a landscape's text: a file's stem, or a built-in's text with every
    character other than letters, digits, '.', '_' and '-' made '-' (``additive,sigma=2`` ->
    ``additive-sigma-2``)."""
    text = Path(text).stem if names_a_file(text) else text
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:64] or "landscape"


def load_landscape(text: str, space: SearchSpace) -> Landscape:
    """The landscape ``text`` (a built-in ``NAME[,KEY=VALUE,...]`` or a landscape file) for the
    backbone of ``space``. A built-in is defined on that backbone's built-in space (see
    ``builtins``), so the driver, whatever space it searches, and a Ray trial, which knows only
    the genome's backbone, get the same landscape. Cached: the trainer calls this every trial.
    Raises LandscapeError (one line) for a landscape that cannot be used."""
    text = text.strip()
    if names_a_file(text):
        path = Path(text).expanduser()
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise LandscapeError(f"{path}: cannot read the landscape file: {error}") from None
        landscape = _from_file(path, content)
    else:
        landscape = _builtin(text, space.backbone)
    if landscape.backbone != space.backbone:
        raise LandscapeError(f"landscape {text}: it is for backbone {landscape.backbone}, "
                             f"space {space.name} for {space.backbone}")
    return landscape


@functools.lru_cache(maxsize=64)
def _from_file(path: Path, content: str) -> Landscape:
    return read_landscape_file(path, content)


@functools.lru_cache(maxsize=64)
def _builtin(text: str, backbone: str) -> Landscape:
    return builtin_landscape(text, backbone)
