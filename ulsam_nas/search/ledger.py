"""The study shared by a search's drivers: opening it (refusing one made with other settings),
which driver holds which trial and whether it still lives, closing and re-queueing the trials of
drivers that stopped, and which trials count toward the budget. Ray-free. What trains next is
decided by ``policy.SearchPolicy``.

- **Drivers and liveness.** Several drivers may share a study (``--storage postgresql://...``).
  A RUNNING trial whose driver is gone (Ctrl-C, kill -9) is closed as FAIL "interrupted" and
  its (genome, seed) enqueued again, for any driver to train. A driver on this host is
  recognised by boot, pid and process start time, so its death is seen at once; a driver on
  another host by Optuna's heartbeat (``studies.open_storage``): its trials are closed by
  ``optuna.storages.fail_stale_trials`` once it has not beaten for ``STALE_AFTER`` seconds.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..analysis.objectives import Selection
from ..study_schema import check_study

INTERRUPTED = "interrupted"
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class StudyMismatch(ValueError):
    """The study exists but was made for another space, data set or fidelity."""


# -- drivers and their liveness ----------------------------------------------------------------


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _process_start(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def driver_identity() -> str:
    """host|boot id|pid|process start: unique to this driver process."""
    return f"{socket.gethostname()}|{_boot_id()}|{os.getpid()}|{_process_start(os.getpid())}"


def driver_is_gone(identity: str) -> bool:
    """Whether the driver that started a RUNNING trial is known dead: it ran on this host, since
    this boot, and its process is gone. Drivers elsewhere are judged by their heartbeat."""
    try:
        host, boot, pid, start = identity.split("|")
    except ValueError:
        return False
    return host == socket.gethostname() and boot == _boot_id() and start != "None" and _process_start(int(pid)) != start


# -- the study -----------------------------------------------------------------------------------


def open_study(storage: optuna.storages.BaseStorage, name: str, identity: dict[str, Any],
               selection: Selection) -> optuna.Study:
    """Create or load the study; refuse one made for another space, data set, fidelity, seed or
    objectives, or one whose attributes or values do not fit the schema (``study_schema``,
    AttributeRefused). The caller sets ``study.sampler``."""
    study = optuna.create_study(storage=storage, study_name=name, directions=selection.directions,
                                load_if_exists=True)
    if study.get_trials(deepcopy=False):  # a study to continue, perhaps received: what it holds is checked first
        check_study(study)
    identity = {**identity, "objectives": ",".join(selection.names)}
    stored = {k: study.user_attrs[k] for k in identity if k in study.user_attrs}
    if study.metric_names:  # a study from before the objectives were stored names them here
        stored.setdefault("objectives", ",".join(study.metric_names))
    for key, value in stored.items():
        if value != identity[key]:
            raise StudyMismatch(
                f"study {name!r} was run with {key} {value!r}, not {identity[key]!r}: "
                f"pass the same settings or choose another --study / --study-name"
            )
    for key, value in identity.items():
        if key not in stored:
            study.set_user_attr(key, value)
    if study.metric_names is None:
        with warnings.catch_warnings():  # experimental since Optuna 3.2, and what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(selection.names)
    return study


def is_interrupted(trial: optuna.trial.FrozenTrial) -> bool:
    """Closed because its driver stopped: by a driver (``failure`` "interrupted") or by Optuna's
    heartbeat, which fails a stale trial without a reason (every other FAIL carries one)."""
    return trial.state == TrialState.FAIL and trial.user_attrs.get("failure", INTERRUPTED) == INTERRUPTED


def counts_toward_budget(trial: optuna.trial.FrozenTrial) -> bool:
    """Finished trials count, except interrupted ones (their trainings run again)."""
    return trial.state in FINISHED_STATES and not is_interrupted(trial)


def finished_count(study: optuna.Study) -> int:
    return sum(counts_toward_budget(t) for t in study.get_trials(deepcopy=False, states=FINISHED_STATES))


def requeue_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Optuna's ``failed_trial_callback``: a training its heartbeat found stale runs again. Not
    Optuna's ``RetryHeartbeatStaleTrialCallback``: that copies every user attribute (the dead
    driver, and ``waits_for`` of a trial that only waited for another's result)."""
    if "waits_for" not in trial.user_attrs:
        study.enqueue_trial(trial.params, user_attrs=rerun_attrs(trial))


def close_interrupted(study: optuna.Study, storage: optuna.storages.BaseStorage, requeue: bool = True) -> list[int]:
    """Close RUNNING trials whose driver is gone as FAIL "interrupted" and (``requeue``) enqueue
    their (genome, seed) again; ``storage`` is the study's. Drivers on this host are checked by
    process, others by Optuna's heartbeat (when the storage has it on, ``requeue_stale``
    re-enqueues). The caller holds the study lock (``studies.StudyLock``), or is its only
    driver. Without ``requeue`` (a fixed plan, run by its only driver, which trains what it lacks
    when run again) a WAITING trial is a job its killed driver enqueued and never asked for: it is
    closed too, or the rerun would train it and the same job from its plan. Returns the closed
    trial numbers."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    closed = []
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in [] if requeue else study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, "failure", INTERRUPTED)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        closed.append(trial.number)
    for trial in running:
        # A trial without a driver was asked for by one that died before claiming it: drivers
        # claim their trials under the study lock, which the callers of this function hold.
        if "driver" in trial.user_attrs and not driver_is_gone(trial.user_attrs["driver"]):
            continue
        # Optuna's Study has no public way to set a user attribute on a trial another process
        # asked for; the storage's public API does. Pinned by the kill -9 resume test.
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, "failure", INTERRUPTED)
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # it finished meanwhile
        if requeue:  # an enqueued trial never suggested holds its parameters as fixed_params
            study.enqueue_trial(trial.params or trial.system_attrs.get("fixed_params", {}), user_attrs=rerun_attrs(trial))
        closed.append(trial.number)
    with warnings.catch_warnings():  # "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    was_running = {t.number for t in running}
    closed += [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
               if t.number in was_running and t.number not in closed and is_interrupted(t)]
    return sorted(closed)


def rerun_attrs(trial: optuna.trial.FrozenTrial | optuna.Trial) -> dict[str, Any]:
    """What an enqueued re-run of an unfinished trial carries over: its seed and repeat link."""
    attrs = {"rerun_of": trial.number}
    for key in ("seed", "repeat_of", "paper_label"):
        if key in trial.user_attrs:
            attrs[key] = trial.user_attrs[key]
    return attrs
