"""python -m ulsam_nas.report: the study's front over seeds as an offline HTML report, CSV tables and a summary.

    python -m ulsam_nas.report --study studies/mv2-synthetic [--out DIR]

A trial is one (genome, seed) training; the report is about genomes: each one's top-1 is the
mean over its COMPLETE seeds, and the front is the one beyond seed noise (``front.py``). Every
top-1 is measured on the validation split held out from the training images, except the final
test figures (``--final`` of the search: retrained on train+val, evaluated on the test split).

Writes ``report.html`` (Plotly, with plotly.js embedded so it opens offline): the seed noise σ,
mean top-1 against each cost (MACs, params, ...) with 95% confidence intervals of the mean, the front
highlighted, every paper configuration marked and labelled as the paper writes it, the vanilla
backbone marked, the hypervolume history on genome means, the front, the picks, the paper
configurations' verdicts and, when present, the final test figures; ``trials.csv`` (every
training), ``genomes.csv`` (every genome: mean, std, CI, seeds, costs, verdict, test figures)
and ``pareto.csv`` (the front, same columns). Prints a summary: σ, front size, hypervolume,
the knee, where each paper configuration sits, the test figures.

Every figure, column and sentence follows the study's objectives (``objectives.Selection``):
one figure of mean top-1 per cost (MACs, params, latency, ...), one column per objective.

Hypervolume is computed on normalised objectives, all minimised, in as many dimensions as the
study has objectives: 1 - top1/100, and each cost divided by its reference, 1.25 x the cost of
the vanilla backbone (at its widest width in the space and the study's class count), so the
reference point is all ones. It is the share of that box the genomes' mean points dominate:
comparable between studies of a space with the same objectives.
"""

from __future__ import annotations

import math
import re
import statistics
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd

from ..analysis.agreement import RankAgreement, agreement_of
from ..analysis.front import Front, GenomeStats, SeedNoise, genome_stats, genomes_table, paper_status, trial_seed
from ..analysis.hypervolume import hypervolume
from ..analysis.objectives import REFERENCE_FACTOR, Context, Objective, Selection, parse_limit

RULES = ("knee", "max-top1", "max-top1 NAME<=X (e.g. macs<=250M, params<=2.5M, latency<=4ms)")
_CONSTRAINED = re.compile(r"^max-(?P<metric>[a-z0-9_]+)(?:\s+(?:under\s+)?(?P<objective>[a-z0-9_]+)\s*<=\s*(?P<limit>.+))?$",
                          re.IGNORECASE)


# -- hypervolume ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """The study's objectives and the point their hypervolume is measured against."""

    selection: Selection
    point: dict[str, float]  # objective name -> its reference value

    def normalise(self, values: list[float]) -> tuple[float, ...]:
        """Minimisation coordinates in [0, 1) for points inside the reference box."""
        return self.selection.normalise(values, self.point)

    def describe(self) -> str:
        return ("reference point: " + ", ".join(o.show(self.point[o.name]) for o in self.selection.objectives)
                + f"; the costs {REFERENCE_FACTOR} x the vanilla backbone's")


def reference_for(study: optuna.Study) -> Reference:
    """The reference stored with the study's objectives; for a study from before they were
    stored, the registry's values of its vanilla backbone."""
    selection = Selection.of_study(study)
    specs = study.user_attrs.get("objective_specs")
    if specs:
        return Reference(selection, {spec["name"]: spec["reference"] for spec in specs})
    from ..models.spaces import load_space

    try:
        space = load_space(study.user_attrs["space"])
    except (KeyError, ValueError):  # a custom space file that is not at hand: its backbone at width 1
        space = SimpleNamespace(backbone=study.user_attrs.get("backbone", "mv2"), width_mults=(1.0,))
    context = Context(space, int(study.user_attrs.get("num_classes", 1000)))
    return Reference(selection, selection.reference_point(context))


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Pareto dominance of minimisation points: ``a`` differs from ``b`` and is nowhere worse."""
    return a != b and all(x <= y for x, y in zip(a, b))


def _nondominated(points: dict[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
    """The undominated points; in lexicographic order a point can only be dominated by an earlier one."""
    ordered = sorted(points.items(), key=lambda item: item[1])
    if ordered and len(ordered[0][1]) == 3:
        return _nondominated_3d(ordered)
    front: dict[str, tuple[float, ...]] = {}
    for genome, point in ordered:
        if not any(_dominates(f, point) for f in front.values()):
            front[genome] = point
    return front


def _nondominated_3d(ordered: list[tuple[str, tuple[float, ...]]]) -> dict[str, tuple[float, ...]]:
    """``_nondominated`` of three objectives in O(n log n): the earlier points' (y, z) are kept as a
    2-D staircase (y ascending, z descending, each step with the x of the first point that made
    it), and a point is dominated when the last step with y' <= y has z' <= z, unless that step is
    this very point again (an equal point is not a dominating one)."""
    front: dict[str, tuple[float, ...]] = {}
    ys: list[float] = []
    zs: list[float] = []
    xs: list[float] = []
    for genome, point in ordered:
        x, y, z = point
        step = bisect_right(ys, y) - 1
        if step >= 0 and zs[step] <= z:
            if (ys[step], zs[step], xs[step]) == (y, z, x):
                front[genome] = point
            continue
        start = end = bisect_left(ys, y)
        while end < len(ys) and zs[end] >= z:
            end += 1
        ys[start:end], zs[start:end], xs[start:end] = [y], [z], [x]
        front[genome] = point
    return front


def hypervolume_history(trials: list[optuna.trial.FrozenTrial], reference: Reference) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the genomes' mean points as of that trial), in trial order.

    A COMPLETE trial moves one genome's mean, so the front of means is updated, not rebuilt, and
    its volume is computed again only when the front changed: the work grows about linearly with
    the trials (``tests/test_report.py`` bounds it). When a front genome's mean falls, the points
    it alone covered (those it dominated) are the only ones that may come back."""
    by_genome: dict[str, list[optuna.trial.FrozenTrial]] = {}
    points: dict[str, tuple[float, ...]] = {}
    front: dict[str, tuple[float, ...]] = {}
    history, volume = [], 0.0
    selection, ones = reference.selection, (1.0,) * len(reference.selection.objectives)
    for trial in sorted(trials, key=lambda t: t.number):
        genome = trial.user_attrs.get("genome")
        if trial.state == optuna.trial.TrialState.COMPLETE and genome is not None:
            by_genome.setdefault(genome, []).append(trial)
            old = points.get(genome)
            stats = genome_stats(by_genome[genome], selection)[0]
            point = points[genome] = reference.normalise(selection.values(stats.mean, stats.costs))
            if genome in front and any(p > o for p, o in zip(point, old)):
                uncovered = {g: p for g, p in points.items() if g not in front and _dominates(old, p)}
                front = _nondominated({**{g: f for g, f in front.items() if g != genome}, genome: point, **uncovered})
            elif genome in front or not any(_dominates(f, point) for f in front.values()):
                front = {g: f for g, f in front.items() if g != genome and not _dominates(point, f)}
                front[genome] = point
            else:
                history.append((trial.number, volume))  # a dominated mean moved: the front is as it was
                continue
            volume = hypervolume(front.values(), ones)
        history.append((trial.number, volume))
    return history


# -- choosing from the front ------------------------------------------------------------------


def knee(front: Front) -> GenomeStats:
    """The front genome closest to the ideal point, every objective scaled to [0, 1] over the front,
    top-1 as the shrunk mean (``Front.estimate``): the knee is not chosen for its seed luck."""
    objectives = front.selection.objectives
    columns = list(zip(*[front.shrunk_values(s) for s in front.members]))
    lows, highs = [min(c) for c in columns], [max(c) for c in columns]

    def distance(stats: GenomeStats) -> float:
        scaled = [(v - lo) / (hi - lo) if hi > lo else 0.0 for v, lo, hi in zip(front.shrunk_values(stats), lows, highs)]
        shortfall = [1 - x if o.direction == "maximize" else x for o, x in zip(objectives, scaled)]  # 0 is ideal
        return math.sqrt(sum(x * x for x in shortfall))

    return min(front.members, key=lambda s: (distance(s), s.trial))


def pick(study: optuna.Study, rule: str) -> GenomeStats:
    """A genome of the study's front beyond seed noise by ``rule``, on shrunk mean top-1 (``Front.estimate``): ``knee``,
    ``max-top1``, or ``max-top1 NAME<=X`` on one of the study's costs (X like 250e6, 250M, 4ms).
    ValueError if nothing qualifies."""
    front = Front.of_study(study)
    if not front.members:
        raise ValueError(f"study {study.study_name!r} has no complete trial to pick from")
    rule = rule.strip()
    if rule == "knee":
        return knee(front)
    match = _CONSTRAINED.match(rule)
    if not match or match["metric"].lower() != front.selection.trained.name:
        raise ValueError(f"unknown rule {rule!r}; use one of: {', '.join(RULES)}")
    if match["objective"] is None:
        return front.members[0]  # best shrunk mean first
    costs = {o.name: i for i, o in enumerate(front.selection.computed)}
    name = match["objective"].lower()
    if name not in costs:
        raise ValueError(f"rule {rule!r}: {name} is not an objective of this study ({', '.join(costs)})")
    objective = front.selection.computed[costs[name]]
    limit = parse_limit(objective, match["limit"])
    feasible = [s for s in front.members if s.costs[costs[name]] <= limit]
    if not feasible:
        raise ValueError(f"no front genome has {name} <= {limit:g}")
    return feasible[0]


# -- the report ---------------------------------------------------------------------------------

FINAL_SECTION = "Test split (final retraining on train+val)"


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per training (trial), its own values, one column per objective: the seed-level
    data behind genomes.csv. The computed objectives are there for every trial that got a genome."""
    names = Selection.of_study(study).names
    columns = ["trial", "state", "genome", "label", "seed", "repeat_of", "reused_from", *names, "seconds", "failure"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        complete = t.state == optuna.trial.TrialState.COMPLETE
        values = dict(zip(names, t.values)) if complete else {n: t.user_attrs.get(n) for n in names}
        rows.append({
            "trial": t.number, "state": t.state.name, "genome": t.user_attrs.get("genome", ""),
            "label": t.user_attrs.get("paper_label", ""), "seed": trial_seed(t), "repeat_of": t.user_attrs.get("repeat_of"),
            "reused_from": t.user_attrs.get("reused_from"), **values,
            "seconds": t.user_attrs.get("seconds"), "failure": t.user_attrs.get("failure") or t.user_attrs.get("infeasible", ""),
        })
    # Nullable integers, so the trial numbers read 3, not 3.0, beside the empty cells.
    return pd.DataFrame(rows, columns=columns).astype({"repeat_of": "Int64", "reused_from": "Int64"})


def final_tests(study: optuna.Study) -> dict[str, dict[str, list[float]]]:
    """Test-split top-1 and top-5 per genome, one value per seed, from the search's ``--final``
    retraining (``study.user_attrs["final_test"]``); empty without it."""
    return {genome: {metric: [float(r[metric]) for r in by_seed.values()] for metric in ("top1", "top5")}
            for genome, by_seed in study.user_attrs.get("final_test", {}).items()}


def _spread(values: list[float] | tuple[float, ...]) -> str:
    """Mean ± sample std over seeds, e.g. "43.00 ± 1.41% over 2 seeds"."""
    std = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.2f}{std}% over {len(values)} seed{'s' if len(values) > 1 else ''}"


def _named(stats: GenomeStats) -> str:
    return stats.genome + (f" ({stats.label})" if stats.label else "")


@dataclass
class ReportSummary:
    front_size: int  # genomes on the front beyond seed noise
    hypervolume: float  # of the genomes' mean points
    reference: Reference
    knee: GenomeStats
    knee_costs: str  # e.g. "268.59M MACs, 2.235M params"
    knee_estimate: float  # the knee's shrunk mean top-1 (Front.estimate)
    noise: SeedNoise
    signal_line: str  # whether the genomes differ beyond seed noise (Signal.verdict)
    paper_lines: list[str]
    files: list[Path]  # every file the search uploads as a study artifact
    final_lines: list[str] = field(default_factory=list)  # test-split figures, when the study has them
    oneshot_lines: list[str] = field(default_factory=list)  # rank agreement, for a one-shot search

    def text(self) -> str:
        k = self.knee
        lines = [
            self.noise.describe(),
            self.signal_line,
            f"front beyond seed noise: {self.front_size} genome{'s' * (self.front_size != 1)}; hypervolume "
            f"{self.hypervolume:.4f} of the mean top-1 ({self.reference.describe()})",
            f"knee: {_named(k)}: validation top-1 {self.knee_estimate:.2f}% shrunk ({_spread(k.scores)}), "
            f"{self.knee_costs} (first trial {k.trial})",
        ]
        if self.paper_lines:
            lines += ["the paper's configurations (validation top-1):", *[f"  {line}" for line in self.paper_lines]]
        if self.final_lines:
            lines += [f"{FINAL_SECTION}:", *[f"  {line}" for line in self.final_lines]]
        lines += self.oneshot_lines
        lines.append("wrote " + ", ".join(str(f) for f in self.files))
        return "\n".join(lines)


def _paper_label(label: str) -> str:
    """The paper's way of writing a configuration: "(13, 14, 16, 17) g=4", "vanilla"."""
    parts = label.split(" ", 1)
    text = parts[1] if len(parts) > 1 else label
    width, _, rest = text.partition(" ")
    return rest if width == "1.0" and rest else text


def _costs(front: Front, stats: GenomeStats) -> str:
    """E.g. "268.59M MACs, 2.235M params"."""
    return ", ".join(o.show(v) for o, v in zip(front.selection.computed, stats.costs))


def front_figure(front: Front, verdicts: dict[str, str], objective: Objective, title: str):
    """Mean top-1 of every genome against one cost, with the 95% CI of the mean as error bars."""
    import plotly.graph_objects as go

    members = {m.genome for m in front.members}
    index = front.selection.computed.index(objective)
    figure = go.Figure()

    def hover(s: GenomeStats) -> str:
        interval = f"95% CI ± {s.ci95(front.noise):.2f}" if front.noise.measured else "σ not measured"
        return (f"{_named(s)}<br>validation top-1 {_spread(s.scores)} ({interval}; shrunk {front.estimate(s):.2f})<br>"
                f"{_costs(front, s)}<br>{verdicts[s.genome]}")

    def add(stats: list[GenomeStats], **style) -> None:
        figure.add_scatter(x=[s.costs[index] / objective.scale for s in stats], y=[s.mean for s in stats],
                           hovertext=[hover(s) for s in stats], hoverinfo="text", **style)

    # The front has as many dimensions as objectives: in each two-objective view its points need not form a
    # staircase, so they are marked rather than joined. Seed counts above one are written beside
    # the points (mostly front genomes: repeats go to contenders).
    for on_front, name, color, size in ((False, "genomes", "#9aa5b1", 6), (True, "front beyond seed noise", "#d64545", 10)):
        stats = [s for s in front.stats if (s.genome in members) == on_front]
        add(stats, mode="markers+text", name=name, marker={"size": size, "color": color},
            error_y={"type": "data", "array": [s.ci95(front.noise) or 0.0 for s in stats], "color": color, "thickness": 1.2, "width": 3},
            text=[f"n={s.n}" if s.n > 1 else "" for s in stats], textposition="middle right",
            textfont={"size": 9, "color": color})
    paper = [s for s in front.stats if s.label]
    vanilla = [s for s in paper if s.genome.endswith("()")]
    labelled = [s for s in paper if s not in vanilla]
    add(labelled, mode="markers+text", name="paper configurations", text=[_paper_label(s.label) for s in labelled],
        marker={"symbol": "diamond-open", "size": 13, "color": "#1f6feb", "line": {"width": 2}},
        textposition="top left", textfont={"size": 9})
    add(vanilla, mode="markers+text", name="vanilla backbone", text=[_paper_label(s.label) for s in vanilla],
        textposition="bottom center", marker={"symbol": "star", "size": 15, "color": "#111"})
    figure.update_layout(
        title=f"{title}<br><sub>one point per genome at its mean validation top-1; error bars: 95% CI of the mean over "
              f"seeds; n=seeds where more than one</sub>",
        xaxis_title=f"{objective.label} ({objective.unit.strip() or objective.name})",
        yaxis_title="validation top-1 (%), mean over seeds",
        template="plotly_white", height=600, legend={"orientation": "h", "y": -0.15})
    return figure


def _final_rows(front: Front, tests: dict[str, dict[str, list[float]]]) -> list[dict]:
    """Each finally retrained genome's validation figure from the search beside its test figures."""
    by_genome = front.by_genome()
    rows = []
    for genome, test in tests.items():
        stats = by_genome.get(genome)
        rows.append({"genome": genome, "label": stats.label if stats else "",
                     "validation top-1": _spread(stats.scores) if stats else "not in this study",
                     "test top-1": _spread(test["top1"]), "test top-5": _spread(test["top5"])})
    return rows


def _with_tests(table: pd.DataFrame, tests: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """genomes_table plus the test-split top-1 of the genomes that were finally retrained (else empty)."""
    top1 = [tests.get(genome, {}).get("top1", []) for genome in table["genome"]]
    return table.assign(test_top1_mean=[statistics.fmean(v) if v else None for v in top1],
                        test_top1_std=[statistics.stdev(v) if len(v) > 1 else None for v in top1],
                        test_seeds=pd.array([len(v) or None for v in top1], dtype="Int64"))


def _oneshot_table(front: Front, agreement: RankAgreement) -> pd.DataFrame:
    """One-shot score beside the standalone figures, one row per genome trained standalone."""
    by_genome = front.by_genome()
    rows = [{"genome": genome, "label": by_genome[genome].label, "one-shot top-1": score,
             "standalone top-1": _spread(by_genome[genome].scores), "standalone mean": mean}
            for genome, (score, mean) in agreement.pairs.items() if genome in by_genome]
    return pd.DataFrame(rows).sort_values("one-shot top-1", ascending=False)


def write_report(study: optuna.Study, out_dir: Path) -> ReportSummary:
    """Write report.html, trials.csv, genomes.csv and pareto.csv to ``out_dir``; ValueError
    without a complete trial."""
    import plotly.graph_objects as go

    front = Front.of_study(study)
    if not front.stats:
        raise ValueError(f"study {study.study_name!r} has no finished trial with results yet")
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    reference = reference_for(study)
    history = hypervolume_history(trials, reference)
    labels = [t.user_attrs["paper_label"] for t in trials if t.user_attrs.get("paper_label")]
    statuses = [s for s in paper_status(front, list(dict.fromkeys(labels))) if s.stats is not None]
    tests = final_tests(study)

    genomes = _with_tests(genomes_table(front), tests)
    pareto = genomes.set_index("genome").loc[[m.genome for m in front.members]].reset_index()
    trials_frame(study).to_csv(out_dir / "trials.csv", index=False)
    genomes.to_csv(out_dir / "genomes.csv", index=False)
    pareto.to_csv(out_dir / "pareto.csv", index=False)

    verdicts = dict(zip(genomes["genome"], genomes["verdict"]))
    target = study.user_attrs.get("latency_target", "")
    tolerances = ", ".join(f"{o.label} within {front.selection.tolerance(o):.0%}" for o in front.selection.computed)
    hv_figure = go.Figure(go.Scatter(x=[n for n, _ in history], y=[v for _, v in history], mode="lines",
                                     line={"shape": "hv"}))
    hv_figure.update_layout(title=f"Hypervolume history of the genomes' mean top-1 ({reference.describe()})",
                            xaxis_title="trial", yaxis_title="hypervolume (share of the reference box)",
                            template="plotly_white", height=420)
    chosen = knee(front)
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    final_rows = _final_rows(front, tests)
    final_lines = [r["genome"] + (f" ({r['label']})" if r["label"] else "")
                   + f": validation {r['validation top-1']}; test {r['test top-1']}" for r in final_rows]
    table = {"index": False, "float_format": lambda v: f"{v:.3f}", "na_rep": ""}
    split = ("every top-1 figure is measured on the validation split, held out from the training images"
             + (f", except in the section “{FINAL_SECTION}”." if tests else "."))
    parts = [
        f"<h1>ULSAM placement search: {study.study_name}</h1>",
        f"<p><strong>{front.noise.describe()}</strong>; {split}</p>",
        f"<p><strong>{front.signal.verdict(front.noise)}</strong>. Means named as winners (the front's order, the knee, "
        "the picks) are shrunk toward the study's mean by that between-genome std (empirical Bayes), so the best of "
        "many noisy means does not carry its luck.</p>",
        f"<p>{len(trials)} trials ({complete} complete) over {len(front.stats)} genomes; front beyond seed noise: "
        f"{len(front.members)}; hypervolume of the mean top-1 {history[-1][1]:.4f}. "
        f"Knee: <code>{_named(chosen)}</code>.</p>",
        *(front_figure(front, verdicts, o, f"top-1 vs {o.label}" + (f" on {target}" if o.name == "latency" else ""))
          .to_html(full_html=False, include_plotlyjs=i == 0) for i, o in enumerate(front.selection.computed)),
        hv_figure.to_html(full_html=False, include_plotlyjs=False),
        "<h2>Pareto front beyond seed noise</h2><p>Every genome that no genome clearly dominates: at no worse cost "
        f"({tolerances}) and a mean top-1 higher by more than a simultaneous bound, t(1 - 0.05/m) standard errors with "
        "the pooled σ, m the genomes of no worse cost, so that a genome is wrongly called dominated with a chance of at "
        "most 5%. All genomes: <code>genomes.csv</code>.</p>",
        pareto.to_html(**table),
        "<h2>Picks</h2><p>What <code>python -m ulsam_nas.export --trial RULE</code> takes:</p><ul>"
        + "".join(f"<li><code>{rule}</code>: <code>{_named(s)}</code>, validation top-1 {front.estimate(s):.2f}% shrunk "
                  f"({_spread(s.scores)})</li>"
                  for rule, s in (("knee", chosen), ("max-top1", front.members[0]))) + "</ul>",
        "<h2>The paper's configurations</h2><ul>" + "".join(f"<li>{s.describe()}</li>" for s in statuses) + "</ul>",
    ]
    agreement = agreement_of(study)
    if agreement is not None:
        parts += ["<h2>One-shot scores against standalone training</h2><p>"
                  + "<br>".join(agreement.lines()) + "</p><p>Every genome trained standalone (the confirmed top of the "
                  "one-shot ranking and the paper configurations): its one-shot score, validation top-1 of its path in the "
                  "supernet with inherited weights, beside its standalone mean. The front, the picks and export use the "
                  "standalone values only.</p>", _oneshot_table(front, agreement).to_html(**table)]
    if tests:
        parts += [f"<h2>{FINAL_SECTION}</h2><p>The chosen genomes retrained on train+val with their seeds and "
                  "evaluated once on the test split, beside their validation figures from the search.</p>",
                  pd.DataFrame(final_rows).to_html(index=False)]
    html = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>ULSAM search report</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head><body>" + "\n".join(parts) + "</body></html>")
    (out_dir / "report.html").write_text(html, encoding="utf-8")
    files = [out_dir / name for name in ("report.html", "trials.csv", "genomes.csv", "pareto.csv")]
    return ReportSummary(len(front.members), history[-1][1], reference, chosen, _costs(front, chosen),
                         front.estimate(chosen), front.noise, front.signal.verdict(front.noise), [s.describe() for s in statuses], files, final_lines,
                         agreement.lines() if agreement is not None else [])


def main(argv: list[str] | None = None) -> int:
    from ..cli import ArgumentParser, fail
    from ..studies import StudyNotFound, load_study

    parser = ArgumentParser(prog="python -m ulsam_nas.report", description="Offline report of a search study.")
    parser.add_argument("--study", type=Path, required=True, help="study folder (as given to the search)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default <study>/report)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study, _ = load_study(args.study)
        summary = write_report(study, args.out or args.study / "report")
    except (StudyNotFound, ValueError) as error:
        fail(str(error))
    print(summary.text())
    return 0

