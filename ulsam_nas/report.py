"""python -m ulsam_nas.report: the study's front as an offline HTML report, CSV tables and a summary.

    python -m ulsam_nas.report --study studies/mv2-synthetic [--out DIR]

Writes ``report.html`` (Plotly, with plotly.js embedded so it opens offline): top-1 against
MACs and against params with the front highlighted, every paper configuration marked and
labelled as the paper writes it, the vanilla backbone marked, the hypervolume history and the
Pareto table; ``trials.csv`` (every trial) and ``pareto.csv``. Prints a summary: front size,
hypervolume, the knee of the front, and where each paper configuration sits.

Hypervolume is computed on normalised objectives, all minimised: 1 - top1/100, MACs / MACs_ref,
params / params_ref, with the reference point (1, 1, 1), i.e. top-1 0%, and MACs and params
1.25 x those of the vanilla backbone (at its widest width in the space and the study's class
count). It is the share of that box the front dominates: comparable between studies of a space.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd

from .front import complete_trials, front_trials, paper_status, trial_row

REFERENCE_FACTOR = 1.25
RULES = ("knee", "max-top1", "max-top1 macs<=X", "max-top1 params<=X")
_CONSTRAINED = re.compile(
    r"^max-top1\s+(?:under\s+)?(?P<objective>macs|params)\s*<=\s*(?P<limit>[0-9.]+(?:e[0-9]+)?)\s*(?P<unit>[KMG]?)$",
    re.IGNORECASE,
)


# -- hypervolume ------------------------------------------------------------------------------


def hypervolume(points: list[tuple[float, float, float]], reference: tuple[float, float, float] = (1, 1, 1)) -> float:
    """Exact hypervolume of minimisation points in 3-D against ``reference`` (slicing along
    the third objective, a 2-D staircase per slice)."""
    inside = sorted({p for p in points if all(x < r for x, r in zip(p, reference))}, key=lambda p: p[2])
    volume = 0.0
    for i, (_, _, z) in enumerate(inside):
        next_z = inside[i + 1][2] if i + 1 < len(inside) else reference[2]
        if next_z > z:
            volume += _area([(p[0], p[1]) for p in inside[: i + 1]], reference[:2]) * (next_z - z)
    return volume


def _area(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    area, best_y = 0.0, reference[1]
    for x, y in sorted(points):
        if y < best_y:
            area += (reference[0] - x) * (best_y - y)
            best_y = y
    return area


@dataclass(frozen=True)
class Reference:
    macs: float
    params: float

    def normalise(self, values: list[float]) -> tuple[float, float, float]:
        top1, macs, params = values
        return (1 - top1 / 100, macs / self.macs, params / self.params)

    def describe(self) -> str:
        return (f"reference point: top-1 0%, {self.macs / 1e6:.2f}M MACs, {self.params / 1e6:.3f}M params "
                f"({REFERENCE_FACTOR} x the vanilla backbone)")


def reference_for(study: optuna.Study) -> Reference:
    from . import Genome, count_cost
    from .spaces import load_space

    try:
        space = load_space(study.user_attrs["space"])
    except (KeyError, ValueError):  # a custom space file that is not at hand: its backbone at width 1
        space = None
    backbone = space.backbone if space else study.user_attrs.get("backbone", "mv2")
    width = max(space.width_mults) if space else 1.0
    cost = count_cost(Genome(backbone, width_mult=width), num_classes=int(study.user_attrs.get("num_classes", 1000)))
    return Reference(REFERENCE_FACTOR * cost.macs, REFERENCE_FACTOR * cost.params)


def hypervolume_history(trials: list[optuna.trial.FrozenTrial], reference: Reference) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the front of COMPLETE trials up to it), in trial order."""
    history, front = [], []
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.state == optuna.trial.TrialState.COMPLETE:
            point = reference.normalise(trial.values)
            if not any(all(a <= b for a, b in zip(f, point)) for f in front):
                front = [f for f in front if not all(a <= b for a, b in zip(point, f))] + [point]
        history.append((trial.number, hypervolume(front)))
    return history


# -- choosing from the front ------------------------------------------------------------------


def knee(front: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial:
    """The front trial closest to the ideal point, each objective scaled to [0, 1] over the front."""
    columns = list(zip(*[t.values for t in front]))
    lows, highs = [min(c) for c in columns], [max(c) for c in columns]

    def distance(trial: optuna.trial.FrozenTrial) -> float:
        scaled = [(v - lo) / (hi - lo) if hi > lo else 0.0 for v, lo, hi in zip(trial.values, lows, highs)]
        shortfall = [1 - scaled[0], scaled[1], scaled[2]]  # 0 is ideal: top-1 high, costs low
        return math.sqrt(sum(x * x for x in shortfall))

    return min(front, key=lambda t: (distance(t), t.number))


def pick(study: optuna.Study, rule: str) -> optuna.trial.FrozenTrial:
    """A COMPLETE trial of ``study`` by ``rule``: ``knee``, ``max-top1``, or ``max-top1 macs<=X`` /
    ``max-top1 params<=X`` (X like 250e6 or 250M). ValueError if nothing qualifies."""
    front = front_trials(complete_trials(study))
    if not front:
        raise ValueError(f"study {study.study_name!r} has no complete trial to pick from")
    rule = rule.strip()
    if rule == "knee":
        return knee(front)
    if rule == "max-top1":
        return front[0]
    match = _CONSTRAINED.match(rule)
    if not match:
        raise ValueError(f"unknown rule {rule!r}; use one of: {', '.join(RULES)}")
    limit = float(match["limit"]) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[match["unit"].upper()]
    index = 1 if match["objective"].lower() == "macs" else 2
    feasible = [t for t in front if t.values[index] <= limit]
    if not feasible:
        raise ValueError(f"no complete trial has {match['objective']} <= {limit:g}")
    return feasible[0]


# -- the report ---------------------------------------------------------------------------------


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        values = t.values if t.state == optuna.trial.TrialState.COMPLETE else [None, None, None]
        rows.append({
            "trial": t.number, "state": t.state.name, "genome": t.user_attrs.get("genome", ""),
            "label": t.user_attrs.get("paper_label", ""), "top1": values[0], "macs": values[1], "params": values[2],
            "seconds": t.user_attrs.get("seconds"), "failure": t.user_attrs.get("failure") or t.user_attrs.get("infeasible", ""),
        })
    return pd.DataFrame(rows, columns=["trial", "state", "genome", "label", "top1", "macs", "params", "seconds", "failure"])


@dataclass
class ReportSummary:
    front_size: int
    hypervolume: float
    reference: Reference
    knee: optuna.trial.FrozenTrial
    paper_lines: list[str]
    files: list[Path]

    def text(self) -> str:
        knee_row = trial_row(self.knee)
        lines = [
            f"front: {self.front_size} architectures; hypervolume {self.hypervolume:.4f} ({self.reference.describe()})",
            f"knee: trial {self.knee.number} {knee_row['genome']} top-1 {knee_row['top1']:.2f}%, "
            f"{knee_row['macs_M']:.2f}M MACs, {knee_row['params_M']:.3f}M params",
        ]
        if self.paper_lines:
            lines += ["the paper's configurations:", *[f"  {line}" for line in self.paper_lines]]
        lines.append("wrote " + ", ".join(str(f) for f in self.files))
        return "\n".join(lines)


def _figure(front_ids: set[int], trials: list, reference: Reference, cost_index: int, title: str):
    import plotly.graph_objects as go

    axis = "MACs (M)" if cost_index == 1 else "params (M)"
    figure = go.Figure()
    others = [t for t in trials if t.number not in front_ids]
    front = sorted([t for t in trials if t.number in front_ids], key=lambda t: t.values[cost_index])

    def hover(t) -> str:
        label = t.user_attrs.get("paper_label", "")
        return f"trial {t.number}<br>{t.user_attrs.get('genome', '')}" + (f"<br>{label}" if label else "")

    # The front is three-dimensional: in each two-objective view its points need not form a
    # staircase, so they are marked rather than joined.
    figure.add_scatter(x=[t.values[cost_index] / 1e6 for t in others], y=[t.values[0] for t in others],
                       mode="markers", name="trials", marker={"color": "#9aa5b1", "size": 6},
                       text=[hover(t) for t in others], hoverinfo="text")
    figure.add_scatter(x=[t.values[cost_index] / 1e6 for t in front], y=[t.values[0] for t in front],
                       mode="markers", name="Pareto front (top-1, MACs, params)",
                       marker={"size": 10, "color": "#d64545"}, text=[hover(t) for t in front], hoverinfo="text")
    paper = [t for t in trials if t.user_attrs.get("paper_label")]
    vanilla = [t for t in paper if t.user_attrs.get("genome", "").endswith("()")]
    labelled = [t for t in paper if t not in vanilla]
    figure.add_scatter(x=[t.values[cost_index] / 1e6 for t in labelled], y=[t.values[0] for t in labelled],
                       mode="markers+text", name="paper configurations",
                       marker={"symbol": "diamond-open", "size": 11, "color": "#1f6feb", "line": {"width": 2}},
                       text=[_paper_label(t) for t in labelled], textposition="top center",
                       textfont={"size": 9}, hovertext=[hover(t) for t in labelled], hoverinfo="text")
    figure.add_scatter(x=[t.values[cost_index] / 1e6 for t in vanilla], y=[t.values[0] for t in vanilla],
                       mode="markers+text", name="vanilla backbone", text=[_paper_label(t) for t in vanilla],
                       textposition="bottom center", marker={"symbol": "star", "size": 15, "color": "#111"},
                       hoverinfo="text", hovertext=[hover(t) for t in vanilla])
    figure.update_layout(title=title, xaxis_title=axis, yaxis_title="top-1 (%)", template="plotly_white",
                         height=560, legend={"orientation": "h", "y": -0.15})
    return figure


def _paper_label(trial) -> str:
    """The paper's way of writing a configuration: "(13, 14, 16, 17) g=4", "vanilla"."""
    label = trial.user_attrs.get("paper_label", "")
    parts = label.split(" ", 1)
    text = parts[1] if len(parts) > 1 else label
    width, _, rest = text.partition(" ")
    return rest if width == "1.0" and rest else text


def write_report(study: optuna.Study, out_dir: Path) -> ReportSummary:
    """Write report.html, trials.csv and pareto.csv to ``out_dir``; ValueError without a
    complete trial."""
    import plotly.graph_objects as go

    trials = complete_trials(study)
    if not trials:
        raise ValueError(f"study {study.study_name!r} has no finished trial with results yet")
    out_dir.mkdir(parents=True, exist_ok=True)
    front = front_trials(trials)
    front_ids = {t.number for t in front}
    reference = reference_for(study)
    history = hypervolume_history(study.get_trials(deepcopy=False), reference)
    labels = [t.user_attrs["paper_label"] for t in study.get_trials(deepcopy=False) if t.user_attrs.get("paper_label")]
    statuses = [s for s in paper_status(study, list(dict.fromkeys(labels))) if s.trial is not None]

    pareto = pd.DataFrame([trial_row(t) for t in front])
    trials_frame(study).to_csv(out_dir / "trials.csv", index=False)
    pareto.to_csv(out_dir / "pareto.csv", index=False)

    hv_figure = go.Figure(go.Scatter(x=[n for n, _ in history], y=[v for _, v in history], mode="lines",
                                     line={"shape": "hv"}))
    hv_figure.update_layout(title=f"Hypervolume history ({reference.describe()})", xaxis_title="trial",
                            yaxis_title="hypervolume (share of the reference box)", template="plotly_white", height=420)
    chosen = knee(front)
    parts = [
        f"<h1>ULSAM placement search: {study.study_name}</h1>",
        f"<p>{len(study.trials)} trials, {len(trials)} complete; front of {len(front)}; hypervolume "
        f"{history[-1][1]:.4f}. Knee: trial {chosen.number} <code>{chosen.user_attrs.get('genome', '')}</code>.</p>",
        _figure(front_ids, trials, reference, 1, "top-1 vs MACs at 224 px").to_html(full_html=False, include_plotlyjs=True),
        _figure(front_ids, trials, reference, 2, "top-1 vs params").to_html(full_html=False, include_plotlyjs=False),
        hv_figure.to_html(full_html=False, include_plotlyjs=False),
        "<h2>Pareto front</h2>", pareto.to_html(index=False, float_format=lambda v: f"{v:.3f}"),
        "<h2>Picks</h2><p>What <code>python -m ulsam_nas.export --trial RULE</code> takes:</p><ul>"
        + "".join(f"<li><code>{rule}</code>: trial {t.number} <code>{t.user_attrs.get('genome', '')}</code>, "
                  f"top-1 {t.values[0]:.2f}%</li>" for rule, t in (("knee", chosen), ("max-top1", front[0]))) + "</ul>",
        "<h2>The paper's configurations</h2><ul>" + "".join(f"<li>{s.describe()}</li>" for s in statuses) + "</ul>",
    ]
    html = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>ULSAM search report</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head><body>" + "\n".join(parts) + "</body></html>")
    (out_dir / "report.html").write_text(html, encoding="utf-8")
    files = [out_dir / "report.html", out_dir / "trials.csv", out_dir / "pareto.csv"]
    return ReportSummary(len(front), history[-1][1], reference, chosen, [s.describe() for s in statuses], files)


def main(argv: list[str] | None = None) -> int:
    from .cli import ArgumentParser, fail
    from .studies import StudyNotFound, load_study

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


if __name__ == "__main__":
    sys.exit(main())
