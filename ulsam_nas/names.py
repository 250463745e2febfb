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


SHOWN_AS_IS = frozenset(range(32, 127))  # printable ASCII
INVISIBLE = {0x200E, 0x200F, 0x061C, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
"""Marks that reorder or break what a terminal shows: the bidirectional overrides, embeddings and
isolates (U+202A-U+202E, U+2066-U+2069, the trojan-source characters), the direction marks and
the line and paragraph separators."""


def shown(text: object) -> str:
    """``text`` (a label, genome, study name, host, failure text: anything from a study) as it is
    printed to a terminal: control characters (C0, DEL, C1: an escape sequence, a carriage
    return, a newline inside a value) and the marks in ``INVISIBLE`` written as escapes
    (``\\x1b``, ``\\r``, ``\\n``, ``\\u202e``), so that what a study holds cannot move the cursor,
    rewrite the line, set the window title or reorder the text around it. Other characters,
    accented and non-Latin ones included, stay as they are."""
    text = str(text)
    if all(ord(character) in SHOWN_AS_IS for character in text):
        return text
    return "".join(_escaped(character) for character in text)


def _escaped(character: str) -> str:
    code = ord(character)
    if code in SHOWN_AS_IS or not (code < 32 or 0x7F <= code <= 0x9F or code in INVISIBLE):
        return character
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(character) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
