"""Landscape files: what a user believes about a backbone's placements, as TOML (format in the
package's docstring). Read strictly: every problem is one ``LandscapeError`` line naming the
file and the key."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..models.backbones import get_backbone
from ..models.genome import INSERT, SUBSTITUTE, Genome, Placement
from .builtins import NUM_CLASSES
from .landscape import CURVE_SHAPES, Curve, Landscape, LandscapeError

TOP_KEYS = {"name", "backbone", "sigma", "base", "num_classes", "curve", "width", "effect", "interaction"}
CURVE_KEYS = {"shape", "rate", "start", "wiggle"}
EFFECT_KEYS = {"layer", "action", "g", "top1"}
INTERACTION_KEYS = {"a", "b", "top1"}
WIDTH_KEYS = {"width_mult", "top1"}


def read_landscape_file(path: Path, content: str) -> Landscape:
    """The landscape the TOML ``content`` of the file ``path`` describes."""
    try:
        data = tomllib.loads(content)
    except tomllib.TOMLDecodeError as error:
        raise LandscapeError(_one_line(f"{path}: not valid TOML: {error}")) from None
    return _Reader(path, data).read()


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Reader:
    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data = path, data

    def fail(self, key: str, problem: str) -> LandscapeError:
        return LandscapeError(_one_line(f"{self.path}: {key}: {problem}"))

    def keys(self, table: dict[str, Any], allowed: set[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(f"{prefix}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def value(self, table: dict[str, Any], key: str, prefix: str, kind: type, default: Any = ...) -> Any:
        """``table[key]`` of type ``kind`` (a float accepts an integer; a number is never a bool)."""
        if key not in table:
            if default is ...:
                raise self.fail(f"{prefix}{key}", "missing")
            return default
        value = table[key]
        accepted = (int, float) if kind is float else kind
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise self.fail(f"{prefix}{key}", f"expected {'a number' if kind is float else kind.__name__}, "
                                              f"got {type(value).__name__} {value!r}")
        if kind is float:
            if not math.isfinite(value):
                raise self.fail(f"{prefix}{key}", f"expected a finite number, got {value!r}")
            return float(value)
        return value

    def rows(self, key: str) -> list[dict[str, Any]]:
        rows = self.value(self.data, key, "", list, default=[])
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise self.fail(f"{key}[{i}]", f"expected a table ([[{key}]]), got {type(row).__name__}")
        return rows

    def read(self) -> Landscape:
        data = self.data
        self.keys(data, TOP_KEYS, "")
        backbone = self.value(data, "backbone", "", str)
        try:
            get_backbone(backbone)
        except ValueError as error:
            raise self.fail("backbone", str(error)) from None
        sigma = self.value(data, "sigma", "", float)
        if sigma < 0:
            raise self.fail("sigma", f"the seed noise's std must be >= 0, got {sigma!r}")
        base = self.value(data, "base", "", float)
        if not 0 <= base <= 100:
            raise self.fail("base", f"expected a top-1 percentage in [0, 100], got {base!r}")
        num_classes = self.value(data, "num_classes", "", int, default=NUM_CLASSES)
        if not 1 <= num_classes <= 100_000:
            raise self.fail("num_classes", f"expected a whole number from 1 to 100000, got {num_classes!r}")
        return Landscape(
            name=self.value(data, "name", "", str, default=self.path.stem), backbone=backbone, sigma=sigma, base=base,
            effects=self.effects(backbone), width_effects=self.widths(), interactions=self.interactions(backbone),
            curve=self.curve(), num_classes=num_classes, detail=f"from {self.path}",
        )

    def curve(self) -> Curve:
        table = self.value(self.data, "curve", "", dict, default={})
        self.keys(table, CURVE_KEYS, "curve.")
        default = Curve()
        shape = self.value(table, "shape", "curve.", str, default=default.shape)
        if shape not in CURVE_SHAPES:
            raise self.fail("curve.shape", f"expected one of {', '.join(CURVE_SHAPES)}, got {shape!r}")
        rate = self.value(table, "rate", "curve.", float, default=default.rate)
        start = self.value(table, "start", "curve.", float, default=default.start)
        wiggle = self.value(table, "wiggle", "curve.", float, default=default.wiggle)
        if rate <= 0:
            raise self.fail("curve.rate", f"expected a number > 0, got {rate!r}")
        if not 0 <= start <= 1:
            raise self.fail("curve.start", f"expected a share of the final top-1 in [0, 1], got {start!r}")
        if wiggle < 0:
            raise self.fail("curve.wiggle", f"expected a multiple of sigma >= 0, got {wiggle!r}")
        return Curve(shape, float(rate), float(start), float(wiggle))

    def widths(self) -> dict[float, float]:
        widths: dict[float, float] = {}
        for i, row in enumerate(self.rows("width")):
            prefix = f"width[{i}]."
            self.keys(row, WIDTH_KEYS, prefix)
            width = self.value(row, "width_mult", prefix, float)
            if not 0 < width <= 4:
                raise self.fail(f"{prefix}width_mult", f"expected a number in (0, 4], got {width!r}")
            if width in widths:
                raise self.fail(f"{prefix}width_mult", f"width {width:g} is given twice")
            widths[width] = self.value(row, "top1", prefix, float)
        return widths

    def effects(self, backbone: str) -> dict[Placement, float]:
        effects: dict[Placement, float] = {}
        for i, row in enumerate(self.rows("effect")):
            prefix = f"effect[{i}]."
            self.keys(row, EFFECT_KEYS, prefix)
            action = self.value(row, "action", prefix, str)
            if action not in (INSERT, SUBSTITUTE):
                raise self.fail(f"{prefix}action", f"expected {INSERT!r} or {SUBSTITUTE!r}, got {action!r}")
            placement = Placement(self.value(row, "layer", prefix, int), action, self.value(row, "g", prefix, int))
            self.check(backbone, placement, f"effect[{i}]")
            if placement in effects:
                raise self.fail(f"effect[{i}]", f"{placement} is given twice")
            effects[placement] = self.value(row, "top1", prefix, float)
        return effects

    def interactions(self, backbone: str) -> dict[tuple[Placement, Placement], float]:
        interactions: dict[tuple[Placement, Placement], float] = {}
        for i, row in enumerate(self.rows("interaction")):
            prefix = f"interaction[{i}]."
            self.keys(row, INTERACTION_KEYS, prefix)
            a, b = (self.placement(backbone, self.value(row, key, prefix, str), f"{prefix}{key}") for key in "ab")
            if a.layer == b.layer:
                raise self.fail(f"interaction[{i}]", f"{a} and {b} are on one layer: no genome holds both")
            pair = (min(a, b), max(a, b))
            if pair in interactions:
                raise self.fail(f"interaction[{i}]", f"the pair {pair[0]}, {pair[1]} is given twice")
            interactions[pair] = self.value(row, "top1", prefix, float)
        return interactions

    def placement(self, backbone: str, text: str, key: str) -> Placement:
        """One placement in the genome notation: ``LgG`` (substitute) or ``L:1gG`` (insert)."""
        if "," in text:
            raise self.fail(key, f"expected one placement like '16g1' or '17:1g4', got {text!r}")
        try:
            genome = Genome.parse(backbone, text)
        except ValueError as error:
            raise self.fail(key, str(error)) from None
        if len(genome.placements) != 1:
            raise self.fail(key, f"expected one placement like '16g1' or '17:1g4', got {text!r}")
        return genome.placements[0]

    def check(self, backbone: str, placement: Placement, key: str) -> None:
        """Raise unless ``backbone`` can hold ``placement`` (at width 1.0)."""
        try:
            Genome(backbone, (placement,))
        except ValueError as error:
            raise self.fail(key, str(error)) from None
