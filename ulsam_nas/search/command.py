"""python -m ulsam_nas.search: map the accuracy vs cost front of ULSAM placements.

    python -m ulsam_nas.search --space mv2 --budget 200 [--dataset cub200:/data/CUB_200_2011] [--repeats 3]
        [--objectives top1,latency,params] [--max-latency 4ms]

Ray Tune runs the proxy trainings (GPUs when there are any, an existing cluster with
--address), Optuna chooses the genomes, and the study lives in an SQLAlchemy storage (an SQLite
file in the study folder by default) that optuna-dashboard reads live. A trial is one (genome,
seed) training, scored on a validation split held out from the training images; genomes on the
front, or within noise of it, get more seeds (--repeats), and the front counts only differences
beyond the measured seed noise. Running the same command again resumes: the study keeps every
finished trial and ends with --budget of them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..analysis.front import COST_TOLERANCE
from ..analysis.objectives import DEFAULT, REGISTRY, Selection, parse_limit
from ..cli import ArgumentParser, add_resource_flags, check_storage, fail, quiet_logging, size_trials, start_ray
from ..data import VAL_FRACTION
from ..names import STUDIES, folder_in, name_flag
from ..studies import check_folder, without_password
from ..study_schema import AttributeRefused
from .ledger import StudyMismatch, finished_count
from .policy import DEFAULT_SAMPLER, GP_LIMIT, GP_MAX_BUDGET, SAMPLERS, TPE_HISTORY


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m ulsam_nas.search",
                       description="Map the accuracy vs cost front of ULSAM placements.")
    p.add_argument("--space", default="mv2", help="search space: mv1, mv2 or a .toml path (default mv2)")
    p.add_argument("--budget", type=int, default=200, help="finished trials the study holds at the end (default 200)")
    p.add_argument("--dataset", default="synthetic", help="NAME[:ROOT]: synthetic (default), food101, cub200, dogs, folder")
    p.add_argument("--fidelity", default=None,
                   help="training per trial: smoke, proxy or full, optionally with overrides, e.g. smoke:epochs=8 "
                        "(keys in ulsam_nas.train.fidelity; default: proxy with a GPU, smoke without)")
    p.add_argument("--sampler", choices=tuple(SAMPLERS), default=DEFAULT_SAMPLER,
                   help=f"Optuna sampler (default {DEFAULT_SAMPLER}, chosen by benchmarks/search_quality.py); tpe models "
                        f"the study's last {TPE_HISTORY:,} finished trials, so that its cost per suggestion stops "
                        f"growing there (its search quality past that is not measured); gp only up to --budget "
                        f"{GP_MAX_BUDGET}: {GP_LIMIT}")
    p.add_argument("--seed", type=int, default=0,
                   help="the sampler's seed; a genome's k-th training uses seed + k (default 0)")
    p.add_argument("--repeats", type=int, default=3,
                   help="seeds for every genome on the front or within noise of it; every training counts toward "
                        "--budget; 1: one seed per genome (default 3)")
    p.add_argument("--repeat-share", type=float, default=None, metavar="SHARE",
                   help="the largest share of --budget that repeats may take, e.g. 0.1 (default: no cap)")
    p.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                   help="share of the training images held out (stratified, fixed per data set) to score trials "
                        f"on (default {VAL_FRACTION})")
    p.add_argument("--cost-tolerance", type=float, default=COST_TOLERANCE,
                   help=f"relative difference below which costs count as equal on the front (default {COST_TOLERANCE})")
    p.add_argument("--final", type=int, default=0, metavar="K",
                   help="after the search, train the top-K picks on train+val with their seeds and report their "
                        "top-1 on the test split (default 0: the test split is not touched)")
    p.add_argument("--study", type=Path, default=None, help="study folder (default studies/<space>-<dataset>)")
    p.add_argument("--storage", default=None,
                   help="SQLAlchemy URL of the study storage (default sqlite:///<study folder>/study.db)")
    p.add_argument("--study-name", type=name_flag("study name"), default=None,
                   help="study name in the storage (default <space>-<dataset>)")
    add_resource_flags(p)
    p.add_argument("--objectives", default=DEFAULT,
                   help=f"comma-separated: one training metric and the costs to trade it against, from "
                        f"{', '.join(REGISTRY)} (default {DEFAULT})")
    p.add_argument("--latency-device", choices=("cpu", "cuda"), default="cpu",
                   help="the target latency is timed on, on this machine (default cpu)")
    p.add_argument("--latency-threads", type=int, default=1,
                   help="CPU threads of the latency target (default 1, as on a phone core)")
    for objective in REGISTRY.values():
        if not objective.trained:
            p.add_argument(f"--max-{objective.name}", default=None, metavar="LIMIT",
                           help=f"only architectures with at most this {objective.label} "
                                f"(e.g. 250{objective.unit.strip() or ''}), rejected before training")
    p.add_argument("--no-paper-seeds", action="store_true", help="do not train the paper's configurations first")
    p.add_argument("--full-front", action="store_true",
                   help="print every front genome at the end, not the top 10 by shrunk mean (all are in pareto.csv)")
    p.add_argument("--plan-replicates", type=int, default=8, metavar="N",
                   help="when a search of 50 trainings or more ends with its placements not told apart, N simulated "
                        "searches (python -m ulsam_nas.simulate) say what its budget buys at the study's σ; 0: none "
                        "(default 8)")
    p.add_argument("--strategy", choices=("standalone", "oneshot"), default="standalone",
                   help="standalone: every trial trains its genome (default); oneshot: one weight-sharing supernet "
                        "scores --budget genomes, the top --confirm train standalone")
    p.add_argument("--confirm", type=int, default=8, metavar="K",
                   help="with --strategy oneshot: genomes of the one-shot ranking trained standalone (default 8)")
    p.add_argument("--confirm-panel", type=int, default=8, metavar="N",
                   help="with --strategy oneshot: N random genomes of the space trained standalone beside the top "
                        "--confirm and the paper configurations, so that the one-shot ranking's Kendall τ is measured on "
                        "genomes that span the space, not only its top (with --confirm 4, a panel of 12 and more); every "
                        "genome trained then gets at least 2 seeds, so that τ's ceiling (split-half τ) can be measured; "
                        "0: the top with --repeats seeds and the paper configurations with one (default 8)")
    p.add_argument("--supernet-epochs", type=int, default=None,
                   help="with --strategy oneshot: supernet training epochs (default 4x the fidelity's)")
    p.add_argument("--early-stop", action="store_true",
                   help="stop weak trials early: multi-objective successive halving, each rung ranked by non-dominated "
                        "sorting of the objectives, so cheap trials on the front go on")
    p.add_argument("--early-stop-grace", type=int, default=1,
                   help="with --early-stop: epochs before the first rung (default 1)")
    p.add_argument("--early-stop-eta", type=int, default=2,
                   help="with --early-stop: rungs every eta-fold more epochs, 1/eta of a rung goes on (default 2)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_logging()
    from ..data import DataSpec, check_val_fraction, load_images
    from ..data.layouts import READERS
    from ..models.spaces import load_space
    from ..train.fidelity import parse_fidelity

    try:
        space = load_space(args.space)
        fidelity = parse_fidelity(args.fidelity, space.backbone) if args.fidelity else None  # the default needs Ray
        if args.budget < 1:
            fail(f"--budget must be at least 1, got {args.budget}")
        if args.repeats < 1:
            fail(f"--repeats must be at least 1, got {args.repeats}")
        if args.sampler == "gp" and args.budget > GP_MAX_BUDGET:
            fail(f"--sampler gp takes a budget of at most {GP_MAX_BUDGET}, got {args.budget}: {GP_LIMIT}; use tpe")
        if args.repeat_share is not None and not 0 <= args.repeat_share <= 1:
            fail(f"--repeat-share must be in [0, 1], got {args.repeat_share}")
        if args.plan_replicates < 0:
            fail(f"--plan-replicates must be 0 or more, got {args.plan_replicates}")
        if args.final < 0:
            fail(f"--final must be 0 or more, got {args.final}")
        check_val_fraction(args.val_fraction)
        if not 0 <= args.cost_tolerance < 0.5:
            fail(f"--cost-tolerance must be in [0, 0.5), got {args.cost_tolerance}")
        if args.confirm < 1:
            fail(f"--confirm must be at least 1, got {args.confirm}")
        if args.confirm_panel < 0:
            fail(f"--confirm-panel must be 0 or more, got {args.confirm_panel}")
        if args.supernet_epochs is not None and args.supernet_epochs < 1:
            fail(f"--supernet-epochs must be at least 1, got {args.supernet_epochs}")
        if args.strategy == "oneshot" and args.early_stop:
            fail("--early-stop applies to standalone trainings; --strategy oneshot trains a supernet instead")
        if args.early_stop_grace < 1:
            fail(f"--early-stop-grace must be at least 1, got {args.early_stop_grace}")
        if args.early_stop_eta < 2:
            fail(f"--early-stop-eta must be at least 2, got {args.early_stop_eta}")
        data = DataSpec.parse(args.dataset)
        # The search never reads the test split; only --final does.
        splits = ("train", "test") if args.final else ("train",)
        if data.name in READERS:
            for split in splits:
                READERS[data.name](data.root, split)  # the layout, before anything starts
        landscape = None
        if data.name == "landscape":  # a simulated truth, no images (ulsam_nas.landscapes)
            from ..landscapes import landscape_slug, load_landscape

            landscape = load_landscape(str(data.root), space)
            if args.strategy == "oneshot":
                fail("--strategy oneshot trains a supernet on images; a landscape has none (use standalone)")
        Selection.parse(args.objectives, args.cost_tolerance)
        maxima = {}  # --max-NAME
        for objective in REGISTRY.values():
            text = getattr(args, f"max_{objective.name}", None)
            if text is not None:
                maxima[objective.name] = parse_limit(objective, text)
                if maxima[objective.name] <= 0:
                    fail(f"--max-{objective.name} must be positive, got {text}")
        if args.latency_threads < 1:
            fail(f"--latency-threads must be at least 1, got {args.latency_threads}")
        if "latency" in args.objectives.split(",") or "latency" in maxima:
            from ..latency.timing import Target

            Target(args.latency_device, args.latency_threads)  # a cuda target needs a GPU here
    except ValueError as error:
        fail(str(error))

    # Each landscape gets a study of its own by default: one search's study is not another's to resume.
    name = f"{space.name}-{data.name}" if landscape is None else f"{space.name}-landscape-{landscape_slug(str(data.root))}"
    try:  # the names are checked; their folders must not lead out through a symbolic link
        study_dir = args.study or folder_in(STUDIES, name)
        folder_in(study_dir, "ray", args.study_name or name)
        check_folder(study_dir)  # a received folder's links out are refused before Ray starts
    except ValueError as error:
        fail(str(error))
    storage_url = args.storage or f"sqlite:///{(study_dir / 'study.db').resolve()}"
    check_storage(storage_url, study_dir if args.storage is None else None)
    storage_url = without_password(storage_url)  # its password stays in this process, for its connections

    start_ray(args.address)  # before anything imports Ray: joining a cluster may set its token mode
    resources = size_trials(args)

    from ..studies import write_pointer
    from .result import print_result
    from .runner import SearchConfig, run_search

    try:
        fidelity = fidelity or parse_fidelity("proxy" if resources.cluster_has_gpus else "smoke", space.backbone)
        if landscape is not None:
            print(landscape.describe(space), file=sys.stderr)
            num_classes = landscape.num_classes
        else:
            print(f"preparing {data} at {fidelity.resolution}px ...", file=sys.stderr)
            # The trials get the cache keys computed here, so none of them lists or stats the files again.
            train_set = load_images(data, "train", fidelity.resolution)
            num_classes = len(train_set.classes)
            data = data.with_cache_key("train", fidelity.resolution, train_set.key)
            if args.final:
                data = data.with_cache_key("test", fidelity.resolution, load_images(data, "test", fidelity.resolution).key)
    except ValueError as error:
        fail(str(error))
    config = SearchConfig(
        space=space, data=data, num_classes=num_classes, fidelity=fidelity, budget=args.budget,
        storage_url=storage_url, study_name=args.study_name or name, study_dir=study_dir, sampler=args.sampler,
        seed=args.seed, repeats=args.repeats, repeat_share=args.repeat_share, val_fraction=args.val_fraction,
        cost_tolerance=args.cost_tolerance,
        cpus_per_trial=resources.cpus, gpus_per_trial=resources.gpus, concurrency=resources.concurrency,
        objectives=args.objectives, limits=maxima, latency_device=args.latency_device,
        latency_threads=args.latency_threads, early_stop=args.early_stop,
        early_stop_grace=args.early_stop_grace, early_stop_eta=args.early_stop_eta, paper_seeds=not args.no_paper_seeds,
    )
    print(f"searching {space.name} on {data} at fidelity {fidelity.name}: budget {args.budget} trainings, "
          f"up to {args.repeats} seed(s) per contender, sampler {args.sampler}, {resources.concurrency} trial(s) at once "
          f"({resources.cpus:g} CPU, {resources.gpus:g} GPU each); top-1 on {args.val_fraction:.0%} of the "
          f"training images held out for validation", file=sys.stderr)
    try:  # a symbolic link out of the study folder (study.db, study.json, artifacts, report) is refused
        write_pointer(study_dir, storage_url, config.study_name, space.name)
    except ValueError as error:
        fail(str(error))
    try:
        if args.strategy == "oneshot":
            from .oneshot import run_oneshot

            study = run_oneshot(config, args.confirm, args.supernet_epochs, confirm_panel=args.confirm_panel)
        else:
            study = run_search(config)
    except (StudyMismatch, AttributeRefused) as error:
        fail(str(error))
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue", file=sys.stderr)
        return 130
    if args.strategy == "standalone" and finished_count(study) < args.budget:  # Ctrl-C: Ray Tune stopped early
        print_result(study, space, storage_url, study_dir, args.repeats, full_front=args.full_front)
        print("\ninterrupted before the budget: run the same command again to continue", file=sys.stderr)
        return 130
    if args.final:
        from .final import run_final

        run_final(study, args.final, data, fidelity, config.resources)
    planner = (args.sampler, args.plan_replicates, args.repeat_share) if args.strategy == "standalone" else None
    print_result(study, space, storage_url, study_dir, args.repeats, planner, full_front=args.full_front)
    return 0
