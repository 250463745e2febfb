"""Guarding a complexity class without a wall-time constant: time a small and a large input in
one process, interleaved so that both see the same machine, and bound the ratio of their
fastest runs. A slow day scales both alike; a change of class does not."""

from __future__ import annotations

import time
from collections.abc import Callable


def growth(small: Callable[[], object], large: Callable[[], object], repeats: int = 3) -> float:
    """How many times longer ``large()`` takes than ``small()``, each the fastest of ``repeats`` runs."""
    fastest = {small: float("inf"), large: float("inf")}
    for _ in range(repeats):
        for work in (small, large):
            started = time.perf_counter()
            work()
            fastest[work] = min(fastest[work], time.perf_counter() - started)
    return fastest[large] / fastest[small]
