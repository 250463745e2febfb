"""What every ``python -m ulsam_nas.*`` command shares: one-line errors with exit status 2."""

from __future__ import annotations

import argparse
import sys
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
