"""A landscape: the true top-1 of every genome of a backbone, the seed noise around it and the
learning curve that reaches it. Everything here is a pure function of the landscape, the genome
and the seed, the same in every process (hashlib, never Python's salted ``hash``)."""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..models.genome import Genome, Placement
from ..models.spaces import SearchSpace

CURVE_SHAPES = ("exponential", "linear")


class LandscapeError(ValueError):
    """A landscape that cannot be used; the message (one line) names the landscape, key and problem."""


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from ``parts`` by SHA-256 of their strings: the same in every process."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def standard_normal(*parts: object) -> float:
    """One N(0, 1) draw determined by ``parts``."""
    return float(np.random.default_rng(stable_seed(*parts)).standard_normal())


@dataclass(frozen=True)
class Curve:
    """How top-1 rises over a training's epochs, as a share of its final value: ``start`` at epoch
    0, then ``1 - exp(-rate * epoch / epochs)`` (``exponential``, normalised to reach 1 at the last
    epoch) or ``epoch / epochs`` (``linear``). Each epoch before the last also moves by a wiggle of
    std ``wiggle`` x σ, fading linearly to 0 at the last epoch, so early rungs rank roughly, not
    exactly, like the final values; with σ = 0 the curve is exact."""

    shape: str = "exponential"
    rate: float = 3.0
    start: float = 0.3
    wiggle: float = 0.5

    def share(self, epoch: int, epochs: int) -> float:
        progress = epoch / epochs
        rise = progress if self.shape == "linear" else math.expm1(-self.rate * progress) / math.expm1(-self.rate)
        return self.start + (1 - self.start) * rise


@dataclass(frozen=True)
class Landscape:
    """The truth of a search: top-1 (pp) = ``base`` + the width's effect + the effect of every
    placement (keyed by (layer, action, g), a ``Placement``; absent ones add 0) + the effect of
    every pair of placements in ``interactions`` present together. A training observes the truth
    plus N(0, σ²) seed noise. ``residual`` is the RMS fit residual of a landscape fitted to the
    paper's rows; ``planted`` the placements a landscape made far worse on purpose; ``detail`` says
    where the effects come from."""

    name: str
    backbone: str
    sigma: float
    base: float
    effects: Mapping[Placement, float] = field(default_factory=dict)
    width_effects: Mapping[float, float] = field(default_factory=dict)
    interactions: Mapping[tuple[Placement, Placement], float] = field(default_factory=dict)
    curve: Curve = Curve()
    num_classes: int = 10
    residual: float | None = None
    planted: tuple[Placement, ...] = ()
    detail: str = ""

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 of everything that decides the values (not the name or the descriptions): two
        spellings of one landscape give the same numbers, and any change gives other noise."""
        content = (
            self.backbone, repr(float(self.sigma)), repr(float(self.base)),
            sorted((str(p), repr(float(v))) for p, v in self.effects.items()),
            sorted((repr(float(w)), repr(float(v))) for w, v in self.width_effects.items()),
            sorted((str(a), str(b), repr(float(v))) for (a, b), v in self.interactions.items()),
            self.curve, self.num_classes,
        )
        return hashlib.sha256(repr(content).encode()).hexdigest()

    def truth(self, genome: Genome) -> float:
        if genome.backbone != self.backbone:
            raise ValueError(f"landscape {self.name} is for backbone {self.backbone}, not {genome}")
        present = set(genome.placements)
        value = self.base + self.width_effects.get(genome.width_mult, 0.0)
        value += sum(self.effects.get(p, 0.0) for p in genome.placements)
        value += sum(v for (a, b), v in self.interactions.items() if a in present and b in present)
        return value

    def observe(self, genome: Genome, seed: int) -> float:
        """The final top-1 of training ``genome`` with ``seed``: the truth plus seed noise."""
        return self.truth(genome) + self.sigma * standard_normal(self.fingerprint, genome, seed)

    def curve_at(self, final: float, epoch: int, epochs: int, genome: Genome, seed: int) -> float:
        """Top-1 after ``epoch`` of ``epochs`` of a training that ends at ``final`` (``observe``):
        exactly ``final`` at the last epoch, lower before by the curve's shape, with its wiggle."""
        if epoch == epochs:
            return final
        wiggle = self.curve.wiggle * self.sigma * (1 - epoch / epochs)
        return final * self.curve.share(epoch, epochs) + wiggle * standard_normal(self.fingerprint, genome, seed, epoch)

    def between_std(self, space: SearchSpace) -> float:
        """The std of the truth over the genomes ``space`` draws at random (Optuna's RandomSampler:
        width, and per searched layer its action and g, uniform and independent), computed
        exactly: the truth is a sum of terms, each present when its placements are, and the
        chance of every term and of every pair of terms follows from the per-layer choices."""
        chances = _option_chances(space)
        terms = [(v, {p.layer: p}) for p, v in self.effects.items()]
        terms += [(v, {"width": w}) for w, v in self.width_effects.items()]
        terms += [(v, {a.layer: a, b.layer: b}) for (a, b), v in self.interactions.items() if a.layer != b.layer]
        terms = [(v, needs, _chance(needs, chances)) for v, needs in terms if v]
        terms = [term for term in terms if term[2] > 0]
        mean = sum(v * chance for v, _, chance in terms)
        second = 0.0
        for i, (v_i, needs_i, chance_i) in enumerate(terms):
            second += v_i * v_i * chance_i
            for v_j, needs_j, _ in terms[i + 1:]:
                both = _together(needs_i, needs_j)
                if both is not None:
                    second += 2 * v_i * v_j * _chance(both, chances)
        return math.sqrt(max(0.0, second - mean * mean))

    def describe(self, space: SearchSpace) -> str:
        """One line: name, σ, between-genome std over ``space``, and the fit residual if any."""
        line = (f"landscape {self.name} ({self.backbone}): seed noise σ = {self.sigma:.2f} pp, between-genome std "
                f"{self.between_std(space):.2f} pp over space {space.name}")
        if self.residual is not None:
            line += f", fit residual {self.residual:.2f} pp"
        return f"{line}; {self.detail}" if self.detail else line


def _option_chances(space: SearchSpace) -> dict[object, dict[object, float]]:
    """Per slot (a layer number, or "width"), the chance of each option a random genome takes there."""
    chances: dict[object, dict[object, float]] = {"width": {w: 1 / len(space.width_mults) for w in space.width_mults}}
    for layer, choice in space.layers.items():
        share = 1 / (len(choice.actions) * max(1, len(choice.groups)))
        chances[layer] = {Placement(layer, action, g): share
                          for action in choice.actions if action != "keep" for g in choice.groups}
    return chances


def _chance(needs: dict[object, object], chances: dict[object, dict[object, float]]) -> float:
    return math.prod(chances.get(slot, {}).get(option, 0.0) for slot, option in needs.items())


def _together(first: dict[object, object], second: dict[object, object]) -> dict[object, object] | None:
    """What two terms need together; None when they need different options of one slot."""
    if any(first[slot] != option for slot, option in second.items() if slot in first):
        return None
    return {**first, **second}
