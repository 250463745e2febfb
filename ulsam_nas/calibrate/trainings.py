"""The calibration study's trainings: one Optuna trial per (fidelity, genome, seed). Which ones a
run still has to train (``plan``: a killed run resumes without retraining what finished), how an
``oneshot:FIDELITY`` candidate scores the panel with a supernet instead, and what the COMPLETE
trials say per fidelity (``collect``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..data import DataSpec
from ..models.genome import Genome
from ..models.spaces import SearchSpace
from ..train.fidelity import parse_fidelity

ONESHOT = "oneshot:"


def candidate_name(name: str, backbone: str) -> str:
    """A fidelity's canonical name; ``oneshot:FIDELITY`` keeps its prefix."""
    if name.startswith(ONESHOT):
        return ONESHOT + parse_fidelity(name.removeprefix(ONESHOT), backbone).name
    return parse_fidelity(name, backbone).name


def score_panel_oneshot(study: optuna.Study, candidate: str, panel: list[Genome], seeds: list[int], space: SearchSpace,
                        data: DataSpec, num_classes: int, val_fraction: float, study_dir: Path) -> None:
    """The ``oneshot:FIDELITY`` candidate: per seed, a supernet trained at FIDELITY (in this
    process, checkpointed under ``study_dir``) scores every panel genome, recorded as a trial
    like a training's. A genome's ``seconds`` is its share of the supernet training plus its
    own scoring: what a one-shot search pays per genome of a panel this size."""
    from ..data.cache import cache_key
    from ..search.oneshot import SUPERNET_EPOCH_FACTOR
    from ..train.supernet import PathScorer, train_supernet

    fidelity = parse_fidelity(candidate.removeprefix(ONESHOT), space.backbone)
    done = {(t.user_attrs.get("genome"), t.user_attrs.get("seed"))
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("fidelity") == candidate}
    for seed in seeds:
        todo = [g for g in panel if (str(g), seed) not in done]
        if not todo:
            continue
        print(f"{candidate}: training the supernet with seed {seed}, then scoring {len(todo)} genomes", file=sys.stderr)
        started = time.time()
        supernet = train_supernet(space, data, fidelity, num_classes, seed,
                                  study_dir / "supernet" / f"{cache_key(candidate)}-{seed}",
                                  epochs=SUPERNET_EPOCH_FACTOR * fidelity.epochs, val_fraction=val_fraction,
                                  root=study_dir)
        share = (time.time() - started) / len(panel)
        scorer = PathScorer(supernet, data, val_fraction)
        for genome in todo:
            tick = time.time()
            score = scorer(genome)
            trial = study.ask()
            for name, value in {"fidelity": candidate, "genome": str(genome), "seed": seed, "dataset": str(data),
                                "seconds": share + time.time() - tick}.items():
                trial.set_user_attr(name, value)
            study.tell(trial, [score])


def plan(study: optuna.Study, fidelities: list[str], panel: list[Genome], seeds: list[int]) -> list[tuple[str, str, int]]:
    """(fidelity, genome, seed) trainings the study does not hold as COMPLETE yet, fidelity by
    fidelity in the order given."""
    done = {(t.user_attrs.get("fidelity"), t.user_attrs.get("genome"), t.user_attrs.get("seed"))
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    return [(f, str(g), s) for f in fidelities for g in panel for s in seeds if (f, str(g), s) not in done]


def collect(study: optuna.Study) -> dict[str, dict[str, Any]]:
    """fidelity -> {"runs": genome -> [top-1 per seed, in seed order], "seconds": [...]} from COMPLETE trials."""
    out: dict[str, dict[str, Any]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        entry = out.setdefault(trial.user_attrs["fidelity"], {"runs": {}, "seconds": []})
        entry["runs"].setdefault(trial.user_attrs["genome"], []).append((trial.user_attrs["seed"], trial.values[0]))
        if trial.user_attrs.get("seconds") is not None:
            entry["seconds"].append(float(trial.user_attrs["seconds"]))
    for entry in out.values():
        entry["runs"] = {g: [value for _, value in sorted(runs)] for g, runs in entry["runs"].items()}
    return out
