"""How far a cheap ranking held: Kendall τ and Spearman ρ between one-shot scores and the
standalone means of the same genomes, with bootstrap 90% intervals (``calibrate``'s machinery).
A one-shot search computes it (``oneshot.py``) and stores it on its study; the search's summary
and the report show it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna

from .calibrate import bootstrap_interval, kendall_tau, spearman_rho


@dataclass(frozen=True)
class RankAgreement:
    """How the one-shot scores rank the genomes trained standalone, against their means."""

    pairs: dict[str, tuple[float, float]]  # genome -> (one-shot score, standalone mean)
    tau: float | None
    tau_interval: tuple[float, float] | None
    rho: float | None
    rho_interval: tuple[float, float] | None

    @classmethod
    def of(cls, pairs: dict[str, tuple[float, float]]) -> RankAgreement:
        if len(pairs) < 3:
            return cls(pairs, None, None, None, None)
        x, y = [p[0] for p in pairs.values()], [p[1] for p in pairs.values()]
        tau, rho = kendall_tau(x, y), spearman_rho(x, y)
        if math.isnan(tau):  # constant scores or means: no ranking to compare
            return cls(pairs, None, None, None, None)
        return cls(pairs, tau, bootstrap_interval(kendall_tau, x, y), rho, bootstrap_interval(spearman_rho, x, y))

    @property
    def includes_zero(self) -> bool:
        return self.tau_interval is None or self.tau_interval[0] <= 0 <= self.tau_interval[1]

    def lines(self) -> list[str]:
        if self.tau is None:
            return [f"one-shot ranking: not measurable on {len(self.pairs)} genome(s) trained standalone "
                    f"(needs 3 with different scores and means)"]
        lines = [f"one-shot ranking against standalone means over {len(self.pairs)} genomes trained: Kendall τ "
                 f"{self.tau:+.2f} [{self.tau_interval[0]:+.2f}, {self.tau_interval[1]:+.2f}], Spearman ρ "
                 f"{self.rho:+.2f} [{self.rho_interval[0]:+.2f}, {self.rho_interval[1]:+.2f}] (90% bootstrap intervals)"]
        if self.includes_zero:
            lines.append("warning: the τ interval includes 0: on this evidence the one-shot scores rank no better than "
                         "chance, so only the confirmed (standalone) values mean anything")
        return lines

    def to_json(self) -> dict:
        return {"pairs": {g: list(p) for g, p in self.pairs.items()}, "tau": self.tau, "tau_interval": self.tau_interval,
                "rho": self.rho, "rho_interval": self.rho_interval}


def agreement_of(study: optuna.Study) -> RankAgreement | None:
    """The rank agreement a one-shot search stored on its study; None for a standalone search."""
    stored = study.user_attrs.get("oneshot")
    if not stored:
        return None
    tau_interval, rho_interval = (tuple(v) if v else None for v in (stored["tau_interval"], stored["rho_interval"]))
    return RankAgreement({g: tuple(p) for g, p in stored["pairs"].items()}, stored["tau"], tau_interval, stored["rho"],
                         rho_interval)

