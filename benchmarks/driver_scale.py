"""How busy one driver keeps a cluster: a simulated search at cluster scale, on this machine.

    python benchmarks/driver_scale.py [--concurrency 8] [--budget 500] [--window 500] [--sampler tpe] [--floor 500]

The real driver (``run_search``: the search policy, the study searcher, Ray Tune, the SQLite study
and the dashboard publisher) runs a search on a landscape (``null``, so that nothing trains) whose
trainings each sleep 0.5 to 2 s, longer for a costlier genome, on a local Ray instance with
``--concurrency`` logical CPUs: that many trainings at once, as on a cluster of that many workers.

For each window of ``--window`` finished trainings it prints the driver's CPU-seconds per training
(all its threads, Tune's included), the latency of the searcher's suggestions that started a
training (p50 and p99), how busy the worker slots were (the trainings' sleeping seconds over the
window's wall time times the slots) and the trainings per second; then the peak memory of the
driver and of the largest worker. The ratio of the last window's CPU-seconds per training to the
first's says whether the driver's work per decision grows with the study.

The baseline, measured first in the same run: Ray Tune alone (``--floor`` trainings of the same
trainable and sleeping trainer, suggested by a searcher that answers at once and keeps no study).
Its slots-busy share is the most any driver could reach at this concurrency on this machine; the
driver's share is printed against it.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
import ray

from ulsam_nas.data import DataSpec
from ulsam_nas.landscapes.trainer import train as landscape_train
from ulsam_nas.models.spaces import load_space, random_genomes
from ray import tune
from ray.tune.search import Searcher

from ulsam_nas.search import searchers
from ulsam_nas.search.runner import SearchConfig, make_tuner, run_search
from ulsam_nas.search.trainable import TrialSettings, run_trial
from ulsam_nas.train.fidelity import get_fidelity

SHORTEST_S, LONGEST_S = 0.5, 2.0
CHEAPEST_MACS, COSTLIEST_MACS = 150e6, 310e6  # about the span of mv2's genomes at 224 px


def sleep_seconds(genome) -> float:
    """How long ``sleeping_trainer`` trains ``genome``: 0.5 to 2 s, by its MACs."""
    from ulsam_nas.cost import count_cost

    share = (count_cost(genome, num_classes=10).macs - CHEAPEST_MACS) / (COSTLIEST_MACS - CHEAPEST_MACS)
    return SHORTEST_S + (LONGEST_S - SHORTEST_S) * min(1.0, max(0.0, share))


def sleeping_trainer(genome, data, fidelity, seed=0, report=None, **split):
    """The landscape's trainer, each epoch sleeping its share of 0.5 to 2 s (by the genome's MACs);
    every report also carries the seconds slept and the worker's peak memory."""
    reports: list[tuple[int, dict]] = []
    result = landscape_train(genome, data, fidelity, seed=seed, report=lambda epoch, metrics: reports.append((epoch, metrics)),
                             **{k: v for k, v in split.items() if k in ("evaluate_on", "val_fraction")})
    seconds = sleep_seconds(genome)
    for epoch, metrics in reports:
        time.sleep(seconds / len(reports))
        report(epoch, {**metrics, "slept_s": seconds * epoch / len(reports),
                       "worker_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    return result


class Meter:
    """What the benchmark reads off the driver: the wall and CPU clocks at every finished training,
    the seconds each one slept, the workers' peak memory and the time of each suggestion."""

    def __init__(self) -> None:
        self.finished: list[tuple[float, float, float]] = []  # (wall, driver CPU, seconds slept)
        self.suggest_s: list[tuple[int, float]] = []  # (trainings finished when asked, seconds)
        self.worker_peak_mb = 0.0

    def attach(self) -> None:
        """Time ``StudySearcher.suggest`` and count ``on_trial_complete`` (the driver's only entry points per training)."""
        suggest, complete = searchers.StudySearcher.suggest, searchers.StudySearcher.on_trial_complete
        meter = self

        def timed_suggest(searcher, trial_id):
            started = time.perf_counter()
            config = suggest(searcher, trial_id)
            if isinstance(config, dict):
                meter.suggest_s.append((len(meter.finished), time.perf_counter() - started))
            return config

        def counted_complete(searcher, trial_id, result=None, error=False):
            complete(searcher, trial_id, result, error)
            result = result or {}
            meter.worker_peak_mb = max(meter.worker_peak_mb, result.get("worker_peak_mb", 0.0))
            meter.finished.append((time.time(), time.process_time(), result.get("slept_s", 0.0)))

        searchers.StudySearcher.suggest, searchers.StudySearcher.on_trial_complete = timed_suggest, counted_complete

    def windows(self, size: int, slots: int, started: tuple[float, float]) -> list[dict]:
        """One row per ``size`` finished trainings, and one for the rest when fewer are left (a
        budget's reused trials train nothing, so the trainings may stop short of a window)."""
        rows, (wall, cpu), count = [], started, len(self.finished)
        ends = list(range(size, count + 1, size)) + ([count] if count % size else [])
        begin = 0
        for end in ends:
            chunk = self.finished[begin:end]
            end_wall, end_cpu = chunk[-1][0], chunk[-1][1]
            asked = sorted(s for n, s in self.suggest_s if begin <= n < end)
            span = end_wall - wall
            rows.append({"trainings": f"{begin + 1}-{end}", "cpu_per_training_ms": 1000 * (end_cpu - cpu) / len(chunk),
                         "suggest_p50_ms": 1000 * statistics.median(asked) if asked else float("nan"),
                         "suggest_p99_ms": 1000 * asked[min(len(asked) - 1, int(0.99 * len(asked)))] if asked else float("nan"),
                         "busy": sum(c[2] for c in chunk) / (slots * span), "per_second": len(chunk) / span,
                         "span_s": span})
            wall, cpu, begin = end_wall, end_cpu, end
        return rows


class InstantSearcher(Searcher):
    """The baseline's searcher: ``count`` trainings of random genomes of the space, answered at once,
    with no study; what finishes is timed as the driver's trainings are."""

    def __init__(self, space, count: int, meter: Meter) -> None:
        super().__init__(metric="top1", mode="max")
        self.genomes = [str(g) for g in random_genomes(space, min(count, 200), seed=0)]
        self.count, self.meter, self.asked = count, meter, 0

    def suggest(self, trial_id: str):
        if self.asked >= self.count:
            return Searcher.FINISHED
        self.asked += 1
        return {"genome": self.genomes[self.asked % len(self.genomes)], "seed": self.asked, "costs": {}}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        result = result or {}
        self.meter.worker_peak_mb = max(self.meter.worker_peak_mb, result.get("worker_peak_mb", 0.0))
        self.meter.finished.append((time.time(), time.process_time(), result.get("slept_s", 0.0)))


def tune_alone(space, data, fidelity, count: int, slots: int, folder: Path) -> dict:
    """The baseline: Ray Tune running ``count`` of the same trainings with no driver work at all."""
    meter = Meter()
    searcher = InstantSearcher(space, count, meter)
    settings = TrialSettings(data, fidelity, 0.1)
    tuner = make_tuner(run_trial, {"settings": settings, "trainer": sleeping_trainer}, {"cpu": 1.0, "gpu": 0.0},
                       "tune-alone", folder, tune.Callback(), searcher, concurrency=slots)
    started = (time.time(), time.process_time())
    tuner.fit()
    return {**meter.windows(count, slots, started)[0], "worker_peak_mb": meter.worker_peak_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8, help="trainings at once (logical CPUs of the local Ray)")
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--window", type=int, default=500, help="finished trainings per printed row")
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--floor", type=int, default=None,
                        help="trainings of the baseline, Ray Tune alone (default: the smaller of --budget and 500; 0: none)")
    args = parser.parse_args()
    floor = min(args.budget, 500) if args.floor is None else args.floor
    if args.budget < args.window:
        parser.error(f"--budget {args.budget} is below one --window ({args.window})")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ray.init(num_cpus=args.concurrency, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    space, data, fidelity = load_space("mv2"), DataSpec.parse("landscape:null"), get_fidelity("smoke:epochs=1", "mv2")
    baseline = None
    if floor:
        print(f"driver_scale: the baseline, Ray Tune alone: {floor} trainings, {args.concurrency} at once",
              file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as folder:
            baseline = tune_alone(space, data, fidelity, floor, args.concurrency, Path(folder))
    meter = Meter()
    meter.attach()
    with tempfile.TemporaryDirectory() as folder:
        config = SearchConfig(space=space, data=data, num_classes=10, fidelity=fidelity, budget=args.budget,
                              storage_url=f"sqlite:///{Path(folder) / 'study.db'}", study_name="scale",
                              study_dir=Path(folder), sampler=args.sampler, concurrency=args.concurrency,
                              paper_seeds=False)
        started = (time.time(), time.process_time())
        print(f"driver_scale: {args.budget} simulated trainings of 0.5-2 s, {args.concurrency} at once, "
              f"sampler {args.sampler}", file=sys.stderr, flush=True)
        study = run_search(config, trainer=sleeping_trainer)
        finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    ray.shutdown()

    rows = meter.windows(args.window, args.concurrency, started)
    print(f"\n{args.concurrency} slots, budget {args.budget}: the study holds {finished} finished trainings")
    if baseline is not None:
        print(f"baseline, Ray Tune alone ({floor} trainings): {baseline['busy']:.0%} of the slots busy, "
              f"{baseline['per_second']:.2f} trainings/s, {baseline['cpu_per_training_ms']:.1f} ms of driver CPU per "
              f"training; a worker's peak memory {baseline['worker_peak_mb']:.0f} MB")
    print(f"{'trainings':>12} {'driver CPU ms/training':>23} {'suggest p50 ms':>15} {'p99 ms':>8} {'slots busy':>11} "
          f"{'trainings/s':>12}")
    for row in rows:
        print(f"{row['trainings']:>12} {row['cpu_per_training_ms']:>23.1f} {row['suggest_p50_ms']:>15.1f} "
              f"{row['suggest_p99_ms']:>8.1f} {row['busy']:>11.0%} {row['per_second']:>12.2f}")
    if len(rows) > 1:
        print(f"last window's driver CPU per training / first's: {rows[-1]['cpu_per_training_ms'] / rows[0]['cpu_per_training_ms']:.2f}")
    if baseline is not None:
        overall = sum(r["busy"] * r["span_s"] for r in rows) / sum(r["span_s"] for r in rows)
        print(f"slots busy over the search / Ray Tune alone: {overall:.0%} / {baseline['busy']:.0%} = "
              f"{overall / baseline['busy']:.2f}")
    print(f"peak memory: driver {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, "
          f"largest worker {meter.worker_peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
