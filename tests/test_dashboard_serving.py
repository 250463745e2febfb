"""The dashboard serves nothing the study folder does not own, tested against the real
optuna-dashboard over HTTP on a received folder: artifacts go out with a type the product chose
(never ``text/html`` on the dashboard's origin) and to no other origin, deleting a study deletes
only the folder's own files, and a link in the artifacts folder serves nothing. One server for
the module; a victim outside the folder whose content and mtime must not change."""

import hashlib
import json
import urllib.error
import urllib.request
import uuid

import optuna
import pytest
from optuna.artifacts.exceptions import ArtifactNotFound

from ulsam_nas.safe_files import StudyArtifactStore
from ulsam_nas.studies import artifact_store, write_pointer

from .commands import run_main, serving_dashboard

optuna.logging.set_verbosity(optuna.logging.WARNING)

DIRECTIONS = ["maximize", "minimize", "minimize"]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"
VICTIM_TEXT = "the user's own file, outside the study folder\n"


def fingerprint(path):
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def crafted(storage, study_id: int, artifact_id: str, mimetype: str = "text/plain") -> None:
    """An artifact's metadata as whoever sent the folder may have written it."""
    meta = {"artifact_id": artifact_id, "filename": "important.txt", "mimetype": mimetype, "encoding": None}
    storage.set_study_system_attr(study_id, f"artifacts:{artifact_id}", json.dumps(meta))  # as optuna keys it


def upload(folder, study_or_trial, name: str, content: bytes, **meta) -> str:
    path = folder.parent / name
    path.write_bytes(content)
    return optuna.artifacts.upload_artifact(artifact_store=artifact_store(folder), file_path=str(path),
                                            study_or_trial=study_or_trial, **meta)


@pytest.fixture(scope="module")
def received(tmp_path_factory):
    """A received study folder, its storage holding two studies: ``received`` with the product's
    kinds of artifacts, an HTML one and a crafted one naming a link to a victim file; ``doomed``
    with its own artifact and crafted ones reaching a victim folder through a link."""
    top = tmp_path_factory.mktemp("serving")
    folder = top / "received"
    victims = top / "outside"
    victims.mkdir()
    (victims / "important.txt").write_text(VICTIM_TEXT)
    url = f"sqlite:///{folder / 'study.db'}"
    write_pointer(folder, url, "received", "mv2")
    study = optuna.create_study(storage=url, study_name="received", directions=DIRECTIONS)
    ids = {name: upload(folder, study, name, content) for name, content in
           [("figure.png", PNG), ("pareto.csv", b"genome,top1\nx,1\n"), ("front.svg", b"<svg onload='alert(1)'/>")]}
    ids["page.html"] = upload(folder, study, "page.html", HTML, mimetype="text/html")
    trial = study.ask()
    ids["trial.html"] = upload(folder, trial, "trial.html", HTML)
    study.tell(trial, [1.0, 2.0, 3.0])
    leak = str(uuid.uuid4())  # the dashboard's route takes hex ids only
    (folder / "artifacts" / leak).symlink_to(victims / "important.txt")
    crafted(study._storage, study._study_id, leak)

    doomed = optuna.create_study(storage=url, study_name="doomed", directions=DIRECTIONS)
    own = upload(folder, doomed, "own.txt", b"the doomed study's own artifact\n")
    (folder / "artifacts" / "sub").symlink_to(victims)
    crafted(doomed._storage, doomed._study_id, "sub/important.txt")
    crafted(doomed._storage, doomed._study_id, "../outside/important.txt")
    linked = str(uuid.uuid4())
    (folder / "artifacts" / linked).symlink_to(victims / "important.txt")
    crafted(doomed._storage, doomed._study_id, linked)
    return {"folder": folder, "victim": victims / "important.txt", "study": study._study_id, "trial": trial._trial_id,
            "ids": ids, "leak": leak, "doomed": doomed._study_id, "own": own, "linked": linked}


@pytest.fixture(scope="module")
def dashboard(received, tmp_path_factory):
    """``python -m ulsam_nas.dashboard`` on the received folder; its output in ``log``."""
    log = tmp_path_factory.mktemp("log") / "output.txt"
    with serving_dashboard(received["folder"], log) as base:
        yield {"base": base, "log": log}


def fetch(url: str, method: str = "GET", body: bytes | None = None):
    """(status, headers, body) of one request, an error answer included."""
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def served_artifact(dashboard, received, name: str):
    trial = f"/{received['trial']}" if name.startswith("trial") else ""
    return fetch(f"{dashboard['base']}/artifacts/{received['study']}{trial}/{received['ids'][name]}")


@pytest.mark.parametrize("name", ["page.html", "trial.html", "front.svg"])
def test_a_document_that_can_script_is_an_attachment_not_a_page(dashboard, received, name):
    status, headers, body = served_artifact(dashboard, received, name)
    assert status == 200 and body == (HTML if name.endswith(".html") else b"<svg onload='alert(1)'/>")
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == "attachment"
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Content-Security-Policy"] == "sandbox"
    assert "Access-Control-Allow-Origin" not in headers and "Content-Encodings" not in headers


def test_the_products_own_figures_and_tables_are_served_to_be_shown(dashboard, received):
    status, headers, body = served_artifact(dashboard, received, "figure.png")
    assert status == 200 and body == PNG and headers["Content-Type"] == "image/png"
    assert "Content-Disposition" not in headers and "Access-Control-Allow-Origin" not in headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = served_artifact(dashboard, received, "pareto.csv")
    assert status == 200 and body == b"genome,top1\nx,1\n" and headers["Content-Type"] == "text/plain; charset=utf-8"
    # The dashboard's own pages keep their type: the wrapper touches artifact answers only.
    status, headers, _ = fetch(f"{dashboard['base']}/dashboard")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")  # optuna-dashboard's own


def test_an_artifact_that_is_a_link_serves_nothing(dashboard, received):
    before = fingerprint(received["victim"])
    status, headers, body = fetch(f"{dashboard['base']}/artifacts/{received['study']}/{received['leak']}")
    assert status >= 400 and b"the user's own file" not in body
    assert headers["Content-Type"] == "text/plain; charset=utf-8" and "Access-Control-Allow-Origin" not in headers
    assert fingerprint(received["victim"]) == before
    assert f"artifacts/{received['leak']} is a symbolic link" in dashboard["log"].read_text()  # the store refused it


def test_deleting_a_study_deletes_only_files_of_its_folder(dashboard, received):
    artifacts = received["folder"] / "artifacts"
    before = fingerprint(received["victim"])
    assert (artifacts / received["own"]).is_file()
    status, _, body = fetch(f"{dashboard['base']}/api/studies/{received['doomed']}", method="DELETE", body=b"{}")
    assert status == 204, body
    assert fingerprint(received["victim"]) == before
    assert not (artifacts / received["own"]).exists()  # the study's own artifact is gone, as the dashboard says
    assert not (artifacts / received["linked"]).is_symlink()  # a link in the folder is unlinked itself
    assert (artifacts / "sub").is_symlink()  # the crafted ids were skipped, each in one line
    log = dashboard["log"].read_text()
    assert "warning: artifact 'sub/important.txt' of the study not removed (not a plain file name)" in log
    assert "warning: artifact '../outside/important.txt' of the study not removed" in log
    studies = json.loads(fetch(f"{dashboard['base']}/api/studies")[2])["study_summaries"]
    assert [s["study_name"] for s in studies] == ["received"]


def test_the_store_takes_plain_names_only_and_removes_nothing_through_a_link(tmp_path, capsys):
    root = tmp_path / "study"
    (root / "artifacts").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    victim = tmp_path / "outside" / "important.txt"
    victim.write_text(VICTIM_TEXT)
    (root / "artifacts" / "sub").symlink_to(tmp_path / "outside")
    store = StudyArtifactStore(root, root / "artifacts")
    before = fingerprint(victim)
    for artifact_id in ["sub/important.txt", "../outside/important.txt", "..", ".hidden", "", "a" * 129, 7]:
        with pytest.raises(ArtifactNotFound):
            store.open_reader(artifact_id)
        with pytest.raises(ValueError, match="is not a plain name"):
            store.write(artifact_id, open(victim, "rb"))
        store.remove(artifact_id)
    assert capsys.readouterr().err.count("not removed (not a plain file name)") == 7
    assert fingerprint(victim) == before
    store.write("plain-1.txt", open(victim, "rb"))
    store.remove("plain-1.txt")
    assert sorted(p.name for p in (root / "artifacts").iterdir()) == ["sub"]
    with pytest.raises(ArtifactNotFound):
        store.remove("plain-1.txt")
    # The artifacts folder itself swapped for a link: nothing is removed through it.
    (root / "artifacts" / "sub").unlink()
    (root / "artifacts").rmdir()
    (root / "artifacts").symlink_to(tmp_path / "outside")
    store.remove("important.txt")
    assert "not removed (the artifacts folder is a symbolic link" in capsys.readouterr().err
    assert fingerprint(victim) == before


def test_a_host_other_than_loopback_is_said_to_expose_the_study(received, monkeypatch):
    served = []
    monkeypatch.setattr("bottle.run", lambda app, host, port: served.append(host))  # nothing is bound in this test
    for host in ["127.0.0.1", "127.0.0.2", "::1", "localhost"]:
        result = run_main("ulsam_nas.dashboard", "--study", received["folder"], "--host", host, "--port", 9)
        assert result.returncode == 0 and "warning" not in result.stdout + result.stderr, result
    result = run_main("ulsam_nas.dashboard", "--study", received["folder"], "--host", "0.0.0.0", "--port", 9)
    lines = [line for line in result.stdout.splitlines() if "exposes" in line]
    assert result.returncode == 0 and lines == [
        "warning: --host 0.0.0.0 exposes the dashboard: anyone who can reach port 9 can read, change and delete every "
        "study in its storage, their trials and artifacts, with no password"]
    assert served == ["127.0.0.1", "127.0.0.2", "::1", "localhost", "0.0.0.0"]
