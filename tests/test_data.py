import logging
import os
import pickle
import shutil
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from ulsam_nas import Genome
from ulsam_nas.data import VAL_FRACTION, DataError, DataSpec, load_images, stratified_subset, synthetic, train_val_indices
from ulsam_nas.data.cache import cache_root, cached
from ulsam_nas.data.loader import BatchLoader
from ulsam_nas.train.command import main as train_main
from ulsam_nas.train.fidelity import SMOKE
from ulsam_nas.train.loop import train

from . import layouts
from .commands import run_program


@pytest.mark.parametrize("name", sorted(layouts.BUILDERS))
def test_each_published_layout_loads_through_the_spec_syntax(tmp_path, name):
    root = layouts.BUILDERS[name](tmp_path / name)
    spec = DataSpec.parse(f"{name}:{root}")
    train, test = load_images(spec, "train", 32), load_images(spec, "test", 32)
    assert train.images.shape == (9, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (3, 3, 32, 32)
    assert sorted(train.labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert len(train.classes) == 3 and train.classes == test.classes
    assert train.skipped == 0


def test_the_decoded_images_are_the_files_resized(tmp_path):
    root = tmp_path / "flat"
    for split in ("train", "val"):
        path = root / split / "red" / "a.png"
        path.parent.mkdir(parents=True)
        from PIL import Image

        Image.new("RGB", (80, 40), (200, 30, 10)).save(path)
    data = load_images(f"folder:{root}", "train", 16)
    assert data.images.shape == (1, 3, 16, 16)
    assert data.images[0, :, 8, 8].tolist() == [200, 30, 10]


def test_a_folder_walk_stays_in_its_tree_and_lists_each_file_once(tmp_path, caplog):
    # torchvision's ImageFolder follows every link: a loop like this one listed 656 files for 16 on disk.
    real = layouts.folder(tmp_path / "real")
    layouts.jpeg(tmp_path / "elsewhere" / "secret.jpg", 99)
    train = real / "train"
    (train / "alpha" / "loop").symlink_to("..")  # a folder link to its parent's parent
    (train / "beta" / "out").symlink_to(tmp_path / "elsewhere")  # out of the tree
    (train / "gamma" / "again.jpg").symlink_to(train / "alpha" / "1.jpg")  # a second path to a file
    (train / "gamma" / "dangling.jpg").symlink_to("nowhere.jpg")
    (tmp_path / "root").symlink_to(real)  # the root itself may be a link
    on_disk = sorted(p for p in train.rglob("*.jpg") if not p.is_symlink())
    with caplog.at_level(logging.WARNING):
        data = load_images(f"folder:{tmp_path / 'root'}", "train", 16)
    assert len(data) == len(on_disk) == 9
    assert sorted(data.labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    skipped = [r.getMessage() for r in caplog.records if "symbolic link" in r.getMessage()]
    assert skipped == [f"folder:{tmp_path / 'root'} train: skipped 4 symbolic link(s) that leave the folder, loop or "
                       f"repeat a file"]


def test_synthetic_is_deterministic_balanced_and_split():
    a_images, a_labels = synthetic.generate("train", 24)
    b_images, b_labels = synthetic.generate("train", 24)
    assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)
    assert torch.bincount(a_labels).tolist() == [synthetic.IMAGES_PER_CLASS["train"]] * synthetic.NUM_CLASSES
    test_images, _ = synthetic.generate("test", 24)
    assert not torch.equal(test_images[:10], a_images[:10])
    data = load_images("synthetic", "test", 24)
    assert len(data) == 500 and data.classes == synthetic.CLASSES


def test_cache_is_reused_memory_mapped_and_keyed_by_resolution(tmp_path):
    root = layouts.folder(tmp_path / "f")
    before = set(cache_root().iterdir())
    first = load_images(f"folder:{root}", "train", 32)
    added = sorted(p.name for p in set(cache_root().iterdir()) - before)
    assert len(added) == 2 and added[0].startswith("folder-train-32px-")  # the entry and its lock
    again = load_images(f"folder:{root}", "train", 32)
    assert set(cache_root().iterdir()) - before == {cache_root() / name for name in added}
    assert torch.equal(first.images, again.images)
    mapped = open("/proc/self/maps").read()  # memory-mapped from the cache file, not read into memory
    assert str(cache_root() / added[0] / "images.u8") in mapped
    load_images(f"folder:{root}", "train", 40)
    assert any(p.name.startswith("folder-train-40px") for p in set(cache_root().iterdir()) - before)


def test_changed_files_get_a_new_cache_entry(tmp_path):
    root = layouts.folder(tmp_path / "f")
    before = load_images(f"folder:{root}", "train", 32)
    layouts.jpeg(root / "train" / "alpha" / "1.jpg", seed=999)
    os.utime(root / "train" / "alpha" / "1.jpg", ns=(1, 1))
    after = load_images(f"folder:{root}", "train", 32)
    assert not torch.equal(before.images, after.images)


def test_a_trial_given_the_drivers_cache_key_neither_lists_nor_stats_the_images(tmp_path):
    root = layouts.food101(tmp_path / "food")
    plain = DataSpec.parse(f"food101:{root}")
    driver_load = load_images(plain, "train", 32)
    keyed = pickle.loads(pickle.dumps(plain.with_cache_key("train", 32, driver_load.key)))  # as Ray ships it
    assert keyed == plain and str(keyed) == str(plain)  # the key is no part of the spec's identity
    # Once the driver has computed the key, a trial that listed or stat-ed the files would fail: one is gone.
    first_image = root / "food-101" / "images" / "alpha" / "1.jpg"
    first_image.unlink()
    with pytest.raises(DataError, match="not there"):
        load_images(plain, "train", 32)
    trial_load = load_images(keyed, "train", 32)
    assert trial_load.key == driver_load.key and torch.equal(trial_load.images, driver_load.images)
    tiny = replace(SMOKE, epochs=1, train_subset=None, test_subset=None, batch_size=4, recalibration_images=4)
    result = train(Genome("mv2"), keyed, tiny, evaluate_on="val", device="cpu")  # a trial's whole load path
    assert result.epochs == 1


def test_a_killed_cache_build_leaves_nothing_that_is_trusted():
    def dies_half_way():
        raise KeyboardInterrupt  # what Ctrl-C or a crash does in the middle of decoding

    with pytest.raises(KeyboardInterrupt):
        cached("fake", "train", 8, "k1", dies_half_way)
    assert not (cache_root() / "fake-train-8px-k1").exists()
    assert not [p for p in cache_root().iterdir() if p.name.startswith(".fake")]

    built = []

    def builds():
        built.append(1)
        return np.zeros((2, 3, 8, 8), np.uint8), [0, 1], ("a", "b"), 0

    data = cached("fake", "train", 8, "k1", builds)
    assert len(data) == 2 and built == [1]
    cached("fake", "train", 8, "k1", builds)
    assert built == [1]


def test_a_build_killed_with_sigkill_is_rebuilt(tmp_path):
    # A real process killed mid-build: its staging folder stays, but is never read.
    script = (
        "import os, signal, numpy as np\n"
        "from ulsam_nas.data.cache import cached\n"
        "def build():\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "cached('killed', 'train', 8, 'k2', build)\n"
    )
    result = run_program([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == -9
    assert not (cache_root() / "killed-train-8px-k2").exists()
    data = cached("killed", "train", 8, "k2", lambda: (np.ones((1, 3, 8, 8), np.uint8), [0], ("a",), 0))
    assert data.images.sum() == 3 * 64


def test_corrupt_images_are_skipped_and_counted(tmp_path, caplog):
    root = layouts.cub200(tmp_path / "cub")
    (root / "images" / "001.Alpha" / "alpha_0001.jpg").write_bytes(b"not a jpeg at all")
    with caplog.at_level(logging.WARNING):
        data = load_images(f"cub200:{root}", "train", 32)
    assert len(data) == 8 and data.skipped == 1
    assert "skipped 1 unreadable image" in caplog.text


def test_all_images_corrupt_is_a_data_error(tmp_path):
    root = layouts.folder(tmp_path / "f")
    for path in (root / "train").rglob("*.jpg"):
        path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="none of the 9 images of the train split could be read"):
        load_images(f"folder:{root}", "train", 32)


def _food_missing_image(root):
    (root / "food-101" / "images" / "alpha" / "1.jpg").unlink()


def _food_empty_class(root):
    path = root / "food-101" / "meta" / "train.txt"
    path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.startswith("gamma")))


def _cub_empty_class(root):
    with open(root / "classes.txt", "a") as f:
        f.write("4 004.Delta\n")


def _dogs_empty_class(root):
    from .layouts import write_dogs_list
    write_dogs_list(root / "lists" / "train_list.mat", ["n02080001-alpha/a.jpg", "n02080003-gamma/c.jpg"], [1, 3])
    for name in ("n02080001-alpha/a.jpg", "n02080003-gamma/c.jpg"):
        layouts.jpeg(root / "Images" / name, 1)


def _folder_val_linked_out(root):
    shutil.move(root / "val", root.parent / "val")
    (root / "val").symlink_to(root.parent / "val")


def _cub_path_out_of_root(root):
    layouts.jpeg(root.parent / "outside.jpg", 1)
    lines = (root / "images.txt").read_text().splitlines()
    (root / "images.txt").write_text("\n".join(["1 ../../outside.jpg", *lines[1:]]) + "\n")


BAD_DATA = [
    # layout, how to break it, the message
    ("food101", "missing-root", "food101: root {root}/nowhere does not exist"),
    ("food101", lambda r: (r / "food-101" / "meta" / "classes.txt").unlink(), "food101: missing metadata file {root}/food-101/meta/classes.txt"),
    ("food101", _food_missing_image, "names {root}/food-101/images/alpha/1.jpg, which is not there"),
    ("food101", _food_empty_class, "food101: class 'gamma' has no images in the train split"),
    ("food101", lambda r: (r / "food-101" / "meta" / "train.txt").write_text(""), "food101: no images in the train split"),
    ("cub200", "missing-root", "cub200: root {root}/nowhere does not exist"),
    ("cub200", lambda r: (r / "image_class_labels.txt").unlink(), "cub200: missing metadata file {root}/image_class_labels.txt"),
    ("cub200", lambda r: shutil.rmtree(r / "images" / "002.Beta"), "names {root}/images/002.Beta/beta_0005.jpg, which is not there"),
    ("cub200", _cub_empty_class, "cub200: class '004.Delta' has no images in the train split"),
    ("cub200", lambda r: (r / "images.txt").write_text(""), "cub200: no images in the train split"),
    ("dogs", "missing-root", "dogs: root {root}/nowhere does not exist"),
    ("dogs", lambda r: (r / "lists" / "train_list.mat").unlink(), "dogs: missing metadata file {root}/lists/train_list.mat"),
    ("dogs", lambda r: shutil.rmtree(r / "Images" / "n02080002-beta"), "which is not there (and 2 more)"),
    ("dogs", _dogs_empty_class, "dogs: class 'class 2' has no images in the train split"),
    ("dogs", lambda r: layouts.write_dogs_list(r / "lists" / "train_list.mat", [], []), "dogs: no images in the train split"),
    ("dogs", lambda r: (r / "lists" / "train_list.mat").write_bytes(b"junk"), "dogs: {root}/lists/train_list.mat is not a Stanford Dogs list"),
    ("folder", "missing-root", "folder: root {root}/nowhere does not exist"),
    ("folder", lambda r: shutil.rmtree(r / "val"), "folder: missing folder {root}/val"),
    ("folder", lambda r: (r / "train" / "delta").mkdir(), "folder: class 'delta' has no images in {root}/train"),
    ("folder", lambda r: [shutil.rmtree(p) for p in (r / "train").iterdir()], "folder: no class folders in {root}/train"),
    ("folder", _folder_val_linked_out, "folder: {root}/val is a symbolic link out of {root}"),
    ("cub200", _cub_path_out_of_root, "cub200: {root}/images.txt names {root}/images/../../outside.jpg, which is outside {root}"),
]


@pytest.mark.parametrize("layout, breakage, message", BAD_DATA)
def test_bad_data_is_one_line_and_exit_2(tmp_path, capsys, layout, breakage, message):
    root = layouts.BUILDERS[layout](tmp_path / "data")
    if breakage == "missing-root":
        root = root / "nowhere"
        message = message.format(root=root.parent)
    else:
        breakage(root)
        message = message.format(root=root)
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--space", "mv2", "--dataset", f"{layout}:{root}", "--fidelity", "smoke", "--epochs", "1"])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err.strip().splitlines()
    assert stderr[-1].startswith("error: ") and message in stderr[-1], stderr
    assert not any("Traceback" in line for line in stderr)


@pytest.mark.parametrize("spec, message", [
    ("imagenet:/data", "unknown data set 'imagenet'"),
    ("cub200", "data set cub200 needs its folder: cub200:ROOT"),
    ("synthetic:/x", "the synthetic data set takes no root"),
])
def test_bad_specs(spec, message):
    with pytest.raises(DataError, match=message):
        DataSpec.parse(spec)


def test_stratified_subset_keeps_class_proportions():
    labels = np.repeat(np.arange(4), [40, 40, 10, 10])
    chosen = stratified_subset(labels, 20)
    assert len(chosen) == 20 and len(set(chosen)) == 20
    assert sorted(np.bincount(labels[chosen]).tolist()) == [5, 5, 5, 5]
    assert np.array_equal(chosen, stratified_subset(labels, 20))



def test_train_val_indices_hold_out_a_stratified_fixed_share_of_every_class():
    labels = np.random.default_rng(3).permutation(np.repeat(np.arange(5), [100, 40, 15, 2, 1]))
    train, val = train_val_indices(labels)
    assert VAL_FRACTION == 0.1
    assert np.bincount(labels[val], minlength=5).tolist() == [10, 4, 2, 1, 0]  # rounded, >= 1 of a class of 2, a lone image trains
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))  # disjoint and complete
    assert np.array_equal(train, np.sort(train)) and np.array_equal(val, np.sort(val))
    np.random.seed(7)  # no trial's seed moves the split
    torch.manual_seed(7)
    again_train, again_val = train_val_indices(labels.tolist())
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert set(val) <= set(train_val_indices(labels, 0.3)[1])  # a larger share holds out a superset
    assert not np.array_equal(val[labels[val] == 0], np.flatnonzero(labels == 0)[:10])  # drawn, not the first ones


@pytest.mark.parametrize("fraction", [0, -0.1, 0.51, 0.7, 1, float("nan")])
def test_train_val_indices_reject_a_fraction_outside_0_to_one_half(fraction):
    with pytest.raises(DataError, match=r"--val-fraction must be in \(0, 0.5\], got"):
        train_val_indices(np.arange(10) % 2, fraction)


def test_train_val_indices_accept_one_half():
    train, val = train_val_indices(np.repeat(np.arange(2), 10), 0.5)
    assert len(train) == len(val) == 10


def test_batch_loader_augments_deterministically_on_whole_batches():
    data = load_images("synthetic", "test", 24)
    indices = torch.arange(100)

    def first_batch(seed):
        loader = BatchLoader(data, indices, 32, torch.device("cpu"), train=True, generator=torch.Generator().manual_seed(seed))
        return next(iter(loader))

    (a, labels_a), (b, labels_b), (c, _) = first_batch(0), first_batch(0), first_batch(1)
    assert a.shape == (32, 3, 24, 24) and a.dtype == torch.float32
    assert torch.equal(a, b) and torch.equal(labels_a, labels_b) and not torch.equal(a, c)
    plain = BatchLoader(data, indices, 100, torch.device("cpu"), train=False)
    images, labels = next(iter(plain))
    assert torch.equal(labels, data.labels[:100])
    assert abs(images.mean().item()) < 1.0  # normalised
    assert len(plain) == 1 and len(BatchLoader(data, indices, 32, torch.device("cpu"), train=False)) == 4
