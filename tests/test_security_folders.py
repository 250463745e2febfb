"""A received study folder is inert: nothing is written through a symbolic link in it, no link
leads a command's reading out of it, its pointer names no file outside it and no storage but
SQLite or PostgreSQL, and its text reaches a terminal or the exported README as text. Real
folders with real links, and a victim outside them whose content and mtime must not change;
every refusal is one line on stderr and exit status 2."""

import hashlib
import json
import os
import shutil

import optuna
import pytest
import torch

from ulsam_nas.export.architecture import Architecture
from ulsam_nas.export.source import model_description, readme_text
from ulsam_nas.models.genome import Genome
from ulsam_nas.names import shown
from ulsam_nas.safe_files import LinkRefused, StudyArtifactStore, check_no_links, write_file
from ulsam_nas.studies import POINTER, StudyLock, read_pointer, write_pointer
from ulsam_nas.train.supernet import _claim, _save_atomically

from .commands import run_main, run_module
from .conftest import add

optuna.logging.set_verbosity(optuna.logging.WARNING)

ANSI_LABEL = "MV2 \x1b[2J\x1b]0;owned\x07\rfake line\x9b31m"  # clear screen, set title, rewrite the line, C1 CSI
BIDI_LABEL = "MV2 \u202egnp.exe\u202c \u2066x\u2069"  # right-to-left override, isolates
HTML_LABEL = "<img src=x onerror=alert(1)> [x](javascript:alert(1)) ![i](http://x/i.png) # h\n<script>s</script>"


def refused(result, message: str) -> None:
    """One ``error:`` line holding ``message``, exit status 2, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def fingerprint(path):
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A small study folder as the search leaves it, its labels holding terminal escapes and bidi
    overrides, built once; each test tampers with a copy."""
    folder = tmp_path_factory.mktemp("pristine") / "received"
    url = f"sqlite:///{folder / 'study.db'}"
    write_pointer(folder, url, "received", "mv2")
    study = optuna.create_study(storage=url, study_name="received", directions=["maximize", "minimize", "minimize"])
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names(["top1", "macs", "params"])
    for key, value in {"space": "mv2", "backbone": "mv2", "dataset": "synthetic", "fidelity": "smoke",
                       "num_classes": 10}.items():
        study.set_user_attr(key, value)
    add(study, "mv2_w1.0()", 36.0, ANSI_LABEL, seed=0)
    add(study, "mv2_w1.0()", 35.0, ANSI_LABEL, seed=1)
    add(study, "mv2_w1.0(16g4,17g4)", 42.0, BIDI_LABEL, seed=0)
    add(study, "mv2_w1.0(16g4,17g4)", 44.0, BIDI_LABEL, seed=1)
    add(study, "mv2_w1.0(13g4,14g4,16g4,17g4)", 35.0, seed=0)
    return folder


@pytest.fixture
def study_dir(pristine, tmp_path):
    folder = tmp_path / pristine.name
    shutil.copytree(pristine, folder)
    return folder


@pytest.fixture
def victim(tmp_path):
    """A file outside the study folder that a link in it names, and its fingerprint."""
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_text("the user's own file\n")
    return path


# -- writes never go through a link ------------------------------------------------------------


@pytest.mark.parametrize("name", ["trials.csv", "report.html"])
def test_the_report_writes_no_file_through_a_link(study_dir, victim, name):
    before = fingerprint(victim)
    (study_dir / "report").mkdir()
    (study_dir / "report" / name).symlink_to(victim)
    result = run_main("ulsam_nas.report", "--study", study_dir)
    refused(result, f"{study_dir / 'report' / name} is a symbolic link (to {victim})")
    assert fingerprint(victim) == before
    assert sorted(p.name for p in (study_dir / "report").iterdir()) == [name]  # nothing else written either


def test_a_report_out_folder_below_a_link_in_the_study_is_refused(study_dir, victim):
    (study_dir / "elsewhere").symlink_to(victim.parent)
    result = run_main("ulsam_nas.report", "--study", study_dir, "--out", study_dir / "elsewhere" / "r")
    refused(result, f"{study_dir / 'elsewhere'} is a symbolic link")
    assert os.listdir(victim.parent) == ["victim.txt"]


def test_write_pointer_replaces_no_linked_pointer(tmp_path, victim):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / POINTER).symlink_to(victim)
    before = fingerprint(victim)
    with pytest.raises(LinkRefused, match="is a symbolic link"):
        write_pointer(folder, f"sqlite:///{folder / 'study.db'}", "s", "mv2")
    assert fingerprint(victim) == before and sorted(os.listdir(folder)) == [POINTER]


@pytest.mark.parametrize("purpose", ["plan", "publish"])
def test_a_study_lock_is_taken_through_no_link(study_dir, victim, purpose):
    """The lock files a search keeps beside its SQLite study (``study.db.lock``, ``study.db.publish.lock``)."""
    name = "study.db.lock" if purpose == "plan" else "study.db.publish.lock"
    (study_dir / name).symlink_to(victim)
    before = fingerprint(victim)
    lock = StudyLock(f"sqlite:///{study_dir / 'study.db'}", "mv2-synthetic", purpose)
    with pytest.raises(LinkRefused, match=f"{name} is a symbolic link"):
        lock.acquire()
    assert fingerprint(victim) == before


def test_write_pointer_names_its_own_database_relative_to_the_folder(tmp_path):
    write_pointer(tmp_path / "s", f"sqlite:///{tmp_path / 's' / 'study.db'}", "s", "mv2")
    assert json.loads((tmp_path / "s" / POINTER).read_text())["storage"] == "sqlite:///study.db"


def test_write_file_refuses_a_linked_folder_above_the_file(tmp_path, victim):
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "sub").symlink_to(victim.parent)
    with pytest.raises(LinkRefused, match="sub is a symbolic link"):
        write_file(tmp_path / "study", tmp_path / "study" / "sub" / "victim.txt", "x")
    with pytest.raises(LinkRefused):
        check_no_links(tmp_path / "study", tmp_path / "study" / "sub" / "new" / "deeper.txt")
    assert victim.read_text() == "the user's own file\n"


def test_the_artifact_store_writes_and_serves_nothing_through_a_link(tmp_path, victim):
    root = tmp_path / "study"
    (root / "artifacts").mkdir(parents=True)
    (root / "artifacts" / "leak").symlink_to(victim)
    store = StudyArtifactStore(root, root / "artifacts")
    before = fingerprint(victim)
    with pytest.raises(LinkRefused):
        store.open_reader("leak")
    with pytest.raises(LinkRefused):
        store.write("leak", open(os.devnull, "rb"))
    assert fingerprint(victim) == before
    store.write("plain", open(victim, "rb"))
    with store.open_reader("plain") as reader:
        assert reader.read() == victim.read_bytes()


def test_the_supernet_checkpoint_is_written_through_no_link(tmp_path, victim):
    root = tmp_path / "study"
    checkpoint_dir = root / "supernet" / "key"
    checkpoint_dir.mkdir(parents=True)
    (checkpoint_dir / "supernet.pt").symlink_to(victim)
    before = fingerprint(victim)
    with pytest.raises(LinkRefused):
        _save_atomically(checkpoint_dir / "supernet.pt", root, {"epoch": 1})
    with pytest.raises(LinkRefused):  # read as well: the run key check refuses the linked checkpoint
        _claim(checkpoint_dir, {"seed": 0}, root)
    assert fingerprint(victim) == before and os.listdir(checkpoint_dir) == ["supernet.pt"]
    (checkpoint_dir / "supernet.pt").unlink()
    _claim(checkpoint_dir, {"seed": 0}, root)
    _save_atomically(checkpoint_dir / "supernet.pt", root, {"epoch": 1})
    assert torch.load(checkpoint_dir / "supernet.pt", weights_only=True) == {"epoch": 1}
    assert sorted(os.listdir(checkpoint_dir)) == ["supernet.json", "supernet.pt"]  # no temporary file left


# -- reading follows no link out ---------------------------------------------------------------

READERS = [("ulsam_nas.report", []), ("ulsam_nas.dashboard", ["--port", "1"]),
           ("ulsam_nas.export", ["--out", "{tmp}/export", "--formats", "source"])]


@pytest.mark.parametrize("module, args", READERS, ids=[m.split(".")[-1] for m, _ in READERS])
@pytest.mark.parametrize("entry", ["study.db", POINTER, "artifacts", "report"])
def test_a_link_out_of_the_folder_is_refused_before_it_is_opened(study_dir, tmp_path, module, args, entry):
    outside = tmp_path / "outside"
    outside.mkdir()
    if entry in ("study.db", POINTER):
        (study_dir / entry).rename(outside / entry)  # a working study and pointer, outside the folder
    else:
        (outside / entry).mkdir()
    (study_dir / entry).symlink_to(outside / entry)
    before = {p.name: fingerprint(p) for p in outside.iterdir() if p.is_file()}
    result = run_main(module, "--study", study_dir, *[a.format(tmp=tmp_path) for a in args])
    refused(result, f"{study_dir / entry} is a symbolic link to {outside / entry}, outside the study folder")
    assert {p.name: fingerprint(p) for p in outside.iterdir() if p.is_file()} == before
    assert not (tmp_path / "export").exists()


def test_a_pointer_names_no_sqlite_file_outside_its_folder(study_dir, tmp_path):
    moved = tmp_path / "theirs.db"
    (study_dir / "study.db").rename(moved)
    write_pointer(study_dir, f"sqlite:///{moved}", "received", "mv2")
    before = fingerprint(moved)
    for module, args in READERS:
        result = run_main(module, "--study", study_dir, *[a.format(tmp=tmp_path) for a in args])
        refused(result, f"{moved}, outside its folder: a pointer may name an SQLite file in its folder only")
    assert fingerprint(moved) == before
    # The user may name it: --storage is theirs.
    result = run_main("ulsam_nas.report", "--study", study_dir, "--storage", f"sqlite:///{moved}")
    assert result.returncode == 0, result.stderr


def test_a_relative_pointer_path_is_relative_to_the_folder(study_dir, tmp_path, monkeypatch):
    (study_dir / POINTER).write_text(json.dumps({"storage": "sqlite:///study.db", "study_name": "received"}))
    monkeypatch.chdir(tmp_path)  # not the folder: the path is the folder's
    assert read_pointer(study_dir)["storage"] == f"sqlite:///{os.path.realpath(study_dir / 'study.db')}"
    escaping = json.dumps({"storage": "sqlite:///../outside.db", "study_name": "received"})
    (study_dir / POINTER).write_text(escaping)
    refused(run_main("ulsam_nas.report", "--study", study_dir), "outside its folder")


@pytest.mark.parametrize("url, message", [
    ("mysql://u@example.org/db", "SQLite or PostgreSQL storage only, not mysql"),
    ("sqlite://", "must be a plain file in its folder"),
    ("sqlite:///study.db?mode=ro", "must be a plain file in its folder"),
])
def test_a_pointer_names_sqlite_or_postgresql_only(study_dir, url, message):
    (study_dir / POINTER).write_text(json.dumps({"storage": url, "study_name": "received"}))
    for module in ("ulsam_nas.report", "ulsam_nas.dashboard"):
        refused(run_main(module, "--study", study_dir), message)


# -- terminal text is inert --------------------------------------------------------------------


def test_shown_escapes_controls_and_bidi_and_keeps_the_rest():
    assert shown("a\x1b[31mb\r\nc\x85\u202ed\u2066\u2069") == "a\\x1b[31mb\\r\\nc\\x85\\u202ed\\u2066\\u2069"
    assert shown("σ ± “μ” 日本") == "σ ± “μ” 日本"


def test_the_report_prints_a_studys_escapes_as_text(study_dir):
    result = run_main("ulsam_nas.report", "--study", study_dir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for raw in ("\x1b", "\x07", "\r", "\x9b", "\u202e", "\u2066"):
        assert raw not in out, repr(raw)
    assert "MV2 \\x1b[2J\\x1b]0;owned\\x07\\rfake line\\x9b31m" in out and "MV2 \\u202egnp.exe\\u202c" in out


def test_a_failure_line_quoting_a_study_stays_one_line(study_dir):
    study = optuna.load_study(study_name="received", storage=f"sqlite:///{study_dir / 'study.db'}")
    study.set_user_attr("num_classes", "1\n\x1b[2Jerror: fake")
    result = run_main("ulsam_nas.export", "--study", study_dir, "--out", study_dir.parent / "x", "--formats", "source")
    refused(result, "num_classes")
    assert "\x1b" not in result.stderr


def test_the_exported_readme_shows_markup_in_a_label_as_text():
    arch = Architecture(Genome.from_string("mv2_w1.0(16g4,17g4)"), 10, 1.0)
    cost = type("Cost", (), {"params": 1, "macs": 2})()
    readme = readme_text(arch, model_description(arch, cost, HTML_LABEL, markdown=True), ["source"], False)
    assert "<img" not in readme and "<script>" not in readme and "](" not in readme and "\n# h" not in readme
    assert "&lt;img src\\=x onerror\\=alert\\(1\\)&gt; \\[x\\]\\(javascript\\:alert\\(1\\)\\)" in readme
    assert model_description(arch, cost, HTML_LABEL).endswith(f"Paper configuration: {HTML_LABEL}.")  # model.py's own


def test_the_search_writes_no_pointer_through_a_linked_one(tmp_path, victim):
    folder = tmp_path / "received"
    folder.mkdir()
    (folder / POINTER).symlink_to(victim)
    before = fingerprint(victim)
    result = run_module("ulsam_nas.search", "--study", folder, "--budget", "1")  # real streams: a process
    last = result.stderr.strip().splitlines()[-1]  # after the search's progress lines
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert last == f"error: {folder / POINTER} is a symbolic link to {victim}, outside the study folder: a study " \
                   f"folder's files must be in it"
    assert fingerprint(victim) == before and os.listdir(folder) == [POINTER]


def test_a_pointer_host_holding_escapes_cannot_rewrite_the_connecting_line(tmp_path):
    folder = tmp_path / "received"
    folder.mkdir()
    (folder / POINTER).write_text(json.dumps({"storage": "postgresql://u@evil\r\x1b[2Khost/db", "study_name": "x"}))
    result = run_main("ulsam_nas.report", "--study", folder)
    assert result.stdout == f"connecting to postgresql://u@evil\\r\\x1b[2Khost/db (named by {folder / POINTER})\n"
    refused(result, "cannot open storage postgresql://u@evil\\r\\x1b[2Khost/db")
