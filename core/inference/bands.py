"""Which input frames are which band of which date, arranged as the network takes them.

Why: an analyst's inputs come as single-band revisits, one raster whose bands
are dates, a 4-band export of one date, or a revisit stack holding every band
of every date (``B02_2023-05-01``...). A one-band network sees one frame per
date; a 4-band network (B02, B03, B04, B08 jointly) needs, for every date, its
four bands in the order the card names. This module builds that arrangement
from band names (descriptions, else file names) and refuses clearly when a
band is missing, instead of feeding the network a band it was not trained on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..io.sentinel2 import NOMINAL_WAVELENGTH_NM, canonical_band
from ..jobs import InputError
from .loading import LoadedModel

__all__ = ["canonical_band", "frames_by_date", "band_of_frame", "BandGroups", "group_frames",
           "band_description"]

_DATE_RE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")


def band_of_frame(frame) -> Optional[str]:
    """The S-2 band a frame holds: from its band description, else from its file name."""
    return canonical_band(frame.description) or canonical_band(Path(frame.path).stem)


def _date_of(frame) -> str:
    """A date key for a frame: the date in its description, else its file (one date per file)."""
    m = _DATE_RE.search(frame.description or "")
    if m:
        return "-".join(m.groups())
    return str(frame.path)


def frames_by_date(frames: Sequence[object]) -> Tuple[Dict[str, Dict[str, object]], List[str]]:
    """``({date key: {band: frame}}, labels of frames without a band name)``; the first frame of a band wins.

    A date key is the date in the frame's description (a revisit stack), else
    its file (one date per file). Inference and the area workflows group
    revisits the same way through this one function.
    """
    by_date: Dict[str, Dict[str, object]] = {}
    unnamed: List[str] = []
    for f in frames:
        band = band_of_frame(f)
        if band is None:
            unnamed.append(f.label)
            continue
        by_date.setdefault(_date_of(f), {}).setdefault(band, f)
    return by_date, unnamed


@dataclass
class BandGroups:
    """Frames arranged as ``dates[t][c]`` (band c of date t), with names for messages and tags."""

    dates: List[List[object]]
    labels: List[str]
    band_names: List[str]

    @property
    def channels(self) -> int:
        return len(self.band_names)

    @property
    def wavelengths(self) -> List[Optional[float]]:
        return [NOMINAL_WAVELENGTH_NM.get(b) for b in self.band_names] if any(
            b in NOMINAL_WAVELENGTH_NM for b in self.band_names) else []

    def valid_fractions(self) -> List[float]:
        """Per date, the valid share of its least valid band (a date's bands share its clouds)."""
        return [min(f.valid_fraction for f in group) for group in self.dates]

    def fallback(self, fractions: Sequence[float]) -> List[float]:
        """Per band, the reflectance that fills pixels no date saw: the dates' means weighted by clarity."""
        w = np.maximum(np.asarray(fractions, dtype=np.float64), 1e-9)
        return [float(np.average([group[c].mean_reflectance for group in self.dates], weights=w))
                for c in range(self.channels)]


def group_frames(frames: Sequence[object], loaded: LoadedModel, all_bands: bool) -> BandGroups:
    """Arrange the frames read from the inputs for ``loaded``'s network.

    Without ``all_bands`` every frame is one date of the one band the network
    takes (the band the user picked). With it, the network must take the four
    10 m bands jointly and each date must provide all of them; frames are
    matched to bands by name and to dates by the date in their description (a
    revisit stack) or their file (one export per date).
    """
    if not all_bands:
        if loaded.channels != 1:
            raise InputError(
                f"{loaded.source}: takes {loaded.channels} bands jointly ({', '.join(loaded.bands)}); choose "
                "'all 10 m bands' (--all-bands) and give rasters holding them")
        name = band_of_frame(frames[0]) or (canonical_band(loaded.bands[0]) if len(loaded.bands) == 1 else None)
        return BandGroups([[f] for f in frames], [f.label for f in frames], [name or ""])
    wanted = [canonical_band(b) or b for b in loaded.bands]
    if loaded.channels == 1 or len(wanted) < 2:
        raise InputError(
            f"{loaded.source}: super-resolves one band ({', '.join(loaded.bands) or 'unnamed'}); all four 10 m "
            "bands at once need a 4-band checkpoint (its card lists B02, B03, B04, B08)")
    by_date, unnamed = frames_by_date(frames)
    if not by_date:
        raise InputError(
            "no input band is named (B02, B03, B04, B08...): name the bands in the raster's band descriptions, "
            "or build the input with `python -m core.cli export` / `stack` from a Sentinel-2 product"
            + (f" (unnamed: {', '.join(unnamed[:4])})" if unnamed else ""))
    dates, labels = [], []
    for key, bands in by_date.items():
        missing = [b for b in wanted if b not in bands]
        if missing:
            raise InputError(
                f"{Path(key).name if '/' in key else key}: band(s) {', '.join(missing)} missing; the network takes "
                f"{', '.join(wanted)} of every date (found {', '.join(sorted(bands))})")
        dates.append([bands[b] for b in wanted])
        labels.append(key if "/" not in key else Path(key).name)
    return BandGroups(dates, labels, wanted)


def band_description(band: str, fallback: str, scale: int) -> str:
    """Band description of an SR output: the S-2 band name when known, else what the input said."""
    return band if band else f"SR x{scale} {fallback}"
