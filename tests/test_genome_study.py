"""The genome study beside the trial study: one trial per genome at its mean over seeds, so that
optuna-dashboard's own Pareto front, History and Best Trials show genome means, not a lucky seed.
On the study folder of conftest's ``study_dir``, with one lucky seed added: 17:1 g=4 at 41 and 49."""

import json
import threading
import urllib.request

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState
from optuna_dashboard import get_note

from ulsam_nas.analysis.front import Front
from ulsam_nas.models.spaces import load_space
from ulsam_nas.report.genome_study import genome_trial
from ulsam_nas.report.publish import publish_front
from ulsam_nas.simulate.driver import simulate_search
from ulsam_nas.studies import open_storage

from .commands import in_chromium, needs_chromium, run_main, serving_dashboard
from .conftest import add

optuna.logging.set_verbosity(optuna.logging.WARNING)

LUCKY = 49.0  # 17:1 g=4's second seed: its mean is 45, and Optuna's per-trial front holds the 49


def url_of(study_dir) -> str:
    return f"sqlite:///{study_dir / 'study.db'}"


def names(study_dir) -> list[str]:
    return [s.study_name for s in open_storage(url_of(study_dir)).get_all_studies()]


@pytest.fixture
def lucky_study(study_dir) -> optuna.Study:
    study = optuna.load_study(study_name="mv2-synthetic", storage=url_of(study_dir))
    add(study, "mv2_w1.0(17:1g4)", LUCKY, "MV2 17:1 g=4", seed=1, repeat_of=3)
    return study


def genome_study(study_dir) -> optuna.Study:
    return optuna.load_study(study_name="mv2-synthetic:genomes", storage=url_of(study_dir))


def test_the_genome_study_holds_one_trial_per_genome_at_its_mean_over_seeds(study_dir, lucky_study):
    publish_front(lucky_study, open_storage(url_of(study_dir)))
    genomes = genome_study(study_dir)
    assert genomes.directions == lucky_study.directions and genomes.metric_names == ["top1", "macs", "params"]
    trials = {t.user_attrs["genome"]: t for t in genomes.trials}
    assert len(genomes.trials) == len(trials) == 5 and all(t.state == TrialState.COMPLETE for t in genomes.trials)
    lucky = trials["mv2_w1.0(17:1g4)"]
    assert lucky.values[0] == 45.0 and lucky.user_attrs["seeds"] == [0, 1] and lucky.user_attrs["n"] == 2
    assert lucky.user_attrs["top1_std"] == pytest.approx(5.657, abs=1e-3) and lucky.user_attrs["paper_label"] == "MV2 17:1 g=4"
    assert trials["mv2_w1.0(16g4,17g4)"].values[0] == 43.0  # 42 and 44; the reused 44 is the same training
    front = Front.of_study(lucky_study)
    for stats in front.stats:
        trial = trials[stats.genome]
        assert trial.values == front.values(stats)  # the mean and the costs, in the study's objective order
        assert trial.user_attrs["top1_shrunk"] == pytest.approx(front.estimate(stats))
        assert trial.user_attrs["top1_ci95"] == pytest.approx(stats.ci95(front.noise))
        assert trial.user_attrs["verdict"] == front.verdict(stats).describe()
    assert [t.user_attrs["first_trial"] for t in genomes.trials] == sorted(s.trial for s in front.stats)
    # Each study's note says which is which.
    assert "records every training" in get_note(genomes) and "*mv2-synthetic*" in get_note(genomes)
    assert "*mv2-synthetic:genomes*" in get_note(lucky_study)


def test_the_genome_trials_read_back_as_optunas_own_add_trials_writes_them(tmp_path):
    """The rebuild writes the genome trials in one transaction through Optuna's table models (its
    ``add_trials`` is quadratic in the study); read back, they are what ``add_trials`` stores. On a
    simulated search's study, whose trials carry the parameters they were sampled with."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = simulate_search(load_space("mv2"), "paper:cub200", 40, sampler="random", concurrency=4, storage=url).study
    publish_front(study, open_storage(url))
    front = Front.of_study(study)
    sampled = {t.number: t for t in study.trials}
    reference = optuna.create_study(storage=f"sqlite:///{tmp_path / 'reference.db'}", directions=study.directions)
    reference.add_trials([genome_trial(s, front, sampled.get(s.trial)) for s in sorted(front.stats, key=lambda s: s.trial)])

    def fields(trial: optuna.trial.FrozenTrial) -> tuple:
        return (trial.number, trial.state, trial.values, trial.params, trial.distributions, trial.user_attrs,
                trial.system_attrs, trial.datetime_start, trial.datetime_complete)

    genomes = optuna.load_study(study_name=study.study_name + ":genomes", storage=url).trials
    assert [fields(t) for t in genomes] == [fields(t) for t in reference.trials]
    assert len(genomes) > 20 and all(t.params for t in genomes) and any(t.user_attrs.get("paper_label") for t in genomes)


def test_a_rebuild_keeps_the_id_and_no_reader_sees_it_half_built(study_dir, lucky_study):
    storage = open_storage(url_of(study_dir))
    publish_front(lucky_study, storage)
    genomes_id = storage.get_study_id_from_name("mv2-synthetic:genomes")
    add(lucky_study, "mv2_w1.0(14g2)", 38.0, seed=0)  # a sixth genome
    seen, stop = [], threading.Event()

    def read() -> None:  # another connection, as the dashboard's server reads
        reader = open_storage(url_of(study_dir))
        while not stop.is_set():
            seen.append(len(reader.get_all_trials(genomes_id, deepcopy=False)))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for _ in range(3):
            publish_front(lucky_study, storage)
    finally:
        stop.set()
        thread.join()
    assert storage.get_study_id_from_name("mv2-synthetic:genomes") == genomes_id
    assert len(storage.get_all_trials(genomes_id)) == 6
    assert seen and set(seen) <= {5, 6}, sorted(set(seen))  # the old study or the new, never a part
    assert names(study_dir) == ["mv2-synthetic", "mv2-synthetic:genomes"]  # no rebuilding study left
    assert rows_of_deleted_trials(storage) == 0  # the storage does not grow with each publication


def rows_of_deleted_trials(storage) -> int:
    """Rows of Optuna's trial tables whose trial is gone (what a rebuild deleted, left behind)."""
    from optuna.storages._rdb import models

    with storage.engine.connect() as connection:
        return sum(connection.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(table).where(
            table.c.trial_id.not_in(sqlalchemy.select(models.TrialModel.trial_id)))).scalar()
            for table in models.BaseModel.metadata.sorted_tables if "trial_id" in table.c and table.name != "trials")


def test_a_rebuild_left_by_a_killed_driver_is_cleared(study_dir, lucky_study):
    storage = open_storage(url_of(study_dir))
    left = optuna.create_study(storage=storage, study_name="mv2-synthetic:genomes (rebuilding)",
                               directions=lucky_study.directions)
    left.add_trial(optuna.trial.create_trial(values=[1.0, 2.0, 3.0]))
    publish_front(lucky_study, storage)
    assert names(study_dir) == ["mv2-synthetic", "mv2-synthetic:genomes"]
    assert len(genome_study(study_dir).trials) == 5
    assert rows_of_deleted_trials(storage) == 0


def test_reading_a_study_never_creates_its_genome_study(study_dir):
    result = run_main("ulsam_nas.report", "--study", study_dir)
    assert result.returncode == 0, result.stderr
    assert names(study_dir) == ["mv2-synthetic"]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@needs_chromium
def test_the_dashboard_opens_on_genome_means_not_on_a_lucky_seed(study_dir, lucky_study, tmp_path):
    storage = open_storage(url_of(study_dir))
    publish_front(lucky_study, storage)
    trials_id, genomes_id = (storage.get_study_id_from_name(n) for n in ("mv2-synthetic", "mv2-synthetic:genomes"))
    log = tmp_path / "dashboard.txt"
    with serving_dashboard(study_dir, log) as base:
        printed = log.read_text().splitlines()
        assert printed[1].strip().startswith(f"{base}/dashboard/studies/{genomes_id} ")
        assert printed[1].endswith("genome means over seeds (study 'mv2-synthetic:genomes'): start here")
        with urllib.request.urlopen(f"{base}/", timeout=10) as response:  # the root leads to the genome study
            assert response.url == f"{base}/dashboard/studies/{genomes_id}"

        per_trial = _get(f"{base}/api/studies/{trials_id}")["best_trials"]
        assert LUCKY in [t["values"][0] for t in per_trial]  # Optuna's own front on the trial study: the lucky seed
        best = _get(f"{base}/api/studies/{genomes_id}")["best_trials"]
        by_genome = {next(a["value"] for a in t["user_attrs"] if a["key"] == "genome"): t["values"][0] for t in best}
        assert LUCKY not in by_genome.values() and by_genome["mv2_w1.0(17:1g4)"] == 45.0
        assert by_genome["mv2_w1.0(16g4,17g4)"] == 43.0

        screenshot = tmp_path / "first-screen.png"
        dom = in_chromium(f"{base}/", tmp_path / "profile", "--dump-dom").stdout
        in_chromium(f"{base}/", tmp_path / "profile", f"--screenshot={screenshot}")
    # The first screen is the genome study's page: Optuna's Pareto front there, over genome means,
    # above the product's figures with their error bars.
    assert "mv2-synthetic:genomes" in dom and "js-plotly-plot" in dom, dom[-2000:]
    assert "Pareto Front" in dom and dom.index("Pareto Front") < dom.index('id="user-defined-plot:ulsam-front-macs"')
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
