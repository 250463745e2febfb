"""Per-trial overhead of the Ray Tune search path against a plain Optuna ask/tell loop.

    python benchmarks/harness_overhead.py [--trials 40] [--concurrency 2]

Both run the same sampler (NSGA-II), the same search space and a fresh SQLite storage each,
with a trainer that reports one epoch and returns at once, so what is measured is the harness:
asking and telling the study, computing the costs, and (for Ray Tune) scheduling each trial on
a worker and passing its results back. Ray's start-up (``ray.init``) is excluded; the Tune run's
own set-up is included. Target: under 0.5 s of added overhead per trial with 2 concurrent trials.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import optuna
import ray
from ray import cloudpickle

from ulsam_nas.cost import count_cost
from ulsam_nas.data import DataSpec
from ulsam_nas.models.spaces import load_space
from ulsam_nas.search.policy import make_sampler
from ulsam_nas.search.runner import SearchConfig, run_search
from ulsam_nas.studies import open_storage
from ulsam_nas.train.fidelity import SMOKE

cloudpickle.register_pickle_by_value(sys.modules[__name__])
FIDELITY = replace(SMOKE, epochs=1)


def instant_trainer(genome, data, fidelity, seed=0, report=None, device=None, **split):
    report(1, {"epoch": 1, "top1": 50.0, "top5": 90.0, "loss": 1.0, "seconds": 0.0, "images_per_second": 0.0})


def plain_optuna(trials: int, folder: Path) -> float:
    space = load_space("mv2")
    study = optuna.create_study(storage=open_storage(f"sqlite:///{folder / 'plain.db'}"), study_name="plain",
                                directions=["maximize", "minimize", "minimize"],
                                sampler=make_sampler("nsga2", 0, trials, None))
    started = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        genome = space.suggest(trial)
        cost = count_cost(genome, num_classes=10)
        trial.set_user_attr("genome", str(genome))
        results = []
        instant_trainer(genome, None, FIDELITY, report=lambda epoch, metrics: results.append(metrics))
        study.tell(trial, [results[-1]["top1"], cost.macs, cost.params])
    return time.perf_counter() - started


def ray_tune(trials: int, concurrency: int, folder: Path) -> float:
    config = SearchConfig(space=load_space("mv2"), data=DataSpec("synthetic"), num_classes=10, fidelity=FIDELITY,
                          budget=trials, storage_url=f"sqlite:///{folder / 'tune.db'}", study_name="tune",
                          study_dir=folder, concurrency=concurrency, paper_seeds=False)
    started = time.perf_counter()
    run_search(config, trainer=instant_trainer)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ray.init(num_cpus=args.concurrency, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    with tempfile.TemporaryDirectory() as workdir:
        plain = plain_optuna(args.trials, Path(workdir))
        tuned = ray_tune(args.trials, args.concurrency, Path(workdir))
    per_plain, per_tune = plain / args.trials, tuned / args.trials
    added = per_tune - per_plain
    print(f"\n{args.trials} trials, {args.concurrency} at once, trainer returns at once")
    print(f"plain Optuna ask/tell: {per_plain:.3f} s/trial")
    print(f"Ray Tune + our searcher: {per_tune:.3f} s/trial ({per_tune / per_plain:.1f}x)")
    print(f"added overhead: {added:.3f} s/trial (target < 0.5 s): {'met' if added < 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
