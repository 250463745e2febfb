"""Writing into a study folder, which may have been received from someone else: nothing is
written through a symbolic link. Every file the product writes or replaces under a study folder
(the report, ``study.json``, artifacts, an export that lands there, the supernet's checkpoint)
goes through ``write_file`` or ``replace_file``: every folder from the study folder (``root``,
which the user named) down to the file is checked with ``lstat`` (``check_no_links``), the data
go to a new temporary file beside the target, opened with ``O_CREAT | O_EXCL | O_NOFOLLOW``,
and that file is renamed over the target once the target is checked again. A link anywhere on
the way is ``LinkRefused`` (a ValueError: the commands say it in one line, exit 2), and nothing
is written.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import optuna
from optuna.artifacts.exceptions import ArtifactNotFound

CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class LinkRefused(ValueError):
    """A symbolic link where the product would write (or serve) a file of a study folder."""


def check_no_links(root: Path, path: Path) -> None:
    """LinkRefused if ``path`` or any folder between ``root`` and it is a symbolic link; ``root``
    itself is the user's to choose. Components that do not exist yet are fine. A ``path`` outside
    ``root`` is checked from its own folder."""
    root, path = Path(os.path.abspath(root)), Path(os.path.abspath(path))
    if not path.is_relative_to(root):
        root = path.parent
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return  # nothing below a missing folder exists yet
        if stat.S_ISLNK(mode):
            raise LinkRefused(f"{current} is a symbolic link (to {os.readlink(current)}): nothing is written "
                              f"through a link in a study folder")


def within(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or below it, by name (the links on the way are what
    ``check_no_links`` checks): a command's output folder in its study folder is written as the
    study folder is."""
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def make_folder(root: Path, folder: Path) -> None:
    """``folder`` and the folders above it down from ``root``, none of them a symbolic link."""
    check_no_links(root, folder)
    Path(folder).mkdir(parents=True, exist_ok=True)
    check_no_links(root, folder)


def replace_file(root: Path, path: Path, write: Callable[[BinaryIO], None]) -> None:
    """``write(file)`` into a new temporary file beside ``path``, then renamed over ``path``: a run
    killed mid-write leaves the previous file whole, and no link is followed (module docstring)."""
    path = Path(path)
    make_folder(root, path.parent)
    check_no_links(root, path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, CREATE_NEW, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        check_no_links(root, path)
        os.replace(temporary, path)  # a rename replaces a link itself, never what it points to
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_file(root: Path, path: Path, content: str | bytes) -> None:
    """``content`` (text as UTF-8) as the file at ``path`` (``replace_file``)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    replace_file(root, path, lambda file: file.write(data))


def open_no_link(root: Path, path: Path) -> BinaryIO:
    """``path`` opened for reading, refusing a symbolic link there or above it below ``root``."""
    check_no_links(root, path)
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)), "rb")


class StudyArtifactStore(optuna.artifacts.FileSystemArtifactStore):
    """Optuna's file-system artifact store in ``<study>/artifacts``, writing and serving no file
    through a symbolic link (``replace_file``, ``open_no_link``)."""

    def __init__(self, root: Path, base_path: Path) -> None:
        super().__init__(base_path)
        self._root = Path(root)

    def open_reader(self, artifact_id: str) -> BinaryIO:
        try:
            return open_no_link(self._root, self._get_filepath(artifact_id))
        except FileNotFoundError as error:
            raise ArtifactNotFound("not found") from error

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        replace_file(self._root, self._get_filepath(artifact_id), lambda file: shutil.copyfileobj(content_body, file))

    def remove(self, artifact_id: str) -> None:
        path = self._get_filepath(artifact_id)
        check_no_links(self._root, path.parent)
        super().remove(artifact_id)
