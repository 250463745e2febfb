"""Seconds to score a genome with inherited supernet weights against seconds to train it
standalone, both at the same fidelity on the built-in data, on one thread, in one run.

    python benchmarks/oneshot_scoring.py [--fidelity smoke] [--genomes 6]

Scoring (``supernet.PathScorer``) re-estimates the path's BatchNorm statistics and evaluates it
on the validation split; training (``train.train``, ``evaluate_on="val"``) is what a standalone
search trial does. The ratio is what one-shot mode saves per genome explored, before the
supernet's own training. One thread: on a shared 2-core machine another busy process stalls a
second OpenMP thread at every op, and one core is the work's cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import optuna
import torch

from ulsam_nas.models.spaces import load_space, random_genomes
from ulsam_nas.train.fidelity import get_fidelity
from ulsam_nas.train.loop import train
from ulsam_nas.train.supernet import PathScorer, SuperNet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fidelity", default="smoke", help="fidelity of both (default smoke)")
    parser.add_argument("--genomes", type=int, default=6, help="random mv2 genomes scored; 2 of them trained (default 6)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    space = load_space("mv2")
    fidelity = get_fidelity(args.fidelity, space.backbone)
    genomes = random_genomes(space, args.genomes + 1, seed=2)
    torch.manual_seed(0)
    scorer = PathScorer(SuperNet(space, 10, fidelity).eval(), "synthetic")
    scorer(genomes[0])  # warm-up: first-call allocations
    scoring = []
    for genome in genomes[1:]:
        started = time.perf_counter()
        scorer(genome)
        scoring.append(time.perf_counter() - started)
    training = []
    for genome in genomes[1:3]:
        started = time.perf_counter()
        train(genome, "synthetic", fidelity, evaluate_on="val")
        training.append(time.perf_counter() - started)
    score_s, train_s = statistics.median(scoring), statistics.median(training)
    print(f"{fidelity.name}, mv2, 1 thread: scoring a genome {score_s:.2f} s (median of {len(scoring)}), "
          f"training it standalone {train_s:.2f} s (median of {len(training)})")
    print(f"ratio training / scoring: {train_s / score_s:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
