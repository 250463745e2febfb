"""The paper check: our cost change against vanilla next to the paper's printed figures."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from ..models.spaces import PaperConfig, PrintedFigure, SearchSpace
from . import count_cost


@dataclass(frozen=True)
class FigureCheck:
    """Our change against vanilla next to the paper's, for one printed figure.

    The paper prints each configuration as its (rounded) baseline plus the change, sometimes
    rounded and sometimes truncated to the printed digits (e.g. MV2 + 17:1: the text says
    +0.015M FLOPs, the table prints 300.01M). So ours matches when the paper's baseline plus
    our change, rounded *or* truncated to the printed digits, gives the printed figure.
    """

    ours: int  # our change against the vanilla model
    printed: PrintedFigure
    baseline: PrintedFigure

    @property
    def paper(self) -> Decimal:
        return self.printed.value - self.baseline.value

    @property
    def difference(self) -> Decimal:
        return self.ours - self.paper

    @property
    def within_rounding(self) -> bool:
        ours_printed = self.baseline.value + self.ours
        unit = self.printed.unit
        candidates = {(ours_printed / unit).quantize(Decimal(1), mode) * unit for mode in (ROUND_HALF_UP, ROUND_FLOOR)}
        return self.printed.value in candidates


@dataclass(frozen=True)
class PaperRow:
    space: str
    config: PaperConfig
    groups: int
    weights: FigureCheck  # params in the paper's convention: conv and linear weights
    macs: FigureCheck
    params: int  # our module's exact parameter count (official ULSAM variant)

    @property
    def ok(self) -> bool:
        return self.weights.within_rounding and self.macs.within_rounding


def paper_rows(space: SearchSpace) -> list[PaperRow]:
    """One row per ULSAM configuration of the paper in ``space``, checked against vanilla."""
    rows = []
    for config in space.paper:
        if config.is_vanilla:
            continue
        vanilla = space.vanilla(config.width_mult)
        if vanilla is None:
            continue
        groups = 4 if 4 in config.groups else config.groups[0]
        ours = count_cost(config.genome(groups))
        change = ours - count_cost(vanilla.genome(1))
        rows.append(PaperRow(
            space=space.name, config=config, groups=groups,
            weights=FigureCheck(change.weights, config.params, vanilla.params),
            macs=FigureCheck(change.macs, config.flops, vanilla.flops),
            params=ours.params,
        ))
    return rows


def _signed(value: Decimal | int, scale: float = 1e6, digits: int = 4) -> str:
    return f"{float(value) / scale:+.{digits}f}M"


def format_paper_report(rows: list[PaperRow]) -> str:
    header = (
        f"{'configuration':<26} {'g':>2} | {'params':>7} {'ours Δ':>10} {'paper Δ':>10} {'diff':>10} ok "
        f"| {'FLOPs':>8} {'ours Δ':>10} {'paper Δ':>10} {'diff':>10} ok | {'module params':>13}"
    )
    lines = [
        "Paper configurations against the vanilla model: our change next to the paper's "
        "(printed figure minus its printed baseline).",
        "params: conv + linear weights (the paper's count); FLOPs: multiply-accumulates at 224x224, 1000 classes.",
        "ok: the paper's baseline plus our change, rounded or truncated to the printed digits, gives the printed figure.",
        "",
        header,
        "-" * len(header),
    ]
    for row in rows:
        w, m = row.weights, row.macs
        lines.append(
            f"{row.config.label:<26} {row.groups:>2} | {w.printed.text:>7} {_signed(w.ours):>10} {_signed(w.paper):>10} "
            f"{_signed(w.difference):>10} {'✓' if w.within_rounding else '✗':>2} "
            f"| {m.printed.text:>8} {_signed(m.ours, digits=3):>10} {_signed(m.paper, digits=3):>10} "
            f"{_signed(m.difference, digits=3):>10} {'✓' if m.within_rounding else '✗':>2} | {row.params:>13,}"
        )
    notes = [f"  {row.config.label}: {row.config.note}" for row in rows if row.config.note]
    if notes:
        lines += ["", "Notes from the paper's tables:", *notes]
    failed = sum(not row.ok for row in rows)
    lines += ["", f"{len(rows) - failed} of {len(rows)} configurations within the paper's rounding."]
    return "\n".join(lines)
