"""Exact hypervolume of a set of minimisation points, in any number of dimensions.

The hypervolume is the measure of the region dominated by the points and bounded by the
reference point: the union of the boxes ``[p, reference]``. Only points strictly better than the
reference in every coordinate count. It is computed by slicing (HSO): sweep the points in order
of their last coordinate, and between two consecutive values multiply the slab's thickness by the
(d-1)-dimensional hypervolume of the points seen so far. In three dimensions the slabs' 2-D
staircase is kept up to date point by point, with its area, instead of being built again for
every slab: O(n log n) comparisons for n points (plus list shifts), where rebuilding is O(n² log n).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from .pareto import Point, weakly_dominates


def hypervolume(points: Iterable[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume dominated by ``points`` (all objectives minimised) and bounded by ``reference``."""
    bound = tuple(float(r) for r in reference)
    inside = []
    for point in points:
        if len(point) != len(bound):
            raise ValueError(f"point {tuple(point)} has {len(point)} coordinates, the reference {len(bound)}")
        if all(x < r for x, r in zip(point, bound)):
            inside.append(point)
    if not inside:
        return 0.0
    return _volume(inside, bound)


def _volume(points: list[Point], reference: Point) -> float:
    """Hypervolume of points that are all strictly inside the reference box (dominated ones allowed)."""
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in points)
    if len(reference) == 2:
        return _area(points, reference)
    if len(reference) == 3:
        return _volume_3d(points, reference)

    base_reference, top = reference[:-1], reference[-1]
    by_last = sorted(points, key=lambda p: p[-1])
    front: list[Point] = []
    total = 0.0
    for i, point in enumerate(by_last):
        projection = point[:-1]
        if not any(weakly_dominates(kept, projection) for kept in front):
            front = [kept for kept in front if not weakly_dominates(projection, kept)]
            front.append(projection)
        next_last = by_last[i + 1][-1] if i + 1 < len(by_last) else top
        if next_last > point[-1]:
            total += _volume(front, base_reference) * (next_last - point[-1])
    return total


def _area(points: list[Point], reference: Point) -> float:
    """2-D staircase: with x ascending, each point lower than all before it adds one rectangle."""
    area = 0.0
    lowest_y = reference[1]
    for x, y in sorted(points):
        if y < lowest_y:
            area += (reference[0] - x) * (lowest_y - y)
            lowest_y = y
    return area


def _volume_3d(points: list[Point], reference: Point) -> float:
    """Sweep in z over a 2-D staircase of the (x, y) projections seen so far, x ascending and y
    descending, each step covering the strip from its x to the next step's x. Inserting a
    projection removes the steps it dominates and shortens the strip of the step before it; the
    staircase's area changes by exactly those strips."""
    rx, ry, top = reference
    xs: list[float] = []
    ys: list[float] = []
    area = total = 0.0
    by_z = sorted(points, key=lambda p: p[2])
    for i, (x, y, z) in enumerate(by_z):
        left = bisect_right(xs, x) - 1  # the last step with x' <= x: the only one that can dominate (x, y)
        if left < 0 or ys[left] > y:
            start = bisect_left(xs, x)
            end = start
            while end < len(xs) and ys[end] >= y:  # the steps (x, y) dominates: consecutive from start
                end += 1
            right_x = xs[end] if end < len(xs) else rx
            removed = sum(((xs[k + 1] if k + 1 < len(xs) else rx) - xs[k]) * (ry - ys[k]) for k in range(start, end))
            if start > 0:  # the step before now ends at x instead of at the first step after it
                removed += ((xs[start] if start < len(xs) else rx) - x) * (ry - ys[start - 1])
            area += (right_x - x) * (ry - y) - removed
            xs[start:end] = [x]
            ys[start:end] = [y]
        next_z = by_z[i + 1][2] if i + 1 < len(by_z) else top
        total += area * (next_z - z)
    return total
