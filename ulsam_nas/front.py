"""The accuracy vs MACs/params Pareto front of a study, and where the paper's configurations sit."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
import pandas as pd

OBJECTIVES = ("top1", "macs", "params")
DIRECTIONS = ("maximize", "minimize", "minimize")


def dominates(a: list[float], b: list[float]) -> bool:
    """Whether objective values ``a`` Pareto-dominate ``b`` (top1 up, MACs and params down)."""
    signs = [1 if d == "maximize" else -1 for d in DIRECTIONS]
    better_or_equal = all(s * x >= s * y for s, x, y in zip(signs, a, b))
    return better_or_equal and any(s * x > s * y for s, x, y in zip(signs, a, b))


def complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def front_trials(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The non-dominated trials, best top-1 first (one per distinct genome)."""
    front, seen = [], set()
    for trial in sorted(trials, key=lambda t: (-t.values[0], t.values[1], t.number)):
        genome = trial.user_attrs.get("genome")
        if genome in seen or any(dominates(other.values, trial.values) for other in trials):
            continue
        seen.add(genome)
        front.append(trial)
    return front


def trial_row(trial: optuna.trial.FrozenTrial) -> dict:
    return {
        "trial": trial.number, "genome": trial.user_attrs.get("genome", ""),
        "top1": trial.values[0], "macs_M": trial.values[1] / 1e6, "params_M": trial.values[2] / 1e6,
        "paper_label": trial.user_attrs.get("paper_label", ""),
    }


def front_table(study: optuna.Study) -> pd.DataFrame:
    rows = [trial_row(t) for t in front_trials(complete_trials(study))]
    return pd.DataFrame(rows, columns=["trial", "genome", "top1", "macs_M", "params_M", "paper_label"])


@dataclass(frozen=True)
class PaperStatus:
    label: str
    trial: int | None  # the study's trial of this configuration; None if it never completed
    dominated_by: int | None  # a front trial that dominates it; None if it is on the front

    def describe(self) -> str:
        if self.trial is None:
            return f"{self.label}: not trained to completion in this study"
        if self.dominated_by is None:
            return f"{self.label}: on the front (trial {self.trial})"
        return f"{self.label}: dominated by trial {self.dominated_by} (trial {self.trial})"


def paper_status(study: optuna.Study, labels: list[str]) -> list[PaperStatus]:
    """For each paper configuration label, its trial and whether the front contains it."""
    trials = complete_trials(study)
    front = front_trials(trials)
    by_label = {t.user_attrs["paper_label"]: t for t in trials if t.user_attrs.get("paper_label")}
    statuses = []
    for label in labels:
        trial = by_label.get(label)
        if trial is None:
            statuses.append(PaperStatus(label, None, None))
            continue
        dominator = next((f for f in front if dominates(f.values, trial.values)), None)
        statuses.append(PaperStatus(label, trial.number, None if dominator is None else dominator.number))
    return statuses
