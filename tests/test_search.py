"""The search harness on a real local Ray and a real SQLite study.

Most tests drive ``run_search`` in this process (the session's one Ray instance) with scripted
trainers: the harness is what is under test, and a trainer that raises, returns NaN or runs
slowly on purpose is how those cases arise on demand. The resume test runs the real command
with real (quick) training and kills it with SIGKILL.
"""

import subprocess
import sys
import time
import zlib
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import ray
import torch
from optuna.trial import TrialState
from ray import cloudpickle

from ulsam_nas import Genome
from ulsam_nas.analysis.front import Front
from ulsam_nas.analysis.picks import knee
from ulsam_nas.cli import size_trials
from ulsam_nas.data import DataSpec
from ulsam_nas.models.spaces import load_space
from ulsam_nas.report.writer import write_report
from ulsam_nas.search.final import final_candidates, run_final
from ulsam_nas.search.ledger import INTERRUPTED, StudyMismatch
from ulsam_nas.search.runner import SearchConfig, run_search
from ulsam_nas.studies import open_storage
from ulsam_nas.train.fidelity import SMOKE

from . import layouts
from .commands import ONE_AT_A_TIME, QUICK, run_main, run_module, start_module
from .conftest import kill_once_running

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers need not import tests/

RAISES = "mv2_w1.0(16g4)"
GIVES_NAN = "mv2_w1.0(17g4)"


pytestmark = pytest.mark.usefixtures("local_ray")


def fake_top1(genome: Genome, epoch: int, seed: int = 0) -> float:
    """A fixed number per (genome, epoch, seed): the genome's level plus up to ±2 pp of seed noise."""
    return 30.0 + zlib.crc32(str(genome).encode()) % 40 + epoch + zlib.crc32(f"{genome}/{seed}".encode()) % 5 - 2


def scripted_trainer(genome, data, fidelity, seed=0, report=None, device=None, evaluate_on="test", val_fraction=0.1,
                     seconds_per_epoch=0.02):
    """Trains nothing: raises for RAISES, reports NaN for GIVES_NAN, else a fixed top-1 per (genome, seed)."""
    assert evaluate_on == "val", "search trials must score on the validation split"
    if str(genome) == RAISES:
        raise RuntimeError("boom in the trainer")
    for epoch in range(1, fidelity.epochs + 1):
        time.sleep(seconds_per_epoch)
        top1 = float("nan") if str(genome) == GIVES_NAN else fake_top1(genome, epoch, seed)
        report(epoch, {"epoch": epoch, "top1": top1, "top5": 99.0, "loss": 1.0, "seconds": 0.1,
                       "images_per_second": 1000.0})


def slow_trainer(genome, data, fidelity, seed=0, report=None, device=None, **split):
    scripted_trainer(genome, data, fidelity, seed, report, device, **split, seconds_per_epoch=0.4)


def config(tmp_path: Path, budget: int, **overrides) -> SearchConfig:
    """A search of mv2 on the scripted trainers, one trial at a time unless a test is about
    trials in flight together (each concurrent trial starts a Ray worker: about 3 CPU-s of imports)."""
    space = load_space("mv2")
    settings = dict(space=space, data=DataSpec("synthetic"), num_classes=10, fidelity=SMOKE, budget=budget,
                    storage_url=f"sqlite:///{tmp_path / 'study.db'}", study_name="test", study_dir=tmp_path,
                    concurrency=1, paper_seeds=False)
    settings.update(overrides)
    return SearchConfig(**settings)


def enqueue(cfg: SearchConfig, *genomes: str) -> None:
    study = optuna.create_study(storage=open_storage(cfg.storage_url), study_name=cfg.study_name,
                                directions=["maximize", "minimize", "minimize"], load_if_exists=True)
    for text in genomes:
        study.enqueue_trial(cfg.space.params(Genome.from_string(text)))


def trials_by_genome(study):
    return {t.user_attrs["genome"]: t for t in study.trials if "genome" in t.user_attrs}


def test_trial_states_tell_the_truth(tmp_path, capsys):
    # One seed per genome: a duplicate is a reuse. Two at once: the duplicate may wait for its twin in flight.
    cfg = config(tmp_path, budget=5, repeats=1, concurrency=2)
    enqueue(cfg, RAISES, GIVES_NAN, "mv2_w1.0()", "mv2_w1.0(13g4)", "mv2_w1.0()")
    study = run_search(cfg, trainer=scripted_trainer)

    assert study.metric_names == ["top1", "macs", "params"]
    assert [t.state for t in study.trials].count(TrialState.RUNNING) == 0
    assert len([t for t in study.trials if t.state.is_finished()]) == 5
    raised, nan = study.trials[0], study.trials[1]
    assert raised.state == TrialState.FAIL and raised.user_attrs["failure"] == "RuntimeError: boom in the trainer"
    assert nan.state == TrialState.FAIL and nan.user_attrs["failure"] == "top1 is nan"
    vanilla, substituted, duplicate = study.trials[2], study.trials[3], study.trials[4]
    assert vanilla.state == TrialState.COMPLETE and vanilla.user_attrs["epochs"] == SMOKE.epochs
    assert vanilla.values[0] == fake_top1(Genome("mv2"), SMOKE.epochs)
    assert vanilla.values[1:] == [vanilla.user_attrs["macs"], vanilla.user_attrs["params"]]
    assert vanilla.values[1] == 300_774_272 - 1280 * (1000 - 10)  # MACs at 224 px, the data set's 10 classes
    assert substituted.state == TrialState.COMPLETE and substituted.values[1] < vanilla.values[1]
    # The duplicate genome was not trained again: it carries the first one's result.
    assert duplicate.state == TrialState.COMPLETE and duplicate.values == vanilla.values
    assert duplicate.user_attrs["reused_from"] == vanilla.number
    assert duplicate.user_attrs["genome"] == "mv2_w1.0()"
    for trial in study.trials:
        assert trial.user_attrs["fidelity"] == "smoke" and trial.user_attrs["dataset"] == "synthetic"
    assert all(t.user_attrs["seed"] == 0 for t in study.trials)
    assert "5/5 trials: 2 genomes, 4 trainings (0 repeats), 1 reused, 2 failed" in capsys.readouterr().err

    # Same budget again: returns without training and says so; a larger budget continues the same study.
    finished = [(t.number, t.state, t.values) for t in study.trials]
    again = run_search(cfg, trainer=scripted_trainer)
    assert [(t.number, t.state, t.values) for t in again.trials] == finished  # not one trial asked or trained
    assert "budget already met" in capsys.readouterr().err
    study = run_search(replace(cfg, budget=7, sampler="random"), trainer=scripted_trainer)
    assert len([t for t in study.trials if t.state.is_finished()]) == 7
    assert study.trials[2].values == vanilla.values  # nothing finished was lost

    with pytest.raises(StudyMismatch, match="fidelity 'smoke', not 'proxy'"):
        run_search(replace(cfg, fidelity=replace(SMOKE, name="proxy")), trainer=scripted_trainer)


def test_asha_stopped_trials_are_pruned_not_complete(tmp_path):
    cfg = config(tmp_path, budget=10, fidelity=replace(SMOKE, epochs=4), early_stop=True, sampler="random", seed=3,
                 concurrency=2)  # ASHA judges trials that run beside each other
    study = run_search(cfg, trainer=slow_trainer)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.RUNNING) == 0 and len(states) == 10
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned, "ASHA stopped no trial"
    for trial in pruned:
        assert trial.values is None and trial.user_attrs["epochs"] < 4
        assert trial.user_attrs["top1_when_stopped"] is not None
    for trial in complete:
        assert trial.user_attrs["epochs"] == 4


def trained(study) -> list[tuple[str, int]]:
    """(genome, seed) of every COMPLETE trial that trained (not one that reused a result)."""
    return [(t.user_attrs["genome"], t.user_attrs["seed"]) for t in study.trials
            if t.state == TrialState.COMPLETE and "reused_from" not in t.user_attrs]


def final_trainer(genome, data, fidelity, seed=0, device=None, evaluate_on="val", **_):
    assert evaluate_on == "test", "final figures come from the test split"
    return SimpleNamespace(top1=fake_top1(genome, fidelity.epochs, seed) - 1.5, top5=99.0)


def test_final_retrains_the_picks_with_their_seeds_on_the_test_split(tmp_path, capsys):
    cfg = config(tmp_path, budget=10, repeats=2, sampler="random", seed=4)
    study = run_search(cfg, trainer=scripted_trainer)
    front = Front.of_study(study)
    results = run_final(study, 2, cfg.data, cfg.fidelity, cfg.resources, trainer=final_trainer)
    picks = final_candidates(front, 2)
    assert set(results) == {p.genome for p in picks} and picks[0].genome == knee(front).genome
    for chosen in picks:  # every seed of the genome, retrained
        assert results[chosen.genome] == {
            str(seed): {"top1": fake_top1(Genome.from_string(chosen.genome), SMOKE.epochs, seed) - 1.5, "top5": 99.0}
            for seed in chosen.seeds}
    assert study.user_attrs["final_test"] == results
    assert "evaluating on the test split" in capsys.readouterr().err
    run_final(study, 2, cfg.data, cfg.fidelity, cfg.resources, trainer=final_trainer)  # resumable: nothing left
    assert "final:" not in capsys.readouterr().err
    summary = write_report(study, tmp_path / "report")
    assert any("test" in line for line in summary.final_lines)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return run_module("ulsam_nas.search", *args)


def test_killed_search_resumes_to_its_budget(tmp_path):
    """Real (quick) training, kill -9 while repeats run, then resume: no (genome, seed) is trained
    twice or lost, and the repeats still reach K."""
    study_dir = tmp_path / "study"
    args = ["--space", "mv2", "--budget", "4", "--repeats", "2", "--seed", "2", "--no-paper-seeds", "--fidelity", QUICK,
            "--study", str(study_dir), *ONE_AT_A_TIME]
    driver = start_module("ulsam_nas.search", *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    storage = f"sqlite:///{study_dir / 'study.db'}"
    states = kill_once_running(driver, study_dir / "study.db")
    assert "COMPLETE" in states and "RUNNING" in states, states
    before = optuna.load_study(study_name="mv2-synthetic", storage=storage)
    finished_before = {t.number: t.values for t in before.trials if t.state == TrialState.COMPLETE}
    running_before = {t.number: t.user_attrs["seed"] for t in before.trials if t.state == TrialState.RUNNING}

    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "interrupted trial(s)" in result.stderr and "optuna-dashboard sqlite:///" in result.stdout

    after = optuna.load_study(study_name="mv2-synthetic", storage=storage)
    assert not [t for t in after.trials if t.state == TrialState.RUNNING]
    for number, values in finished_before.items():
        assert after.trials[number].values == values  # no finished trial lost
    for number in running_before:
        assert after.trials[number].state == TrialState.FAIL
        assert after.trials[number].user_attrs["failure"] == INTERRUPTED
    reruns = {t.user_attrs["rerun_of"]: t.user_attrs["seed"] for t in after.trials if "rerun_of" in t.user_attrs}
    assert reruns == running_before  # they ran again, with the same seeds
    pairs = trained(after)
    assert len(pairs) == len(set(pairs)) == 4  # nothing trained twice, nothing lost
    front = Front.of_study(after)
    assert front.members and all(m.n == 2 for m in front.members)
    assert all(s.n == 2 for s in front.stats)  # both genomes reached K = 2 seeds: 2 and 3
    assert {seed for _, seed in pairs} == {2, 3}
    assert "seed noise σ =" in result.stdout and "validation split" in result.stdout


def test_search_never_reads_the_test_split(tmp_path):
    """A data set whose test images are unreadable: the search completes (--final would fail)."""
    root = layouts.folder(tmp_path / "data", per_class=(12, 2))
    for image in (root / "val").rglob("*.jpg"):
        image.write_bytes(b"not an image")
    study_dir = tmp_path / "study"
    result = run_cli("--space", "mv2", "--dataset", f"folder:{root}", "--budget", "2", "--repeats", "1",
                     "--no-paper-seeds", "--study", str(study_dir), *ONE_AT_A_TIME)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="mv2-folder", storage=f"sqlite:///{study_dir / 'study.db'}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.user_attrs["val_fraction"] == 0.1


def _bad_space(tmp_path: Path) -> str:
    path = tmp_path / "bad.toml"
    path.write_text("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\n4 = { actions = ['insert'], groups = [16] }\n")
    return str(path)


BAD_INPUT = [
    (["--space", "nope"], "unknown space 'nope'"),
    (["--space", "{bad_space}"], "layers.4.groups: g=16 does not divide layer 4's 24 channels"),
    (["--budget", "0"], "--budget must be at least 1, got 0"),
    (["--dataset", "imagenet:/data"], "unknown data set 'imagenet'"),
    (["--dataset", "cub200:{tmp}/missing"], "cub200: root {tmp}/missing does not exist"),
    (["--storage", "sqlite:///{tmp}/no/such/dir/study.db"], "cannot open storage"),
    (["--storage", "postgresql://nobody@127.0.0.1:1/db"], "cannot open storage postgresql://nobody@127.0.0.1:1/db"),
    (["--storage", "not a url"], "is not an SQLAlchemy URL"),
    (["--storage", "mysql://nobody@127.0.0.1:1/db"], "studies live in SQLite (the default) or PostgreSQL, not mysql"),
    (["--repeats", "0"], "--repeats must be at least 1, got 0"),
    (["--sampler", "gp", "--budget", "500"], "--sampler gp takes a budget of at most 200, got 500"),
    (["--val-fraction", "0.7"], "--val-fraction must be in (0, 0.5], got 0.7"),
    (["--final", "-1"], "--final must be 0 or more, got -1"),
    (["--cost-tolerance", "2"], "--cost-tolerance must be in [0, 0.5), got 2.0"),
    (["--address", "127.0.0.1:1"], "no Ray cluster at '127.0.0.1:1'"),
    (["--gpus-per-trial", "1"], "there is no GPU in this Ray cluster"),
    (["--objectives", "top1,flops"], "unknown objective 'flops'; choose from top1, macs, params, latency"),
    (["--objectives", "macs,params"], "--objectives needs exactly one training metric (top1)"),
    (["--max-latency", "fast"], "latency limit 'fast' is not a number"),
    pytest.param(["--latency-device", "cuda", "--objectives", "top1,latency"], "latency device cuda: there is no CUDA GPU here",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
]


@pytest.mark.parametrize("args, message", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    replacements = {"{tmp}": str(tmp_path), "{bad_space}": _bad_space(tmp_path)}

    def fill(text: str) -> str:
        for key, value in replacements.items():
            text = text.replace(key, value)
        return text

    study_dir = tmp_path / "study"
    # Refusals that need Ray run as a real process (it starts Ray); the others are refused first.
    run = run_cli if args[0] in ("--address", "--gpus-per-trial") else partial(run_main, "ulsam_nas.search")
    result = run(*[fill(a) for a in args], "--study", str(study_dir))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and fill(message) in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    assert not study_dir.exists()


@pytest.mark.parametrize("value", ["0", "nan"])
@pytest.mark.parametrize("module, args", [("ulsam_nas.search", []),
                                          ("ulsam_nas.calibrate", ["--fidelities", "smoke", "--reference", "proxy"])])
def test_bad_cpus_per_trial_is_one_line_exit_2_in_both_commands(tmp_path, module, args, value):
    """Both commands take the Ray resource flags from ``cli.add_resource_flags``: a CPU share that
    is 0 or not a number is refused while the flags are parsed, before Ray starts or anything trains."""
    result = run_main(module, *args, "--cpus-per-trial", value, "--study", str(tmp_path / "study"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: argument --cpus-per-trial: must be a finite number above 0, got {value!r} (see python -m {module} --help)"]
    assert not (tmp_path / "study").exists()


def test_trials_are_sized_against_the_cluster(capsys):
    """``cli.size_trials`` on this module's Ray: the concurrency the CPUs hold, and a trial asking
    for more than the cluster has refused in one line."""
    cpus, gpus = ray.cluster_resources()["CPU"], ray.cluster_resources().get("GPU", 0)
    flags = SimpleNamespace(cpus_per_trial=1.0, gpus_per_trial=0.0, concurrency=None)
    sized = size_trials(flags)
    assert (sized.cpus, sized.gpus, sized.concurrency, sized.cluster_has_gpus) == (1.0, 0.0, int(cpus), bool(gpus))
    assert sized.ray == {"cpu": 1.0, "gpu": 0.0}
    assert size_trials(SimpleNamespace(cpus_per_trial=1.0, gpus_per_trial=0.0, concurrency=7)).concurrency == 7
    with pytest.raises(SystemExit) as stopped:
        size_trials(SimpleNamespace(cpus_per_trial=cpus + 1, gpus_per_trial=0.0, concurrency=None))
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --cpus-per-trial {cpus + 1:g}: the Ray cluster has {cpus:g} CPUs"]
