"""Search quality by truth: which sampler and how many repeats find the true front, per budget.

    python benchmarks/search_quality.py [--quick] [--seeds 10] [--processes 2] [--out table.md|table.csv]
        [--runs benchmarks/results/search_quality_runs.jsonl] [--landscapes additive,paper:cub200]

Every run is the search policy driven without Ray (``ulsam_nas.simulate.driver.simulate_search``)
on a built-in landscape over the mv2 space, scored by the landscape's truth
(``ulsam_nas.simulate.truth.score``): (a) the hypervolume of the true values of the genomes the
product reports on its front, as a share of the true front's; (b) the share of the true front's
genomes reported; (c) false "clearly dominated" calls per genome judged, and on ``outliers`` the
share of the evaluated genomes holding a planted placement that are called clearly dominated;
(d) trainings spent on repeats.

Cells (the full run, ``in_full_run``): at budget 200 random and nsga2 with K = 1, 2, 3 and 3 with
``--repeat-share 0.1`` ("3s"), and tpe (the default, multivariate) and tpe-univariate (Optuna's
TPE defaults, the default before it) with K = 3; at budgets 50, 100 and 500 random and both TPEs
with K = 3, and nsga2 at 50 and 100 (at 500 only on additive, paper:cub200 and null at the larger
σ). Each on every built-in landscape (null, additive, outliers, paper:food101,
paper:cub200, paper:dogs) at two seed noises, σ = 0.5x and 2x the landscape's between-genome std
over the space (null, whose between std is 0, takes additive's σ), 10 seeds (``--seeds``). GP is
left out: one GP search of 200 trainings ran over 6 minutes without finishing on this machine.
``--quick``: budget 200 only with random and nsga2 at K = 1 and 3, on additive, paper:cub200 and
null at σ = 2x, 4 seeds (a few minutes).

Time (2 processes on this 2-core machine): a 200-training run takes about 1-3 s with nsga2 or
random, about 3 s with tpe and 10-23 s with tpe-univariate (one split of the trials per
parameter), a 500-training run 15-60 s with nsga2 or random and 1-2 minutes with tpe-univariate.
Every cell but budget 500 took about 75 min; budget 500 about 70 min more; the 480 multivariate
tpe runs, added later, 30 min. All finished runs are kept in
``benchmarks/results/search_quality_runs.jsonl``: ``--runs`` with that file resumes and
``--table-only`` prints the tables without running anything. Cut a new run with ``--landscapes``
and ``--seeds``.

Hypervolume normalisation (not the report's, whose 1 - top1/100 makes 1 pp of top-1 invisible
beside the costs): top-1's coordinate is (best - top1) / (best - worst), best and worst the max
and min truth over the true front and the paper configurations; MACs and params are cost /
(1.25 x the vanilla cost); the reference point is 1.1 in every coordinate. The true front is
exact for every built-in landscape (none has interactions): a dynamic programme over the layers
(``truth.true_front``; costs are additive per placement, checked there).

p: one-sided Mann-Whitney U (the strategy's hypervolume share greater than random's) against
random with the same K at the same budget, landscape and σ. Each run is deterministic in its
seed; finished runs are appended to ``--runs`` (JSON lines) and not run again, so an interrupted
benchmark resumes, and the table can be printed from what finished (``--table-only``). The runs
most asked about (budget 200 on additive, paper:cub200 and null) go first.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import optuna

from ulsam_nas.search.policy import SAMPLERS

LANDSCAPES = ("additive", "paper:cub200", "null", "outliers", "paper:food101", "paper:dogs")
FIRST = ("additive", "paper:cub200", "null")
SIGMA_FACTORS = (0.5, 2.0)
SHARE = 0.1  # K "3s": K = 3 with at most this share of the budget on repeats (--repeat-share)
SPACE = "mv2"
TPE_VARIANTS = ("tpe", "tpe-univariate")
# Optuna's TPE with its defaults (one draw per parameter, constant liar on): the product's "tpe"
# until the multivariate one (``policy.multivariate_tpe``) was measured against it here. Its runs
# are kept under this name; registered for this benchmark only.
SAMPLERS["tpe-univariate"] = lambda seed, budget, constraints: optuna.samplers.TPESampler(
    seed=seed, constraints_func=constraints)


def sigma_levels(landscapes: tuple[str, ...], factors: tuple[float, ...]) -> dict[str, list[float]]:
    """Per landscape its σ levels: factor x its between-genome std (null: additive's)."""
    from ulsam_nas.landscapes import load_landscape
    from ulsam_nas.models.spaces import load_space

    space = load_space(SPACE)
    between = {name: load_landscape(name, space).between_std(space) for name in set(landscapes) | {"additive"}}
    return {name: [round(f * (between[name] or between["additive"]), 4) for f in factors] for name in landscapes}


def cells(quick: bool) -> list[tuple[int, str, int]]:
    """(budget, sampler, K) of the benchmark."""
    if quick:
        return [(200, s, k) for s in ("random", "nsga2") for k in (1, 3)]
    out = [(200, s, k) for s in ("random", "nsga2") for k in (1, 2, 3, "3s")] + [(200, s, 3) for s in TPE_VARIANTS]
    out += [(b, s, 3) for b in (50, 100, 500) for s in ("random", "nsga2", *TPE_VARIANTS)]
    return out


def in_full_run(job: dict, levels: dict[str, list[float]]) -> bool:
    """The full run's cells: every cell on every landscape and σ, except nsga2 at budget 500 (the issue
    asks only the default and random there), which ran on additive, paper:cub200 and null at the
    larger σ only."""
    if job["budget"] == 500 and job["sampler"] == "nsga2":
        return job["landscape"] in FIRST and job["sigma"] == max(levels[job["landscape"]])
    return True


def landscape_text(name: str, sigma: float) -> str:
    return f"{name},sigma={sigma:g}"


def jobs(landscapes, levels, cell_list, seeds) -> list[dict]:
    out = []
    for name in landscapes:
        for sigma in levels[name]:
            for budget, sampler, k in cell_list:
                for seed in range(seeds):
                    out.append({"landscape": name, "sigma": sigma, "budget": budget, "sampler": sampler, "k": k,
                                "seed": seed})
    out = [j for j in out if len(cell_list) <= 4 or in_full_run(j, levels)]
    # The runs most asked about first, cheap before dear within them.
    return sorted(out, key=lambda j: (j["budget"] != 200 or j["landscape"] not in FIRST, j["budget"] == 500,
                                      j["sampler"].startswith("tpe"), j["seed"], LANDSCAPES.index(j["landscape"])))


def key(job: dict) -> tuple:
    return job["landscape"], job["sigma"], job["budget"], job["sampler"], job["k"], job["seed"]


_FRONTS: dict = {}


def run(job: dict) -> dict:
    """One search, scored: deterministic in the job."""
    import optuna

    from ulsam_nas.models.spaces import load_space
    from ulsam_nas.simulate.driver import simulate_search
    from ulsam_nas.simulate.truth import score, true_front

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(SPACE)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = simulate_search(space, landscape_text(job["landscape"], job["sigma"]), job["budget"],
                                 sampler=job["sampler"], seed=job["seed"], repeats=int(str(job["k"]).rstrip("s")),
                                 repeat_share=SHARE if str(job["k"]).endswith("s") else None)
    fingerprint = result.landscape.fingerprint
    if fingerprint not in _FRONTS:
        _FRONTS[fingerprint] = true_front(result.landscape, space)
    front = _FRONTS[fingerprint]
    if not front.exact:
        raise RuntimeError(f"{job['landscape']}: no exact true front (interactions); this benchmark expects built-ins")
    return {**job, **score(result, front).as_dict(), "seconds": time.perf_counter() - start,
            "true_front": len(front.genomes)}


def read_runs(path: Path | None) -> dict[tuple, dict]:
    done: dict[tuple, dict] = {}
    if path and path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[key(row)] = row
    return done


def quartiles(values: list[float], digits: int = 3) -> str:
    """Median [first quartile-third quartile]."""
    if not values:
        return "-"
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return f"{med:.{digits}f} [{q1:.{digits}f}-{q3:.{digits}f}]"


def table(rows: list[dict]) -> list[dict]:
    """Per cell: medians and IQRs over seeds, p against random (same K, budget, landscape, σ)."""
    from scipy.stats import mannwhitneyu

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["landscape"], row["sigma"], row["budget"], row["sampler"], row["k"])].append(row)
    out = []
    order = sorted(groups, key=lambda g: (LANDSCAPES.index(g[0]) if g[0] in LANDSCAPES else 99, g[1], g[2],
                                          g[3] != "random", g[3], str(g[4])))
    for cell in order:
        runs = groups[cell]
        hv = [r["hv_share"] for r in runs]
        reference = groups.get((*cell[:3], "random", cell[4]))
        p = None
        if cell[3] != "random" and reference and len(reference) >= 2 and len(runs) >= 2:
            p = float(mannwhitneyu(hv, [r["hv_share"] for r in reference], alternative="greater").pvalue)
        planted = [r["planted_found"] for r in runs if r["planted_found"] is not None]
        calls, judged = sum(r["false_calls"] for r in runs), sum(r["judged"] for r in runs)
        out.append({
            "landscape": cell[0], "sigma": cell[1], "budget": cell[2], "sampler": cell[3], "K": cell[4],
            "seeds": len(runs), "hv_share": quartiles(hv), "front_share": quartiles([r["front_share"] for r in runs]),
            "precision": quartiles([r.get("precision", 1.0) for r in runs], 2),
            "false_calls": quartiles([r["false_call_rate"] for r in runs]),
            "false_pooled": f"{calls}/{judged}", "planted_found": quartiles(planted) if planted else "-",
            "repeats": quartiles([r["repeats"] for r in runs], 0),
            "p_vs_random": "-" if p is None else f"{p:.3g}",
            "seconds": f"{np.median([r['seconds'] for r in runs]):.1f}",
        })
    return out


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "(no runs)"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def as_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="budget 200, random/nsga2 x K 1/3, 3 landscapes, σ 2x, 4 seeds")
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 10; quick 4)")
    p.add_argument("--landscapes", default=None, help=f"comma-separated subset of {','.join(LANDSCAPES)}")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--runs", type=Path, default=None, help="JSON lines of finished runs: appended to, and resumed from")
    p.add_argument("--out", type=Path, default=None, help="write the table here (.csv: CSV, else markdown)")
    p.add_argument("--table-only", action="store_true", help="print the table from --runs, run nothing")
    args = p.parse_args()
    landscapes = tuple(args.landscapes.split(",")) if args.landscapes else (FIRST if args.quick else LANDSCAPES)
    unknown = [name for name in landscapes if name not in LANDSCAPES]
    if unknown:
        p.error(f"unknown landscape {unknown[0]!r}; choose from {', '.join(LANDSCAPES)}")
    seeds = args.seeds or (4 if args.quick else 10)
    levels = sigma_levels(landscapes, (2.0,) if args.quick else SIGMA_FACTORS)
    planned = jobs(landscapes, levels, cells(args.quick), seeds)
    done = read_runs(args.runs)
    todo = [] if args.table_only else [j for j in planned if key(j) not in done]
    print(f"search quality: {len(planned)} runs planned ({len(planned) - len(todo)} already done), σ levels "
          + "; ".join(f"{n} {', '.join(map(str, s))}" for n, s in levels.items())
          + "; gp left out (one 200-training GP search took over 6 min)", file=sys.stderr, flush=True)
    start = time.monotonic()
    sink = args.runs.open("a") if args.runs else None
    try:
        if todo:
            with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
                for i, row in enumerate(pool.imap_unordered(run, todo), 1):
                    done[key(row)] = row
                    if sink:
                        sink.write(json.dumps(row) + "\n")
                        sink.flush()
                    if i % 10 == 0 or i == len(todo):
                        elapsed = time.monotonic() - start
                        print(f"  {i}/{len(todo)} runs, {elapsed / 60:.1f} min, about "
                              f"{elapsed / i * (len(todo) - i) / 60:.0f} min left", file=sys.stderr, flush=True)
    finally:
        if sink:
            sink.close()
    wanted = {key(j) for j in planned}
    rows = table([r for k, r in done.items() if k in wanted])
    text = markdown(rows)
    print(text)
    print(f"({(time.monotonic() - start) / 60:.1f} min)", file=sys.stderr)
    if args.out:
        args.out.write_text(as_csv(rows) if args.out.suffix.lower() == ".csv" else text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
