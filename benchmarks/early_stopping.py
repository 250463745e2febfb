"""Hypervolume reached in the same CPU-seconds with --early-stop (multi-objective successive halving) and without.

    python benchmarks/early_stopping.py [--seconds 120] [--seed 0]
    python benchmarks/early_stopping.py --landscape additive,sigma=2,between=1 [--seeds 3] [--budget 200]

With ``--landscape``, both arms are searches of ``--budget`` trials on a landscape (a trainer whose
truth is known, ``ulsam_nas.landscapes``) through the real driver (Ray Tune, the searcher, the
scheduler, the SQLite study), over ``--seeds`` seeds, scored by the truth of what the product reports
on its front (``ulsam_nas.simulate.truth``), beside the simulated training seconds each arm spent (a
stopped trial spends only the epochs it ran). A one-sided Mann-Whitney test asks whether early
stopping reaches a higher share of the true front's hypervolume at the same trial budget.

Without it:

Both arms run the same search (mv2 space, NSGA-II with the same seed, 3 seeds per contender, 2
trials at once with 1 CPU each) with real smoke training at 4 epochs (rungs at epochs 1 and 2) on
the built-in synthetic data, one arm after the other, each in its own process with its own local
Ray. Equal CPU-seconds: each arm gets the same wall-clock window at the same concurrency, opened
when its first trial starts (Ray's start-up is not counted) and closed by interrupting the search,
as Ctrl-C does. Compared: the hypervolume of the genome means over the trials COMPLETE inside the
window, normalised as the report does (``report.hypervolume_history``, ``report.reference_for``).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ulsam_nas.data import DataSpec, load_images
from ulsam_nas.models.spaces import load_space
from ulsam_nas.report.history import hypervolume_history, reference_for
from ulsam_nas.search.runner import SearchConfig, run_search
from ulsam_nas.train.fidelity import SMOKE

FIDELITY = replace(SMOKE, epochs=4)
STUDY = "bench"


def search(folder: Path, early_stop: bool, seed: int) -> None:
    """One arm, until interrupted: a budget it cannot reach in the window."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    config = SearchConfig(space=load_space("mv2"), data=DataSpec("synthetic"), num_classes=10, fidelity=FIDELITY,
                          budget=10_000, storage_url=f"sqlite:///{folder / 'study.db'}", study_name=STUDY,
                          study_dir=folder, seed=seed, concurrency=2, paper_seeds=False, early_stop=early_stop)
    try:
        run_search(config)
    except KeyboardInterrupt:
        pass


def run_arm(folder: Path, early_stop: bool, seed: int, seconds: float) -> optuna.Study:
    """Run one arm in a child process for ``seconds`` after its first trial starts; its study."""
    folder.mkdir()
    child = subprocess.Popen([sys.executable, __file__, "--child", str(folder), "--seed", str(seed)]
                             + (["--early-stop"] if early_stop else []), stderr=subprocess.DEVNULL)
    storage = f"sqlite:///{folder / 'study.db'}"
    while True:
        time.sleep(0.5)
        try:
            if optuna.load_study(study_name=STUDY, storage=storage).trials:
                break
        except KeyError:  # not created yet
            continue
    time.sleep(seconds)
    child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=120)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    return optuna.load_study(study_name=STUDY, storage=storage)


def summary(study: optuna.Study, seconds: float) -> tuple[float, str]:
    """Hypervolume of the genome means over the trials COMPLETE in the window, and what the window held."""
    opened = min(t.datetime_start for t in study.trials if t.datetime_start is not None)  # re-enqueued: None
    closes = opened + timedelta(seconds=seconds)
    inside = [t for t in study.trials if t.datetime_complete is not None and t.datetime_complete <= closes]
    history = hypervolume_history(inside, reference_for(study))
    complete = [t for t in inside if t.state == TrialState.COMPLETE]
    pruned = sum(t.state == TrialState.PRUNED for t in inside)
    genomes = len({t.user_attrs["genome"] for t in complete})
    return (history[-1][1] if history else 0.0), f"{len(complete)} complete ({genomes} genomes), {pruned} stopped early"


def landscape_arm(landscape: str, early_stop: bool, seed: int, budget: int) -> tuple[float, float, str]:
    """One search on ``landscape`` through the real driver; (its hypervolume share by the truth, the
    training seconds it spent, what it held). Ray must be initialised."""
    from ulsam_nas.analysis.front import Front
    from ulsam_nas.landscapes import load_landscape
    from ulsam_nas.simulate.truth import score_study, true_front

    space = load_space("mv2")
    truth = load_landscape(landscape, space)
    with tempfile.TemporaryDirectory() as folder:
        config = SearchConfig(space=space, data=DataSpec.parse(f"landscape:{landscape}"), num_classes=truth.num_classes,
                              fidelity=FIDELITY, budget=budget, storage_url=f"sqlite:///{Path(folder) / 'study.db'}",
                              study_name=STUDY, study_dir=Path(folder), seed=seed, concurrency=2, paper_seeds=False,
                              early_stop=early_stop)
        study = run_search(config)
        front = Front.of_study(study)
        finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        seconds = sum(t.user_attrs.get("seconds", 0.0) for t in finished)  # each trial's last report: its epochs so far
        scored = score_study(study, truth, true_front(truth, space))
        pruned = sum(t.state == TrialState.PRUNED for t in finished)
    return scored.hv_share, seconds, f"{len(front.stats)} genomes, {pruned} stopped early"


def landscape_main(landscape: str, seeds: int, budget: int) -> None:
    import ray
    from scipy.stats import mannwhitneyu

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    arms: dict[str, list[tuple[float, float, str]]] = {"none": [], "early-stop": []}
    for seed in range(seeds):
        for name, early_stop in (("none", False), ("early-stop", True)):
            started = time.time()
            arms[name].append(landscape_arm(landscape, early_stop, seed, budget))
            share, seconds, held = arms[name][-1]
            print(f"seed {seed} {name:>10}: hypervolume share {share:.3f}, {seconds:.0f} training-s ({held}); "
                  f"{time.time() - started:.0f} s", file=sys.stderr, flush=True)
    print(f"\nmv2 on landscape:{landscape}, budget {budget}, smoke at {FIDELITY.epochs} epochs, {seeds} seeds, "
          f"through Ray Tune; share of the true front's hypervolume (median [min, max]) and training-seconds:")
    for name, runs in arms.items():
        shares = sorted(r[0] for r in runs)
        print(f"  {name:>10}: {shares[len(shares) // 2]:.3f} [{shares[0]:.3f}, {shares[-1]:.3f}], "
              f"{sum(r[1] for r in runs) / len(runs):.0f} training-s per search")
    p = mannwhitneyu([r[0] for r in arms["early-stop"]], [r[0] for r in arms["none"]], alternative="greater").pvalue
    ratio = sum(r[1] for r in arms["early-stop"]) / max(sum(r[1] for r in arms["none"]), 1e-9)
    print(f"  early-stop > none on the hypervolume share: one-sided Mann-Whitney p = {p:.3f}; "
          f"training-seconds ratio early-stop / none: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120, help="window per arm (default 120)")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed, the same in both arms (default 0)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--early-stop", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--landscape", default=None, help="compare at a trial budget on this landscape (see above)")
    parser.add_argument("--seeds", type=int, default=3, help="with --landscape: searches per arm (default 3)")
    parser.add_argument("--budget", type=int, default=200, help="with --landscape: trials per search (default 200)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.landscape:
        landscape_main(args.landscape, args.seeds, args.budget)
        return
    if args.child:
        search(args.child, args.early_stop, args.seed)
        return
    load_images(DataSpec("synthetic"), "train", FIDELITY.resolution)  # the data cache, before either window
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name, early_stop in (("none", False), ("early-stop", True)):
            study = run_arm(Path(workdir) / name, early_stop, args.seed, args.seconds)
            results[name] = summary(study, args.seconds)
    print(f"\nmv2 on synthetic, smoke at {FIDELITY.epochs} epochs, 2 trials at once, {args.seconds:g} s per arm, "
          f"seed {args.seed}; hypervolume of the genome means:")
    for name, (volume, held) in results.items():
        print(f"  {name:>10}: {volume:.4f}  ({held})")
    none, early = results["none"][0], results["early-stop"][0]
    print(f"  ratio early-stop / none: {early / none:.3f}" if none else "  ratio: no complete trial without early stop")


if __name__ == "__main__":
    main()
