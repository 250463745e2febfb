import pytest
import torch
import torchvision

from ulsam_nas import ULSAM, Genome, build_model
from ulsam_nas.models.backbones import get_backbone


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_vanilla_mv2_is_torchvision_mobilenet_v2():
    ours = build_model(Genome("mv2")).eval()
    reference = torchvision.models.mobilenet_v2().eval()
    assert n_params(ours) == n_params(reference) == 3_504_872
    # Same tensors in the same order: copy torchvision's weights over and compare outputs.
    ours_state, ref_state = ours.state_dict(), reference.state_dict()
    assert [t.shape for t in ours_state.values()] == [t.shape for t in ref_state.values()]
    ours.load_state_dict(dict(zip(ours_state, ref_state.values())))
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))


@pytest.mark.parametrize("width", [0.5, 0.75, 1.4])
def test_mv2_width_multiplier_matches_torchvision(width):
    reference = torchvision.models.mobilenet_v2(width_mult=width, num_classes=101)
    assert n_params(build_model(Genome("mv2"), num_classes=101, width_mult=width)) == n_params(reference)


@pytest.mark.parametrize("width, expected", [(1.0, 4_231_976), (0.75, 2_585_560), (0.5, 1_331_592)])
def test_vanilla_mv1_parameter_counts(width, expected):
    assert n_params(build_model(Genome("mv1", width_mult=width))) == expected


def test_placements_appear_in_the_paper_numbering():
    model = build_model(Genome.parse("mv1", "(8:1, 9:1, 11)", g=4), num_classes=200)
    names = list(dict(model.features.named_children()))
    assert names[7:13] == ["layer8", "after8", "layer9", "after9", "layer10", "layer11"]
    assert isinstance(model.features.layer11, ULSAM) and model.features.layer11.groups == 4
    assert isinstance(model.features.after8, ULSAM) and model.features.after8.channels == 512
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 200)


def test_width_override_rebuilds_at_that_width():
    genome = Genome.parse("mv1", "(8:1, 9:1, 11)", g=4)
    model = build_model(genome, width_mult=0.5)
    assert model.genome.width_mult == 0.5 and model.features.layer11.channels == 256
    with pytest.raises(ValueError, match="mv1 layer 8: g=4 does not divide its 2 channels at width 0.005"):
        build_model(genome, width_mult=0.005)


def test_substitutable_layers_are_the_papers():
    assert get_backbone("mv1").substitutable() == (4, 6, 8, 9, 10, 11, 12, 14)
    assert get_backbone("mv2").substitutable() == (4, 6, 7, 9, 10, 11, 13, 14, 16, 17)


def test_paper_variant_builds_bias_free_ulsam():
    model = build_model(Genome.parse("mv2", "17:1", g=4), ulsam_variant="paper")
    assert n_params(model) == 3_504_872 + 2 * 160
