"""``python -m ulsam_nas.train``: train one architecture, e.g. the one the search picked, at any fidelity.

    python -m ulsam_nas.train --space mv2 --genome "(16, 17)" --g 4 --dataset cub200:/data/CUB_200_2011 \\
        --fidelity proxy[:epochs=N,...] [--epochs N] [--evaluate-on {test,val}] [--save weights.safetensors]

The parser and ``main`` around ``loop.train``: by default it trains on the whole train split
and reports top-1 / top-5 on the test split (``--evaluate-on val`` holds out and scores the
validation images, as a search trial does), prints one line or ``--json``, and with ``--save``
writes the trained weights and the metadata that rebuilds them (``weights.save_weights``).
Bad input is one line on stderr and exit status 2; a loss that becomes NaN, exit status 1.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from ..cli import ArgumentParser, fail, genome_from_cli
from ..data import VAL_FRACTION, DataSpec, check_val_fraction
from ..models.spaces import load_space
from .fidelity import get_fidelity
from .loop import EVALUATE_ON, NonFiniteLossError, default_device, train
from .weights import save_weights


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m ulsam_nas.train",
                            description="Train one ULSAM placement from scratch and report top-1 / top-5.")
    parser.add_argument("--space", default="mv2", help="search space: mv1, mv2 or a .toml path (default mv2)")
    parser.add_argument("--genome", default="vanilla",
                        help="placement in the paper's notation, e.g. '(16, 17)', or a canonical genome string")
    parser.add_argument("--g", type=int, default=None, help="group count for placements without their own gN")
    parser.add_argument("--width", type=float, default=None, help="width multiplier (default: the space's first)")
    parser.add_argument("--dataset", default="synthetic", help="NAME[:ROOT]: synthetic, food101, cub200, dogs, folder")
    parser.add_argument("--fidelity", default=None,
                        help="smoke, proxy or full, optionally with overrides, e.g. smoke:epochs=8,resolution=48 "
                             "(keys in ulsam_nas.train.fidelity; default: proxy with a GPU, smoke without)")
    parser.add_argument("--epochs", type=int, default=None, help="override the fidelity's number of epochs (shorthand)")
    parser.add_argument("--evaluate-on", choices=EVALUATE_ON, default="test",
                        help="test: train on the whole train split, report on the test split (default; for a chosen "
                             "architecture); val: hold out --val-fraction of the train split and evaluate there "
                             "(what the search selects on)")
    parser.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                        help=f"share of each class's training images held out with --evaluate-on val (default {VAL_FRACTION})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--save", type=Path, default=None,
                        help="write the trained weights: .safetensors, or a weights-only torch file (.pt)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        check_val_fraction(args.val_fraction)
        space = load_space(args.space)
        genome = genome_from_cli(args.genome, args.g, args.width, space)
        fidelity_name = args.fidelity or ("proxy" if torch.cuda.is_available() else "smoke")
        fidelity = get_fidelity(fidelity_name, genome.backbone, args.epochs)
        data = DataSpec.parse(args.dataset)
        device = torch.device(args.device) if args.device else default_device()
        if device.type == "cuda" and not torch.cuda.is_available():
            fail("--device cuda: no CUDA GPU is available here")
        print(f"training {genome} on {data} at fidelity {fidelity.name} "
              f"({fidelity.resolution}px, width x{fidelity.width_mult}, {fidelity.epochs} epochs) on {device}",
              file=sys.stderr)
        result = train(genome, data, fidelity, seed=args.seed, device=device, progress=True,
                       evaluate_on=args.evaluate_on, val_fraction=args.val_fraction)
    except ValueError as error:  # bad genome, space, data set, fidelity or val fraction (DataError, SpaceError)
        fail(str(error))
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.save is not None:
        metadata = {"genome": str(genome), "num_classes": str(result.model.head[-1].out_features),
                    "fidelity": json.dumps(asdict(fidelity)), "dataset": str(data), "seed": str(args.seed),
                    "top1": f"{result.top1:.4f}", "top5": f"{result.top5:.4f}", "split": result.split}
        save_weights(result.model, args.save, metadata)
    if args.json:
        print(json.dumps({"genome": str(genome), **result.metrics()}))
    else:
        split = "validation" if result.split == "val" else "test"
        print(f"{genome}: top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}% on the {split} split  "
              f"({result.epochs} epochs, {result.seconds:.1f} s, {result.images_per_second:.0f} images/s)")
        if args.save is not None:
            print(f"weights written to {args.save}")
    return 0

