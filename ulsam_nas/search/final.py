"""Test figures for the chosen architectures, and only for them: ``search --final K``.

The search selects on a validation split held out from the training images. Its top-K picks
(the knee, then the front by mean validation top-1) are trained again here on train+val, with
the same seeds their search trainings used, and evaluated once on the test split. The results
go into the study (user attribute ``final_test``: genome -> seed -> top1, top5), which makes the
step resumable and lets the report show test beside validation figures.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import optuna
import ray

from ..analysis.front import Front, GenomeStats
from ..data import DataSpec
from ..models.genome import Genome
from ..train.fidelity import Fidelity
from .trainable import set_up_worker

FINAL_ATTR = "final_test"


def final_candidates(front: Front, k: int) -> list[GenomeStats]:
    """The knee of the front first, then the other front genomes by mean top-1; at most k."""
    from ..analysis.picks import knee

    if not front.members or k < 1:
        return []
    first = knee(front)
    return [first, *[m for m in front.members if m.genome != first.genome]][:k]


def _train_for_test(genome: str, seed: int, data: DataSpec, fidelity: Fidelity, trainer: Any) -> dict:
    result = trainer(Genome.from_string(genome), data, fidelity, seed=seed, device=set_up_worker(), evaluate_on="test")
    return {"top1": float(result.top1), "top5": float(result.top5)}


def run_final(study: optuna.Study, k: int, data: DataSpec, fidelity: Fidelity, resources: dict[str, float],
              trainer: Any = None) -> dict[str, dict[str, dict[str, float]]]:
    """Train the top-``k`` picks on train+val for each of their seeds and evaluate on the test
    split, in Ray tasks with the trials' resources; results already in the study are kept.
    Ray must be initialised. Returns the study's ``final_test`` attribute."""
    if trainer is None:
        from ..train.loop import train as trainer
    results: dict[str, dict[str, dict[str, float]]] = dict(study.user_attrs.get(FINAL_ATTR, {}))
    jobs = [(s.genome, seed) for s in final_candidates(Front.of_study(study), k) for seed in s.seeds
            if str(seed) not in results.get(s.genome, {})]
    if not jobs:
        return results
    print(f"final: training {len(jobs)} (genome, seed) pair(s) on train+val, evaluating on the test split",
          file=sys.stderr)
    task = ray.remote(_train_for_test).options(num_cpus=resources.get("cpu", 1), num_gpus=resources.get("gpu", 0))
    pending = {task.remote(genome, seed, data, fidelity, trainer): (genome, seed) for genome, seed in jobs}
    started, done = time.time(), 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        genome, seed = pending.pop(ready[0])
        done += 1
        try:
            results.setdefault(genome, {})[str(seed)] = ray.get(ready[0])
            study.set_user_attr(FINAL_ATTR, results)
            outcome = f"test top-1 {results[genome][str(seed)]['top1']:.2f}%"
        except ray.exceptions.RayTaskError as error:
            outcome = f"failed: {str(error.cause).splitlines()[0] if error.cause else error}"
        print(f"final {done}/{len(jobs)}: {genome} seed {seed}: {outcome} ({time.time() - started:.0f}s)",
              file=sys.stderr)
    return results
