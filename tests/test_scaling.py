"""Scaling out against the real services: several search drivers, as separate processes, on one
PostgreSQL study (a real server: ``tests/services.py``); Optuna's heartbeat closing the trials of
a driver that went silent on another host; a driver joining a Ray cluster started with
``ray start --head`` and Ray's defaults (token authentication); and a simulated training in a Ray
worker, which loads no torch.

The drivers run the real command with real (quick) training; what is under test is that the
study, not a driver's memory, decides what is trained: no (genome, seed) twice, each paper
configuration once, exactly ``--budget`` finished trials, nothing finished lost to a kill -9.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psycopg
import sqlalchemy
import pytest
from optuna.trial import TrialState

from ulsam_nas.search.ledger import close_interrupted, counts_toward_budget, is_interrupted, requeue_stale
from ulsam_nas.analysis.objectives import Context, Selection
from ulsam_nas.search.policy import SearchPolicy
from ulsam_nas.search.searchers import OptunaTrialsSearcher, StudySearcher
from ulsam_nas.models.spaces import load_space
from ulsam_nas.studies import StudyLock, open_storage, one_write

from .commands import ONE_AT_A_TIME, QUICK, child_env, finish, run_module, run_program, wait_until
from .conftest import write_space
from .services import libpq_url

STUDY = "shared"


def start_driver(storage: str, folder: Path, *args: str) -> subprocess.Popen:
    """``python -m ulsam_nas.search`` on the shared study, one quick training at a time (2 cores)."""
    command = [sys.executable, "-m", "ulsam_nas.search", "--storage", storage, "--study-name", STUDY,
               "--study", str(folder), "--fidelity", QUICK, "--concurrency", "1", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())


def finish_driver(driver: subprocess.Popen) -> str:
    _, err = finish(driver, "a search driver")
    assert driver.returncode == 0, err[-3000:]
    return err


def trainings(trials) -> list[tuple[str, int]]:
    """(genome, seed) of every finished trial that trained: not a reuse, a rejection or a trial
    closed because its driver died."""
    return [(t.user_attrs["genome"], t.user_attrs["seed"]) for t in trials
            if t.state.is_finished() and "genome" in t.user_attrs and "reused_from" not in t.user_attrs
            and "infeasible" not in t.user_attrs and not is_interrupted(t)]


def load(storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=STUDY, storage=open_storage(storage)).get_trials(deepcopy=False)


def assert_study_is_whole(trials, budget: int) -> None:
    assert sum(counts_toward_budget(t) for t in trials) == budget
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    pairs = trainings(trials)
    assert len(pairs) == len(set(pairs)), pairs  # no (genome, seed) trained twice
    labels = [t.user_attrs["paper_label"] for t in trials if "paper_label" in t.user_attrs and not is_interrupted(t)]
    assert len(labels) == len(set(labels)), labels  # each paper configuration once


def test_drivers_wait_for_each_others_trainings(postgres_url, tmp_path):
    """Two genomes, two seeds each and 8 trials: most proposals repeat a (genome, seed) that the
    study holds or that the other driver is training, and each is reused, never trained again."""
    space = write_space(tmp_path, '17 = { actions = ["keep", "insert"], groups = [4] }')
    args = ["--space", str(space), "--budget", "8", "--repeats", "2", "--sampler", "random", "--no-paper-seeds"]
    drivers = [start_driver(postgres_url, tmp_path / f"driver{i}", *args, "--seed", "0") for i in (1, 2)]
    for driver in drivers:
        finish_driver(driver)
    trials = load(postgres_url)
    assert_study_is_whole(trials, budget=8)
    assert len(trainings(trials)) <= 4
    reused = [t for t in trials if "reused_from" in t.user_attrs]
    assert reused and all(t.values == trials[t.user_attrs["reused_from"]].values for t in reused)


def running_and_complete(url: str, pid: int) -> tuple[int, int]:
    """How many RUNNING and COMPLETE trials driver ``pid`` holds, read with plain SQL (an Optuna
    storage opened here would race the drivers to create the schema)."""
    with psycopg.connect(libpq_url(url)) as connection:
        rows = connection.execute(
            "SELECT t.state FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
            "WHERE a.key = 'driver' AND a.value_json LIKE %s", (f'%|{pid}|%',)).fetchall()
    states = [str(state) for (state,) in rows]
    return states.count("RUNNING"), states.count("COMPLETE")


def test_four_drivers_one_killed_and_restarted_leave_the_budget_exact(postgres_url, tmp_path):
    """Four drivers share a study and its budget; one is killed with kill -9 mid-run and started
    again with the same command. The others, or the restarted one, close the killed driver's
    trial and train it again; together they leave exactly the budget, no (genome, seed) trained
    twice, nothing finished lost, and no trial of a live driver closed as stale. (Drivers that all
    run to the end of a shared budget: test_drivers_wait_for_each_others_trainings.)"""
    budget = "8"
    victim = start_driver(postgres_url, tmp_path / "victim", "--budget", budget)

    def holds(pid: int) -> bool:
        try:
            running, complete = running_and_complete(postgres_url, pid)
        except psycopg.errors.UndefinedTable:
            return False
        return bool(running and complete) or victim.poll() is not None

    # Caught mid-run (a training finished, the next one running), then held there with SIGSTOP while
    # the others start: a stopped driver is alive to their liveness checks but takes no more of the
    # budget, so it cannot finish it before the kill however slowly the others start.
    wait_until(lambda: holds(victim.pid), "a finished and a running trial of the victim")
    os.kill(victim.pid, signal.SIGSTOP)
    assert victim.poll() is None, "the victim finished before it could be stopped"
    others = [start_driver(postgres_url, tmp_path / f"driver{i}", "--budget", budget) for i in (1, 2, 3)]
    wait_until(lambda: any(sum(running_and_complete(postgres_url, d.pid)) for d in others), "a trial of another driver")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    before = {t.number: (t.state, t.values, t.user_attrs.get("seed")) for t in load(postgres_url)}
    restarted = start_driver(postgres_url, tmp_path / "victim", "--budget", budget)

    errors = [finish_driver(driver) for driver in (*others, restarted)]
    assert sum("closed 1 trial(s) of a stopped driver" in err or "closed 1 interrupted trial(s)" in err
               for err in errors) == 1
    trials = load(postgres_url)
    assert_study_is_whole(trials, budget=8)
    for number, (state, values, _) in before.items():
        if state == TrialState.COMPLETE:
            assert trials[number].values == values  # nothing finished was lost
    closed = [t for t in trials if is_interrupted(t)]
    # The victim's trial, whether still RUNNING when read after the kill or already closed by a driver's liveness
    # check in that instant; no live driver's trial.
    assert len(closed) == 1 and closed[0].user_attrs["driver"].split("|")[2] == str(victim.pid)
    rerun = [t for t in trials if t.user_attrs.get("rerun_of") == closed[0].number]
    assert len(rerun) == 1 and rerun[0].state == TrialState.COMPLETE
    assert rerun[0].user_attrs["seed"] == before[closed[0].number][2]  # the same training, run again
    assert len(trainings(trials)) == 8  # the first 8 paper configurations, each trained once: none reused


def test_a_silent_driver_elsewhere_loses_its_trials_to_the_heartbeat(tmp_path):
    """A driver on another host cannot be checked by process: Optuna's heartbeat closes its
    trials once it stops beating for the grace period, and their trainings are queued again."""
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", requeue_stale, stale_after=1)
    study = optuna.create_study(storage=storage, study_name=STUDY, directions=["maximize", "minimize", "minimize"])
    study_id = storage.get_study_id_from_name(STUDY)
    silent, beating = study.ask(), study.ask()
    ids = {t.number: storage.get_trial_id_from_study_id_trial_number(study_id, t.number) for t in (silent, beating)}
    for trial in (silent, beating):
        trial.set_user_attr("driver", "another-host|boot|4242|77")
        trial.set_user_attr("genome", "mv2_w1.0(17:1g4)")
        trial.set_user_attr("seed", 3 + trial.number)
        storage.record_heartbeat(ids[trial.number])
    time.sleep(2.5)
    storage.record_heartbeat(ids[beating.number])
    assert close_interrupted(study, storage) == [silent.number]
    trials = study.get_trials(deepcopy=False)
    assert trials[silent.number].state == TrialState.FAIL and is_interrupted(trials[silent.number])
    assert not counts_toward_budget(trials[silent.number])
    assert trials[beating.number].state == TrialState.RUNNING  # a live driver's trial is left alone
    queued = [t for t in trials if t.state == TrialState.WAITING]
    assert [(t.user_attrs["rerun_of"], t.user_attrs["seed"]) for t in queued] == [(silent.number, 3)]


def test_a_driver_busy_past_the_grace_period_keeps_its_trials(tmp_path):
    """A driver's main thread can be busy for minutes (a dashboard publish of a large study): its
    heartbeat thread keeps its trials alive to the other drivers. Once it stops, they go stale."""
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", requeue_stale, stale_after=1)
    study = optuna.create_study(storage=storage, study_name=STUDY, directions=["maximize", "minimize", "minimize"])
    trial = study.ask()
    trial.set_user_attr("driver", "another-host|boot|4242|77")  # judged by its heartbeat alone
    trial.set_user_attr("seed", 3)
    searcher = OptunaTrialsSearcher(study, storage)
    searcher.live["tune-trial"] = trial
    with searcher.beating(interval=0.2):
        time.sleep(2.5)  # the main thread busy, not calling back, past the 1 s grace
        assert close_interrupted(study, storage) == []
    time.sleep(2.5)
    assert close_interrupted(study, storage) == [trial.number]


def test_a_training_whose_trial_another_driver_closed_is_let_go(tmp_path, capsys):
    """Another driver took this one for dead and closed its trial while it trained (Optuna's
    heartbeat): the late result is dropped, and the training is let go. Before, setting its
    attributes raised, the training stayed held, and after the budget its driver waited in Tune
    for a trial that never came (the four-driver benchmark at 2,000)."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, requeue_stale)
    selection, space = Selection.parse("top1,macs,params"), load_space("mv2")
    study = optuna.create_study(storage=storage, study_name=STUDY, directions=selection.directions)
    policy = SearchPolicy(study, space, selection, Context(space, 10), 4, sampler="random", paper_seeds=False)
    searcher = StudySearcher(study, storage, StudyLock(url, STUDY), policy)
    config = searcher.suggest("tune-trial")
    other_driver = optuna.load_study(study_name=STUDY, storage=open_storage(url))
    other_driver.tell(config["optuna_trial"], state=TrialState.FAIL)
    searcher.on_trial_complete("tune-trial", {"top1": 40.0, "complete": True, "seconds": 1.5, "epoch": 1})
    assert policy.in_flight_here == 0 and searcher.running == 0
    assert "was closed by another driver meanwhile; its result is dropped" in capsys.readouterr().err
    closed = other_driver.trials[config["optuna_trial"]]
    assert closed.state == TrialState.FAIL and "seconds" not in closed.user_attrs


def test_a_trials_parameters_and_attributes_are_written_in_one_transaction_and_read_back_whole(tmp_path):
    """Optuna writes each suggested parameter and each user attribute in a transaction of its own
    (38 parameters per mv2 trial); the driver writes them in one. What another reader gets is the
    same (an attribute the trial was enqueued with is replaced), and a parameter whose distribution
    differs from the study's, or an attribute that is not JSON, is still refused."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name=STUDY, directions=["maximize", "minimize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    space = load_space("mv2")
    first = study.ask()
    space.suggest(first)  # the study's distributions, checked against the storage one by one
    commits = []
    sqlalchemy.event.listen(storage.engine, "commit", lambda connection: commits.append(1))
    study.enqueue_trial({}, user_attrs={"seed": 4, "repeat_of": 0})
    trial = study.ask()
    commits.clear()
    with one_write(study):
        genome = space.suggest(trial)
        for name, value in {"genome": str(genome), "seed": 5, "costs": {"macs": 1.5e8}}.items():
            trial.set_user_attr(name, value)
        with pytest.raises(TypeError):
            trial.set_user_attr("unwritable", object())
        assert commits == []
    assert len(commits) == 1 and len(trial.params) == 38
    fresh = optuna.load_study(study_name=STUDY, storage=open_storage(url)).trials[trial.number]
    assert fresh.params == trial.params and space.suggest(optuna.trial.FixedTrial(fresh.params)) == genome
    assert fresh.distributions == first.distributions
    assert fresh.user_attrs == {"seed": 5, "repeat_of": 0, "genome": str(genome), "costs": {"macs": 1.5e8}}
    another = study.ask()
    with pytest.raises(ValueError, match="Cannot set different distribution kind"), one_write(study):
        another.suggest_float("L16", 0.0, 1.0)
    assert optuna.load_study(study_name=STUDY, storage=open_storage(url)).trials[another.number].params == {}


def trials_of_every_kind(study: optuna.Study) -> None:
    """Trials in every state Optuna stores, with every kind of field it reads back: the three
    distributions, an infinite value, intermediate values (one NaN), user and system attributes."""
    def suggested(trial):
        trial.suggest_categorical("L16", ["keep", "insert", "substitute"])
        trial.suggest_int("g16", 1, 8, log=True)
        trial.suggest_float("lr", 1e-4, 1.0, log=True)
        trial.set_user_attr("genome", f"g{trial.number}")
        trial.set_user_attr("costs", {"macs": 1.5e8, "list": [1, None]})
        return trial

    study.tell(suggested(study.ask()), [71.5, 150.0, float("inf")])
    study.tell(suggested(study.ask()), state=TrialState.FAIL)
    pruned = suggested(study.ask())
    for step, value in ((1, 12.5), (2, float("nan"))):  # Trial.report is single-objective only
        study._storage.set_trial_intermediate_value(pruned._trial_id, step, value)
    study.tell(pruned, state=TrialState.PRUNED)
    suggested(study.ask())  # left RUNNING
    study.tell(suggested(study.ask()), [70.0, 151.0, 2.5])
    study.enqueue_trial({"L16": "substitute", "g16": 4}, user_attrs={"seed": 4})  # WAITING


def comparable(trial: optuna.trial.FrozenTrial) -> dict:
    """A trial's fields, NaN written as text (NaN equals nothing, itself included)."""
    fields = dict(vars(trial))
    fields["intermediate_values"] = {step: "nan" if value != value else value
                                      for step, value in trial.intermediate_values.items()}
    return fields


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_driver_reads_trials_field_for_field_as_optuna_does(backend, tmp_path, request):
    """The driver's storage reads trials with SQLAlchemy Core rows instead of Optuna's ORM
    objects (six times faster on 32 running mv2 trials): the trials it reads are Optuna's own,
    whichever trials a read asks for, on SQLite and on PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'study.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name=STUDY, directions=["maximize", "minimize", "minimize"])
    trials_of_every_kind(study)
    study_id = storage.get_study_id_from_name(STUDY)
    ids = [t._trial_id for t in optuna.storages.RDBStorage.get_all_trials(storage, study_id)]
    assert len(ids) == 6
    for states in (None, (TrialState.RUNNING, TrialState.WAITING), (TrialState.COMPLETE,)):
        for included, greater_than in ((set(), -1), ({ids[1], ids[3]}, ids[2]), (set(), ids[3]), ({ids[5]}, ids[0])):
            ours = storage._get_trials(study_id, states, included, greater_than)
            optunas = optuna.storages.RDBStorage._get_trials(storage, study_id, states, included, greater_than)
            assert list(map(comparable, ours)) == list(map(comparable, optunas))
            assert [t._trial_id for t in ours] == sorted(t._trial_id for t in ours)
    assert list(map(comparable, optuna.load_study(study_name=STUDY, storage=url).trials)) == \
        list(map(comparable, study.trials))  # Optuna's own storage
    with pytest.raises(KeyError):
        storage._get_trials(study_id + 1, None, set(), -1)


def test_a_plans_job_its_killed_driver_enqueued_is_closed_not_trained_twice(tmp_path):
    """A calibration killed between enqueueing its next job and asking for it leaves a WAITING
    trial; the rerun plans every job it lacks, that one included, so the leftover is closed (a
    fresh-clone run trained one job twice). A search's WAITING trials are re-runs: they stay."""
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name=STUDY, directions=["maximize"])
    study.enqueue_trial({"L16": "substitute", "g16": 4}, user_attrs={"seed": 0, "fidelity": "smoke"})
    assert close_interrupted(study, storage) == [] and study.trials[0].state == TrialState.WAITING
    assert close_interrupted(study, storage, requeue=False) == [0]
    closed = study.get_trials(deepcopy=False)[0]
    assert closed.state == TrialState.FAIL and is_interrupted(closed) and not counts_toward_budget(closed)
    assert study.get_trials(deepcopy=False, states=(TrialState.WAITING,)) == []


def test_a_trial_its_driver_died_before_claiming_is_closed_and_queued_again(tmp_path):
    """A kill -9 between asking for an enqueued repeat and claiming it leaves a RUNNING trial with
    no driver and no genome: it would hold a place of the budget for ever. Drivers claim trials
    under the study lock, so whoever holds the lock and sees one knows its driver is gone."""
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", requeue_stale)
    study = optuna.create_study(storage=storage, study_name=STUDY, directions=["maximize", "minimize", "minimize"])
    study.enqueue_trial({"L16": "substitute", "g16": 4}, user_attrs={"seed": 4, "repeat_of": 0})
    orphan = study.ask()  # ... and the driver is killed here
    assert close_interrupted(study, storage) == [orphan.number]
    trials = study.get_trials(deepcopy=False)
    assert trials[orphan.number].state == TrialState.FAIL and is_interrupted(trials[orphan.number])
    queued = [t for t in trials if t.state == TrialState.WAITING]
    assert [(t.user_attrs["seed"], t.user_attrs["repeat_of"], t.system_attrs["fixed_params"]) for t in queued] == [
        (4, 0, {"L16": "substitute", "g16": 4})]


def test_the_publishing_lock_is_apart_from_planning_and_taken_without_waiting_on_postgres(postgres_url):
    """On PostgreSQL, as on SQLite (test_dashboard), the publishing lock is an advisory lock of its
    own: held by one driver, another's try fails at once, and planning is not held up."""
    publishing, other = StudyLock(postgres_url, STUDY, "publish"), StudyLock(postgres_url, STUDY, "publish")
    planning = StudyLock(postgres_url, STUDY)
    try:
        assert publishing.acquire(blocking=False)
        assert not other.acquire(blocking=False)
        assert planning.acquire(blocking=False)
        planning.release()
        publishing.release()
        assert other.acquire(blocking=False)
        other.release()
    finally:
        for lock in (publishing, other, planning):
            lock.close()


@pytest.mark.parametrize("url", ["postgresql://nobody@127.0.0.1:1/nas", "postgresql+psycopg://nobody@127.0.0.1:1/nas"])
def test_a_missing_postgres_driver_names_the_extra(tmp_path, url):
    """Without psycopg installed (blocked here at import), one line says what to install."""
    code = ("import sys; sys.modules['psycopg'] = None; from ulsam_nas.search.command import main; "
            f"sys.exit(main(['--storage', {url!r}, '--study', {str(tmp_path / 's')!r}]))")
    result = run_program([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --storage {url}: PostgreSQL needs psycopg: pip install -e '.[postgres]'"
    assert not (tmp_path / "s").exists()


def test_search_joins_a_cluster_started_with_ray_defaults(ray_cluster, tmp_path):
    address, home, log = ray_cluster
    args = ["--address", address, "--budget", "2", "--fidelity", QUICK, "--study", str(tmp_path / "study"), *ONE_AT_A_TIME]
    joined = run_module("ulsam_nas.search", *args, env=child_env(own_ray=True, HOME=str(home)))
    assert "Token authentication is enabled" in log.read_text()  # Ray's defaults, with a token in ~/.ray
    assert joined.returncode == 0, joined.stderr[-3000:]
    study = optuna.load_study(study_name="mv2-synthetic", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}")
    assert sum(counts_toward_budget(t) for t in study.trials) == 2

    (tmp_path / "no-token").mkdir()
    refused = run_module("ulsam_nas.search", *args, env=child_env(own_ray=True, HOME=str(tmp_path / "no-token")))
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused this driver's token" in lines[0] and "RAY_AUTH_MODE=token" in lines[0], lines


SIMULATED_WORKER = """
import json, sys
import ray
from ulsam_nas.data import DataSpec
from ulsam_nas.models.genome import Genome
from ulsam_nas.search.runner import trainer_for
from ulsam_nas.search.trainable import TrialSettings, run_trial
from ulsam_nas.train.fidelity import get_fidelity

@ray.remote(num_cpus=1)
def simulated_training(trainable, settings, trainer):
    from ulsam_nas.search.trainable import set_up_worker
    reports = []
    trainer(Genome.from_string("mv2_w1.0(16g4,17g4)"), settings.data, settings.fidelity, seed=0,
            report=lambda epoch, metrics: reports.append(metrics), device=set_up_worker(), evaluate_on="val",
            val_fraction=settings.val_fraction)
    return {"top1": reports[-1]["top1"], "loaded": [m for m in ("torch", "torchvision", "optuna") if m in sys.modules]}

ray.init(logging_level="ERROR", log_to_driver=False)
data = DataSpec.parse("landscape:null")
settings = TrialSettings(data, get_fidelity("smoke", "mv2"), 0.1)
print(json.dumps(ray.get(simulated_training.remote(run_trial, settings, trainer_for(data)))))
"""


def test_a_simulated_training_loads_no_torch_in_its_ray_worker():
    """What a search ships to a Ray worker for a landscape training (the trainable, its settings and
    the landscape's trainer, unpickled there as Tune unpickles them) runs in a fresh worker of the
    run's cluster without importing torch, torchvision or Optuna: a cluster of simulated workers
    stays light (a worker with torch holds about 675 MB, README "Scaling out")."""
    done = run_program([sys.executable, "-c", SIMULATED_WORKER], capture_output=True, text=True, env=child_env())
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert 0 <= result["top1"] <= 100
