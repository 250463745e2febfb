"""What a calibration says: the summary printed on the console (the reference, a row per
candidate with the yardsticks its τ is read against, the verdict), and the files it writes into
the study folder, ``calibration.json`` and an offline ``calibration.html`` (τ and ρ against the
cost of a training, with their intervals, and the table), its text escaped (``report/escaping.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..report.escaping import fill, plotly_text
from .figures import SEARCH_TRAININGS, Calibration, FidelityFigures


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
            name=name, text=[plotly_text(f.fidelity) for f in rows], textposition="top center",
            marker={"symbol": symbol, "size": 10},
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
    figure.update_layout(title=plotly_text(f"Rank agreement with {result.reference.fidelity} against cost "
                                           "(90% bootstrap intervals)"),
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
    table = (pd.DataFrame(rows).to_html(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-")  # cells escaped
             + "".join(fill("<p>{line}</p>", line=line) for line in reference_lines(result.reference))
             + "".join(fill("<p><b>{line}</b></p>", line=line) for line in verdict_lines(result)))
    html_path.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Fidelity calibration</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head><body>"
        + fill("<h1>Fidelity calibration: {title}</h1>", title=title)
        + "<p>Top-1 on the validation split; every figure is over the panel's genomes, means over seeds.</p>"
        + figure.to_html(full_html=False, include_plotlyjs=True)
        + table + "</body></html>", encoding="utf-8")
    return [json_path, html_path]
