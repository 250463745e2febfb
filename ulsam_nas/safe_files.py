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
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import optuna
from optuna.artifacts.exceptions import ArtifactNotFound

from .names import shown

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
            raise LinkRefused(f"{current} is a symbolic link (to {os.readlink(current)}): no file of a study folder "
                              f"is written or served through a link")


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
    through a symbolic link (``replace_file``, ``open_no_link``), and taking only plain names as
    artifact ids (``PLAIN_ID``): Optuna names every artifact it uploads with a uuid4, but the ids
    the dashboard reads, serves and deletes come from the study's attributes, which whoever sent
    the folder wrote. A crafted id such as ``sub/important.txt``, with ``sub`` a link out of the
    folder, would otherwise reach a file elsewhere."""

    PLAIN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")
    """A file name in the artifacts folder itself: no folder, no ``..``, no leading dot (the
    temporary files of ``replace_file`` start with one)."""

    def __init__(self, root: Path, base_path: Path) -> None:
        super().__init__(base_path)
        self._root = Path(root)

    def _get_filepath(self, artifact_id: str) -> Path:
        if not (isinstance(artifact_id, str) and self.PLAIN_ID.fullmatch(artifact_id) and ".." not in artifact_id):
            raise ValueError(f"artifact id {artifact_id!r} is not a plain name")
        return self._base_path / artifact_id

    def open_reader(self, artifact_id: str) -> BinaryIO:
        try:
            path = self._get_filepath(artifact_id)
        except ValueError as error:  # not a plain name: no artifact of this folder
            raise ArtifactNotFound(str(error)) from error
        try:
            return open_no_link(self._root, path)
        except FileNotFoundError as error:
            raise ArtifactNotFound("not found") from error

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        replace_file(self._root, self._get_filepath(artifact_id), lambda file: shutil.copyfileobj(content_body, file))

    def remove(self, artifact_id: str) -> None:
        """Unlinks the file named ``artifact_id`` in the artifacts folder and nothing else; a link
        there is unlinked itself, never what it points to. An id that is not a plain name, an
        artifacts folder that is a link, or an id naming a folder is skipped with one warning line
        on stderr rather than raised: the dashboard deletes a study's artifacts before the study
        and stops at the first error, so a crafted study could otherwise never be deleted. An
        artifact that does not exist is ``ArtifactNotFound``, as Optuna's own store says it."""
        try:
            self._get_filepath(artifact_id)
        except ValueError:
            self._skipped(artifact_id, "not a plain file name")
            return
        try:
            check_no_links(self._root, self._base_path)
        except LinkRefused:
            self._skipped(artifact_id, "the artifacts folder is a symbolic link or lies through one")
            return
        try:  # the folder opened without following a link, the name unlinked in it: no path is resolved twice
            folder = os.open(self._base_path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError as error:
            raise ArtifactNotFound("not found") from error
        except OSError as error:  # a link put there since the check (ELOOP), or a file (ENOTDIR)
            self._skipped(artifact_id, f"{self._base_path}: {error.strerror}")
            return
        try:
            os.unlink(artifact_id, dir_fd=folder)
        except FileNotFoundError as error:
            raise ArtifactNotFound("not found") from error
        except IsADirectoryError:
            self._skipped(artifact_id, "it names a folder")
        finally:
            os.close(folder)

    def _skipped(self, artifact_id: object, why: str) -> None:
        print(shown(f"warning: artifact {artifact_id!r} of the study not removed ({why}): only files in "
                    f"{self._base_path} are deleted"), file=sys.stderr)
