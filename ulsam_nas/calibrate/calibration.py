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

import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..analysis.agreement import (
    CeilingAndBaselines,
    Correlation,
    bootstrap_interval,
    genome_costs,
    kendall_tau,
    spearman_rho,
)
from ..analysis.front import GenomeStats, Signal, between_genome, seed_noise
from ..data import VAL_FRACTION, DataSpec
from ..models.genome import Genome
from ..models.spaces import SearchSpace, random_genomes
from ..train.fidelity import parse_fidelity

PANEL_SIZE = 16
SEARCH_TRAININGS = 200  # the cost quoted per fidelity: a search of this many trainings


# -- the panel -----------------------------------------------------------------------------------


def make_panel(space: SearchSpace, spec: str, seed: int) -> list[Genome]:
    """``paper`` (every paper configuration the space holds), ``random:N``, a file of genome
    strings (one per line, ``#`` comments), or ``default``: paper configurations spread over the
    list, then random genomes, up to 16."""
    paper = [g for g, _ in space.paper_genomes() if space.contains(g)]
    if spec == "default":
        step = max(1, math.ceil(len(paper) / PANEL_SIZE))
        chosen = paper[::step][:PANEL_SIZE]
        return chosen + random_genomes(space, PANEL_SIZE - len(chosen), seed, set(chosen))
    if spec == "paper":
        if len(paper) < 3:
            raise ValueError(f"space {space.name} holds {len(paper)} paper configuration(s); a ranking needs 3")
        return paper
    if spec.startswith("random:"):
        count = spec.removeprefix("random:")
        if not count.isdigit() or int(count) < 3:
            raise ValueError(f"--panel {spec!r}: random:N needs N >= 3 (a ranking needs three genomes)")
        return random_genomes(space, int(count), seed)
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--panel {spec!r}: not paper, random:N or a file of genomes")
    genomes = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            genome = Genome.from_string(text)
        except ValueError as error:
            raise ValueError(f"{path}:{number}: {error}") from None
        if not space.contains(genome):
            raise ValueError(f"{path}:{number}: {genome} is not in space {space.name}")
        genomes.append(genome)
    if len(set(genomes)) < 3:
        raise ValueError(f"{path}: a panel needs at least 3 distinct genomes, found {len(set(genomes))}")
    return list(dict.fromkeys(genomes))


# -- rank agreement ---------------------------------------------------------------------------------


def top_k_overlap(x: dict[str, float], y: dict[str, float], k: int = 5) -> float:
    """Share of the reference's top k (by ``y``) that are also in the candidate's top k."""
    k = min(k, len(x))
    top = lambda scores: set(sorted(scores, key=lambda g: (-scores[g], g))[:k])  # noqa: E731
    return len(top(x) & top(y)) / k


# -- one fidelity's figures -------------------------------------------------------------------------


@dataclass
class FidelityFigures:
    fidelity: str
    genomes: int  # genomes with at least one COMPLETE seed (shared with the reference)
    seconds_per_training: float
    search_minutes: float  # a SEARCH_TRAININGS search at the calibration's concurrency
    sigma: float | None  # pooled seed std of top-1, pp
    sigma_df: int
    spread: float  # std of the genome means, pp
    tau: float | None = None
    tau_interval: tuple[float, float] | None = None
    rho: float | None = None
    rho_interval: tuple[float, float] | None = None
    top5_overlap: float | None = None
    # The reference's split-half τ and the τ of ranking by MACs and params, over the genomes τ is
    # measured on (the reference's own row: over all its genomes).
    ceiling_and_baselines: CeilingAndBaselines | None = None
    between_genome: Signal | None = None  # the std of this fidelity's true genome means beyond seed noise

    def reaches(self, min_tau: float) -> bool:
        return self.tau_interval is not None and self.tau_interval[0] >= min_tau

    def not_above_baselines(self) -> dict[str, Correlation]:
        """The cost baselines (MACs, params) this fidelity's τ is not above."""
        if self.tau is None or self.ceiling_and_baselines is None:
            return {}
        return self.ceiling_and_baselines.not_beaten_by(self.tau)


def between_genome_signal(runs: dict[str, list[float]], costs: dict[str, tuple[float, float]]) -> Signal:
    """The between-genome std of the genome means beyond seed noise (``front.between_genome``)."""
    # Seeds as positions: between_genome reads only the scores and their count.
    stats = [GenomeStats(g, tuple(range(len(v))), tuple(v), costs[g], number)
             for number, (g, v) in enumerate(runs.items()) if v]
    return between_genome(stats, seed_noise(stats))


def fidelity_figures(fidelity: str, runs: dict[str, list[float]], seconds: list[float], concurrency: int,
                     costs: dict[str, tuple[float, float]],
                     reference: dict[str, list[float]] | None = None) -> FidelityFigures:
    """``runs``: genome -> top-1 per seed, in seed order; ``costs``: genome -> (MACs, params);
    ``reference``: the reference's runs (None for the reference itself)."""
    means = {g: statistics.fmean(v) for g, v in runs.items() if v}
    repeated = [v for v in runs.values() if len(v) >= 2]
    df = sum(len(v) - 1 for v in repeated)
    sigma = math.sqrt(sum(statistics.variance(v) * (len(v) - 1) for v in repeated) / df) if df else None
    per_training = statistics.fmean(seconds) if seconds else float("nan")
    figures = FidelityFigures(fidelity, len(means), per_training, SEARCH_TRAININGS * per_training / max(1, concurrency) / 60,
                              sigma, df, statistics.pstdev(means.values()) if len(means) > 1 else 0.0,
                              between_genome=between_genome_signal(runs, costs))
    if reference is None:
        figures.ceiling_and_baselines = CeilingAndBaselines.of({g: runs[g] for g in means}, costs)
        return figures
    reference_means = {g: statistics.fmean(v) for g, v in reference.items() if v}
    shared = sorted(set(means) & set(reference_means))
    if len(shared) >= 3:
        x, y = [means[g] for g in shared], [reference_means[g] for g in shared]
        figures.tau, figures.tau_interval = kendall_tau(x, y), bootstrap_interval(kendall_tau, x, y)
        figures.rho, figures.rho_interval = spearman_rho(x, y), bootstrap_interval(spearman_rho, x, y)
        figures.top5_overlap = top_k_overlap({g: means[g] for g in shared}, {g: reference_means[g] for g in shared})
        figures.ceiling_and_baselines = CeilingAndBaselines.of({g: reference[g] for g in shared}, costs)
    return figures


def recommend(candidates: list[FidelityFigures], min_tau: float) -> FidelityFigures | None:
    """The cheapest candidate whose τ lower bound reaches ``min_tau`` and whose τ is above the τ
    of ranking by MACs and by params (a ranking no better than the costs is not worth a training);
    None if none is."""
    qualified = [c for c in candidates if c.reaches(min_tau) and not c.not_above_baselines()]
    return min(qualified, key=lambda c: c.seconds_per_training, default=None)


# -- the study --------------------------------------------------------------------------------------


ONESHOT = "oneshot:"


def candidate_name(name: str, backbone: str) -> str:
    """A fidelity's canonical name; ``oneshot:FIDELITY`` keeps its prefix."""
    if name.startswith(ONESHOT):
        return ONESHOT + parse_fidelity(name.removeprefix(ONESHOT), backbone).name
    return parse_fidelity(name, backbone).name


def score_panel_oneshot(study: optuna.Study, candidate: str, panel: list[Genome], seeds: list[int], space: SearchSpace,
                        data: DataSpec, num_classes: int, val_fraction: float, study_dir: Path) -> None:
    """The ``oneshot:FIDELITY`` candidate: per seed, a supernet trained at FIDELITY (in this
    process, checkpointed under ``study_dir``) scores every panel genome, recorded as a trial
    like a training's. A genome's ``seconds`` is its share of the supernet training plus its
    own scoring: what a one-shot search pays per genome of a panel this size."""
    from ..data.cache import cache_key
    from ..search.oneshot import SUPERNET_EPOCH_FACTOR
    from ..train.supernet import PathScorer, train_supernet

    fidelity = parse_fidelity(candidate.removeprefix(ONESHOT), space.backbone)
    done = {(t.user_attrs.get("genome"), t.user_attrs.get("seed"))
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("fidelity") == candidate}
    for seed in seeds:
        todo = [g for g in panel if (str(g), seed) not in done]
        if not todo:
            continue
        print(f"{candidate}: training the supernet with seed {seed}, then scoring {len(todo)} genomes", file=sys.stderr)
        started = time.time()
        supernet = train_supernet(space, data, fidelity, num_classes, seed,
                                  study_dir / "supernet" / f"{cache_key(candidate)}-{seed}",
                                  epochs=SUPERNET_EPOCH_FACTOR * fidelity.epochs, val_fraction=val_fraction)
        share = (time.time() - started) / len(panel)
        scorer = PathScorer(supernet, data, val_fraction)
        for genome in todo:
            tick = time.time()
            score = scorer(genome)
            trial = study.ask()
            for name, value in {"fidelity": candidate, "genome": str(genome), "seed": seed, "dataset": str(data),
                                "seconds": share + time.time() - tick}.items():
                trial.set_user_attr(name, value)
            study.tell(trial, [score])


def plan(study: optuna.Study, fidelities: list[str], panel: list[Genome], seeds: list[int]) -> list[tuple[str, str, int]]:
    """(fidelity, genome, seed) trainings the study does not hold as COMPLETE yet, fidelity by
    fidelity in the order given."""
    done = {(t.user_attrs.get("fidelity"), t.user_attrs.get("genome"), t.user_attrs.get("seed"))
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    return [(f, str(g), s) for f in fidelities for g in panel for s in seeds if (f, str(g), s) not in done]


def collect(study: optuna.Study) -> dict[str, dict[str, Any]]:
    """fidelity -> {"runs": genome -> [top-1 per seed, in seed order], "seconds": [...]} from COMPLETE trials."""
    out: dict[str, dict[str, Any]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        entry = out.setdefault(trial.user_attrs["fidelity"], {"runs": {}, "seconds": []})
        entry["runs"].setdefault(trial.user_attrs["genome"], []).append((trial.user_attrs["seed"], trial.values[0]))
        if trial.user_attrs.get("seconds") is not None:
            entry["seconds"].append(float(trial.user_attrs["seconds"]))
    for entry in out.values():
        entry["runs"] = {g: [value for _, value in sorted(runs)] for g, runs in entry["runs"].items()}
    return out


@dataclass
class Calibration:
    reference: FidelityFigures
    candidates: list[FidelityFigures]
    recommended: FidelityFigures | None
    min_tau: float

    def to_json(self) -> dict:
        return {"reference": asdict(self.reference), "candidates": [asdict(c) for c in self.candidates],
                "recommended": self.recommended.fidelity if self.recommended else None, "min_tau": self.min_tau}


def analyse(study: optuna.Study, candidates: list[str], reference: str, concurrency: int, min_tau: float,
            num_classes: int) -> Calibration:
    data = collect(study)
    empty = {"runs": {}, "seconds": []}
    costs = genome_costs({g for entry in data.values() for g in entry["runs"]}, num_classes)
    ref_data = data.get(reference, empty)
    ref = fidelity_figures(reference, ref_data["runs"], ref_data["seconds"], concurrency, costs)
    figures = [fidelity_figures(f, data.get(f, empty)["runs"], data.get(f, empty)["seconds"], concurrency, costs,
                                ref_data["runs"]) for f in candidates]
    return Calibration(ref, figures, recommend(figures, min_tau), min_tau)


# -- output --------------------------------------------------------------------------------------------


def _interval(value: float | None, interval: tuple[float, float] | None) -> str:
    if value is None or interval is None:
        return "-"
    return f"{value:+.2f} [{interval[0]:+.2f}, {interval[1]:+.2f}]"


def yardstick_lines(figures: FidelityFigures) -> list[str]:
    """The lines below a fidelity's row: the ceiling and cost baselines its τ is read against, and
    whether its genome means differ beyond seed noise at all."""
    lines = []
    if figures.ceiling_and_baselines is not None:
        yardsticks = figures.ceiling_and_baselines
        lines.append(f"    {yardsticks.describe_ceiling()}; cost baselines: {yardsticks.describe_baselines()}")
    signal = figures.between_genome
    lines.append("    " + signal.describe() + (": it reaches 0, the placements are not told apart at this fidelity"
                                               if signal.std is not None and not signal.resolved else ""))
    return lines


def verdict_lines(result: Calibration) -> list[str]:
    """A line per candidate refused for ranking no better than the costs, then the recommendation."""
    lines = []
    refused = [c for c in result.candidates if c.reaches(result.min_tau) and c.not_above_baselines()]
    for c in refused:
        baselines = " and ".join(f"by {name} ({b.value:+.2f})" for name, b in c.not_above_baselines().items())
        lines.append(f"{c.fidelity} is not recommended: its τ {c.tau:+.2f} is not above ranking {baselines}, "
                     f"which needs no training")
    if result.recommended is not None:
        lines.append(f"recommended: {result.recommended.fidelity}, the cheapest whose τ lower bound reaches "
                     f"{result.min_tau} ({result.recommended.tau_interval[0]:+.2f}) and whose τ is above ranking by "
                     f"MACs and by params")
    elif refused:
        lines.append(f"no candidate is recommended: those whose τ lower bound reaches {result.min_tau} rank no better "
                     f"than MACs/params; rank by cost, or try longer fidelities, more seeds or a larger panel")
    else:
        bounds = [(c.tau_interval[0], c.fidelity) for c in result.candidates if c.tau_interval is not None]
        best = f" (the best is {max(bounds)[1]}'s {max(bounds)[0]:.3f})" if bounds else ""
        lines.append(f"no candidate's τ lower bound reaches {result.min_tau}{best}: none ranks like "
                     f"{result.reference.fidelity} with confidence; try longer fidelities, more seeds or a larger panel")
    return lines


def _sigma(figures: FidelityFigures) -> str:
    return "-" if figures.sigma is None else f"{figures.sigma:.2f}"


def reference_lines(ref: FidelityFigures) -> list[str]:
    return [f"reference {ref.fidelity}: {ref.genomes} genomes, {ref.seconds_per_training:.1f} s per training, "
            f"seed σ {_sigma(ref)} pp, spread of genome means {ref.spread:.2f} pp", *yardstick_lines(ref)]


def summary_lines(result: Calibration) -> list[str]:
    """The reference, then a row per candidate with its yardsticks below it, then the verdict."""
    lines = [*reference_lines(result.reference),
             f"{'fidelity':<34} {'s/training':>10} {'200-training search':>20} {'σ pp':>6} {'spread pp':>9} "
             f"{'Kendall τ [90% CI]':>22} {'Spearman ρ [90% CI]':>22} {'top-5':>5}"]
    for f in result.candidates:
        overlap = "-" if f.top5_overlap is None else f"{f.top5_overlap:.0%}"
        lines.append(f"{f.fidelity:<34} {f.seconds_per_training:>10.1f} {f'{f.search_minutes:.0f} min':>20} {_sigma(f):>6} "
                     f"{f.spread:>9.2f} {_interval(f.tau, f.tau_interval):>22} {_interval(f.rho, f.rho_interval):>22} "
                     f"{overlap:>5}")
        lines += yardstick_lines(f)
    return lines + verdict_lines(result)


def _yardstick_columns(figures: FidelityFigures) -> dict[str, str]:
    yardsticks, signal = figures.ceiling_and_baselines, figures.between_genome
    shown = lambda c: "-" if c is None else c.describe()  # noqa: E731
    return {"ceiling τ [90% CI]": shown(yardsticks and yardsticks.ceiling),
            "MACs τ [90% CI]": shown(yardsticks and yardsticks.macs),
            "params τ [90% CI]": shown(yardsticks and yardsticks.params),
            "between-genome std (pp) [95% CI]": "-" if signal.std is None
            else f"{signal.std:.2f} [{signal.low:.2f}, {signal.high:.2f}]"}


def write_outputs(result: Calibration, out_dir: Path, title: str) -> list[Path]:
    """calibration.json and an offline calibration.html (τ and ρ against cost, with intervals)."""
    import plotly.graph_objects as go

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "calibration.json", out_dir / "calibration.html"
    json_path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    figure = go.Figure()
    rows = [f for f in result.candidates if f.tau is not None]
    for name, value, interval, symbol in (("Kendall τ", "tau", "tau_interval", "circle"),
                                          ("Spearman ρ", "rho", "rho_interval", "diamond")):
        figure.add_scatter(
            x=[f.seconds_per_training for f in rows], y=[getattr(f, value) for f in rows], mode="markers+text",
            name=name, text=[f.fidelity for f in rows], textposition="top center", marker={"symbol": symbol, "size": 10},
            error_y={"type": "data", "symmetric": False,
                     "array": [getattr(f, interval)[1] - getattr(f, value) for f in rows],
                     "arrayminus": [getattr(f, value) - getattr(f, interval)[0] for f in rows]})
    for name, pick, symbol in (("ceiling (reference split-half τ)", lambda y: y.ceiling, "line-ew-open"),
                               ("best cost baseline τ", lambda y: max((b for b in y.baselines.values() if b is not None),
                                                                       key=lambda b: b.value, default=None), "x")):
        marks = [(f.seconds_per_training, pick(f.ceiling_and_baselines)) for f in rows]
        marks = [(x, c) for x, c in marks if c is not None]
        figure.add_scatter(x=[x for x, _ in marks], y=[c.value for _, c in marks], mode="markers", name=name,
                           marker={"symbol": symbol, "size": 14, "line": {"width": 2}})
    figure.add_hline(y=result.min_tau, line_dash="dash", annotation_text=f"--min-tau {result.min_tau}")
    figure.update_layout(title=f"Rank agreement with {result.reference.fidelity} against cost (90% bootstrap intervals)",
                         xaxis_title="seconds per training", yaxis_title="rank correlation", xaxis_type="log",
                         template="plotly_white", height=520)
    import pandas as pd

    rows = [{"fidelity": f.fidelity, "seconds per training": f.seconds_per_training,
             f"{SEARCH_TRAININGS}-training search (min)": f.search_minutes, "seed σ (pp)": f.sigma,
             "spread of means (pp)": f.spread, "Kendall τ [90% CI]": _interval(f.tau, f.tau_interval),
             "Spearman ρ [90% CI]": _interval(f.rho, f.rho_interval),
             "top-5 overlap": None if f.top5_overlap is None else f"{f.top5_overlap:.0%}",
             **_yardstick_columns(f)}
            for f in [*result.candidates, result.reference]]
    table = (pd.DataFrame(rows).to_html(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-")
             + "".join(f"<p>{line}</p>" for line in reference_lines(result.reference))
             + "".join(f"<p><b>{line}</b></p>" for line in verdict_lines(result)))
    html_path.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Fidelity calibration</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>Fidelity calibration: {title}</h1><p>Top-1 on the validation split; every figure is over the panel's "
        "genomes, means over seeds.</p>" + figure.to_html(full_html=False, include_plotlyjs=True)
        + table + "</body></html>", encoding="utf-8")
    return [json_path, html_path]


# -- command line ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import logging

    from ..cli import ArgumentParser, check_storage, fail, start_ray
    from ..data import check_val_fraction, load_images
    from ..data.layouts import READERS
    from ..models.spaces import load_space
    from ..studies import open_storage

    p = ArgumentParser(prog="python -m ulsam_nas.calibrate",
                       description="Measure how well cheap fidelities rank genomes like a reference training.")
    p.add_argument("--space", default="mv2", help="search space: mv1, mv2 or a .toml path (default mv2)")
    p.add_argument("--dataset", default="synthetic", help="NAME[:ROOT] (default synthetic)")
    p.add_argument("--fidelities", required=True,
                   help="comma-separated candidate fidelities, e.g. smoke,smoke:epochs=8; oneshot:FIDELITY scores the panel "
                        "with a weight-sharing supernet trained at FIDELITY (one per seed)")
    p.add_argument("--reference", required=True, help="the fidelity to rank like, e.g. proxy or smoke:epochs=10")
    p.add_argument("--panel", default="default",
                   help="paper | random:N | FILE of genome strings (default: paper configurations plus random, 16)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per (fidelity, genome) (default 2)")
    p.add_argument("--seed", type=int, default=0, help="first seed, and the seed of the random panel (default 0)")
    p.add_argument("--min-tau", type=float, default=0.6, help="τ lower bound a recommendation needs (default 0.6)")
    p.add_argument("--val-fraction", type=float, default=VAL_FRACTION, help=f"validation share (default {VAL_FRACTION})")
    p.add_argument("--study", type=Path, default=None, help="folder (default studies/calibrate-<space>-<dataset>)")
    p.add_argument("--address", default=None, help="address of an existing Ray cluster (default: start a local one)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs each training reserves (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=None, help="GPUs each training reserves (default 1 with GPUs)")
    p.add_argument("--concurrency", type=int, default=None, help="trainings at once (default: as resources allow)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        space = load_space(args.space)
        data = DataSpec.parse(args.dataset)
        if data.name in READERS:
            READERS[data.name](data.root, "train")
        names = [f.strip() for f in args.fidelities.split(",") if f.strip()]
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
    study_dir = args.study or Path("studies") / name
    storage_url = f"sqlite:///{(study_dir / 'calibration.db').resolve()}"
    check_storage(storage_url, study_dir)

    start_ray(args.address)  # before anything imports Ray: joining a cluster may set its token mode
    import ray

    cluster_gpus, cluster_cpus = ray.cluster_resources().get("GPU", 0), ray.cluster_resources().get("CPU", 1)
    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (1.0 if cluster_gpus else 0.0)
    if gpus and not cluster_gpus:
        fail(f"--gpus-per-trial {gpus}: there is no GPU in this Ray cluster")
    limits = [cluster_cpus // args.cpus_per_trial] + ([cluster_gpus // gpus] if gpus else [])
    concurrency = args.concurrency or max(1, int(min(limits)))
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
    from ..search.ledger import close_interrupted

    closed = close_interrupted(study, storage, requeue=False)
    if closed:
        print(f"closed {len(closed)} interrupted training(s) as FAIL; they run again", file=sys.stderr)
    seeds = list(range(args.seed, args.seed + args.seeds))
    oneshot = [c for c in candidates if c.startswith(ONESHOT)]
    jobs = plan(study, [*(c for c in candidates if c not in oneshot), reference], panel, seeds)
    total = (len(candidates) - len(oneshot) + 1) * len(panel) * len(seeds)
    print(f"calibrating {len(candidates)} fidelities against {reference} on {data}: panel of {len(panel)} genomes, "
          f"{len(seeds)} seed(s); {len(jobs)} of {total} trainings to run, {concurrency} at once", file=sys.stderr)
    if jobs:
        try:
            from ..search.tune import train_plan

            train_plan(study, storage, jobs, data, space, num_classes, args.val_fraction,
                       {"cpu": args.cpus_per_trial, "gpu": gpus}, concurrency, study_dir)
        except KeyboardInterrupt:
            print("\ninterrupted: run the same command again to continue", file=sys.stderr)
            return 130
    for candidate in oneshot:
        score_panel_oneshot(study, candidate, panel, seeds, space, data, num_classes, args.val_fraction, study_dir)
    result = analyse(study, candidates, reference, concurrency, args.min_tau, num_classes)
    files = write_outputs(result, study_dir, f"{space.name} on {data}")
    print("\n".join(summary_lines(result)))
    if result.recommended is not None:
        print(f"\nsearch with it:\n  python -m ulsam_nas.search --space {args.space} --dataset {data} "
              f"--fidelity {result.recommended.fidelity}")
    print(f"wrote {files[0]} and {files[1]}")
    return 0

