"""Fidelity strings: presets with overrides, their canonical names, and the CLIs that take them."""


import pytest

from ulsam_nas.train.fidelity import FULL, KEYS, PROXY, SMOKE, get_fidelity, parse_fidelity, split_fidelities

from .commands import run_main

KEY_LIST = "keys: epochs, resolution, width, train_images, test_images, batch, lr"


@pytest.mark.parametrize("text, name", [
    ("smoke", "smoke"),
    (" proxy ", "proxy"),
    ("smoke:resolution=32, epochs=06, lr=0.050", "smoke:epochs=6"),  # equal to the preset: dropped
    ("smoke : lr = 0.20 , epochs = 6 , resolution=48,train_images=2000",
     "smoke:epochs=6,resolution=48,train_images=2000,lr=0.2"),
    ("proxy:train_images=all,test_images=all,width=1", "proxy"),
    ("proxy:test_images=300,width=0.75,batch=256,lr=1e-3", "proxy:width=0.75,test_images=300,batch=256,lr=0.001"),
    ("smoke:train_images=all,width=2", "smoke:width=2.0,train_images=all"),
    ("full:epochs=20,resolution=128", "full:epochs=20,resolution=128"),
])
def test_canonical_names_round_trip(text, name):
    fidelity = parse_fidelity(text, "mv2")
    assert fidelity.name == name
    assert parse_fidelity(name, "mv2") == fidelity


def test_every_key_sets_its_field():
    fidelity = parse_fidelity("proxy:epochs=7,resolution=96,width=0.5,train_images=1000,test_images=200,batch=32,lr=0.2",
                              "mv1")
    assert (fidelity.epochs, fidelity.resolution, fidelity.width_mult, fidelity.train_subset, fidelity.test_subset,
            fidelity.batch_size, fidelity.lr) == (7, 96, 0.5, 1000, 200, 32, 0.2)
    assert (fidelity.schedule, fidelity.recalibration_images) == (PROXY.schedule, PROXY.recalibration_images)
    assert set(KEYS) == {"epochs", "resolution", "width", "train_images", "test_images", "batch", "lr"}


def test_all_means_every_image():
    fidelity = parse_fidelity("smoke:train_images=all,test_images=all", "mv2")
    assert fidelity.train_subset is None and fidelity.test_subset is None


def test_width_override_rounds_channels():
    assert PROXY.channel_multiple is None
    assert parse_fidelity("proxy:width=0.5", "mv2").channel_multiple == 16
    assert parse_fidelity("full:width=1.25", "mv1").channel_multiple == 16
    assert parse_fidelity("proxy:width=1.0", "mv2").channel_multiple is None
    assert parse_fidelity("smoke:width=1", "mv2").channel_multiple == SMOKE.channel_multiple


@pytest.mark.parametrize("backbone", ["mv1", "mv2"])
def test_full_is_per_backbone(backbone):
    assert parse_fidelity("full", backbone) == FULL[backbone]
    assert parse_fidelity("full:epochs=3", backbone).schedule == FULL[backbone].schedule


def test_full_without_a_recipe_is_a_value_error():
    with pytest.raises(ValueError, match="fidelity full has no training recipe for backbone 'mv3'; only for mv1, mv2"):
        parse_fidelity("full", "mv3")
    assert parse_fidelity("smoke", "mv3") == SMOKE


def test_get_fidelity_epochs_replaces_the_strings():
    assert get_fidelity("smoke", "mv2") == SMOKE
    assert get_fidelity("smoke", "mv2", epochs=5).name == "smoke:epochs=5"
    assert get_fidelity("smoke:epochs=3,lr=0.1", "mv2", epochs=2).name == "smoke:lr=0.1"


@pytest.mark.parametrize("text, message", [
    ("medium", "unknown fidelity 'medium'; choose from smoke, proxy, full"),
    ("medium:epochs=3", "unknown fidelity 'medium' in 'medium:epochs=3'; choose from smoke, proxy, full"),
    ("smoke:foo=1", f"unknown fidelity key 'foo' in 'smoke:foo=1'; {KEY_LIST}"),
    ("smoke:epochs", f"fidelity 'smoke:epochs': 'epochs' is not KEY=VALUE; {KEY_LIST}"),
    ("smoke:", f"fidelity 'smoke:': '' is not KEY=VALUE; {KEY_LIST}"),
    ("smoke:epochs=3,epochs=4", "fidelity 'smoke:epochs=3,epochs=4': epochs is given twice"),
    ("smoke:epochs=0", "fidelity 'smoke:epochs=0': epochs must be an integer in 1..1000, got '0'"),
    ("smoke:epochs=1001", "epochs must be an integer in 1..1000, got '1001'"),
    ("smoke:epochs=2.5", "epochs must be an integer in 1..1000, got '2.5'"),
    ("smoke:epochs=-1", "epochs must be an integer in 1..1000, got '-1'"),
    ("smoke:resolution=15", "resolution must be an integer in 16..512, got '15'"),
    ("smoke:resolution=513", "resolution must be an integer in 16..512, got '513'"),
    ("smoke:width=0", "width must be a number in (0, 4], got '0'"),
    ("smoke:width=4.5", "width must be a number in (0, 4], got '4.5'"),
    ("smoke:width=nan", "width must be a number in (0, 4], got 'nan'"),
    ("smoke:train_images=9", "train_images must be an integer >= 10 or 'all', got '9'"),
    ("smoke:test_images=some", "test_images must be an integer >= 10 or 'all', got 'some'"),
    ("smoke:batch=0", "batch must be an integer in 1..4096, got '0'"),
    ("smoke:batch=all", "batch must be an integer in 1..4096, got 'all'"),
    ("smoke:lr=0", "lr must be a number in (0, 10], got '0'"),
    ("smoke:lr=inf", "lr must be a number in (0, 10], got 'inf'"),
])
def test_bad_strings_name_the_problem(text, message):
    with pytest.raises(ValueError) as error:
        parse_fidelity(text, "mv2")
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("module, args, message", [
    ("ulsam_nas.train", ["--fidelity", "smoke:foo=1", "--save", "w.pt"], "unknown fidelity key 'foo' in 'smoke:foo=1'"),
    ("ulsam_nas.search", ["--fidelity", "smoke:epochs=0", "--study", "s"], "epochs must be an integer in 1..1000, got '0'"),
    ("ulsam_nas.search", ["--space", "mv1", "--fidelity", "medium", "--study", "s"], "unknown fidelity 'medium'"),
])
def test_clis_refuse_a_bad_fidelity_and_write_nothing(tmp_path, monkeypatch, module, args, message):
    monkeypatch.chdir(tmp_path)  # the relative paths given would be written here
    result = run_main(module, *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_list_of_fidelities_keeps_each_ones_keys():
    assert split_fidelities("smoke,smoke:epochs=8,resolution=48, proxy") == ["smoke", "smoke:epochs=8,resolution=48",
                                                                             "proxy"]
    assert split_fidelities("oneshot:smoke:epochs=1,train_images=320,smoke:lr=0.1") == [
        "oneshot:smoke:epochs=1,train_images=320", "smoke:lr=0.1"]
    assert split_fidelities(" , ") == []
