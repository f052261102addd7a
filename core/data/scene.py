"""Scenes and the project's scene-folder format.

A *scene* is one place on Earth seen by several low-resolution (LR) revisits on
one grid, optionally one high-resolution (HR) reference on a grid exactly
``scale`` times finer, and optionally binary task masks (buildings, roads) on the
HR grid. In memory it is a :class:`Scene`; on disk it is a folder that QGIS can
open file by file::

    <scene>/
      scene.json            scale, band names, dates, radiometric scale, split, extras
      lr/t00.tif ...        one GeoTIFF per revisit, uint16 digital numbers, nodata 0
      hr.tif                uint16 digital numbers, nodata 0 (optional)
      masks/buildings.tif   uint8 0/1 on the HR grid (optional)
      masks/roads.tif       uint8 0/1 on the HR grid (optional)

Arrays in memory hold *reflectance* (DN x ``radiometric_scale``) as float32;
pixels that are nodata or NaN in a file hold 0.0 and are False in the matching
valid mask, so no NaN ever reaches a loss. Writing goes into a hidden sibling
folder that is renamed into place only when every file is complete, so a
failure never leaves a half scene behind.

A *dataset* is a folder of scene folders plus ``split.json``
(``{"train": [...], "val": [...], "test": [...]}``), see :func:`make_split`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from affine import Affine

from ..io.atomic import remove_orphans, replace_folder, temp_path_for, write_text_atomic
from ..io.geo import compose
from ..io.paths import contained, inside, safe_name
from ..jobs import OutputError, PathLike
from .geotiff import (
    RasterData,
    SceneError,
    from_dn,
    read_raster,
    same_crs,
    same_transform,
    to_dn,
    write_geotiff,
)

__all__ = [
    "SceneError",
    "Scene",
    "read_scene",
    "write_scene",
    "list_scenes",
    "make_split",
    "load_split",
    "split_names",
    "to_dn",
    "from_dn",
    "read_raster",
    "write_geotiff",
    "write_json_atomic",
    "is_scene_dir",
    "same_crs",
    "same_transform",
    "MASK_NAMES",
    "SCENE_JSON",
    "SPLIT_JSON",
    "SPLITS",
]

log = logging.getLogger(__name__)

SCENE_JSON = "scene.json"
SPLIT_JSON = "split.json"
MASK_NAMES = ("buildings", "roads")
SPLITS = ("train", "val", "test")
FORMAT_NAME = "s2sr-scene"
FORMAT_VERSION = 1


@dataclass
class Scene:
    """One scene in memory (see the module docstring for units and shapes).

    ``lr``: [T, C, h, w] float32 reflectance; ``lr_valid``: [T, h, w] bool.
    ``hr``: [C, scale*h, scale*w] float32 or None; ``hr_valid``: [scale*h, scale*w] bool or None.
    ``masks``: name -> [scale*h, scale*w] bool (keys ``"buildings"``, ``"roads"``).
    ``crs``: WKT or "EPSG:xxxx" ("" when unknown). ``extra``: JSON-serialisable
    extras written to scene.json; keys starting with ``_`` stay in memory only.
    """

    name: str
    lr: np.ndarray
    lr_valid: np.ndarray
    hr: Optional[np.ndarray]
    hr_valid: Optional[np.ndarray]
    masks: Dict[str, np.ndarray]
    crs: str
    lr_transform: Affine
    hr_transform: Affine
    bands: List[str]
    scale: int = 3
    dates: List[str] = field(default_factory=list)
    radiometric_scale: float = 1e-4
    split: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ shapes
    @property
    def frames(self) -> int:
        return int(self.lr.shape[0])

    @property
    def lr_shape(self) -> Tuple[int, int]:
        return int(self.lr.shape[-2]), int(self.lr.shape[-1])

    @property
    def hr_shape(self) -> Tuple[int, int]:
        h, w = self.lr_shape
        return h * self.scale, w * self.scale

    def valid_fraction(self) -> np.ndarray:
        """Share of clear pixels per revisit, [T] float (used to pick the clearest frames)."""
        return self.lr_valid.reshape(self.frames, -1).mean(axis=1)

    def validate(self, where: str = "") -> None:
        """Check shapes, dtypes and grids; raise :class:`SceneError` naming ``where``."""
        where = where or f"scene {self.name!r}"

        def bad(msg: str) -> SceneError:
            return SceneError(f"{where}: {msg}")

        if not isinstance(self.scale, int) or self.scale < 1:
            raise bad(f"scale must be a positive integer, got {self.scale!r}")
        if self.lr.ndim != 4:
            raise bad(f"lr must be [T, C, h, w], got shape {self.lr.shape}")
        t, c, h, w = self.lr.shape
        if t < 1 or c < 1 or h < 1 or w < 1:
            raise bad(f"lr has an empty dimension: shape {self.lr.shape}")
        if self.lr_valid.shape != (t, h, w):
            raise bad(f"lr_valid shape {self.lr_valid.shape} does not match lr frames {(t, h, w)}")
        if len(self.bands) != c:
            raise bad(f"{len(self.bands)} band names {self.bands} for {c} channels")
        if self.dates and len(self.dates) != t:
            raise bad(f"{len(self.dates)} dates for {t} revisits")
        hh, ww = h * self.scale, w * self.scale
        if self.hr is not None:
            if self.hr.shape != (c, hh, ww):
                raise bad(
                    f"hr shape {self.hr.shape} is not {self.scale}x the LR grid: expected {(c, hh, ww)}"
                )
            if self.hr_valid is None or self.hr_valid.shape != (hh, ww):
                raise bad(f"hr_valid must be [{hh}, {ww}]")
        for key, mask in self.masks.items():
            if mask.shape != (hh, ww):
                raise bad(f"mask {key!r} has shape {mask.shape}, the HR grid is {(hh, ww)}")
        expected_hr = compose(self.lr_transform, Affine.scale(1.0 / self.scale))
        if not same_transform(expected_hr, self.hr_transform, self.hr_transform.a):
            raise bad(
                f"hr_transform {tuple(self.hr_transform)[:6]} is not lr_transform / {self.scale} "
                f"{tuple(expected_hr)[:6]}"
            )


# ---------------------------------------------------------------------- radiometry
# ---------------------------------------------------------------------- write
def write_scene(scene: Scene, path: PathLike, overwrite: bool = True, root: Optional[PathLike] = None) -> Path:
    """Write ``scene`` as a scene folder at ``path`` and return the path.

    Everything is written into a hidden sibling folder first and renamed into
    place at the end; an existing scene at ``path`` is replaced only then (or
    refused when ``overwrite`` is False). A folder that is not a scene is never
    replaced, and with ``root`` (the chosen output folder) ``path`` must lie
    inside it: a scene's name comes from files anyone may edit.
    """
    path = Path(path)
    if root is not None:  # lexically, links not followed: what the name says is what is checked
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
        path = inside(root, relative, what=f"scene folder {path}", error=OutputError)
    safe_name(path.name, what=f"scene folder {path}", error=OutputError)
    scene.validate(where=f"{path}")
    if path.exists() and not overwrite:
        raise SceneError(f"{path}: already exists (pass overwrite=True to replace it)")
    if path.exists() and not path.is_dir():
        raise SceneError(f"{path}: exists and is a file, not a scene folder; choose another output path")
    if path.is_dir() and not is_scene_dir(path) and any(path.iterdir()):
        raise OutputError(f"{path}: exists and is not a scene folder (no {SCENE_JSON}, no lr/); it is not replaced. "
                          "Choose another output folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)  # hidden folders left by a killed earlier run
    tmp = temp_path_for(path)
    tmp.mkdir()  # unlike mkdtemp, honours the umask, so the scene is readable like its siblings
    try:
        _write_scene_files(scene, tmp)
        replace_folder(tmp, path)  # the whole folder is replaced: no file of the old scene survives
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _write_scene_files(scene: Scene, folder: Path) -> None:
    (folder / "lr").mkdir()
    lr_files = []
    for t in range(scene.frames):
        name = f"lr/t{t:02d}.tif"
        dn = to_dn(scene.lr[t], scene.lr_valid[t], scene.radiometric_scale)
        # the date in the file too (not only scene.json), where readers of plain rasters look for it: a scene's
        # revisits can then be stacked, checked and shown like any dated export (issue 21)
        day = scene.dates[t] if t < len(scene.dates) else None
        write_geotiff(folder / name, dn, scene.crs, scene.lr_transform, nodata=0, descriptions=scene.bands,
                      tags={"ACQUISITION_DATE": day, "S2_DATE": day} if day else None)
        lr_files.append(name)
    if scene.hr is not None:
        dn = to_dn(scene.hr, scene.hr_valid, scene.radiometric_scale)
        write_geotiff(folder / "hr.tif", dn, scene.crs, scene.hr_transform, nodata=0, descriptions=scene.bands)
    if scene.masks:
        (folder / "masks").mkdir()
        for key, mask in scene.masks.items():
            write_geotiff(
                folder / "masks" / f"{key}.tif",
                mask.astype(np.uint8),
                scene.crs,
                scene.hr_transform,
                descriptions=[key],
            )
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": scene.name,
        "scale": scene.scale,
        "bands": list(scene.bands),
        "dates": list(scene.dates),
        "radiometric_scale": scene.radiometric_scale,
        "split": scene.split,
        "crs": scene.crs,
        "lr_files": lr_files,
        "has_hr": scene.hr is not None,
        "masks": sorted(scene.masks),
        "extra": {k: v for k, v in scene.extra.items() if not str(k).startswith("_")},
    }
    write_json_atomic(folder / SCENE_JSON, meta)


def write_json_atomic(path: PathLike, obj: Any) -> Path:
    """Write JSON atomically (:func:`core.io.atomic.write_text_atomic`): never a half file.

    Stricter than :func:`core.io.atomic.write_json_atomic` on purpose: a value
    JSON has no type for (a set, an object) is a ``TypeError`` here rather than
    its text, because scene.json is read back as data. NaN becomes null.
    """
    return write_text_atomic(path, json.dumps(_finite(obj), indent=2, default=_json_default) + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.generic, np.ndarray)):
        return _finite(obj.tolist())
    raise TypeError(f"cannot store {type(obj).__name__} in scene.json")


# ---------------------------------------------------------------------- read
def is_scene_dir(path: PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / SCENE_JSON).is_file() or (path / "lr").is_dir())


def read_scene(path: PathLike, with_masks: bool = True) -> Scene:
    """Read a scene folder; every inconsistency is a :class:`SceneError` naming the file."""
    path = Path(path)
    if not path.is_dir():
        raise SceneError(f"{path}: not a folder (a scene is a folder with lr/, hr.tif, masks/, scene.json)")
    meta = _read_meta(path)
    meta_path = path / SCENE_JSON
    lr_dir = path / "lr"
    lr_files = [inside(path, f, what=f"{meta_path}: lr_files[{i}]", error=SceneError)
                for i, f in enumerate(meta.get("lr_files", []))]
    if not lr_files and lr_dir.is_dir():
        lr_files = sorted(contained(p, path, what=f"{lr_dir}: revisit", error=SceneError)
                          for p in lr_dir.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    if not lr_files:
        raise SceneError(f"{lr_dir}: no LR revisits found (expected one GeoTIFF per revisit in lr/)")
    dates = list(meta.get("dates", []))
    if dates and len(dates) != len(lr_files):
        raise SceneError(f"{meta_path}: dates lists {len(dates)} date(s) for {len(lr_files)} LR revisit(s)")
    rscale = float(meta.get("radiometric_scale", 1e-4))

    frames, valids = [], []
    ref: Optional[RasterData] = None
    ref_file = lr_files[0]
    for f in lr_files:
        r = read_raster(f)
        if ref is None:
            ref = r
        else:
            if r.data.shape != ref.data.shape:
                raise SceneError(
                    f"{f}: revisit has shape {r.data.shape[1:]} x {r.data.shape[0]} band(s), but "
                    f"{ref_file.name} has {ref.data.shape[1:]} x {ref.data.shape[0]}; all LR revisits must share one grid"
                )
            if not same_crs(r.crs, ref.crs) or not same_transform(r.transform, ref.transform, ref.transform.a):
                raise SceneError(
                    f"{f}: revisit is on a different grid (CRS/transform) than {ref_file.name}; "
                    "resample all LR revisits onto one grid first"
                )
        arr, valid = from_dn(r.data, r.nodata, rscale)
        frames.append(arr)
        valids.append(valid)
    assert ref is not None
    lr = np.stack(frames)
    lr_valid = np.stack(valids)
    t, c, h, w = lr.shape

    bands = list(meta.get("bands") or [d or f"band{i + 1}" for i, d in enumerate(ref.descriptions)])
    if len(bands) != c:
        raise SceneError(f"{path / SCENE_JSON}: lists {len(bands)} bands {bands} but {ref_file.name} has {c}")
    scale = int(meta.get("scale", 3))
    hr_transform = compose(ref.transform, Affine.scale(1.0 / scale))

    hr = hr_valid = None
    hr_path = path / "hr.tif"
    if hr_path.exists():
        contained(hr_path, path, what="HR image", error=SceneError)
        r = read_raster(hr_path)
        if r.data.shape != (c, h * scale, w * scale):
            raise SceneError(
                f"{hr_path}: HR is {r.data.shape[2]}x{r.data.shape[1]} px with {r.data.shape[0]} band(s); "
                f"expected {w * scale}x{h * scale} px ({scale}x the LR grid of {w}x{h}) with {c} band(s)"
            )
        _check_grid(hr_path, r, ref.crs, hr_transform)
        if r.has_georef:
            hr_transform = r.transform  # the file's own numbers: exact round trip of e.g. 10/3 m pixels
        hr, hr_valid = from_dn(r.data, r.nodata, rscale)
    elif meta.get("has_hr"):
        raise SceneError(f"{hr_path}: missing, but {SCENE_JSON} says the scene has an HR image")

    masks: Dict[str, np.ndarray] = {}
    if with_masks:
        for key in meta.get("masks", MASK_NAMES):
            mpath = path / "masks" / f"{key}.tif"  # key: checked by _check_meta to be a plain name
            if not mpath.exists():
                if "masks" in meta:
                    raise SceneError(f"{mpath}: missing, but {SCENE_JSON} lists mask {key!r}")
                continue
            r = read_raster(contained(mpath, path, what=f"mask {key!r}", error=SceneError))
            if r.data.shape[1:] != (h * scale, w * scale):
                raise SceneError(
                    f"{mpath}: mask is {r.data.shape[2]}x{r.data.shape[1]} px; the HR grid is "
                    f"{w * scale}x{h * scale} px"
                )
            _check_grid(mpath, r, ref.crs, hr_transform)
            m = r.data[0]
            if r.nodata is not None:
                m = np.where(m == r.nodata, 0, m)
            masks[key] = np.nan_to_num(m.astype(np.float32)) > 0.5

    if dates and len(dates) != t:
        raise SceneError(f"{path / SCENE_JSON}: {len(dates)} dates for {t} LR revisits")
    split = meta.get("split")
    parent_split = _split_of(path)
    if parent_split is not None:
        split = parent_split
    scene = Scene(
        name=str(meta.get("name") or path.name),
        lr=lr,
        lr_valid=lr_valid,
        hr=hr,
        hr_valid=hr_valid,
        masks=masks,
        crs=ref.crs,
        lr_transform=ref.transform,
        hr_transform=hr_transform,
        bands=bands,
        scale=scale,
        dates=dates,
        radiometric_scale=rscale,
        split=split,
        extra=dict(meta.get("extra") or {}),
    )
    scene.extra["_path"] = str(path)
    return scene


def _read_meta(path: Path) -> Dict[str, Any]:
    meta_path = path / SCENE_JSON
    if not meta_path.exists():
        if not (path / "lr").is_dir():
            raise SceneError(
                f"{path}: not a scene folder (no {SCENE_JSON} and no lr/ folder; expected lr/*.tif, "
                "hr.tif, masks/, scene.json)"
            )
        log.warning("%s: no %s; assuming scale 3 and radiometric scale 1e-4", path, SCENE_JSON)
        return {}
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SceneError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise SceneError(f"{meta_path}: expected a JSON object")
    _check_meta(meta, meta_path)
    return meta


def _check_meta(meta: Dict[str, Any], meta_path: Path) -> None:
    """Refuse a scene.json whose values have the wrong type or range, before anything is built from it.

    A wrong value read as-is gives garbage instead of an error (``radiometric_scale: 0``
    made every pixel 0 and cPSNR 43 dB), or a crash far from its cause. Names of files and
    folders must stay inside the scene folder (see :mod:`core.io.paths`).
    """

    def bad(key: str, expected: str) -> SceneError:
        return SceneError(f"{meta_path}: {key} must be {expected}, got {meta[key]!r}")

    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def strings(key: str) -> None:
        value = meta.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)):
            raise bad(key, "a list of non-empty strings")

    if meta.get("name") is not None:
        safe_name(meta["name"], what=f"{meta_path}: name", error=SceneError)
    if "scale" in meta:
        v = meta["scale"]
        if not is_number(v) or not float(v).is_integer() or v < 1:
            raise bad("scale", "a positive whole number (3 for 10 m -> 3.33 m)")
        meta["scale"] = int(v)
    if "radiometric_scale" in meta:
        v = meta["radiometric_scale"]
        if not is_number(v) or not math.isfinite(v) or v <= 0:
            raise bad("radiometric_scale", "a positive number (reflectance per digital number, e.g. 0.0001)")
    strings("bands")
    strings("lr_files")
    strings("masks")
    if meta.get("dates") is not None and (
        not isinstance(meta["dates"], list) or not all(isinstance(d, str) for d in meta["dates"])
    ):
        raise bad("dates", "a list of dates as text, one per LR revisit")
    for i, f in enumerate(meta.get("lr_files") or []):
        inside(meta_path.parent, f, what=f"{meta_path}: lr_files[{i}]", error=SceneError)
    for key in meta.get("masks") or []:
        safe_name(key, what=f"{meta_path}: masks", error=SceneError)
    for key, kind, expected in (("has_hr", bool, "true or false"), ("split", str, "a split name or null"),
                                ("crs", str, "a CRS as text"), ("extra", dict, "a JSON object")):
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise bad(key, expected)
    if meta.get("split") is not None and meta["split"] not in SPLITS:
        raise bad("split", f"one of {', '.join(SPLITS)} or null")
    for key in ("dates", "bands", "lr_files", "masks"):
        if key in meta and meta[key] is None:
            del meta[key]


def _check_grid(path: Path, r: RasterData, crs: str, transform: Affine) -> None:
    if not r.has_georef:
        return  # a plain image on the right pixel grid: georeferencing follows from the LR frames
    if not same_crs(r.crs, crs) or not same_transform(r.transform, transform, transform.a):
        raise SceneError(
            f"{path}: georeferencing {tuple(r.transform)[:6]} ({r.crs or 'no CRS'}) does not match the "
            f"HR grid implied by the LR revisits {tuple(transform)[:6]} ({crs or 'no CRS'})"
        )


# ---------------------------------------------------------------------- datasets
def list_scenes(root: PathLike, split: Optional[str] = None) -> List[Path]:
    """Scene folders under ``root`` (sorted), optionally only those of one split.

    ``root`` may also be a single scene folder, which is then the only scene.
    """
    root = Path(root)
    if not root.is_dir():
        raise SceneError(f"{root}: dataset folder not found")
    if is_scene_dir(root) and not (root / SPLIT_JSON).exists() and not any(
        is_scene_dir(p) for p in root.iterdir()
    ):
        return [root]
    scenes = sorted(p for p in root.iterdir() if not p.name.startswith(".") and is_scene_dir(p))
    if not scenes:
        raise SceneError(f"{root}: no scene folders found (each needs lr/ and scene.json)")
    if split is None:
        return scenes
    if split not in SPLITS:
        raise SceneError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    assignment = load_split(root)
    wanted = set(assignment.get(split, []))
    missing = wanted - {p.name for p in scenes}
    if missing:
        raise SceneError(f"{root / SPLIT_JSON}: lists scenes that are not in the folder: {sorted(missing)[:5]}")
    return [p for p in scenes if p.name in wanted]


def load_split(root: PathLike) -> Dict[str, List[str]]:
    """Read ``root/split.json``; refuse a missing or malformed file with a hint."""
    path = Path(root) / SPLIT_JSON
    if not path.exists():
        raise SceneError(f"{path}: no split file; create one with `python -m core.cli split --root {root}`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SceneError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k, []), list) for k in SPLITS):
        raise SceneError(f"{path}: expected {{'train': [...], 'val': [...], 'test': [...]}}")
    return {k: [str(n) for n in data.get(k, [])] for k in SPLITS}


def _split_of(scene_path: Path) -> Optional[str]:
    split_path = scene_path.parent / SPLIT_JSON
    if not split_path.exists():
        return None
    try:
        assignment = load_split(scene_path.parent)
    except SceneError:
        return None
    for key, names in assignment.items():
        if scene_path.name in names:
            return key
    return None


def split_names(
    names: Iterable[str], seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> Dict[str, List[str]]:
    """Assign names to train/val/test reproducibly (same names + seed -> same split).

    Names are sorted, then shuffled with ``seed``; val and test get
    ``round(n * fraction)`` scenes each (at least 1 each when n >= 3), train the
    rest: 72/9/9 for 90 scenes.
    """
    names = sorted(set(names))
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise SceneError(f"fractions must be three non-negative numbers (train, val, test), got {fractions}")
    total = float(sum(fractions))
    n = len(names)
    n_val = int(round(n * fractions[1] / total))
    n_test = int(round(n * fractions[2] / total))
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    while n_val + n_test > n:  # tiny datasets: train keeps what is left
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [names[i] for i in order]
    val = sorted(shuffled[:n_val])
    test = sorted(shuffled[n_val : n_val + n_test])
    train = sorted(shuffled[n_val + n_test :])
    return {"train": train, "val": val, "test": test}


def make_split(
    root: PathLike, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> Dict[str, List[str]]:
    """Split the scene folders under ``root`` and write ``root/split.json`` (atomically)."""
    root = Path(root)
    if not root.is_dir():
        raise SceneError(f"{root}: dataset folder not found")
    names = [p.name for p in root.iterdir() if not p.name.startswith(".") and is_scene_dir(p)]
    if not names:
        raise SceneError(f"{root}: no scene folders to split (each needs lr/ and scene.json)")
    assignment = split_names(names, seed=seed, fractions=fractions)
    write_json_atomic(root / SPLIT_JSON, {**assignment, "seed": seed, "fractions": list(fractions)})
    return assignment
