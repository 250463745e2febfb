"""Readers of the published data-set layouts: which image files, with which labels, per split.

Each reader returns an :class:`ImageList` and raises :class:`DataError` with one line naming
the data set, the file or folder, and the problem. Nothing is downloaded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS

SPLITS = ("train", "test")


class DataError(ValueError):
    """A data set that cannot be used as given."""


@dataclass(frozen=True)
class ImageList:
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]


def _check_root(name: str, root: Path) -> Path:
    if not root.is_dir():
        raise DataError(f"{name}: root {root} does not exist or is not a folder")
    return root


def _metadata(name: str, path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{name}: missing metadata file {path}")
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{name}: cannot read metadata file {path}: {error}") from None


def _checked(name: str, files: list[Path], labels: list[int], classes: list[str], split: str,
             source: Path) -> ImageList:
    """Every listed image exists, every class has an image, and there is at least one."""
    if not files:
        raise DataError(f"{name}: no images in the {split} split ({source})")
    missing = [f for f in files if not f.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{name}: {source} names {missing[0]}, which is not there{more}")
    counts = Counter(labels)
    empty = [c for i, c in enumerate(classes) if counts[i] == 0]
    if empty:
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise DataError(f"{name}: class '{empty[0]}' has no images in the {split} split{more}")
    return ImageList(tuple(files), tuple(labels), tuple(classes))


def read_food101(root: Path, split: str) -> ImageList:
    """Food-101: ``images/<class>/<id>.jpg``, ``meta/{train,test}.txt`` (``<class>/<id>`` per
    line), ``meta/classes.txt``. ROOT may be the ``food-101`` folder or the folder holding it.

    torchvision's ``Food101`` reads the same images but only from ``ROOT/food-101`` and through
    the ``meta/*.json`` lists; reading the text lists accepts either root and lets us name a
    missing image or an empty class precisely.
    """
    root = _check_root("food101", root)
    base = root / "food-101" if (root / "food-101" / "meta").is_dir() else root
    classes = _metadata("food101", base / "meta" / "classes.txt")
    index = {c: i for i, c in enumerate(classes)}
    listing = base / "meta" / f"{split}.txt"
    files, labels = [], []
    for line in _metadata("food101", listing):
        class_name = line.split("/", 1)[0]
        if class_name not in index:
            raise DataError(f"food101: {listing} names class '{class_name}', which classes.txt does not list")
        files.append(base / "images" / f"{line}.jpg")
        labels.append(index[class_name])
    return _checked("food101", files, labels, classes, split, listing)


def _id_table(name: str, path: Path) -> dict[str, str]:
    table = {}
    for number, line in enumerate(_metadata(name, path), 1):
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise DataError(f"{name}: {path} line {number}: expected '<id> <value>', got {line!r}")
        table[parts[0]] = parts[1]
    return table


def read_cub200(root: Path, split: str) -> ImageList:
    """CUB-200-2011: ``images.txt`` (id, path), ``image_class_labels.txt`` (id, class id),
    ``train_test_split.txt`` (id, 1 = train), ``classes.txt`` (class id, name), ``images/``."""
    root = _check_root("cub200", root)
    images = _id_table("cub200", root / "images.txt")
    class_of = _id_table("cub200", root / "image_class_labels.txt")
    is_train = _id_table("cub200", root / "train_test_split.txt")
    class_names = _id_table("cub200", root / "classes.txt")
    class_ids = sorted(class_names, key=int)
    index = {c: i for i, c in enumerate(class_ids)}
    want = "1" if split == "train" else "0"
    files, labels = [], []
    for image_id, relative in images.items():
        if image_id not in class_of or image_id not in is_train:
            raise DataError(f"cub200: image {image_id} ({relative}) has no class label or split entry")
        if class_of[image_id] not in index:
            raise DataError(f"cub200: image {image_id} has class {class_of[image_id]}, which classes.txt does not list")
        if is_train[image_id] == want:
            files.append(root / "images" / relative)
            labels.append(index[class_of[image_id]])
    return _checked("cub200", files, labels, [class_names[c] for c in class_ids], split, root / "images.txt")


def read_dogs(root: Path, split: str) -> ImageList:
    """Stanford Dogs: ``Images/<wnid>-<name>/*.jpg`` and ``lists/{train,test}_list.mat`` holding
    ``file_list`` (paths under Images/) and ``labels`` (1-based class ids)."""
    from scipy.io import loadmat  # scipy is only needed for this layout
    from scipy.io.matlab import MatReadError

    root = _check_root("dogs", root)
    listing = root / "lists" / f"{split}_list.mat"
    if not listing.is_file():
        raise DataError(f"dogs: missing metadata file {listing}")
    try:
        mat = loadmat(str(listing))
        relative = [str(entry[0][0]) if entry[0].size else "" for entry in mat["file_list"]]
        numbers = [int(x) for x in mat["labels"].ravel()]
    except (KeyError, IndexError, ValueError, TypeError, OSError, MatReadError) as error:
        raise DataError(f"dogs: {listing} is not a Stanford Dogs list (needs file_list and labels): {error}") from None
    if len(relative) != len(numbers):
        raise DataError(f"dogs: {listing}: {len(relative)} files but {len(numbers)} labels")
    folder_of = {}
    for path, number in zip(relative, numbers):
        folder_of.setdefault(number, path.split("/", 1)[0])
    count = max(numbers, default=0)
    classes = [folder_of.get(n, f"class {n}").split("-", 1)[-1] for n in range(1, count + 1)]
    files = [root / "Images" / path for path in relative]
    return _checked("dogs", files, [n - 1 for n in numbers], classes, split, listing)


def read_folder(root: Path, split: str) -> ImageList:
    """``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*`` (torchvision's ImageFolder layout);
    the test split is ``val/``. Classes are the train folder's sub-folders."""
    from torchvision.datasets import ImageFolder

    root = _check_root("folder", root)
    folders = {"train": root / "train", "test": root / "val"}
    for path in folders.values():
        if not path.is_dir():
            raise DataError(f"folder: missing folder {path} (expected ROOT/train/<class>/ and ROOT/val/<class>/)")
    classes = sorted(d.name for d in folders["train"].iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"folder: no class folders in {folders['train']}")
    directory = folders[split]
    for class_name in classes:
        class_dir = directory / class_name
        has_image = class_dir.is_dir() and any(
            f.suffix.lower() in IMG_EXTENSIONS for f in class_dir.rglob("*") if f.is_file()
        )
        if not has_image:
            raise DataError(f"folder: class '{class_name}' has no images in {directory}")
    extra = sorted({d.name for d in directory.iterdir() if d.is_dir()} - set(classes))
    if extra:
        raise DataError(f"folder: {directory} has class '{extra[0]}', which {folders['train']} does not")
    dataset = ImageFolder(str(directory), allow_empty=False)
    index = {c: i for i, c in enumerate(classes)}
    files = [Path(path) for path, _ in dataset.samples]
    labels = [index[dataset.classes[label]] for _, label in dataset.samples]
    return _checked("folder", files, labels, classes, split, directory)


READERS = {"food101": read_food101, "cub200": read_cub200, "dogs": read_dogs, "folder": read_folder}
