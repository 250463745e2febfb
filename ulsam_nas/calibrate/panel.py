"""The panel of a calibration: the genomes every fidelity ranks (``--panel``), the paper's
configurations the space holds, random genomes of the space, or a file of genome strings.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..models.genome import Genome
from ..models.spaces import SearchSpace, random_genomes

PANEL_SIZE = 16


def make_panel(space: SearchSpace, spec: str, seed: int) -> list[Genome]:
    """``paper`` (every paper configuration the space holds), ``random:N``, a file of genome
    strings (one per line, ``#`` comments), or ``default``: paper configurations spread over the
    list, then random genomes, up to 16."""
    paper = [g for g, _ in space.paper_genomes() if space.contains(g)]
    if spec == "default":
        step = max(1, math.ceil(len(paper) / PANEL_SIZE))
        chosen = paper[::step][:PANEL_SIZE]
        return chosen + random_genomes(space, PANEL_SIZE - len(chosen), seed, set(chosen))
    if spec == "paper":
        if len(paper) < 3:
            raise ValueError(f"space {space.name} holds {len(paper)} paper configuration(s); a ranking needs 3")
        return paper
    if spec.startswith("random:"):
        count = spec.removeprefix("random:")
        if not count.isdigit() or int(count) < 3:
            raise ValueError(f"--panel {spec!r}: random:N needs N >= 3 (a ranking needs three genomes)")
        return random_genomes(space, int(count), seed)
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--panel {spec!r}: not paper, random:N or a file of genomes")
    genomes = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            genome = Genome.from_string(text)
        except ValueError as error:
            raise ValueError(f"{path}:{number}: {error}") from None
        if not space.contains(genome):
            raise ValueError(f"{path}:{number}: {genome} is not in space {space.name}")
        genomes.append(genome)
    if len(set(genomes)) < 3:
        raise ValueError(f"{path}: a panel needs at least 3 distinct genomes, found {len(set(genomes))}")
    return list(dict.fromkeys(genomes))
