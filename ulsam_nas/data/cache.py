"""Decode-once image cache: every image resized to the proxy resolution, kept on disk as one
raw uint8 tensor and memory-mapped, so all trials on a node share the page cache.

A cache entry is a folder ``<cache>/<name>-<split>-<R>px-<key>/`` with ``images.u8`` (N x 3 x
R x R, C order) and ``meta.json`` (labels, classes, skipped files). It is built in a temporary
folder and renamed into place, an atomic step: a killed build leaves only a temporary folder,
which is never read. The key hashes what the images depend on (file list, sizes, modification
times, resolution), so changed data gets a new entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
from filelock import FileLock
from PIL import Image
from tqdm import tqdm

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
CACHE_ENV = "ULSAM_NAS_CACHE"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ImageTensors:
    """A decoded split: ``images`` uint8 (N, 3, R, R), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    skipped: int = 0
    key: str = ""  # the cache key it was read under (``DataSpec.with_cache_key`` hands it to trials)

    def __len__(self) -> int:
        return len(self.labels)


def cache_root() -> Path:
    """``$ULSAM_NAS_CACHE``, else ``~/.cache/ulsam-nas``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ulsam-nas")


def cache_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps([FORMAT_VERSION, *parts], default=str).encode()).hexdigest()[:16]


def cached(name: str, split: str, resolution: int, key: str,
           build: Callable[[], tuple[np.ndarray, list[int], tuple[str, ...], int]]) -> ImageTensors:
    """The cache entry for ``key``, built with ``build()`` -> (images, labels, classes, skipped)
    if it is not there yet. Concurrent callers on a node wait for one builder (a file lock)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"{name}-{split}-{resolution}px-{key}"
    with FileLock(str(entry) + ".lock"):
        if not (entry / "meta.json").is_file():
            shutil.rmtree(entry, ignore_errors=True)  # only ever a hand-made leftover
            images, labels, classes, skipped = build()
            staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=root))
            staging.chmod(0o755)
            try:
                images.tofile(staging / "images.u8")
                meta = {"shape": list(images.shape), "labels": labels, "classes": list(classes), "skipped": skipped}
                (staging / "meta.json").write_text(json.dumps(meta))
                os.replace(staging, entry)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return _open(entry, key)


def _open(entry: Path, key: str) -> ImageTensors:
    import torch  # here: a process that only names a data set (a simulated worker) never loads torch

    meta = json.loads((entry / "meta.json").read_text())
    shape = tuple(meta["shape"])
    size = int(np.prod(shape))
    # shared=False maps the file copy-on-write: pages are shared, writes never reach the file.
    images = torch.from_file(str(entry / "images.u8"), shared=False, size=size, dtype=torch.uint8).view(shape)
    return ImageTensors(images, torch.tensor(meta["labels"], dtype=torch.int64), tuple(meta["classes"]), meta["skipped"],
                        key)


def decode(path: str, resolution: int) -> np.ndarray | None:
    """One image as uint8 (3, R, R): shorter side resized to R, centre crop. None if unreadable."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (resolution, resolution))  # JPEG: decode at a reduced scale
            image = image.convert("RGB")
            scale = resolution / min(image.size)
            width, height = max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale))
            image = image.resize((width, height), Image.BILINEAR, reducing_gap=3.0)
            left, top = (width - resolution) // 2, (height - resolution) // 2
            image = image.crop((left, top, left + resolution, top + resolution))
            return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def decode_all(files: list[Path], resolution: int, description: str) -> tuple[np.ndarray, list[int]]:
    """Decode ``files`` in parallel processes; returns the images and the indices kept."""
    images, kept = [], []
    paths = [str(f) for f in files]
    workers = max(1, min(8, os.cpu_count() or 1)) if len(paths) >= 512 else 1
    with ProcessPoolExecutor(workers) if workers > 1 else _InProcess() as pool:
        decoded = pool.map(decode, paths, [resolution] * len(paths), chunksize=64)
        for index, image in enumerate(tqdm(decoded, total=len(paths), desc=description, unit="img", leave=False)):
            if image is not None:
                images.append(image)
                kept.append(index)
    unreadable = sorted(set(range(len(paths))) - set(kept))
    if unreadable:
        log.warning("%s: skipped %d unreadable image(s), e.g. %s", description, len(unreadable), paths[unreadable[0]])
    array = np.stack(images) if images else np.zeros((0, 3, resolution, resolution), np.uint8)
    return array, kept


class _InProcess:
    """A stand-in for the process pool when there are too few images to pay for one."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def map(function, *iterables, chunksize: int = 1):
        return map(function, *iterables)
