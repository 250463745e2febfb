"""How busy one driver keeps a cluster: a simulated search at cluster scale, on this machine.

    python benchmarks/driver_scale.py [--concurrency 8] [--budget 500] [--window 500] [--sampler tpe] [--floor 500]

The real driver (``run_search``: the search policy, the study searcher, Ray Tune, the SQLite study
and the dashboard publisher) runs a search on a landscape (``null``, so that nothing trains) whose
trainings each sleep 0.5 to 2 s, longer for a costlier genome, on a local Ray instance with
``--concurrency`` logical CPUs: that many trainings at once, as on a cluster of that many workers.

For each window of ``--window`` trials the study counts (its budget's unit: a training, or a result
reused for a genome and seed the sampler proposed again, which costs the driver a suggestion and no
worker time) it prints how many of them trained, the driver's CPU-seconds per trial and per training
(all its threads, Tune's included), the latency of the searcher's suggestions that started a
training (p50 and p99), the dashboard publishes that ended in the window and their CPU per trial
(included in the driver's), how busy the worker slots were (the seconds slept by the trainings that
finished in the window over its wall time times the slots) and the trainings per second; then the
peak memory of the driver and of the largest worker. The ratio of the last window's CPU-seconds per
trial to the first's says whether the driver's work per decision grows with the study.

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
from ray import tune
from ray.tune.search import Searcher

from ulsam_nas.data import DataSpec
from ulsam_nas.landscapes.trainer import train as landscape_train
from ulsam_nas.models.spaces import load_space, random_genomes
from ulsam_nas.report.publish import DashboardPublisher
from ulsam_nas.search import searchers
from ulsam_nas.search.policy import SearchPolicy
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
    """What the benchmark reads off the driver: the wall and CPU clocks at every trial the study
    counts (a training, or a result reused for a genome and seed proposed again), the seconds each
    training slept, the workers' peak memory and the time of each suggestion."""

    def __init__(self) -> None:
        self.counted: list[tuple[float, float, bool]] = []  # (wall, driver CPU, trained)
        self.trained: list[tuple[float, float]] = []  # (wall, seconds slept)
        self.suggest_s: list[tuple[int, float]] = []  # (trials counted when asked, seconds)
        self.published: list[tuple[float, float]] = []  # (wall when done, driver CPU seconds) of each dashboard publish
        self.worker_peak_mb = 0.0

    def attach(self) -> None:
        """Time ``StudySearcher.suggest``, and log the trials the policy counts and the trainings
        Tune reports finished (the driver's entry points per trial)."""
        suggest, complete, count = searchers.StudySearcher.suggest, searchers.StudySearcher.on_trial_complete, SearchPolicy._count
        publish = DashboardPublisher.publish
        meter = self

        def timed_suggest(searcher, trial_id):
            started = time.perf_counter()
            config = suggest(searcher, trial_id)
            if isinstance(config, dict):
                meter.suggest_s.append((len(meter.counted), time.perf_counter() - started))
            return config

        def logged_complete(searcher, trial_id, result=None, error=False):
            complete(searcher, trial_id, result, error)
            meter.training_finished(result or {})

        def logged_count(policy, trial, state):
            count(policy, trial, state)
            trained = "reused_from" not in trial.user_attrs and "infeasible" not in trial.user_attrs
            meter.counted.append((time.time(), time.process_time(), trained))

        def timed_publish(publisher, complete):
            started = time.process_time()
            publish(publisher, complete)
            meter.published.append((time.time(), time.process_time() - started))

        searchers.StudySearcher.suggest, searchers.StudySearcher.on_trial_complete = timed_suggest, logged_complete
        SearchPolicy._count = logged_count
        DashboardPublisher.publish = timed_publish

    def training_finished(self, result: dict) -> None:
        self.worker_peak_mb = max(self.worker_peak_mb, result.get("worker_peak_mb", 0.0))
        self.trained.append((time.time(), result.get("slept_s", 0.0)))

    def windows(self, size: int, slots: int, started: tuple[float, float]) -> list[dict]:
        """One row per ``size`` trials counted, and one for the rest when fewer are left."""
        rows, (wall, cpu), count = [], started, len(self.counted)
        ends = list(range(size, count + 1, size)) + ([count] if count % size else [])
        begin = 0
        for end in ends:
            chunk = self.counted[begin:end]
            end_wall, end_cpu = chunk[-1][0], chunk[-1][1]
            asked = sorted(s for n, s in self.suggest_s if begin <= n < end)
            slept = sum(s for at, s in self.trained if wall < at <= end_wall)
            trainings = sum(trained for _, _, trained in chunk)
            publishing = [cpu_s for at, cpu_s in self.published if wall < at <= end_wall]
            span = end_wall - wall
            rows.append({"trials": f"{begin + 1}-{end}", "trainings": trainings,
                         "cpu_per_trial_ms": 1000 * (end_cpu - cpu) / len(chunk),
                         "cpu_per_training_ms": 1000 * (end_cpu - cpu) / max(1, trainings),
                         "publishes": len(publishing), "publish_per_trial_ms": 1000 * sum(publishing) / len(chunk),
                         "suggest_p50_ms": 1000 * statistics.median(asked) if asked else float("nan"),
                         "suggest_p99_ms": 1000 * asked[min(len(asked) - 1, int(0.99 * len(asked)))] if asked else float("nan"),
                         "busy": slept / (slots * span), "per_second": trainings / span, "span_s": span})
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
        self.meter.training_finished(result or {})
        self.meter.counted.append((time.time(), time.process_time(), True))


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
    parser.add_argument("--window", type=int, default=500, help="trials counted per printed row")
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
    print(f"{'trials':>12} {'trainings':>10} {'driver CPU ms/trial':>20} {'ms/training':>12} {'publishes':>10} "
          f"{'publish ms/trial':>17} {'suggest p50 ms':>15} {'p99 ms':>8} {'slots busy':>11} {'trainings/s':>12}")
    for row in rows:
        print(f"{row['trials']:>12} {row['trainings']:>10} {row['cpu_per_trial_ms']:>20.1f} {row['cpu_per_training_ms']:>12.1f} "
              f"{row['publishes']:>10} {row['publish_per_trial_ms']:>17.1f} {row['suggest_p50_ms']:>15.1f} "
              f"{row['suggest_p99_ms']:>8.1f} {row['busy']:>11.0%} {row['per_second']:>12.2f}")
    if len(rows) > 1:
        print(f"last window's driver CPU / first's: {rows[-1]['cpu_per_trial_ms'] / rows[0]['cpu_per_trial_ms']:.2f} per trial, "
              f"{rows[-1]['cpu_per_training_ms'] / rows[0]['cpu_per_training_ms']:.2f} per training")
    if baseline is not None:
        overall = sum(r["busy"] * r["span_s"] for r in rows) / sum(r["span_s"] for r in rows)
        print(f"slots busy over the search / Ray Tune alone: {overall:.0%} / {baseline['busy']:.0%} = "
              f"{overall / baseline['busy']:.2f}")
    print(f"peak memory: driver {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, "
          f"largest worker {meter.worker_peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
