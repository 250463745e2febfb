import shutil

import pytest

from ulsam_nas.models.spaces import BUILTIN_DIR, SpaceError, load_space

from .commands import run_module


def test_builtin_spaces_load(spaces):
    mv1, mv2 = spaces["mv1"], spaces["mv2"]
    assert (mv1.backbone, mv1.width_mults) == ("mv1", (1.0, 0.75, 0.5))
    assert (mv2.backbone, mv2.width_mults) == ("mv2", (1.0,))
    assert sorted(mv2.layers) == list(range(1, 20))
    assert "substitute" in mv2.choice(17).actions and "substitute" not in mv2.choice(15).actions
    assert mv2.choice(3).groups == (1, 2, 4, 8)  # 24 channels


def test_groups_in_space_files_divide_the_channels(spaces):
    from ulsam_nas.models.backbones import get_backbone

    for space in spaces.values():
        backbone = get_backbone(space.backbone)
        for layer, choice in space.layers.items():
            for width in space.width_mults:
                channels = backbone.layer(layer, width).out_ch
                assert all(channels % g == 0 for g in choice.groups), (space.name, layer, width)


def test_every_paper_configuration_is_there_and_expressible(spaces):
    labels = {name: [c.label for c in space.paper] for name, space in spaces.items()}
    assert labels["mv1"] == [
        "MV1 1.0 vanilla", "MV1 0.75 vanilla", "MV1 0.5 vanilla", "MV1 1.0 11:1", "MV1 1.0 12:1",
        "MV1 1.0 13:1", "MV1 1.0 (8:1, 9:1, 11)", "MV1 0.75 (8:1, 9:1, 11)", "MV1 0.5 (8:1, 9:1, 11)",
    ]
    assert labels["mv2"] == [
        "MV2 vanilla", "MV2 17:1", "MV2 (13)", "MV2 (16)", "MV2 (9, 13)", "MV2 (16, 17)",
        "MV2 (14, 17)", "MV2 (13, 14, 16, 17)",
    ]
    for space in spaces.values():
        for genome, label in space.paper_genomes():
            assert space.contains(genome), label
    mv2_seeds = dict((label, str(genome)) for genome, label in spaces["mv2"].paper_genomes())
    assert mv2_seeds["MV2 (16, 17) g=16"] == "mv2_w1.0(16g16,17g16)"
    assert len(mv2_seeds) == 1 + 5 + 6 * 4  # vanilla, 17:1 at five g, six placements at four g


def test_paper_results_are_recorded(spaces):
    config = next(c for c in spaces["mv2"].paper if c.label == "MV2 (16, 17)")
    food = {r.groups: r.top1 for r in config.results if r.dataset == "food101"}
    assert food == {1: 82.62, 4: 82.40, 8: 82.83, 16: 83.02}
    assert (config.params.text, config.flops.text) == ("2.77M", "269.07M")


def test_a_copied_space_file_works(tmp_path):
    copy = tmp_path / "mine.toml"
    shutil.copy(BUILTIN_DIR / "mv2.toml", copy)
    space = load_space(str(copy))
    assert space.name == "mv2" and space.path == copy


MALFORMED = [
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers\n", "", "not valid TOML"),
    ("width_mults = [1.0]\n[layers]\n", "backbone", "missing"),
    ("backbone = 'resnet'\nwidth_mults = [1.0]\n[layers]\n", "backbone", "unknown backbone 'resnet'"),
    ("backbone = 'mv2'\nwidth_mults = []\n[layers]\n", "width_mults", "empty list"),
    ("backbone = 'mv2'\nwidth_mults = ['wide']\n[layers]\n", "width_mults[0]", "expected a number"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\nlayer = 3\n[layers]\n", "layer", "unknown key"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\n25 = { actions = ['keep'] }\n", "layers.25", "out of range"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\nfirst = { actions = ['keep'] }\n", "layers.first", "layer numbers"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\n13 = { actions = ['keep', 'drop'], groups = [4] }\n",
     "layers.13.actions", "expected distinct actions"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\n15 = { actions = ['substitute'], groups = [4] }\n",
     "layers.15.actions", "layer 15 cannot be substituted: it changes the shape (96 -> 160 channels, stride 2)"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\n13 = { actions = ['insert'] }\n",
     "layers.13.groups", "missing"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\n4 = { actions = ['insert'], groups = [16] }\n",
     "layers.4.groups", "g=16 does not divide layer 4's 24 channels at width 1.0"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\n4 = { actions = ['insert'], groups = 4 }\n",
     "layers.4.groups", "expected list, got int 4"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\n4 = { actions = ['insert'], groups = [4], g = 2 }\n",
     "layers.4.g", "unknown key"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\n[[paper]]\nplacement = '(15, 17)'\nparams = '1M'\n"
     "flops = '2M'\nresults = [{ dataset = 'x', g = 4, top1 = 50.0 }]\n",
     "paper[0].placement", "mv2 layer 15: cannot be substituted"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\n[[paper]]\nplacement = '17'\nparams = 'many'\nflops = '2M'\n",
     "paper[0].params", "expected a printed figure"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\n[[paper]]\nplacement = '17'\nparams = '1M'\nflops = '2M'\n"
     "results = [{ dataset = 'x', g = 4, top1 = 150.0 }]\n", "paper[0].results[0].top1", "percentage"),
    ("backbone = 'mv2'\nwidth_mults = [1.0]\n[layers]\n[[paper]]\nplacement = '17'\nparams = '1M'\nflops = '2M'\n"
     "results = [{ dataset = 'x', top1 = 50.0 }]\n", "paper[0].results", "needs its g"),
]


@pytest.mark.parametrize("text, key, problem", MALFORMED)
def test_malformed_space_file_names_file_key_and_problem(tmp_path, text, key, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpaceError) as caught:
        load_space(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}") and problem in message, message


def test_cli_reports_a_malformed_space_in_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(MALFORMED[11][0])
    result = run_module("ulsam_nas.cost", "--space", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"error: {path}: layers.4.groups: g=16 does not divide layer 4's 24 channels at width 1.0"


def test_missing_space_file(tmp_path):
    with pytest.raises(SpaceError, match="unknown space"):
        load_space(str(tmp_path / "absent.toml"))
