"""Latency as deployment engineers mean it: milliseconds per image at 224 px, batch 1, eval mode,
on a named target (``timing.Target``: ``cpu`` with N threads, default 1 as on a phone core, or
``cuda``), predicted from a table of per-part timings.

MACs are a poor stand-in for time, and ULSAM is the extreme case: almost no MACs, but a 3x3
max-pool, a softmax over h·w and a broadcast multiply, all memory-bound. Timing every genome
end to end would cost seconds each; as FBNet and OFA do, a genome's latency is *predicted* from a
lookup table of its parts instead:

- a part is what ``build_model`` puts in sequence: a backbone layer, a ULSAM (inserted or
  substituting a layer) or the head, keyed by its kind, shape and ULSAM g and variant (``parts``);
- each part is timed on the target (``timing.time_module``: warm-up, then the fastest of its
  blocked runs in each of several passes), once per machine: the table is cached on disk keyed
  by device, threads, CPU or GPU model and torch version;
- the prediction is the sum over the genome's parts plus one per-network constant: the vanilla
  network's end-to-end time minus the sum of its own parts (the calls between parts, which no
  part's own timing holds). It costs no training and no model, so the driver knows it before a
  trial starts.

On a machine whose speed drifts, a network timed now and parts timed minutes ago disagree by
more than the table's own error. ``timing.py`` deals with page faults and preemption; the rest
(caches other processes left cold, the host) is dealt with here: ``fill`` times every part in
``PART_PASSES`` passes and the vanilla network every ``VANILLA_EVERY`` part timings, and keeps
the fastest of each (the table's ``vanilla_ms``); ``check`` times each genome in alternating
rounds with the vanilla network (``timing.time_interleaved``), takes the fastest of each over
the same stretch of time, and reports the genome at the table's machine speed,
``genome_now * vanilla_ms / vanilla_now``. Under a load of 4-7 on the 2 cores, the vanilla
network came out 5-20% slower during a check than in its table, and the genomes with it.

``python -m ulsam_nas.latency --check N`` (``command.py``) measures N random genomes end to end
that way and prints how far the table is from them.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..models.backbones import get_backbone
from ..models.backbones.base import LayerSpec
from ..models.genome import INSERT, Genome
from ..models.layers import init_weights
from ..models.ulsam import ULSAM
from . import timing
from .timing import NETWORK_INPUT, RESOLUTION, Target

PART_PASSES = 3  # passes over the missing parts in ``fill``; each part keeps its fastest
PART_RUN_TIME = 0.1  # seconds of blocked runs per part and pass
VANILLA_EVERY = 10  # part timings between two timings of the vanilla network in ``fill``
VANILLA_RUN_TIME = 0.1  # seconds of blocked runs per such timing


@dataclass(frozen=True)
class Part:
    """One module of a built network, as the table keys it: what it is and its input shape."""

    kind: str  # "layer", "ulsam" or "head"
    spec: LayerSpec | None  # the layer's spec ("layer")
    channels: int
    size: int  # input height = width
    groups: int = 0  # ULSAM's g
    variant: str = ""  # ULSAM's variant
    num_classes: int = 0  # the head's

    @property
    def key(self) -> str:
        if self.kind == "layer":
            s = self.spec
            return f"{s.block}:{s.in_ch}>{s.out_ch}:s{s.stride}:t{s.expansion}@{self.size}"
        if self.kind == "ulsam":
            return f"ulsam:{self.channels}:g{self.groups}:{self.variant}@{self.size}"
        return f"head:{self.channels}>{self.num_classes}@{self.size}"

    def build(self, backbone: str) -> nn.Module:
        if self.kind == "layer":
            module = get_backbone(backbone).make_layer(self.spec)
        elif self.kind == "ulsam":
            module = ULSAM(self.channels, self.groups, self.variant)
        else:
            module = get_backbone(backbone).make_head(self.channels, self.num_classes)
        init_weights(module)  # as build_model does: timing may depend on the values
        return module

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, self.channels, self.size, self.size)


def parts(genome: Genome, num_classes: int, variant: str = "official") -> list[Part]:
    """The modules ``build_model(genome, num_classes)`` runs in sequence, with input shapes."""
    size, out = RESOLUTION, []
    specs = genome.layer_specs()
    for spec in specs:
        placement = genome.placement(spec.number)
        if placement is None or placement.action == INSERT:
            out.append(Part("layer", spec, spec.in_ch, size))
        else:
            out.append(Part("ulsam", None, spec.in_ch, size, placement.groups, variant))
        size = spec.output_size(size)
        if placement is not None and placement.action == INSERT:
            out.append(Part("ulsam", None, spec.out_ch, size, placement.groups, variant))
    out.append(Part("head", None, specs[-1].out_ch, size, num_classes=num_classes))
    return out


class LatencyTable:
    """Per-part latencies on one target, the per-network constant and the vanilla network's
    end-to-end time they were built against; cached as JSON."""

    def __init__(self, target: Target, backbone: str, entries: dict[str, float] | None = None,
                 constant: float | None = None, vanilla_ms: float | None = None,
                 vanilla_width: float | None = None) -> None:
        self.target, self.backbone = target, backbone
        self.entries: dict[str, float] = dict(entries or {})
        self.constant = constant
        self.vanilla_ms, self.vanilla_width = vanilla_ms, vanilla_width

    @property
    def vanilla(self) -> Genome:
        """The network behind the constant and ``vanilla_ms``: no ULSAM, at ``vanilla_width``."""
        return Genome(self.backbone, (), self.vanilla_width)

    @classmethod
    def path(cls, target: Target, backbone: str) -> Path:
        from ..data.cache import cache_key, cache_root

        return cache_root() / "latency" / f"{backbone}-{cache_key(target.key())}.json"

    @classmethod
    def load(cls, target: Target, backbone: str) -> LatencyTable:
        """The cached table for ``target`` (empty when none is cached yet)."""
        path = cls.path(target, backbone)
        if not path.is_file():
            return cls(target, backbone)
        stored = json.loads(path.read_text())
        if stored.get("target") != target.key():
            return cls(target, backbone)
        return cls(target, backbone, stored["entries"], stored["constant"], stored["vanilla_ms"],
                   stored["vanilla_width"])

    def save(self) -> Path:
        path = self.path(self.target, self.backbone)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"target": self.target.key(), "describe": self.target.describe(),
                                         "constant": self.constant, "vanilla_ms": self.vanilla_ms,
                                         "vanilla_width": self.vanilla_width,
                                         "entries": self.entries}, indent=1))
        temporary.replace(path)
        return path

    def fill(self, genomes: list[Genome], num_classes: int, progress: bool = False) -> int:
        """Time every part of ``genomes`` the table lacks, and the constant; returns how many.

        The missing parts are timed in ``PART_PASSES`` passes over all of them, and each keeps its
        fastest: with one 0.3 s timing per part, about one part in 25 came out 1.5-7x too slow
        here, when a slow spell (module docstring) lasted the whole timing. A new table also times the
        vanilla network every ``VANILLA_EVERY`` part timings and at the end, and keeps the
        fastest (module docstring)."""
        from ..models.build import build_model

        if self.vanilla_width is None:
            self.vanilla_width = genomes[0].width_mult
        vanilla = self.vanilla
        missing = {p.key: p for g in [vanilla, *genomes] for p in parts(g, num_classes) if p.key not in self.entries}
        modules = {key: part.build(self.backbone) for key, part in missing.items()}
        vanilla_model = build_model(vanilla, num_classes) if self.vanilla_ms is None else None
        fastest, vanilla_times, timings = {key: math.inf for key in missing}, [], 0
        started = time.time()
        for done in range(1, PART_PASSES + 1):
            for key, part in missing.items():
                if vanilla_model is not None and timings % VANILLA_EVERY == 0:
                    vanilla_times.append(timing.time_module(vanilla_model, NETWORK_INPUT, self.target, VANILLA_RUN_TIME))
                milliseconds = timing.time_module(modules[key], part.input_shape, self.target, PART_RUN_TIME)
                fastest[key] = min(fastest[key], milliseconds)
                timings += 1
            if progress and missing:
                print(f"latency table: pass {done}/{PART_PASSES} over {len(missing)} parts done "
                      f"({time.time() - started:.0f}s)", file=sys.stderr, flush=True)
        self.entries.update(fastest)
        if vanilla_model is not None:
            vanilla_times.append(timing.time_module(vanilla_model, NETWORK_INPUT, self.target, VANILLA_RUN_TIME))
            self.vanilla_ms = min(vanilla_times)
            self.constant = self.vanilla_ms - self.parts_sum(vanilla, num_classes)
        return len(missing)

    def parts_sum(self, genome: Genome, num_classes: int) -> float:
        return sum(self.entries[p.key] for p in parts(genome, num_classes))

    def predict(self, genome: Genome, num_classes: int) -> float:
        """Predicted milliseconds per image; KeyError if a part is not in the table (``fill``)."""
        return self.parts_sum(genome, num_classes) + (self.constant or 0.0)


@dataclass(frozen=True)
class Check:
    """Predicted against measured latency for a set of genomes; ``measured`` is at the table's
    machine speed (``check``), ``measured_now`` and ``vanilla_now`` are what the clock said."""

    genomes: tuple[str, ...]
    predicted: tuple[float, ...]
    measured: tuple[float, ...]
    measured_now: tuple[float, ...] = ()
    vanilla_now: tuple[float, ...] = ()

    @property
    def errors(self) -> list[float]:
        """Relative error of each prediction."""
        return [p / m - 1 for p, m in zip(self.predicted, self.measured)]

    @property
    def within_10(self) -> float:
        return sum(abs(e) <= 0.10 for e in self.errors) / len(self.errors)

    @property
    def rmse(self) -> float:
        return math.sqrt(statistics.fmean((p - m) ** 2 for p, m in zip(self.predicted, self.measured)))

    def to_json(self) -> dict:
        return {"genomes": list(self.genomes), "predicted_ms": list(self.predicted), "measured_ms": list(self.measured),
                "measured_now_ms": list(self.measured_now), "vanilla_now_ms": list(self.vanilla_now),
                "within_10_percent": self.within_10, "rmse_ms": self.rmse}


def check(table: LatencyTable, genomes: list[Genome], num_classes: int, progress: bool = False) -> Check:
    """Measure ``genomes`` end to end, each in alternating rounds with the vanilla network, and
    set the table's predictions beside them at the table's machine speed (module docstring)."""
    from ..models.build import build_model

    vanilla_model = build_model(table.vanilla, num_classes)
    predicted, measured, measured_now, vanilla_now = [], [], [], []
    for i, genome in enumerate(genomes, 1):
        predicted.append(table.predict(genome, num_classes))
        genome_ms, vanilla_ms = timing.time_interleaved([build_model(genome, num_classes), vanilla_model], NETWORK_INPUT,
                                                 table.target)
        measured.append(genome_ms * table.vanilla_ms / vanilla_ms)
        measured_now.append(genome_ms)
        vanilla_now.append(vanilla_ms)
        if progress:
            print(f"check {i}/{len(genomes)}: {genome}: predicted {predicted[-1]:.2f} ms, measured "
                  f"{measured[-1]:.2f} ms ({genome_ms:.2f} ms beside the vanilla network's {vanilla_ms:.2f} ms, "
                  f"{table.vanilla_ms:.2f} ms in the table)", file=sys.stderr, flush=True)
    return Check(tuple(map(str, genomes)), tuple(predicted), tuple(measured), tuple(measured_now), tuple(vanilla_now))
