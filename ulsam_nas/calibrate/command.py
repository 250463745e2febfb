"""python -m ulsam_nas.calibrate: which proxy fidelity ranks architectures like a longer training.

    python -m ulsam_nas.calibrate --space mv2 --fidelities smoke,smoke:epochs=8 --reference proxy \\
        [--dataset D] [--panel paper|random:N|FILE] [--seeds K] [--study DIR] [--min-tau 0.6]

Every NAS result stands on the bet that the cheap proxy ranks genomes as the target training
would. This command measures it (as EcoNAS and the zero-cost-proxy studies do): a panel of
genomes is trained at every candidate fidelity and at the reference, K seeds each, through the
same Ray Tune machinery as the search (validation split, resources, ``--address``). Every
training is a trial of an Optuna study (one per (fidelity, genome, seed); a killed run resumes
without retraining what finished). For each candidate it reports seconds per training and the
cost of a 200-training search, the seed noise σ and the spread of the genome means, Kendall τ
and Spearman ρ between its mean ranking and the reference's (each with a bootstrap 90% interval
over the panel), and the top-5 overlap. Beside τ: the ceiling (the reference's split-half τ,
how well it agrees with itself), the free baselines (τ of ranking by MACs and by params) and the
between-genome std of the fidelity's genome means beyond seed noise (``front.between_genome``).
It recommends the cheapest fidelity whose τ lower bound reaches ``--min-tau`` and whose τ is
above both baselines. Writes ``calibration.json`` and an offline ``calibration.html``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import optuna

from ..cli import ArgumentParser, add_resource_flags, check_storage, fail, quiet_logging, size_trials, start_ray
from ..data import VAL_FRACTION, DataSpec, check_val_fraction, load_images
from ..data.layouts import READERS
from ..models.spaces import load_space
from ..names import STUDIES, folder_in
from ..search.ledger import close_interrupted
from ..studies import open_storage
from ..train.fidelity import parse_fidelity, split_fidelities
from .figures import analyse
from .outputs import summary_lines, write_outputs
from .panel import make_panel
from .trainings import ONESHOT, candidate_name, plan, score_panel_oneshot


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m ulsam_nas.calibrate",
                       description="Measure how well cheap fidelities rank genomes like a reference training.")
    p.add_argument("--space", default="mv2", help="search space: mv1, mv2 or a .toml path (default mv2)")
    p.add_argument("--dataset", default="synthetic", help="NAME[:ROOT] (default synthetic)")
    p.add_argument("--fidelities", required=True,
                   help="comma-separated candidate fidelities, e.g. smoke,smoke:epochs=8,resolution=48; oneshot:FIDELITY "
                        "scores the panel with a weight-sharing supernet trained at FIDELITY (one per seed)")
    p.add_argument("--reference", required=True, help="the fidelity to rank like, e.g. proxy or smoke:epochs=10")
    p.add_argument("--panel", default="default",
                   help="paper | random:N | FILE of genome strings (default: paper configurations plus random, 16)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per (fidelity, genome) (default 2)")
    p.add_argument("--seed", type=int, default=0, help="first seed, and the seed of the random panel (default 0)")
    p.add_argument("--min-tau", type=float, default=0.6, help="τ lower bound a recommendation needs (default 0.6)")
    p.add_argument("--val-fraction", type=float, default=VAL_FRACTION, help=f"validation share (default {VAL_FRACTION})")
    p.add_argument("--study", type=Path, default=None, help="folder (default studies/calibrate-<space>-<dataset>)")
    add_resource_flags(p)
    args = p.parse_args(argv)
    quiet_logging()
    try:
        space = load_space(args.space)
        data = DataSpec.parse(args.dataset)
        if data.name in READERS:
            READERS[data.name](data.root, "train")
        names = split_fidelities(args.fidelities)
        if not names:
            fail("--fidelities names no fidelity")
        candidates = list(dict.fromkeys(candidate_name(name, space.backbone) for name in names))
        reference = parse_fidelity(args.reference, space.backbone).name
        candidates = [c for c in candidates if c != reference]
        if not candidates:
            fail("--fidelities holds only the reference: give at least one other fidelity")
        if args.seeds < 1:
            fail(f"--seeds must be at least 1, got {args.seeds}")
        if not -1 <= args.min_tau <= 1:
            fail(f"--min-tau must be in [-1, 1], got {args.min_tau}")
        check_val_fraction(args.val_fraction)
        panel = make_panel(space, args.panel, args.seed)
    except ValueError as error:
        fail(str(error))
    name = f"calibrate-{space.name}-{data.name}"
    try:  # the space's name is checked; the folder must not lead out through a symbolic link
        study_dir = args.study or folder_in(STUDIES, name)
    except ValueError as error:
        fail(str(error))
    storage_url = f"sqlite:///{(study_dir / 'calibration.db').resolve()}"
    check_storage(storage_url, study_dir)

    start_ray(args.address)  # before anything imports Ray: joining a cluster may set its token mode
    resources = size_trials(args)
    try:
        num_classes = len(load_images(data, "train", parse_fidelity(reference, space.backbone).resolution).classes)
    except ValueError as error:
        fail(str(error))

    study_dir.mkdir(parents=True, exist_ok=True)
    storage = open_storage(storage_url)
    study = optuna.create_study(storage=storage, study_name=name, directions=["maximize"], load_if_exists=True)
    identity = {"space": space.name, "dataset": str(data), "val_fraction": args.val_fraction}
    for key, value in identity.items():
        stored = study.user_attrs.get(key)
        if stored is not None and stored != value:
            fail(f"calibration study in {study_dir} was run with {key} {stored!r}, not {value!r}: choose another --study")
        study.set_user_attr(key, value)
    closed = close_interrupted(study, storage, requeue=False)
    if closed:
        print(f"closed {len(closed)} interrupted training(s) as FAIL; they run again", file=sys.stderr)
    seeds = list(range(args.seed, args.seed + args.seeds))
    oneshot = [c for c in candidates if c.startswith(ONESHOT)]
    jobs = plan(study, [*(c for c in candidates if c not in oneshot), reference], panel, seeds)
    total = (len(candidates) - len(oneshot) + 1) * len(panel) * len(seeds)
    print(f"calibrating {len(candidates)} fidelities against {reference} on {data}: panel of {len(panel)} genomes, "
          f"{len(seeds)} seed(s); {len(jobs)} of {total} trainings to run, {resources.concurrency} at once", file=sys.stderr)
    if jobs:
        try:
            from ..search.runner import train_plan

            train_plan(study, storage, jobs, data, space, num_classes, args.val_fraction, resources.ray,
                       resources.concurrency, study_dir)
        except KeyboardInterrupt:
            print("\ninterrupted: run the same command again to continue", file=sys.stderr)
            return 130
    for candidate in oneshot:
        score_panel_oneshot(study, candidate, panel, seeds, space, data, num_classes, args.val_fraction, study_dir)
    result = analyse(study, candidates, reference, resources.concurrency, args.min_tau, num_classes)
    files = write_outputs(result, study_dir, f"{space.name} on {data}")
    print("\n".join(summary_lines(result)))
    if result.recommended is not None:
        print(f"\nsearch with it:\n  python -m ulsam_nas.search --space {args.space} --dataset {data} "
              f"--fidelity {result.recommended.fidelity}")
    print(f"wrote {files[0]} and {files[1]}")
    return 0
