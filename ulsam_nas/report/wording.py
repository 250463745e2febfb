"""How the report words a genome, shared by its figures (``figures.py``), tables (``tables.py``)
and summary (``writer.py``): its name with its paper label, its top-1 over seeds as mean ± std,
and its costs as each objective shows them.
"""

from __future__ import annotations

import statistics

from ..analysis.front import Front, GenomeStats


def seed_spread(values: list[float] | tuple[float, ...]) -> str:
    """Mean ± sample std over seeds, e.g. "43.00 ± 1.41% over 2 seeds"."""
    std = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.2f}{std}% over {len(values)} seed{'s' if len(values) > 1 else ''}"


def genome_name(stats: GenomeStats) -> str:
    """The genome, with its paper label when it is a paper configuration."""
    return stats.genome + (f" ({stats.label})" if stats.label else "")


def costs_text(front: Front, stats: GenomeStats) -> str:
    """E.g. "268.59M MACs, 2.235M params"."""
    return ", ".join(o.show(v) for o, v in zip(front.selection.computed, stats.costs))
