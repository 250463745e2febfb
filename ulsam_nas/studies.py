"""Where a study lives: ``<study dir>/study.json`` names its storage and study, so the report,
dashboard and export commands find it from the folder alone, whatever the storage."""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import sqlalchemy

POINTER = "study.json"
HEARTBEAT_SECONDS = 10.0  # how often a driver records a heartbeat for the trials it holds
STALE_AFTER = 120.0  # a trial whose driver has not beaten for this long is closed as interrupted
SCHEMA_ATTEMPTS = 4
BACKENDS = ("sqlite", "postgresql")  # what a study may live in: what StudyLock can lock
ARTIFACTS = "artifacts"


class StudyNotFound(ValueError):
    """No usable study at the given folder or storage."""


def write_pointer(study_dir: Path, storage_url: str, study_name: str, space: str) -> None:
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / POINTER).write_text(json.dumps({"storage": storage_url, "study_name": study_name, "space": space},
                                                indent=2) + "\n")


def read_pointer(study_dir: Path) -> dict:
    path = study_dir / POINTER
    if not path.is_file():
        if not study_dir.is_dir():
            raise StudyNotFound(f"{study_dir}: no such folder")
        raise StudyNotFound(f"{study_dir}: no study here (no {POINTER}; run python -m ulsam_nas.search first)")
    try:
        pointer = json.loads(path.read_text())
        return {"storage": str(pointer["storage"]), "study_name": str(pointer["study_name"]),
                "space": str(pointer.get("space", ""))}
    except (ValueError, KeyError, TypeError) as error:
        raise StudyNotFound(f"{path}: not a study pointer ({error})") from None


def storage_url(url: str) -> str:
    """``url`` with the PostgreSQL driver we install (psycopg 3, the ``postgres`` extra) when it
    names none: SQLAlchemy's default for ``postgresql://`` is psycopg2."""
    parsed = sqlalchemy.engine.make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


class MissingDriver(ValueError):
    """The storage URL needs a database driver that is not installed."""


def open_storage(url: str, stale_trial_callback: Callable | None = None,
                 stale_after: float = STALE_AFTER) -> optuna.storages.RDBStorage:
    """The RDB storage at ``url``. With ``stale_trial_callback``, Optuna's heartbeat is on:
    drivers record a heartbeat for the trials they hold every ``HEARTBEAT_SECONDS``, and
    ``optuna.storages.fail_stale_trials`` fails (and hands to the callback) trials whose driver
    has not beaten for ``stale_after`` seconds, whichever host it ran on."""
    url = storage_url(url)
    # A generous SQLite timeout: the dashboard and other drivers may read while a search writes.
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    heartbeat = {"heartbeat_interval": int(HEARTBEAT_SECONDS), "grace_period": max(1, int(stale_after)),
                 "heartbeat_stale_trial_callback": stale_trial_callback} if stale_trial_callback else {}
    attempt = 0
    while True:
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except ModuleNotFoundError as error:
            raise MissingDriver(driver_hint(url, error)) from None
        except sqlalchemy.exc.DBAPIError:
            # Drivers started together on a new database race to create Optuna's tables; the
            # loser sees a duplicate, and the tables are there when it tries again.
            attempt += 1
            if attempt == SCHEMA_ATTEMPTS:
                raise
            time.sleep(0.5 * attempt)


def driver_hint(url: str, error: ModuleNotFoundError) -> str:
    backend = sqlalchemy.engine.make_url(url).get_backend_name()
    if backend == "postgresql":
        return f"--storage {url}: PostgreSQL needs psycopg: pip install -e '.[postgres]'"
    return f"--storage {url}: the database driver is not installed ({error})"


def unsupported_backend(url: str, backend: str) -> str:
    return f"--storage {url}: studies live in SQLite (the default) or PostgreSQL, not {backend}"


class StudyLock:
    """One lock per study, shared by every driver of it on any host, and released by the OS or
    the database when its holder dies, kill -9 included: drivers plan their next trial (budget,
    paper configurations, which (genome, seed) to train) one at a time under it.

    - SQLite (one host): ``flock`` on ``<database>.lock``. Not a transaction on the database
      itself: SQLite locks the whole file for a writer, and the driver's own Optuna storage
      writes while it plans.
    - PostgreSQL: a session advisory lock (``pg_advisory_lock``) on a connection of its own,
      keyed by the study name.
    """

    def __init__(self, url: str, study_name: str) -> None:
        self.url, self.study_name = storage_url(url), study_name
        parsed = sqlalchemy.engine.make_url(self.url)
        self.backend = parsed.get_backend_name()
        if self.backend not in BACKENDS:
            raise ValueError(unsupported_backend(url, self.backend))
        self._file = self._engine = self._connection = None
        self._key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)

    def __getstate__(self) -> dict:  # Ray Tune pickles the searcher: the handles are opened again
        return {"url": self.url, "study_name": self.study_name}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["url"], state["study_name"])

    def __enter__(self) -> StudyLock:
        if self.backend == "sqlite":
            if self._file is None:
                database = sqlalchemy.engine.make_url(self.url).database
                self._file = open(f"{Path(database).expanduser().resolve()}.lock", "a")  # noqa: SIM115 - held for the driver's life
            fcntl.flock(self._file, fcntl.LOCK_EX)
        else:
            if self._connection is None:
                self._engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
                self._connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
        return self

    def __exit__(self, *exc_info) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        else:
            self._connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._connection is not None:
            self._connection.close()
        if self._engine is not None:
            self._engine.dispose()


def load_study(study_dir: Path) -> tuple[optuna.Study, dict]:
    """The study a folder points to, and the pointer; StudyNotFound if it does not open."""
    pointer = read_pointer(study_dir)
    try:
        storage = open_storage(pointer["storage"])
        study = optuna.load_study(study_name=pointer["study_name"], storage=storage)
    except KeyError:
        raise StudyNotFound(f"storage {pointer['storage']} has no study {pointer['study_name']!r}") from None
    except MissingDriver as error:
        raise StudyNotFound(str(error)) from None
    except Exception as error:  # noqa: BLE001 - SQLAlchemy and drivers raise many kinds
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StudyNotFound(f"cannot open storage {pointer['storage']}: {message}") from None
    return study, pointer


def artifact_store(study_dir: Path) -> optuna.artifacts.FileSystemArtifactStore:
    path = study_dir / ARTIFACTS
    path.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(str(path))
