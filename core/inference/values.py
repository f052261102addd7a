"""Output values: reflectance back to the input's units and dtype, nodata kept apart.

Shared by the file pipelines and by evaluation, which quantises its in-memory
output the same way so it scores the very values the plugin writes.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..io.radiometry import Radiometry

__all__ = ["to_output_dtype", "nodata_candidate", "quantize_reflectance"]


def to_output_dtype(values: np.ndarray, dtype: np.dtype, nodata: Optional[float]) -> np.ndarray:
    """Round and clip to an integer dtype, keeping valid pixels off the nodata value (in place when possible)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    info = np.iinfo(dtype)
    bad = ~np.isfinite(values)  # a network that emits NaN must not write garbage integers
    out = np.rint(values, out=values)
    out[bad] = 0
    np.clip(out, info.min, info.max, out=out)
    if nodata is not None and np.isfinite(nodata):
        nudge = 1 if nodata < info.max else -1
        out[out == nodata] = nodata + nudge
        out[bad] = nodata
    return out.astype(dtype)


def nodata_candidate(dtype: np.dtype, given: Optional[float]) -> float:
    """The input's nodata value, else one the dtype can hold: 0 unsigned, the minimum signed, NaN float."""
    if given is not None:
        return given
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return float("nan")
    if np.issubdtype(dtype, np.unsignedinteger):
        return 0
    return int(np.iinfo(dtype).min)


def quantize_reflectance(refl: np.ndarray, radiometry: Radiometry, dtype: np.dtype,
                         nodata: Optional[float]) -> np.ndarray:
    """Reflectance -> stored values (as written) -> reflectance: what a reader of the output gets back."""
    stored = to_output_dtype(radiometry.from_reflectance(refl.astype(np.float32, copy=True), inplace=True),
                             np.dtype(dtype), nodata)
    return radiometry.to_reflectance(stored.astype(np.float32))
