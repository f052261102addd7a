"""Stored values <-> reflectance: the rule each input band follows, and why it was chosen.

Why a module of its own: every reader (plain rasters, S-2 products, revisit
stacks) and every writer (outputs keep their input's units) needs the same
linear map, and the analyst needs to be told which rule applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import numpy as np

from ..jobs import InputError

__all__ = ["S2_DN_SCALE", "Radiometry", "ImplausibleRadiometry", "check_plausible", "detect_radiometry",
           "radiometry_notes"]

#: Sentinel-2 L1C/L2A digital numbers are reflectance x 10000.
S2_DN_SCALE = 1e-4


#: Largest |scale| and |offset| a raster's metadata may give: reflectance lies near 0..1, so a value -> reflectance
#: map beyond these turns every pixel into nonsense (a quantification of 1e-300 gives scale 1e+300).
PLAUSIBLE_SCALE = (1e-9, 10.0)
PLAUSIBLE_OFFSET = 10.0


class ImplausibleRadiometry(InputError):
    """A product's or raster's quantification, scale or offset cannot be right: that one input is refused.

    A stack drops the date that carries it (with this message) instead of
    letting its NaN or huge values poison the shared radiometry of every date.
    """


def check_plausible(scale: float, offset: float, where: str) -> None:
    """Refuse a scale/offset read from a file when it is not finite or far outside any reflectance convention.

    A NaN offset made every pixel invalid with no error (0 valid pixels written,
    exit status 0); checking here, before any pixel is read, turns it into one line.
    """
    low, high = PLAUSIBLE_SCALE
    if not (math.isfinite(scale) and math.isfinite(offset)) or not low <= scale <= high \
            or abs(offset) > PLAUSIBLE_OFFSET:
        raise ImplausibleRadiometry(
            f"{where}: scale {scale:g} and offset {offset:g} in its metadata cannot map values to reflectance "
            f"(expected a finite scale of {low:g} to {high:g} and an offset within +/-{PLAUSIBLE_OFFSET:g}); "
            "fix them, e.g. with gdal_edit.py -scale and -offset")


@dataclass(frozen=True)
class Radiometry:
    """Linear map between stored values and reflectance: ``reflectance = value * scale + offset``."""

    scale: float = 1.0
    offset: float = 0.0
    source: str = "values taken as reflectance"

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.offset == 0.0

    def to_reflectance(self, values: np.ndarray) -> np.ndarray:
        if self.scale == 1.0 and self.offset == 0.0:
            return values
        return values * np.float32(self.scale) + np.float32(self.offset)

    def from_reflectance(self, refl: np.ndarray, inplace: bool = False) -> np.ndarray:
        if self.scale == 1.0 and self.offset == 0.0:
            return refl
        if not inplace:
            return (refl - np.float32(self.offset)) / np.float32(self.scale)
        refl -= np.float32(self.offset)
        refl /= np.float32(self.scale)
        return refl


def detect_radiometry(ds, bidx: int, sample: np.ndarray, dtype: str) -> Radiometry:
    """Choose the value -> reflectance map of one band.

    Order: the raster's own scale/offset metadata when set; else integer values
    above 1.5 are taken as Sentinel-2 digital numbers (x 1e-4, the L1C/L2A
    convention); float values above 100 likewise (DN stored as float); anything
    else is taken as reflectance already. ``sample`` holds valid values from a
    decimated read.
    """
    scale = float(ds.scales[bidx - 1]) if ds.scales else 1.0
    offset = float(ds.offsets[bidx - 1]) if ds.offsets else 0.0
    if (scale, offset) != (1.0, 0.0):
        check_plausible(scale, offset, f"{str(getattr(ds, 'name', 'the raster')).rsplit('/', 1)[-1]} band {bidx}")
        return Radiometry(scale, offset, f"scale {scale:g} and offset {offset:g} from the raster's metadata")
    high = float(np.percentile(sample, 99)) if sample.size else 0.0
    if np.issubdtype(np.dtype(dtype), np.integer) and high > 1.5:
        return Radiometry(S2_DN_SCALE, 0.0, "no scale metadata; integer values read as Sentinel-2 DN x 1e-4")
    if np.issubdtype(np.dtype(dtype), np.floating) and high > 100.0:
        return Radiometry(S2_DN_SCALE, 0.0, "no scale metadata; float values above 100 read as Sentinel-2 DN x 1e-4")
    return Radiometry()


def radiometry_notes(frames: Sequence[Any]) -> List[str]:
    """One line per way the frames' values were read (``frame.label``, ``frame.radiometry``), identity left out.

    Why grouped: nine revisits of four bands without scale metadata wrote 36
    identical "no scale metadata" lines into the log of every run (issue 21);
    now it is one line naming how many frames and the first of them.
    """
    groups: Dict[str, List[str]] = {}
    for frame in frames:
        if not frame.radiometry.is_identity:
            groups.setdefault(frame.radiometry.source, []).append(frame.label)
    notes = []
    for source, labels in groups.items():
        if len(labels) == 1:
            notes.append(f"{labels[0]}: {source}")
        else:
            shown = ", ".join(labels[:2]) + (f" ... {labels[-1]}" if len(labels) > 2 else "")
            notes.append(f"{len(labels)} frames ({shown}): {source}")
    return notes
