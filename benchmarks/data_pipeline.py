"""The decode-once cached pipeline against a plain torchvision loader, on the same JPEGs at 64 px.

    python benchmarks/data_pipeline.py [--images 1500] [--epochs 3] [--source-size 320]

Writes ``--images`` JPEGs (``--source-size`` px, in an ImageFolder layout) to a temporary
folder, then measures in one run:

1. images/s of each loader per epoch, data only: the plain loader (ImageFolder, PIL decode +
   RandomResizedCrop + flip + normalise per image every epoch, DataLoader with one worker per
   core) against ours (decode once into the memory-mapped uint8 cache, then batched crops and
   flips on the training device). Epoch 1 of ours includes building the cache.
2. the share of a training step spent waiting for the next batch, each loader feeding the same
   smoke-proxy MobileNet-V2 at 64 px.

Targets: ours >= 5x the plain loader's images/s from the second epoch on; data wait < 10%.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from ulsam_nas import Genome
from ulsam_nas.data import load_images, synthetic
from ulsam_nas.data.loader import BatchLoader
from ulsam_nas.train.fidelity import SMOKE
from ulsam_nas.train.loop import build_proxy

RESOLUTION = 64
BATCH = 64


def write_images(root: Path, count: int, size: int) -> None:
    images, labels = synthetic.generate("train", 64)
    for index in range(count):
        folder = root / "train" / synthetic.CLASSES[int(labels[index])]
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(images[index].permute(1, 2, 0).numpy()).resize((size, size), Image.BICUBIC)
        picture.save(folder / f"{index}.jpg", quality=90)
    for name in synthetic.CLASSES:  # the folder layout wants a val split too
        (root / "val" / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(next((root / "train" / name).iterdir()), root / "val" / name / "0.jpg")


def plain_loader(root: Path) -> DataLoader:
    transform = transforms.Compose([
        transforms.RandomResizedCrop(RESOLUTION, scale=(0.25, 1.0)), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    dataset = datasets.ImageFolder(str(root / "train"), transform=transform)
    return DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=os.cpu_count() or 1,
                      persistent_workers=True)


def cached_loader(root: Path) -> BatchLoader:
    data = load_images(f"folder:{root}", "train", RESOLUTION)
    return BatchLoader(data, torch.arange(len(data)), BATCH, torch.device("cpu"), train=True,
                       generator=torch.Generator().manual_seed(0))


def epoch_rate(make_loader) -> float:
    """Images/s of one epoch, timing the loader's creation too (the cache build, on first use)."""
    started, count = time.perf_counter(), 0
    for images, _ in make_loader():
        count += len(images)
    return count / (time.perf_counter() - started)


def wait_share(loader, model: torch.nn.Module, steps: int) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    waited = total = 0.0
    batches = iter(loader)
    for _ in range(steps):
        tick = time.perf_counter()
        try:
            images, labels = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, labels = next(batches)
        fetched = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        waited += fetched - tick
        total += time.perf_counter() - tick
    return waited / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--source-size", type=int, default=320)
    parser.add_argument("--steps", type=int, default=20, help="training steps for the data-wait share")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        os.environ["ULSAM_NAS_CACHE"] = str(Path(workdir) / "cache")
        root = Path(workdir) / "images"
        write_images(root, args.images, args.source_size)
        print(f"{args.images} JPEGs of {args.source_size}x{args.source_size} px -> {RESOLUTION} px, batch {BATCH}, "
              f"{torch.get_num_threads()} threads, {os.cpu_count()} cores\n")
        plain = plain_loader(root)
        print(f"{'epoch':>5} {'plain img/s':>12} {'cached img/s':>13} {'ratio':>7}")
        ratios, ours = [], []

        def ours_once() -> BatchLoader:  # created in epoch 1 (building the cache), then reused
            if not ours:
                ours.append(cached_loader(root))
            return ours[0]

        for epoch in range(1, args.epochs + 1):
            plain_rate = epoch_rate(lambda: plain)
            cached_rate = epoch_rate(ours_once)
            ratio = cached_rate / plain_rate
            if epoch > 1:
                ratios.append(ratio)
            note = "  (ours builds the cache)" if epoch == 1 else ""
            print(f"{epoch:>5} {plain_rate:>12.0f} {cached_rate:>13.0f} {ratio:>6.1f}x{note}")

        model = build_proxy(Genome("mv2"), replace(SMOKE, resolution=RESOLUTION), len(synthetic.CLASSES))
        plain_wait = wait_share(plain, model, args.steps)
        cached_wait = wait_share(ours_once(), model, args.steps)
        print(f"\ndata wait, share of a training step (smoke-proxy MV2 at {RESOLUTION} px): "
              f"plain {plain_wait:.1%}, cached {cached_wait:.1%}")
        met = min(ratios, default=0) >= 5 and cached_wait < 0.10
        print(f"targets (>= 5x from epoch 2 on: min {min(ratios, default=0):.1f}x; wait < 10%): "
              f"{'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
