"""What every ``python -m ulsam_nas.*`` command shares: one-line errors with exit status 2."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .models.genome import Genome

if TYPE_CHECKING:
    from .models.spaces import SearchSpace


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (the full usage is in --help)."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


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
    """Fail (exit 2) unless the storage URL can be opened; writes nothing."""
    import sqlalchemy

    from .studies import BACKENDS, driver_hint, storage_url, unsupported_backend

    try:
        parsed = sqlalchemy.engine.make_url(storage_url(url))
    except sqlalchemy.exc.ArgumentError as error:
        fail(f"--storage {url!r} is not an SQLAlchemy URL: {error}")
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
    try:
        engine = sqlalchemy.create_engine(parsed)
        with engine.connect():
            pass
        engine.dispose()
    except ModuleNotFoundError as error:
        fail(driver_hint(url, error))
    except Exception as error:  # noqa: BLE001 - drivers raise many kinds; all mean "cannot open"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        fail(f"cannot open storage {url}: {first_line}")


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
    """Join the Ray cluster at ``address`` (or RAY_ADDRESS), or start a local instance. Call it
    before anything imports Ray."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        probe_ray(address)
        use_cluster_token()
        # Ray retries a refused handshake 20 times, a second apart; the port is known to listen.
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "5")
    import ray

    error = None
    with tempfile.TemporaryFile() as held:
        # Joining a cluster, Ray's C++ core logs every refused handshake to stderr; a refusal is
        # said below in one line, and what it logged on a successful join is passed on.
        with stderr_to(held) if address else contextlib.nullcontext():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, configure_logging=True)
            except (ray.exceptions.AuthenticationError, ConnectionError, RuntimeError, ValueError) as caught:
                error = caught
        if error is None:
            held.seek(0)
            sys.stderr.buffer.write(held.read())
            return
    if isinstance(error, ray.exceptions.AuthenticationError):  # token mode on, no usable token here
        fail(f"the Ray cluster at {address!r} wants a token ({first_line(error)}): {TOKEN_HINT}")
    if address and "InvalidAuthToken" in f"{error} {error.__cause__}":
        fail(f"the Ray cluster at {address!r} refused this driver's token (or its lack of one): {TOKEN_HINT}")
    fail(f"cannot join the Ray cluster at {address!r}: {first_line(error)}" if address
         else f"cannot start a local Ray instance: {first_line(error)}")


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
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
