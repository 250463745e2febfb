"""The built-in landscapes, by text ``NAME[,KEY=VALUE,...]``:

    null                         every genome equally good                        sigma, base
    additive                     one effect per (layer, action, g), drawn         sigma, base, between, seed
    outliers                     flat, but a few placements far worse (planted)    sigma, base, drop
    paper:DATASET                ridge fit to the paper's top-1s on DATASET       sigma, lambda

A built-in is defined on the built-in space of its backbone (``search_spaces/<backbone>.toml``),
whatever space is searched: a Ray trial knows only the genome's backbone, so anything that
depended on the searched space would make the driver's landscape differ from the trials'.
Placements that space does not hold have no effect.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..models.genome import SUBSTITUTE, Genome, Placement
from ..models.spaces import SearchSpace, SpaceError, builtin_spaces, load_space
from .landscape import Landscape, LandscapeError, standard_normal

DEFAULTS = {"sigma": 1.0, "base": 60.0, "between": 1.0, "seed": 0, "drop": 10.0, "lambda": 1.0}
PARAMETERS = {
    "null": ("sigma", "base"),
    "additive": ("sigma", "base", "between", "seed"),
    "outliers": ("sigma", "base", "drop"),
    "paper": ("sigma", "lambda"),
}
NUM_CLASSES = 10  # as many as the built-in synthetic data set's, for the cost objectives
PAPER_CLASSES = {"food101": 101, "cub200": 200, "dogs": 120, "imagenet": 1000}
PLANTED = {
    # The placement the demo found clearly dominated ((16, 17) g=1: layers 16 and 17 substituted
    # with g=1), and its analogue in MV1: the last two of its repeated 512-channel layers.
    "mv2": (Placement(16, SUBSTITUTE, 1), Placement(17, SUBSTITUTE, 1)),
    "mv1": (Placement(11, SUBSTITUTE, 1), Placement(12, SUBSTITUTE, 1)),
}


@functools.cache
def builtin_space(backbone: str) -> SearchSpace:
    """The built-in space of ``backbone`` (``search_spaces/<backbone>.toml``), read once per process."""
    if backbone not in builtin_spaces():
        raise LandscapeError(f"built-in landscapes are defined on the built-in spaces ({', '.join(builtin_spaces())}); "
                             f"backbone {backbone!r} has none: write a landscape file")
    try:
        return load_space(backbone)
    except SpaceError as error:
        raise LandscapeError(str(error)) from None


def builtin_landscape(text: str, backbone: str) -> Landscape:
    """The built-in landscape ``text`` (``NAME[,KEY=VALUE,...]``) for ``backbone``."""
    name, *items = (part.strip() for part in text.split(","))
    kind, _, dataset = name.partition(":")
    if kind not in PARAMETERS or (kind == "paper") != bool(dataset):
        raise LandscapeError(f"unknown landscape {name!r} in {text!r}: give null, additive, outliers, "
                             f"paper:DATASET (optionally with ,KEY=VALUE) or a path to a .toml file")
    values = _parameters(text, kind, items)
    space = builtin_space(backbone)
    if kind == "null":
        return Landscape(text, backbone, values["sigma"], values["base"], detail="every genome equally good")
    if kind == "additive":
        return _additive(text, space, values)
    if kind == "outliers":
        planted = PLANTED[backbone]
        return Landscape(text, backbone, values["sigma"], values["base"], {p: -values["drop"] for p in planted},
                         planted=planted,
                         detail=f"planted {', '.join(map(str, planted))}: {-values['drop']:+g} pp each, the rest flat")
    return _paper(text, space, dataset, values)


def _parameters(text: str, kind: str, items: list[str]) -> dict[str, float]:
    allowed = PARAMETERS[kind]
    values: dict[str, float] = {}
    for item in items:
        key, equals, raw = (part.strip() for part in item.partition("="))
        if not equals or key not in allowed:
            raise LandscapeError(f"landscape {text!r}: {item!r} is not KEY=VALUE with a key of {kind}: {', '.join(allowed)}")
        if key in values:
            raise LandscapeError(f"landscape {text!r}: {key} is given twice")
        values[key] = _number(text, key, raw)
    return {key: values.get(key, DEFAULTS[key]) for key in allowed}


def _number(text: str, key: str, raw: str) -> float:
    try:
        value = int(raw) if key == "seed" else float(raw)
    except ValueError:
        value = None
    checks = {
        "sigma": (lambda v: 0 <= v, "a number >= 0"),
        "base": (lambda v: 0 <= v <= 100, "a percentage in [0, 100]"),
        "between": (lambda v: 0 <= v, "a number >= 0"),
        "seed": (lambda v: 0 <= v, "an integer >= 0"),
        "drop": (lambda v: 0 < v, "a number > 0"),
        "lambda": (lambda v: 0 < v, "a number > 0"),
    }
    valid, expected = checks[key]
    if value is None or not math.isfinite(value) or not valid(value):
        raise LandscapeError(f"landscape {text!r}: {key} must be {expected}, got {raw!r}")
    return value


def _parts(space: SearchSpace) -> list[Placement]:
    """Every (layer, action, g) the space allows."""
    return [Placement(layer, action, g) for layer, choice in sorted(space.layers.items())
            for action in choice.actions if action != "keep" for g in choice.groups]


def _additive(text: str, space: SearchSpace, values: dict[str, float]) -> Landscape:
    """One effect per (layer, action, g) of the space, N(0, s²): each drawn from its own key
    (seed, backbone, placement), then scaled so that the between-genome std over the space's random
    genomes is exactly ``between``."""
    drawn = {p: standard_normal("additive", values["seed"], space.backbone, p) for p in _parts(space)}
    unscaled = Landscape(text, space.backbone, 0.0, 0.0, drawn).between_std(space)
    scale = values["between"] / unscaled if unscaled else 0.0
    return Landscape(text, space.backbone, values["sigma"], values["base"], {p: v * scale for p, v in drawn.items()},
                     detail=f"{len(drawn)} effects N(0, {scale:.2f}²) drawn with seed {values['seed']}")


def _paper(text: str, space: SearchSpace, dataset: str, values: dict[str, float]) -> Landscape:
    """Ridge regression of the paper's top-1s on ``dataset`` (the rows of the space file at the
    vanilla row's width) onto one indicator per (layer, action, g): the vanilla row is the base,
    the effects are shrunk toward 0 by ``lambda``, and the RMS residual over the other rows is kept."""
    rows = [(config.genome(result.groups or 1), result.top1)
            for config in space.paper for result in config.results if result.dataset == dataset]
    vanilla = next((top1 for genome, top1 in rows if not genome.placements and genome.width_mult == 1.0), None)
    if vanilla is None:
        usable = sorted({r.dataset for c in space.paper if c.is_vanilla and c.width_mult == 1.0 for r in c.results})
        raise LandscapeError(f"landscape {text!r}: the paper reports no vanilla {space.backbone} 1.0 top-1 on "
                             f"{dataset!r}; datasets: {', '.join(usable)}")
    rows = [(genome, top1) for genome, top1 in rows if genome.placements and genome.width_mult == 1.0]
    parts = sorted({p for genome, _ in rows for p in genome.placements})
    effects, residual = _ridge(rows, parts, vanilla, values["lambda"])
    return Landscape(text, space.backbone, values["sigma"], vanilla, effects,
                     num_classes=PAPER_CLASSES.get(dataset, NUM_CLASSES), residual=residual,
                     detail=f"ridge fit (lambda = {values['lambda']:g}) of {len(parts)} effects to the paper's "
                            f"{len(rows)} {dataset} rows with ULSAM, vanilla {vanilla:g}%")


def _ridge(rows: list[tuple[Genome, float]], parts: list[Placement], base: float,
           penalty: float) -> tuple[dict[Placement, float], float]:
    """Effects minimising Σ (top1 - base - Σ effects)² + penalty x Σ effect², and the RMS residual."""
    if not rows:
        return {}, 0.0
    features = np.array([[p in genome.placements for p in parts] for genome, _ in rows], dtype=float)
    gains = np.array([top1 - base for _, top1 in rows])
    solution = np.linalg.solve(features.T @ features + penalty * np.eye(len(parts)), features.T @ gains)
    residual = float(np.sqrt(np.mean((gains - features @ solution) ** 2)))
    return {p: float(v) for p, v in zip(parts, solution)}, residual
