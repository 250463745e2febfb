"""Where a study lives: ``<study dir>/study.json`` names its storage and study, so the report,
dashboard and export commands find it from the folder alone, whatever the storage.

A storage URL's password stays in this process's memory: ``without_password`` keeps it and gives
the URL without it, which is what is stored (``study.json``), pickled (Ray Tune's experiment
state) and passed on; ``shown_url`` is how a URL is printed; only the connections put the
password back. A PostgreSQL connection sends a password only through SCRAM (``SCRAM_ONLY``), and
a study folder's pointer, which anyone may have written, is opened as it is: nothing is created
in the database it names, and it cannot lower the authentication a connection requires."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import reprlib
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from pathlib import Path

import optuna
import sqlalchemy

from .safe_files import LinkRefused, StudyArtifactStore, check_no_links, make_folder, write_file

POINTER = "study.json"
HEARTBEAT_SECONDS = 10.0  # how often a driver records a heartbeat for the trials it holds
STALE_AFTER = 120.0  # a trial whose driver has not beaten for this long is closed as interrupted
SCHEMA_ATTEMPTS = 4
MAX_IDS_IN_QUERY = 500  # open trials one read names in its query; more are read by Optuna's own code
BACKENDS = ("sqlite", "postgresql")  # what a study may live in: what StudyLock can lock
ARTIFACTS = "artifacts"
MAX_POINTER_BYTES = 65_536  # study.json: a storage URL, a study name and a space
MAX_CLASSES = 100_000  # a class count a study may hold (ImageNet-21k has 21,841)
SCRAM_ONLY = "scram-sha-256,none"
"""libpq's ``require_auth`` for PostgreSQL unless the user opts out: a password goes only through
SCRAM, which never shows it to the server, and a server that asks for none (trust, peer) is fine;
a server asking for a cleartext or MD5 password gets nothing."""
URL_PASSWORD = re.compile(r"([A-Za-z][\w+.-]*://[^\s/:@]*):[^\s@]*@")  # scheme://user:PASSWORD@
PARAMETER_PASSWORD = re.compile(r"(\bpassword=)[^\s&]+")  # libpq's password=PASSWORD, in a query or conninfo

_passwords: dict[str, str] = {}  # storage URL without its password (``storage_url`` form) -> the password


class StudyNotFound(ValueError):
    """No usable study at the given folder or storage."""


def shown_url(url: str) -> str:
    """``url`` as every message prints it: its password, if any, as ``***`` (SQLAlchemy's
    ``hide_password``; ``hide_secrets`` for one in the query, or in what does not parse)."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return hide_secrets(url)
    return hide_secrets(url if parsed.password is None else parsed.render_as_string(hide_password=True))


def hide_secrets(text: str) -> str:
    """``text`` (a driver's error, a command line) with every password written in it as a URL's
    or libpq's ``password=`` as ``***``."""
    return PARAMETER_PASSWORD.sub(r"\1***", URL_PASSWORD.sub(r"\1:***@", text))


def holds_secret(text: str) -> bool:
    """Whether ``text`` holds a password written as a URL's or libpq's."""
    return hide_secrets(text) != text


def without_password(url: str) -> str:
    """``url`` less its password, which this process keeps for its own connections
    (``with_password``): what is stored, pickled or handed to Ray names the database, never the
    password."""
    parsed = sqlalchemy.engine.make_url(url)
    password = parsed.password or parsed.query.get("password")
    if password is None:
        return url
    bare = sqlalchemy.engine.URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port,
                                        parsed.database, parsed.query).difference_update_query(["password"])
    _passwords[storage_url(bare.render_as_string(hide_password=False))] = str(password)
    return bare.render_as_string(hide_password=False)


def with_password(url: str) -> str:
    """``url`` (in ``storage_url`` form) with the password this process was given for it, if any."""
    password = _passwords.get(url)
    if password is None:
        return url
    return sqlalchemy.engine.make_url(url).set(password=password).render_as_string(hide_password=False)


def write_pointer(study_dir: Path, storage_url: str, study_name: str, space: str) -> None:
    """``study.json``: the storage without its password (libpq finds it in ~/.pgpass, PGPASSFILE,
    a service file or PGPASSWORD), the study and its space. An SQLite file inside the folder is
    named relative to it, so the folder can be moved or sent whole. Written as every file of a
    study folder is (``safe_files``); a symbolic link out of the folder (``check_folder``) is
    LinkRefused, and nothing is written."""
    check_folder(study_dir)
    storage = without_password(storage_url)
    parsed = sqlalchemy.engine.make_url(storage)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") and not parsed.query:
        database = Path(os.path.realpath(Path(parsed.database).expanduser()))
        if database.is_relative_to(os.path.realpath(study_dir)):
            storage = f"sqlite:///{database.relative_to(os.path.realpath(study_dir))}"
    text = json.dumps({"storage": storage, "study_name": study_name, "space": space}, indent=2) + "\n"
    write_file(study_dir, study_dir / POINTER, text)


FOLDER_ENTRIES = ("study.db", POINTER, ARTIFACTS, "report")  # what a command reads or writes in a study folder


def check_folder(study_dir: Path) -> None:
    """LinkRefused (a ValueError) if one of ``FOLDER_ENTRIES`` of the study folder is a symbolic
    link that leads out of it: a received folder must not make a command read or write elsewhere."""
    real_root = os.path.realpath(study_dir)
    for name in FOLDER_ENTRIES:
        path = Path(study_dir) / name
        if path.is_symlink():
            target = os.path.realpath(path)
            if not Path(target).is_relative_to(real_root) or target == real_root:
                raise LinkRefused(f"{path} is a symbolic link to {target}, outside the study folder: a study folder's "
                                  f"files must be in it")


def read_pointer(study_dir: Path, storage: str | None = None) -> dict:
    """The study folder's pointer, checked (``check_folder``, ``pointed_storage``); ``storage``
    (the user's ``--storage``) in place of the storage it names."""
    path = study_dir / POINTER
    try:
        check_folder(study_dir)
    except LinkRefused as error:
        raise StudyNotFound(str(error)) from None
    if not path.is_file():
        if not study_dir.is_dir():
            raise StudyNotFound(f"{study_dir}: no such folder")
        raise StudyNotFound(f"{study_dir}: no study here (no {POINTER}; run python -m ulsam_nas.search first)")
    try:
        if path.stat().st_size > MAX_POINTER_BYTES:
            raise ValueError(f"{path.stat().st_size:,} bytes, a pointer holds a few hundred")
        pointer = json.loads(path.read_text())
        named = str(pointer["storage"])
        sqlalchemy.engine.make_url(named)
        study_name, space = str(pointer["study_name"]), str(pointer.get("space", ""))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, sqlalchemy.exc.ArgumentError) as error:
        raise StudyNotFound(f"{path}: not a study pointer ({hide_secrets(str(error))})") from None
    storage = storage if storage is not None else pointed_storage(study_dir, named)
    return {"storage": storage, "study_name": study_name, "space": space}


def pointed_storage(study_dir: Path, url: str) -> str:
    """The storage a pointer names, as a URL to open: PostgreSQL as it is, SQLite only as a file
    inside the study folder (a relative path is relative to the folder, not to the working
    folder), as its absolute path; StudyNotFound, in one line, for anything else. A study stored
    elsewhere is opened with ``--storage``, which the user gives."""
    where = f"{study_dir / POINTER} names storage {shown_url(url)}"
    parsed = sqlalchemy.engine.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return url
    if backend != "sqlite":
        raise StudyNotFound(f"{where}: a pointer may name SQLite or PostgreSQL storage only, not {backend} "
                            f"(give --storage to open a study stored elsewhere)")
    if parsed.database in (None, "", ":memory:") or parsed.query:
        raise StudyNotFound(f"{where}: a pointer's SQLite storage must be a plain file in its folder")
    real_root = os.path.realpath(study_dir)
    database = Path(os.path.realpath(Path(real_root) / parsed.database))  # an absolute path stays absolute
    if not database.is_relative_to(real_root) or str(database) == real_root:
        raise StudyNotFound(f"{where}, {database}, outside its folder: a pointer may name an SQLite file in its folder "
                            f"only (give --storage to open a study stored elsewhere)")
    return f"sqlite:///{database}"


def storage_url(url: str) -> str:
    """``url`` with the PostgreSQL driver we install (psycopg 3, the ``postgres`` extra) when it
    names none: SQLAlchemy's default for ``postgresql://`` is psycopg2."""
    parsed = sqlalchemy.engine.make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


class MissingDriver(ValueError):
    """The storage URL needs a database driver that is not installed."""


def connect_args(url: str, from_pointer: bool = False) -> dict:
    """What a connection to ``url`` is opened with. SQLite: a generous lock timeout (the
    dashboard and other drivers may read while a search writes). PostgreSQL: ``SCRAM_ONLY``,
    unless the user opts out with libpq's PGREQUIREAUTH or a ``require_auth`` in a URL they
    gave, not in a pointer (``from_pointer``), which anyone may have written."""
    parsed = sqlalchemy.engine.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return {"timeout": 60}
    if backend != "postgresql" or "PGREQUIREAUTH" in os.environ or ("require_auth" in parsed.query and not from_pointer):
        return {}
    return {"require_auth": SCRAM_ONLY}


def auth_note(url: str, from_pointer: bool = False) -> str | None:
    """The line that says a PostgreSQL connection to ``url`` does not require SCRAM and what that
    does, or that a pointer's ``require_auth`` is not used; None when there is nothing to say."""
    parsed = sqlalchemy.engine.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    consequence = (f"libpq sends the password to a server that asks for it by any method this allows (the default, "
                   f"require_auth={SCRAM_ONLY}, sends it only through SCRAM, which never shows it to the server)")
    if "PGREQUIREAUTH" in os.environ:
        return f"note: PGREQUIREAUTH={os.environ['PGREQUIREAUTH']}: {consequence}"
    asked = parsed.query.get("require_auth")
    if asked is None:
        return None
    if from_pointer:
        return (f"note: the study folder's require_auth={asked} is not used (a received study cannot lower how "
                f"the password is sent); set PGREQUIREAUTH={asked} to use it")
    return f"note: require_auth={asked}: {consequence}"


def open_engine(url: str, from_pointer: bool = False, **kwargs) -> sqlalchemy.engine.Engine:
    """An SQLAlchemy engine on ``url``, connecting with its password and ``connect_args``."""
    return sqlalchemy.create_engine(with_password(storage_url(url)), connect_args=connect_args(url, from_pointer),
                                    **kwargs)


def param_row(name: str, internal_value: float, distribution: optuna.distributions.BaseDistribution,
              trial_id: int | None = None):
    """One of Optuna's ``trial_params`` rows, built with its own table model (its installed
    version's columns), for the writes Optuna makes one query each."""
    from optuna.storages._rdb import models

    return models.TrialParamModel(trial_id=trial_id, param_name=name, param_value=internal_value,
                                  distribution_json=optuna.distributions.distribution_to_json(distribution))


@contextlib.contextmanager
def transaction(storage: optuna.storages.RDBStorage) -> Iterator[sqlalchemy.orm.Session]:
    """A session of ``storage`` whose work is committed when the block ends, rolled back if it raises."""
    session = storage.scoped_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class StudyStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, pickled without the password of its URL: Ray Tune pickles the
    searcher, and the storage with it, into the experiment's ``tuner.pkl``. Unpickled in this
    process, it connects with the password again.

    Inside ``one_write`` a trial's parameters and user attributes are written in one transaction
    when the block ends, not one transaction each (Optuna's ``Trial.suggest_*`` and
    ``set_user_attr`` write each at once, with a read of the trial's row before it): 38 parameters
    per mv2 trial were a third of a driver's CPU, and on a shared PostgreSQL study 76 round trips
    under the planning lock. A parameter whose distribution this process has not seen yet in the
    study goes through Optuna's own write, which checks it against the other drivers'
    (``_CachedStorage`` passes it None); user attributes go through Optuna's own upsert, in the
    block's transaction. What the block set is not read back before it ends."""

    _pending: list | None = None
    _distributions: dict[str, optuna.distributions.BaseDistribution] | None = None

    def _set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                         distribution: optuna.distributions.BaseDistribution,
                         previous_distribution: optuna.distributions.BaseDistribution | None) -> None:
        if self._pending is None or previous_distribution is None:
            super()._set_trial_param(trial_id, param_name, param_value_internal, distribution, previous_distribution)
            return
        optuna.distributions.check_distribution_compatibility(previous_distribution, distribution)
        self._pending.append(param_row(param_name, param_value_internal, distribution, trial_id))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        if self._pending is None:
            super().set_trial_user_attr(trial_id, key, value)
        else:
            json.dumps(value)  # refused at once, as Optuna refuses it, if it is not JSON
            self._pending.append((trial_id, key, value))

    @contextlib.contextmanager
    def one_write(self):
        """Hold the parameters and user attributes set in this block, and write them in one
        transaction at its end (before a study lock around it is released, so other drivers read
        them whole)."""
        from optuna.storages._rdb import models

        self._pending = []
        try:
            yield
        finally:
            pending, self._pending = self._pending, None
            if pending:
                with transaction(self) as session:
                    for item in pending:
                        if isinstance(item, tuple):
                            self._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, *item)
                        else:
                            session.add(item)

    def _get_trials(self, study_id: int, states, included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[optuna.trial.FrozenTrial]:
        """Optuna's read of a study's trials, from SQLAlchemy Core rows instead of its ORM objects.
        Optuna's cache calls it at every ``get_all_trials`` for the trials still open (a driver's
        running ones, 38 parameters each in mv2) and any new ones: four times per training planned,
        the ORM objects and distribution parsing of those reads were three quarters of a driver's
        CPU with 32 trainings at once (py-spy). The trials are Optuna's, field for field
        (tests/test_scaling.py); a list of open trials too long for one query is Optuna's to read."""
        from optuna.storages._rdb import models

        included = {trial_id for trial_id in included_trial_ids if trial_id <= trial_id_greater_than}
        if len(included) > MAX_IDS_IN_QUERY:
            return super()._get_trials(study_id, states, included_trial_ids, trial_id_greater_than)
        trial = models.TrialModel
        chosen = trial.study_id == study_id
        if states is not None:
            chosen = sqlalchemy.and_(chosen, trial.state.in_(list(states)))
        if included and trial_id_greater_than > -1:
            chosen = sqlalchemy.and_(chosen, sqlalchemy.or_(trial.trial_id.in_(included),
                                                            trial.trial_id > trial_id_greater_than))
        elif trial_id_greater_than > -1:
            chosen = sqlalchemy.and_(chosen, trial.trial_id > trial_id_greater_than)
        ids = sqlalchemy.select(trial.trial_id).where(chosen)

        def children(model, *columns):
            rows: dict[int, list] = {}
            query = sqlalchemy.select(model.trial_id, *columns).where(model.trial_id.in_(ids))
            for row in session.execute(query.order_by(list(model.__table__.primary_key)[0])):
                rows.setdefault(row[0], []).append(row[1:])
            return rows

        with transaction(self) as session:
            models.StudyModel.find_or_raise_by_id(study_id, session)
            rows = session.execute(sqlalchemy.select(
                trial.trial_id, trial.number, trial.state, trial._datetime_start_utc, trial._datetime_complete_utc,
            ).where(chosen).order_by(trial.trial_id)).all()
            params = children(models.TrialParamModel, models.TrialParamModel.param_name,
                              models.TrialParamModel.param_value, models.TrialParamModel.distribution_json)
            values = children(models.TrialValueModel, models.TrialValueModel.objective, models.TrialValueModel.value,
                              models.TrialValueModel.value_type)
            user_attrs = children(models.TrialUserAttributeModel, models.TrialUserAttributeModel.key,
                                  models.TrialUserAttributeModel.value_json)
            system_attrs = children(models.TrialSystemAttributeModel, models.TrialSystemAttributeModel.key,
                                    models.TrialSystemAttributeModel.value_json)
            intermediate = children(models.TrialIntermediateValueModel, models.TrialIntermediateValueModel.step,
                                    models.TrialIntermediateValueModel.intermediate_value,
                                    models.TrialIntermediateValueModel.intermediate_value_type)
        return [self._frozen_trial(models, row, params.get(row[0], ()), values.get(row[0]), user_attrs.get(row[0], ()),
                                   system_attrs.get(row[0], ()), intermediate.get(row[0], ()))
                for row in rows]

    def _frozen_trial(self, models, row, params, values, user_attrs, system_attrs,
                      intermediate) -> optuna.trial.FrozenTrial:
        """One FrozenTrial as Optuna's ``_build_frozen_trial_from_trial_model`` builds it."""
        trial_id, number, state, started, completed = row
        objective_values = None
        if values:
            objective_values = [0.0] * len(values)
            for objective, value, value_type in values:
                objective_values[objective] = models.TrialValueModel.stored_repr_to_value(value, value_type)
        parsed = [(name, value, self._distribution(text)) for name, value, text in params]
        return optuna.trial.FrozenTrial(
            number=number, state=state, value=None, values=objective_values,
            datetime_start=local_time(started), datetime_complete=local_time(completed),
            params={name: distribution.to_external_repr(value) for name, value, distribution in parsed},
            distributions={name: distribution for name, _, distribution in parsed},
            user_attrs={key: json.loads(text) for key, text in user_attrs},
            system_attrs={key: json.loads(text) for key, text in system_attrs},
            intermediate_values={step: models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(value, kind)
                                 for step, value, kind in intermediate},
            trial_id=trial_id)

    def _distribution(self, text: str) -> optuna.distributions.BaseDistribution:
        """A parameter's distribution from its JSON, parsed once per distinct text: a study's
        trials share a few dozen. The object is shared between trials; nothing in Optuna changes
        a distribution in place."""
        if self._distributions is None:
            self._distributions = {}
        if text not in self._distributions:
            self._distributions[text] = optuna.distributions.json_to_distribution(text)
        return self._distributions[text]

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "url": without_password(self.url)}

    def __setstate__(self, state: dict) -> None:
        super().__setstate__({**state, "url": with_password(state["url"])})


def local_time(utc: datetime.datetime | None) -> datetime.datetime | None:
    """A stored naive UTC datetime as Optuna gives it: naive local time (``TrialModel.datetime_start``)."""
    return None if utc is None else utc.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None)


def one_write(study: optuna.Study) -> contextlib.AbstractContextManager:
    """``StudyStorage.one_write`` for the study's storage, or nothing to do for another
    storage (a simulation's in memory). Optuna's Study keeps its storage in ``_storage``, wrapped
    in its cache (``_backend``): no public attribute names it."""
    storage = getattr(study._storage, "_backend", study._storage)
    return storage.one_write() if isinstance(storage, StudyStorage) else contextlib.nullcontext()


def open_storage(url: str, stale_trial_callback: Callable | None = None,
                 stale_after: float = STALE_AFTER, from_pointer: bool = False) -> optuna.storages.RDBStorage:
    """The RDB storage at ``url``. With ``stale_trial_callback``, Optuna's heartbeat is on:
    drivers record a heartbeat for the trials they hold every ``HEARTBEAT_SECONDS``, and
    ``optuna.storages.fail_stale_trials`` fails (and hands to the callback) trials whose driver
    has not beaten for ``stale_after`` seconds, whichever host it ran on. ``from_pointer``: the
    storage a study folder names, opened as it is (no table created, ``connect_args``)."""
    url = without_password(storage_url(url))
    heartbeat = {"heartbeat_interval": int(HEARTBEAT_SECONDS), "grace_period": max(1, int(stale_after)),
                 "heartbeat_stale_trial_callback": stale_trial_callback} if stale_trial_callback else {}
    attempt = 0
    while True:
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = StudyStorage(with_password(url), {"connect_args": connect_args(url, from_pointer)},
                                       skip_table_creation=from_pointer, **heartbeat)
            if not from_pointer and sqlalchemy.engine.make_url(url).get_backend_name() == "sqlite":
                write_ahead(storage.engine)
            return storage
        except ModuleNotFoundError as error:
            raise MissingDriver(driver_hint(url, error)) from None
        except sqlalchemy.exc.DBAPIError:
            # Drivers started together on a new database race to create Optuna's tables; the
            # loser sees a duplicate, and the tables are there when it tries again.
            attempt += 1
            if attempt == SCHEMA_ATTEMPTS or from_pointer:
                raise
            time.sleep(0.5 * attempt)


def write_ahead(engine: sqlalchemy.engine.Engine) -> None:
    """A driver's SQLite study in write-ahead-log mode, synced at checkpoints (``synchronous =
    NORMAL``): a trial's bookkeeping is some 60 small transactions (Optuna writes each parameter
    and attribute in its own), each of which waited for an fsync of the rollback journal (5 ms
    here, 6 under load: a third of a 200-trial landscape search's wall time). The log keeps the
    database consistent through a kill -9 or a crash of the machine, which may lose the last
    transactions, never the file; it needs the study on a local disk (not NFS), as the study lock
    does. The mode is the file's, so the dashboard and other drivers read it the same way."""

    def pragmas(connection, _record) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    sqlalchemy.event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened before the listener (Optuna's schema check) go
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")


def driver_hint(url: str, error: ModuleNotFoundError) -> str:
    backend = sqlalchemy.engine.make_url(url).get_backend_name()
    if backend == "postgresql":
        return f"--storage {shown_url(url)}: PostgreSQL needs psycopg: pip install -e '.[postgres]'"
    return f"--storage {shown_url(url)}: the database driver is not installed ({error})"


def unsupported_backend(url: str, backend: str) -> str:
    return f"--storage {shown_url(url)}: studies live in SQLite (the default) or PostgreSQL, not {backend}"


class StudyLock:
    """One lock per study and ``purpose``, shared by every driver of it on any host, and released by
    the OS or the database when its holder dies, kill -9 included. ``plan``: drivers plan their
    next trial (budget, paper configurations, which (genome, seed) to train) one at a time under
    it. ``publish``: one driver at a time refreshes the dashboard (``report.publish``), which takes
    seconds to minutes on a large study and must not hold up the others' planning.

    - SQLite (one host): ``flock`` on ``<database>.lock`` (``<database>.publish.lock``). Not a
      transaction on the database itself: SQLite locks the whole file for a writer, and the
      driver's own Optuna storage writes while it plans.
    - PostgreSQL: a session advisory lock (``pg_advisory_lock``) on a connection of its own,
      keyed by the study name and the purpose.
    """

    def __init__(self, url: str, study_name: str, purpose: str = "plan") -> None:
        self.url, self.study_name, self.purpose = without_password(storage_url(url)), study_name, purpose
        parsed = sqlalchemy.engine.make_url(self.url)
        self.backend = parsed.get_backend_name()
        if self.backend not in BACKENDS:
            raise ValueError(unsupported_backend(url, self.backend))
        self._file = self._engine = self._connection = None
        keyed = study_name if purpose == "plan" else f"{study_name}\0{purpose}"
        self._key = int.from_bytes(hashlib.sha256(keyed.encode()).digest()[:8], "big", signed=True)

    def __getstate__(self) -> dict:  # Ray Tune pickles the searcher: the handles are opened again
        return {"url": self.url, "study_name": self.study_name, "purpose": self.purpose}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["url"], state["study_name"], state.get("purpose", "plan"))

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock, waiting for it when ``blocking``; else False at once if another holds it."""
        if self.backend == "sqlite":
            if self._file is None:
                database = Path(sqlalchemy.engine.make_url(self.url).database).expanduser().resolve()
                path = database.with_name(database.name + (".lock" if self.purpose == "plan" else f".{self.purpose}.lock"))
                # Beside a study that may have been received: a link there is refused, not followed.
                check_no_links(path.parent, path)
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                self._file = os.fdopen(descriptor, "r+")  # held for the driver's life
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
        if self._connection is None:
            self._engine = open_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
            self._connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if blocking:
            self._connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
            return True
        return bool(self._connection.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:key)"),
                                             {"key": self._key}).scalar())

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        else:
            self._connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._connection is not None:
            self._connection.close()
        if self._engine is not None:
            self._engine.dispose()


def open_pointed_study(pointer: dict) -> optuna.Study:
    """The study a pointer names, opened as it is: no file, table or study is created in the
    database it names, which may be any (``open_storage`` with ``from_pointer``); StudyNotFound,
    in one line, if it is not there."""
    url, shown = pointer["storage"], shown_url(pointer["storage"])
    parsed = sqlalchemy.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).expanduser().is_file():
        raise StudyNotFound(f"storage {shown}: no such file")
    try:
        if not has_optuna_tables(url):
            raise StudyNotFound(f"storage {shown} holds no Optuna study (none of Optuna's tables)")
        return optuna.load_study(study_name=pointer["study_name"], storage=open_storage(url, from_pointer=True))
    except KeyError:
        raise StudyNotFound(f"storage {shown} has no study {pointer['study_name']!r}") from None
    except StudyNotFound:
        raise
    except MissingDriver as error:
        raise StudyNotFound(str(error)) from None
    except Exception as error:  # noqa: BLE001 - SQLAlchemy and drivers raise many kinds
        message = hide_secrets(str(error).strip()).splitlines()[0] if str(error).strip() else type(error).__name__
        if "no password supplied" in message:
            message += " (a pointer holds no password: put it in ~/.pgpass, PGPASSFILE, a service file or PGPASSWORD)"
        raise StudyNotFound(f"cannot open storage {shown}: {message}") from None


def has_optuna_tables(url: str) -> bool:
    """Whether the database at ``url`` holds Optuna's tables; reads only."""
    try:
        engine = open_engine(url, from_pointer=True, poolclass=sqlalchemy.pool.NullPool)
    except ModuleNotFoundError as error:
        raise MissingDriver(driver_hint(url, error)) from None
    try:
        return sqlalchemy.inspect(engine).has_table("version_info")
    finally:
        engine.dispose()


def artifact_store(study_dir: Path) -> StudyArtifactStore:
    """The study's artifact store, ``<study>/artifacts``, which writes and serves nothing through a
    symbolic link (``safe_files.StudyArtifactStore``); LinkRefused if the folder is one."""
    path = study_dir / ARTIFACTS
    make_folder(study_dir, path)
    return StudyArtifactStore(study_dir, path)


def study_num_classes(study) -> int:
    """The class count a study's costs were computed with (``num_classes``; ImageNet's 1000 for a
    study without one), checked: a crafted 10^12 would otherwise build a classifier that size."""
    value = study.user_attrs.get("num_classes", 1000)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CLASSES:
        raise ValueError(f"the study's num_classes: expected a whole number from 1 to {MAX_CLASSES}, got {reprlib.repr(value)}")
    return value
