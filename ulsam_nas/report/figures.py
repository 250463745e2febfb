"""The report's Plotly figures: mean top-1 of every genome against one cost, with 95% confidence
intervals of the mean, the front beyond seed noise highlighted and the paper configurations and
the vanilla backbone marked and labelled as the paper writes them (``front_figure``, also what
``publish.py`` stores for optuna-dashboard); and the hypervolume history (``hypervolume_figure``).
Plotly is imported only when a figure is drawn. plotly.js reads tags in a figure's text, so every
text from the study goes in through ``escaping.plotly_text``.
"""

from __future__ import annotations

from ..analysis.front import Front, GenomeStats
from ..analysis.objectives import Objective
from .escaping import plotly_text
from .history import Reference
from .wording import costs_text, genome_name, seed_spread


def _paper_label(label: str) -> str:
    """The paper's way of writing a configuration: "(13, 14, 16, 17) g=4", "vanilla"."""
    parts = label.split(" ", 1)
    text = parts[1] if len(parts) > 1 else label
    width, _, rest = text.partition(" ")
    return rest if width == "1.0" and rest else text


def front_figure(front: Front, verdicts: dict[str, str], objective: Objective, title: str):
    """Mean top-1 of every genome against one cost, with the 95% CI of the mean as error bars."""
    import plotly.graph_objects as go

    members = {m.genome for m in front.members}
    index = front.selection.computed.index(objective)
    figure = go.Figure()

    def hover(s: GenomeStats) -> str:
        interval = f"95% CI ± {s.ci95(front.noise):.2f}" if front.noise.measured else "σ not measured"
        lines = [genome_name(s), f"validation top-1 {seed_spread(s.scores)} ({interval}; shrunk {front.estimate(s):.2f})",
                 costs_text(front, s), verdicts[s.genome]]
        return "<br>".join(map(plotly_text, lines))

    def add(stats: list[GenomeStats], **style) -> None:
        figure.add_scatter(x=[s.costs[index] / objective.scale for s in stats], y=[s.mean for s in stats],
                           hovertext=[hover(s) for s in stats], hoverinfo="text", **style)

    # The front has as many dimensions as objectives: in each two-objective view its points need not form a
    # staircase, so they are marked rather than joined. Seed counts above one are written beside
    # the points (mostly front genomes: repeats go to contenders).
    for on_front, name, color, size in ((False, "genomes", "#9aa5b1", 6), (True, "front beyond seed noise", "#d64545", 10)):
        stats = [s for s in front.stats if (s.genome in members) == on_front]
        add(stats, mode="markers+text", name=name, marker={"size": size, "color": color},
            error_y={"type": "data", "array": [s.ci95(front.noise) or 0.0 for s in stats], "color": color,
                     "thickness": 1.2, "width": 3},
            text=[f"n={s.n}" if s.n > 1 else "" for s in stats], textposition="middle right",
            textfont={"size": 9, "color": color})
    paper = [s for s in front.stats if s.label]
    vanilla = [s for s in paper if s.genome.endswith("()")]
    labelled = [s for s in paper if s not in vanilla]
    add(labelled, mode="markers+text", name="paper configurations", text=[plotly_text(_paper_label(s.label)) for s in labelled],
        marker={"symbol": "diamond-open", "size": 13, "color": "#1f6feb", "line": {"width": 2}},
        textposition="top left", textfont={"size": 9})
    add(vanilla, mode="markers+text", name="vanilla backbone", text=[plotly_text(_paper_label(s.label)) for s in vanilla],
        textposition="bottom center", marker={"symbol": "star", "size": 15, "color": "#111"})
    figure.update_layout(
        title=plotly_text(title) + "<br><sub>one point per genome at its mean validation top-1; error bars: 95% CI of the "
                                   "mean over seeds; n=seeds where more than one</sub>",
        xaxis_title=plotly_text(f"{objective.label} ({objective.unit.strip() or objective.name})"),
        yaxis_title="validation top-1 (%), mean over seeds",
        template="plotly_white", height=600, legend={"orientation": "h", "y": -0.15})
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
