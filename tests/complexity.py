"""Guarding a complexity class without a wall-time constant: time a small and a large input in
one process, interleaved so that both see the same machine, and bound the ratio of their
fastest runs. A slow day scales both alike; a change of class does not.

The clock is this process's CPU time, not the wall: on a loaded machine (three pytest workers on
two cores) the wall clock also counts the time the process waited for a core, which came in
bursts and once pushed a 2.1x ratio past its 4x bound."""

from __future__ import annotations

import time
from collections.abc import Callable


def growth(small: Callable[[], object], large: Callable[[], object], repeats: int = 3) -> float:
    """How many times more CPU time ``large()`` takes than ``small()``, each the fastest of ``repeats`` runs."""
    fastest = {small: float("inf"), large: float("inf")}
    for _ in range(repeats):
        for work in (small, large):
            started = time.process_time()
            work()
            fastest[work] = min(fastest[work], time.process_time() - started)
    return fastest[large] / fastest[small]
