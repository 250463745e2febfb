"""Pareto arithmetic on minimisation points (every coordinate minimised: negate a maximised
one), free of Ray and of studies: dominance, the set of undominated points, non-dominated
sorting into fronts and NSGA-II's crowding distance. The report's hypervolume history
(``report/history.py``) keeps its front of genome means with ``nondominated``; the
early-stopping scheduler (``search/schedulers.py``) ranks a rung with ``nondominated_fronts``
and ``crowding_distance``, the one-shot search orders its genomes with ``nondominated_fronts``,
and the hypervolume's slicing (``hypervolume.py``) keeps its projections with
``weakly_dominates``.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Sequence
from typing import TypeVar

Key = TypeVar("Key", bound=Hashable)
Point = tuple[float, ...]


def weakly_dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is nowhere worse than ``b`` (equal points weakly dominate each other)."""
    return all(x <= y for x, y in zip(a, b))


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Pareto dominance: ``a`` is nowhere worse than ``b`` and better somewhere."""
    return weakly_dominates(a, b) and any(x < y for x, y in zip(a, b))


def nondominated(points: dict[Key, Point]) -> dict[Key, Point]:
    """The points no other point dominates, in lexicographic order of their coordinates (equal
    points all stay). In that order a point can only be dominated by an earlier one."""
    ordered = sorted(points.items(), key=lambda item: item[1])
    if ordered and len(ordered[0][1]) == 3:
        return _nondominated_3d(ordered)
    front: dict[Key, Point] = {}
    for key, point in ordered:
        if not any(dominates(f, point) for f in front.values()):
            front[key] = point
    return front


def _nondominated_3d(ordered: list[tuple[Key, Point]]) -> dict[Key, Point]:
    """``nondominated`` of three objectives in O(n log n): the earlier points' (y, z) are kept as a
    2-D staircase (y ascending, z descending, each step with the x of the first point that made
    it), and a point is dominated when the last step with y' <= y has z' <= z, unless that step is
    this very point again (an equal point is not a dominating one)."""
    front: dict[Key, Point] = {}
    ys: list[float] = []
    zs: list[float] = []
    xs: list[float] = []
    for key, point in ordered:
        x, y, z = point
        step = bisect_right(ys, y) - 1
        if step >= 0 and zs[step] <= z:
            if (ys[step], zs[step], xs[step]) == (y, z, x):
                front[key] = point
            continue
        start = end = bisect_left(ys, y)
        while end < len(ys) and zs[end] >= z:
            end += 1
        ys[start:end], zs[start:end], xs[start:end] = [y], [z], [x]
        front[key] = point
    return front


def nondominated_fronts(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Indices of ``points`` by front: front 0 holds the points nothing dominates, front k those
    dominated only by points of earlier fronts. Deb's fast sort, O(n²) dominance checks: a rung
    of the scheduler holds at most the search's budget of points, and it sorts at every rung
    result. Equal points share a front; indices within a front ascend."""
    better_than: list[list[int]] = [[] for _ in points]  # i -> the points i dominates
    beaten_by = [0] * len(points)  # i -> how many points dominate i
    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            if dominates(points[i], points[j]):
                better_than[i].append(j)
                beaten_by[j] += 1
            elif dominates(points[j], points[i]):
                better_than[j].append(i)
                beaten_by[i] += 1
    fronts, front = [], [i for i, count in enumerate(beaten_by) if count == 0]
    while front:
        fronts.append(front)
        after = []
        for i in front:
            for j in better_than[i]:
                beaten_by[j] -= 1
                if beaten_by[j] == 0:
                    after.append(j)
        front = sorted(after)
    return fronts


def crowding_distance(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II crowding distance of each point of one front: over the objectives, the sum of the
    gaps between its two neighbours, each scaled by that objective's range in the front. The
    lowest and highest point of every objective get infinity, so a front's ends always rank
    first; an objective on which the whole front is equal separates no one and is skipped."""
    distance = [0.0] * len(points)
    for m in range(len(points[0]) if points else 0):
        order = sorted(range(len(points)), key=lambda i: points[i][m])
        low, high = points[order[0]][m], points[order[-1]][m]
        if high == low:
            continue
        distance[order[0]] = distance[order[-1]] = math.inf
        for before, i, after in zip(order, order[1:], order[2:]):
            distance[i] += (points[after][m] - points[before][m]) / (high - low)
    return distance

