"""What every ``python -m ulsam_nas.*`` command shares: one-line errors with exit status 2, quiet
library logging, the study storage check, and the Ray side: joining or starting the cluster, the
flags that size the trials on it (``add_resource_flags``) and their sizing against it
(``size_trials``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .models.genome import Genome

if TYPE_CHECKING:
    import optuna

    from .models.spaces import SearchSpace


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (the full usage is in --help)."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit status 2; what the message quotes from a study or a
    flag shows its control characters escaped (``names.shown``), so it stays one line."""
    from .names import shown

    print(f"error: {shown(message)}", file=sys.stderr)
    sys.exit(2)


def quiet_logging() -> None:
    """Warnings and errors only, as bare lines, from the libraries a Ray Tune command drives
    (Optuna logs every trial at INFO): the command's own lines are what the user reads."""
    import optuna

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def genome_from_cli(text: str, g: int | None, width: float | None, space: SearchSpace) -> Genome:
    """``--genome`` (paper notation or a canonical string), ``--g`` and ``--width`` as a Genome
    of ``space``'s backbone (width default: the space's first)."""
    text = text.strip()
    if not text[:1].isalpha() or text.lower() == "vanilla":
        return Genome.parse(space.backbone, text, g=g, width_mult=space.width_mults[0] if width is None else width)
    genome = Genome.from_string(text)  # canonical strings start with the backbone's name
    if genome.backbone != space.backbone:
        raise ValueError(f"genome {genome} is for {genome.backbone}, space {space.name} is {space.backbone}")
    return genome if width is None else genome.with_width(width)


def check_storage(url: str, default_dir: Path | None) -> None:
    """Fail (exit 2) unless the storage URL can be opened; writes nothing. Says so in one line
    when a PostgreSQL connection does not require SCRAM (``studies.auth_note``)."""
    import sqlalchemy

    from .studies import BACKENDS, auth_note, driver_hint, hide_secrets, open_engine, shown_url, storage_url, unsupported_backend

    try:
        parsed = sqlalchemy.engine.make_url(storage_url(url))
    except (sqlalchemy.exc.ArgumentError, ValueError) as error:
        fail(f"--storage {shown_url(url)!r} is not an SQLAlchemy URL: {hide_secrets(str(error))}")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database in (None, "", ":memory:"):
            fail(f"--storage {url!r}: an in-memory SQLite study would be lost; give a file")
        folder = Path(database).expanduser().resolve().parent
        if not folder.is_dir() and folder != (default_dir and default_dir.resolve()):
            fail(f"cannot open storage {url}: folder {folder} does not exist")
        return
    if backend not in BACKENDS:
        fail(unsupported_backend(url, backend))
    note = auth_note(url)
    if note:
        print(note, file=sys.stderr)
    try:
        engine = open_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except ModuleNotFoundError as error:
        fail(driver_hint(url, error))
    except Exception as error:  # noqa: BLE001 - drivers raise many kinds; all mean "cannot open"
        fail(f"cannot open storage {shown_url(url)}: {first_line(error)}")


def probe_ray(address: str) -> None:
    """Fail at once when nothing listens at host:port (ray.init would retry for minutes)."""
    import socket

    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms: Ray itself answers quickly
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        fail(f"no Ray cluster at {address!r}: {error.strerror or error}")


TOKEN_HINT = ("set RAY_AUTH_MODE=token and give this driver the cluster's token: in ~/.ray/auth_token (`ray "
              "get-auth-token` on the head prints it), or in the file RAY_AUTH_TOKEN_PATH names, or in RAY_AUTH_TOKEN")


def use_cluster_token() -> None:
    """Join token-authenticated clusters (Ray's default since 2.5x when a token exists) with no
    extra step: when the token sits where Ray's CLI keeps it, or RAY_AUTH_TOKEN(_PATH) gives it,
    turn the client's token mode on. Ray reads the mode when it is imported: call this first."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if os.environ.get("RAY_AUTH_TOKEN") or (path and Path(path).is_file()) or (Path.home() / ".ray" / "auth_token").is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def start_ray(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (or RAY_ADDRESS), or start a local instance, whose
    processes start without this process's secrets (``secrets_hidden``). Call it before anything
    imports Ray."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        probe_ray(address)
        use_cluster_token()
        # Ray retries a refused handshake 20 times, a second apart; the port is known to listen.
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "5")
    import ray

    hide_entrypoint_passwords(ray)
    error = None
    with tempfile.TemporaryFile() as held:
        # Joining a cluster, Ray's C++ core logs every refused handshake to stderr; a refusal is
        # said below in one line, and what it logged on a successful join is passed on.
        with stderr_to(held) if address else secrets_hidden():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, configure_logging=True)
            except (ray.exceptions.AuthenticationError, ConnectionError, RuntimeError, ValueError) as caught:
                error = caught
        if error is None:
            held.seek(0)
            sys.stderr.buffer.write(held.read())
            say_if_open(ray, address)
            return
    if isinstance(error, ray.exceptions.AuthenticationError):  # token mode on, no usable token here
        fail(f"the Ray cluster at {address!r} wants a token ({first_line(error)}): {TOKEN_HINT}")
    if address and "InvalidAuthToken" in f"{error} {error.__cause__}":
        fail(f"the Ray cluster at {address!r} refused this driver's token (or its lack of one): {TOKEN_HINT}")
    fail(f"cannot join the Ray cluster at {address!r}: {first_line(error)}" if address
         else f"cannot start a local Ray instance: {first_line(error)}")


@contextlib.contextmanager
def secrets_hidden() -> Iterator[None]:
    """This process's environment without libpq's variables (PGPASSWORD, PGPASSFILE, PGSERVICE,
    ...) and any that holds a storage password, while a local Ray instance starts: its raylet,
    and every worker the raylet starts, inherit the environment it starts with, and a trainable
    never opens the study. The driver gets them back."""
    from .studies import holds_secret

    hidden = {name: value for name, value in os.environ.items() if name.startswith("PG") or holds_secret(value)}
    for name in hidden:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(hidden)


def hide_entrypoint_passwords(ray) -> None:
    """Ray records this process's command line as the job's entrypoint, which whoever reaches the
    cluster can list: it gets the command line with the passwords of its URLs hidden."""
    from .studies import hide_secrets

    entrypoint = hide_secrets(ray._private.utils.get_entrypoint_name())
    ray._private.utils.get_entrypoint_name = lambda: entrypoint


def say_if_open(ray, address: str | None) -> None:
    """One line when the Ray cluster this driver is on runs without token authentication and
    listens beyond this machine: whoever reaches it can run code on it."""
    import ipaddress

    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return
    host = (address or "").removeprefix("ray://").rpartition(":")[0] or \
        ray.get_runtime_context().gcs_address.rpartition(":")[0]
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(f"note: the Ray cluster at {host} runs without token authentication and listens beyond this machine: "
              f"whoever reaches it can run code on it and read what its trials hold (a cluster started with "
              f"RAY_AUTH_MODE=token asks for a token)", file=sys.stderr)


def number_flag(convert: Callable[[str], float], minimum: float, above: bool) -> Callable[[str], float]:
    """An argparse ``type``: ``convert`` the text, refusing a value that is not finite or is below
    ``minimum`` (or equal to it, with ``above``); argparse says which flag, in one line."""
    wanted = f"{'an integer' if convert is int else 'a finite number'} {'above' if above else 'at least'} {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < minimum or (above and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return parse


def add_resource_flags(parser: argparse.ArgumentParser) -> None:
    """--address, and what each training reserves on the Ray cluster and how many run at once:
    --cpus-per-trial (finite, above 0), --gpus-per-trial (finite, 0 or more) and --concurrency (1
    or more). A value out of range is a usage error while the flags are parsed, before Ray starts;
    ``size_trials`` checks them against the cluster once it has."""
    parser.add_argument("--address", default=None, help="address of an existing Ray cluster (default: start a local one)")
    parser.add_argument("--cpus-per-trial", type=number_flag(float, 0, above=True), default=1.0,
                        help="CPUs each training reserves (default 1)")
    parser.add_argument("--gpus-per-trial", type=number_flag(float, 0, above=False), default=None,
                        help="GPUs each training reserves, fractions allowed (default 1 if the Ray cluster has GPUs, "
                             "else 0)")
    parser.add_argument("--concurrency", type=number_flag(int, 1, above=False), default=None,
                        help="trainings at once (default: as many as the resources allow)")


@dataclass(frozen=True)
class TrialResources:
    """What each training reserves on the Ray cluster, how many run at once, and whether the
    cluster has GPUs at all (a command's defaults may depend on it)."""

    cpus: float
    gpus: float
    concurrency: int
    cluster_has_gpus: bool

    @property
    def ray(self) -> dict[str, float]:
        """The resources in the form ``tune.with_resources`` takes."""
        return {"cpu": self.cpus, "gpu": self.gpus}


def size_trials(args: argparse.Namespace) -> TrialResources:
    """The flags of ``add_resource_flags`` against the Ray cluster (after ``start_ray``): a
    training that asks for more CPUs or GPUs than the cluster has is refused (one line, exit 2);
    --gpus-per-trial defaults to 1 when the cluster has a GPU, and --concurrency to as many
    trainings as its CPUs and GPUs hold at once."""
    import ray

    cluster = ray.cluster_resources()
    cluster_cpus, cluster_gpus = cluster.get("CPU", 1), cluster.get("GPU", 0)
    if args.gpus_per_trial and not cluster_gpus:
        fail(f"--gpus-per-trial {args.gpus_per_trial:g}: there is no GPU in this Ray cluster")
    if args.gpus_per_trial and args.gpus_per_trial > cluster_gpus:
        fail(f"--gpus-per-trial {args.gpus_per_trial:g}: the Ray cluster has {cluster_gpus:g} GPUs")
    if args.cpus_per_trial > cluster_cpus:
        fail(f"--cpus-per-trial {args.cpus_per_trial:g}: the Ray cluster has {cluster_cpus:g} CPUs")
    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (1.0 if cluster_gpus else 0.0)
    limits = [cluster_cpus // args.cpus_per_trial] + ([cluster_gpus // gpus] if gpus else [])
    concurrency = args.concurrency or max(1, int(min(limits)))
    return TrialResources(args.cpus_per_trial, gpus, concurrency, bool(cluster_gpus))


@contextlib.contextmanager
def stderr_to(file) -> Iterator[None]:
    """Send what this process writes to file descriptor 2, C++ libraries included, to ``file``."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, passwords hidden (a driver may echo its URL)."""
    from .studies import hide_secrets

    text = hide_secrets(str(getattr(error, "message", None) or error).strip())
    return text.splitlines()[0] if text else type(error).__name__


def load_study_for_command(study_dir: Path, storage: str | None = None) -> tuple[optuna.Study, dict]:
    """The study a command's ``--study`` folder points to, and the pointer
    (``studies.read_pointer``, which checks the folder and what its pointer names, and
    ``studies.open_pointed_study``); ``storage``, the user's ``--storage``, in place of the
    storage the pointer names. When it does not open, fail in one line (exit 2). The folder, not
    the user, chose the server: a PostgreSQL one is named before it is connected to. The study's
attributes and values are checked (``study_schema.check_study``): a crafted one fails here too."""
    import sqlalchemy

    from .names import shown
    from .studies import POINTER, StudyNotFound, auth_note, open_pointed_study, read_pointer, shown_url
    from .study_schema import AttributeRefused, check_study

    try:
        pointer = read_pointer(study_dir, storage)
        if storage is None and sqlalchemy.engine.make_url(pointer["storage"]).get_backend_name() == "postgresql":
            print(shown(f"connecting to {shown_url(pointer['storage'])} (named by {study_dir / POINTER})"), flush=True)
            note = auth_note(pointer["storage"], from_pointer=True)
            if note:
                print(shown(note), flush=True)
        study = open_pointed_study(pointer)
        check_study(study)  # every attribute and value the commands read, before any is used
        return study, pointer
    except (StudyNotFound, AttributeRefused) as error:
        fail(str(error))
