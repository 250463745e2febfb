"""Data sets by spec string ``NAME[:ROOT]``, decoded once into a shared on-disk tensor cache.

    synthetic            the built-in fine-grained stand-in (default; no files needed)
    food101:ROOT         Food-101            (images/, meta/{classes,train,test}.txt)
    cub200:ROOT          CUB-200-2011        (images.txt, image_class_labels.txt, ...)
    dogs:ROOT            Stanford Dogs       (Images/, lists/{train,test}_list.mat)
    folder:ROOT          ROOT/train/<class>/*, ROOT/val/<class>/*
    landscape:TEXT       no images: a simulated truth for ulsam_nas.landscapes.trainer (TEXT a
                         built-in NAME[,KEY=VALUE,...] or a landscape file)

The search selects on a validation split held out of the train split (``train_val_indices``),
never on the test split.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .cache import ImageTensors, cache_key, cached, decode_all
from .layouts import READERS, SPLITS, DataError, ImageList

log = logging.getLogger(__name__)
NAMES = ("synthetic", *READERS, "landscape")
VAL_FRACTION = 0.1  # of each class's training images, held out for the search to select on
VAL_SEED = 0  # a constant, not a trial's seed: every trial and every driver holds out the same images

__all__ = ["NAMES", "VAL_FRACTION", "DataError", "DataSpec", "ImageTensors", "check_val_fraction", "load_images",
           "stratified_subset", "train_val_indices"]


@dataclass(frozen=True)
class DataSpec:
    """A data set by name and folder. ``cache_keys`` holds the cache keys a driver computed,
    ``(split, resolution, key)``: a trial given them opens the cache entry without listing or
    stat-ing the data set's files again (75,750 of them for Food-101). They are not part of the
    spec's identity: a spec equals and prints as the same spec without them."""

    name: str
    root: Path | None = None
    cache_keys: tuple[tuple[str, int, str], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> DataSpec:
        name, _, root = text.partition(":")
        name = name.strip().lower()
        if name not in NAMES:
            raise DataError(f"unknown data set {name!r} in {text!r}; choose from {', '.join(NAMES)} (as NAME:ROOT)")
        if name == "synthetic":
            if root:
                raise DataError(f"the synthetic data set takes no root, got {text!r}")
            return cls(name)
        if name == "landscape":
            return cls(name, _landscape_root(text, root))
        if not root.strip():
            raise DataError(f"data set {name} needs its folder: {name}:ROOT")
        return cls(name, Path(root.strip()).expanduser())

    def __str__(self) -> str:
        return self.name if self.root is None else f"{self.name}:{self.root}"

    def with_cache_key(self, split: str, resolution: int, key: str) -> DataSpec:
        """This spec carrying ``key`` (``ImageTensors.key`` of a ``load_images`` here) for the split at ``resolution``."""
        kept = tuple(k for k in self.cache_keys if k[:2] != (split, resolution))
        return replace(self, cache_keys=(*kept, (split, resolution, key)))

    def cache_key_of(self, split: str, resolution: int) -> str | None:
        return next((k for s, r, k in self.cache_keys if (s, r) == (split, resolution)), None)


def _landscape_root(text: str, landscape: str) -> Path:
    """The landscape text as the spec's root: a built-in verbatim, a file as an absolute path (Ray
    Tune runs each trial in its own folder, where a relative path would name nothing)."""
    from ..landscapes import names_a_file

    landscape = landscape.strip()
    if not landscape:
        raise DataError(f"a landscape needs its name or file, got {text!r}: landscape:NAME[,KEY=VALUE,...] or "
                        f"landscape:FILE.toml")
    return Path(landscape).expanduser().resolve() if names_a_file(landscape) else Path(landscape)


def load_images(spec: DataSpec | str, split: str, resolution: int) -> ImageTensors:
    """The ``split`` ("train" or "test") of a data set at ``resolution`` px, from the cache
    (built on first use). Raises DataError for a data set that cannot be used. With the cache
    key a driver computed (``spec.cache_keys``) the data set's files are read only if the cache
    entry has to be built (on a node where it is missing)."""
    spec = DataSpec.parse(spec) if isinstance(spec, str) else spec
    if spec.name == "landscape":
        raise DataError(f"a landscape has no images: {spec} is a simulated truth that only "
                        f"ulsam_nas.landscapes.trainer.train reads")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if spec.name == "synthetic":
        from . import synthetic  # torch renders it: imported only by what reads images

        def build_synthetic():
            images, labels = synthetic.generate(split, resolution)
            return images.numpy(), labels.tolist(), synthetic.CLASSES, 0

        key = cache_key("synthetic", synthetic.GENERATOR_VERSION, split, resolution)
        return cached(spec.name, split, resolution, key, build_synthetic)

    # The split's file list, read at most once and only when needed.
    listed = functools.cache(lambda: warn_of_skipped_links(spec, split, READERS[spec.name](spec.root, split)))
    key = spec.cache_key_of(split, resolution)
    if key is None:
        listing = listed()
        stats = [f.stat() for f in listing.files]
        key = cache_key(spec.name, str(spec.root.resolve()), split, resolution, [str(f) for f in listing.files],
                        listing.labels, [(s.st_size, s.st_mtime_ns) for s in stats])

    def build_from_files():
        listing = listed()
        images, kept = decode_all(list(listing.files), resolution, f"decoding {spec.name} {split} at {resolution}px")
        if not kept:
            raise DataError(f"{spec.name}: none of the {len(listing.files)} images of the {split} split could be read")
        return images, [listing.labels[i] for i in kept], listing.classes, len(listing.files) - len(kept)

    data = cached(spec.name, split, resolution, key, build_from_files)
    if data.skipped:
        log.warning("%s %s: %d unreadable image(s) skipped", spec.name, split, data.skipped)
    return data


def warn_of_skipped_links(spec: DataSpec, split: str, listing: ImageList) -> ImageList:
    """``listing``, after one warning line when its folder walk skipped symbolic links: the
    user should know that images they linked in are not trained on."""
    if listing.skipped_links:
        log.warning("%s %s: skipped %d symbolic link(s) that leave the folder, loop or repeat a file",
                    spec, split, listing.skipped_links)
    return listing


def stratified_subset(labels: np.ndarray | list[int], count: int | None, seed: int = 0) -> np.ndarray:
    """Indices of ``count`` items with the classes in their original proportions (all if None)."""
    labels = np.asarray(labels)
    if count is None or count >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    # Round-robin over classes in a shuffled order: an even spread, the same for every trial.
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = order[labels[order] == c]
        rank[members] = np.arange(len(members))
    chosen = order[np.argsort(rank[order], kind="stable")][:count]
    return np.sort(chosen)


def check_val_fraction(fraction: float) -> None:
    """Raise DataError unless ``fraction`` is in (0, 0.5]: above that, validation would take
    the better part of the training images (and NaN fails too)."""
    if not 0 < fraction <= 0.5:
        raise DataError(f"--val-fraction must be in (0, 0.5], got {fraction}")


def train_val_indices(labels: np.ndarray | list[int], fraction: float = VAL_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train, val)`` indices of a train split: ``fraction`` of every class (rounded, at
    least one image of each class with two or more, never its last) held out for validation, so
    the search never selects on the test split. Drawn with a constant seed, so the split depends
    only on the labels; a larger fraction holds out a superset of a smaller one's images."""
    check_val_fraction(fraction)
    labels = np.asarray(labels)
    rng = np.random.default_rng(VAL_SEED)
    held_out = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        held_out.append(members[:min(len(members) - 1, max(1, round(fraction * len(members))))])
    val = np.sort(np.concatenate([np.zeros(0, dtype=np.int64), *held_out]))
    return np.setdiff1d(np.arange(len(labels)), val), val
