"""Readers of the published data-set layouts: which image files, with which labels, per split.

Each reader returns an :class:`ImageList` and raises :class:`DataError` with one line naming
the data set, the file or folder, and the problem. Nothing is downloaded.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

SPLITS = ("train", "test")


class DataError(ValueError):
    """A data set that cannot be used as given."""


@dataclass(frozen=True)
class ImageList:
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]
    skipped_links: int = 0  # symbolic links a folder walk did not follow (``read_folder``)


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
             source: Path, root: Path) -> ImageList:
    """Every listed image is in ``root`` (as named: a metadata line cannot climb out with ``..``
    or an absolute path) and exists, every class has an image, and there is at least one."""
    if not files:
        raise DataError(f"{name}: no images in the {split} split ({source})")
    outside = next((f for f in files if not Path(os.path.abspath(f)).is_relative_to(os.path.abspath(root))), None)
    if outside is not None:
        raise DataError(f"{name}: {source} names {outside}, which is outside {root}")
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
    return _checked("food101", files, labels, classes, split, listing, root)


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
    return _checked("cub200", files, labels, [class_names[c] for c in class_ids], split, root / "images.txt", root)


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
    return _checked("dogs", files, [n - 1 for n in numbers], classes, split, listing, root)


def read_folder(root: Path, split: str) -> ImageList:
    """``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*`` (torchvision's ImageFolder layout);
    the test split is ``val/``. Classes are the train folder's sub-folders. Unlike ImageFolder,
    which follows every symbolic link, the walk stays in the split's folder (a link from train/
    to val/ would train on test images) and lists each real file once (``_FolderWalk``); what it
    skipped is counted in ``skipped_links``."""
    root = _check_root("folder", root)
    folders = {"train": root / "train", "test": root / "val"}
    for path in folders.values():
        if not path.is_dir():
            raise DataError(f"folder: missing folder {path} (expected ROOT/train/<class>/ and ROOT/val/<class>/)")
        if not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root)):
            raise DataError(f"folder: {path} is a symbolic link out of {root}")
    classes = sorted(_FolderWalk(folders["train"]).subfolders(folders["train"]))
    if not classes:
        raise DataError(f"folder: no class folders in {folders['train']}")
    directory = folders[split]
    walk = _FolderWalk(directory)
    class_dirs = walk.subfolders(directory)
    files, labels = [], []
    for label, class_name in enumerate(classes):
        images = walk.images(class_dirs[class_name]) if class_name in class_dirs else []
        if not images:
            raise DataError(f"folder: class '{class_name}' has no images in {directory}")
        files += images
        labels += [label] * len(images)
    extra = sorted(set(class_dirs) - set(classes))
    if extra:
        raise DataError(f"folder: {directory} has class '{extra[0]}', which {folders['train']} does not")
    listing = _checked("folder", files, labels, classes, split, directory, root)
    return replace(listing, skipped_links=walk.skipped)


class _FolderWalk:
    """A walk of the folders under ``root`` that never leaves it: a symbolic link is followed
    only to a file or folder inside ``root`` and not reached before, so a link out of the tree, a
    dangling link, a loop (a link to a folder above) and a second path to a file are skipped, and
    counted in ``skipped``. What ``subfolders`` and ``images`` return is in sorted order."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))
        self.reached: set[Path] = set()
        self.skipped = 0

    def entries(self, folder: Path) -> list[Path]:
        """The entries of ``folder`` the walk may enter, each marked reached. Only a link is
        resolved: the rest of a folder of 100,000 images costs no system call here."""
        real_folder = Path(os.path.realpath(folder))
        self.reached.add(real_folder)
        kept = []
        with os.scandir(folder) as listing:
            for entry in sorted(listing, key=lambda e: e.name):
                link = entry.is_symlink()
                real = Path(os.path.realpath(entry.path)) if link else real_folder / entry.name
                if link and not (real.is_relative_to(self.root) and real.exists()) or real in self.reached:
                    self.skipped += 1
                else:
                    self.reached.add(real)
                    kept.append(folder / entry.name)
        return kept

    def subfolders(self, folder: Path) -> dict[str, Path]:
        """The sub-folders of ``folder`` by name."""
        return {entry.name: entry for entry in self.entries(folder) if entry.is_dir()}

    def images(self, folder: Path) -> list[Path]:
        """The image files under ``folder``, at any depth (as ImageFolder finds them)."""
        # Here, not at the top: torchvision's import costs a second, and most processes that import
        # this package (Ray workers among them) never list a folder.
        from torchvision.datasets.folder import IMG_EXTENSIONS

        found = []
        for entry in self.entries(folder):
            if entry.is_dir():
                found += self.images(entry)
            elif entry.suffix.lower() in IMG_EXTENSIONS:
                found.append(entry)
        return found


READERS = {"food101": read_food101, "cub200": read_cub200, "dogs": read_dogs, "folder": read_folder}
