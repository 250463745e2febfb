"""Our training step on a CUDA GPU: per-trial and per-GPU throughput, and a projected search time.

    PYTHONPATH=. python benchmarks/gpu_training.py [--epochs 2] [--processes 1,2,4,8] [--budget 200]
        [--compile-mode max-autotune-no-cudagraphs] [--classes 101 --train-per-class 750 --test-per-class 250]

Needs no Ray (the trials per GPU are plain spawned processes) and exits with one line, status
2, on a machine without CUDA. Builds a Food-101-sized data set in the published Food-101 layout
from the built-in generator (``--classes`` classes of ``--train-per-class`` / ``--test-per-class``
JPEGs; the labels carry no signal, only the throughput counts), then prints, with the GPU's name:

1. a plain loop: torchvision ``mobilenet_v2``, bf16 autocast, channels-last, SGD, on one
   GPU-resident batch at the proxy's resolution and batch, and our proxy network in the same loop;
2. our training path (``ulsam_nas.train.loop.train``, what a trial runs: resident data, crops on the
   GPU, the proxy fidelity at 64 px, batch 128, MV2 with the paper placement (16, 17) g=4) as
   1, 2, 4 and 8 concurrent trial processes on the GPU, each on its own copy of the data and
   with the node's cores shared out: per-trial step images/s (its ratio to the plain loop at 1
   process), aggregate training images/s (evaluation included), peak memory;
3. the projected wall time of a ``--budget`` search at the full proxy fidelity (15 epochs) on
   this data set, from the best concurrency's measured trial time, plus the harness overhead per
   trial measured on the CPU (``benchmarks/harness_overhead.py``, ``--harness-seconds``);
4. the step on one static batch eager, under ``torch.compile`` (compile time counted apart) and
   captured as a CUDA graph, so a GPU session can decide which one the product should use.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

RESOLUTION = 64
BATCH = 128
PLACEMENT = "(16, 17)"
GROUPS = 4


def write_food101(root: Path, classes: int, train_per_class: int, test_per_class: int) -> Path:
    """The published Food-101 layout (images/<class>/<id>.jpg, meta/{classes,train,test}.txt)
    filled with the built-in generator's images at the proxy resolution."""
    from PIL import Image

    from ulsam_nas.data import synthetic

    pictures = synthetic.generate("train", RESOLUTION)[0].permute(0, 2, 3, 1).numpy()
    base = root / "food-101"
    (base / "meta").mkdir(parents=True)
    names = [f"dish_{c:03d}" for c in range(classes)]
    lists = {"train": [], "test": []}
    serial = 0
    for name in names:
        (base / "images" / name).mkdir(parents=True)
        for split, count in (("train", train_per_class), ("test", test_per_class)):
            for _ in range(count):
                Image.fromarray(pictures[serial % len(pictures)]).save(base / "images" / name / f"{serial}.jpg", quality=90)
                lists[split].append(f"{name}/{serial}")
                serial += 1
    (base / "meta" / "classes.txt").write_text("\n".join(names) + "\n")
    for split, lines in lists.items():
        (base / "meta" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def genome():
    from ulsam_nas import Genome

    return Genome.parse("mv2", PLACEMENT, g=GROUPS)


def plain_loop(model: torch.nn.Module, classes: int, steps: int, fused: bool = False) -> float:
    """Images/s of forward, backward and SGD step on one GPU-resident batch, bf16, channels-last."""
    device = torch.device("cuda")
    model = model.to(device).to(memory_format=torch.channels_last).train()
    images = torch.randn(BATCH, 3, RESOLUTION, RESOLUTION, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, classes, (BATCH,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-5,
                                fused=fused or None)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return images_per_second(step, steps)


def images_per_second(step, steps: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * BATCH / (time.perf_counter() - started)


def trial_worker(data: str, epochs: int, threads: int, barrier, results) -> None:
    """One trial as the search runs it (``evaluate_on="val"``), started with the others at the barrier."""
    from ulsam_nas.data import DataSpec, load_images
    from ulsam_nas.train.fidelity import parse_fidelity
    from ulsam_nas.train.loop import train

    torch.set_num_threads(threads)
    spec = DataSpec.parse(data)
    spec = spec.with_cache_key("train", RESOLUTION, load_images(spec, "train", RESOLUTION).key)
    torch.cuda.init()
    barrier.wait()
    started = time.time()
    ends, rates = [], []

    def report(epoch: int, metrics: dict) -> None:
        ends.append(time.time())
        rates.append(metrics["images_per_second"])  # over the trial's steps so far

    try:
        result = train(genome(), spec, parse_fidelity(f"proxy:epochs={epochs}", "mv2"), seed=0, device="cuda",
                       evaluate_on="val", report=report)
        results.put({"started": started, "ends": ends, "rates": rates, "wait": result.data_wait_share,
                     "peak": torch.cuda.max_memory_allocated()})
    except Exception as error:  # noqa: BLE001 - reported by the parent, which goes on
        results.put({"error": f"{type(error).__name__}: {error}"})


def concurrent_trials(data: str, count: int, epochs: int, timeout: float) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(count), context.Queue()
    threads = max(1, (os.cpu_count() or 1) // count)
    workers = [context.Process(target=trial_worker, args=(data, epochs, threads, barrier, results)) for _ in range(count)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=timeout) for _ in workers]
    for worker in workers:
        worker.join()
    return outcomes


def step_variants(classes: int, steps: int, compile_mode: str) -> None:
    """Our proxy network's step on one static batch: eager, compiled, captured in a CUDA graph."""
    from ulsam_nas.train.fidelity import PROXY
    from ulsam_nas.train.loop import build_proxy

    device = torch.device("cuda")
    images = torch.randn(BATCH, 3, RESOLUTION, RESOLUTION, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, classes, (BATCH,), device=device)

    def parts():
        model = build_proxy(genome(), PROXY, classes).to(device).to(memory_format=torch.channels_last).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-5, fused=True)
        return model, optimizer

    def make_step(model, optimizer, autocast_cache: bool = True):
        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=autocast_cache):
                loss = torch.nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step

    model, optimizer = parts()
    eager = images_per_second(make_step(model, optimizer), steps)
    print(f"  eager:            {eager:9.0f} img/s", flush=True)

    try:
        model, optimizer = parts()
        compiled = torch.compile(model, mode=compile_mode)
        step = make_step(compiled, optimizer)
        started = time.perf_counter()
        step()
        torch.cuda.synchronize()
        compile_seconds = time.perf_counter() - started
        rate = images_per_second(step, steps)
        print(f"  torch.compile({compile_mode}): {rate:9.0f} img/s ({rate / eager:.2f}x eager), "
              f"first step (compilation) {compile_seconds:.1f} s", flush=True)
    except Exception as error:  # noqa: BLE001 - a variant that does not run is a result too
        print(f"  torch.compile({compile_mode}): failed: {type(error).__name__}: {str(error).splitlines()[0]}", flush=True)

    try:
        model, optimizer = parts()
        step = make_step(model, optimizer, autocast_cache=False)  # autocast's weight cache cannot be captured
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                loss = torch.nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
        torch.cuda.synchronize()
        capture_seconds = time.perf_counter() - started
        rate = images_per_second(graph.replay, steps)
        print(f"  CUDA graph:       {rate:9.0f} img/s ({rate / eager:.2f}x eager), capture {capture_seconds:.2f} s "
              f"(learning rate fixed at capture: a schedule would need it as a tensor)", flush=True)
    except Exception as error:  # noqa: BLE001
        print(f"  CUDA graph: failed: {type(error).__name__}: {str(error).splitlines()[0]}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=101)
    parser.add_argument("--train-per-class", type=int, default=750)
    parser.add_argument("--test-per-class", type=int, default=250)
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs each measured trial trains (at least 2: the first includes warm-up; default 2)")
    parser.add_argument("--processes", default="1,2,4,8", help="trial processes per GPU to measure (default 1,2,4,8)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps of the plain loop and the step variants")
    parser.add_argument("--budget", type=int, default=200, help="trainings of the projected search (default 200)")
    parser.add_argument("--harness-seconds", type=float, default=0.31,
                        help="harness time per trial (Ray Tune path, benchmarks/harness_overhead.py on the 2-core CPU; "
                             "default 0.31)")
    parser.add_argument("--compile-mode", default="max-autotune-no-cudagraphs",
                        help="torch.compile mode of the step comparison ('none' skips it)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the data set and its cache go (default: a temp folder)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_training: no CUDA GPU here; this benchmark needs one", file=sys.stderr)
        return 2
    if args.epochs < 2:
        parser.error("--epochs must be at least 2")
    counts = [int(c) for c in args.processes.split(",")]

    from torchvision.models import mobilenet_v2

    from ulsam_nas.data import load_images, train_val_indices
    from ulsam_nas.train.fidelity import PROXY
    from ulsam_nas.train.loop import build_proxy

    torch.backends.cudnn.benchmark = True
    workdir = Path(tempfile.mkdtemp(prefix="gpu-training-")) if args.workdir is None else args.workdir
    os.environ["ULSAM_NAS_CACHE"] = str(workdir / "cache")  # the trial processes inherit it
    print(f"GPU: {torch.cuda.get_device_name()}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB; "
          f"{os.cpu_count()} CPU cores; torch {torch.__version__}", flush=True)

    started = time.perf_counter()
    root = workdir / "food"
    if not (root / "food-101" / "meta" / "test.txt").is_file():
        write_food101(root, args.classes, args.train_per_class, args.test_per_class)
    data = f"food101:{root}"
    train_set = load_images(data, "train", RESOLUTION)
    fit, _ = train_val_indices(train_set.labels.numpy())
    print(f"data: {args.classes} classes x {args.train_per_class}/{args.test_per_class} JPEGs in the Food-101 layout, "
          f"written and decoded at {RESOLUTION} px in {time.perf_counter() - started:.0f} s; "
          f"{train_set.images.nbytes / 1e6:.0f} MB decoded; a search trial trains on {len(fit)} images per epoch",
          flush=True)

    print(f"\nplain loop, one GPU-resident batch of {BATCH} at {RESOLUTION} px, bf16, channels-last:", flush=True)
    torchvision_rate = plain_loop(mobilenet_v2(num_classes=args.classes), args.classes, args.steps)
    ours_plain = plain_loop(build_proxy(genome(), PROXY, args.classes), args.classes, args.steps, fused=True)
    print(f"  torchvision mobilenet_v2:              {torchvision_rate:9.0f} img/s\n"
          f"  our proxy network (MV2 {PLACEMENT} g={GROUPS}): {ours_plain:9.0f} img/s "
          f"(its last layers keep a 4x4 map at 64 px: more work than torchvision's 2x2)", flush=True)
    torch.cuda.empty_cache()

    print(f"\nour training path (proxy fidelity, {args.epochs} epochs per trial), concurrent trial processes on this GPU:",
          flush=True)
    print(f"  {'trials':>6} {'step img/s per trial':>21} {'x plain':>8} {'aggregate img/s':>16} {'data wait':>10} "
          f"{'peak GiB':>9} {'trial s (15 ep.)':>17}", flush=True)
    measured = {}
    peak = None
    for count in counts:
        free, _ = torch.cuda.mem_get_info()
        if peak is not None and count * (peak + 2**30) > free:  # + a CUDA context each
            print(f"  {count:>6} skipped: {count} x {(peak + 2**30) / 2**30:.1f} GiB would not fit in {free / 2**30:.0f} GiB free",
                  flush=True)
            continue
        outcomes = concurrent_trials(data, count, args.epochs, timeout=600)
        failures = [o["error"] for o in outcomes if "error" in o]
        if failures:
            print(f"  {count:>6} failed: {failures[0]}", flush=True)
            continue
        peak = max(o["peak"] for o in outcomes)
        # The last epoch of each trial is steady state: its steps' rate from the cumulative
        # rates reported after each epoch, its wall time (training and evaluation) from the ends.
        step_rates, epoch_seconds, first_epochs = [], [], []
        for o in outcomes:
            step_seconds = [e * len(fit) / r for e, r in enumerate(o["rates"], 1)]
            step_rates.append(len(fit) / (step_seconds[-1] - step_seconds[-2]))
            epoch_seconds.append(o["ends"][-1] - o["ends"][-2])
            first_epochs.append(o["ends"][0] - o["started"])
        steady_epoch = sum(epoch_seconds) / count
        aggregate = count * len(fit) / steady_epoch
        trial_seconds = sum(first_epochs) / count + (PROXY.epochs - 1) * steady_epoch
        per_trial = sum(step_rates) / count
        measured[count] = (aggregate, trial_seconds)
        print(f"  {count:>6} {per_trial:>21.0f} {per_trial / torchvision_rate:>7.2f}x {aggregate:>16.0f} "
              f"{max(o['wait'] for o in outcomes):>9.1%} {peak / 2**30:>9.1f} {trial_seconds:>17.0f}", flush=True)

    if measured:
        best = max(measured, key=lambda c: measured[c][0])
        aggregate, trial_seconds = measured[best]
        one = measured.get(1, (None,))[0]
        gain = f", {aggregate / one:.2f}x one trial per GPU" if one else ""
        hours = (math.ceil(args.budget / best) * trial_seconds + args.budget * args.harness_seconds) / 3600
        print(f"\nbest: {best} trial(s) per GPU, {aggregate:.0f} img/s{gain}\n"
              f"projected budget-{args.budget} search at proxy ({PROXY.epochs} epochs) on this data set: {hours:.2f} GPU-hours "
              f"({args.budget} trainings of {trial_seconds:.0f} s, {best} at a time, plus {args.harness_seconds:g} s of "
              f"harness per trial measured on the CPU)", flush=True)

    if args.compile_mode != "none":
        print(f"\nthe step on one static batch (our proxy network, fused SGD, {args.steps} timed steps):", flush=True)
        step_variants(args.classes, args.steps, args.compile_mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
