"""``python -m ulsam_nas.latency``: build (or load) the latency table of a search space on this
machine (``table.py``), print the vanilla networks' predicted latency and, with ``--check N``,
measure N random genomes end to end and print how far the table is from them; with ``--study``,
store the target and the check on the study.
"""

from __future__ import annotations

from pathlib import Path

from ..cli import ArgumentParser, fail, load_study_for_command
from ..models.genome import Genome
from ..models.spaces import every_part, load_space, random_genomes
from ..studies import study_num_classes
from .table import LatencyTable, check
from .timing import Target


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m ulsam_nas.latency",
                       description="Build (or load) the latency table of a search space on this machine and check it "
                                   "against end-to-end measurement.")
    p.add_argument("--space", default="mv2", help="search space: mv1, mv2 or a .toml path (default mv2)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=1, help="CPU threads, as on the deployment target (default 1)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classifier outputs (default: the study's data set with --study, else 1000)")
    p.add_argument("--check", type=int, default=0, metavar="N",
                   help="measure N random genomes end to end and compare (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random genomes (default 0)")
    p.add_argument("--study", type=Path, default=None,
                   help="a search's study folder: store the target and the check on its study")
    args = p.parse_args(argv)
    try:
        space = load_space(args.space)
        target = Target(args.device, args.threads)
    except ValueError as error:
        fail(str(error))
    if args.check < 0 or (args.num_classes is not None and args.num_classes < 1):
        fail("--check must be 0 or more and --num-classes at least 1")
    study = load_study_for_command(args.study)[0] if args.study is not None else None
    if args.num_classes is None:
        try:
            args.num_classes = study_num_classes(study) if study is not None else 1000
        except ValueError as error:
            fail(str(error))
    table = LatencyTable.load(target, space.backbone)
    genomes = [Genome(space.backbone, (), w) for w in space.width_mults] + every_part(space)
    sample = random_genomes(space, args.check, args.seed) if args.check else []
    timed = table.fill(genomes + sample, args.num_classes, progress=True)
    path = table.save()
    print(f"latency table for {space.name} on {target.describe()}: {len(table.entries)} parts "
          f"({timed} timed now), per-network constant {table.constant:+.3f} ms (vanilla {space.backbone} "
          f"x{table.vanilla_width} {table.vanilla_ms:.2f} ms end to end); {path}")
    for width in space.width_mults:
        vanilla = Genome(space.backbone, (), width)
        print(f"  vanilla {space.backbone} x{width}: {table.predict(vanilla, args.num_classes):.2f} ms per image")
    if sample:
        result = check(table, sample, args.num_classes, progress=True)
        print(f"check on {len(sample)} random genomes: {result.within_10:.0%} within ±10% of end-to-end measurement, "
              f"RMSE {result.rmse:.3f} ms (measured {min(result.measured):.2f}-{max(result.measured):.2f} ms)")
    if study is not None:
        study.set_user_attr("latency_target", target.describe())
        if sample:
            study.set_user_attr("latency_check", result.to_json())
        print(f"stored on study {study.study_name!r}: latency_target" + (", latency_check" if sample else ""))
    return 0
