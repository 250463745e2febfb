import compileall
import contextlib
import fcntl
import os
import pickle
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    # Several pytest workers (``make test``: three on two cores): every process computes on one
    # thread, these workers and every command and Ray worker they start (which inherit this
    # environment). Set before numpy and torch load: OpenMP reads it once. Threads that spin-wait
    # for each other on oversubscribed cores burned 4% of the suite's CPU time.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

import optuna
import pytest
from optuna.trial import TrialState

import ulsam_nas
from ulsam_nas import Genome, count_cost
from ulsam_nas.models.genome import INSERT, Placement
from ulsam_nas.models.spaces import SearchSpace, load_space
from ulsam_nas.studies import holds_secret, write_pointer

from .commands import SUITE_RAY, wait_until
from .services import postgres_server, postgres_url, ray_cluster, ray_head, token_home  # noqa: F401 - fixtures

SUITE_CLUSTER = pytest.StashKey[contextlib.ExitStack]()

LONGEST_FIRST = (
    "test_four_drivers_one_killed_and_restarted_leave_the_budget_exact",
    "test_oneshot_search_resumes_a_killed_supernet_then_scores_confirms_and_reports",
    "test_killed_search_resumes_to_its_budget",
    "test_killed_calibration_resumes_without_retraining_and_measures_a_oneshot_candidate",
    "test_latency_objective_through_search_report_and_export",
    "test_search_joins_a_cluster_started_with_ray_defaults", "test_drivers_wait_for_each_others_trainings",
    "test_random_genome_with_trained_weights", "test_a_password_in_the_url_is_used_and_stored_nowhere",
    "test_the_real_driver_makes_the_simulated_study_and_the_planners_figures", "test_search_never_reads_the_test_split",
    "test_paper_configuration_exports_standalone_with_the_cost_models_params", "test_trial_states_tell_the_truth",
    # Early, so that its fixture (vanilla_runs, 30 s) is ready when the file's other tests need it.
    "test_smoke_vanilla_mv2_learns_well_above_chance_but_not_everything",
)
"""The suite's longest tests, longest first (the CI's ``--durations``)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first, so that the run ends on short tests instead of on one long test with the
    other workers idle. pytest-xdist's load scheduler (``--maxschedchunk 1``) starts each worker
    with two tests, then keeps two queued on each: a short test after each of the ``-n`` longest
    puts them on different workers."""
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    longest = sorted((item for item in items if item.originalname in rank), key=lambda item: rank[item.originalname])
    rest = [item for item in items if item.originalname not in rank]  # in file order
    first, pairs = longest[:WORKERS], list(zip(longest[:WORKERS], rest))
    items[:] = [item for pair in pairs for item in pair] + first[len(pairs):] + longest[WORKERS:] + rest[len(pairs):]


def computed_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[], object]) -> object:
    """``build()``, computed once per test run however many pytest-xdist workers ask for it: the
    first computes it under a lock and pickles it in the run's temporary folder, which the workers
    share, and the others read it (pytest-xdist's documented pattern for a session fixture)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build()
    shared = tmp_path_factory.getbasetemp().parent  # pytest-N/, the parent of every worker's popen-gwK/
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored = shared / f"{name}.pickle"
        if not stored.exists():
            stored.write_bytes(pickle.dumps(build()))
        return pickle.loads(stored.read_bytes())


def random_genome(space: SearchSpace, rng: random.Random, width_mult: float | None = None) -> Genome:
    """A genome drawn uniformly from the space's per-layer choices."""
    placements = []
    for layer, choice in sorted(space.layers.items()):
        action = rng.choice(choice.actions)
        if action != "keep":
            placements.append(Placement(layer, action, rng.choice(choice.groups)))
    width = rng.choice(space.width_mults) if width_mult is None else width_mult
    return Genome(space.backbone, tuple(placements), width)


@pytest.fixture(scope="session")
def spaces() -> dict[str, SearchSpace]:
    return {name: load_space(name) for name in ("mv1", "mv2")}


__all__ = ["INSERT", "postgres_server", "postgres_url", "random_genome", "ray_cluster", "write_space"]


@pytest.fixture(autouse=True, scope="session")
def one_thread_per_worker():
    """One torch thread per pytest worker when there are several, even if torch was loaded before
    this file set OMP_NUM_THREADS."""
    import torch

    if WORKERS > 1:
        torch.set_num_threads(1)


def pytest_configure(config: pytest.Config) -> None:
    """One Ray cluster for the whole test run, started by the first pytest process (pytest-xdist's
    controller, before its workers start, so that they inherit its address): every command under
    test and every worker's ``local_ray`` joins it. A command starting and stopping a local Ray
    instance costs about 6 CPU-s, and an idle instance per pytest worker 2 CPU-s a minute: a tenth
    of the suite's CPU time. It is started as users start one (`ray start --head`, token
    authentication on), with 2 logical CPUs like this machine, so the commands' default
    concurrency is what a user's plain command gets here. Tests about a local instance itself
    start their own (``child_env(own_ray=True)``)."""
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller has started it
        return
    # Bytecode of the package, written once: with PYTHONDONTWRITEBYTECODE set (as on these
    # machines) every command and Ray worker would compile it again, 0.14 CPU-s each.
    compileall.compile_dir(Path(ulsam_nas.__file__).parent, quiet=1)
    root = Path(tempfile.mkdtemp(prefix="ray-"))
    home = token_home(root)
    # Without the user's Ray settings, libpq's variables or any value holding a password (CI's
    # ULSAM_NAS_POSTGRES_URL does): the trainings need none of them.
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("RAY_", "PG")) and not holds_secret(value)}
    # Its workers run every test's trainings: one thread each (see WORKERS), and a decoded-image
    # cache of the run's own, never the user's.
    env.update(HOME=str(home), ULSAM_NAS_CACHE=str(root / "cache"), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    stack = contextlib.ExitStack()
    stack.callback(shutil.rmtree, root, ignore_errors=True)
    try:
        address = stack.enter_context(ray_head(root, env, root / "head.log"))
    except BaseException:
        stack.close()
        raise
    config.stash[SUITE_CLUSTER] = stack
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.update({SUITE_RAY: address, "RAY_AUTH_MODE": "token",  # read when Ray is imported
                       "RAY_AUTH_TOKEN_PATH": str(home / ".ray" / "auth_token")})


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = config.stash.get(SUITE_CLUSTER, None)
    if stack is not None:
        stack.close()


@pytest.fixture(scope="session")
def local_ray():
    """The test run's Ray cluster, joined by this process, for every test that runs trials in it."""
    import ray

    ray.init(address=os.environ[SUITE_RAY], include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    """Every test (and every command it runs) uses a fresh decoded-image cache."""
    import os

    path = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("ULSAM_NAS_CACHE")
    os.environ["ULSAM_NAS_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("ULSAM_NAS_CACHE", None)
    else:
        os.environ["ULSAM_NAS_CACHE"] = previous


def trial_states(database: Path) -> list[str]:
    """The trial states of an Optuna SQLite file, read-only: polling a study that a driver is
    creating must not race it to create the schema (Optuna's storage would)."""
    import sqlite3

    if not database.is_file():
        return []
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return [state for (state,) in connection.execute("SELECT state FROM trials ORDER BY number")]
    except sqlite3.Error:  # the schema is not there yet
        return []


def kill_once_running(driver, database: Path) -> list[str]:
    """SIGKILL ``driver`` once its study has a finished trial and a running one (or it exited);
    returns the trial states seen last."""
    import signal

    states: list[str] = []

    def mid_run() -> bool:
        states[:] = trial_states(database)
        return "COMPLETE" in states and "RUNNING" in states or driver.poll() is not None

    try:
        wait_until(mid_run, f"a finished and a running trial in {database}", every_s=1.0)
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    return states


def write_space(folder: Path, layers: str, name: str = "tiny") -> Path:
    """A search-space file of MV2 at width 1.0 with the given ``[layers]`` lines, in ``folder``."""
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\nbackbone = "mv2"\nwidth_mults = [1.0]\n\n[layers]\n{layers.strip()}\n')
    return path


def add(study, genome: str, top1: float | None, label: str = "", state=TrialState.COMPLETE, **attrs):
    cost = count_cost(Genome.from_string(genome), num_classes=10)
    user_attrs = {"genome": genome, "macs": cost.macs, "params": cost.params, "fidelity": "smoke", **attrs}
    if label:
        user_attrs["paper_label"] = label
    values = [top1, float(cost.macs), float(cost.params)] if state == TrialState.COMPLETE else None
    study.add_trial(optuna.trial.create_trial(state=state, values=values, user_attrs=user_attrs))


@pytest.fixture
def study_dir(tmp_path) -> Path:
    """A study folder as the search writes it: pointer, SQLite storage, named objectives, trials
    with seeds. Two genomes have repeats (so σ is measured: 1.15 pp, df 3) and one (genome, seed)
    result is reused. "Beyond noise" is beyond the simultaneous bound, t(1 - 0.05/m, 3) standard
    errors, m the genomes of no worse cost:

    =====================  ==========================  ===========
    genome                 validation top-1 by seed    on the front beyond noise
    =====================  ==========================  ===========
    vanilla                36, 35, 37 (mean 36)        no: (16, 17) is 7 pp better at lower cost (bound 4.4)
    (16, 17) g=4           42, 44 (+ 44 reused)        yes (best mean, knee)
    (13, 14, 16, 17) g=4   35 (seed 1 failed)          yes (cheapest)
    17:1 g=4               41                          yes, within noise of (16, 17)
    (9, 13, 16, 17) g=8    25                          no: (13, 14, 16, 17) is 10 pp better
    =====================  ==========================  ===========
    """
    folder = tmp_path / "mv2-synthetic"
    url = f"sqlite:///{folder / 'study.db'}"
    write_pointer(folder, url, "mv2-synthetic", "mv2")
    study = optuna.create_study(storage=url, study_name="mv2-synthetic", directions=["maximize", "minimize", "minimize"])
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names(["top1", "macs", "params"])
    for key, value in {"space": "mv2", "backbone": "mv2", "dataset": "synthetic", "fidelity": "smoke", "num_classes": 10}.items():
        study.set_user_attr(key, value)
    add(study, "mv2_w1.0()", 36.0, "MV2 vanilla", seed=0)
    add(study, "mv2_w1.0(16g4,17g4)", 42.0, "MV2 (16, 17) g=4", seed=0)
    add(study, "mv2_w1.0(13g4,14g4,16g4,17g4)", 35.0, "MV2 (13, 14, 16, 17) g=4", seed=0)
    add(study, "mv2_w1.0(17:1g4)", 41.0, "MV2 17:1 g=4", seed=0)
    add(study, "mv2_w1.0(9g8,13g8,16g8,17g8)", 25.0, seed=0)
    add(study, "mv2_w1.0(12:1g2)", None, state=TrialState.FAIL, failure="RuntimeError: boom", seed=0)
    add(study, "mv2_w1.0(11g2)", None, state=TrialState.PRUNED, seed=0)
    add(study, "mv2_w1.0(16g4,17g4)", 44.0, "MV2 (16, 17) g=4", seed=1, repeat_of=1)
    add(study, "mv2_w1.0()", 35.0, "MV2 vanilla", seed=1, repeat_of=0)
    add(study, "mv2_w1.0()", 37.0, "MV2 vanilla", seed=2, repeat_of=0)
    add(study, "mv2_w1.0(16g4,17g4)", 44.0, "MV2 (16, 17) g=4", seed=1, repeat_of=1, reused_from=7)
    add(study, "mv2_w1.0(13g4,14g4,16g4,17g4)", None, "MV2 (13, 14, 16, 17) g=4", state=TrialState.FAIL,
        failure="RuntimeError: out of memory", seed=1, repeat_of=2)
    return folder
