"""No 3-pixel checkerboard: ICNR init, the Degrid guard, and what new networks are built with.

The grid is measured with the project's own score (core.models.artifacts),
on a flat field, where a pixel shuffle's grid is most visible (fields, water).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.models.artifacts import grid_score
from core.models.registry import build
from core.models.upsampling import DEFAULT_UPSAMPLER, Degrid, balance_subpixel, icnr_

ROOT = Path(__file__).resolve().parents[1]


def stamp(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.randn(3, 3, generator=torch.Generator().manual_seed(seed))
    g -= g.mean()
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return g[yy % 3, xx % 3]


# --------------------------------------------------------------------------- the pieces


def test_icnr_copies_the_first_sub_kernel_of_each_group():
    w = torch.randn(18, 4, 3, 3)
    icnr_([w], 3)
    groups = w.view(2, 9, 4, 3, 3)
    assert torch.equal(groups, groups[:, :1].expand_as(groups)) and not torch.equal(groups[0], groups[1])
    with pytest.raises(ValueError, match="not a multiple"):
        icnr_([torch.zeros(10, 2)], 3)


def test_degrid_removes_a_local_grid_exactly_and_keeps_ramps_and_block_means():
    yy, xx = torch.meshgrid(torch.arange(60.0), torch.arange(48.0), indexing="ij")
    ramp = (0.3 + 0.004 * xx - 0.002 * yy)[None, None]
    d = Degrid(3)
    assert torch.allclose(d(ramp), ramp, atol=1e-6)  # a ramp is not a grid (and is not made a staircase)
    gridded = ramp + 0.01 * stamp(60, 48)
    assert torch.allclose(d(gridded), ramp, atol=1e-6)  # to the borders
    x = torch.rand(2, 3, 30, 21)
    pool = torch.nn.functional.avg_pool2d
    assert torch.allclose(pool(d(x), 3), pool(x, 3), atol=1e-6)  # the LR image it explains is unchanged
    with pytest.raises(ValueError, match="multiple of the scale"):
        d(torch.rand(1, 1, 10, 9))


def test_training_cannot_grow_a_grid_through_degrid():
    """The output does not depend on the amplitude of a grid added before the layer: zero gradient."""
    base = torch.rand(1, 1, 36, 36)
    a = torch.tensor(0.7, requires_grad=True)
    out = Degrid(3)(base + a * stamp(36, 36))
    out.square().sum().backward()
    assert abs(float(a.grad)) < 1e-4


# --------------------------------------------------------------------------- the networks


UPS = ["pixelshuffle_icnr", "pixelshuffle_balanced", "pixelshuffle_degrid", "resize_conv"]
# Degrid removes a locally constant grid exactly (tested above) but not one that varies with HAT's
# attention windows: with scrambled kernels it scores ~3.4 there, so it is not listed as a guard.
GUARDED = ["pixelshuffle_balanced", "resize_conv"]


def flat_input(arch: str, size: int, noise: float = 0.002) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return 0.4 + noise * torch.randn(1, 9 if arch == "rams" else 1, size, size, generator=g)


def tiny(arch: str, upsampler: str):
    torch.manual_seed(0)
    kw = dict(filters=8, N=1, r=4) if arch == "rams" else dict(preset="hat-tiny")
    return build(arch, upsampler=upsampler, **kw).eval()


def score(model, arch: str, size: int = 30) -> float:
    """Grid score on a noisy flat field, away from the borders (zero-padded convolutions and HAT's
    attention windows make a flat input non-flat within a few windows of the edge)."""
    with torch.inference_mode():
        y = model(flat_input(arch, size))[0, 0, 12:-12, 12:-12].numpy()
    return grid_score(y)


@pytest.mark.parametrize("arch", ["rams", "hat"])
def test_old_pixel_shuffle_stamps_a_grid_from_the_start_the_others_do_not(arch):
    old = score(tiny(arch, "pixelshuffle"), arch)
    new = {u: score(tiny(arch, u), arch) for u in UPS}
    print(f"{arch} at init, flat field: pixelshuffle {old:.1f}, " + ", ".join(f"{u} {v:.2f}" for u, v in new.items()))
    assert old > 50.0
    assert all(v < 3.0 for v in new.values())


def scramble_sub_pixel_kernels(model) -> None:
    """What training drifts towards: sub-kernels far from identical."""
    torch.manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "upscale" in name or "upsample" in name:
                p.add_(torch.randn_like(p) * p.abs().mean())


@pytest.mark.parametrize("arch", ["rams", "hat"])
@pytest.mark.parametrize("upsampler", GUARDED)
def test_the_guard_holds_whatever_the_weights(arch, upsampler):
    model = tiny(arch, upsampler)
    scramble_sub_pixel_kernels(model)
    size = 30 if arch == "rams" else 64
    guarded = score(model, arch, size)
    print(f"{arch} {upsampler}, scrambled sub-pixel kernels: {guarded:.2f}")
    assert guarded < 3.0
    if upsampler != "resize_conv":  # same weights, no guard: the grid is there
        plain = tiny(arch, "pixelshuffle")
        plain.load_state_dict(model.state_dict())
        assert score(plain, arch, size) > 50.0


@pytest.mark.parametrize("arch", ["rams", "hat"])
def test_balanced_sub_kernels_keep_a_constant_input_constant(arch):
    model = tiny(arch, "pixelshuffle_balanced")
    scramble_sub_pixel_kernels(model)
    size = 24 if arch == "rams" else 64
    shape = (1, 9 if arch == "rams" else 1, size, size)
    with torch.inference_mode():
        y = model(torch.full(shape, 0.4))[0, 0]
    m = 60 if arch == "hat" else 24  # the borders' influence (zero padding, attention windows) stays out
    inner = y[m:-m, m:-m]
    assert float(inner.max() - inner.min()) < 1e-5


def test_balance_ties_the_sums_of_the_sub_kernels_and_the_biases():
    w, b = torch.randn(18, 5, 3, 3, 3), torch.randn(18)
    wb, bb = balance_subpixel(w, b, 3)
    sums = wb.view(2, 9, 5, 3, 3, 3).sum(dim=(-2, -1))  # per temporal tap
    assert torch.allclose(sums, sums[:, :1].expand_as(sums), atol=1e-5)
    assert torch.equal(bb.view(2, 9), bb.view(2, 9)[:, :1].expand(2, 9))
    # Already balanced weights are left alone.
    again, _ = balance_subpixel(wb, bb, 3)
    assert torch.allclose(again, wb, atol=1e-6)


def test_new_training_configs_build_the_guarded_upsampler():
    from core.training.config import load_config

    for name in ("rams_baseline", "rams_taskdriven", "hat_baseline", "tiny_rams_baseline", "tiny_hat_baseline"):
        cfg = load_config(ROOT / "resources" / "configs" / f"{name}.yaml", check_files=False)
        kw = dict(cfg.model.hparams, scale=cfg.model.scale)
        if cfg.model.preset:
            kw["preset"] = cfg.model.preset
        assert build(cfg.model.arch, **kw).hparams["upsampler"] == DEFAULT_UPSAMPLER, name
    assert DEFAULT_UPSAMPLER != "pixelshuffle"
