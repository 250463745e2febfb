"""Tiny copies of the published data-set layouts, a few small JPEGs per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("alpha", "beta", "gamma")


def jpeg(path: Path, seed: int, size: tuple[int, int] = (48, 36)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def food101(root: Path, per_class: tuple[int, int] = (3, 1)) -> Path:
    base = root / "food-101"
    (base / "meta").mkdir(parents=True)
    (base / "meta" / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    lines = {"train": [], "test": []}
    seed = 0
    for name in CLASSES:
        for split, count in zip(("train", "test"), per_class):
            for _ in range(count):
                seed += 1
                jpeg(base / "images" / name / f"{seed}.jpg", seed)
                lines[split].append(f"{name}/{seed}")
    for split, entries in lines.items():
        (base / "meta" / f"{split}.txt").write_text("\n".join(entries) + "\n")
    return root


def cub200(root: Path, per_class: tuple[int, int] = (3, 1)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    images, labels, splits = [], [], []
    image_id = 0
    for class_id, name in enumerate(CLASSES, 1):
        folder = f"{class_id:03d}.{name.title()}"
        for is_train, count in ((1, per_class[0]), (0, per_class[1])):
            for _ in range(count):
                image_id += 1
                relative = f"{folder}/{name}_{image_id:04d}.jpg"
                jpeg(root / "images" / relative, image_id)
                images.append(f"{image_id} {relative}")
                labels.append(f"{image_id} {class_id}")
                splits.append(f"{image_id} {is_train}")
    (root / "images.txt").write_text("\n".join(images) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "train_test_split.txt").write_text("\n".join(splits) + "\n")
    (root / "classes.txt").write_text("\n".join(f"{i} {i:03d}.{n.title()}" for i, n in enumerate(CLASSES, 1)) + "\n")
    return root


def write_dogs_list(path: Path, files: list[str], labels: list[int]) -> None:
    from scipy.io import savemat

    path.parent.mkdir(parents=True, exist_ok=True)
    file_list = np.empty((len(files), 1), dtype=object)
    for i, f in enumerate(files):
        file_list[i, 0] = np.array([f])
    savemat(str(path), {"file_list": file_list, "annotation_list": file_list,
                        "labels": np.array(labels, dtype=float).reshape(-1, 1)})


def dogs(root: Path, per_class: tuple[int, int] = (3, 1)) -> Path:
    lists = {"train": ([], []), "test": ([], [])}
    seed = 0
    for class_id, name in enumerate(CLASSES, 1):
        folder = f"n0208{class_id:04d}-{name}"
        for split, count in zip(("train", "test"), per_class):
            for _ in range(count):
                seed += 1
                relative = f"{folder}/n0208{class_id:04d}_{seed}.jpg"
                jpeg(root / "Images" / relative, seed)
                lists[split][0].append(relative)
                lists[split][1].append(class_id)
    for split, (files, labels) in lists.items():
        write_dogs_list(root / "lists" / f"{split}_list.mat", files, labels)
    return root


def folder(root: Path, per_class: tuple[int, int] = (3, 1)) -> Path:
    seed = 0
    for name in CLASSES:
        for split, count in zip(("train", "val"), per_class):
            for _ in range(count):
                seed += 1
                jpeg(root / split / name / f"{seed}.jpg", seed)
    return root


BUILDERS = {"food101": food101, "cub200": cub200, "dogs": dogs, "folder": folder}
