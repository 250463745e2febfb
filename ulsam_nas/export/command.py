"""``python -m ulsam_nas.export``: an architecture as a standalone PyTorch model, verified.

    python -m ulsam_nas.export --study studies/mv2-synthetic --trial knee --out exported/
    python -m ulsam_nas.export --study studies/mv2-synthetic --trial "max-top1 macs<=250e6" --out exported/
    python -m ulsam_nas.export --space mv2 --genome "(16, 17)" --g 4 --out exported/ [--weights w.safetensors]

From a study, a rule picks a genome of the front beyond seed noise (``analysis/picks.py``): its
objectives in arch.json are its validation top-1 mean, std and seed count, since one seed's
figure is not what the front was judged on. A trial number takes that one training's values.
What is written and how it is verified: ``bundle.py``; with a study that has a latency target,
the genome's latency is also predicted and measured there (``latency_on_target``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..cli import ArgumentParser, fail, genome_from_cli, load_study_for_command
from ..models.genome import Genome
from ..names import shown
from ..safe_files import within
from ..train.weights import read_weights
from .architecture import Architecture
from .bundle import FORMATS, export
from .verify import ExportError


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m ulsam_nas.export",
                            description="Export an architecture as a standalone PyTorch model, verified.")
    parser.add_argument("--study", type=Path, default=None, help="study folder to take the trial from")
    parser.add_argument("--trial", default="knee",
                        help="a rule on the front beyond seed noise, by mean top-1 over seeds: knee | max-top1 | "
                             "'max-top1 macs<=250e6' | 'max-top1 params<=2.5M' | 'max-top1 latency<=4ms' (a cost of the "
                             "study); or a trial number (that one training's values)")
    parser.add_argument("--space", default="mv2", help="without --study: mv1, mv2 or a .toml path")
    parser.add_argument("--genome", default=None, help="without --study: paper notation or canonical genome string")
    parser.add_argument("--g", type=int, default=None, help="group count for placements without their own gN")
    parser.add_argument("--width", type=float, default=None, help="width multiplier (default: the space's first)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    parser.add_argument("--weights", type=Path, default=None, help="weights saved by python -m ulsam_nas.train --save")
    parser.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the study's, else 1000)")
    parser.add_argument("--formats", default="source,torchscript,export,onnx",
                        help="comma-separated subset of source,torchscript,export,onnx (onnx needs the onnx extra)")
    parser.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    parser.add_argument("--storage", default=None,
                        help="with --study: the study's storage, when it is not an SQLite file in the folder")
    args = parser.parse_args(argv)

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        fail(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    if "source" not in formats:
        formats.insert(0, "source")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())) and not args.force:
        fail(f"{args.out} exists and is not empty (use --force to write into it)")
    info: dict = {}
    study = None
    try:
        if args.study is not None:
            from ..analysis.picks import pick_genome
            from ..studies import study_num_classes

            study, pointer = load_study_for_command(args.study, args.storage)
            num_classes = args.num_classes or study_num_classes(study)
            genome, chosen = pick_genome(study, args.trial)
            info = {"space": pointer["space"], "study": study.study_name, **chosen}
            info["top1_split"] = "validation"  # the search never looks at the test split
            if "latency_target_key" in study.user_attrs:
                info["latency"] = latency_on_target(genome, num_classes, study.user_attrs)
        else:
            if args.genome is None:
                fail("give --study (and --trial) or --genome (with --space and --g)")
            from ..models.spaces import load_space

            space = load_space(args.space)
            genome = genome_from_cli(args.genome, args.g, args.width, space)
            num_classes = args.num_classes or 1000
            info = {"space": space.name, "paper_label": space.paper_labels().get(genome, "")}
        weights = None
        arch = Architecture(genome, num_classes, genome.width_mult)
        if args.weights is not None:
            weights, metadata = read_weights(args.weights)
            if "fidelity" in metadata:
                arch = Architecture.from_weights_metadata(genome, metadata)
            if args.num_classes and args.num_classes != arch.num_classes:
                fail(f"--num-classes {args.num_classes} does not match the weights' {arch.num_classes} classes")
        # No file of a study folder is written through a symbolic link (safe_files), --out in it included.
        root = args.study if args.study is not None and within(args.out, args.study) else args.out
        result = export(arch, args.out, formats, weights, info, log=lambda m: print(shown(m), file=sys.stderr), root=root)
    except ValueError as error:
        fail(str(error))
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if study is not None:
        from ..studies import artifact_store

        try:
            store = artifact_store(args.study)
            for name in ("arch.json", "model.py"):  # on the study: Optuna keeps finished trials read-only
                optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(args.out / name), study_or_trial=study)
        except ValueError as error:  # a symbolic link in the study folder (safe_files.LinkRefused)
            fail(str(error))
    print(shown(f"exported {result['genome']} ({result['params']:,} params, {result['macs'] / 1e6:.2f}M MACs) to "
                f"{args.out}: " + ", ".join(sorted([*result["sha256"], "arch.json"]))))
    differences = result["max_abs_difference"].items()
    print("verified in a clean interpreter: " + ", ".join(f"{k} max |diff| {v:.1e}" for k, v in differences))
    if "latency" in result:
        latency = result["latency"]
        print(f"latency on {shown(latency['target'])}: predicted {latency['predicted_ms']:.2f} ms, measured "
              f"{latency['measured_ms']:.2f} ms per image")
    return 0


def latency_on_target(genome: Genome, num_classes: int, study_attrs: dict) -> dict:
    """The genome's latency on the study's target: predicted from the table, and measured end to
    end here as ``python -m ulsam_nas.latency --check`` measures (``measured_ms`` at the table's
    machine speed, ``measured_now_ms`` as the clock read it; see ``latency/table.py``)."""
    from ..latency.table import LatencyTable, check
    from ..latency.timing import Target

    target = Target.from_key(study_attrs["latency_target_key"])
    table = LatencyTable.load(target, genome.backbone)
    if table.fill([genome], num_classes):
        table.save()
    measured = check(table, [genome], num_classes)
    return {"target": target.describe(), "study_target": study_attrs.get("latency_target", ""),
            "predicted_ms": measured.predicted[0], "measured_ms": measured.measured[0],
            "measured_now_ms": measured.measured_now[0]}
