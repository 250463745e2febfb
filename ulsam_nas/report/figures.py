"""The report's Plotly figures: mean top-1 of every genome against one cost, with 95% confidence
intervals of the mean, the front beyond seed noise highlighted, the paper configurations (labelled
as the paper writes them), the vanilla backbone and the knee marked and labelled (``front_figure``,
also what ``publish.py`` stores for optuna-dashboard); and the hypervolume history (``hypervolume_figure``).
Plotly is imported only when a figure is drawn. plotly.js reads tags in a figure's text, so every
text from the study goes in through ``escaping.plotly_text``.
"""

from __future__ import annotations

from ..analysis.front import Front, GenomeStats
from ..analysis.objectives import Objective
from ..analysis.picks import knee
from .escaping import plotly_text
from .history import Reference
from .wording import costs_text, genome_name, seed_spread


def _paper_label(label: str) -> str:
    """The paper's way of writing a configuration: "(13, 14, 16, 17) g=4", "vanilla"."""
    parts = label.split(" ", 1)
    text = parts[1] if len(parts) > 1 else label
    width, _, rest = text.partition(" ")
    return rest if width == "1.0" and rest else text


LABEL_PITCH_PX = 18
"""Vertical pixels per label in the column of labels: 10 px text with room to spare."""
LABEL_BAND = 0.5
"""The x axis runs this share of the genomes' span beyond the costliest genome: the band where the labels stand."""


def _labels(front: Front, paper: bool) -> list[tuple[GenomeStats, str]]:
    """The points named on the plot: the paper configurations as the paper writes them (all of
    them with ``paper``, else the vanilla backbone alone) and the knee; every other genome is named
    in its hover text only."""
    named = {s.genome: [_paper_label(s.label)] for s in front.stats if s.label and (paper or s.genome.endswith("()"))}
    if front.members:
        named.setdefault(knee(front).genome, []).append("knee")
    by_genome = front.by_genome()
    return [(by_genome[genome], " · ".join(parts)) for genome, parts in named.items()]


def _spaced(values: list[float], low: float, high: float) -> list[float]:
    """One label height per value, in the values' order, spread evenly over [low, high]."""
    step = (high - low) / len(values)
    order = sorted(range(len(values)), key=lambda i: values[i])
    placed = [0.0] * len(values)
    for rank, i in enumerate(order):
        placed[i] = low + (rank + 0.5) * step
    return placed


def front_figure(front: Front, verdicts: dict[str, str], objective: Objective, title: str, paper_labels: bool = True):
    """Mean top-1 of every genome against one cost, with the 95% CI of the mean as error bars.

    Only the paper configurations, the vanilla backbone and the knee are labelled on the plot, in a
    column to the right of the points, in the order of their top-1, each with an arrow to its point,
    and the figure grows with them (``LABEL_PITCH_PX`` each), so that no two labels overlap however
    many genomes crowd the front (tests/test_figures.py measures the drawn labels in Chromium).
    Without ``paper_labels`` (the dashboard's box has a height of its own, too small for 30 labels)
    only the vanilla backbone and the knee are labelled, the paper configurations marked. Everything
    else (genome strings, seeds, intervals, verdicts) is in the hover text."""
    import plotly.graph_objects as go

    members = {m.genome for m in front.members}
    index = front.selection.computed.index(objective)
    figure = go.Figure()

    def x_of(s: GenomeStats) -> float:
        return s.costs[index] / objective.scale

    def hover(s: GenomeStats) -> str:
        interval = f"95% CI ± {s.ci95(front.noise):.2f}" if front.noise.measured else "σ not measured"
        lines = [genome_name(s), f"validation top-1 {seed_spread(s.scores)} ({interval}; shrunk {front.estimate(s):.2f})",
                 costs_text(front, s), verdicts[s.genome]]
        return "<br>".join(map(plotly_text, lines))

    def add(stats: list[GenomeStats], **style) -> None:
        figure.add_scatter(x=[x_of(s) for s in stats], y=[s.mean for s in stats],
                           hovertext=[hover(s) for s in stats], hoverinfo="text", **style)

    # The front has as many dimensions as objectives: in each two-objective view its points need not form a
    # staircase, so they are marked rather than joined.
    for on_front, name, color, size in ((False, "genomes", "#9aa5b1", 6), (True, "front beyond seed noise", "#d64545", 10)):
        stats = [s for s in front.stats if (s.genome in members) == on_front]
        add(stats, mode="markers", name=name, marker={"size": size, "color": color},
            error_y={"type": "data", "array": [s.ci95(front.noise) or 0.0 for s in stats], "color": color,
                     "thickness": 1.2, "width": 3})
    paper = [s for s in front.stats if s.label]
    vanilla = [s for s in paper if s.genome.endswith("()")]
    add([s for s in paper if s not in vanilla], mode="markers", name="paper configurations",
        marker={"symbol": "diamond-open", "size": 13, "color": "#1f6feb", "line": {"width": 2}})
    add(vanilla, mode="markers", name="vanilla backbone", marker={"symbol": "star", "size": 15, "color": "#111"})
    if front.members:
        add([knee(front)], mode="markers", name="knee",
            marker={"symbol": "circle-open", "size": 20, "color": "#2da44e", "line": {"width": 3}})

    labels = _labels(front, paper_labels)
    xs = [x_of(s) for s in front.stats] or [0.0]
    ys = [s.mean + (s.ci95(front.noise) or 0.0) * sign for s in front.stats for sign in (-1, 1)] or [0.0]
    x_low, x_high = min(xs), max(xs)
    x_span = (x_high - x_low) or abs(x_high) or 1.0
    y_low, y_high = min(ys), max(ys)
    y_pad = 0.05 * ((y_high - y_low) or 1.0)
    y_range = [y_low - y_pad, y_high + y_pad]
    heights = _spaced([s.mean for s, _ in labels], *y_range) if labels else []
    for (s, text), height in zip(labels, heights):
        figure.add_annotation(x=x_of(s), y=s.mean, ax=x_high + 0.06 * x_span, ay=height, axref="x", ayref="y",
                              text=plotly_text(text), xanchor="left", showarrow=True, arrowhead=0, arrowwidth=1,
                              arrowcolor="#8c959f", font={"size": 10}, hovertext=hover(s))
    figure.update_layout(
        title=plotly_text(title) + "<br><sub>one point per genome at its mean validation top-1; error bars: 95% CI of the "
                                   "mean over seeds; genome, seeds and verdict in the hover text</sub>",
        xaxis_title=plotly_text(f"{objective.label} ({objective.unit.strip() or objective.name})"),
        xaxis_range=[x_low - 0.04 * x_span, x_high + LABEL_BAND * x_span], yaxis_range=y_range,
        yaxis_title="validation top-1 (%), mean over seeds",
        template="plotly_white", height=max(600, 260 + LABEL_PITCH_PX * len(labels)),
        legend={"orientation": "h", "y": -0.15})
    return figure


def hypervolume_figure(history: list[tuple[int, float]], reference: Reference):
    """The hypervolume of the genomes' mean points after each trial (``history.hypervolume_history``)."""
    import plotly.graph_objects as go

    figure = go.Figure(go.Scatter(x=[n for n, _ in history], y=[v for _, v in history], mode="lines",
                                  line={"shape": "hv"}))
    figure.update_layout(title=plotly_text(f"Hypervolume history of the genomes' mean top-1 ({reference.describe()})"),
                         xaxis_title="trial", yaxis_title="hypervolume (share of the reference box)",
                         template="plotly_white", height=420)
    return figure
