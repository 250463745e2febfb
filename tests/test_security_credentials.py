"""Credentials stay where the user put them, and a study folder from elsewhere is data: against a
real password-auth PostgreSQL server (``.ci/postgres``), a fake server that asks for a cleartext
or MD5 password, real SQLite files and a real local Ray instance.

- A password given in ``--storage`` works for the whole search and is printed or stored nowhere:
  not in the output, the study folder (``study.json``, Ray's ``tuner.pkl`` and all Ray wrote
  there) or the Ray session's files; the report then finds it in ``PGPASSFILE``.
- A received ``study.json`` naming another server: the command names the server before it
  connects, and the server gets no password, whatever it asks for (SCRAM only).
- A pointer to an unrelated SQLite file, or to none: every read-only command refuses it in one
  line and leaves it byte for byte as it was (or absent).
- The raylet and the workers of a local Ray instance start without PG* variables.
"""

import glob
import hashlib
import json
import pickle
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from ulsam_nas.studies import POINTER, StudyLock, open_storage, write_pointer

from .commands import QUICK, child_env, finish, run_main, run_module, run_program, start_module, wait_until
from .conftest import write_space

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104
CLEARTEXT = struct.pack("!ii", 8, 3)
MD5 = struct.pack("!ii", 12, 5) + b"salt"
READ_COMMANDS = [
    ("ulsam_nas.report", []),
    ("ulsam_nas.dashboard", ["--port", "1"]),  # refused before it would serve
    ("ulsam_nas.export", ["--out", "{tmp}/export"]),
    ("ulsam_nas.latency", ["--space", "mv2"]),
]


def files_holding(root: Path, secret: bytes) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.is_file() and not path.is_symlink() and secret in path.read_bytes()]


def ray_session_of(pid: int) -> Path:
    """The session folder of the local Ray instance that the driver ``pid`` started."""
    sessions = {Path(log).resolve().parents[1] for log in glob.glob(f"/tmp/ray/session_*/logs/python-core-driver-*_{pid}.log")}
    assert len(sessions) == 1, sessions  # session_latest links to it, or to a later one
    return sessions.pop()


def test_a_password_in_the_url_is_used_and_stored_nowhere(postgres_url, tmp_path):
    password = make_url(postgres_url).password
    assert password, "the test server asks for a password"
    study_dir = tmp_path / "study"
    space = write_space(tmp_path, '17 = { actions = ["keep", "insert"], groups = [4] }')
    env = {name: value for name, value in child_env(own_ray=True).items() if not name.startswith("PG")}
    search = start_module("ulsam_nas.search", "--space", space, "--budget", "1", "--repeats", "1", "--no-paper-seeds",
                          "--fidelity", QUICK, "--concurrency", "1", "--study", study_dir, "--storage", postgres_url,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = finish(search, "a search on the password-auth server")
    assert search.returncode == 0, err[-3000:]
    assert password not in out + err
    assert "optuna-dashboard postgresql+psycopg://postgres@127.0.0.1" in out  # the database, no password (nor ***)
    assert json.loads((study_dir / POINTER).read_text())["storage"] == \
        postgres_url.replace(f":{password}@", "@")
    assert list((study_dir / "ray").rglob("tuner.pkl")), "Ray's experiment state is where it is looked for"
    assert files_holding(study_dir, password.encode()) == []
    assert files_holding(ray_session_of(search.pid), password.encode()) == []

    # The report finds the password where libpq looks for it, here PGPASSFILE.
    url = make_url(postgres_url)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{url.host}:{url.port}:{url.database}:{url.username}:{password}\n")
    pgpass.chmod(0o600)
    report = run_module("ulsam_nas.report", "--study", study_dir, env={**env, "PGPASSFILE": str(pgpass)})
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith(f"connecting to postgresql+psycopg://postgres@127.0.0.1:{url.port}/")
    assert password not in report.stdout + report.stderr
    assert files_holding(study_dir, password.encode()) == []

    # This process keeps the password for its connections; what it pickles (Ray Tune pickles the
    # searcher with its storage and lock) names the database alone, and connects again unpickled.
    storage, lock = open_storage(postgres_url), StudyLock(postgres_url, "tiny-synthetic")
    assert password.encode() not in pickle.dumps(storage) + pickle.dumps(lock)
    assert [s.study_name for s in pickle.loads(pickle.dumps(storage)).get_all_studies()] == ["tiny-synthetic", "tiny-synthetic:genomes"]
    unpickled = pickle.loads(pickle.dumps(lock))
    with unpickled:
        pass
    unpickled.close()


class FakePostgres:
    """A server that speaks PostgreSQL's protocol up to the authentication request ``ask``
    (cleartext or MD5 password) and records what each client sends back."""

    def __init__(self, ask: bytes) -> None:
        self.ask, self.replies = ask, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with client:
                client.settimeout(10)
                self._answer(client)

    def _answer(self, client: socket.socket) -> None:
        try:
            length, code = struct.unpack("!ii", self._read(client, 8))
            while code in (SSL_REQUEST, GSSENC_REQUEST):  # no encryption here: the client goes on in clear
                client.sendall(b"N")
                length, code = struct.unpack("!ii", self._read(client, 8))
            self._read(client, length - 8)  # the rest of the startup message
            client.sendall(b"R" + self.ask)
            try:  # the client's next message, if any: type, length, body
                kind, length = struct.unpack("!ci", self._read(client, 5))
                reply = kind + self._read(client, length - 4)
            except ConnectionError:
                reply = b""  # it hung up
        except (OSError, struct.error):
            reply = b"?"
        self.replies.append(reply)

    @staticmethod
    def _read(client: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = client.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("ask", [CLEARTEXT, MD5], ids=["cleartext", "md5"])
def test_a_received_study_gets_no_password_from_a_server_that_asks_for_one(tmp_path, monkeypatch, ask):
    server = FakePostgres(ask)
    try:
        import psycopg  # the fake server works: a client that allows it sends the password

        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host="127.0.0.1", port=server.port, user="alice", dbname="nas", password="the-control",
                            sslmode="disable", connect_timeout=10)
        wait_until(lambda: server.replies, "the fake server recording the client's answer")
        assert server.replies[-1].startswith(b"p") and (b"the-control" in server.replies[-1] or ask == MD5)
        sent_before = len(server.replies)

        folder = tmp_path / "received"
        # A pointer cannot lower the authentication required: its require_auth is not used.
        url = f"postgresql://alice@127.0.0.1:{server.port}/nas" + ("?require_auth=password" if ask == CLEARTEXT else "")
        write_pointer(folder, url, "theirs", "mv2")
        if ask == CLEARTEXT:
            result = run_module("ulsam_nas.report", "--study", folder, env=child_env(PGPASSWORD="alices-secret"))
        else:  # the same path, in this process
            monkeypatch.setenv("PGPASSWORD", "alices-secret")
            result = run_main("ulsam_nas.report", "--study", folder)
        wait_until(lambda: len(server.replies) > sent_before, "the fake server recording the client's answer")
    finally:
        server.close()
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == f"connecting to {url} (named by {folder / POINTER})"
    assert ("require_auth=password is not used" in result.stdout) == (ask == CLEARTEXT)
    assert len(result.stderr.strip().splitlines()) == 1 and "server requested" in result.stderr, result.stderr
    replies = server.replies[sent_before:]
    assert replies and not [r for r in replies if r.startswith(b"p") or b"alices-secret" in r], replies


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("module, args", READ_COMMANDS, ids=[m.split(".")[-1] for m, _ in READ_COMMANDS])
def test_read_commands_leave_an_unrelated_database_as_it_is(tmp_path, module, args):
    unrelated, missing = tmp_path / "unrelated", tmp_path / "missing"
    unrelated.mkdir()
    database = unrelated / "mine.db"  # in the folder: a pointer names no file outside it (test_security_folders.py)
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
        connection.execute("INSERT INTO notes VALUES ('keep me')")
    connection.close()
    before = (sha256(database), database.stat().st_mtime_ns)
    write_pointer(unrelated, f"sqlite:///{database}", "x", "mv2")
    write_pointer(missing, f"sqlite:///{missing / 'none.db'}", "x", "mv2")
    args = [arg.format(tmp=tmp_path) for arg in args]
    for folder, message in ((unrelated, "holds no Optuna study"), (missing, "no such file")):
        result = run_main(module, "--study", folder, *args)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert (sha256(database), database.stat().st_mtime_ns) == before
    assert {p.name for p in tmp_path.iterdir()} == {"missing", "unrelated"}  # no export
    assert {p.name for p in missing.iterdir()} == {"study.json"}  # no none.db
    assert {p.name for p in unrelated.iterdir()} == {"mine.db", "study.json"}


WORKER_ENV = """
import json, os
from ulsam_nas.cli import start_ray
start_ray(None)
import psutil, ray  # Ray's own psutil

@ray.remote
def environment():
    return dict(os.environ)

worker = ray.get(environment.remote())
secret = os.environ["PGPASSWORD"]
print(json.dumps({
    "worker": sorted(name for name, value in worker.items() if name.startswith("PG") or secret in value),
    "ray_processes": [p.name() for p in psutil.Process().children(recursive=True)
                      if any(n.startswith("PG") or secret in v for n, v in p.environ().items())],
    "driver": sorted(name for name in os.environ if name.startswith("PG") or "DB_URL" in name),
    "entrypoints": [job["Entrypoint"] for job in ray._private.state.state.job_table()],
}))
"""


def test_local_ray_workers_start_without_pg_variables():
    secret = "workers-never-see-this"
    env = child_env(own_ray=True, PGPASSWORD=secret, PGSERVICE="nas", PGPASSFILE="/nonexistent/pgpass",
                    DB_URL=f"postgresql://alice:{secret}@db.example/nas", RAY_AUTH_MODE="disabled")
    result = run_program([sys.executable, "-c", WORKER_ENV, f"postgresql://alice:{secret}@db.example/nas"],
                         env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["worker"] == [] and seen["ray_processes"] == []
    assert seen["driver"] == ["DB_URL", "PGPASSFILE", "PGPASSWORD", "PGSERVICE"]  # the driver gets them back
    assert seen["entrypoints"] and not [e for e in seen["entrypoints"] if secret in e]
    # Auth disabled and listening on the machine's address (Ray's default): said in one line.
    assert "runs without token authentication and listens beyond this machine" in result.stderr
