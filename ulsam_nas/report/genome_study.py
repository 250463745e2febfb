"""The genome study: optuna-dashboard's own plots on genome means.

optuna-dashboard draws its Pareto front, History, Best Trials and parameter importance from a
study's trials, and the search's study holds one trial per training: a genome with one lucky seed
sits on that front. Beside it, in the same storage, the product keeps ``<name>:genomes``, one
COMPLETE trial per genome whose values are the genome's mean top-1 over its seeds and its costs
(the study's objective names and directions), whose parameters are those the genome was sampled
with, and whose user attributes hold its seeds, std, 95% interval, shrunk mean, verdict and paper
label. The trial study stays the record of every training.

Optuna's trials are immutable once finished, so the genome study is rebuilt, not edited
(``rebuild_genome_study``, at every dashboard publication). The new trials are written into a
study of their own, ``<name>:genomes (rebuilding)``; then one transaction moves them into the
genome study and the old ones out, and the rebuilding study is deleted with the old trials. A
reader sees the old genome study or the new one, never a half-built one, and the genome study keeps
its id, so a dashboard page open on it goes on refreshing. Optuna has no public way to move trials
(optuna-dashboard's own "rename" copies a study trial by trial, then deletes the original), so
that transaction writes Optuna's ``trials.study_id`` column itself.
"""

from __future__ import annotations

import json
import warnings

import optuna
import sqlalchemy
from optuna.trial import TrialState, create_trial

from ..analysis.front import Front, GenomeStats
from .escaping import markdown_text

GENOMES_SUFFIX = ":genomes"
REBUILDING_SUFFIX = ":genomes (rebuilding)"


def genome_study_name(study_name: str) -> str:
    return study_name + GENOMES_SUFFIX


def genome_trial(stats: GenomeStats, front: Front, sampled: optuna.trial.FrozenTrial | None) -> optuna.trial.FrozenTrial:
    """A genome as one COMPLETE trial: its mean top-1 and costs as values, the parameters and times
    of the trial that sampled it (its first training), its statistics and verdict as user attributes."""
    trained = front.selection.trained.name
    attrs = {"genome": stats.genome, "seeds": list(stats.seeds), "n": stats.n, f"{trained}_std": stats.std,
             f"{trained}_ci95": stats.ci95(front.noise), f"{trained}_shrunk": front.estimate(stats),
             "verdict": front.verdict(stats).describe(), "first_trial": stats.trial}
    if stats.label:
        attrs["paper_label"] = stats.label
    if sampled is None:
        return create_trial(state=TrialState.COMPLETE, values=front.values(stats), user_attrs=attrs)
    trial = create_trial(state=TrialState.COMPLETE, values=front.values(stats), user_attrs=attrs, params=sampled.params,
                         distributions=sampled.distributions)
    trial.datetime_start, trial.datetime_complete = sampled.datetime_start, sampled.datetime_complete
    return trial


def genome_note(study_name: str, front_lines: list[str]) -> str:
    """The genome study's note: which study is which, then the front's lines (σ, signal, verdicts)."""
    return "\n".join([
        "### Genome means: one trial per genome",
        "",
        (f"Kept by ulsam-nas beside the search's study *{markdown_text(study_name)}*, which records every training (one trial per "
         "genome and seed). Here each trial is one genome: its values are the genome's mean top-1 over its seeds and its "
         "costs, so Optuna's Pareto front, History, Best Trials and parameter importance on this page show genome means, "
         "not lucky seeds. A trial's user attributes hold the genome's seeds, std, 95% interval, shrunk mean, verdict and "
         "paper label. Trial numbers follow the genomes' first completed training. The study is rebuilt each time the "
         "search refreshes the dashboard."),
        "",
        *front_lines,
    ])


def _study_id(storage: optuna.storages.RDBStorage, name: str) -> int | None:
    try:
        return storage.get_study_id_from_name(name)
    except KeyError:
        return None


def _write_trials(storage: optuna.storages.RDBStorage, study_id: int, trials: list[optuna.trial.FrozenTrial]) -> None:
    """Write finished trials into a study just created, numbered in order, in one transaction of
    one bulk insert per table. Optuna's ``add_trials`` is O(trials²) here: it counts the study's
    earlier trials to number each new one and looks up every parameter's earlier distribution in a
    query of its own (17 min for 4,772 genomes); ORM objects for the same rows took 3.2 s for 428
    genomes. The rows go through Optuna's own tables (its installed version's columns and types),
    so they are the rows it writes and reads; the trials are made by ``create_trial``, which
    validated them."""
    from optuna.storages._rdb import models

    if not trials:
        return
    with storage.engine.begin() as connection:
        connection.execute(models.TrialModel.__table__.insert(), [
            {"study_id": study_id, "number": number, "state": trial.state, "datetime_start": trial.datetime_start,
             "datetime_complete": trial.datetime_complete} for number, trial in enumerate(trials)])
        ids = dict(connection.execute(sqlalchemy.select(models.TrialModel.number, models.TrialModel.trial_id)
                                      .where(models.TrialModel.study_id == study_id)).all())
        values, params, attrs = [], [], []
        for number, trial in enumerate(trials):
            trial_id = ids[number]
            values += [{"trial_id": trial_id, "objective": objective,
                        **dict(zip(("value", "value_type"), models.TrialValueModel.value_to_stored_repr(value)))}
                       for objective, value in enumerate(trial.values)]
            params += [{"trial_id": trial_id, "param_name": name,
                        "param_value": distribution.to_internal_repr(trial.params[name]),
                        "distribution_json": optuna.distributions.distribution_to_json(distribution)}
                       for name, distribution in trial.distributions.items()]
            attrs += [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                      for key, value in trial.user_attrs.items()]
        for model, rows in ((models.TrialValueModel, values), (models.TrialParamModel, params),
                            (models.TrialUserAttributeModel, attrs)):
            if rows:
                connection.execute(model.__table__.insert(), rows)


def _delete_study(storage: optuna.storages.RDBStorage, study_id: int) -> None:
    """Optuna's ``delete_study``, its trials' rows deleted first by one statement per table:
    Optuna's own deletes them through its ORM cascade, loading every row (2.3 s for 428 genomes)."""
    from optuna.storages._rdb import models

    trial_ids = sqlalchemy.select(models.TrialModel.trial_id).where(models.TrialModel.study_id == study_id)
    with storage.engine.begin() as connection:
        for table in reversed(models.BaseModel.metadata.sorted_tables):  # children before the trials they name
            if "trial_id" in table.c and table is not models.TrialModel.__table__:
                connection.execute(table.delete().where(table.c.trial_id.in_(trial_ids)))
        connection.execute(models.TrialModel.__table__.delete().where(models.TrialModel.study_id == study_id))
    storage.delete_study(study_id)


def rebuild_genome_study(study: optuna.Study, storage: optuna.storages.RDBStorage, front: Front, note: str) -> None:
    """Make ``<study>:genomes`` hold ``front``'s genomes, replacing what it held in one transaction,
    with ``note`` as its note. The caller holds the study's lock: two drivers never rebuild at once."""
    from optuna_dashboard import save_note

    live_name, spare_name = genome_study_name(study.study_name), study.study_name + REBUILDING_SUFFIX
    leftover = _study_id(storage, spare_name)  # from a driver killed mid-rebuild
    if leftover is not None:
        _delete_study(storage, leftover)
    live = _study_id(storage, live_name)
    if live is not None and storage.get_study_directions(live) != study.directions:
        _delete_study(storage, live)  # a study of other objectives under this name: not ours to keep
        live = None
    sampled = {t.number: t for t in study.get_trials(deepcopy=False)}
    spare = optuna.create_study(storage=storage, study_name=spare_name, directions=study.directions)
    spare_id = storage.get_study_id_from_name(spare_name)
    _write_trials(storage, spare_id, [genome_trial(s, front, sampled.get(s.trial))
                                      for s in sorted(front.stats, key=lambda s: s.trial)])
    if live is None:  # the first build: the finished study takes the name
        if study.metric_names:
            with warnings.catch_warnings():  # set_metric_names is "experimental" since Optuna 3.2
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                spare.set_metric_names(study.metric_names)
        spare.set_user_attr("trial_study", study.study_name)
        save_note(spare, note)
        with storage.engine.begin() as connection:
            connection.execute(sqlalchemy.text("UPDATE studies SET study_name = :name WHERE study_id = :id"),
                               {"name": live_name, "id": spare_id})
        return
    with storage.engine.begin() as connection:
        connection.execute(sqlalchemy.text(
            "UPDATE trials SET study_id = CASE WHEN study_id = :live THEN :spare ELSE :live END "
            "WHERE study_id IN (:live, :spare)"), {"live": live, "spare": spare_id})
    _delete_study(storage, spare_id)  # with the old trials
    save_note(optuna.load_study(study_name=live_name, storage=storage), note)
