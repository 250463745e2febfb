"""The hypervolume of a study's genome means and its history, trial by trial. Hypervolume is
computed on normalised objectives, all minimised, in as many dimensions as the study has
objectives: 1 - top1/100, and each cost divided by its reference, 1.25 x the cost of the vanilla
backbone (at its widest width in the space and the study's class count), so the reference point
is all ones (``Reference``). It is the share of that box the genomes' mean points dominate:
comparable between studies of a space with the same objectives.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import optuna

from ..analysis.front import genome_stats
from ..analysis.hypervolume import hypervolume
from ..analysis.objectives import REFERENCE_FACTOR, Context, Selection
from ..analysis.pareto import dominates, nondominated
from ..studies import study_num_classes


VOLUMES_4D = 25  # volumes a history over four objectives computes (module docstring)


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
    context = Context(space, study_num_classes(study))
    return Reference(selection, selection.reference_point(context))


def hypervolume_history(trials: list[optuna.trial.FrozenTrial], reference: Reference) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the genomes' mean points as of that trial), in trial order.

    A COMPLETE trial moves one genome's mean, so the front of means is updated, not rebuilt, and
    its volume is computed again only when the front changed: the work grows about linearly with
    the trials (``tests/test_report.py`` bounds it). When a front genome's mean falls, the points
    it alone covered (those it dominated) are the only ones that may come back.

    With four objectives the volume is computed at ``VOLUMES_4D`` trials at most, evenly spaced,
    the last one included, and carried forward between them: each costs up to 0.12 s exactly, or
    2 s estimated over a front of 5,000 genomes (``hypervolume.is_estimated``)."""
    by_genome: dict[str, list[optuna.trial.FrozenTrial]] = {}
    points: dict[str, tuple[float, ...]] = {}
    front: dict[str, tuple[float, ...]] = {}
    history, volume = [], 0.0
    selection, ones = reference.selection, (1.0,) * len(reference.selection.objectives)
    ordered = sorted(trials, key=lambda t: t.number)
    every = len(ones) <= 3 or len(ordered) <= VOLUMES_4D
    measured_at = {ordered[round(i * (len(ordered) - 1) / (VOLUMES_4D - 1))].number for i in range(VOLUMES_4D)} \
        if not every else set()
    changed = False  # the front moved since its volume was last computed
    for trial in ordered:
        genome = trial.user_attrs.get("genome")
        if trial.state == optuna.trial.TrialState.COMPLETE and genome is not None:
            by_genome.setdefault(genome, []).append(trial)
            old = points.get(genome)
            stats = genome_stats(by_genome[genome], selection)[0]
            point = points[genome] = reference.normalise(selection.values(stats.mean, stats.costs))
            if genome in front and any(p > o for p, o in zip(point, old)):
                uncovered = {g: p for g, p in points.items() if g not in front and dominates(old, p)}
                front = nondominated({**{g: f for g, f in front.items() if g != genome}, genome: point, **uncovered})
                changed = True
            elif genome in front or not any(dominates(f, point) for f in front.values()):
                front = {g: f for g, f in front.items() if g != genome and not dominates(point, f)}
                front[genome] = point
                changed = True
            # else a dominated mean moved: the front is as it was
        if changed and (every or trial.number in measured_at):
            volume, changed = hypervolume(front.values(), ones), False
        history.append((trial.number, volume))
    return history
