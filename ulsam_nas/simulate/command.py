"""python -m ulsam_nas.simulate: plan a search before running it.

    python -m ulsam_nas.simulate --space mv2 --budget 200 --sigma 0.8 --between 0.5 [--replicates 20]
        [--sampler nsga2] [--repeats 3] [--processes 2] [--beyond]
    python -m ulsam_nas.simulate --space mv2 --budget 200 --calibration studies/calibrate-mv2-cub200

Runs the search policy without Ray on a landscape with that seed noise σ and between-genome std
(``additive,sigma=S,between=B``) over replicates (search seeds 0, 1, ...), and prints what such a
search can be expected to find, with 90% intervals: the share of the true front, the power to
call a configuration 3σ worse, the false "clearly dominated" rate and the budget at which the
placements are told apart (``planner``). With --calibration, σ and the between-genome std are a
calibration's (its recommended fidelity's, else its reference's) from its calibration.json.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from ..analysis.objectives import DEFAULT
from ..cli import ArgumentParser, fail
from ..landscapes import LandscapeError
from ..models.spaces import SpaceError, load_space
from ..search.policy import DEFAULT_SAMPLER, GP_LIMIT, GP_MAX_BUDGET, SAMPLERS
from .planner import LADDER, plan, stderr_progress


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m ulsam_nas.simulate",
                       description="Predict what a search of this budget finds, by simulating it on a matching landscape.")
    p.add_argument("--space", default="mv2", help="search space: mv1, mv2 or a .toml path (default mv2)")
    p.add_argument("--budget", type=int, default=200, help="trainings of the search (default 200)")
    p.add_argument("--sigma", type=float, default=None, help="seed noise σ of top-1, pp")
    p.add_argument("--between", type=float, default=None, help="between-genome std of true top-1, pp")
    p.add_argument("--calibration", type=Path, default=None,
                   help="a calibration folder (calibration.json) to take σ and the between-genome std from")
    p.add_argument("--replicates", type=int, default=20, help="simulated searches, seeds 0..N-1 (default 20)")
    p.add_argument("--sampler", choices=tuple(SAMPLERS), default=DEFAULT_SAMPLER,
                   help=f"Optuna sampler, as the search's (default {DEFAULT_SAMPLER})")
    p.add_argument("--repeats", type=int, default=3, help="seeds per contender, K (default 3)")
    p.add_argument("--repeat-share", type=float, default=None, metavar="SHARE",
                   help="the largest share of --budget repeats may take, as the search's (default: no cap)")
    p.add_argument("--objectives", default=DEFAULT, help=f"as the search's (default {DEFAULT})")
    p.add_argument("--processes", type=int, default=2, help="simulations side by side (default 2)")
    p.add_argument("--ladder", default=",".join(map(str, LADDER)),
                   help=f"budgets at which to ask whether placements are told apart (default {','.join(map(str, LADDER))})")
    p.add_argument("--beyond", action="store_true",
                   help="also simulate the ladder's budgets above --budget when the placements are not told apart by "
                        "it (slow: minutes per rung)")
    p.add_argument("--no-power", action="store_true", help="skip the planted 3σ-worse configuration (half the time)")
    return p


def _finite(value: float | None, name: str, positive: bool = False) -> None:
    if value is not None and (not math.isfinite(value) or value < 0 or (positive and value == 0)):
        fail(f"{name} must be a finite number >= 0, got {value}")


def calibration_numbers(folder: Path) -> tuple[float, float, str]:
    """(σ, between-genome std, which fidelity) from a calibration folder's calibration.json."""
    path = folder / "calibration.json" if folder.is_dir() else folder
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read a calibration: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("reference"), dict):
        raise ValueError(f"{path}: not a calibration.json (no reference figures)")
    chosen = data["reference"]
    recommended = data.get("recommended")
    for candidate in data.get("candidates") or []:
        if isinstance(candidate, dict) and recommended and candidate.get("fidelity") == recommended:
            chosen = candidate
    sigma = chosen.get("sigma")
    signal = chosen.get("between_genome") or {}
    between = signal.get("std") if isinstance(signal, dict) else None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
               for v in (sigma, between)):
        raise ValueError(f"{path}: fidelity {chosen.get('fidelity')!r} has no measured σ and between-genome std "
                         f"(σ {sigma!r}, between {between!r})")
    return float(sigma), float(between), str(chosen.get("fidelity"))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.budget < 1:
        fail(f"--budget must be at least 1, got {args.budget}")
    if args.sampler == "gp" and args.budget > GP_MAX_BUDGET:
        fail(f"--sampler gp takes a budget of at most {GP_MAX_BUDGET}, got {args.budget}: {GP_LIMIT}; use tpe")
    if args.replicates < 1:
        fail(f"--replicates must be at least 1, got {args.replicates}")
    if args.repeats < 1:
        fail(f"--repeats must be at least 1, got {args.repeats}")
    if args.processes < 1:
        fail(f"--processes must be at least 1, got {args.processes}")
    _finite(args.sigma, "--sigma")
    _finite(args.between, "--between")
    try:
        ladder = tuple(int(x) for x in args.ladder.split(",") if x.strip())
    except ValueError:
        fail(f"--ladder must be budgets separated by commas, got {args.ladder!r}")
    if not ladder or min(ladder) < 1:
        fail(f"--ladder must be budgets of at least 1, got {args.ladder!r}")
    if args.repeat_share is not None and not 0 <= args.repeat_share <= 1:
        fail(f"--repeat-share must be in [0, 1], got {args.repeat_share}")
    source = ""
    if args.calibration is not None:
        if args.sigma is not None or args.between is not None:
            fail("give --calibration or --sigma and --between, not both")
        try:
            args.sigma, args.between, fidelity = calibration_numbers(args.calibration)
        except ValueError as error:
            fail(str(error))
        source = f" (from {args.calibration}, fidelity {fidelity})"
    elif args.sigma is None or args.between is None:
        fail("give --sigma and --between (pp), or --calibration DIR")
    try:
        space = load_space(args.space)
    except (SpaceError, OSError) as error:
        fail(str(error))
    print(f"simulating {args.replicates} searches of {args.budget} trainings, σ {args.sigma:g} pp, between-genome "
          f"std {args.between:g} pp{source}", file=sys.stderr, flush=True)
    start = time.monotonic()
    try:
        answer = plan(space, args.budget, args.sigma, args.between, args.replicates, sampler=args.sampler,
                      repeats=args.repeats, repeat_share=args.repeat_share, objectives=args.objectives,
                      processes=args.processes, ladder=ladder,
                      beyond=args.beyond, power=not args.no_power, progress=stderr_progress)
    except (ValueError, LandscapeError) as error:
        fail(str(error))
    print("\n".join(answer.lines()))
    print(f"({time.monotonic() - start:.0f} s)", file=sys.stderr)
    return 0
