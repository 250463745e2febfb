"""Multi-objective asynchronous successive halving: what ``--early-stop`` stops trials with.

Why not Ray's ASHA: it ranks the trials at a rung by top-1 alone, so it stops a cheap
architecture for being less accurate, although the search maps the accuracy-vs-cost front and
that architecture may well belong on it. Optuna's pruners do not support multi-objective
studies either. This is ASHA (Li et al. 2020) with the rung ranked the way MO-ASHA (Schmucker
et al. 2021) ranks it: by non-dominated sorting of (top-1, MACs, params), ties within a front
broken by NSGA-II's crowding distance (Deb et al. 2002), so the ends of every front and its
sparse parts go on training. The sorting and the distance are ``analysis/pareto.py``'s.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from ..analysis.objectives import Selection
from ..analysis.pareto import crowding_distance, nondominated_fronts


def ranking(points: Sequence[Sequence[float]]) -> list[tuple[int, float]]:
    """Each point's sort key (front index, -crowding distance) among ``points``: smaller is better."""
    keys: list[tuple[int, float]] = [(0, 0.0)] * len(points)
    for rank, front in enumerate(nondominated_fronts(points)):
        for i, distance in zip(front, crowding_distance([points[i] for i in front])):
            keys[i] = (rank, -distance)
    return keys


class MultiObjectiveSuccessiveHalving(FIFOScheduler):
    """Asynchronous successive halving on the study's objectives (e.g. top-1, MACs, params), each
    in its direction; every result carries the computed objectives beside the training metric.

    Rungs sit at ``grace_period * eta**k`` iterations below ``max_t``. A trial reaching a rung
    records its objective vector there and is judged at once against what the rung holds so far
    (no waiting for a full rung, as in ASHA): the n points are ordered by front, then by
    descending crowding distance, and the trial goes on if it is among the first ceil(n / eta).
    As in ASHA, only a trial strictly behind the cut-off stops: one tied with it goes on.

    ``stopped`` maps every stopped Tune trial id to its rung (``stopped_at_rung``), its front
    index there (``stopped_rank``) and its metric there (e.g. ``top1_at_rung``): the user attributes
    that record in the study why it was pruned.
    """

    def __init__(self, selection: Selection, max_t: int, grace_period: int = 1, eta: int = 2,
                 time_attr: str = "training_iteration") -> None:
        if grace_period < 1 or eta < 2:
            raise ValueError(f"need grace_period >= 1 and eta >= 2, got {grace_period} and {eta}")
        super().__init__()
        self.selection = selection
        self.time_attr, self.eta = time_attr, eta
        self.rungs: list[int] = []
        while grace_period * eta ** len(self.rungs) < max_t:
            self.rungs.append(grace_period * eta ** len(self.rungs))
        self.recorded: dict[int, dict[str, tuple[float, ...]]] = {rung: {} for rung in self.rungs}
        self.stopped: dict[str, dict[str, float]] = {}

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # the objectives are the study's, whatever metric Tune ranks by

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        reached = [rung for rung in self.rungs if rung <= result.get(self.time_attr, 0)]
        if not reached or trial.trial_id in self.recorded[reached[-1]] or "failure" in result:
            return TrialScheduler.CONTINUE  # a failure report is no measurement (the trial ends anyway)
        values = [result.get(name) for name in self.selection.names]
        if not all(isinstance(v, numbers.Real) and math.isfinite(v) for v in values):  # numpy scalars too
            return TrialScheduler.CONTINUE  # nothing to rank (a NaN top-1 fails the trial at its end)
        rung, recorded = reached[-1], self.recorded[reached[-1]]
        recorded[trial.trial_id] = tuple(v if d == "minimize" else -v for v, d in zip(values, self.selection.directions))
        keys = ranking(list(recorded.values()))
        mine = keys[-1]  # dicts keep insertion order: the trial was recorded last
        if sum(key < mine for key in keys) < math.ceil(len(keys) / self.eta):
            return TrialScheduler.CONTINUE
        metric = self.selection.trained.metric
        self.stopped[trial.trial_id] = {"stopped_at_rung": rung, "stopped_rank": mine[0],
                                        f"{metric}_at_rung": result[metric]}
        return TrialScheduler.STOP

    def debug_string(self) -> str:
        return f"Using multi-objective successive halving: rungs {self.rungs}, eta {self.eta}, {len(self.stopped)} stopped"
