"""RAMS: parameter count of the paper, shapes for any size, weight norm, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from core.models.rams import PAPER_PARAMS, PAPER_PARAMS_WITH_GAIN, RAMS, count_parameters


def tiny(**kw) -> RAMS:
    torch.manual_seed(0)
    return RAMS(**{"filters": 8, "N": 2, **kw})


def test_parameter_count_matches_the_paper():
    model = RAMS()  # T=9, F=32, k=3, r=8, N=12, x3
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
