"""Names that become folder names: a study's (``--study-name``, Ray's experiment folder) and a
search space's (``name = ...`` in a space file, the default ``studies/<space>-<dataset>``). Each
must be one plain folder name, and the folder it makes must resolve inside the folder it is made
in, so that a flag, a space file or a received study cannot make a command write elsewhere."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

STUDIES = Path("studies")  # where a command's study folder goes when --study is not given
MAX_LENGTH = 128  # characters; a file system takes 255 bytes per name, and Ray adds to it


def checked_name(kind: str, name: str) -> str:
    """``name`` if it is one plain folder name; ValueError saying why not, ``kind`` naming what it is."""
    if not name:
        problem = "is empty"
    elif any(separator in name for separator in ("/", "\\")) or ".." in name:
        problem = "is a path, not a name (no /, \\ or ..)"
    elif name.startswith("."):
        problem = "starts with '.' (a hidden folder)"
    elif any(ord(character) < 32 or character == "\x7f" for character in name):
        problem = "holds a control character"
    elif len(name) > MAX_LENGTH:
        problem = f"is longer than {MAX_LENGTH} characters"
    else:
        return name
    raise ValueError(f"{kind} {name[:MAX_LENGTH]!r} {problem}")


def name_flag(kind: str) -> Callable[[str], str]:
    """An argparse ``type`` for a flag whose value becomes a folder name (``checked_name``)."""

    def parse(text: str) -> str:
        try:
            return checked_name(kind, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def folder_in(root: Path, *names: str) -> Path:
    """``root / names...``: each a plain folder name, and the folder, with its symbolic links
    followed, inside ``root``; ValueError otherwise."""
    folder = root.joinpath(*(checked_name("folder name", name) for name in names))
    real, real_root = Path(os.path.realpath(folder)), Path(os.path.realpath(root))
    if not real.is_relative_to(real_root):
        raise ValueError(f"{folder} resolves to {real}, outside {root}: a symbolic link leads out of it")
    return folder
