"""Several drivers on one PostgreSQL study and one budget, one of them killed with kill -9 and started
again: what the suite tests at 8 trainings (tests/test_scaling.py), at thousands.

    python benchmarks/drivers_shared.py [--drivers 4] [--concurrency 8] [--budget 2000] [--kill-at 1000]

Each driver is its own process running the real driver (``run_search``: the search policy, the
study searcher, Ray Tune, the study on PostgreSQL) on the ``null`` landscape with the sleeping
trainer of ``driver_scale.py`` (0.5 to 2 s a training), ``--concurrency`` trainings at once, all on
one local Ray instance with drivers x concurrency logical CPUs, all started with the same arguments
as a user starts them (each driver's sampler draws a stream of its own: ``runner.DRIVER_SEED_STRIDE``). The PostgreSQL server is
``ULSAM_NAS_POSTGRES_URL`` when set, else a throwaway one from ``.ci/postgres``.

When the study holds ``--kill-at`` finished trials, the first driver with a training running is
killed with kill -9 and started again with the same arguments. At the end it prints the finished
trials against the budget, the (genome, seed) pairs trained more than once, the trials closed as
interrupted and whose driver held them (only the killed one's may be), the re-runs of those, the
wall time, the trainings per second and how busy the worker slots were (the seconds the trainings
slept over the wall time times the slots).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS.parent
STUDY = "shared"
STORAGE_VARIABLE = "DRIVERS_SHARED_STORAGE"  # the drivers' storage URL


def child(args: argparse.Namespace) -> int:
    """One driver: ``run_search`` on the shared study, joining the parent's Ray instance (RAY_ADDRESS)."""
    import optuna
    import ray
    from ray import cloudpickle

    sys.path.insert(0, str(BENCHMARKS))
    import driver_scale

    from ulsam_nas.data import DataSpec
    from ulsam_nas.models.spaces import load_space
    from ulsam_nas.search.runner import SearchConfig, run_search
    from ulsam_nas.train.fidelity import get_fidelity

    cloudpickle.register_pickle_by_value(driver_scale)  # Ray's workers cannot import benchmarks/
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    config = SearchConfig(space=load_space("mv2"), data=DataSpec.parse("landscape:null"), num_classes=10,
                          fidelity=get_fidelity("smoke:epochs=1", "mv2"), budget=args.budget,
                          storage_url=os.environ[STORAGE_VARIABLE], study_name=STUDY, study_dir=Path(args.study_dir),
                          concurrency=args.concurrency, paper_seeds=False)
    run_search(config, trainer=driver_scale.sleeping_trainer)
    return 0


def postgres() -> tuple[str, list[str] | None]:
    """The server's URL, and the command that stops it when this run started it."""
    if os.environ.get("ULSAM_NAS_POSTGRES_URL"):
        return os.environ["ULSAM_NAS_POSTGRES_URL"], None
    # A folder of its own under /tmp: as root, the server runs as user postgres, who cannot reach a private parent.
    script, folder = str(REPOSITORY / ".ci" / "postgres"), tempfile.mkdtemp(prefix="ulsam-pg-")
    url = subprocess.run([script, "start", folder], check=True, capture_output=True, text=True).stdout.strip()
    return url, [script, "stop", folder]


def connect(url: str):
    """A plain psycopg connection to the study's database (an Optuna storage opened here would race
    the drivers to create the schema)."""
    import psycopg
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    return psycopg.connect(host=parts.host, port=parts.port, user=parts.username, password=parts.password,
                           dbname=parts.database)


def study_counts(url: str) -> tuple[int, int]:
    """(finished, running) trials of the shared study, read with plain SQL (0, 0 before its tables exist)."""
    import psycopg

    try:
        with connect(url) as connection:
            rows = connection.execute("SELECT t.state, count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
                                      "WHERE s.study_name = %s GROUP BY t.state", (STUDY,)).fetchall()
    except psycopg.errors.UndefinedTable:
        return 0, 0
    counts = {str(state): n for state, n in rows}
    return sum(n for state, n in counts.items() if state in ("COMPLETE", "PRUNED", "FAIL")), counts.get("RUNNING", 0)


def running_of(url: str, pid: int) -> int:
    """How many RUNNING trials driver ``pid`` holds."""
    with connect(url) as connection:
        return connection.execute(
            "SELECT count(*) FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
            "WHERE t.state = 'RUNNING' AND a.key = 'driver' AND a.value_json LIKE %s", (f'%|{pid}|%',)).fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drivers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="trainings at once per driver")
    parser.add_argument("--budget", type=int, default=2000, help="finished trials of the shared study")
    parser.add_argument("--kill-at", type=int, default=1000, help="finished trials when one driver is killed")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--study-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if not 0 < args.kill_at < args.budget:
        parser.error(f"--kill-at must be between 0 and --budget ({args.budget}), got {args.kill_at}")

    import optuna
    import ray

    # Everything this process imports, imported before the drivers run: a module edited meanwhile
    # would otherwise be imported beside the old versions of the modules it needs.
    sys.path.insert(0, str(BENCHMARKS))
    from driver_scale import sleep_seconds

    from ulsam_nas.models.genome import Genome
    from ulsam_nas.search.ledger import counts_toward_budget, is_interrupted
    from ulsam_nas.studies import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    slots = args.drivers * args.concurrency
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        url, stop_postgres = postgres()
        context = ray.init(num_cpus=slots, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        # The URL, with the throwaway server's password, goes to the drivers in their environment:
        # a command line is readable by every user of the machine (ps).
        env = {**os.environ, "RAY_ADDRESS": context.address_info["gcs_address"], STORAGE_VARIABLE: url,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))}
        drivers: dict[int, subprocess.Popen] = {}
        try:
            def start(index: int) -> subprocess.Popen:
                log = open(folder / f"driver{index}.log", "a")
                return subprocess.Popen([sys.executable, __file__, "--child",
                                         "--study-dir", str(folder / f"driver{index}"), "--budget", str(args.budget),
                                         "--concurrency", str(args.concurrency)],
                                        stdout=log, stderr=subprocess.STDOUT, env=env)

            print(f"drivers_shared: {args.drivers} drivers x {args.concurrency} trainings at once, budget {args.budget}, "
                  f"kill -9 at {args.kill_at}", file=sys.stderr, flush=True)
            started = time.time()
            drivers.update({index: start(index) for index in range(args.drivers)})
            victim_pid = killed_at = None
            while any(d.poll() is None for d in drivers.values()):
                finished, running = study_counts(url)
                print(f"\r  {finished}/{args.budget} finished, {running} running, {time.time() - started:.0f} s",
                      end="", file=sys.stderr, flush=True)
                if victim_pid is None and finished >= args.kill_at:
                    index = next((i for i, d in drivers.items() if d.poll() is None and running_of(url, d.pid)), None)
                    if index is not None:
                        victim_pid, killed_at = drivers[index].pid, finished
                        os.kill(victim_pid, signal.SIGKILL)
                        drivers[index].wait()
                        drivers[index] = start(index)
                        print(f"\n  killed driver {index} (pid {victim_pid}) at {finished} finished trials; started again",
                              file=sys.stderr, flush=True)
                time.sleep(2)
            wall = time.time() - started
            failed = {i: d.returncode for i, d in drivers.items() if d.returncode}
            for index in failed:
                print(f"\ndriver {index} exited {failed[index]}:\n"
                      + (folder / f"driver{index}.log").read_text()[-3000:], file=sys.stderr)
            if len(failed) == len(drivers):
                return 1
            trials = optuna.load_study(study_name=STUDY, storage=open_storage(url)).get_trials(deepcopy=False)
        finally:
            for driver in drivers.values():  # an interrupted run leaves no driver behind
                if driver.poll() is None:
                    driver.kill()
                    driver.wait()
            ray.shutdown()
            if stop_postgres:
                subprocess.run(stop_postgres, check=False, capture_output=True)

    counted = sum(counts_toward_budget(t) for t in trials)
    trained = [t for t in trials if t.state.is_finished() and "genome" in t.user_attrs and "reused_from" not in t.user_attrs
               and "infeasible" not in t.user_attrs and not is_interrupted(t)]
    pairs = collections.Counter((t.user_attrs["genome"], t.user_attrs["seed"]) for t in trained)
    twice = {pair: n for pair, n in pairs.items() if n > 1}
    closed = [t for t in trials if is_interrupted(t)]
    closed_live = [t for t in closed if t.user_attrs.get("driver", "||").split("|")[2] != str(victim_pid)]
    reruns = [t for t in trials if "rerun_of" in t.user_attrs and t.state.is_finished()]
    left_open = sum(t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING) for t in trials)
    busy = sum(sleep_seconds(Genome.from_string(t.user_attrs["genome"])) for t in trained) / (slots * wall)
    closed_by_driver = collections.Counter(t.user_attrs.get("driver", "||").split("|")[2] for t in closed)
    print(f"\n{args.drivers} drivers x {args.concurrency} slots on one PostgreSQL study, budget {args.budget}:")
    print(f"  finished trials counting toward the budget: {counted} (budget {args.budget}); left RUNNING or WAITING: {left_open}")
    print(f"  trainings: {len(trained)}, reused trials: {sum('reused_from' in t.user_attrs for t in trials)}")
    print(f"  (genome, seed) trained more than once: {len(twice)}")
    print(f"  killed: pid {victim_pid} at {killed_at} finished trials; trials closed as interrupted: {len(closed)} "
          f"(of a live driver: {len(closed_live)}); their re-runs finished: {len(reruns)}; closed per driver pid: "
          f"{dict(closed_by_driver)}")
    print(f"  wall {wall:.0f} s, {len(trained) / wall:.2f} trainings/s, slots busy {busy:.0%}")
    print(f"  drivers that exited with an error: {len(failed)}")
    whole = counted == args.budget and not twice and not closed_live and not left_open and not failed
    print("the budget is exact, nothing trained twice, no live driver's trial closed" if whole else "NOT WHOLE: see above")
    return 0 if whole else 1


if __name__ == "__main__":
    sys.exit(main())
