"""The genome: where ULSAM goes in a backbone, in the paper's notation.

Per layer L of the backbone's table a genome either keeps L, inserts ULSAM after L (written
``L:1``, as in the paper) or substitutes L by ULSAM (written ``L``), each placement with its own
group count g. The canonical string adds the backbone, width multiplier and every g:

    mv1_w1.0(8:1g4,9:1g4,11g4)     MV1 1.0, ULSAM after 8 and 9, layer 11 replaced, all g=4
    mv2_w1.0()                     vanilla MV2

``Genome.parse("mv1", "(8:1, 9:1, 11)", g=4)`` reads the paper's notation; ``Genome.from_string``
reads the canonical one; ``str(genome)`` writes it, and the two round-trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

from .backbones import LayerSpec, get_backbone

INSERT: Literal["insert"] = "insert"
SUBSTITUTE: Literal["substitute"] = "substitute"
Action = Literal["insert", "substitute"]

_ITEM = re.compile(r"^(?P<layer>\d+)(?P<insert>:1)?(?:g(?P<g>\d+))?$")
_CANONICAL = re.compile(r"^(?P<backbone>\w+?)_w(?P<width>\d+(?:\.\d+)?)\((?P<body>[^()]*)\)$")


@dataclass(frozen=True, order=True)
class Placement:
    layer: int
    action: Action
    groups: int

    def __str__(self) -> str:
        return f"{self.layer}{':1' if self.action == INSERT else ''}g{self.groups}"


@dataclass(frozen=True)
class Genome:
    """An immutable, hashable, validated placement of ULSAM blocks in a backbone."""

    backbone: str
    placements: tuple[Placement, ...] = field(default=())
    width_mult: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "width_mult", float(self.width_mult))
        object.__setattr__(self, "placements", tuple(sorted(self.placements)))
        _validate(self)

    # -- reading and writing -------------------------------------------------------------------

    @classmethod
    def parse(
        cls, backbone: str, notation: str, g: int | None = None, width_mult: float = 1.0
    ) -> Genome:
        """Read the paper's notation, e.g. ``"(8:1, 9:1, 11)"`` with ``g=4``.

        Items may carry their own group count (``"(16g4, 17g16)"``); ``g`` applies to the rest.
        An empty notation (``""``, ``"()"`` or ``"vanilla"``) is the unmodified backbone.
        """
        body = notation.strip()
        if body.startswith("(") and body.endswith(")"):
            body = body[1:-1]
        if body.strip().lower() == "vanilla":
            body = ""
        placements = []
        for item in filter(None, (part.strip() for part in body.split(","))):
            match = _ITEM.match(item.replace(" ", ""))
            if not match:
                raise ValueError(
                    f"cannot read placement {item!r}: write L:1 (insert after layer L) or L "
                    f"(substitute layer L), optionally with gN, e.g. '8:1', '11', '16g4'"
                )
            layer = int(match["layer"])
            groups = int(match["g"]) if match["g"] else g
            if groups is None:
                raise ValueError(f"{backbone} layer {layer}: no group count g (give g= or write {item}g4)")
            placements.append(Placement(layer, INSERT if match["insert"] else SUBSTITUTE, groups))
        return cls(backbone, tuple(placements), width_mult)

    @classmethod
    def from_string(cls, text: str) -> Genome:
        """Read the canonical string written by ``str(genome)``."""
        match = _CANONICAL.match(text.strip().replace(" ", ""))
        if not match:
            raise ValueError(f"not a genome string: {text!r} (expected e.g. 'mv2_w1.0(16g4,17g4)')")
        placements = match["body"]
        if placements and any(not re.search(r"g\d+$", item) for item in placements.split(",")):
            raise ValueError(f"genome string {text!r}: every placement needs its gN")
        return cls.parse(match["backbone"], placements, width_mult=float(match["width"]))

    def __str__(self) -> str:
        return f"{self.backbone}_w{self.width_mult}({','.join(map(str, self.placements))})"

    def notation(self) -> str:
        """The paper's notation without group counts, e.g. ``(8:1, 9:1, 11)``; ``vanilla`` if empty."""
        if not self.placements:
            return "vanilla"
        items = [f"{p.layer}{':1' if p.action == INSERT else ''}" for p in self.placements]
        return f"({', '.join(items)})" if len(items) > 1 else items[0]

    # -- queries -------------------------------------------------------------------------------

    def placement(self, layer: int) -> Placement | None:
        return next((p for p in self.placements if p.layer == layer), None)

    def with_width(self, width_mult: float) -> Genome:
        """The same placements at another width (validated again: g must divide the new channels)."""
        return self if width_mult == self.width_mult else replace(self, width_mult=width_mult)

    def layer_specs(
        self, width_mult: float | None = None, channel_multiple: int | None = None, input_size: int | None = None,
    ) -> tuple[LayerSpec, ...]:
        """The backbone's layer table this genome is built on (see ``build_model`` for the
        arguments), with every placement checked against it."""
        width = self.width_mult if width_mult is None else width_mult
        specs = get_backbone(self.backbone).specs(width, channel_multiple, input_size)
        check_placements(replace(self, width_mult=width) if channel_multiple is None else self, specs)
        return specs

    @property
    def groups(self) -> tuple[int, ...]:
        return tuple(sorted({p.groups for p in self.placements}))


def _validate(genome: Genome) -> None:
    backbone = get_backbone(genome.backbone)
    if genome.width_mult <= 0:
        raise ValueError(f"{genome.backbone}: width multiplier must be positive, got {genome.width_mult}")
    seen: set[int] = set()
    for placement in genome.placements:
        if placement.layer in seen:
            raise ValueError(f"{genome.backbone} layer {placement.layer}: placed twice (one action per layer: keep, L:1 or L)")
        seen.add(placement.layer)
        backbone.layer(placement.layer)  # range check
    check_placements(genome, backbone.layers(genome.width_mult, None))


def check_placements(genome: Genome, specs: tuple[LayerSpec, ...]) -> None:
    """Raise ValueError (naming the layer and the reason) unless every placement of ``genome``
    fits the layer table ``specs``: substituted layers keep their shape, g divides the channels."""
    backbone = get_backbone(genome.backbone)
    for placement in genome.placements:
        where = f"{genome.backbone} layer {placement.layer}"
        spec = specs[placement.layer - 1]
        if placement.action == SUBSTITUTE and not spec.keeps_shape:
            allowed = ", ".join(map(str, backbone.substitutable()))
            raise ValueError(
                f"{where}: cannot be substituted by ULSAM, it changes the shape "
                f"({spec.in_ch} -> {spec.out_ch} channels, stride {spec.stride}); "
                f"substitutable layers: {allowed}"
            )
        if placement.groups < 1 or spec.out_ch % placement.groups:
            raise ValueError(
                f"{where}: g={placement.groups} does not divide its {spec.out_ch} channels "
                f"at width {genome.width_mult}"
            )
