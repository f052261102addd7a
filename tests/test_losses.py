"""Losses pinned on hand-computed cases and on a plain per-shift reference implementation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from core.models.losses import cl1, cmse, consistency_l1, shift_errors, soft_dice_loss

B3 = 3  # border for scale 3


def shifted_copy(hr: torch.Tensor, du: int, dv: int, bias: float = 0.0) -> torch.Tensor:
    """SR whose central crop equals HR displaced by (du, dv) px, plus a constant.

    ``torch.roll`` by (-du, -dv) gives ``sr[y, x] = hr[y + du, x + dv]``, so the
    crop ``sr[b:H-b]`` matches ``hr[b+du : ...]``: the best shift is ``(b+du, b+dv)``.
    """
    return torch.roll(hr, shifts=(-du, -dv), dims=(-2, -1)) + bias


def checkerboard(shape, sigma: float, dtype=torch.float64) -> torch.Tensor:
    """+-sigma pattern: zero mean and variance sigma^2 on any even-sized crop."""
    yy, xx = torch.meshgrid(torch.arange(shape[-2]), torch.arange(shape[-1]), indexing="ij")
    return (sigma * (1 - 2 * ((yy + xx) % 2)).to(dtype)).expand(shape).clone()


def reference_errors(sr, hr, valid, border, power):
    """The definition written out shift by shift with boolean indexing (no tricks)."""
    Bn, C, H, W = hr.shape
    b = border
    h, w = H - 2 * b, W - 2 * b
    out = torch.full((Bn, 2 * b + 1, 2 * b + 1), math.inf, dtype=torch.float64)
    for i in range(Bn):
        for u in range(2 * b + 1):
            for v in range(2 * b + 1):
                m = valid[i, u : u + h, v : v + w]
                if not m.any():
                    continue
                errs = []
                for c in range(C):
                    d = (hr[i, c, u : u + h, v : v + w] - sr[i, c, b : H - b, b : W - b])[m]
                    r = d - d.mean()
                    errs.append(r.abs() if power == 1 else r**2)
                out[i, u, v] = torch.cat(errs).mean()
    return out


@pytest.fixture
def hr():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 1, 30, 30, generator=g, dtype=torch.float64)


def test_cl1_is_zero_for_shifted_biased_copy(hr):
    sr = shifted_copy(hr, 1, 2, bias=0.05)
    assert cl1(sr, hr, border=B3).item() == pytest.approx(0.0, abs=1e-12)
    err = shift_errors(sr, hr, border=B3, power=1)
    # every sample picks (b+1, b+2), and no other shift comes close
    for i in range(2):
        flat = err[i].flatten()
        assert int(flat.argmin()) == (B3 + 1) * 7 + (B3 + 2)
        assert flat.sort().values[1] > 0.05


def test_cmse_equals_planted_noise_variance(hr):
    sigma = 0.01
    sr = shifted_copy(hr, 1, 2, bias=-0.1) + checkerboard(hr.shape, sigma)
    # bias is absorbed exactly (zero-mean noise), the residual is the noise itself
    assert cmse(sr, hr, border=B3).item() == pytest.approx(sigma**2, rel=1e-9)
    assert cl1(sr, hr, border=B3).item() == pytest.approx(sigma, rel=1e-9)


def test_best_shift_is_chosen_per_sample(hr):
    sr = torch.cat([shifted_copy(hr[:1], 1, 2, 0.1), shifted_copy(hr[1:], -3, 0, -0.2)])
    per = cl1(sr, hr, border=B3, reduction="none")
    assert per.shape == (2,)
    assert torch.allclose(per, torch.zeros(2, dtype=hr.dtype), atol=1e-12)


@pytest.mark.parametrize("power", [1, 2])
@pytest.mark.parametrize("vectorize", [False, True])
def test_matches_reference_definition_with_mask(power, vectorize):
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(2, 2, 20, 22, generator=g, dtype=torch.float64)
    sr = torch.rand(2, 2, 20, 22, generator=g, dtype=torch.float64)
    valid = torch.rand(2, 20, 22, generator=g) > 0.3
    got = shift_errors(sr, hr, valid, border=B3, power=power, vectorize=vectorize)
    want = reference_errors(sr, hr, valid, B3, power)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    loss = (cl1 if power == 1 else cmse)(sr, hr, valid, border=B3)
    assert loss.item() == pytest.approx(want.flatten(1).min(1).values.mean().item(), rel=1e-10)


def test_chunked_vectorised_path_is_identical():
    g = torch.Generator().manual_seed(2)
    hr = torch.rand(3, 1, 24, 24, generator=g)
    sr = torch.rand(3, 1, 24, 24, generator=g)
    valid = torch.rand(3, 24, 24, generator=g) > 0.2
    full = shift_errors(sr, hr, valid, vectorize=True)
    rows = shift_errors(sr, hr, valid, vectorize=True, max_elements=1)  # one row of shifts at a time
    loop = shift_errors(sr, hr, valid, vectorize=False)
    assert torch.allclose(full, rows) and torch.allclose(full, loop, atol=1e-6)


def test_invalid_pixels_do_not_change_the_loss(hr):
    g = torch.Generator().manual_seed(3)
    sr = shifted_copy(hr, 0, 1, 0.02) + 0.01 * torch.rand(hr.shape, generator=g, dtype=hr.dtype)
    valid = torch.rand(2, 30, 30, generator=g) > 0.25
    sr_valid = torch.rand(2, 30, 30, generator=g) > 0.1
    clean = cl1(sr, hr, valid, sr_valid=sr_valid), cmse(sr, hr, valid, sr_valid=sr_valid)
    hr_bad, sr_bad = hr.clone(), sr.clone()
    hr_bad[:, 0][~valid] = float("nan")
    hr_bad[:, 0][~valid & (torch.rand(2, 30, 30, generator=g) > 0.5)] = 1e6
    sr_bad[:, 0][~sr_valid] = float("nan")
    dirty = cl1(sr_bad, hr_bad, valid, sr_valid=sr_valid), cmse(sr_bad, hr_bad, valid, sr_valid=sr_valid)
    for a, b in zip(clean, dirty):
        assert torch.isfinite(b)
        assert b.item() == pytest.approx(a.item(), rel=1e-12)
    # and a float mask means the same as the bool one
    assert cl1(sr, hr, valid.double()).item() == pytest.approx(cl1(sr, hr, valid).item(), rel=1e-12)


def test_nan_in_hr_is_masked_even_without_a_valid_mask(hr):
    sr = shifted_copy(hr, 1, 1, 0.1)
    hr_nan = hr.clone()
    hr_nan[0, 0, 10, 10] = float("nan")
    assert torch.isfinite(cl1(sr, hr_nan))


def test_gradient_flows_through_the_best_shift(hr):
    g = torch.Generator().manual_seed(4)
    hr = hr.float()
    valid = torch.rand(2, 30, 30, generator=g) > 0.2
    sr = (shifted_copy(hr, 1, -1, 0.03) + 0.05 * torch.rand(hr.shape, generator=g)).requires_grad_(True)
    loss = cmse(sr, hr, valid)
    loss.backward()
    assert sr.grad is not None and torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    # the gradient is that of the reference loss at each sample's best shift
    ref_sr = sr.detach().double().requires_grad_(True)
    errs = reference_errors(ref_sr, hr.double(), valid, B3, 2)
    errs.flatten(1).min(1).values.mean().backward()
    assert torch.allclose(sr.grad.double(), ref_sr.grad, atol=1e-7)
    # the border ring outside the SR crop gets no gradient
    assert sr.grad[..., :B3, :].abs().sum() == 0


def test_empty_samples_are_left_out_of_the_mean(hr):
    sr = shifted_copy(hr, 0, 0, 0.0) + checkerboard(hr.shape, 0.02)
    valid = torch.ones(2, 30, 30, dtype=torch.bool)
    valid[1] = False
    assert cmse(sr, hr, valid).item() == pytest.approx(0.02**2, rel=1e-9)
    none = cmse(sr, hr, valid, reduction="none")
    assert none[1].item() == 0.0
    srg = sr.clone().requires_grad_(True)
    total = cmse(srg, hr, torch.zeros_like(valid))
    total.backward()  # an all-cloudy batch still back-propagates (zero gradient)
    assert total.item() == 0.0 and srg.grad.abs().sum() == 0


def test_bad_shapes_are_refused(hr):
    with pytest.raises(ValueError, match="same shape"):
        cl1(hr[..., :20], hr)
    with pytest.raises(ValueError, match="too small"):
        cl1(hr[..., :6, :6], hr[..., :6, :6])
    with pytest.raises(ValueError, match="valid mask"):
        cl1(hr, hr, torch.ones(2, 29, 30, dtype=torch.bool))


class AreaDown(nn.Module):
    """The simplest degradation: 3x3 area mean (the data package's operator adds a PSF)."""

    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(hr, 3)


def test_consistency_l1_on_the_lr_grid():
    g = torch.Generator().manual_seed(5)
    hr = torch.rand(2, 1, 36, 36, generator=g, dtype=torch.float64)
    lr_sr = AreaDown()(hr)  # 12 x 12
    # the LR reference frame is the degraded SR image displaced by one LR pixel, 0.07 brighter
    lr_ref = torch.roll(lr_sr, shifts=(1, 0), dims=(-2, -1)) + 0.07
    lr_valid = torch.ones(2, 12, 12, dtype=torch.bool)
    assert consistency_l1(hr, lr_ref, lr_valid, AreaDown()).item() == pytest.approx(0.0, abs=1e-12)
    assert consistency_l1(hr, lr_ref[:, 0], None, AreaDown()).item() == pytest.approx(0.0, abs=1e-12)
    # a 2-LR-pixel displacement exceeds the 1-pixel border: no longer free
    far = torch.roll(lr_sr, shifts=(2, 0), dims=(-2, -1))
    assert consistency_l1(hr, far, lr_valid, AreaDown()).item() > 0.01
    with pytest.raises(ValueError, match="degraded SR output"):
        consistency_l1(hr, lr_ref[..., :10, :10], None, AreaDown())


def test_consistency_l1_gradient_reaches_sr():
    g = torch.Generator().manual_seed(6)
    sr = torch.rand(1, 1, 24, 24, generator=g, requires_grad=True)
    lr_ref = torch.rand(1, 1, 8, 8, generator=g)
    consistency_l1(sr, lr_ref, None, AreaDown()).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0


def test_soft_dice_hand_values():
    logits = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # 2*sum(pg) = 2, sum(p) = 2, sum(g) = 2: 1 - (2 + 1) / (4 + 1) = 0.4
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.4)
    assert soft_dice_loss(logits, target, eps=0.0).item() == pytest.approx(0.5)
    # confident and right -> ~0; confident and wrong -> ~1 - eps / (|G| + |P| + eps)
    right = torch.where(target > 0, 30.0, -30.0)
    assert soft_dice_loss(right, target).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_dice_loss(-right, target).item() == pytest.approx(1 - 1 / 5, abs=1e-6)
    # an empty target still penalises predicted objects (one global Dice per batch)
    empty = torch.zeros_like(target)
    assert soft_dice_loss(torch.zeros(1, 1, 2, 2), empty).item() == pytest.approx(1 - 1 / 3)


def test_soft_dice_is_one_global_dice_over_the_batch():
    logits = torch.tensor([[[[2.0, -1.0]]], [[[0.5, 3.0]]]])
    target = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]]])
    p = torch.sigmoid(logits)
    want = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    assert soft_dice_loss(logits, target).item() == pytest.approx(want.item())
    per_image_mean = sum(soft_dice_loss(logits[i : i + 1], target[i : i + 1]) for i in range(2)) / 2
    assert abs(per_image_mean.item() - want.item()) > 1e-3


def test_soft_dice_ignores_invalid_pixels():
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 1, 8, 8, generator=g, requires_grad=True)
    target = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    valid = torch.rand(2, 8, 8, generator=g) > 0.3
    ref = soft_dice_loss(logits[valid[:, None]][None], target[valid[:, None]][None])
    garbage = target.clone()
    garbage[~valid[:, None]] = float("nan")
    got = soft_dice_loss(logits, garbage, valid)
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)
    got.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[~valid[:, None]].abs().sum() == 0


def test_soft_dice_relation_to_smp():
    import segmentation_models_pytorch as smp
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(3, 1, 16, 16, generator=g)
    target = (torch.rand(3, 1, 16, 16, generator=g) > 0.7).float()
    for eps in (1.0, 0.2):
        theirs = smp.losses.DiceLoss("binary", from_logits=True, smooth=eps / 2, eps=0.0)(logits, target)
        assert soft_dice_loss(logits, target, eps=eps).item() == pytest.approx(theirs.item(), rel=1e-5)
    # where they differ by design: smp gives 0 for a batch without positives
    empty = torch.zeros_like(target)
    assert smp.losses.DiceLoss("binary", smooth=0.5)(logits, empty).item() == 0.0
    assert soft_dice_loss(logits, empty).item() > 0.5
