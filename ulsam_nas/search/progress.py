"""What the user sees while trials run, instead of Ray's tables: the search's live status line
(``ProgressLine``, counted by ``policy.Tally``), which also publishes the front to the dashboard, and a
periodic line for a fixed plan of trainings (``PlanProgress``: a calibration, a one-shot search's
confirmations).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from ray import tune

from ..report.publish import DashboardPublisher

if TYPE_CHECKING:
    from ..analysis.front import Front
    from ..studies import StudyLock
    from .searchers import PlanSearcher, StudySearcher

PLAN_PROGRESS_SECONDS = 10.0  # how often a plan of trainings says how far it is
# The line's front (σ, the signal, the front's size) is rebuilt no sooner than keeps its rebuilds to
# this share of the driver's time: the full front is O(genomes²), and Tune ends a step many times
# a second.
FRONT_SHARE = 0.05


class ProgressLine(tune.Callback):
    """One live status line instead of Ray's tables, and the front published to the dashboard
    (``publish.DashboardPublisher``: every few COMPLETE trials and at the end, under
    ``publish_lock``, the study's publishing lock)."""

    def __init__(self, searcher: StudySearcher, budget: int, publish_lock: StudyLock | None = None) -> None:
        self.searcher, self.budget = searcher, budget
        self.started = time.time()
        self.first_finished = searcher.tally.finished
        self.interactive = sys.stderr.isatty()
        self.last_print, self.last_line = 0.0, ""
        self.publisher = DashboardPublisher(searcher.study, searcher.storage, publish_lock)
        self.front: Front | None = None
        self.front_built_at, self.front_took = 0.0, 0.0

    def current_front(self, fresh: bool = False) -> Front:
        """The policy's front, rebuilt when ``fresh`` or when due (``FRONT_SHARE``)."""
        now = time.monotonic()
        if fresh or self.front is None or now - self.front_built_at >= self.front_took / FRONT_SHARE:
            self.front = self.searcher.policy.front
            self.front_built_at = time.monotonic()
            self.front_took = self.front_built_at - now
        return self.front

    def line(self, fresh: bool = False) -> str:
        tally, front = self.searcher.tally, self.current_front(fresh)
        elapsed = time.time() - self.started
        done_here = tally.finished - self.first_finished
        remaining = max(0, self.budget - tally.finished)
        eta = f"{remaining * elapsed / done_here:.0f}s" if done_here else "?"
        noise = f"σ {front.noise.sigma:.1f} pp (df {front.noise.df})" if front.noise.measured else "σ not measured yet"
        signal = front.signal
        if signal.std is not None:
            noise += f", between-genome std {signal.std:.1f} pp [{signal.low:.1f}, {signal.high:.1f}]"
        return (f"{tally.finished}/{self.budget} trials: {len(front.stats)} genomes, {tally.trainings} trainings "
                f"({tally.repeats} repeats), {tally.reused} reused, {tally.failed} failed, {tally.pruned} pruned; "
                f"{self.searcher.running} running; front {len(front.members)}, {noise}; "
                f"elapsed {elapsed:.0f}s, ETA {eta}")

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        self.searcher.heartbeat()
        self.searcher.poll_awaited()
        line = self.line()
        now = time.time()
        if self.interactive and now - self.last_print >= 1.0:
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
            self.last_print = now
        elif not self.interactive and line != self.last_line and now - self.last_print >= 5.0:
            print(line, file=sys.stderr, flush=True)
            self.last_print = now
        self.last_line = line
        self.publisher.on_progress(self.complete())

    def on_experiment_end(self, trials: list, **info) -> None:
        print(("\r" if self.interactive else "") + self.line(fresh=True) + ("\033[K" if self.interactive else ""),
              file=sys.stderr, flush=True)
        self.publisher.publish(self.complete())

    def complete(self) -> int:
        """The study's COMPLETE trials (reused results included): what moves the front."""
        tally = self.searcher.tally
        return tally.finished - tally.failed - tally.pruned


class PlanProgress(tune.Callback):
    """A line every PLAN_PROGRESS_SECONDS for a fixed plan of trainings (``runner.train_plan``):
    how many are done, running and failed, and the time left; and the heartbeat of the trials the
    plan's searcher holds."""

    def __init__(self, searcher: PlanSearcher, task: str) -> None:
        self.searcher, self.task = searcher, task
        self.started = time.time()
        self.last = 0.0

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        now = time.time()
        if now - self.last < PLAN_PROGRESS_SECONDS:
            return
        self.last = now
        searcher = self.searcher
        searcher.heartbeat()
        eta = (now - self.started) / searcher.done * (searcher.total - searcher.done) if searcher.done else None
        print(f"{self.task}: {searcher.done}/{searcher.total} trainings done, {len(searcher.live)} running, "
              f"{searcher.failed} failed; elapsed {now - self.started:.0f}s, ETA {'?' if eta is None else f'{eta:.0f}s'}",
              file=sys.stderr, flush=True)
