import json

import pytest
import torch

from ulsam_nas import Genome
from ulsam_nas.models.genome import INSERT, SUBSTITUTE, Placement
from ulsam_nas.models.spaces import random_genomes
from ulsam_nas.models.ulsam import ULSAM
from ulsam_nas.train.fidelity import SMOKE
from ulsam_nas.train.loop import build_proxy
from ulsam_nas.train.supernet import CHECKPOINT, CHECKPOINT_KEY, SuperNet, score, train_supernet, uniform_genome

TINY = "smoke:epochs=2,train_images=200"


class Interrupted(Exception):
    """Stands for a run killed right after a checkpoint."""


@pytest.fixture(scope="module")
def supernet(spaces) -> SuperNet:
    """The mv2 supernet at the smoke fidelity with every weight and BatchNorm statistic
    perturbed: no scale left at 1 or 0 (identity-started blocks included), so a module taken
    from the wrong place or a statistic not carried over shows in the outputs."""
    torch.manual_seed(0)
    net = SuperNet(spaces["mv2"], 10, SMOKE)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
            elif isinstance(module, torch.nn.Conv2d) and module.bias is not None:
                module.bias.normal_(0, 0.1)
    return net.eval()


def test_extract_is_the_path_and_loads_into_a_fresh_build_proxy(supernet, spaces):
    x = torch.randn(4, 3, SMOKE.resolution, SMOKE.resolution, generator=torch.Generator().manual_seed(0))
    worst = 0.0
    with torch.no_grad():
        for genome in random_genomes(spaces["mv2"], 20, seed=0):
            path = supernet(x, genome)
            extracted = supernet.extract(genome)
            fresh = build_proxy(genome, SMOKE, 10)
            fresh.load_state_dict(extracted.state_dict())  # strict: build_model's names, nothing more or less
            assert not extracted.training
            worst = max(worst, (extracted(x) - path).abs().max().item(), (fresh.eval()(x) - path).abs().max().item())
    assert worst <= 1e-5


def test_every_allowed_layer_action_and_g_has_its_own_ulsam(supernet, spaces):
    space = spaces["mv2"]
    allowed = {(n, action, g) for n, choice in space.layers.items() for action in (INSERT, SUBSTITUTE)
               if action in choice.actions for g in choice.groups}
    ulsams = {}
    for n, action, g in allowed:
        genome = Genome("mv2", (Placement(n, action, g),))
        name = f"layer{n}" if action == SUBSTITUTE else f"after{n}"
        ulsams[n, action, g] = supernet.path_net(genome).features.get_submodule(name)
    assert all(isinstance(module, ULSAM) and module.groups == g for (_, _, g), module in ulsams.items())
    assert len({id(module) for module in ulsams.values()}) == len(allowed)
    assert sum(isinstance(module, ULSAM) for module in supernet.modules()) == len(allowed)
    # Parameters are not shared between modules either.
    parameters = [id(p) for module in ulsams.values() for p in module.parameters()]
    assert len(parameters) == len(set(parameters))


def test_a_genome_outside_the_space_or_width_is_refused(supernet):
    outside = [Genome("mv2", (Placement(16, SUBSTITUTE, 32),)), Genome("mv2", (), 0.5), Genome("mv1", ())]
    for genome in outside:
        with pytest.raises(ValueError, match="not a path"):
            supernet(torch.zeros(1, 3, SMOKE.resolution, SMOKE.resolution), genome)
        with pytest.raises(ValueError, match="not a path"):
            supernet.extract(genome)


def test_uniform_paths_cover_the_space_and_follow_the_seed(spaces):
    space = spaces["mv2"]
    draws = [uniform_genome(space, 1.0, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert draws[0] == draws[1]
    generator = torch.Generator().manual_seed(0)
    genomes = [uniform_genome(space, 1.0, generator) for _ in range(300)]
    assert all(space.contains(genome) for genome in genomes)
    actions = [p.action for genome in genomes for p in genome.placements]
    kept = 300 * len(space.layers) - len(actions)
    expected_kept = 300 * sum(1 / len(choice.actions) for choice in space.layers.values())
    assert abs(kept - expected_kept) < 0.1 * expected_kept
    assert SUBSTITUTE in actions and INSERT in actions


def test_training_checkpoints_every_epoch_and_resumes_exactly(tmp_path, spaces):
    space = spaces["mv2"]
    interrupted_dir, straight_dir = tmp_path / "interrupted", tmp_path / "straight"

    def stop_after_first(epoch, metrics):
        raise Interrupted

    with pytest.raises(Interrupted):
        train_supernet(space, "synthetic", TINY, 10, seed=0, checkpoint_dir=interrupted_dir, report=stop_after_first)
    assert torch.load(interrupted_dir / CHECKPOINT, weights_only=True)["epoch"] == 1
    assert json.loads((interrupted_dir / CHECKPOINT_KEY).read_text())["fidelity"]["epochs"] == 2

    resumed_reports, straight_reports = [], []
    resumed = train_supernet(space, "synthetic", TINY, 10, seed=0, checkpoint_dir=interrupted_dir,
                             report=lambda epoch, metrics: resumed_reports.append(metrics))
    straight = train_supernet(space, "synthetic", TINY, 10, seed=0, checkpoint_dir=straight_dir,
                              report=lambda epoch, metrics: straight_reports.append(metrics))
    assert [m["epoch"] for m in resumed_reports] == [2] and [m["epoch"] for m in straight_reports] == [1, 2]
    assert resumed_reports[0]["loss"] == straight_reports[1]["loss"]
    straight_state = straight.state_dict()  # once: state_dict() walks the whole supernet
    assert all(torch.equal(value, straight_state[name]) for name, value in resumed.state_dict().items())
    assert torch.load(straight_dir / CHECKPOINT, weights_only=True)["epoch"] == 2
    assert not list(straight_dir.glob(".*.tmp"))

    finished_reports = []
    train_supernet(space, "synthetic", TINY, 10, seed=0, checkpoint_dir=straight_dir,
                   report=lambda epoch, metrics: finished_reports.append(epoch))
    assert finished_reports == []  # a finished run is not trained again


@pytest.mark.parametrize("change, differs", [
    ({"seed": 1}, "seed"),
    ({"fidelity": "smoke:epochs=3,train_images=200"}, "fidelity"),  # a longer one-cycle schedule is another run
    ({"data": "folder:/nowhere"}, "data"),
])
def test_a_checkpoint_of_another_run_is_refused(tmp_path, spaces, change, differs):
    arguments = {"space": spaces["mv2"], "data": "synthetic", "fidelity": "smoke:epochs=1,train_images=64",
                 "num_classes": 10, "seed": 0, "checkpoint_dir": tmp_path}
    train_supernet(**arguments)
    with pytest.raises(ValueError, match=f"another run.*{differs}"):
        train_supernet(**{**arguments, **change})


def test_an_unknown_sampler_is_refused(tmp_path, spaces):
    with pytest.raises(ValueError, match="sampler"):
        train_supernet(spaces["mv2"], "synthetic", TINY, 10, seed=0, checkpoint_dir=tmp_path, sampler="fair")


def test_scores_are_percentages_deterministic_and_leave_the_supernet_alone(supernet, spaces):
    genomes = random_genomes(spaces["mv2"], 4, seed=1)
    before = {name: value.clone() for name, value in supernet.state_dict().items()}
    first = score(supernet, genomes, "synthetic")
    assert all(0 <= top1 <= 100 for top1 in first)
    assert score(supernet, genomes, "synthetic") == first
    after = supernet.state_dict()
    assert all(torch.equal(value, after[name]) for name, value in before.items())
    assert not supernet.training


