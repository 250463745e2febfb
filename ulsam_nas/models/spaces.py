"""Search spaces as TOML files: which placements the search may choose, and the paper's own.

A space file names a backbone and its width multiplier(s), lists per layer the allowed actions
(``keep``, ``insert`` after the layer, ``substitute`` the layer) and group counts g, and carries
every configuration the paper reports for that backbone, with its printed cost and accuracies,
so the search can start from them and reports can mark them. ``search_spaces/mv2.toml`` is the
annotated example; copy it to write your own and pass its path wherever a space name goes.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..names import checked_name
from .backbones import get_backbone
from .genome import INSERT, SUBSTITUTE, Genome, Placement

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
ACTIONS = ("keep", INSERT, SUBSTITUTE)
_FIGURE = re.compile(r"^(?P<value>\d+(?:\.\d+)?)(?P<unit>[KMG])$")
_UNITS = {"K": 10**3, "M": 10**6, "G": 10**9}


class SpaceError(ValueError):
    """A space file that cannot be used; the message names file, key and problem."""


@dataclass(frozen=True)
class PrintedFigure:
    """A cost as the paper prints it, e.g. ``2.77M``: its value and its precision."""

    text: str

    @property
    def value(self) -> Decimal:
        match = _FIGURE.match(self.text)
        assert match, self.text  # checked when the file was loaded
        return Decimal(match["value"]) * _UNITS[match["unit"]]

    @property
    def unit(self) -> Decimal:
        """One unit in the last printed digit (0.01M for "2.77M")."""
        match = _FIGURE.match(self.text)
        assert match, self.text
        return Decimal(1).scaleb(Decimal(match["value"]).as_tuple().exponent) * _UNITS[match["unit"]]


@dataclass(frozen=True)
class PaperResult:
    dataset: str
    groups: int | None  # None for the vanilla backbone
    top1: float
    top5: float | None
    table: int | None


@dataclass(frozen=True)
class PaperConfig:
    """One configuration of the paper: a placement at a width, its printed cost and results."""

    backbone: str
    label: str
    placement: str
    width_mult: float
    params: PrintedFigure
    flops: PrintedFigure
    results: tuple[PaperResult, ...]
    note: str = ""

    @property
    def is_vanilla(self) -> bool:
        return not self.genome(1).placements

    @property
    def groups(self) -> tuple[int, ...]:
        """The group counts the paper reports for this placement (empty for vanilla)."""
        return tuple(sorted({r.groups for r in self.results if r.groups is not None}))

    def genome(self, groups: int) -> Genome:
        return Genome.parse(self.backbone, self.placement, g=groups, width_mult=self.width_mult)


@dataclass(frozen=True)
class LayerChoice:
    actions: tuple[str, ...]
    groups: tuple[int, ...]


@dataclass(frozen=True)
class SearchSpace:
    name: str
    path: Path
    backbone: str
    width_mults: tuple[float, ...]
    layers: dict[int, LayerChoice]
    paper: tuple[PaperConfig, ...]

    def choice(self, layer: int) -> LayerChoice:
        return self.layers.get(layer, LayerChoice(("keep",), ()))

    def contains(self, genome: Genome) -> bool:
        """Whether the search could pick ``genome``."""
        if genome.backbone != self.backbone or genome.width_mult not in self.width_mults:
            return False
        return all(
            p.action in self.choice(p.layer).actions and p.groups in self.choice(p.layer).groups
            for p in genome.placements
        )

    # -- the space as Optuna parameters: "width" (when there is a choice) and, per layer L with
    # a choice, "L<L>" (keep / insert / substitute) and "g<L>" (its group count). Every
    # parameter is sampled in every trial, a fixed search space that NSGA-II crossover, TPE
    # and GP handle alike; g of a kept layer is ignored (and the genome, the duplicate key, the
    # same).

    def _searched_layers(self) -> list[int]:
        return [layer for layer, choice in sorted(self.layers.items()) if set(choice.actions) != {"keep"}]

    def suggest(self, trial: Any) -> Genome:
        """The genome an Optuna trial (define-by-run) picks from this space."""
        width = self.width_mults[0]
        if len(self.width_mults) > 1:
            width = trial.suggest_categorical("width", list(self.width_mults))
        placements = []
        for layer in self._searched_layers():
            choice = self.choice(layer)
            action = trial.suggest_categorical(f"L{layer}", list(choice.actions))
            groups = trial.suggest_categorical(f"g{layer}", list(choice.groups))
            if action != "keep":
                placements.append(Placement(layer, action, groups))
        return Genome(self.backbone, tuple(placements), width)

    def params(self, genome: Genome) -> dict[str, Any]:
        """The Optuna parameters that make ``suggest`` return ``genome`` (for enqueue_trial)."""
        if not self.contains(genome):
            raise ValueError(f"{genome} is not in space {self.name}")
        params: dict[str, Any] = {"width": genome.width_mult} if len(self.width_mults) > 1 else {}
        for layer in self._searched_layers():
            placement = genome.placement(layer)
            params[f"L{layer}"] = "keep" if placement is None else placement.action
            params[f"g{layer}"] = self.choice(layer).groups[0] if placement is None else placement.groups
        return params

    def paper_labels(self) -> dict[Genome, str]:
        return {genome: label for genome, label in self.paper_genomes()}

    def paper_genomes(self) -> list[tuple[Genome, str]]:
        """Every paper configuration as (genome, label), one per reported group count."""
        out = []
        for config in self.paper:
            if config.is_vanilla:
                out.append((config.genome(1), config.label))
            for g in config.groups:
                out.append((config.genome(g), f"{config.label} g={g}"))
        return out

    def vanilla(self, width_mult: float) -> PaperConfig | None:
        return next((c for c in self.paper if c.is_vanilla and c.width_mult == width_mult), None)


def builtin_spaces() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def resolve_space(name_or_path: str) -> Path:
    """A built-in space name (``mv1``, ``mv2``) or a path to a .toml file."""
    builtin = BUILTIN_DIR / f"{name_or_path}.toml"
    if "/" not in name_or_path and builtin.is_file():
        return builtin
    path = Path(name_or_path)
    if path.is_file():
        return path
    raise SpaceError(
        f"unknown space {name_or_path!r}: give {', '.join(builtin_spaces())} or a path to a .toml file"
    )


def load_space(name_or_path: str | Path) -> SearchSpace:
    path = resolve_space(str(name_or_path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise SpaceError(f"{path}: not valid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpaceError(f"{path}: cannot read: {error}") from None
    return _SpaceReader(path, data).read()


class _SpaceReader:
    """Validates a parsed space file, naming file and key in every error."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data = path, data

    def fail(self, key: str, problem: str) -> SpaceError:
        return SpaceError(f"{self.path}: {key}: {problem}")

    def get(self, table: dict[str, Any], key: str, prefix: str, kind: type | tuple[type, ...],
            default: Any = ...) -> Any:
        if key not in table:
            if default is ...:
                raise self.fail(f"{prefix}{key}", "missing")
            return default
        value = table[key]
        if not isinstance(value, kind) or isinstance(value, bool) and bool not in _as_tuple(kind):
            names = " or ".join(t.__name__ for t in _as_tuple(kind))
            raise self.fail(f"{prefix}{key}", f"expected {names}, got {type(value).__name__} {value!r}")
        return value

    def unknown_keys(self, table: dict[str, Any], allowed: set[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(f"{prefix}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def read(self) -> SearchSpace:
        data = self.data
        self.unknown_keys(data, {"name", "backbone", "width_mults", "layers", "paper"}, "")
        backbone_name = self.get(data, "backbone", "", str)
        try:
            backbone = get_backbone(backbone_name)
        except ValueError as error:
            raise self.fail("backbone", str(error)) from None
        widths = self.get(data, "width_mults", "", list)
        if not widths:
            raise self.fail("width_mults", "empty list")
        for i, width in enumerate(widths):
            if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 4:
                raise self.fail(f"width_mults[{i}]", f"expected a number in (0, 4], got {width!r}")
        width_mults = tuple(float(w) for w in widths)
        layers_table = self.get(data, "layers", "", dict)
        layers = {}
        for key, entry in layers_table.items():
            prefix = f"layers.{key}"
            if not key.isdigit():
                raise self.fail(prefix, "layer keys are the paper's layer numbers")
            number = int(key)
            try:
                specs = [backbone.layer(number, w) for w in width_mults]
            except ValueError as error:
                raise self.fail(prefix, str(error)) from None
            if not isinstance(entry, dict):
                raise self.fail(prefix, "expected a table {actions = [...], groups = [...]}")
            layers[number] = self.read_layer(entry, prefix, specs)
        paper_entries = self.get(data, "paper", "", list, default=[])
        paper = tuple(self.read_paper(entry, f"paper[{i}]", backbone_name) for i, entry in enumerate(paper_entries))
        return SearchSpace(self.read_name(), self.path, backbone_name, width_mults, layers, paper)

    def read_name(self) -> str:
        """``name`` (default: the file's stem), which names the default study folder: a plain folder name."""
        name = self.get(self.data, "name", "", str, default=self.path.stem)
        try:
            return checked_name("space name", name)
        except ValueError as error:
            raise self.fail("name", str(error)) from None

    def read_layer(self, entry: dict[str, Any], prefix: str, specs: list) -> LayerChoice:
        self.unknown_keys(entry, {"actions", "groups"}, f"{prefix}.")
        actions = self.get(entry, "actions", f"{prefix}.", list)
        if not actions or len(set(actions)) != len(actions) or not set(actions) <= set(ACTIONS):
            raise self.fail(f"{prefix}.actions", f"expected distinct actions from {', '.join(ACTIONS)}, got {actions!r}")
        if SUBSTITUTE in actions and not specs[0].keeps_shape:
            spec = specs[0]
            raise self.fail(
                f"{prefix}.actions",
                f"layer {spec.number} cannot be substituted: it changes the shape "
                f"({spec.in_ch} -> {spec.out_ch} channels, stride {spec.stride})",
            )
        places_ulsam = set(actions) - {"keep"}
        groups = self.get(entry, "groups", f"{prefix}.", list, default=[])
        if places_ulsam and not groups:
            raise self.fail(f"{prefix}.groups", "missing: insert/substitute need group counts")
        for g in groups:
            if isinstance(g, bool) or not isinstance(g, int) or g < 1:
                raise self.fail(f"{prefix}.groups", f"expected positive integers, got {g!r}")
            for spec, width in zip(specs, self.data["width_mults"]):
                if spec.out_ch % g:
                    raise self.fail(
                        f"{prefix}.groups",
                        f"g={g} does not divide layer {spec.number}'s {spec.out_ch} channels at width {width}",
                    )
        return LayerChoice(tuple(actions), tuple(sorted(set(groups))))

    def read_paper(self, entry: Any, prefix: str, backbone: str) -> PaperConfig:
        if not isinstance(entry, dict):
            raise self.fail(prefix, "expected a table")
        self.unknown_keys(entry, {"label", "placement", "width_mult", "params", "flops", "results", "note"}, f"{prefix}.")
        placement = self.get(entry, "placement", f"{prefix}.", str)
        width = float(self.get(entry, "width_mult", f"{prefix}.", (int, float), default=1.0))
        figures = {}
        for key in ("params", "flops"):
            text = self.get(entry, key, f"{prefix}.", str)
            if not _FIGURE.match(text):
                raise self.fail(f"{prefix}.{key}", f"expected a printed figure like '2.77M', got {text!r}")
            figures[key] = PrintedFigure(text)
        results = tuple(
            self.read_result(r, f"{prefix}.results[{i}]")
            for i, r in enumerate(self.get(entry, "results", f"{prefix}.", list, default=[]))
        )
        default_label = f"{backbone.upper()} {width:g} {placement}"
        config = PaperConfig(
            backbone=backbone, label=self.get(entry, "label", f"{prefix}.", str, default=default_label),
            placement=placement, width_mult=width, params=figures["params"], flops=figures["flops"],
            results=results, note=self.get(entry, "note", f"{prefix}.", str, default=""),
        )
        try:
            for g in config.groups or (1,):
                config.genome(g)
        except ValueError as error:
            raise self.fail(f"{prefix}.placement", str(error)) from None
        if config.is_vanilla and config.groups:
            raise self.fail(f"{prefix}.results", "the vanilla backbone has no group count g")
        if not config.is_vanilla and any(r.groups is None for r in results):
            raise self.fail(f"{prefix}.results", "every result of a ULSAM placement needs its g")
        return config

    def read_result(self, entry: Any, prefix: str) -> PaperResult:
        if not isinstance(entry, dict):
            raise self.fail(prefix, "expected a table {dataset, g, top1, top5, table}")
        self.unknown_keys(entry, {"dataset", "g", "top1", "top5", "table"}, f"{prefix}.")
        accuracies = {}
        for key in ("top1", "top5"):
            value = self.get(entry, key, f"{prefix}.", (int, float), default=None if key == "top5" else ...)
            if value is not None and not (0 <= value <= 100 and math.isfinite(value)):
                raise self.fail(f"{prefix}.{key}", f"expected a percentage in [0, 100], got {value!r}")
            accuracies[key] = value
        g = self.get(entry, "g", f"{prefix}.", int, default=None)
        if g is not None and g < 1:
            raise self.fail(f"{prefix}.g", f"expected a positive integer, got {g}")
        return PaperResult(
            dataset=self.get(entry, "dataset", f"{prefix}.", str), groups=g,
            top1=float(accuracies["top1"]),
            top5=None if accuracies["top5"] is None else float(accuracies["top5"]),
            table=self.get(entry, "table", f"{prefix}.", int, default=None),
        )


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def random_genomes(space: SearchSpace, count: int, seed: int, exclude: set[Genome] = frozenset()) -> list[Genome]:
    """``count`` distinct genomes drawn by Optuna's RandomSampler from the space's parameters."""
    import optuna  # only here: loading a space needs no Optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    genomes: list[Genome] = []
    for _ in range(100 * count):
        genome = space.suggest(study.ask())
        if genome not in exclude and genome not in genomes:
            genomes.append(genome)
        if len(genomes) == count:
            return genomes
    raise ValueError(f"space {space.name} has fewer than {count} distinct genomes to draw")


def every_part(space: SearchSpace) -> list[Genome]:
    """One genome per (layer, action, g) the space allows, at each width: together they hold
    every part any genome of the space can have (what a latency table times)."""
    return [Genome(space.backbone, (Placement(layer, action, g),), width)
            for width in space.width_mults for layer, choice in sorted(space.layers.items())
            for action in choice.actions if action != "keep" for g in choice.groups]
