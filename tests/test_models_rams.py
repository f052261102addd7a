"""RAMS: parameter count of the paper, shapes for any size, weight norm, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from core.models.archs.rams import PAPER_PARAMS, PAPER_PARAMS_WITH_GAIN, RAMS, count_parameters


def tiny(**kw) -> RAMS:
    torch.manual_seed(0)
    return RAMS(**{"filters": 8, "N": 2, **kw})


def test_parameter_count_matches_the_paper():
    model = RAMS(upsampler="pixelshuffle")  # T=9, F=32, k=3, r=8, N=12, x3, the paper's depth-to-space
    plain = count_parameters(model, include_weight_norm_gain=False)
    with_gain = count_parameters(model, include_weight_norm_gain=True)
    print(f"RAMS parameters: {plain:,} (paper {PAPER_PARAMS:,}); with weight-norm g {with_gain:,} "
          f"(paper {PAPER_PARAMS_WITH_GAIN:,})")
    assert abs(plain - PAPER_PARAMS) / PAPER_PARAMS < 0.02
    assert abs(with_gain - PAPER_PARAMS_WITH_GAIN) / PAPER_PARAMS_WITH_GAIN < 0.02
    # The layout is the paper's, so the counts are in fact exact.
    assert (plain, with_gain) == (PAPER_PARAMS, PAPER_PARAMS_WITH_GAIN)


def test_attributes_and_reduction_steps():
    model = tiny()
    assert (model.scale, model.frames, model.in_chans) == (3, 9, 1)
    assert model.reduction_steps == 3  # T 9 -> 7 -> 5 -> 3, then the last conv to 1
    assert tiny(frames=5).reduction_steps == 1
    assert tiny(frames=7).reduction_steps == 2


@pytest.mark.parametrize("shape", [(1, 20, 27), (2, 32, 32), (1, 7, 5), (1, 1, 1)])
def test_output_shape_for_any_size(shape):
    b, h, w = shape
    model = tiny().eval()
    with torch.inference_mode():
        y = model(torch.rand(b, 9, h, w))
    assert y.shape == (b, 1, 3 * h, 3 * w)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("frames", [3, 5, 7])
def test_other_frame_counts(frames):
    model = tiny(frames=frames).eval()
    with torch.inference_mode():
        assert model(torch.rand(1, frames, 6, 5)).shape == (1, 1, 18, 15)


def test_every_convolution_is_weight_normalized():
    model = tiny()
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    assert len(convs) > 10
    for conv in convs:
        assert hasattr(conv, "parametrizations") and "weight" in conv.parametrizations


def test_gradients_reach_every_parameter():
    model = tiny().train()
    x = torch.rand(2, 9, 12, 10)
    model(x).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_mean_std_normalize_input_and_denormalize_output():
    """RAMS(mean, std) on x equals the plain network on (x - mean)/std, rescaled back."""
    plain = tiny().eval()
    scaled = tiny(mean=0.3, std=0.2).eval()
    scaled.load_state_dict(plain.state_dict())
    x = torch.rand(1, 9, 8, 8)
    with torch.inference_mode():
        expected = plain((x - 0.3) / 0.2) * 0.2 + 0.3
        assert torch.allclose(scaled(x), expected, atol=1e-5)


def test_bad_input_is_refused_with_a_clear_message():
    model = tiny()
    with pytest.raises(ValueError, match="9 frames"):
        model(torch.rand(1, 5, 8, 8))
    with pytest.raises(ValueError, match="at least 3 frames"):
        RAMS(frames=2)
    with pytest.raises(ValueError, match="kernel_size"):
        RAMS(kernel_size=5)


# --------------------------------------------------------------------------- bands and upsamplers


@pytest.mark.parametrize("upsampler", ["pixelshuffle", "pixelshuffle_icnr", "pixelshuffle_degrid", "resize_conv"])
def test_four_bands_in_one_pass(upsampler):
    """[B, T, C, h, w] and the frames-outermost [B, T*C, h, w] give the same [B, C, 3h, 3w]."""
    model = tiny(in_chans=4, upsampler=upsampler).eval()
    x = torch.rand(2, 9, 4, 7, 10)
    with torch.inference_mode():
        y = model(x)
        assert torch.equal(model(x.reshape(2, 36, 7, 10)), y)
    assert y.shape == (2, 4, 21, 30) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match=r"\[batch, 9 frames, 4 bands, height, width\] or \[batch, 36"):
        model(torch.rand(1, 9, 7, 10))


def test_a_four_band_pass_costs_far_less_than_four_one_band_passes():
    from torch.utils.flop_counter import FlopCounterMode

    def flops(model, x):
        with FlopCounterMode(display=False) as counter, torch.no_grad():  # (inference_mode trips weight norm)
            model(x)
        return counter.get_total_flops()

    one = flops(tiny(filters=16).eval(), torch.rand(1, 9, 16, 16))
    four = flops(tiny(filters=16, in_chans=4).eval(), torch.rand(1, 9, 4, 16, 16))
    print(f"RAMS F=16 N=2, 16x16 LR: 1 band {one / 1e9:.2f} GFLOP, 4 bands jointly {four / 1e9:.2f} GFLOP "
          f"({four / (4 * one):.0%} of four 1-band passes)")
    assert four < 0.35 * 4 * one


def test_one_band_legacy_network_is_unchanged():
    """in_chans=1 with the plain pixel shuffle is the original network: same names, shapes and count."""
    model = RAMS(upsampler="pixelshuffle")
    assert count_parameters(model, include_weight_norm_gain=False) == PAPER_PARAMS
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == RAMS.state_shapes(upsampler="pixelshuffle")
    assert "degrid" not in dict(model.named_modules())


@pytest.mark.parametrize("kw", [
    {}, {"filters": 8, "N": 2}, {"frames": 5, "in_chans": 4, "r": 4}, {"frames": 3, "N": 0, "upsampler": "resize_conv"},
    {"frames": 7, "in_chans": 2, "scale": 2, "upsampler": "pixelshuffle"}, {"frames": 4},
])
def test_state_shapes_without_building_match_the_network(kw):
    real = {k: tuple(v.shape) for k, v in RAMS(**kw).state_dict().items()}
    assert RAMS.state_shapes(**kw) == real


def test_icnr_starts_the_sub_pixel_kernels_identical():
    model = tiny(upsampler="pixelshuffle_icnr")
    for conv in (model.upscale, model.global_upscale):
        w = conv.weight.detach()  # the weight-normalized kernel
        groups = w.view(w.shape[0] // 9, 9, *w.shape[1:])
        assert torch.equal(groups, groups[:, :1].expand_as(groups))
        b = conv.bias.detach().view(-1, 9)
        assert torch.equal(b, b[:, :1].expand_as(b))
