"""How the latency package times a module on a target (``Target``: ``cpu`` with N threads, or
``cuda``; batch 1 at 224 px, eval mode), steady on a machine whose speed drifts (shared VM,
thermal throttling, other processes on the cores). On the 2-core cloud VM this was built on,
three things moved the vanilla MobileNetV2 between 11 and 19 ms, and the timings here deal with
two of them: glibc handing freed activations back to the kernel, so that forwards page-faulted
them in afresh, or not, by allocation history (``keep_freed_memory`` fixes its thresholds); and
other processes holding the core (on one thread the clock is the thread's CPU time,
``Target.clock``, and every timing is the fastest of several). ``time_module`` times one module
with ``torch.utils.benchmark``, ``time_interleaved`` several in alternating rounds over the same
stretch of time, and ``measure`` a whole genome end to end. The third, what other processes left
behind in the caches, is the table's to deal with (``table.py``).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import math
import platform
import reprlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..models.genome import Genome

RESOLUTION = 224
NETWORK_INPUT = (1, 3, RESOLUTION, RESOLUTION)
MIN_RUN_TIME = 0.3  # seconds of blocked runs per timing, after Timer's own warm-up
CHECK_ROUNDS = 10  # alternating rounds of the modules in ``time_interleaved`` (a genome and the vanilla network)
CHECK_BLOCK_TIME = 0.02  # seconds, at least, of one module's block within a round
TABLE_VERSION = 2  # the latency table's format, part of every target's key
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MAX_THREADS = 1024  # CPU threads a target may name


@dataclass(frozen=True)
class Target:
    """Where latency is measured: ``cpu`` with ``threads`` intra-op threads, or ``cuda``."""

    device: str = "cpu"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"latency device must be cpu or cuda, not {reprlib.repr(self.device)}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("latency device cuda: there is no CUDA GPU here")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int):
            raise ValueError(f"latency threads must be a whole number, got {reprlib.repr(self.threads)}")
        if self.threads < 1:
            raise ValueError(f"latency threads must be at least 1, got {self.threads}")
        if self.threads > MAX_THREADS:
            raise ValueError(f"latency threads must be at most {MAX_THREADS}, got {self.threads}")

    @classmethod
    def from_key(cls, key: object) -> Target:
        """The target a study stores (``latency_target_key``), checked: a received study is data."""
        if not isinstance(key, dict) or set(key) != {"device", "threads"}:
            raise ValueError(f"the study's latency_target_key: expected {{'device': ..., 'threads': ...}}, "
                             f"got {reprlib.repr(key)}")
        try:
            return cls(key["device"], key["threads"])
        except ValueError as error:
            raise ValueError(f"the study's latency_target_key: {error}") from None

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


def measure(genome: Genome, num_classes: int, target: Target) -> float:
    """End-to-end milliseconds per image of ``build_model(genome)``, with the table's protocol."""
    from ..models.build import build_model

    return time_module(build_model(genome, num_classes), NETWORK_INPUT, target)
