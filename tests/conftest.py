import random

import pytest

from ulsam_nas import Genome
from ulsam_nas.genome import INSERT, Placement
from ulsam_nas.spaces import SearchSpace, load_space


def random_genome(space: SearchSpace, rng: random.Random, width_mult: float | None = None) -> Genome:
    """A genome drawn uniformly from the space's per-layer choices."""
    placements = []
    for layer, choice in sorted(space.layers.items()):
        action = rng.choice(choice.actions)
        if action != "keep":
            placements.append(Placement(layer, action, rng.choice(choice.groups)))
    width = rng.choice(space.width_mults) if width_mult is None else width_mult
    return Genome(space.backbone, tuple(placements), width)


@pytest.fixture(scope="session")
def spaces() -> dict[str, SearchSpace]:
    return {name: load_space(name) for name in ("mv1", "mv2")}


__all__ = ["INSERT", "random_genome"]


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    """Every test (and every command it runs) uses a fresh decoded-image cache."""
    import os

    path = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("ULSAM_NAS_CACHE")
    os.environ["ULSAM_NAS_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("ULSAM_NAS_CACHE", None)
    else:
        os.environ["ULSAM_NAS_CACHE"] = previous
