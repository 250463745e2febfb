"""``python -m ulsam_nas.cost``: params and MACs of a placement, or the paper check.

    python -m ulsam_nas.cost --space mv1 --width 0.75 --genome "(8:1, 9:1, 11)" --g 4
    python -m ulsam_nas.cost --space mv2 --genome "(16, 17)" --g 4 --json
    python -m ulsam_nas.cost --paper
"""

from __future__ import annotations

import json

from ..cli import ArgumentParser, fail, genome_from_cli
from ..models.spaces import builtin_spaces, load_space
from . import count_cost
from .paper import format_paper_report, paper_rows


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m ulsam_nas.cost",
        description="Params and MACs of a ULSAM placement (analytic, no forward pass), "
        "or the check of every paper configuration (--paper).",
    )
    parser.add_argument("--space", default=None,
                        help="search space: mv1, mv2 or a .toml path (default mv2; with --paper: all built-in)")
    parser.add_argument("--width", type=float, default=None, help="width multiplier (default: the space's first)")
    parser.add_argument("--genome", default="vanilla",
                        help="placement in the paper's notation, e.g. '(8:1, 9:1, 11)', or a canonical genome string")
    parser.add_argument("--g", type=int, default=None, help="group count for placements without their own gN")
    parser.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
    parser.add_argument("--resolution", type=int, default=224, help="input height = width (default 224)")
    parser.add_argument("--variant", choices=("official", "paper"), default="official",
                        help="ULSAM variant: the authors' code (BN+ReLU) or the bare equations")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--paper", action="store_true", help="check every paper configuration against the paper's figures")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.num_classes < 1 or args.resolution < 1:
            fail("--num-classes and --resolution must be positive")
        if args.paper:
            names = builtin_spaces() if args.space is None else [args.space]
            rows = [row for name in names for row in paper_rows(load_space(name))]
            print(format_paper_report(rows))
            return 0 if all(row.ok for row in rows) else 1
        space = load_space(args.space or "mv2")
        genome = genome_from_cli(args.genome, args.g, args.width, space)
        cost = count_cost(genome, args.num_classes, resolution=args.resolution, ulsam_variant=args.variant)
    except ValueError as error:
        fail(str(error))
    if args.json:
        print(json.dumps({
            "space": space.name, "genome": str(genome), "params": cost.params, "macs": cost.macs,
            "width_mult": genome.width_mult,
        }))
    else:
        print(f"{genome}  ({space.name}, width {genome.width_mult}, {args.num_classes} classes, "
              f"{args.resolution}x{args.resolution})")
        print(f"params: {cost.params:,}  ({cost.params / 1e6:.3f}M; paper's count, weights only: {cost.weights:,})")
        print(f"MACs:   {cost.macs:,}  ({cost.macs / 1e6:.2f}M)")
    return 0
