"""One schema for what the product reads from a study: every study attribute, every trial
attribute and every trial value, checked where a command opens the study (``check_study``), before
anything is computed or written from it.

A study folder may come from someone else, and its SQLite file holds whatever they put there. A
crafted value (``final_test = "abc"``, a seed ``[1]``, a genome ``123``, a top-1 of ``inf`` or
``1e308``, a value set NULL in SQL, a genome ``mv2_w64.0()`` whose model would take gigabytes) is
refused here with ``AttributeRefused``, a ValueError whose one line names the attribute and the
trial, so that the commands say it in one line, exit 2, with nothing written; not met later as a
traceback in the middle of a report after three CSVs were written. Non-finite and out-of-range
numbers are refused, not computed with.

Attributes the product does not read are not checked (a user may tag a study); the ones it reads
are listed in ``STUDY_ATTRIBUTES`` and ``TRIAL_ATTRIBUTES``, with computed objectives' names
(``macs``, ``params``, ``latency``) as trial attributes too; costs are finite and from 0 to
``MAX_COST``, top-1 from 0 to 100. Structured attributes the product parses with its own readers
(``objective_specs``, ``cost_tolerance`` through ``Selection.of_study``, ``oneshot``,
``latency_target_key``) are checked by running those readers.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable
from typing import Any

import optuna

from .studies import MAX_CLASSES

MAX_COST = 1e15  # no computed cost comes near (mv2 at width 1.4 and 100,000 classes: ~2e8 params, ~6e8 MACs);
# the statistics square values, and float64 squares overflow past 1e154
MAX_TEXT = 1 << 20  # characters in a label, failure text or name: a report grows linearly with it, but not without end


class AttributeRefused(ValueError):
    """A study attribute, trial attribute or value the product reads does not fit its schema."""


def _shown(value: Any) -> str:
    return reprlib.repr(value)


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected text, got {_shown(value)}"
    if len(value) > MAX_TEXT:
        return f"expected at most {MAX_TEXT:,} characters, got {len(value):,}"
    return None


def _whole(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"expected a whole number from {low} to {high}, got {_shown(value)}"
        return None
    return check


def _optional_whole(low: int, high: int) -> Callable[[Any], str | None]:
    whole = _whole(low, high)
    return lambda value: None if value is None else whole(value)


def _number(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            return f"expected a finite number from {low:g} to {high:g}, got {_shown(value)}"
        return None
    return check


def _final_test(value: Any) -> str | None:
    """``{genome: {seed: {"top1": %, "top5": %}}}`` as the search's ``--final`` stores it."""
    if not isinstance(value, dict):
        return f"expected a table genome -> seed -> top-1 and top-5, got {_shown(value)}"
    percent = _number(0.0, 100.0)
    for genome, by_seed in value.items():
        problem = _genome(genome)
        if problem:
            return f"genome {_shown(genome)}: {problem}"
        if not isinstance(by_seed, dict):
            return f"{genome}: expected a table seed -> results, got {_shown(by_seed)}"
        for seed, result in by_seed.items():
            if not (isinstance(seed, str) and seed.isdigit() and len(seed) <= 10) or not isinstance(result, dict):
                return f"{genome}: expected a seed's results, got {_shown(seed)}: {_shown(result)}"
            for metric in ("top1", "top5"):
                problem = percent(result.get(metric))
                if problem:
                    return f"{genome} seed {seed} {metric}: {problem}"
    return None


def _objective_specs(value: Any) -> str | None:
    """The stored objectives, read by ``objectives.stored_objectives`` (its message names the field)."""
    from .analysis.objectives import stored_objectives

    try:
        stored_objectives(value)
    except ValueError as error:
        return str(error)
    return None


def _oneshot(value: Any) -> str | None:
    """What a one-shot search stores: the rank agreement of its one-shot scores with standalone
    means, read back by ``agreement_from_json``, every number in it finite."""
    from .analysis.agreement import agreement_from_json

    if not isinstance(value, dict):
        return f"expected the one-shot search's record, got {_shown(value)}"
    try:
        agreement = agreement_from_json(value)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        return f"not the one-shot search's record ({type(error).__name__}: {_shown(error.args[0] if error.args else '')})"
    numbers = [agreement.tau, agreement.rho, *(agreement.tau_interval or ()), *(agreement.rho_interval or ()),
               *(x for pair in agreement.pairs.values() for x in pair)]
    finite = _number(-1e9, 1e9)
    for number in numbers:
        if number is not None and finite(number):
            return f"a number in it: {finite(number)}"
    return None


def _latency_target_key(value: Any) -> str | None:
    from .latency.timing import Target

    try:
        Target.from_key(value)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return f"expected a latency target's device and threads, got {_shown(value)} ({error})"
    return None


def _genome(value: Any) -> str | None:
    from .models.genome import Genome

    problem = _text(value)
    if problem:
        return problem
    try:
        Genome.from_string(value)
    except (ValueError, KeyError) as error:
        return str(error)
    return None


STUDY_ATTRIBUTES: dict[str, Callable[[Any], str | None]] = {
    "space": _text, "backbone": _text, "dataset": _text, "fidelity": _text, "strategy": _text,
    "latency_target": _text,
    "num_classes": _whole(1, MAX_CLASSES),
    "driver_starts": _whole(0, 2**31),
    "repeats": _whole(1, 1000),
    "seed_sigma": _number(0.0, 100.0),
    "seed_sigma_df": _whole(0, 2**31),
    "objective_specs": _objective_specs,
    "final_test": _final_test,
    "latency_target_key": _latency_target_key,
    "oneshot": _oneshot,
}

TRIAL_ATTRIBUTES: dict[str, Callable[[Any], str | None]] = {
    "genome": _genome,
    "seed": _whole(0, 2**32 - 1),
    "paper_label": _text, "failure": _text, "infeasible": _text, "fidelity": _text, "driver": _text,
    "dataset": _text, "score_source": _text,
    "repeat_of": _optional_whole(0, 2**31), "reused_from": _optional_whole(0, 2**31),
    "waits_for": _optional_whole(0, 2**31),
    "seconds": _number(0.0, 1e9),
    "epoch": _whole(0, 100_000), "epochs": _whole(0, 100_000),
    "top5": _number(0.0, 100.0),
    "images_per_second": _number(0.0, 1e12),
}


def check_study(study: optuna.Study) -> None:
    """AttributeRefused naming the first attribute or value of ``study`` that does not fit the
    schema (module docstring); returns when every one the product reads fits. It reads every
    trial, as the commands then do (Optuna's storage caches finished trials)."""
    from .analysis.objectives import Selection

    attributes = study.user_attrs
    for name, check in STUDY_ATTRIBUTES.items():
        if name in attributes:
            problem = check(attributes[name])
            if problem:
                raise AttributeRefused(problem if problem.startswith("the study's") else f"the study's {name}: {problem}")
    try:
        trials = study.get_trials(deepcopy=False)
    except (AssertionError, ValueError, TypeError, OverflowError) as error:  # Optuna asserts on a NULL value
        raise AttributeRefused(f"the study's trials cannot be read: a stored value is missing or not a number "
                               f"({type(error).__name__}{': ' + _shown(str(error)) if str(error) else ''})") from None
    if not trials:
        return  # a study made to hold a latency check, or one not started: no objectives to read yet
    try:
        selection = Selection.of_study(study)  # checks cost_tolerance and the objectives against the directions
    except ValueError as error:
        raise AttributeRefused(str(error)) from None
    widths = _space_widths(attributes.get("space"))
    genomes: dict[str, str | None] = {}
    costs = {o.name: _number(0.0, MAX_COST) for o in selection.computed}
    ideal = selection.trained.ideal  # top-1: 100%; a metric without a stated ideal is bounded by MAX_COST only
    trained_range = _number(0.0, ideal) if ideal > 0 else _number(-MAX_COST, MAX_COST)
    for trial in trials:
        where = f"trial {trial.number}'s"
        for name, value in trial.user_attrs.items():
            check = TRIAL_ATTRIBUTES.get(name) or costs.get(name)
            problem = check(value) if check is not None else None
            if name == "genome" and problem is None:
                if value not in genomes:
                    genomes[value] = _width_problem(value, widths)
                problem = genomes[value]
            if problem:
                raise AttributeRefused(f"{where} {name}: {problem}")
        if trial.state == optuna.trial.TrialState.COMPLETE:
            values = trial.values
            if values is None or len(values) != len(selection.objectives):
                raise AttributeRefused(f"{where} values: expected {len(selection.objectives)} "
                                       f"({', '.join(selection.names)}), got {_shown(values)}")
            for objective, value in zip(selection.objectives, values):
                problem = (trained_range if objective.trained else costs[objective.name])(value)
                if problem:
                    raise AttributeRefused(f"{where} {objective.name} value: {problem}")


def _space_widths(space_name: Any) -> tuple[float, ...] | None:
    """The width multipliers of the study's space, when its file is at hand (a custom space file
    elsewhere is not: then the fidelity parser's widest, 4, bounds a genome's width)."""
    from .models.spaces import load_space
    from .names import checked_name

    try:  # a built-in space's name only: a path stored in a received study is not opened
        checked_name("space", space_name)
    except (ValueError, TypeError):
        return None
    try:
        return tuple(load_space(space_name).width_mults)
    except (ValueError, OSError):
        return None


def _width_problem(genome_text: str, widths: tuple[float, ...] | None) -> str | None:
    """Whether the genome's width is one its space holds: a genome is built (the report's costs,
    export) at its width, and ``mv2_w64.0()`` would allocate gigabytes."""
    from .models.genome import Genome

    width = Genome.from_string(genome_text).width_mult
    if widths is not None and not any(math.isclose(width, w) for w in widths):
        return f"width {width:g} is not one of the space's ({', '.join(f'{w:g}' for w in widths)})"
    if widths is None and not 0 < width <= 4:
        return f"width {width:g} is outside (0, 4]"
    return None
