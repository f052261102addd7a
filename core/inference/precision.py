"""The number format a network runs in: fp32, or bf16/fp16 where the hardware does them natively.

Why: segmenting the 3.33 m output is half of a full tile's time
(``bench/bench_full_tile.py``), and the two UNet++ networks already run near
the CPU's fp32 peak. CPUs with AVX512-BF16 or AMX (and every recent GPU)
multiply bf16 at about twice the fp32 rate: oneDNN's bf16 convolutions halve
the segmentation networks' time on such a CPU. The masks are thresholded
probabilities, so bf16's ~3 significant digits change only pixels that sit on
the threshold (measured in ``docs/results/precision.md``).

Super-resolution stays in fp32 by default: its output is reflectance the
analyst measures, and RAMS gains nothing from bf16 on the CPU.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, List, Optional

import torch

from ..options import PRECISIONS

__all__ = ["PRECISIONS", "choose_precision", "cpu_has_native_bf16", "autocast_for"]



def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX): only then is bf16 faster than fp32."""
    cpu = getattr(torch, "cpu", None)
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        probe = getattr(cpu, name, None)
        try:
            if callable(probe) and probe():
                return True
        except RuntimeError:  # a torch build without the probe's backend
            continue
    return False


def choose_precision(asked: Optional[str], device: torch.device, messages: List[str]) -> Optional[torch.dtype]:
    """The autocast dtype for ``asked`` on ``device`` (None: plain fp32), with a message when it differs.

    ``bf16`` asked on a CPU without native bf16 runs in fp32 (emulated bf16 is
    slower than fp32) and says so; on CUDA ``auto`` is bf16 where the GPU has
    it, else fp16.
    """
    asked = (asked or "auto").lower()
    if asked not in PRECISIONS:
        raise ValueError(f"precision: one of {', '.join(PRECISIONS)} (got {asked!r})")
    if asked == "fp32":
        return None
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if asked == "bf16":
            messages.append("this GPU has no bf16: running the segmentation networks in fp16")
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    if asked == "bf16":
        messages.append("bf16 was asked for but this CPU has no native bf16 (AVX512-BF16 or AMX), where it is "
                        "slower than fp32: running in fp32")
    return None


def autocast_for(dtype: Optional[torch.dtype], device: torch.device) -> ContextManager:
    """Autocast to ``dtype`` on ``device``'s type, or nothing for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
