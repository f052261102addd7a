"""Seasons of the synthetic world: crop calendars, mowing, leaf-on and water level by day of year.

Why: real revisits differ from each other and from the HR image mostly
because the land itself changes (a cereal field is green in May, golden in
July, stubble in August and bare soil in September; a meadow is mown; oaks
leaf out in May). The renderer mixes per-pixel end-member spectra (green
canopy, dry material, flowers, soil) with the fractions given here, so one
scene can be drawn on any date cheaply.

Calendars are keyframes (day of year, green fraction, dry fraction, flower
fraction) for central European lowlands (around 50 deg N), interpolated
linearly; every parcel shifts its calendar by a few days and scales its green
peak, so neighbouring fields of one crop are never identical.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

__all__ = ["CALENDARS", "CALENDAR_IDS", "fractions", "leaf_on", "autumn", "MOWN_CALENDARS"]

Key = Tuple[int, float, float, float]  # doy, green, dry, flower

_WINTER_CEREAL: List[Key] = [
    (1, 0.18, 0.05, 0), (70, 0.22, 0.05, 0), (105, 0.55, 0.02, 0), (135, 0.90, 0.0, 0), (165, 0.85, 0.08, 0),
    (185, 0.40, 0.52, 0), (203, 0.08, 0.86, 0), (206, 0.03, 0.62, 0),  # harvest: stubble
    (232, 0.06, 0.45, 0), (240, 0.01, 0.06, 0),  # ploughed
    (270, 0.00, 0.02, 0), (290, 0.10, 0.02, 0), (330, 0.22, 0.03, 0), (366, 0.18, 0.05, 0),
]
_SPRING_CEREAL: List[Key] = [
    (1, 0.02, 0.10, 0), (95, 0.0, 0.05, 0), (112, 0.08, 0.0, 0), (145, 0.65, 0.0, 0), (172, 0.90, 0.02, 0),
    (198, 0.50, 0.45, 0), (215, 0.12, 0.82, 0), (220, 0.03, 0.60, 0), (255, 0.10, 0.40, 0), (265, 0.02, 0.05, 0),
    (366, 0.02, 0.08, 0),
]
_MAIZE: List[Key] = [
    (1, 0.0, 0.20, 0), (100, 0.0, 0.08, 0), (125, 0.0, 0.0, 0), (150, 0.06, 0.0, 0), (172, 0.35, 0.0, 0),
    (195, 0.88, 0.0, 0), (245, 0.85, 0.05, 0), (268, 0.45, 0.40, 0), (283, 0.15, 0.60, 0),
    (286, 0.02, 0.35, 0), (366, 0.0, 0.25, 0),
]
_RAPESEED: List[Key] = [
    (1, 0.35, 0.05, 0), (70, 0.40, 0.05, 0), (100, 0.80, 0.0, 0.0), (118, 0.55, 0.0, 0.40), (135, 0.45, 0.0, 0.50),
    (150, 0.80, 0.02, 0.05), (175, 0.55, 0.35, 0), (195, 0.15, 0.75, 0), (200, 0.03, 0.55, 0),
    (225, 0.10, 0.30, 0), (235, 0.02, 0.05, 0), (255, 0.25, 0.0, 0), (300, 0.50, 0.0, 0), (366, 0.38, 0.05, 0),
]
_ROOT_CROP: List[Key] = [  # sugar beet, potato
    (1, 0.0, 0.05, 0), (110, 0.0, 0.0, 0), (140, 0.05, 0.0, 0), (165, 0.45, 0.0, 0), (190, 0.92, 0.0, 0),
    (255, 0.85, 0.05, 0), (285, 0.55, 0.20, 0), (290, 0.02, 0.08, 0), (366, 0.0, 0.08, 0),
]
_MEADOW: List[Key] = [  # mown 2-3 times; the cuts are applied on top (see `fractions`)
    (1, 0.35, 0.35, 0), (80, 0.45, 0.25, 0), (120, 0.85, 0.05, 0), (200, 0.88, 0.05, 0), (290, 0.70, 0.15, 0),
    (366, 0.38, 0.32, 0),
]
_PASTURE: List[Key] = [
    (1, 0.40, 0.30, 0), (90, 0.55, 0.18, 0), (130, 0.86, 0.05, 0), (210, 0.80, 0.10, 0), (290, 0.68, 0.15, 0),
    (366, 0.42, 0.30, 0),
]
_FALLOW: List[Key] = [  # weedy set-aside, abandoned field, verges
    (1, 0.20, 0.45, 0), (100, 0.35, 0.35, 0), (150, 0.70, 0.15, 0), (200, 0.60, 0.30, 0), (260, 0.45, 0.40, 0),
    (366, 0.22, 0.45, 0),
]
_BARE: List[Key] = [(1, 0.0, 0.03, 0), (150, 0.03, 0.03, 0), (366, 0.02, 0.03, 0)]
_FOREST_FLOOR: List[Key] = [(1, 0.15, 0.55, 0), (120, 0.45, 0.25, 0), (180, 0.65, 0.15, 0), (290, 0.45, 0.35, 0), (366, 0.15, 0.55, 0)]
_WETLAND: List[Key] = [(1, 0.20, 0.55, 0), (110, 0.35, 0.40, 0), (165, 0.78, 0.12, 0), (240, 0.70, 0.20, 0), (300, 0.35, 0.50, 0), (366, 0.20, 0.55, 0)]
_GARDEN: List[Key] = [(1, 0.40, 0.20, 0), (110, 0.75, 0.05, 0), (200, 0.85, 0.05, 0), (290, 0.65, 0.12, 0), (366, 0.40, 0.20, 0)]
_CLEARCUT: List[Key] = [(1, 0.10, 0.45, 0), (120, 0.25, 0.40, 0), (180, 0.45, 0.30, 0), (280, 0.35, 0.40, 0), (366, 0.10, 0.45, 0)]

CALENDARS: Dict[str, List[Key]] = {
    "winter_cereal": _WINTER_CEREAL,
    "spring_cereal": _SPRING_CEREAL,
    "maize": _MAIZE,
    "rapeseed": _RAPESEED,
    "root_crop": _ROOT_CROP,
    "meadow": _MEADOW,
    "pasture": _PASTURE,
    "fallow": _FALLOW,
    "bare": _BARE,
    "forest_floor": _FOREST_FLOOR,
    "wetland": _WETLAND,
    "garden": _GARDEN,
    "clearcut": _CLEARCUT,
}
CALENDAR_IDS: Dict[str, int] = {name: i for i, name in enumerate(CALENDARS)}
#: Calendars whose parcels are cut (hay) on their own dates.
MOWN_CALENDARS = ("meadow",)

_TABLES = [np.asarray(CALENDARS[name], np.float64) for name in CALENDARS]


def fractions(
    calendar: np.ndarray, doy: float, shift: np.ndarray, amp: np.ndarray, cuts: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Green, dry and flower fractions per unit (parcel) on day ``doy``.

    ``calendar``: [U] ids (:data:`CALENDAR_IDS`); ``shift``: [U] days added to the
    calendar; ``amp``: [U] factor on the green fraction; ``cuts``: [U, k] mowing
    days (NaN = none): after a cut the green fraction drops and grows back over
    about three weeks, and the cut grass lies as hay for a few days.
    """
    u = calendar.shape[0]
    g = np.zeros(u, np.float64)
    d = np.zeros(u, np.float64)
    f = np.zeros(u, np.float64)
    for cid, table in enumerate(_TABLES):
        idx = np.flatnonzero(calendar == cid)
        if idx.size == 0:
            continue
        t = np.clip(doy - shift[idx], 1.0, 366.0)
        g[idx] = np.interp(t, table[:, 0], table[:, 1])
        d[idx] = np.interp(t, table[:, 0], table[:, 2])
        f[idx] = np.interp(t, table[:, 0], table[:, 3])
    g = g * amp
    if cuts.size:
        since = doy - cuts  # [U, k]
        after = np.where(np.isfinite(since) & (since >= 0), since, np.inf)
        recent = after.min(axis=1)
        hit = np.isfinite(recent)
        loss = np.where(hit, 0.62 * np.exp(-recent / 14.0), 0.0)
        hay = np.where(hit & (recent < 6.0), 0.45 * (1.0 - recent / 6.0), 0.0)
        g = g * (1.0 - loss)
        d = np.maximum(d, hay)
    total = g + d + f
    over = total > 1.0
    if over.any():
        g[over], d[over], f[over] = g[over] / total[over], d[over] / total[over], f[over] / total[over]
    return g.astype(np.float32), d.astype(np.float32), f.astype(np.float32)


def _logistic(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def leaf_on(doy: float, shift: float = 0.0) -> float:
    """Share of full foliage of broadleaf trees (bud burst early May, leaf fall late October)."""
    t = doy - shift
    return _logistic((t - 122.0) / 6.0) * (1.0 - _logistic((t - 292.0) / 8.0))


def autumn(doy: float, shift: float = 0.0) -> float:
    """Share of yellowed foliage among the leaves still on (peaks mid October)."""
    return float(np.exp(-0.5 * ((doy - shift - 285.0) / 13.0) ** 2))
