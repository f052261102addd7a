"""What an input is beyond its band and pixel: its processing level, and what its 10 m bands show (snow, cloud, haze).

Why a module of its own: the shipped networks learned world v2's surface
reflectance. On real L1C (top of atmosphere) the path radiance -- strongest in
B02 -- makes every field as bright in blue as world v2's asphalt, and the road
network flags 77-91 % of object-free land (docs/results/real_scenes.md); on snow
it flags 74-99 %. Nothing in the output shows that the input was the cause, so
the check line must say it before the run. Everything here is a pure function
of tags and of a decimated reflectance sample, cheap enough to redraw the
dock's check line on every change.

* **Level** (:func:`raster_level`): from the product a band file sits in, our
  export and stack tags (``S2_LEVEL``; ``STACK_LEVELS`` per date), GDAL's product
  metadata, product-like names; an SR output carries its input's ``S2_LEVEL``.
  A plain raster with none of these is *unknown*.
* **Snow and thick cloud** (:func:`snow_cloud_mask`): without SCL (L1C, plain
  rasters), a pixel bright in blue and spectrally flat across B02-B04 with a
  low NDVI is snow or thick cloud.
* **Haze / path radiance** (:func:`dark_object`): the darkest pixels of a scene
  (water, shade, dense forest) reflect 0.01-0.03 at the surface in B02; what a
  scene's darkest blue reads above that is atmosphere, and Rayleigh scattering
  (~lambda^-4) puts ~9x more of it in B02 than in B08.
* **Statistics** (:func:`check_statistics`): the input's per-band median
  against the p2-p98 range of the scenes a network was trained on (its card).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from rasterio.vrt import WarpedVRT

from .check_types import Check
from .radiometry import detect_radiometry
from .rasters import open_raster
from .s2_metadata import product_of_band_file

__all__ = [
    "LEVEL_WORDS",
    "SNOW_B02_MIN",
    "SNOW_FLATNESS_MIN",
    "SNOW_NDVI_MAX",
    "SNOW_WARN_SHARE",
    "DARK_PERCENTILE",
    "HAZE_B02_MIN",
    "HAZE_B02_B08_RATIO",
    "raster_level",
    "level_of_tags",
    "snow_cloud_mask",
    "is_snowy_scene",
    "dark_object",
    "band_statistics",
    "check_level",
    "check_snow_cloud",
    "check_haze",
    "check_statistics",
    "spectral_signs",
    "input_level",
    "sign_checks",
]

#: What each processing level's pixels are, in the analyst's words.
LEVEL_WORDS: Mapping[str, str] = {"L1C": "top-of-atmosphere reflectance", "L2A": "surface reflectance",
                                  "L1C+L2A": "top-of-atmosphere and surface reflectance"}

#: Snow and thick cloud: B02 at least this bright. Fresh and old snow reflect 0.6-0.95 in the visible, thick
#: cloud 0.4-0.9 (top of atmosphere); bare soil, sand and concrete stay below ~0.25 in B02 even with L1C's
#: path radiance (+0.08-0.12 in B02 on the real L1C scenes), so 0.30 keeps them out.
SNOW_B02_MIN = 0.30
#: ... and flat across the visible: min(B02, B03, B04) / max(B02, B03, B04) at least this. Snow and cloud are
#: white (ratio 0.85-1); bright soils, sand and red roofs rise from blue to red (ratio 0.4-0.7).
SNOW_FLATNESS_MIN = 0.80
#: ... and no vegetation signal: NDVI (B08 - B04) / (B08 + B04) at most this (snow ~0 or below, cloud ~0).
SNOW_NDVI_MAX = 0.15
#: Share of the valid pixels that makes the check line warn (a few white roofs or greenhouses stay below it).
SNOW_WARN_SHARE = 0.05
#: A *snowy scene*: at least this share of the area passes the strict test above. Then snow also lies where
#: the strict test cannot see it: under and between trees, in shade and under a low winter sun, where a 10 m
#: pixel mixes canopy with snow (the real snowy Finnish L2A patch of docs/results/real_scenes.md: median
#: B02 0.30, NDVI 0.03-0.27). Such land is still lit from the snow, white-grey and only weakly green, so in a
#: snowy scene the relaxed thresholds below apply too. A snow-free city never reaches this share (concrete
#: and bright roofs fail B02 >= 0.30), so its grey roofs are never taken for snow.
SNOWY_SCENE_SHARE = 0.20
#: In a snowy scene: B02 at least this bright (snow-covered forest and shaded snow: 0.12-0.3; dark forest
#: and soil without snow stay below 0.06 at L2A, and their L1C haze is blue, not white, so flatness fails) ...
SNOWY_B02_MIN = 0.12
#: ... and at most this green (conifers over snow reach NDVI 0.2-0.3; a snow-free forest is above 0.6).
SNOWY_NDVI_MAX = 0.35
#: The dark object: this percentile of a band's valid pixels (Chavez's DOS takes the darkest ~0.1-1 %).
DARK_PERCENTILE = 0.5
#: Haze / path radiance: the darkest B02 above this. A surface's darkest blue (clear water, shade, conifer
#: forest) is 0.01-0.03 (the real L2A scene of docs/results/real_scenes.md: 0.022); the real L1C scenes read
#: 0.09 (Virginia, June) and 0.12 (Brandenburg, February), the additive offset that switched the road network
#: from ~0 % to ~80 % of object-free land. 0.06 sits halfway, above any surface and below clear-sky L1C.
HAZE_B02_MIN = 0.06
#: ... and blue-heavy: darkest B02 at least this many times darkest B08. Molecular (Rayleigh) scattering goes
#: as wavelength^-4, (842 / 490)^4 = 8.7, aerosol haze as ~wavelength^-1.3 (2.0); the real L1C scenes read
#: 2.8 and 4.4. A scene with no dark pixel at all (snowfield, desert) is as bright in B08 (ratio ~1 or below)
#: and is not haze.
HAZE_B02_B08_RATIO = 1.5
#: A median outside the training range [p2, p98] by more than this share of that range is "well outside".
STATS_MARGIN = 0.10

_LEVEL_IN_NAME_RE = re.compile(r"(?:MSI|Sentinel-2_)(L1C|L2A)(?![A-Za-z0-9])", re.I)


def level_of_tags(tags: Mapping[str, str]) -> Optional[str]:
    """The level a raster's tags name: ``S2_LEVEL`` (ours), GDAL's ``PROCESSING_LEVEL``/``PRODUCT_TYPE``, our
    stacks' per-date ``STACK_LEVELS`` (one level, or ``L1C+L2A`` when mixed); None when none does."""
    for key in ("S2_LEVEL", "PROCESSING_LEVEL", "PRODUCT_TYPE"):
        text = str(tags.get(key, "")).upper().replace("LEVEL-", "L").replace("S2MSI", "L")
        if text in LEVEL_WORDS:
            return text
    try:
        per_date = json.loads(tags.get("STACK_LEVELS", "") or "{}")
    except ValueError:
        per_date = {}
    found = sorted({str(v).upper() for v in per_date.values()} & {"L1C", "L2A"}) if isinstance(per_date, dict) \
        else []
    if found:
        return "+".join(found)
    m = _LEVEL_IN_NAME_RE.search(str(tags.get("PRODUCT_URI", "")))
    return m.group(1).upper() if m else None


def raster_level(path: Path, tags: Mapping[str, str], product_level: Optional[str] = None) -> Optional[str]:
    """The processing level of a raster (``L1C``, ``L2A``, ``L1C+L2A`` for a mixed stack), None when nothing says.

    From, in order: the product it sits in (``product_level``), its tags
    (:func:`level_of_tags`), a product-like or Sentinel Hub export name.
    """
    if product_level:
        return product_level
    found = level_of_tags(tags)
    if found:
        return found
    m = _LEVEL_IN_NAME_RE.search(Path(path).name)
    return m.group(1).upper() if m else None


# --------------------------------------------------------------------------- pixels


def snow_cloud_mask(b02: np.ndarray, b03: np.ndarray, b04: np.ndarray, b08: np.ndarray,
                    snowy_scene: bool = False) -> np.ndarray:
    """Pixels that look like snow or thick cloud in reflectance: bright in blue, white, not green.

    ``snowy_scene`` (see :data:`SNOWY_SCENE_SHARE`, :func:`is_snowy_scene`): the area is snow-covered, so
    land that is only fairly bright, white-grey and weakly green (snowy forest, shaded snow) counts too.
    """
    lo = np.minimum(np.minimum(b02, b03), b04)
    hi = np.maximum(np.maximum(b02, b03), b04)
    with np.errstate(invalid="ignore", divide="ignore"):
        flat = lo >= SNOW_FLATNESS_MIN * hi
        ndvi = (b08 - b04) / np.maximum(b08 + b04, 1e-6)
    if snowy_scene:
        return (b02 >= SNOWY_B02_MIN) & flat & (ndvi <= SNOWY_NDVI_MAX)
    return (b02 >= SNOW_B02_MIN) & flat & (ndvi <= SNOW_NDVI_MAX)


def is_snowy_scene(strict_share: Optional[float]) -> bool:
    """Whether an area whose strict snow/cloud share is ``strict_share`` is a snow-covered scene."""
    return strict_share is not None and strict_share >= SNOWY_SCENE_SHARE


def dark_object(values: np.ndarray) -> Optional[float]:
    """The dark-object value of a band (its :data:`DARK_PERCENTILE` percentile); None without pixels."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.percentile(v, DARK_PERCENTILE)) if v.size else None


def band_statistics(values: np.ndarray) -> Dict[str, float]:
    """p2 / p50 / p98 of a band's reflectance (what a card records of its training data)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return {}
    p2, p50, p98 = np.percentile(v, [2, 50, 98])
    return {"p2": round(float(p2), 5), "p50": round(float(p50), 5), "p98": round(float(p98), 5)}


# --------------------------------------------------------------------------- the checks


def _was(network: str) -> str:
    """The verb for a network's name ("hat_baseline was") or for several ("the networks were")."""
    return "were" if network.startswith("the networks") else "was"



#: What an SR network trained on surface reflectance alone does with top-of-atmosphere input: it draws no
#: objects itself (the segmentation networks do, and theirs is said at the segment step), so its warning
#: names what is measured: an output less faithful to its input (docs/results/real_scenes.md).
SR_ON_TOA = "its output is less certain: it never saw path radiance, which brightens every pixel, most in B02"


def check_level(level: Optional[str], label: str, trained: Optional[str] = None,
                network: str = "the network", pixels_judged: bool = False, sr: bool = False) -> Check:
    """Say the input's processing level; warn, saying what to do, when it is not the one the network learned.

    ``pixels_judged``: the haze check runs on these inputs (they hold B02 and
    B08), so an unknown level is still read from the pixels. ``sr``: the
    networks are super-resolution networks (they paint no objects themselves).
    """
    if level is None:
        against = f", so it cannot be compared with the {trained} {network} {_was(network)} trained on" if trained else ""
        tail = ("; the haze check reads from its pixels whether it looks like top of atmosphere (L1C)"
                if pixels_judged else "")
        return Check("ok", "level_unknown",
                     f"The processing level of {label} is not recorded (a plain raster){against}{tail}.")
    words = LEVEL_WORDS.get(level, level)
    if trained is None or trained == "L1C+L2A" or trained == level:
        tail = f", as {network} {_was(network)} trained on" if trained == level else ""
        return Check("ok", "level", f"{label} is {level} ({words}){tail}.")
    if level == "L1C" or (level == "L1C+L2A" and trained == "L2A"):
        what = (SR_ON_TOA if sr else
                "expect roads painted over bright land (path radiance brightens every pixel, most in B02)")
        return Check("warning", "level_mismatch",
                     f"{label} is {level} ({words}); {network} {_was(network)} trained on {trained} "
                     f"({LEVEL_WORDS.get(trained, trained)}): {what}; use the L2A product of this date, or a "
                     "network trained on L1C.")
    return Check("warning", "level_mismatch",
                 f"{label} is {level} ({words}); {network} {_was(network)} trained on {trained} "
                 f"({LEVEL_WORDS.get(trained, trained)}): its objects will be missed or misplaced (the surface is "
                 "darker, most in B02, than what it learned); use the L1C product of this date, or a network "
                 "trained on L2A.")


def networks_saw_snow(cards: Sequence[object]) -> bool:
    """Whether every network of a job was trained with simulated snow (its card's seasons); False for none."""
    return bool(cards) and all("snow" in getattr(c, "trained_seasons", []) for c in cards)


def check_snow_cloud(share: Optional[float], label: str, has_scl: bool = False,
                     saw_snow: bool = False) -> Optional[Check]:
    """Warn when a share of the area looks like snow or thick cloud (None: not judged, e.g. no B02-B04).

    ``saw_snow``: every network of the job was trained with simulated snow (its card's seasons); the
    warning stays (simulated snow is not real snow, and cloud was never shown) but says so.
    """
    if share is None:
        return None
    if share < SNOW_WARN_SHARE:
        return Check("ok", "snow_cloud", f"{label}: no snow or thick cloud seen in B02-B04 "
                                         f"({100 * share:.0f} % of the area).")
    source = "" if has_scl else " (no scene classification to mask it)"
    trained = ("The networks saw snow only in simulated seasons and may still paint roads and buildings on "
               "real snow" if saw_snow else "The networks were not trained on snow and paint roads and buildings "
               "on it")
    if is_snowy_scene(share):
        return Check("warning", "snow_cloud",
                     f"About {100 * share:.0f} % of {label} is bright snow or thick cloud{source}: a snow-covered "
                     f"scene. {trained}; choose a snow-free date (segmentation leaves the snow without objects, "
                     "also under trees and in shade, unless told not to).")
    trained = ("the networks saw snow only in simulated seasons and never saw cloud" if saw_snow
               else "the networks were not trained on snow or cloud")
    return Check("warning", "snow_cloud",
                 f"About {100 * share:.0f} % of {label} looks like snow or thick cloud{source}: {trained} and "
                 "may paint roads and buildings on it; choose a clear, snow-free date "
                 "(segmentation leaves them without objects unless told not to).")


def check_haze(dark_b02: Optional[float], dark_b08: Optional[float], label: str,
               level: Optional[str], trained: Optional[str] = None,
               network: str = "the networks", sr: bool = False) -> Optional[Check]:
    """Warn when the darkest blue pixels read like atmosphere (path radiance of L1C, or haze); None: not judged.

    A network trained with top-of-atmosphere inputs (``trained`` L1C or
    L1C+L2A) expects it: then it is said, not warned.
    """
    if dark_b02 is None or dark_b08 is None:
        return None
    hazy = dark_b02 >= HAZE_B02_MIN and dark_b02 >= HAZE_B02_B08_RATIO * max(dark_b08, 1e-4)
    reading = (f"its darkest blue (B02) pixels read {dark_b02:.3f} reflectance and its darkest B08 {dark_b08:.3f} "
               "(a surface's darkest blue: 0.01-0.03)")
    if not hazy:
        return Check("ok", "haze", f"{label}: no haze or path radiance seen ({reading}).")
    if level == "L1C":
        cause = "the atmosphere's path radiance of L1C"
    elif level in ("L2A",):
        cause = "haze or thin cloud over an L2A product"
    else:
        cause = "top-of-atmosphere (L1C-like) data or haze"
    if trained in ("L1C", "L1C+L2A"):
        return Check("ok", "haze", f"{label}: {reading}: {cause}, as {network} {_was(network)} trained with "
                                   f"({trained}).")
    if sr:
        return Check("warning", "haze", f"{label}: {reading}: {cause}; {network} {_was(network)} trained on clear "
                                        f"surface reflectance, so {SR_ON_TOA}; use an L2A product of a clear date.")
    return Check("warning", "haze",
                 f"{label}: {reading}: {cause}; the networks were trained on clear surface reflectance and paint "
                 "roads over land this bright in blue; use an L2A product of a clear date.")


def check_statistics(medians: Mapping[str, float], trained: Mapping[str, Mapping[str, float]], label: str,
                     network: str = "the network") -> Optional[Check]:
    """Warn when the input's per-band median lies well outside the p2-p98 its network was trained on.

    ``trained``: the card's ``input_stats`` (band -> p2/p50/p98); empty for older
    cards, which get no check (None).
    """
    if not trained or not medians:
        return None
    outside = []
    for band, med in medians.items():
        st = trained.get(band)
        if not st or not {"p2", "p98"} <= set(st):
            continue
        lo, hi = float(st["p2"]), float(st["p98"])
        margin = STATS_MARGIN * max(hi - lo, 1e-3)
        if med < lo - margin or med > hi + margin:
            outside.append(f"{band} median {med:.3f} (trained {lo:.3f}-{hi:.3f})")
    if not outside:
        return Check("ok", "statistics", f"{label}: band medians lie within what {network} {_was(network)} trained on.")
    return Check("warning", "statistics",
                 f"{label}: {'; '.join(outside)}: outside the reflectances {network} {_was(network)} trained on, so its output "
                 "is a guess there; check the level (L1C/L2A), the units and the season.")


def spectral_signs(bands: Mapping[str, Tuple[np.ndarray, np.ndarray]]) -> Tuple[Optional[float], Optional[float],
                                                                                 Optional[float], Dict[str, float]]:
    """From reflectance samples ``band -> (values, valid)`` on one grid: snow/cloud share, dark B02, dark B08
    and each band's median (None where the bands needed are absent)."""
    medians = {b: float(np.median(v[ok])) for b, (v, ok) in bands.items() if ok.any()}
    share = dark2 = dark8 = None
    if {"B02", "B03", "B04", "B08"} <= set(bands):
        valid = np.logical_and.reduce([bands[b][1] for b in ("B02", "B03", "B04", "B08")])
        if valid.any():
            snow = snow_cloud_mask(*(bands[b][0][valid] for b in ("B02", "B03", "B04", "B08")))
            share = float(snow.mean())
            clear = ~snow  # snow and cloud are no dark objects, but they must not hide one either
            dark2 = dark_object(bands["B02"][0][valid][clear]) if clear.any() else None
            dark8 = dark_object(bands["B08"][0][valid][clear]) if clear.any() else None
    return share, dark2, dark8, medians


# --------------------------------------------------------------------------- on files


def input_level(paths: Sequence[Path]) -> Optional[str]:
    """The processing level of inputs read together: one level, ``L1C+L2A`` when they differ, None when any is
    unknown (metadata only; what an SR output records as ``S2_LEVEL``)."""
    found = set()
    for p in paths:
        with open_raster(p) as ds:
            level = _file_level(Path(p), ds)
        if level is None:
            return None
        found.update(level.split("+"))
    return "+".join(sorted(found)) if found else None


def _file_level(path: Path, ds) -> Optional[str]:
    product = product_of_band_file(path) if path.suffix.lower() == ".jp2" else None
    return raster_level(path, ds.tags(), product.level if product is not None else None)


def _reflectance(frame, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A decimated raw sample in reflectance, with the units the job itself will detect for this band."""
    src = frame.reader.src_dataset if isinstance(frame.reader, WarpedVRT) else frame.reader
    radiometry = detect_radiometry(src, frame.bidx, values[valid], frame.dtype)
    return radiometry.to_reflectance(np.asarray(values, dtype=np.float32))


def sign_checks(paths: Sequence[Path], frames: Sequence[object], bands: Sequence[Optional[str]],
                samples: Sequence[Tuple[np.ndarray, np.ndarray]], cards: Sequence[object] = ()) -> List[Check]:
    """Level, snow / thick cloud, haze and (when a card records them) statistics checks of the inputs.

    ``frames``, ``bands``, ``samples``: the job's frames on one grid, the S-2
    band each holds (None when unknown) and their decimated raw samples
    ``(values, valid)``. The first frame of each band stands for it (a stack
    holds its clearest date first). ``cards``: the networks' model cards (the
    level and the statistics they were trained on); none: the level is said,
    never compared.
    """
    label = paths[0].name if len(paths) == 1 else f"the {len(paths)} inputs"
    levels = []
    for p in paths:
        with open_raster(p) as ds:
            levels.append(_file_level(Path(p), ds))
    known = {part for lv in levels if lv for part in lv.split("+")}
    level = None if None in levels or not known else "+".join(sorted(known))
    trained = next((c.trained_level for c in cards if c.trained_level), None)
    network = cards[0].display_name if len(cards) == 1 else "the networks" if cards else "the networks"
    by_band: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
    for frame, band, (values, valid) in zip(frames, bands, samples):
        if band is not None and band not in by_band and valid.size:
            by_band[band] = (_reflectance(frame, values, valid), valid)
    share, dark2, dark8, medians = spectral_signs(by_band)
    sr = bool(cards) and all(getattr(c, "task", None) == "sr" for c in cards)
    out = [check_level(level, label, trained, network, pixels_judged=dark2 is not None, sr=sr)]
    saw_snow = networks_saw_snow(cards)
    for check in (check_snow_cloud(share, label, has_scl=level == "L2A", saw_snow=saw_snow),
                  check_haze(dark2, dark8, label, level, trained, network, sr=sr)):
        if check is not None:
            out.append(check)
    stats = next((c.input_stats for c in cards if c.input_stats), {})
    check = check_statistics(medians, stats, label, network)
    if check is not None:
        out.append(check)
    return out
