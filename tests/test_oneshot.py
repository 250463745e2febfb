"""One-shot mode through the real command: a kill -9 during supernet training and its resumption,
exploration on one-shot scores, standalone confirmation with a random panel, rank agreement with
its ceiling and baselines, the report, and a rerun reusing it all."""

import os
import re
import signal
import subprocess

import optuna
import pandas as pd
from optuna.trial import TrialState

from ulsam_nas.analysis.agreement import TIED_HALF, RankAgreement

from .commands import run_main, run_module, start_module, wait_until
from .conftest import write_space

TINY_LAYERS = """
16 = { actions = ["keep", "substitute"], groups = [4] }
17 = { actions = ["keep", "insert"], groups = [4, 8] }
"""
FIDELITY = "smoke:epochs=1,train_images=200,test_images=100"


def oneshot_args(space, study_dir, *extra: str) -> list[str]:
    """Arguments of ``python -m ulsam_nas.search`` for a one-shot search of ``space``."""
    return ["--space", str(space), "--strategy", "oneshot", "--fidelity", FIDELITY, "--study", str(study_dir),
            "--no-paper-seeds", *extra]


def agreement(pairs: dict[str, tuple[float, float]]) -> RankAgreement:
    """The agreement of one-shot scores and standalone means given as pairs (each mean one seed,
    the costs the same for every genome: no cost baseline)."""
    return RankAgreement.of({g: p[0] for g, p in pairs.items()}, {g: [p[1]] for g, p in pairs.items()},
                            {g: (3e8, 2e6) for g in pairs})


def test_rank_agreement_warns_when_tau_may_be_zero():
    agreeing = agreement({f"g{i}": (float(i), float(i) + 0.5 * (i % 2)) for i in range(12)})
    assert agreeing.tau > 0.8 and not agreeing.includes_zero and len(agreeing.lines()) == 2
    assert agreeing.lines()[1].startswith("ceiling not measurable")
    random_order = agreement({f"g{i}": (float(i), float((i * 7) % 5)) for i in range(6)})
    assert random_order.includes_zero and random_order.lines()[-1].startswith("warning: the τ interval includes 0")
    assert agreement({"a": (1.0, 2.0), "b": (2.0, 1.0)}).lines()[0].startswith("one-shot ranking: not measurable")


def test_a_negative_confirm_panel_is_one_line_exit_2(tmp_path):
    result = run_main("ulsam_nas.search", "--strategy", "oneshot", "--confirm-panel", "-1", "--study", str(tmp_path / "s"))
    assert result.returncode == 2 and "--confirm-panel must be 0 or more, got -1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


def test_oneshot_search_resumes_a_killed_supernet_then_scores_confirms_and_reports(tmp_path):
    """One study through every stage: a driver killed (kill -9, with its Ray processes) during
    supernet training, the rerun resuming the supernet from its last finished epoch and going on to
    exploration, confirmation and the report, then a larger budget reusing all of it. One study
    for all three: each run of the command starts its Ray workers again, the suite's main cost."""
    space = write_space(tmp_path, TINY_LAYERS)  # 6 genomes
    study_dir = tmp_path / "study"
    args = oneshot_args(space, study_dir, "--budget", "10", "--confirm", "2", "--confirm-panel", "1", "--repeats", "1",
                        "--supernet-epochs", "3")
    driver = start_module("ulsam_nas.search", *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    try:
        wait_until(lambda: list(study_dir.glob("supernet/*/supernet.pt")) or driver.poll() is not None,
                   "the first supernet checkpoint")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        driver.wait()
    assert list(study_dir.glob("supernet/*/supernet.pt")), "the driver ended before its first supernet checkpoint"

    result = run_module("ulsam_nas.search", *args)
    assert result.returncode == 0, result.stderr
    assert re.search(r"supernet: resuming after epoch [12] of 3", result.stderr), result.stderr
    assert "supernet: epoch 1/3" not in result.stderr and "supernet: epoch 3/3" in result.stderr
    assert "oneshot: 10/10 trials" in result.stderr
    storage = f"sqlite:///{study_dir / 'study.db'}"
    oneshot = optuna.load_study(study_name="tiny-synthetic-oneshot", storage=storage)
    assert sum(t.state.is_finished() for t in oneshot.trials) == 10
    assert all(t.user_attrs["score_source"] == "oneshot" for t in oneshot.trials)
    scores = {t.user_attrs["genome"]: t.values[0] for t in oneshot.trials if t.state == TrialState.COMPLETE}
    assert all(0 <= s <= 100 for s in scores.values())

    # The top 2 of the one-shot ranking and a random panel of 1, each with 2 seeds although
    # --repeats is 1: the ceiling needs them (and 3 genomes).
    study = optuna.load_study(study_name="tiny-synthetic", storage=storage)
    confirmed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    stored = study.user_attrs["oneshot"]
    assert len(stored["confirm"]) == 2 and set(stored["confirm"]) <= set(scores)
    assert len(stored["panel"]) == 1 and not set(stored["panel"]) & set(stored["confirm"])
    assert re.search(r"confirm: the top 2 of \d one-shot genomes with 2 seed\(s\) each, and 1 random genomes with 2: "
                     r"6 of 6 trainings to run", result.stderr), result.stderr
    assert len(confirmed) == 6 and all(t.user_attrs["score_source"] == "standalone" for t in confirmed)
    assert sorted((t.user_attrs["genome"], t.user_attrs["seed"]) for t in confirmed) == \
        sorted((g, s) for g in stored["confirm"] + stored["panel"] for s in (0, 1))
    assert set(stored["pairs"]) == {t.user_attrs["genome"] for t in confirmed}
    assert stored["ceiling_and_baselines"]["repeated"] == 3
    assert "one-shot ranking" in result.stdout and "Front of 'tiny-synthetic'" in result.stdout
    # The ceiling is measured, unless one half of the seeds gives every genome the same top-1 (a tiny
    # proxy can leave every genome at chance on a seed; which seed depends on the CPU's kernels).
    halves = [{t.values[0] for t in confirmed if t.user_attrs["seed"] == seed} for seed in (0, 1)]
    if all(len(half) > 1 for half in halves):
        assert "ceiling: the standalone means against themselves, split-half τ" in result.stdout
    else:
        assert f"ceiling not measurable: {TIED_HALF}" in result.stdout
    assert "baselines, ranking by cost: MACs τ" in result.stdout
    html = (study_dir / "report" / "report.html").read_text()
    assert "One-shot scores against standalone training" in html
    genomes = pd.read_csv(study_dir / "report" / "genomes.csv")
    assert set(genomes["genome"]) == set(stored["pairs"])  # the front and tables hold confirmed genomes only

    # A larger budget on the same study reuses the supernet and the scores it has.
    again = run_module("ulsam_nas.search", *oneshot_args(space, study_dir, "--budget", "12", "--confirm", "2",
                                                         "--confirm-panel", "1", "--repeats", "1",
                                                         "--supernet-epochs", "3"))
    assert again.returncode == 0, again.stderr
    assert "supernet: reusing" in again.stderr and "0 of 6 trainings to run" in again.stderr
