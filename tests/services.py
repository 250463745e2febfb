"""Fixtures for the external services the tests talk to: a real PostgreSQL server.

The project's rule is that tests use the real service, not a stand-in such as SQLite (shared
studies run on PostgreSQL), and that `bash .ci/run` installs it when the machine lacks it.
`.ci/run` starts one server and exports its URL as ULSAM_NAS_POSTGRES_URL; a local `pytest` run
without that variable starts a private server with `.ci/postgres` when PostgreSQL is installed.
With ULSAM_NAS_REQUIRE_SERVICES set (as CI does), a missing server fails the tests instead of
skipping them.

Use from conftest.py (`from .services import postgres_server, postgres_url  # noqa: F401`) or as
a plugin (`pytest -p tests.services`).
"""

import glob
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "postgres"


def _libpq(url: str) -> str:
    """The libpq form (postgresql://...) of a SQLAlchemy URL, for psycopg.connect."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _postgres(action: str, directory: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), action, directory], capture_output=True, text=True)


@pytest.fixture(scope="session")
def postgres_server():
    """The SQLAlchemy URL of a PostgreSQL server's `postgres` database, for the whole session."""
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
    with psycopg.connect(_libpq(postgres_server), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE ends connections the test left open (e.g. an Optuna storage's pool).
        with psycopg.connect(_libpq(postgres_server), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
