"""RAMS's 3-D convolutions run as 2-D ones on time-major frames: same numbers as ``nn.Conv3d`` (to 1e-4).

The reference below is RAMS written the textbook way, on ``[B, F, T, H, W]``
volumes with the modules' own ``nn.Conv3d`` calls, so the test fails if the
folded arithmetic ever drifts from what the weights mean.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.models.archs.rams import RAMS
from core.models.archs.time_folded import temporal_conv, to_frames
from core.models.padding import safe_reflect_pad
from core.models.upsampling import UPSAMPLERS


def _pad_hw(v: torch.Tensor) -> torch.Tensor:
    b, f, t, h, w = v.shape
    return safe_reflect_pad(v.reshape(b, f * t, h, w), (1, 1, 1, 1)).reshape(b, f, t, h + 2, w + 2)


def _block(block, v: torch.Tensor) -> torch.Tensor:
    y = block.conv2(F.relu(block.conv1(v)))
    a = torch.sigmoid(block.excite(F.relu(block.squeeze(y.mean(dim=(2, 3, 4), keepdim=True)))))
    return v + y * a


def reference_rams(net: RAMS, x: torch.Tensor) -> torch.Tensor:
    """RAMS on 3-D volumes with plain ``nn.Conv3d`` calls (what the weights mean)."""
    cfg = net.config
    b, t, c, h, w = x.shape
    x = (x - cfg.mean) / cfg.std
    v = net.head(_pad_hw(x.transpose(1, 2)))
    body = v
    for blk in net.body:
        body = _block(blk, body)
    v = v + net.body_tail(body)
    for red in net.reductions:
        v = F.relu(red.reduce(_block(red.block, _pad_hw(v))))
    g = net.global_attention(safe_reflect_pad(x.reshape(b, t * c, h, w), (1, 1, 1, 1)))
    s = cfg.scale
    if cfg.upsampler == "resize_conv":
        v = F.interpolate(v, scale_factor=(1, s, s), mode="trilinear", align_corners=False)
        g = F.interpolate(g, scale_factor=s, mode="bilinear", align_corners=False)
        out = (net.upscale(v)[:, :, 0] + net.global_upscale(g))[..., s - 1: s - 1 + s * h, s - 1: s - 1 + s * w]
    else:
        out = net.shuffle(net.upscale(v)[:, :, 0] + net.global_upscale(g))
    if net.degrid is not None:
        out = net.degrid(out)
    return out * cfg.std + cfg.mean


@pytest.mark.parametrize("padding", [(1, 1, 1), (0, 0, 0), (1, 0, 0)])
@pytest.mark.parametrize("batch,frames", [(1, 9), (3, 5), (2, 3)])
@pytest.mark.parametrize("c_in,c_out", [(6, 5), (4, 7), (5, 5)])  # narrowing: per-tap sum; else taps as channels
def test_temporal_conv_equals_conv3d_forward_and_backward(padding, batch, frames, c_in, c_out):
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(c_in, c_out, 3, padding=padding)
    x = torch.randn(batch, c_in, frames, 11, 13, requires_grad=True)
    ref = conv(x)
    folded, t_out = temporal_conv(to_frames(x.transpose(1, 2)), frames, conv)
    got = folded.view(batch, t_out, *folded.shape[1:]).transpose(1, 2)
    assert t_out == ref.shape[2]
    assert torch.allclose(got, ref, atol=1e-5)
    grad = torch.randn_like(ref)
    g_ref = torch.autograd.grad(ref, (x, conv.weight), grad)
    g_got = torch.autograd.grad(got, (x, conv.weight), grad)
    for a, b in zip(g_got, g_ref):
        assert torch.allclose(a, b, atol=1e-4)


def test_temporal_conv_refuses_what_it_does_not_compute():
    with pytest.raises(ValueError, match="stride"):
        temporal_conv(torch.zeros(3, 2, 8, 8), 3, torch.nn.Conv3d(2, 2, 3, stride=2))
    with pytest.raises(ValueError, match="too few"):
        temporal_conv(torch.zeros(2, 2, 8, 8), 2, torch.nn.Conv3d(2, 2, 3))


@pytest.mark.parametrize("upsampler", UPSAMPLERS)
@pytest.mark.parametrize("frames", [9, 8])
def test_rams_matches_its_volumetric_reference(upsampler, frames):
    torch.manual_seed(1)
    net = RAMS(frames=frames, filters=8, N=2, in_chans=2, upsampler=upsampler).eval()
    x = torch.rand(2, frames, 2, 19, 14)
    with torch.no_grad():
        got, ref = net(x), reference_rams(net, x)
    assert got.shape == ref.shape == (2, 2, 57, 42)
    assert (got - ref).abs().max().item() < 1e-4


def test_rams_trains_through_the_folded_path():
    """Gradients of the folded network are the reference's: training on the CPU uses the fast path too."""
    torch.manual_seed(2)
    net = RAMS(frames=5, filters=4, N=1, in_chans=1)
    x = torch.rand(1, 5, 1, 9, 9)
    loss_got = net(x).square().mean()
    grads_got = torch.autograd.grad(loss_got, list(net.parameters()))
    loss_ref = reference_rams(net, x).square().mean()
    grads_ref = torch.autograd.grad(loss_ref, list(net.parameters()))
    assert abs(loss_got.item() - loss_ref.item()) < 1e-6
    for a, b in zip(grads_got, grads_ref):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
