"""Reader for the MuS2 benchmark (Kowaleczko et al., Scientific Data 10:644, 2023).

Layout read (per scene folder; names matched case-insensitively)::

    <root>/<scene>/b8/lrs/*.tif|*.tiff|*.jp2    Sentinel-2 L2A revisits at 10 m (b2, b3, b4, b8;
                                                b02/b08 spellings accepted)
    <root>/<scene>/hr_resized/mul_band_6.tiff   WorldView-2 band resized to 3x the LR grid
    <root>/<scene>/masks/buildings.tif, roads.tif   optional task masks on the HR grid

Where these facts come from: the public MuS2 evaluator (pk94/WVS2Benchmark,
``metrics_single_band.py``) reads ``<scene>/<band>/lrs/*`` for the revisits and
``<scene>/hr_resized/mul_band_{i}.tiff`` for ``i`` in 0..7, and pairs b2, b3, b4,
b8 with WV-2 band indices 1, 2, 4, 6 (0-based: blue, green, red, NIR1), which
gives :data:`MUS2_BAND_PAIRS`. Third-party loaders read the revisits as
``.jp2``; we accept .tif, .tiff and .jp2. We could not read the dataset's own
documentation here (the data are on Harvard Dataverse, not reachable), so the
reader is tolerant (extension, case, an ``image_data/`` level above the scenes)
and says what it expected when something is missing. The task masks
(buildings/roads from OSM) are not part of the published benchmark; a scene's
``masks/`` folder is used when present (the benchmark's own top-level ``masks/``
holds evaluation masks and is not read).

Radiometry (a parameter, not a fact):
- LR: S-2 L2A digital numbers; reflectance = (DN + ``lr_offset``) x 1e-4. For
  products of processing baseline 04.00 or later (from 25 January 2022) pass
  ``lr_offset=-1000`` (the BOA_ADD_OFFSET). DN 0 is nodata.
- HR: we do not know the stored scale of ``hr_resized``. ``hr_radiometric_scale=None``
  picks by data type: uint8 -> 1/255 (a display-stretched image, which the
  evaluator's 8-bit reading suggests), 16-bit integers -> 1e-4 (reflectance x
  1e4), floats -> 1 (already reflectance). The MuS2 metrics histogram-match the
  SR output to the HR band, so the absolute HR scale does not affect them; for
  training against HR, ``match_hr_to_lr=True`` fits a gain and offset that map the
  area-downsampled HR onto the median of the clear revisits.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from affine import Affine

from ..io.geo import compose
from ..io.paths import safe_name
from ..jobs import OutputError
from .scene import (
    SPLIT_JSON,
    Scene,
    SceneError,
    from_dn,
    load_split,
    read_raster,
    same_crs,
    same_transform,
    split_names,
    write_json_atomic,
    write_scene,
)

__all__ = [
    "MUS2_BAND_PAIRS",
    "read_mus2",
    "read_mus2_scene",
    "find_mus2_scenes",
    "hr_scale_for_dtype",
    "import_mus2",
    "iter_mus2",
]

log = logging.getLogger(__name__)

MUS2_BAND_PAIRS: Dict[str, str] = {"B2": "mul_band_1", "B3": "mul_band_2", "B4": "mul_band_4", "B8": "mul_band_6"}
_BAND_DIRS = {"B2": ("b2", "b02"), "B3": ("b3", "b03"), "B4": ("b4", "b04"), "B8": ("b8", "b08")}
_RASTER_EXT = (".tif", ".tiff", ".jp2")
_DATE = re.compile(r"(?<!\d)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?!\d)")


def _norm_band(band: str) -> str:
    key = str(band).strip().upper().replace("B0", "B")
    if key == "NIR":
        key = "B8"
    if key not in MUS2_BAND_PAIRS:
        raise SceneError(f"MuS2 has bands {', '.join(MUS2_BAND_PAIRS)}; got {band!r}")
    return key


def _child(folder: Path, names: Sequence[str]) -> Optional[Path]:
    """The child of ``folder`` whose lower-cased name is one of ``names`` (first match)."""
    if not folder.is_dir():
        return None
    wanted = [n.lower() for n in names]
    children = {p.name.lower(): p for p in folder.iterdir()}
    for n in wanted:
        if n in children:
            return children[n]
    return None


def _rasters(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _RASTER_EXT)


def _is_mus2_scene(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    if _child(folder, ["hr_resized"]) is not None:
        return True
    return any(_child(_child(folder, names) or folder / "-", ["lrs"]) for names in _BAND_DIRS.values())


def find_mus2_scenes(root: Union[str, Path]) -> List[Path]:
    """Scene folders of a MuS2 tree: ``root`` itself, its children, or those under ``image_data/``."""
    root = Path(root)
    if not root.is_dir():
        raise SceneError(f"{root}: MuS2 folder not found")
    if _is_mus2_scene(root):
        return [root]
    for base in (root, _child(root, ["image_data"])):
        if base is None:
            continue
        scenes = sorted(p for p in base.iterdir() if not p.name.startswith(".") and _is_mus2_scene(p))
        if scenes:
            return scenes
    raise SceneError(
        f"{root}: no MuS2 scenes found; expected scene folders containing b8/lrs/*.tif (or .tiff/.jp2) "
        "and hr_resized/mul_band_6.tiff"
    )


def hr_scale_for_dtype(dtype: np.dtype) -> float:
    """The HR radiometric scale assumed when none is given (see the module docstring)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 1.0 / 255.0
    if np.issubdtype(dtype, np.integer):
        return 1e-4
    return 1.0


def _lr_frames(scene_dir: Path, band: str) -> List[Path]:
    band_dir = _child(scene_dir, _BAND_DIRS[band])
    lrs = _child(band_dir, ["lrs"]) if band_dir is not None else None
    if lrs is None:
        found = sorted(p.name for p in scene_dir.iterdir() if p.is_dir())
        raise SceneError(
            f"{scene_dir}: no revisits for band {band}: expected {scene_dir / _BAND_DIRS[band][0] / 'lrs'}/*.tif "
            f"(.tiff, .jp2); folders present: {found or 'none'}"
        )
    files = _rasters(lrs)
    if not files:
        raise SceneError(f"{lrs}: no revisit rasters (*.tif, *.tiff, *.jp2)")
    return files


def _hr_file(scene_dir: Path, band: str) -> Path:
    hr_dir = _child(scene_dir, ["hr_resized"])
    stem = MUS2_BAND_PAIRS[band]
    if hr_dir is None:
        raise SceneError(f"{scene_dir}: no hr_resized/ folder (expected hr_resized/{stem}.tiff for band {band})")
    hit = _child(hr_dir, [stem + ext for ext in _RASTER_EXT])
    if hit is None:
        found = [p.name for p in _rasters(hr_dir)]
        raise SceneError(f"{hr_dir}: no {stem}.tiff (.tif) for band {band}; found: {found or 'nothing'}")
    return hit


def _date_of(path: Path) -> str:
    m = _DATE.search(path.stem)
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else ""


def read_mus2_scene(
    scene_dir: Union[str, Path],
    bands: Sequence[str] = ("B8",),
    lr_radiometric_scale: float = 1e-4,
    lr_offset: float = 0.0,
    hr_radiometric_scale: Optional[float] = None,
    match_hr_to_lr: bool = False,
    with_hr: bool = True,
    with_masks: bool = True,
    hr_tolerance_px: int = 3,
    scale: int = 3,
) -> Scene:
    """Read one MuS2 scene folder into a :class:`Scene` (reflectance, clear masks, grids)."""
    scene_dir = Path(scene_dir)
    bands = [_norm_band(b) for b in bands]
    per_band = {b: _lr_frames(scene_dir, b) for b in bands}
    ref_band = bands[0]
    ref_files = per_band[ref_band]
    for b in bands[1:]:
        if len(per_band[b]) != len(ref_files):
            raise SceneError(
                f"{scene_dir}: band {b} has {len(per_band[b])} revisits but {ref_band} has {len(ref_files)}; "
                "multi-band reading needs the same revisits in every band"
            )

    ref = read_raster(ref_files[0])
    frames = []
    valids = []
    for t in range(len(ref_files)):
        chans, valid = [], None
        for b in bands:
            f = per_band[b][t]
            r = ref if (b == ref_band and t == 0) else read_raster(f)
            if r.data.shape[1:] != ref.data.shape[1:]:
                raise SceneError(
                    f"{f}: revisit is {r.data.shape[2]}x{r.data.shape[1]} px, but {ref_files[0].name} is "
                    f"{ref.data.shape[2]}x{ref.data.shape[1]} px; all revisits must share one grid"
                )
            if r.has_georef and ref.has_georef and (
                not same_crs(r.crs, ref.crs) or not same_transform(r.transform, ref.transform, ref.transform.a)
            ):
                raise SceneError(f"{f}: revisit is on a different grid (CRS/transform) than {ref_files[0].name}")
            arr, v = from_dn(r.data[:1], r.nodata if r.nodata is not None else 0, lr_radiometric_scale, lr_offset)
            chans.append(arr[0])
            valid = v if valid is None else valid & v
        frames.append(np.stack(chans))
        valids.append(valid)
    lr = np.stack(frames).astype(np.float32)
    lr_valid = np.stack(valids)
    t_n, c_n, h, w = lr.shape
    if ref.has_georef:
        lr_transform, crs = ref.transform, ref.crs
    else:
        log.warning("%s: revisits carry no georeferencing; using a 10 m pixel grid at the origin", ref_files[0])
        lr_transform, crs = Affine(10.0, 0.0, 0.0, 0.0, -10.0, 10.0 * h), ""
    hr_transform = compose(lr_transform, Affine.scale(1.0 / scale))
    extra: Dict[str, object] = {"source": "MuS2", "path": str(scene_dir), "lr_files": [p.name for p in ref_files]}

    hr = hr_valid = None
    crop = (h, w)
    if with_hr:
        chans, hv = [], None
        for b in bands:
            path = _hr_file(scene_dir, b)
            r = read_raster(path)
            hh, ww = r.data.shape[1:]
            if abs(hh - scale * h) > hr_tolerance_px or abs(ww - scale * w) > hr_tolerance_px:
                raise SceneError(
                    f"{path}: HR is {ww}x{hh} px, not {scale}x the LR grid ({scale * w}x{scale * h} px "
                    f"for {w}x{h} LR px)"
                )
            crop = (min(crop[0], hh // scale), min(crop[1], ww // scale))
            hscale = hr_radiometric_scale if hr_radiometric_scale is not None else hr_scale_for_dtype(r.data.dtype)
            if r.has_georef and r.crs and crs:
                expected = hr_transform
                if not same_crs(r.crs, crs) or abs(r.transform.c - expected.c) > abs(expected.a) or abs(
                    r.transform.f - expected.f
                ) > abs(expected.e):
                    log.warning("%s: HR georeferencing differs from the revisits' grid / %d by over a pixel", path, scale)
            arr, v = from_dn(r.data[:1], r.nodata, hscale)
            chans.append(arr[0])
            hv = v if hv is None else hv & v
            extra.setdefault("hr_radiometric_scale", {})[b] = hscale  # type: ignore[index]
        hr = np.stack(chans)
        hr_valid = hv
    if crop != (h, w) or (hr is not None and hr.shape[-2:] != (crop[0] * scale, crop[1] * scale)):
        log.info("%s: cropping to %dx%d LR px so that HR is exactly %dx the LR grid", scene_dir, crop[1], crop[0], scale)
        h, w = crop
        lr, lr_valid = lr[..., :h, :w], lr_valid[..., :h, :w]
        if hr is not None and hr_valid is not None:
            hr, hr_valid = hr[:, : h * scale, : w * scale], hr_valid[: h * scale, : w * scale]

    masks: Dict[str, np.ndarray] = {}
    mask_dir = _child(scene_dir, ["masks"])
    if with_masks and mask_dir is not None:
        for key in ("buildings", "roads"):
            hits = [p for p in _rasters(mask_dir) if p.stem.lower().startswith(key[:-1])]
            if not hits:
                continue
            r = read_raster(hits[0])
            mh, mw = r.data.shape[1:]
            if mh < h * scale or mw < w * scale or mh - h * scale > hr_tolerance_px or mw - w * scale > hr_tolerance_px:
                raise SceneError(f"{hits[0]}: mask is {mw}x{mh} px; the HR grid is {w * scale}x{h * scale} px")
            masks[key] = r.data[0, : h * scale, : w * scale] > 0

    if match_hr_to_lr and hr is not None and hr_valid is not None:
        hr, fit = _match_hr_to_lr(hr, hr_valid, lr, lr_valid, scale)
        extra["hr_lr_fit"] = fit

    return Scene(
        name=scene_dir.name,
        lr=np.ascontiguousarray(lr),
        lr_valid=np.ascontiguousarray(lr_valid),
        hr=None if hr is None else np.ascontiguousarray(hr),
        hr_valid=None if hr_valid is None else np.ascontiguousarray(hr_valid),
        masks=masks,
        crs=crs,
        lr_transform=lr_transform,
        hr_transform=hr_transform,
        bands=bands,
        scale=scale,
        dates=[_date_of(p) for p in ref_files],
        radiometric_scale=lr_radiometric_scale,
        split=None,
        extra=extra,
    )


def _match_hr_to_lr(
    hr: np.ndarray, hr_valid: np.ndarray, lr: np.ndarray, lr_valid: np.ndarray, scale: int
) -> Tuple[np.ndarray, List[Dict[str, float]]]:
    """Per band, least-squares gain/offset from area-downsampled HR to the median clear revisit."""
    c, hh, ww = hr.shape
    h, w = hh // scale, ww // scale
    out = hr.copy()
    fits = []
    for b in range(c):
        down = hr[b].reshape(h, scale, w, scale).mean(axis=(1, 3))
        down_valid = hr_valid.reshape(h, scale, w, scale).all(axis=(1, 3))
        stack = np.where(lr_valid, lr[:, b], np.nan)
        with np.errstate(all="ignore"):
            target = np.nanmedian(stack, axis=0) if np.isfinite(stack).any() else np.full((h, w), np.nan)
        ok = down_valid & np.isfinite(target)
        if ok.sum() < 10 or np.std(down[ok]) == 0:
            fits.append({"gain": 1.0, "offset": 0.0})
            continue
        gain, offset = np.polyfit(down[ok].astype(np.float64), target[ok].astype(np.float64), 1)
        out[b] = np.where(hr_valid, hr[b] * gain + offset, 0.0)
        fits.append({"gain": float(gain), "offset": float(offset)})
    return out.astype(np.float32), fits


def iter_mus2(
    root: Union[str, Path],
    band: Union[str, Sequence[str]] = "B8",
    split: Optional[str] = None,
    seed: int = 0,
    **options: object,
) -> Iterator[Tuple[int, int, Scene]]:
    """Yield (index, count, scene) one scene at a time (bounded memory for conversions)."""
    root = Path(root)
    bands = [band] if isinstance(band, str) else list(band)
    dirs = find_mus2_scenes(root)
    if (root / SPLIT_JSON).exists():
        assignment = load_split(root)
    else:
        assignment = split_names([d.name for d in dirs], seed=seed)
    which = {name: key for key, names in assignment.items() for name in names}
    if split is not None:
        if split not in assignment:
            raise SceneError(f"unknown split {split!r}; choose one of {', '.join(assignment)}")
        dirs = [d for d in dirs if which.get(d.name) == split]
    for i, d in enumerate(dirs):
        scene = read_mus2_scene(d, bands=bands, **options)  # type: ignore[arg-type]
        scene.split = which.get(d.name)
        yield i, len(dirs), scene


def import_mus2(
    root: Union[str, Path],
    out_root: Union[str, Path],
    band: Union[str, Sequence[str]] = "B8",
    seed: int = 0,
    progress: Optional[Callable[[float, str], None]] = None,
    **options: object,
) -> List[Path]:
    """Convert a MuS2 tree into scene folders plus ``split.json`` (the real-world version)."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    assignment: Dict[str, List[str]] = {"train": [], "val": [], "test": []}
    for i, n, scene in iter_mus2(root, band=band, seed=seed, **options):
        if progress:
            progress(i / n, f"importing {scene.name}")
        name = safe_name(scene.name, what=f"MuS2 scene {scene.extra.get('path', scene.name)}", error=OutputError)
        written.append(write_scene(scene, out_root / name, root=out_root))
        if scene.split in assignment:
            assignment[scene.split].append(scene.name)
    write_json_atomic(out_root / SPLIT_JSON, {**assignment, "source": str(root)})
    if progress:
        progress(1.0, f"imported {len(written)} scene(s)")
    return written


def read_mus2(
    root: Union[str, Path],
    band: Union[str, Sequence[str]] = "B8",
    split: Optional[str] = None,
    seed: int = 0,
    **options: object,
) -> List[Scene]:
    """All scenes of a MuS2 tree (NIR by default; ``band`` may name several bands).

    The split comes from ``root/split.json`` when present, otherwise it is
    computed (not written) with :func:`split_names` (72/9/9 for 90 scenes).
    ``options`` go to :func:`read_mus2_scene`.
    """
    return [scene for _, _, scene in iter_mus2(root, band=band, split=split, seed=seed, **options)]
