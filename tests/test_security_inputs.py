"""A name, a space file or a received study is data, not a path or a command: names that would
write outside the studies folder and crafted study attributes are refused in one line, exit 2,
with nothing written. (Data folders that link out of their tree: tests/test_data.py.)"""

import shutil
from pathlib import Path

import optuna
import pytest

from ulsam_nas.analysis.objectives import Selection
from ulsam_nas.names import checked_name
from ulsam_nas.studies import write_pointer

from .commands import run_main
from .conftest import add, write_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def refused(result, message: str) -> None:
    """One ``error:`` line holding ``message``, exit status 2, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


@pytest.mark.parametrize("name", ["mv2-synthetic", "my study 2", "mv2_v1.0"])
def test_plain_names_are_names(name):
    assert checked_name("study name", name) == name


@pytest.mark.parametrize("name, problem", [
    ("../../../escaped", "is a path, not a name"),
    ("a/b", "is a path, not a name"),
    ("a\\b", "is a path, not a name"),
    ("..", "is a path, not a name"),
    (".hidden", "starts with '.'"),
    ("", "is empty"),
    ("a\x00b", "holds a control character"),
    ("a\nb", "holds a control character"),
    ("x" * 129, "is longer than 128 characters"),
])
def test_the_search_refuses_a_study_name_that_is_a_path(tmp_path, monkeypatch, name, problem):
    monkeypatch.chdir(tmp_path)
    result = run_main("ulsam_nas.search", "--study-name", name)
    refused(result, f"error: argument --study-name: study name {name[:128]!r} {problem}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module, flags", [
    ("ulsam_nas.search", []),
    ("ulsam_nas.calibrate", ["--fidelities", "smoke", "--reference", "proxy"]),
])
@pytest.mark.parametrize("name", ["../../../x", ".x"])
def test_a_space_file_whose_name_is_a_path_is_refused(tmp_path, monkeypatch, module, flags, name):
    monkeypatch.chdir(tmp_path)
    path = write_space(tmp_path, '17 = {actions = ["keep", "insert"], groups = [4]}')
    path.write_text(path.read_text().replace('name = "tiny"', f'name = "{name}"'))
    result = run_main(module, "--space", path.name, *flags)
    refused(result, f"{path.name}: name: space name {name!r}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_default_study_folder_linked_out_of_studies_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "mv2-synthetic").symlink_to(tmp_path / "elsewhere")
    result = run_main("ulsam_nas.search")
    refused(result, f"studies/mv2-synthetic resolves to {tmp_path / 'elsewhere'}, outside studies")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_ray_folder_linked_out_of_the_study_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "ray").symlink_to(tmp_path / "elsewhere")
    result = run_main("ulsam_nas.search", "--study", tmp_path / "study", "--study-name", "s")
    refused(result, f"resolves to {tmp_path / 'elsewhere' / 's'}, outside {tmp_path / 'study'}")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_nan_cpu_count_is_refused(tmp_path):
    result = run_main("ulsam_nas.search", "--cpus-per-trial", "nan", "--study", tmp_path / "s")
    refused(result, "argument --cpus-per-trial: must be a finite number above 0, got 'nan'")
    assert not (tmp_path / "s").exists()


def stored_specs() -> list[dict]:
    """What a search stores as ``objective_specs`` for top1, macs and params."""
    return Selection.parse("top1,macs,params").specs({"top1": 0.0, "macs": 4e8, "params": 4e6})


def with_spec(index: int, **changes) -> list[dict]:
    specs = stored_specs()
    specs[index] = {**specs[index], **changes}
    return specs


CLASS_COUNTS = [
    (1e12, "the study's num_classes: expected a whole number from 1 to 100000, got 1000000000000.0"),
    (10**12, "the study's num_classes: expected a whole number from 1 to 100000, got 1000000000000"),
    (-1, "got -1"),
    (0, "got 0"),
    ("ten", "got 'ten'"),
    (10.5, "got 10.5"),
    (True, "got True"),
]

OBJECTIVE_SPECS = [
    ("objective_specs", "top1,macs", "the study's objective_specs: expected a list, got 'top1,macs'"),
    ("objective_specs", with_spec(1, evil="x"), "the study's objective_specs[1]: expected the fields name, direction"),
    ("objective_specs", with_spec(1, name="no such objective!"), "the study's objective_specs[1]: objective name"),
    ("objective_specs", with_spec(1, direction="sideways"), "direction must be maximize or minimize"),
    ("objective_specs", with_spec(1, scale=0), "the study's objective_specs[1].scale: expected a finite number above 0"),
    ("objective_specs", with_spec(1, digits=10**9), "the study's objective_specs[1].digits: expected a whole number"),
    ("objective_specs", with_spec(1, reference=0.0), "the reference 0.0 equals the ideal value"),
    ("objective_specs", with_spec(2, metric="params"), "exactly one of them a maximised training metric"),
    ("objective_specs", stored_specs()[:2], "the study's objectives top1, macs are to maximize, minimize, but its "
                                            "values are to maximize, minimize, minimize"),
    ("cost_tolerance", "abc", "the study's cost_tolerance: expected a number in [0, 0.5), got 'abc'"),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A small study folder as the search leaves it (pointer, SQLite storage, three genomes, the
    second with two seeds), built once: each test tampers with a copy."""
    folder = tmp_path_factory.mktemp("pristine") / "mv2-synthetic"
    url = f"sqlite:///{folder / 'study.db'}"
    write_pointer(folder, url, "mv2-synthetic", "mv2")
    study = optuna.create_study(storage=url, study_name="mv2-synthetic", directions=["maximize", "minimize", "minimize"])
    for key, value in {"space": "mv2", "dataset": "synthetic", "fidelity": "smoke", "num_classes": 10}.items():
        study.set_user_attr(key, value)
    add(study, "mv2_w1.0()", 36.0, seed=0)
    add(study, "mv2_w1.0(16g4,17g4)", 42.0, seed=0)
    add(study, "mv2_w1.0(16g4,17g4)", 44.0, seed=1, repeat_of=1)
    add(study, "mv2_w1.0(13g4,14g4,16g4,17g4)", 35.0, seed=0)
    return folder


@pytest.fixture
def study_dir(pristine, tmp_path) -> Path:
    """A copy of the pristine study folder, its pointer naming the copy's storage."""
    folder = tmp_path / pristine.name
    shutil.copytree(pristine, folder)
    write_pointer(folder, f"sqlite:///{folder / 'study.db'}", "mv2-synthetic", "mv2")
    return folder


def crafted(study_dir, key: str, value) -> None:
    study = optuna.load_study(study_name="mv2-synthetic", storage=f"sqlite:///{study_dir / 'study.db'}")
    study.set_user_attr(key, value)


@pytest.mark.parametrize("value, message", CLASS_COUNTS)
def test_a_crafted_class_count_is_refused_by_every_command_that_reads_it(study_dir, tmp_path, value, message):
    crafted(study_dir, "num_classes", value)
    out = tmp_path / "exported"
    refused(run_main("ulsam_nas.export", "--study", study_dir, "--out", out), message)
    refused(run_main("ulsam_nas.latency", "--study", study_dir), message)
    refused(run_main("ulsam_nas.report", "--study", study_dir, "--out", tmp_path / "report"), message)
    assert not out.exists()


@pytest.mark.parametrize("key, value, message", OBJECTIVE_SPECS)
def test_crafted_objectives_are_refused_by_report_and_export(study_dir, tmp_path, key, value, message):
    crafted(study_dir, key, value)
    out = tmp_path / "exported"
    refused(run_main("ulsam_nas.export", "--study", study_dir, "--out", out), message)
    refused(run_main("ulsam_nas.report", "--study", study_dir, "--out", tmp_path / "report"), message)
    assert not out.exists() and not (tmp_path / "report").exists()


@pytest.mark.parametrize("value, message", [
    ("cpu", "the study's latency_target_key: expected {'device': ..., 'threads': ...}, got 'cpu'"),
    ({"device": "cpu", "threads": 1, "host": "x"}, "the study's latency_target_key: expected {'device'"),
    ({"device": "tpu", "threads": 1}, "the study's latency_target_key: latency device must be cpu or cuda, not 'tpu'"),
    ({"device": "cpu", "threads": 10**9}, "the study's latency_target_key: latency threads must be at most 1024"),
    ({"device": "cpu", "threads": 1.5}, "the study's latency_target_key: latency threads must be a whole number, got 1.5"),
])
def test_a_crafted_latency_target_is_refused_by_export(study_dir, tmp_path, value, message):
    crafted(study_dir, "latency_target_key", value)
    out = tmp_path / "exported"
    refused(run_main("ulsam_nas.export", "--study", study_dir, "--out", out), message)
    assert not out.exists()


def test_the_objectives_a_search_stores_read_back(study_dir):
    crafted(study_dir, "objective_specs", stored_specs())
    study = optuna.load_study(study_name="mv2-synthetic", storage=f"sqlite:///{study_dir / 'study.db'}")
    assert Selection.of_study(study).names == ["top1", "macs", "params"]
