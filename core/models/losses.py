"""Training losses: shift- and bias-tolerant cL1 / cMSE, the LR consistency cL1, soft Dice.

Why shift-tolerant: the HR reference (WorldView-2 in MuS2, or the simulation's
HR image) is never registered to the SR output to the pixel, and its radiometry
differs by a constant offset. Following the PROBA-V / RAMS convention, the SR
image loses a border of ``b`` pixels, the HR image slides over it by
``(u, v)`` in ``0..2b``, the mean difference (bias) over clear pixels is removed,
and the best of the ``(2b+1)^2`` alignments is kept *per sample*. The minimum is
differentiable almost everywhere: the gradient flows through the chosen shift.

Normalisation follows the official RAMS loss: at each shift the bias and the
error are means over the clear pixels *of that shift* (sum / count of clear
pixels), not over the whole crop. Shifts without any clear pixel are excluded;
a sample with no clear pixel at any shift carries no information and is left
out of the batch mean (so one cloudy patch cannot produce a NaN).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

__all__ = [
    "shift_errors",
    "reduce_best_shift",
    "cl1",
    "cmse",
    "consistency_l1",
    "soft_dice_loss",
    "DEFAULT_MAX_ELEMENTS",
]

# Above this many elements per shift-stack temporary, shifts are processed in
# chunks; the result is identical, only peak memory changes.
DEFAULT_MAX_ELEMENTS = 1 << 24


def _as_mask(mask: Optional[Tensor], like: Tensor, name: str) -> Optional[Tensor]:
    """A ``[B, H, W]`` bool mask from ``[B,H,W]`` / ``[B,1,H,W]`` bool, int or float (> 0.5 is clear)."""
    if mask is None:
        return None
    mask = torch.as_tensor(mask, device=like.device)
    if mask.dim() == like.dim() and mask.shape[1] == 1:
        mask = mask[:, 0]
    expected = (like.shape[0], like.shape[-2], like.shape[-1])
    if tuple(mask.shape) != expected:
        raise ValueError(f"{name} mask has shape {tuple(mask.shape)}, expected {expected} to match the image")
    if mask.dtype != torch.bool:
        mask = mask > 0.5
    return mask


def _check_pair(sr: Tensor, hr: Tensor, border: int) -> None:
    if sr.dim() != 4 or hr.dim() != 4:
        raise ValueError(f"expected [B, C, H, W] images, got SR {tuple(sr.shape)} and reference {tuple(hr.shape)}")
    if sr.shape != hr.shape:
        raise ValueError(f"SR {tuple(sr.shape)} and reference {tuple(hr.shape)} must have the same shape")
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if sr.shape[-2] <= 2 * border or sr.shape[-1] <= 2 * border:
        raise ValueError(f"images of {sr.shape[-2]}x{sr.shape[-1]} px are too small for a border of {border} px")


def _stack_errors(hr_views: Tensor, m_views: Tensor, src: Tensor, power: int) -> Tensor:
    """Bias-corrected error for a stack of shifts.

    ``hr_views [B,C,U,V,h,w]`` (zero where not clear), ``m_views [B,1,U,V,h,w]``
    float clear mask, ``src [B,C,1,1,h,w]`` (zero where not clear on the SR side).
    Returns ``[B,U,V]`` with +inf where a shift has no clear pixel.
    """
    channels = hr_views.shape[1]
    m = m_views
    diff = (hr_views - src) * m  # zero outside the clear pixels
    count = m.sum(dim=(-2, -1))  # [B,1,U,V]
    safe = count.clamp_min(1.0)
    beta = diff.sum(dim=(-2, -1)) / safe  # per-channel bias [B,C,U,V]
    resid = (diff - beta[..., None, None]) * m
    err = resid.abs() if power == 1 else resid.square()
    err = err.sum(dim=(-2, -1)).sum(dim=1) / (channels * safe[:, 0])  # [B,U,V]
    return torch.where(count[:, 0] > 0, err, torch.full_like(err, float("inf")))


def shift_errors(
    sr: Tensor,
    hr: Tensor,
    valid: Optional[Tensor] = None,
    border: int = 3,
    power: int = 1,
    sr_valid: Optional[Tensor] = None,
    vectorize: Optional[bool] = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    """Per-sample, per-shift bias-corrected error ``[B, 2b+1, 2b+1]`` (entry ``[:, u, v]``).

    ``HRc = hr[..., u:u+H-2b, v:v+W-2b]`` is compared with ``SRc = sr[..., b:H-b, b:W-b]``;
    clear pixels are ``valid`` cropped like ``HRc`` (and ``sr_valid`` cropped like
    ``SRc``); non-finite reference pixels are never clear. The bias is computed per
    channel; the error is averaged over channels and clear pixels (``power`` 1: L1,
    2: squared). A shift with no clear pixel gets +inf.

    ``vectorize``: evaluate all shifts at once on strided views of the reference
    (``Tensor.unfold``; rows of shifts when the stack would exceed ``max_elements``)
    instead of one shift at a time. Both give the same numbers. Default (None): one
    shift at a time on the CPU, where it measured 2-8x faster than the stack
    (batch 32 of 96x96: ~75 ms against ~210-730 ms forward + backward on 2 cores;
    the 6-D strided temporaries defeat PyTorch's CPU kernels and caches), and the
    stack on accelerators, where 49 rounds of small kernel launches would dominate.
    """
    if power not in (1, 2):
        raise ValueError(f"power must be 1 (L1) or 2 (squared error), got {power}")
    _check_pair(sr, hr, border)
    b = border
    B, C, H, W = hr.shape
    h, w = H - 2 * b, W - 2 * b
    n = 2 * b + 1
    clear = torch.isfinite(hr).all(dim=1)
    v_hr = _as_mask(valid, hr, "valid")
    if v_hr is not None:
        clear = clear & v_hr
    hr0 = torch.where(clear[:, None], hr, torch.zeros((), dtype=hr.dtype, device=hr.device))
    src = sr[..., b : H - b, b : W - b]
    m_sr: Optional[Tensor] = None
    v_sr = _as_mask(sr_valid, sr, "sr_valid")
    if v_sr is not None:
        crop = v_sr[:, b : H - b, b : W - b]
        src = torch.where(crop[:, None], src, torch.zeros((), dtype=src.dtype, device=src.device))
        m_sr = crop.to(hr.dtype)[:, None]  # [B,1,h,w]
    mf = clear.to(hr.dtype)[:, None]  # [B,1,H,W]

    if vectorize is None:
        vectorize = sr.device.type != "cpu"
    if not vectorize:
        errs = []
        for u in range(n):
            for v in range(n):
                m = mf[..., u : u + h, v : v + w]
                if m_sr is not None:
                    m = m * m_sr
                hv = hr0[..., u : u + h, v : v + w]
                errs.append(_stack_errors(hv[:, :, None, None], m[:, :, None, None], src[:, :, None, None], power))
        return torch.cat(errs, dim=2).reshape(B, n, n)

    hr_views = hr0.unfold(2, h, 1).unfold(3, w, 1)  # [B,C,n,n,h,w], a view
    m_views = mf.unfold(2, h, 1).unfold(3, w, 1)  # [B,1,n,n,h,w]
    if m_sr is not None:
        m_views = m_views * m_sr[:, :, None, None]
    src6 = src[:, :, None, None]
    rows_at_once = max(1, max_elements // max(1, B * C * n * h * w))
    if rows_at_once >= n:
        return _stack_errors(hr_views, m_views, src6, power)
    return torch.cat(
        [
            _stack_errors(hr_views[:, :, u : u + rows_at_once], m_views[:, :, u : u + rows_at_once], src6, power)
            for u in range(0, n, rows_at_once)
        ],
        dim=1,
    )


def reduce_best_shift(errors: Tensor, reduction: str = "mean") -> Tensor:
    """Minimum over shifts per sample, then the batch reduction.

    Samples without any clear pixel (all shifts +inf) contribute 0 to ``"none"``
    and ``"sum"`` and are not counted in ``"mean"``; an all-empty batch gives 0
    (still attached to the graph so ``backward()`` works).
    """
    best = errors.flatten(1).min(dim=1).values  # [B]
    empty = torch.isinf(best)
    best = torch.where(empty, torch.zeros_like(best), best)
    if reduction == "none":
        return best
    if reduction == "sum":
        return best.sum()
    if reduction == "mean":
        n_clear = (~empty).sum().clamp_min(1)
        return best.sum() / n_clear
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cl1(
    sr: Tensor,
    hr: Tensor,
    valid: Optional[Tensor] = None,
    border: int = 3,
    reduction: str = "mean",
    sr_valid: Optional[Tensor] = None,
) -> Tensor:
    """Bias-corrected L1 at the best of the ``(2b+1)^2`` shifts, per sample (RAMS / PROBA-V).

    ``sr``, ``hr``: ``[B, C, H, W]``; ``valid``: HR clear mask ``[B, H, W]`` (bool or
    float); ``sr_valid``: optional SR-side clear mask. Invalid pixels may hold
    anything (NaN included): they are selected out, never multiplied in.
    """
    return reduce_best_shift(shift_errors(sr, hr, valid, border, 1, sr_valid), reduction)


def cmse(
    sr: Tensor,
    hr: Tensor,
    valid: Optional[Tensor] = None,
    border: int = 3,
    reduction: str = "mean",
    sr_valid: Optional[Tensor] = None,
) -> Tensor:
    """Bias-corrected MSE at the best shift, per sample; see :func:`cl1`."""
    return reduce_best_shift(shift_errors(sr, hr, valid, border, 2, sr_valid), reduction)


def consistency_l1(
    sr: Tensor,
    lr_ref: Tensor,
    lr_valid: Optional[Tensor],
    degradation: nn.Module,
    border: int = 1,
    reduction: str = "mean",
) -> Tensor:
    """cL1 between ``degradation(sr)`` and the LR reference frame: needs no HR image.

    ``degradation`` maps ``[B,C,H,W] -> [B,C,H/s,W/s]`` (the simulation operator,
    :class:`core.data.degrade.Degradation`); it is passed in so this module does not
    depend on the data package. ``lr_ref``: ``[B,C,h,w]`` or ``[B,h,w]``;
    ``lr_valid``: ``[B,h,w]`` or None.

    Border reading: the HR loss tolerates 3 HR px = 1 LR px of misregistration, so
    on the LR grid the border is 1 and shifts run over 0..2 (a 3x3 search), the
    same physical tolerance.
    """
    if lr_ref.dim() == 3:
        lr_ref = lr_ref[:, None]
    lr_sr = degradation(sr)
    if lr_sr.shape != lr_ref.shape:
        raise ValueError(
            f"the degraded SR output has shape {tuple(lr_sr.shape)} but the LR reference frame has "
            f"{tuple(lr_ref.shape)}; check the scale of the degradation operator"
        )
    return cl1(lr_sr, lr_ref, lr_valid, border=border, reduction=reduction)


def soft_dice_loss(logits: Tensor, target: Tensor, valid: Optional[Tensor] = None, eps: float = 1.0) -> Tensor:
    """``1 - (2 sum(p g) + eps) / (sum(p) + sum(g) + eps)`` with ``p = sigmoid(logits)``.

    One global Dice over the whole batch and all valid pixels (not a mean of
    per-image Dice), so patches without any object still count: predicting
    objects there raises the loss. Relation to ``smp.losses.DiceLoss("binary")``:
    for 0/1 targets with at least one positive in the batch, this equals smp's loss
    with ``smooth = eps / 2`` (smp adds ``smooth`` to the intersection, i.e. twice in
    the numerator); smp returns 0 when the batch has no positive pixel, this loss
    does not. ``valid`` (``[B,H,W]`` or ``[B,1,H,W]``) drops pixels from every sum;
    invalid target pixels may hold anything.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape")
    p = torch.sigmoid(logits)
    g = target.to(p.dtype)
    if valid is not None:
        v = torch.as_tensor(valid, device=p.device)
        if v.dim() == p.dim() - 1:
            v = v.unsqueeze(1)
        if v.dtype != torch.bool:
            v = v > 0.5
        v = v.expand_as(p)
        zero = torch.zeros((), dtype=p.dtype, device=p.device)
        p = torch.where(v, p, zero)
        g = torch.where(v, g, zero)
    inter = (p * g).sum()
    return 1.0 - (2.0 * inter + eps) / (p.sum() + g.sum() + eps)
