"""Seconds to reach the same hypervolume on confirmed values: one-shot search plus confirmation
against a standalone search, both the real command on the built-in data.

    python benchmarks/oneshot_vs_standalone.py [--budget 500] [--confirm 4] [--standalone-budget 60]

1. ``--strategy oneshot --budget B --confirm K``: supernet training, B one-shot scores, K
   genomes confirmed standalone with 3 seeds, the paper configurations and the default random
   panel of 8 (``--confirm-panel``, which measures the rank agreement) with 2. Its
   hypervolume is that of the confirmed genome means (what its report states), H1, after T1
   seconds of wall time.
2. A standalone search (``--budget S``, the same seeds, 3 repeats) on a fresh study. From its
   trials' completion times and ``report.hypervolume_history``: T2, the seconds it took to
   first reach H1 (or "not reached" within S trainings).

Both keep the machine's cores busy the whole time (Ray runs as many trials as cores, the
supernet and the scoring use every core), so wall seconds stand for CPU-seconds on this
machine. Prints T1, T2, their ratio T2 / T1 and the one-shot run's Kendall τ with its interval.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from ulsam_nas.analysis.agreement import agreement_of
from ulsam_nas.report.history import hypervolume_history, reference_for


def run(args: list[str], folder: Path) -> float:
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "ulsam_nas.search", "--space", "mv2", "--study", str(folder), *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"search failed:\n{result.stderr[-3000:]}")
    return time.time() - started


def load(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="mv2-synthetic", storage=f"sqlite:///{folder / 'study.db'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=500, help="one-shot trials (default 500)")
    parser.add_argument("--confirm", type=int, default=4, help="genomes confirmed standalone (default 4)")
    parser.add_argument("--standalone-budget", type=int, default=60, help="trainings of the standalone search (default 60)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        oneshot_dir, standalone_dir = Path(tmp) / "oneshot", Path(tmp) / "standalone"
        print(f"one-shot search: --budget {args.budget} --confirm {args.confirm} ...", file=sys.stderr, flush=True)
        oneshot_seconds = run(["--strategy", "oneshot", "--budget", str(args.budget), "--confirm", str(args.confirm)],
                              oneshot_dir)
        oneshot = load(oneshot_dir)
        target = hypervolume_history(oneshot.trials, reference_for(oneshot))[-1][1]
        agreement = agreement_of(oneshot)
        print(f"standalone search: --budget {args.standalone_budget} ...", file=sys.stderr, flush=True)
        started = time.time()
        standalone_seconds = run(["--budget", str(args.standalone_budget)], standalone_dir)
        standalone = load(standalone_dir)
        history = dict(hypervolume_history(standalone.trials, reference_for(standalone)))
        first = min(t.datetime_start for t in standalone.trials if t.datetime_start).timestamp()
        reached = [t.datetime_complete.timestamp() - first for t in sorted(standalone.trials, key=lambda t: t.number)
                   if t.datetime_complete and history[t.number] >= target]
        # The standalone command's own start-up (Ray, data) counts as it does for the one-shot run.
        overhead = (first - started) if started < first else 0.0
    print(f"one-shot: {oneshot_seconds:.0f} s to hypervolume {target:.4f} on confirmed values "
          f"({args.budget} one-shot trials, {args.confirm} confirmed)")
    if agreement is not None:
        print("  " + "\n  ".join(agreement.lines()))
    final = max(history.values())
    if reached:
        seconds = overhead + min(reached)
        print(f"standalone: {seconds:.0f} s to reach it (final hypervolume {final:.4f} after {standalone_seconds:.0f} s)")
        print(f"ratio standalone / one-shot: {seconds / oneshot_seconds:.2f}")
    else:
        print(f"standalone: not reached in {args.standalone_budget} trainings ({standalone_seconds:.0f} s, final "
              f"hypervolume {final:.4f}); ratio above {standalone_seconds / oneshot_seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
