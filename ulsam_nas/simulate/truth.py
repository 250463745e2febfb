"""The truth a simulated search is scored against: the true front of a landscape over a space,
and the score of a ``SimulatedSearch`` by it (``benchmarks/search_quality.py`` and the planner).

**The true front** of (true top-1 maximised, the costs minimised; the costs are MACs and params,
the default objectives). Costs are additive per placement, cost(genome) = cost(vanilla) + Σ
Δcost(placement) (checked: ``true_front`` recomputes the cost of a few front genomes with
``count_cost`` and refuses a mismatch), and a landscape without interactions is additive in its
placements too, so the front is exact: a multi-objective dynamic programme over the searched
layers, keeping after each layer only the nondominated partial sums of (truth, MACs, params);
each width multiplier separately, then merged. When the exact front holds more than
``max_size`` genomes, it is pruned on an ε-grid (one genome per cell of width ε x the range of
each coordinate, then the nondominated of those; ``TrueFront.epsilon`` says which ε). A
landscape with interactions has no exact front here: the best known front is the nondominated
set of ``evaluated`` genomes (those some run trained) and a large random sample of the space
(``TrueFront.exact`` False).

**The hypervolume** is normalised for this scoring, not as the product's report does (there,
1 - top1/100 makes 1 pp of top-1 invisible beside the costs): top-1's coordinate is
(best - top1) / (best - worst), best and worst the max and min truth over the true front and the
space's paper configurations; each cost's is cost / (1.25 x the vanilla genome's cost at the
space's widest width); the reference point is 1.1 in every coordinate (genomes beyond it add
nothing). With best == worst (a flat landscape) top-1's coordinate is 0 for every genome.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from optuna.trial import TrialState

from ..analysis.front import Front, cost_matrices, costs_no_worse
from ..analysis.hypervolume import hypervolume
from ..analysis.pareto import nondominated
from ..cost import count_cost
from ..landscapes import Landscape
from ..models.genome import Genome, Placement
from ..models.spaces import SearchSpace, random_genomes

REFERENCE = 1.1  # the hypervolume's reference point, in every normalised coordinate
COST_FACTOR = 1.25  # costs are normalised by this x the vanilla genome's cost
MAX_SIZE = 20000  # an exact front larger than this is pruned on an ε-grid
SAMPLE = 20000  # random genomes behind a best known front (a landscape with interactions)
SUPPORTED_COSTS = ("macs", "params")


@dataclass(frozen=True)
class TrueFront:
    """The true front of a landscape over a space: genomes, their (truth, macs, params) points,
    whether it is exact, the ε of a pruned one, and what the hypervolume is normalised by."""

    genomes: tuple[Genome, ...]
    points: np.ndarray  # (n, 3): truth (pp), MACs, params
    exact: bool
    epsilon: float | None  # None: not pruned
    best: float  # top-1 normalisation: best -> 0, worst -> 1
    worst: float
    vanilla_costs: tuple[float, float]  # (MACs, params) of the vanilla genome at the widest width
    costs: tuple[str, ...]  # the cost objectives the points hold, in study order

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(map(str, self.genomes))

    def describe(self) -> str:
        kind = "exact" if self.exact else "best known (the landscape has interactions)"
        pruned = f", pruned on an ε-grid with ε = {self.epsilon:g} of each range" if self.epsilon else ""
        return f"true front: {len(self.genomes)} genomes, {kind}{pruned}; top-1 from {self.worst:.2f} to {self.best:.2f}"

    def coordinates(self, truth: float, macs: float, params: float) -> tuple[float, float, float]:
        """The normalised minimisation point of a genome (module docstring)."""
        span = self.best - self.worst
        top = (self.best - truth) / span if span > 0 else 0.0
        return top, macs / (COST_FACTOR * self.vanilla_costs[0]), params / (COST_FACTOR * self.vanilla_costs[1])

    def hypervolume_of(self, points: Iterable[tuple[float, float, float]]) -> float:
        """Hypervolume of (truth, macs, params) points, normalised as the module docstring says."""
        return hypervolume([self.coordinates(*p) for p in points], (REFERENCE,) * 3)

    @property
    def hypervolume(self) -> float:
        return self.hypervolume_of(map(tuple, self.points))


_DELTAS: dict[tuple, tuple[tuple[float, float], dict[Placement, tuple[float, float]]]] = {}


def _costs(space: SearchSpace, width: float,
           num_classes: int) -> tuple[tuple[float, float], dict[Placement, tuple[float, float]]]:
    """(vanilla (MACs, params), per placement its (ΔMACs, Δparams)) at ``width``, cached per process."""
    key = (str(space.path), space.name, space.backbone, width, num_classes)
    if key not in _DELTAS:
        vanilla = count_cost(Genome(space.backbone, (), width), num_classes=num_classes)
        deltas = {}
        for layer, choice in sorted(space.layers.items()):
            for action in choice.actions:
                if action == "keep":
                    continue
                for g in choice.groups:
                    p = Placement(layer, action, g)
                    c = count_cost(Genome(space.backbone, (p,), width), num_classes=num_classes)
                    deltas[p] = (float(c.macs - vanilla.macs), float(c.params - vanilla.params))
        _DELTAS[key] = ((float(vanilla.macs), float(vanilla.params)), deltas)
    return _DELTAS[key]


def _check_costs(costs: tuple[str, ...]) -> None:
    if tuple(costs) != tuple(c for c in costs if c in SUPPORTED_COSTS) or not costs:
        raise ValueError(f"the true front is computed for costs among {', '.join(SUPPORTED_COSTS)}, not {', '.join(costs)}")


def _project(points: np.ndarray, costs: tuple[str, ...]) -> np.ndarray:
    """(truth, macs, params) -> minimisation points (-truth, the chosen costs)."""
    columns = [-points[:, 0]] + [points[:, 1 + SUPPORTED_COSTS.index(c)] for c in costs]
    return np.stack(columns, axis=1)


def _nondominated_rows(points: np.ndarray, costs: tuple[str, ...]) -> np.ndarray:
    """Indices of the nondominated rows of (truth, macs, params) points (equal points all stay)."""
    projected = _project(points, costs)
    kept = nondominated({i: tuple(row) for i, row in enumerate(projected.tolist())})
    return np.array(sorted(kept), dtype=int)


def _grid_prune(points: np.ndarray, epsilon: float, costs: tuple[str, ...]) -> np.ndarray:
    """One row per ε-cell (ε x each coordinate's range), the best truth of the cell; then nondominated."""
    span = np.ptp(points, axis=0)
    span[span == 0] = 1.0
    cells = np.floor((points - points.min(axis=0)) / (epsilon * span)).astype(np.int64)
    order = np.argsort(-points[:, 0], kind="stable")
    seen: dict[tuple, int] = {}
    for i in order:
        seen.setdefault(tuple(cells[i]), int(i))
    chosen = np.array(sorted(seen.values()), dtype=int)
    return chosen[_nondominated_rows(points[chosen], costs)]


def _exact_front(landscape: Landscape, space: SearchSpace, num_classes: int, costs: tuple[str, ...],
                 max_size: int) -> tuple[list[Genome], np.ndarray, float | None]:
    genomes: list[Genome] = []
    rows: list[np.ndarray] = []
    epsilon = None
    for width in space.width_mults:
        vanilla, deltas = _costs(space, width, num_classes)
        base = landscape.truth(Genome(space.backbone, (), width))
        # Partial sums: points (n, 3) and, per point, its placements (a tuple).
        points = np.array([[base, vanilla[0], vanilla[1]]])
        chosen: list[tuple[Placement, ...]] = [()]
        for layer, choice in sorted(space.layers.items()):
            options = [None] + [Placement(layer, a, g) for a in choice.actions if a != "keep" for g in choice.groups]
            if len(options) == 1:
                continue
            steps = np.array([[0.0, 0.0, 0.0] if p is None else
                              [landscape.effects.get(p, 0.0), *deltas[p]] for p in options])
            combined = (points[:, None, :] + steps[None, :, :]).reshape(-1, 3)
            keep = _nondominated_rows(combined, costs)
            while len(keep) > max_size:  # prune on an ε-grid, coarser until it fits
                epsilon = 1e-4 if epsilon is None else epsilon * 2
                keep = keep[_grid_prune(combined[keep], epsilon, costs)]
            points = combined[keep]
            chosen = [chosen[i // len(options)] + (() if options[i % len(options)] is None else
                                                   (options[i % len(options)],)) for i in keep]
        genomes += [Genome(space.backbone, c, width) for c in chosen]
        rows.append(points)
    points = np.concatenate(rows)
    keep = _nondominated_rows(points, costs)
    return [genomes[i] for i in keep], points[keep], epsilon


def true_front(landscape: Landscape, space: SearchSpace, num_classes: int | None = None, *,
               costs: tuple[str, ...] = SUPPORTED_COSTS, evaluated: Iterable[Genome] = (), sample: int = SAMPLE,
               sample_seed: int = 0, max_size: int = MAX_SIZE, check: int = 8) -> TrueFront:
    """The true front of ``landscape`` over ``space`` (module docstring): exact when the landscape
    has no interactions, else the best known from ``evaluated`` and ``sample`` random genomes.
    ``check``: front genomes whose additive costs are recomputed with ``count_cost``."""
    _check_costs(tuple(costs))
    num_classes = landscape.num_classes if num_classes is None else num_classes
    width = max(space.width_mults)
    vanilla, _ = _costs(space, width, num_classes)
    if not landscape.interactions:
        genomes, points, epsilon = _exact_front(landscape, space, num_classes, tuple(costs), max_size)
        exact = True
        for genome, point in list(zip(genomes, points))[:: max(1, len(genomes) // max(1, check))][:check]:
            cost = count_cost(genome, num_classes=num_classes)
            if not (math.isclose(cost.macs, point[1], rel_tol=1e-9, abs_tol=0.5)
                    and math.isclose(cost.params, point[2], rel_tol=1e-9, abs_tol=0.5)):
                raise ValueError(f"costs are not additive per placement for {genome}: {cost} vs {point[1:]}")
    else:
        candidates = {g for g in evaluated if space.contains(g)}
        candidates |= set(random_genomes(space, sample, sample_seed)) if sample else set()
        candidates |= {g for g, _ in space.paper_genomes() if space.contains(g)}
        genomes = sorted(candidates, key=str)
        points = np.array([[landscape.truth(g), *genome_costs(g, num_classes)] for g in genomes])
        keep = _nondominated_rows(points, tuple(costs))
        genomes, points, epsilon, exact = [genomes[i] for i in keep], points[keep], None, False
    paper = [landscape.truth(g) for g, _ in space.paper_genomes() if space.contains(g)]
    truths = list(points[:, 0]) + paper
    return TrueFront(tuple(genomes), points, exact, epsilon, float(max(truths)), float(min(truths)), vanilla,
                     tuple(costs))


def genome_costs(genome: Genome, num_classes: int) -> tuple[float, float]:
    cost = count_cost(genome, num_classes=num_classes)
    return float(cost.macs), float(cost.params)


@dataclass(frozen=True)
class Score:
    """One simulated search scored by the truth.

    ``hv_share``: hypervolume of the true values of the genomes the product reports on its front
    (``front.members``), as a share of the true front's. ``front_share``: share of the true
    front's genomes among those reported. ``false_call_rate``: genomes called clearly dominated
    although, by truth, none of their cited dominators dominates them, per genome judged (every
    genome trained). ``planted_found``: of the evaluated genomes holding a planted placement, the
    share called clearly dominated (None: the landscape plants none, or none was evaluated).
    ``repeats``: trainings spent on repeats. ``precision``: the share of the reported front that
    the truth does not dominate among the genomes the search evaluated (its true values and costs):
    the hypervolume of a superset is never smaller, so a front that reports every genome it
    trained (one seed each: nothing is ever called dominated) scores well on ``hv_share`` and
    badly here."""

    hv_share: float
    front_share: float
    false_call_rate: float
    planted_found: float | None
    repeats: int
    precision: float = 1.0
    false_calls: int = 0
    judged: int = 0
    planted_evaluated: int = 0
    reported: int = 0
    resolved: bool = False

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def score(result, front: TrueFront) -> Score:
    """Score a ``SimulatedSearch`` (``driver.simulate_search``) against ``front``."""
    return score_front(result.front, result.landscape, result.policy.tally.repeats, front)


def score_study(study, landscape: Landscape, front: TrueFront) -> Score:
    """Score a study the real driver made on ``landscape`` (Ray Tune, the stored study) as
    ``score`` scores a simulated one: the front the product reports from the study, and its repeats."""
    repeats = sum("repeat_of" in t.user_attrs and "reused_from" not in t.user_attrs
                  for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    return score_front(Front.of_study(study), landscape, repeats, front)


def score_front(product: Front, landscape: Landscape, repeats: int, front: TrueFront) -> Score:
    """The reported front ``product`` of a search on ``landscape`` that spent ``repeats`` trainings
    on repeats, scored against ``front`` (``Score``)."""
    selection = product.selection
    names = tuple(o.name for o in selection.computed)
    if names != front.costs:
        raise ValueError(f"the search's costs {', '.join(names)} differ from the true front's {', '.join(front.costs)}")
    truth = {s.genome: landscape.truth(Genome.from_string(s.genome)) for s in product.stats}

    def point(stats) -> tuple[float, float, float]:
        costs = dict(zip(names, stats.costs))
        return truth[stats.genome], costs.get("macs", 0.0), costs.get("params", 0.0)

    total = front.hypervolume
    reported = front.hypervolume_of(point(m) for m in product.members)
    hv_share = reported / total if total > 0 else 0.0
    members = {m.genome for m in product.members}
    front_share = len(front.keys & members) / len(front.genomes) if front.genomes else 0.0
    false_calls = 0
    planted_called = planted_seen = 0
    planted = set(landscape.planted)
    for stats in product.stats:
        dominators = product.dominators(stats)
        if dominators and not any(truth[d.genome] > truth[stats.genome] and costs_no_worse(d, stats, selection)
                                  for d in dominators):
            false_calls += 1
        if planted and planted & set(Genome.from_string(stats.genome).placements):
            planted_seen += 1
            planted_called += bool(dominators)
    judged = len(product.stats)
    no_worse, cheaper = cost_matrices(product.stats, selection)
    values = np.array([truth[s.genome] for s in product.stats])
    truly = no_worse & ((values[:, None] > values[None, :]) | ((values[:, None] == values[None, :]) & cheaper))
    np.fill_diagonal(truly, False)
    index = {s.genome: i for i, s in enumerate(product.stats)}
    kept = [not truly[:, index[m.genome]].any() for m in product.members]
    return Score(precision=float(np.mean(kept)) if kept else 1.0, hv_share=float(hv_share), front_share=float(front_share),
                 false_call_rate=false_calls / judged if judged else 0.0,
                 planted_found=planted_called / planted_seen if planted_seen else None,
                 repeats=int(repeats), false_calls=false_calls, judged=judged,
                 planted_evaluated=planted_seen, reported=len(members), resolved=product.signal.resolved)
