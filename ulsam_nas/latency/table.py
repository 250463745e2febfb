"""Latency as deployment engineers mean it: milliseconds per image at 224 px, batch 1, eval mode,
on a named target (``cpu`` with N threads, default 1 as on a phone core, or ``cuda``).

MACs are a poor stand-in for time, and ULSAM is the extreme case: almost no MACs, but a 3x3
max-pool, a softmax over h·w and a broadcast multiply, all memory-bound. Timing every genome
end to end would cost seconds each; as FBNet and OFA do, a genome's latency is *predicted* from a
lookup table of its parts instead:

- a part is what ``build_model`` puts in sequence: a backbone layer, a ULSAM (inserted or
  substituting a layer) or the head, keyed by its kind, shape and ULSAM g and variant;
- each part is timed on the target with ``torch.utils.benchmark`` (warm-up, then the fastest of
  its blocked runs in each of several passes), once per machine: the table is cached on disk
  keyed by device, threads, CPU or GPU model and torch version;
- the prediction is the sum over the genome's parts plus one per-network constant: the vanilla
  network's end-to-end time minus the sum of its own parts (the calls between parts, which no
  part's own timing holds). It costs no training and no model, so the driver knows it before a
  trial starts.

On a machine whose speed drifts (shared VM, thermal throttling, other processes on the cores),
a network timed now and parts timed minutes ago disagree by more than the table's own error.
On the 2-core cloud VM this was built on, three things moved the vanilla MobileNetV2 between
11 and 19 ms, and each timing here deals with one:

- glibc handing freed activations back to the kernel, so that forwards page-faulted them in
  afresh, or not, by allocation history: ``keep_freed_memory`` fixes its thresholds;
- other processes holding the core: on one thread the clock is the thread's CPU time
  (``Target.clock``), and every timing is the fastest of several;
- the rest (caches other processes left cold, the host): ``fill`` times every part in
  ``PART_PASSES`` passes and the vanilla network every ``VANILLA_EVERY`` part timings, and
  keeps the fastest of each (the table's ``vanilla_ms``); ``check`` times each genome in
  alternating rounds with the vanilla network, takes the fastest of each over the same
  stretch of time, and reports the genome at the table's machine speed,
  ``genome_now * vanilla_ms / vanilla_now``. Under a load of 4-7 on the 2 cores, the vanilla
  network came out 5-20% slower during a check than in its table, and the genomes with it.

``python -m ulsam_nas.latency --check N`` measures N random genomes end to end that way and
prints how far the table is from them.
"""

from __future__ import annotations

import ctypes
import functools
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

from ..models.backbones import get_backbone
from ..models.backbones.base import LayerSpec
from ..models.genome import INSERT, Genome, Placement
from ..models.layers import init_weights
from ..models.spaces import SearchSpace, random_genomes
from ..models.ulsam import ULSAM

RESOLUTION = 224
NETWORK_INPUT = (1, 3, RESOLUTION, RESOLUTION)
MIN_RUN_TIME = 0.3  # seconds of blocked runs per timing, after Timer's own warm-up
PART_PASSES = 3  # passes over the missing parts in ``fill``; each part keeps its fastest
PART_RUN_TIME = 0.1  # seconds of blocked runs per part and pass
VANILLA_EVERY = 10  # part timings between two timings of the vanilla network in ``fill``
VANILLA_RUN_TIME = 0.1  # seconds of blocked runs per such timing
CHECK_ROUNDS = 10  # alternating rounds of genome and vanilla network per genome in ``check``
CHECK_BLOCK_TIME = 0.02  # seconds, at least, of one module's block within a round
TABLE_VERSION = 2
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


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

    @property
    def clock(self):
        """Seconds as the timings count them. On one CPU thread, the thread's CPU time: it stops
        while other processes hold the core, which a wall clock counts (with twice as many
        runnable processes as cores here, no 12-40 ms forward ran unpreempted and the wall clock
        put whole networks 20-60% above their parts). With several threads or on a GPU, where
        the work is not all on this thread, the wall clock."""
        return time.thread_time if self.device == "cpu" and self.threads == 1 else time.perf_counter


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


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc keep the memory a forward frees for the next forward, once per process;
    returns whether it could (glibc only).

    By default glibc hands large freed blocks back to the kernel (``mmap`` above a threshold
    that it moves as it goes, trimming the heap's top), and then each forward page-faults its
    activations in afresh. Whether it does depends on the process's allocation history: the
    same vanilla MobileNetV2 took 12 ms with no page fault and 17 ms with 2,500 per forward,
    switching as other models were built and freed. A deployment runtime allocates its arena
    once, so the timings here fix both thresholds, as ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` would: blocks up to 32 MiB come from the heap, which keeps up
    to 256 MiB free at its top. The cost is a process that keeps its peak heap."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 256 << 20))


def time_module(module: nn.Module, shape: tuple[int, ...], target: Target, min_run_time: float = MIN_RUN_TIME) -> float:
    """Milliseconds of one eval-mode forward of ``module`` on a random input of ``shape``: the
    fastest of ``torch.utils.benchmark``'s blocked runs. The fastest, not the median: on a
    shared machine other work only ever slows a run down, and the median of whole-network runs
    moved by up to 10% between repetitions here while the fastest moved by 1-2%."""
    keep_freed_memory()
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
                                    timer=target.clock, num_threads=target.threads)
            measurement = timer.blocked_autorange(min_run_time=min_run_time)
            return min(measurement.raw_times) / measurement.number_per_run * 1e3
    finally:
        torch.set_num_threads(previous)


def time_interleaved(modules: list[nn.Module], shape: tuple[int, ...], target: Target,
                     rounds: int = CHECK_ROUNDS) -> list[float]:
    """Milliseconds of one eval-mode forward of each of ``modules`` on a random input of ``shape``,
    timed in ``rounds`` rounds in which each module runs one block in turn: the fastest block of
    each, so all were timed over the same stretch of time, whatever the machine's speed did."""
    keep_freed_memory()
    device = torch.device(target.device)
    modules = [module.to(device).eval() for module in modules]
    x = torch.randn(shape, device=device)
    previous = torch.get_num_threads()
    torch.set_num_threads(target.threads)
    try:
        with torch.inference_mode():
            calls = [max(1, math.ceil(CHECK_BLOCK_TIME * 1e3 / _block_ms(module, x, 1, target))) for module in modules]
            fastest = [math.inf] * len(modules)
            for _ in range(rounds):
                for i, (module, number) in enumerate(zip(modules, calls)):
                    fastest[i] = min(fastest[i], _block_ms(module, x, number, target))
            return fastest
    finally:
        torch.set_num_threads(previous)


def _block_ms(module: nn.Module, x: torch.Tensor, number: int, target: Target) -> float:
    """Milliseconds per call of ``number`` back-to-back calls of ``module(x)``."""
    clock = target.clock
    started = clock()
    for _ in range(number):
        module(x)
    if target.device == "cuda":
        torch.cuda.synchronize()
    return (clock() - started) / number * 1e3


def _benchmark():
    """``torch.utils.benchmark``, imported without the warning its C++-extension helper logs
    on a machine without CUDA (it compiles nothing here)."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import benchmark

    return benchmark


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
                    vanilla_times.append(time_module(vanilla_model, NETWORK_INPUT, self.target, VANILLA_RUN_TIME))
                milliseconds = time_module(modules[key], part.input_shape, self.target, PART_RUN_TIME)
                fastest[key] = min(fastest[key], milliseconds)
                timings += 1
            if progress and missing:
                print(f"latency table: pass {done}/{PART_PASSES} over {len(missing)} parts done "
                      f"({time.time() - started:.0f}s)", file=sys.stderr, flush=True)
        self.entries.update(fastest)
        if vanilla_model is not None:
            vanilla_times.append(time_module(vanilla_model, NETWORK_INPUT, self.target, VANILLA_RUN_TIME))
            self.vanilla_ms = min(vanilla_times)
            self.constant = self.vanilla_ms - self.parts_sum(vanilla, num_classes)
        return len(missing)

    def parts_sum(self, genome: Genome, num_classes: int) -> float:
        return sum(self.entries[p.key] for p in parts(genome, num_classes))

    def predict(self, genome: Genome, num_classes: int) -> float:
        """Predicted milliseconds per image; KeyError if a part is not in the table (``fill``)."""
        return self.parts_sum(genome, num_classes) + (self.constant or 0.0)


def measure(genome: Genome, num_classes: int, target: Target) -> float:
    """End-to-end milliseconds per image of ``build_model(genome)``, with the table's protocol."""
    from ..models.build import build_model

    return time_module(build_model(genome, num_classes), NETWORK_INPUT, target)


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
        genome_ms, vanilla_ms = time_interleaved([build_model(genome, num_classes), vanilla_model], NETWORK_INPUT,
                                                 table.target)
        measured.append(genome_ms * table.vanilla_ms / vanilla_ms)
        measured_now.append(genome_ms)
        vanilla_now.append(vanilla_ms)
        if progress:
            print(f"check {i}/{len(genomes)}: {genome}: predicted {predicted[-1]:.2f} ms, measured "
                  f"{measured[-1]:.2f} ms ({genome_ms:.2f} ms beside the vanilla network's {vanilla_ms:.2f} ms, "
                  f"{table.vanilla_ms:.2f} ms in the table)", file=sys.stderr, flush=True)
    return Check(tuple(map(str, genomes)), tuple(predicted), tuple(measured), tuple(measured_now), tuple(vanilla_now))


def every_part(space: SearchSpace) -> list[Genome]:
    """One genome per (layer, action, g) the space allows, at each width: together they hold
    every part any genome of the space can have."""
    return [Genome(space.backbone, (Placement(layer, action, g),), width)
            for width in space.width_mults for layer, choice in sorted(space.layers.items())
            for action in choice.actions if action != "keep" for g in choice.groups]


def main(argv: list[str] | None = None) -> int:
    from ..cli import ArgumentParser, fail
    from ..models.spaces import load_space

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
        from ..studies import StudyNotFound, load_study

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
          f"({timed} timed now), per-network constant {table.constant:+.3f} ms (vanilla {space.backbone} "
          f"x{table.vanilla_width} {table.vanilla_ms:.2f} ms end to end); {path}")
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

