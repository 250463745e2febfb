"""How the report and a dashboard publish grow with the study: the same study at two sizes.

    python benchmarks/report_scale.py [--small 500] [--large 5000] [--repeats 3]

Each study is what a search leaves on SQLite (``simulate.driver.simulate_search``: the search policy
over the ``paper:cub200`` landscape, K = 3 seeds per contender, 8 trainings at once; random
sampling, which builds a large study in seconds and leaves as many genomes as a search does). Then,
on each study, it times the offline report (``report.writer.write_report``, what ``python -m
ulsam_nas.report`` writes) and one dashboard publish (``report.publish.publish_front``: the figures,
the notes and the genome study's rebuild), the best of ``--repeats``, and prints the large study's
time over the small one's. Ten times the trainings may cost at most 15 times the time: nothing in
either may grow with the square of the study.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import optuna

from ulsam_nas.models.spaces import load_space
from ulsam_nas.report.publish import publish_front
from ulsam_nas.report.writer import write_report
from ulsam_nas.simulate.driver import simulate_search
from ulsam_nas.studies import open_storage

LANDSCAPE = "paper:cub200"


def build_study(trainings: int, folder: Path) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    """A search's study of ``trainings`` finished trials, simulated in memory, then copied to SQLite."""
    simulated = simulate_search(load_space("mv2"), LANDSCAPE, trainings, sampler="random", concurrency=8,
                                study_name=f"scale{trainings}").study
    # Opened as a search opens its study (write-ahead log, synced at checkpoints): copying to a plain URL
    # waits for an fsync per write, about 0.45 s per trial.
    storage = open_storage(f"sqlite:///{folder / f'study{trainings}.db'}")
    optuna.copy_study(from_study_name=simulated.study_name, from_storage=simulated._storage, to_storage=storage)
    return optuna.load_study(study_name=simulated.study_name, storage=storage), storage


def best_time(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=500, help="trainings of the small study")
    parser.add_argument("--large", type=int, default=5000, help="trainings of the large study")
    parser.add_argument("--repeats", type=int, default=3, help="timings of each, the best kept")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in (args.small, args.large):
            started = time.perf_counter()
            print(f"report_scale: building a study of {size} trainings", file=sys.stderr, flush=True)
            study, storage = build_study(size, Path(folder))
            genomes = len({t.user_attrs["genome"] for t in study.get_trials(deepcopy=False) if "genome" in t.user_attrs})
            print(f"  built in {time.perf_counter() - started:.0f} s: {genomes} genomes", file=sys.stderr, flush=True)
            report = best_time(lambda: write_report(study, Path(folder) / f"report{size}"), args.repeats)
            publish = best_time(lambda: publish_front(study, storage), args.repeats)
            rows[size] = (genomes, report, publish)
    small, large = rows[args.small], rows[args.large]
    print(f"\n{'trainings':>10} {'genomes':>8} {'report s':>9} {'publish s':>10}")
    for size, (genomes, report, publish) in rows.items():
        print(f"{size:>10} {genomes:>8} {report:>9.2f} {publish:>10.2f}")
    print(f"{args.large} / {args.small} trainings: report {large[1] / small[1]:.1f}x, publish {large[2] / small[2]:.1f}x "
          f"(the acceptance: at most 15x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
