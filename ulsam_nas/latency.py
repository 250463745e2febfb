"""Latency as deployment engineers mean it: milliseconds per image at 224 px, batch 1, eval mode,
on a named target (``cpu`` with N threads, default 1 as on a phone core, or ``cuda``).

MACs are a poor stand-in for time, and ULSAM is the extreme case: almost no MACs, but a 3x3
max-pool, a softmax over h·w and a broadcast multiply, all memory-bound. Timing every genome
end to end would cost seconds each; as FBNet and OFA do, a genome's latency is *predicted* from a
lookup table of its parts instead:

- a part is what ``build_model`` puts in sequence: a backbone layer, a ULSAM (inserted or
  substituting a layer) or the head, keyed by its kind, shape and ULSAM g and variant;
- each part is timed once on the target with ``torch.utils.benchmark`` (warm-up, then the
  fastest of its blocked runs), and the table is cached on disk keyed by device, threads, CPU or GPU model
  and torch version;
- the prediction is the sum over the genome's parts plus one per-network constant: the vanilla
  network's end-to-end time minus the sum of its own parts (the calls between parts, which no
  part's own timing holds). It costs no training and no model, so the driver knows it before a
  trial starts.

``python -m ulsam_nas.latency --check N`` measures N random genomes end to end with the same
protocol and prints how far the table is from them.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .backbones import get_backbone
from .backbones.base import LayerSpec
from .calibrate import random_genomes
from .genome import INSERT, Genome, Placement
from .layers import init_weights
from .spaces import SearchSpace
from .ulsam import ULSAM

RESOLUTION = 224
MIN_RUN_TIME = 0.3  # seconds of blocked runs per timing, after Timer's own warm-up
TABLE_VERSION = 1


@dataclass(frozen=True)
class Target:
    """Where latency is measured: ``cpu`` with ``threads`` intra-op threads, or ``cuda``."""

    device: str = "cpu"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"latency device must be cpu or cuda, not {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("latency device cuda: there is no CUDA GPU here")
        if self.threads < 1:
            raise ValueError(f"latency threads must be at least 1, got {self.threads}")

    @property
    def hardware(self) -> str:
        if self.device == "cuda":
            return torch.cuda.get_device_name()
        for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
        return platform.processor() or platform.machine()

    def describe(self) -> str:
        where = f"CPU ({self.hardware}), {self.threads} thread(s)" if self.device == "cpu" else f"GPU ({self.hardware})"
        return f"{where}, torch {torch.__version__}, batch 1 at {RESOLUTION} px, eval mode"

    def key(self) -> str:
        return "-".join([self.device, f"t{self.threads}", self.hardware, torch.__version__, f"v{TABLE_VERSION}"])


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

    def milliseconds(self, backbone: str, target: Target) -> float:
        return time_module(self.build(backbone), (1, self.channels, self.size, self.size), target)


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


def time_module(module: nn.Module, shape: tuple[int, ...], target: Target) -> float:
    """Milliseconds of one eval-mode forward of ``module`` on a random input of ``shape``: the
    fastest of ``torch.utils.benchmark``'s blocked runs. The fastest, not the median: on a
    shared machine other work only ever slows a run down, and the median of whole-network runs
    moved by up to 10% between repetitions here while the fastest moved by 1-2%."""
    benchmark = _benchmark()
    device = torch.device(target.device)
    module = module.to(device).eval()
    x = torch.randn(shape, device=device)
    previous = torch.get_num_threads()
    try:
        with torch.inference_mode():
            module(x)  # the first call allocates
            sync = "torch.cuda.synchronize()" if target.device == "cuda" else ""
            timer = benchmark.Timer(stmt=f"module(x); {sync}", globals={"module": module, "x": x, "torch": torch},
                                    num_threads=target.threads)
            measurement = timer.blocked_autorange(min_run_time=MIN_RUN_TIME)
            return min(measurement.raw_times) / measurement.number_per_run * 1e3
    finally:
        torch.set_num_threads(previous)


def _benchmark():
    """``torch.utils.benchmark``, imported without the warning its C++-extension helper logs
    on a machine without CUDA (it compiles nothing here)."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import benchmark

    return benchmark


class LatencyTable:
    """Per-part latencies on one target, and the per-network constant; cached as JSON."""

    def __init__(self, target: Target, backbone: str, entries: dict[str, float] | None = None,
                 constant: float | None = None) -> None:
        self.target, self.backbone = target, backbone
        self.entries: dict[str, float] = dict(entries or {})
        self.constant = constant

    @classmethod
    def path(cls, target: Target, backbone: str) -> Path:
        from .data.cache import cache_key, cache_root

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
        return cls(target, backbone, stored["entries"], stored.get("constant"))

    def save(self) -> Path:
        path = self.path(self.target, self.backbone)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"target": self.target.key(), "describe": self.target.describe(),
                                         "constant": self.constant, "entries": self.entries}, indent=1))
        temporary.replace(path)
        return path

    def fill(self, genomes: list[Genome], num_classes: int, progress: bool = False) -> int:
        """Time every part of ``genomes`` the table lacks, and the constant; returns how many."""
        vanilla = Genome(self.backbone, (), genomes[0].width_mult)
        missing = {p.key: p for g in [vanilla, *genomes] for p in parts(g, num_classes) if p.key not in self.entries}
        started = time.time()
        for i, part in enumerate(missing.values(), 1):
            self.entries[part.key] = part.milliseconds(self.backbone, self.target)
            if progress and (i % 20 == 0 or i == len(missing)):
                print(f"latency table: {i}/{len(missing)} parts timed ({time.time() - started:.0f}s)",
                      file=sys.stderr, flush=True)
        if self.constant is None:
            self.constant = measure(vanilla, num_classes, self.target) - self.parts_sum(vanilla, num_classes)
        return len(missing)

    def parts_sum(self, genome: Genome, num_classes: int) -> float:
        return sum(self.entries[p.key] for p in parts(genome, num_classes))

    def predict(self, genome: Genome, num_classes: int) -> float:
        """Predicted milliseconds per image; KeyError if a part is not in the table (``fill``)."""
        return self.parts_sum(genome, num_classes) + (self.constant or 0.0)


def measure(genome: Genome, num_classes: int, target: Target) -> float:
    """End-to-end milliseconds per image of ``build_model(genome)``, with the table's protocol."""
    from .model import build_model

    return time_module(build_model(genome, num_classes), (1, 3, RESOLUTION, RESOLUTION), target)


@dataclass(frozen=True)
class Check:
    """Predicted against measured latency for a set of genomes."""

    genomes: tuple[str, ...]
    predicted: tuple[float, ...]
    measured: tuple[float, ...]

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
                "within_10_percent": self.within_10, "rmse_ms": self.rmse}


def check(table: LatencyTable, genomes: list[Genome], num_classes: int, progress: bool = False) -> Check:
    """Measure ``genomes`` end to end and set the table's predictions beside them."""
    predicted, measured = [], []
    for i, genome in enumerate(genomes, 1):
        predicted.append(table.predict(genome, num_classes))
        measured.append(measure(genome, num_classes, table.target))
        if progress:
            print(f"check {i}/{len(genomes)}: {genome}: predicted {predicted[-1]:.2f} ms, measured "
                  f"{measured[-1]:.2f} ms", file=sys.stderr, flush=True)
    return Check(tuple(map(str, genomes)), tuple(predicted), tuple(measured))


def every_part(space: SearchSpace) -> list[Genome]:
    """One genome per (layer, action, g) the space allows, at each width: together they hold
    every part any genome of the space can have."""
    return [Genome(space.backbone, (Placement(layer, action, g),), width)
            for width in space.width_mults for layer, choice in sorted(space.layers.items())
            for action in choice.actions if action != "keep" for g in choice.groups]


def main(argv: list[str] | None = None) -> int:
    from .cli import ArgumentParser, fail
    from .spaces import load_space

    p = ArgumentParser(prog="python -m ulsam_nas.latency",
                       description="Build (or load) the latency table of a search space on this machine and check it "
                                   "against end-to-end measurement.")
    p.add_argument("--space", default="mv2", help="search space: mv1, mv2 or a .toml path (default mv2)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=1, help="CPU threads, as on the deployment target (default 1)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classifier outputs (default: the study's data set with --study, else 1000)")
    p.add_argument("--check", type=int, default=0, metavar="N",
                   help="measure N random genomes end to end and compare (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random genomes (default 0)")
    p.add_argument("--study", type=Path, default=None,
                   help="a search's study folder: store the target and the check on its study")
    args = p.parse_args(argv)
    try:
        space = load_space(args.space)
        target = Target(args.device, args.threads)
    except ValueError as error:
        fail(str(error))
    if args.check < 0 or (args.num_classes is not None and args.num_classes < 1):
        fail("--check must be 0 or more and --num-classes at least 1")
    study = None
    if args.study is not None:
        from .studies import StudyNotFound, load_study

        try:
            study, _ = load_study(args.study)
        except StudyNotFound as error:
            fail(str(error))
    if args.num_classes is None:
        args.num_classes = int(study.user_attrs.get("num_classes", 1000)) if study is not None else 1000
    table = LatencyTable.load(target, space.backbone)
    genomes = [Genome(space.backbone, (), w) for w in space.width_mults] + every_part(space)
    sample = random_genomes(space, args.check, args.seed) if args.check else []
    timed = table.fill(genomes + sample, args.num_classes, progress=True)
    path = table.save()
    print(f"latency table for {space.name} on {target.describe()}: {len(table.entries)} parts "
          f"({timed} timed now), per-network constant {table.constant:+.3f} ms; {path}")
    for width in space.width_mults:
        vanilla = Genome(space.backbone, (), width)
        print(f"  vanilla {space.backbone} x{width}: {table.predict(vanilla, args.num_classes):.2f} ms per image")
    if sample:
        result = check(table, sample, args.num_classes, progress=True)
        print(f"check on {len(sample)} random genomes: {result.within_10:.0%} within ±10% of end-to-end measurement, "
              f"RMSE {result.rmse:.3f} ms (measured {min(result.measured):.2f}-{max(result.measured):.2f} ms)")
    if study is not None:
        study.set_user_attr("latency_target", target.describe())
        if sample:
            study.set_user_attr("latency_check", result.to_json())
        print(f"stored on study {study.study_name!r}: latency_target" + (", latency_check" if sample else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
