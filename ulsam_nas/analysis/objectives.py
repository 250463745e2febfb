"""The search's objectives, declared once: name, direction, how a value is shown, and where it
comes from.

An objective's value has one of two sources:

- a **training metric** (``metric``): what the proxy training reports, e.g. validation top-1.
  It is noisy, so a genome's value is the mean over its seeds and the front compares it beyond
  the measured seed noise (``front.py``). A selection holds exactly one, and it is maximised.
- a **computed value** (``compute(genome, context)``): known in the driver before a trial
  starts, so a ``--max-NAME`` limit rejects a genome before any training. The analytic cost
  (MACs, params) and the latency predicted from a table timed on the target are of this kind.
  The front counts two values within the objective's relative ``tolerance`` as equal.

Everything downstream reads objectives by name from a ``Selection``: the study's directions and
metric names, the trial values, dominance and its tolerances, the early-stopping scheduler, the
report's axes and columns, the pick rules, export. A selection is stored on the study
(``objective_specs``), so a study is read back the same way in a process that never registered
its objectives. Adding an objective is one ``register`` call with its value source.
"""

from __future__ import annotations

import functools

import math
import re
import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ..cost import count_cost
from ..models.genome import Genome

# A study holds one training metric and at most three costs, as many as the registry offers: a
# crafted study with more is refused (the exact hypervolume's work grows as n^(d-2) log n in d
# objectives; with 8 of them a report over 80 genomes had not ended after 90 s).
MAX_OBJECTIVES = 4
REFERENCE_FACTOR = 1.25  # the hypervolume's reference point: 1.25 x the vanilla backbone's costs
DEFAULT = "top1,macs,params"
# Trial user attributes and training results the harness writes itself: no objective may take these names.
RESERVED = frozenset({"genome", "seed", "driver", "fidelity", "dataset", "failure", "infeasible", "paper_label",
                      "repeat_of", "reused_from", "waits_for", "seconds", "epoch", "epochs", "top5", "loss",
                      "complete", "images_per_second", "optuna_trial"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class Context:
    """What computed objectives read: the space, the class count and the latency target. Values
    are cached per genome; sources may leave notes for the study in ``study_attrs``."""

    space: Any  # spaces.SearchSpace
    num_classes: int
    latency_device: str = "cpu"
    latency_threads: int = 1
    study_attrs: dict[str, Any] = field(default_factory=dict)
    _costs: dict[str, Any] = field(default_factory=dict, repr=False)
    _latency: Any = field(default=None, repr=False)

    def cost(self, genome: Genome):
        key = str(genome)
        if key not in self._costs:
            self._costs[key] = count_cost(genome, num_classes=self.num_classes)
        return self._costs[key]

    def latency_table(self):
        """The latency table of the space on the target: loaded from the cache, with what it
        lacks timed now (every part the space can hold, once per machine)."""
        if self._latency is None:
            from ..latency.table import LatencyTable
            from ..latency.timing import Target
            from ..models.spaces import every_part

            target = Target(self.latency_device, self.latency_threads)
            table = LatencyTable.load(target, self.space.backbone)
            vanillas = [Genome(self.space.backbone, (), w) for w in self.space.width_mults]
            if table.fill(vanillas + every_part(self.space), self.num_classes, progress=True):
                table.save()
            self.study_attrs["latency_target"] = target.describe()
            self.study_attrs["latency_target_key"] = {"device": target.device, "threads": target.threads}
            self._latency = table
        return self._latency


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # "maximize" or "minimize"
    label: str  # what an axis or a sentence calls it, e.g. "MACs at 224 px"
    unit: str = ""  # after a shown value, e.g. "M", " ms", "%"
    scale: float = 1.0  # a value is shown divided by this
    digits: int = 2
    metric: str | None = None  # a training metric...
    compute: Callable[[Genome, Context], float] | None = field(default=None, compare=False)  # ...or a computed value
    tolerance: float | None = None  # relative; None: the search's --cost-tolerance
    ideal: float = 0.0  # hypervolume normalisation: the best value maps to 0 ...
    reference: float | None = None  # ... and this to 1 (None: REFERENCE_FACTOR x the vanilla backbone's value)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.name in RESERVED:
            raise ValueError(f"objective name {self.name!r}: lowercase letters, digits and _, not one of the "
                             f"harness's own names")
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"objective {self.name}: direction must be maximize or minimize, not {self.direction!r}")

    @property
    def trained(self) -> bool:
        return self.metric is not None

    @property
    def column(self) -> str:
        """The column of this objective in the report's tables, e.g. ``macs_M``, ``latency_ms``."""
        unit = self.unit.strip().replace("%", "")
        return f"{self.name}_{unit}" if unit else self.name

    def show(self, value: float) -> str:
        """E.g. "300.78M MACs at 224 px", "14.21 ms latency"."""
        return f"{value / self.scale:.{self.digits}f}{self.unit} {self.label}"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

    def spec(self) -> dict[str, Any]:
        """Everything but the compute function: what a study stores."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "compute"}


REGISTRY: dict[str, Objective] = {}


def register(objective: Objective) -> Objective:
    """Make ``objective`` available to ``--objectives`` and ``--max-NAME``."""
    if (objective.metric is None) == (objective.compute is None):
        raise ValueError(f"objective {objective.name}: give a training metric or a compute function (one of them)")
    REGISTRY[objective.name] = objective
    return objective


def _latency(genome: Genome, context: Context) -> float:
    return context.latency_table().predict(genome, context.num_classes)


register(Objective("top1", "maximize", "validation top-1", unit="%", metric="top1", ideal=100.0, reference=0.0))
register(Objective("macs", "minimize", "MACs", unit="M", scale=1e6,
                   compute=lambda genome, context: float(context.cost(genome).macs)))
register(Objective("params", "minimize", "params", unit="M", scale=1e6, digits=3,
                   compute=lambda genome, context: float(context.cost(genome).params)))
# Table predictions miss end-to-end timings by a few percent: closer latencies are a tie.
register(Objective("latency", "minimize", "latency", unit=" ms", compute=_latency, tolerance=0.05))


@dataclass(frozen=True)
class Selection:
    """The objectives of one study, in the order of its values."""

    objectives: tuple[Objective, ...]
    cost_tolerance: float = 0.01

    @classmethod
    def parse(cls, text: str, cost_tolerance: float = 0.01) -> Selection:
        """From ``--objectives``, e.g. "top1,latency,params"; ValueError naming what is wrong."""
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            raise ValueError(f"unknown objective {unknown[0]!r}; choose from {', '.join(REGISTRY)}")
        if len(set(names)) != len(names):
            raise ValueError(f"--objectives names an objective twice: {text!r}")
        trained = [n for n in names if REGISTRY[n].trained]
        if len(trained) != 1 or len(names) < 2:
            metrics = ", ".join(o.name for o in REGISTRY.values() if o.trained)
            raise ValueError(f"--objectives needs exactly one training metric ({metrics}) and at least one computed "
                             f"objective, got {text!r}")
        selection = cls(tuple(REGISTRY[n] for n in names), cost_tolerance)
        if selection.trained.direction != "maximize":
            raise ValueError(f"objective {selection.trained.name}: a training metric must be maximised")
        return selection

    @classmethod
    def of_study(cls, study) -> Selection:
        """The selection a study was searched with: its stored specs, or (a study from before
        objectives were stored) the registry's entries of its metric names. A received study is
        data: what it stores is checked (ValueError naming the attribute), so that a crafted value
        is refused here, not met as a traceback deep in a report or an export."""
        tolerance = study.user_attrs.get("cost_tolerance", 0.01)
        if not _finite(tolerance) or not 0 <= tolerance < 0.5:
            raise ValueError(f"the study's cost_tolerance: expected a number in [0, 0.5), got {reprlib.repr(tolerance)}")
        specs = study.user_attrs.get("objective_specs")
        if specs:  # read back without value sources: none is needed to read a study
            selection = cls(stored_objectives(specs), tolerance)
        else:
            selection = cls.parse(",".join(study.metric_names or DEFAULT.split(",")), tolerance)
        directions = [direction.name.lower() for direction in study.directions]
        if selection.directions != directions:
            raise ValueError(f"the study's objectives {', '.join(selection.names)} are to "
                             f"{', '.join(selection.directions)}, but its values are to {', '.join(directions)}")
        return selection

    def specs(self, reference: dict[str, float]) -> list[dict[str, Any]]:
        """What the study stores: every objective with its tolerance and reference resolved."""
        return [o.spec() | {"tolerance": self.tolerance(o), "reference": reference[o.name]} for o in self.objectives]

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @functools.cached_property
    def trained(self) -> Objective:
        return next(o for o in self.objectives if o.trained)

    @functools.cached_property
    def computed(self) -> tuple[Objective, ...]:
        """The objectives known before training, in study order: a genome's ``costs``."""
        return tuple(o for o in self.objectives if not o.trained)

    def __getitem__(self, name: str) -> Objective:
        for o in self.objectives:
            if o.name == name:
                return o
        raise KeyError(name)

    def tolerance(self, objective: Objective) -> float:
        return objective.tolerance if objective.tolerance is not None else self.cost_tolerance

    def values(self, trained: float, costs: tuple[float, ...] | list[float]) -> list[float]:
        """The study's value vector from the trained metric and the costs (``computed`` order)."""
        rest = iter(costs)
        return [trained if o.trained else next(rest) for o in self.objectives]

    def costs(self, genome: Genome, context: Context, limits: dict[str, float] | None = None) -> dict[str, float]:
        """The genome's computed objectives by name, and those its ``--max-NAME`` limits name."""
        wanted = [*self.computed, *(REGISTRY[n] for n in limits or {} if n not in self.names)]
        return {o.name: float(o.compute(genome, context)) for o in wanted}

    def split(self, values: list[float]) -> tuple[float, tuple[float, ...]]:
        """(trained metric, costs) from a study value vector."""
        trained = next(v for o, v in zip(self.objectives, values) if o.trained)
        return trained, tuple(v for o, v in zip(self.objectives, values) if not o.trained)

    def normalise(self, values: list[float], reference: dict[str, float]) -> tuple[float, ...]:
        """Minimisation coordinates for the hypervolume: the ideal value at 0, the reference at 1."""
        return tuple((v - o.ideal) / (reference[o.name] - o.ideal) for o, v in zip(self.objectives, values))

    def reference_point(self, context: Context) -> dict[str, float]:
        """Each objective's hypervolume reference: its own, else REFERENCE_FACTOR x the value of
        the vanilla backbone at the space's widest width."""
        point = {}
        for o in self.objectives:
            if o.reference is not None:
                point[o.name] = o.reference
            else:
                vanilla = Genome(context.space.backbone, (), max(context.space.width_mults))
                point[o.name] = REFERENCE_FACTOR * o.compute(vanilla, context)
        return point


# What each field of a stored objective spec may hold, as (what it must be, test).
STORED_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "name": ("text", lambda v: isinstance(v, str)),
    "direction": ("text", lambda v: isinstance(v, str)),
    "label": ("text", lambda v: isinstance(v, str)),
    "unit": ("text", lambda v: isinstance(v, str)),
    "scale": ("a finite number above 0", lambda v: _finite(v) and v > 0),
    "digits": ("a whole number from 0 to 12", lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 12),
    "metric": ("text or null", lambda v: v is None or isinstance(v, str)),
    "tolerance": ("null or a number in [0, 1)", lambda v: v is None or _finite(v) and 0 <= v < 1),
    "ideal": ("a finite number", lambda v: _finite(v)),
    "reference": ("a finite number", lambda v: _finite(v)),
}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def stored_objectives(specs: Any) -> tuple[Objective, ...]:
    """The objectives a study stores (``Selection.specs``), every field checked: a list of
    objectives with distinct names, one of them a maximised training metric."""
    if not isinstance(specs, list):
        raise ValueError(f"the study's objective_specs: expected a list, got {reprlib.repr(specs)}")
    if len(specs) > MAX_OBJECTIVES:
        raise ValueError(f"the study's objective_specs: {len(specs)} objectives; the product reads at most "
                         f"{MAX_OBJECTIVES} (one training metric and up to three costs)")
    objectives = tuple(stored_objective(spec, f"the study's objective_specs[{i}]") for i, spec in enumerate(specs))
    names = [o.name for o in objectives]
    trained = [o for o in objectives if o.trained]
    if len(set(names)) != len(names) or len(trained) != 1 or trained[0].direction != "maximize" or len(names) < 2:
        raise ValueError(f"the study's objective_specs ({', '.join(names)}): expected distinct objectives, exactly one "
                         f"of them a maximised training metric, and at least one cost")
    return objectives


def stored_objective(spec: Any, where: str) -> Objective:
    """One stored objective spec as an Objective; ValueError naming ``where`` and the field."""
    if not isinstance(spec, dict) or set(spec) != set(STORED_FIELDS):
        raise ValueError(f"{where}: expected the fields {', '.join(STORED_FIELDS)}, got {reprlib.repr(spec)}")
    for key, (wanted, test) in STORED_FIELDS.items():
        if not test(spec[key]):
            raise ValueError(f"{where}.{key}: expected {wanted}, got {reprlib.repr(spec[key])}")
    if spec["reference"] == spec["ideal"]:
        raise ValueError(f"{where}: the reference {spec['reference']!r} equals the ideal value (it divides by their difference)")
    try:
        return Objective(**spec)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def parse_limit(objective: Objective, text: str) -> float:
    """A limit as written in a pick rule or flag: "250e6", "250M", "2.5M", "4ms", "4"."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e[+-]?[0-9]+)?)\s*([A-Za-z%]*)\s*", text)
    if not match:
        raise ValueError(f"{objective.name} limit {text!r} is not a number")
    number, suffix = float(match[1]), match[2]
    if not suffix:
        return number
    if suffix == objective.unit.strip():
        return number * objective.scale
    multipliers = {"K": 1e3, "M": 1e6, "G": 1e9}
    if suffix.upper() in multipliers:
        return number * multipliers[suffix.upper()]
    raise ValueError(f"{objective.name} limit {text!r}: unknown unit {suffix!r}")


def over_limit(costs: dict[str, float], limits: dict[str, float]) -> str | None:
    """Why a genome is rejected before training: its first cost above a ``--max-NAME`` limit."""
    for name, limit in limits.items():
        if costs[name] > limit:
            objective = REGISTRY[name]
            return f"{objective.show(costs[name])} > --max-{name} {objective.show(limit)}"
    return None
