"""What every ``python -m ulsam_nas.*`` command shares: one-line errors with exit status 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .genome import Genome

if TYPE_CHECKING:
    from .spaces import SearchSpace


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

    from .studies import driver_hint, storage_url

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
    if backend != "postgresql":
        fail(f"--storage {url}: studies live in SQLite (the default) or PostgreSQL, not {backend}")
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


def start_ray(address: str | None) -> None:
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        probe_ray(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = address or os.environ.get("RAY_ADDRESS", "")
        fail(f"no Ray cluster at {where!r}: {str(error).strip().splitlines()[0]}" if where
             else f"cannot start a local Ray instance: {error}")
