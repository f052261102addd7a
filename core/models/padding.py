"""Padding helpers shared by the networks.

The networks accept any image size (see docs/interfaces.md) although their
internals need sizes that are multiples of a window or of the encoder stride.
They pad inside and crop back. Reflection is preferred because it keeps local
statistics (a zero border would look like a dark field to the network), but
reflection cannot pad by as much as the side itself, so tiny inputs fall back
to edge replication instead of failing.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["safe_reflect_pad", "pad_to_multiple"]


def safe_reflect_pad(x: torch.Tensor, pad: Sequence[int]) -> torch.Tensor:
    """``F.pad(x, pad, mode="reflect")`` that replicates where reflection is impossible.

    ``pad`` follows ``F.pad`` (last dimension first, (before, after) pairs).
    Reflection needs every pad smaller than the side it pads; when one is not,
    the whole tensor is padded by replication (deterministic, size-independent).
    """
    pad = [int(p) for p in pad]
    if not any(pad):
        return x
    sides = [x.shape[-1 - i // 2] for i in range(len(pad))]
    mode = "reflect" if all(p < s for p, s in zip(pad, sides)) else "replicate"
    return F.pad(x, pad, mode=mode)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of ``x [..., H, W]`` up to multiples of ``multiple``.

    Padding only after the image keeps pixel (0, 0) in place, so cropping back
    is a plain slice ``[..., :H, :W]`` (times the scale for SR outputs).
    """
    h, w = x.shape[-2:]
    ph = (-h) % multiple
    pw = (-w) % multiple
    return safe_reflect_pad(x, (0, pw, 0, ph))
