import pytest
import torch

from ulsam_nas.models.costs import ulsam_cost
from ulsam_nas.models.ulsam import ULSAM, GroupLoopULSAM


def _twins(channels, groups, variant, seed=0):
    torch.manual_seed(seed)
    loop = GroupLoopULSAM(channels, groups, variant)
    for p in loop.parameters():  # non-trivial BN affine terms too, so a mix-up would show
        torch.nn.init.normal_(p, 0.0, 0.5)
    vectorised = ULSAM(channels, groups, variant)
    loop.copy_to(vectorised)
    return loop, vectorised


@pytest.mark.parametrize("variant", ["official", "paper"])
@pytest.mark.parametrize("groups", [1, 2, 4, 8, 16])
def test_vectorised_matches_group_loop_forward_and_gradients(groups, variant):
    loop, vectorised = _twins(32, groups, variant)
    x = torch.randn(3, 32, 7, 9, dtype=torch.float64)
    loop, vectorised = loop.double(), vectorised.double()
    x_loop, x_vec = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_loop, out_vec = loop(x_loop), vectorised(x_vec)
    torch.testing.assert_close(out_vec, out_loop, atol=1e-5, rtol=0)
    upstream = torch.randn_like(out_loop)
    (out_loop * upstream).sum().backward()
    (out_vec * upstream).sum().backward()
    torch.testing.assert_close(x_vec.grad, x_loop.grad, atol=1e-5, rtol=0)
    # Parameter gradients: the loop's per-group grads, concatenated, are the vectorised grads.
    for unit in ("depthwise", "pointwise"):
        for index, layer in enumerate(getattr(vectorised, unit)):
            for name, param in layer.named_parameters():
                parts = [getattr(getattr(b, unit)[index], name).grad for b in loop.group_blocks]
                torch.testing.assert_close(param.grad, torch.cat(parts), atol=1e-5, rtol=0)
    assert sum(p.numel() for p in vectorised.parameters()) == sum(p.numel() for p in loop.parameters())


@pytest.mark.parametrize("groups", [1, 4, 16])
def test_vectorised_matches_group_loop_in_float32_eval_mode(groups):
    loop, vectorised = _twins(64, groups, "official", seed=1)
    x = torch.randn(2, 64, 14, 14)
    loop.train()(x), vectorised.train()(x)  # one step of running statistics on both
    loop.eval(), vectorised.eval()
    with torch.no_grad():
        torch.testing.assert_close(vectorised(x), loop(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", ["official", "paper"])
@pytest.mark.parametrize("groups", [1, 2, 8])
def test_attention_maps_sum_to_one_per_group_and_sample(groups, variant):
    module = ULSAM(16, groups, variant)
    maps = module.attention(torch.randn(5, 16, 6, 4))
    assert maps.shape == (5, groups, 6, 4)
    assert (maps >= 0).all()
    torch.testing.assert_close(maps.sum(dim=(2, 3)), torch.ones(5, groups))


def test_output_is_input_times_map_plus_input():
    module = ULSAM(8, 2, "paper")
    x = torch.randn(2, 8, 5, 5)
    maps = module.attention(x)
    expected = x * maps.repeat_interleave(4, dim=1) + x
    torch.testing.assert_close(module(x), expected)


def test_each_group_has_its_own_weights():
    module = ULSAM(16, 4, "paper")
    # one depthwise weight per channel, and one pointwise weight per input channel of a group
    assert module.depthwise[0].weight.shape == (16, 1, 1, 1)
    assert module.pointwise[0].weight.shape == (4, 4, 1, 1)


@pytest.mark.parametrize("channels, groups", [(10, 3), (16, 5), (8, 0)])
def test_groups_that_do_not_divide_channels_are_rejected(channels, groups):
    with pytest.raises(ValueError, match=rf"g={groups}.*m={channels}"):
        ULSAM(channels, groups)


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="variant"):
        ULSAM(8, 2, "fast")


@pytest.mark.parametrize("variant", ["official", "paper"])
@pytest.mark.parametrize("groups", [1, 4, 16])
def test_analytic_cost_matches_module(groups, variant):
    module = ULSAM(64, groups, variant)
    cost = ulsam_cost(64, groups, 14, 14, variant)
    assert cost.params == sum(p.numel() for p in module.parameters())
    assert cost.macs == 2 * 64 * 14 * 14
    if variant == "paper":
        assert cost.params == 2 * 64
    else:
        assert cost.params == groups * (5 * (64 // groups) + 3)


def test_channels_last_input_gives_the_same_output_and_layout_independent_grads():
    module = ULSAM(32, 4)
    x = torch.randn(2, 32, 6, 6)
    x_cl = x.clone().to(memory_format=torch.channels_last).requires_grad_()
    x = x.requires_grad_()
    out, out_cl = module(x), module(x_cl)
    torch.testing.assert_close(out_cl, out)
    out.sum().backward(), out_cl.sum().backward()
    torch.testing.assert_close(x_cl.grad, x.grad)
