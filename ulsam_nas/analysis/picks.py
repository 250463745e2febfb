"""Choosing from the front beyond seed noise (``front.py``): the knee, the pick rules (``knee``,
``max-top1``, ``max-top1 NAME<=X`` on one of the study's costs) and, for export, the genome a
``--trial`` names in a study, a rule or a trial number, with the figures it was chosen by. A rule
compares shrunk mean top-1 (``Front.estimate``), so a genome is not chosen for its seed luck;
the report lists the picks, the search's ``--final`` retrains the knee first, and
``python -m ulsam_nas.export --trial`` exports one.
"""

from __future__ import annotations

import math
import re

import optuna

from ..models.genome import Genome
from .front import Front, GenomeStats, trial_seed
from .objectives import Selection, parse_limit

RULES = ("knee", "max-top1", "max-top1 NAME<=X (e.g. macs<=250M, params<=2.5M, latency<=4ms)")
_CONSTRAINED = re.compile(r"^max-(?P<metric>[a-z0-9_]+)(?:\s+(?:under\s+)?(?P<objective>[a-z0-9_]+)\s*<=\s*(?P<limit>.+))?$",
                          re.IGNORECASE)


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


def pick_genome(study: optuna.Study, choice: str) -> tuple[Genome, dict]:
    """The genome ``choice`` names in the study, and what it was chosen by: its first ``trial``,
    ``paper_label`` and ``objectives``. A rule (``pick``) gives the genome's validation top-1
    mean, std, shrunk mean and seed count beside its costs, since one seed's figure is not what
    the front was judged on; a trial number gives that one COMPLETE training's values and its
    ``seed``. ValueError for a trial that does not exist or did not complete, or a rule that
    picks nothing."""
    selection = Selection.of_study(study)
    if choice.isdigit():
        number = int(choice)
        if number >= len(study.trials):
            raise ValueError(f"study {study.study_name!r} has no trial {number} (it has {len(study.trials)})")
        trial = study.trials[number]
        if trial.state != optuna.trial.TrialState.COMPLETE:
            raise ValueError(f"trial {number} is {trial.state.name}, not COMPLETE: only trained trials can be exported")
        return Genome.from_string(trial.user_attrs["genome"]), {
            "trial": number, "seed": trial_seed(trial), "objectives": dict(zip(selection.names, trial.values)),
            "paper_label": trial.user_attrs.get("paper_label", "")}
    picked = pick(study, choice)
    trained = selection.trained.name
    costs = dict(zip((o.name for o in selection.computed), picked.costs))
    shrunk = Front.of_study(study).estimate(picked)  # what the pick was chosen by, free of its seed luck
    return Genome.from_string(picked.genome), {
        "trial": picked.trial, "paper_label": picked.label,
        "objectives": {trained: picked.mean, f"{trained}_std": picked.std, f"{trained}_shrunk": shrunk,
                       "seeds": picked.n, **costs}}
