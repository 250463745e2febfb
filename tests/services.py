"""Fixtures for the external services the tests talk to: a real PostgreSQL server, and a real
Ray cluster started the way users start one (`ray start --head`, Ray's defaults).

The project's rule is that tests use the real service, not a stand-in such as SQLite (shared
studies run on PostgreSQL), and that `bash .ci/run` installs it when the machine lacks it.
`.ci/run` starts one server and exports its URL as ULSAM_NAS_POSTGRES_URL; a local `pytest` run
without that variable starts a private server with `.ci/postgres` when PostgreSQL is installed.
With ULSAM_NAS_REQUIRE_SERVICES set (as CI does), a missing server fails the tests instead of
skipping them.

Use from conftest.py (`from .services import postgres_server, postgres_url  # noqa: F401`) or as
a plugin (`pytest -p tests.services`).
"""

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from .commands import wait_until

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "postgres"


def libpq_url(url: str) -> str:
    """The libpq form (postgresql://...) of a SQLAlchemy URL, for psycopg.connect."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _postgres(action: str, directory: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), action, directory], capture_output=True, text=True)


@pytest.fixture(scope="session")
def postgres_server():
    """The SQLAlchemy URL of a PostgreSQL server's `postgres` database, for the whole session; it
    holds the password, which the server asks for by SCRAM, as a real one does."""
    url = os.environ.get("ULSAM_NAS_POSTGRES_URL")
    if url:
        yield url
        return
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        if os.environ.get("ULSAM_NAS_REQUIRE_SERVICES", "") not in ("", "0"):
            pytest.fail("PostgreSQL is not installed and ULSAM_NAS_REQUIRE_SERVICES is set", pytrace=False)
        pytest.skip("PostgreSQL is not installed (bash .ci/run installs it)")
    # Under /tmp, not pytest's tmp_path: as root that lies in a private folder the server's
    # unprivileged user cannot reach.
    directory = tempfile.mkdtemp(prefix="ulsam-pg-")
    started = _postgres("start", directory)
    if started.returncode != 0:
        _postgres("stop", directory)
        pytest.fail(f"could not start PostgreSQL: {started.stderr.strip()}", pytrace=False)
    try:
        yield started.stdout.strip()
    finally:
        _postgres("stop", directory)


@pytest.fixture
def postgres_url(postgres_server):
    """The SQLAlchemy URL of a fresh, empty database, dropped after the test."""
    name = f"ulsam_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_url(postgres_server), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE ends connections the test left open (e.g. an Optuna storage's pool).
        with psycopg.connect(libpq_url(postgres_server), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_processes(session: int) -> list[int]:
    """Live processes of a session: Ray gives each worker a process group of its own, but they
    all stay in the session of the `ray start` that a test started with a new session."""
    out = subprocess.run(["ps", "-eo", "pid=,sid=,stat="], capture_output=True, text=True).stdout
    return [int(pid) for pid, sid, stat in (line.split() for line in out.splitlines())
            if int(sid) == session and "Z" not in stat]


@contextlib.contextmanager
def ray_head(root: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """`ray start --head --block` with Ray's defaults and 2 logical CPUs, its temp folder under
    ``root`` (short: Ray's socket paths live below it), on a free port, in the environment ``env``,
    its output in ``log``. Yields its address once the port listens. Stops exactly this cluster's
    processes, never `ray stop` (other clusters may run on this machine)."""
    port = _free_port()
    env = {**env, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}  # stop in ~2 s, not 30
    ray = str(Path(sys.executable).parent / "ray")
    with open(log, "w") as out:
        head = subprocess.Popen([ray, "start", "--head", "--block", f"--port={port}", f"--temp-dir={root / 't'}",
                                 "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def listening() -> bool:
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited with {head.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    try:
        wait_until(listening, f"ray start --head opening port {port}", every_s=0.1)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()  # `ray start --block` stops what it started
        try:
            head.wait(15)
        except subprocess.TimeoutExpired:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):  # and whatever outlived it, of this session only
            for pid in _session_processes(head.pid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + 5
            while _session_processes(head.pid) and time.time() < deadline:
                time.sleep(0.1)
        head.poll()


def token_home(root: Path) -> Path:
    """A home folder under ``root`` holding a fresh token where Ray's CLI keeps it
    (~/.ray/auth_token): with a token there, `ray start --head` turns token authentication on."""
    home = root / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    return home


@pytest.fixture
def ray_cluster():
    """A one-node Ray cluster of its own from `ray start --head` with Ray's defaults (``ray_head``),
    with token authentication on (``token_home``). Yields (address, home, log)."""
    root = Path(tempfile.mkdtemp(prefix="ray-"))
    home, log = token_home(root), root / "head.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    try:
        with ray_head(root, {**env, "HOME": str(home)}, log) as address:
            yield address, home, log
    finally:
        shutil.rmtree(root, ignore_errors=True)
