"""Cut the analyst's area into scene tiles without HR, with masks from OSM vectors and a held-out strip.

Why: fine-tuning on one's own area (:mod:`core.area`) has Sentinel-2 revisits
and OpenStreetMap, never an HR image. This module turns those files into the
project's dataset format (:mod:`core.data.scene`) so the ordinary trainer and
evaluator can use them:

- the revisits (any number of GeoTIFFs, any CRS) are put on one LR grid, the
  first revisit's, by :class:`core.io.rasters.FrameSet` (the same reading and
  warping as inference); every revisit is one frame of every tile, holding
  one band, or for a multi-band network its bands read by name in its card's
  order (:mod:`core.area.bands`);
- the grid is cut into square tiles of ``tile_lr`` LR pixels, named
  ``tile_r{row:02d}_c{col:02d}``; LR tiles keep the inputs' digital numbers;
- the buildings polygons and the roads lines (buffered by their OSM class or
  ``width`` tag) are rasterized onto each tile's 3x finer HR grid as masks by
  :func:`core.data.vectors.rasterize_vectors`, reprojected from their own CRS;
- a strip of tiles is held out on the east side (the south side when the grid
  is taller than wide), separated from the training tiles by ``gap_tiles``
  tile columns (rows) that are not written at all, so no object and no
  receptive field spans both parts (see :func:`plan_layout`);
- ``split.json`` makes train = the training tiles and val = test = the
  held-out tiles; ``area.json`` records the inputs, the layout and what was
  done to the data (:func:`read_area`).

Everything is written into a hidden sibling folder that is renamed into place
at the end, so a refusal or a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from ..data.scene import SPLIT_JSON, Scene, SceneError, write_json_atomic, write_scene
from ..data.vectors import is_kind, rasterize_vectors, read_features
from ..io.atomic import remove_orphans, replace_folder, temp_path_for
from ..io.geo import apply, compose
from ..io.input_signs import input_level
from ..io.radiometry import S2_DN_SCALE
from ..io.rasters import Frame, FrameSet, Grid
from ..jobs import PathLike, Progress
from ..options import AREA_TILE_LR
from .bands import AreaBands, arrange_frames

__all__ = ["AREA_JSON", "AreaError", "AreaLayout", "AreaPrepared", "plan_layout", "prepare_area", "read_area"]


AREA_JSON = "area.json"
FORMAT_NAME = "s2sr-area"
FORMAT_VERSION = 1
SCALE = 3  # HR pixels per LR pixel (10 m -> 3.33 m), as everywhere in the project
KINDS = ("train", "held_out", "gap")
MIN_TILE_LR = 8
#: HR pixels rasterized at once: the vectors are burnt per strip of tile rows, so memory does
#: not follow the size of the area (64 M px = 64 MB per mask).
STRIP_HR_PIXELS = 64_000_000
#: Margin around the area, in LR pixels, within which a road's centre line may lie and still be
#: buffered onto it (the widest OSM class is 20 m = 2 LR px).
VECTOR_MARGIN_LR = 3


class AreaError(ValueError):
    """An area that cannot be prepared or read; the message names the file and the problem."""


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class AreaLayout:
    """Which tile of a ``rows`` x ``cols`` grid trains, is held out, or lies in the gap between."""

    rows: int
    cols: int
    side: str  # "east" (held-out columns) or "south" (held-out rows)
    held: int  # held-out tile columns (rows)
    gap: int  # tile columns (rows) between, never written

    @property
    def across(self) -> int:
        """Tile columns (east) or rows (south): the direction the strips are cut along."""
        return self.cols if self.side == "east" else self.rows

    def part(self, row: int, col: int) -> str:
        k = col if self.side == "east" else row
        if k >= self.across - self.held:
            return "held_out"
        if k >= self.across - self.held - self.gap:
            return "gap"
        return "train"

    def tiles(self, kind: str) -> List[Tuple[int, int]]:
        """(row, col) of the tiles of ``kind`` ("train", "held_out" or "gap"), row by row."""
        if kind not in KINDS:
            raise AreaError(f"unknown tile kind {kind!r}; choose one of {', '.join(KINDS)}")
        return [(r, c) for r in range(self.rows) for c in range(self.cols) if self.part(r, c) == kind]


def plan_layout(rows: int, cols: int, val_fraction: float = 0.2, gap_tiles: int = 1) -> AreaLayout:
    """Hold out the eastern tile columns (southern rows when taller than wide), leave a gap, train on the rest.

    A spatially separate block, not random tiles, because neighbouring tiles
    share buildings, roads and the network's receptive field: random held-out
    tiles would measure memory of the training tiles, not generalisation.
    ``round(n * val_fraction)`` strips are held out (at least one); a square
    grid holds out its eastern columns.
    """
    rows, cols, gap_tiles = int(rows), int(cols), int(gap_tiles)
    if rows < 1 or cols < 1:
        raise AreaError(f"the tile grid must have at least one row and one column, got {rows} x {cols}")
    if not 0.0 < float(val_fraction) < 1.0:
        raise AreaError(f"val_fraction must lie between 0 and 1 (exclusive), got {val_fraction}")
    if gap_tiles < 0:
        raise AreaError(f"gap_tiles must be 0 or more, got {gap_tiles}")
    side = "east" if cols >= rows else "south"
    n = cols if side == "east" else rows
    held = max(1, int(math.floor(n * float(val_fraction) + 0.5)))
    if n - held - gap_tiles < 1:
        unit = "column" if side == "east" else "row"
        raise AreaError(
            f"a grid of {rows} x {cols} tiles with {held} held-out tile {unit}(s) and a gap of {gap_tiles} "
            f"{unit}(s) leaves nothing to train on; use a larger area, smaller tiles, a smaller val_fraction "
            "or a smaller gap"
        )
    return AreaLayout(rows, cols, side, held, gap_tiles)


# --------------------------------------------------------------------------- result


@dataclass
class AreaPrepared:
    """What :func:`prepare_area` wrote: tile names per part, and what was done to the data."""

    root: Path
    train: List[str]
    held_out: List[str]
    skipped: List[str]
    side: str
    band_name: str
    tile_lr: int
    messages: List[str] = field(default_factory=list)
    bands: List[str] = field(default_factory=list)  # the tiles' band names, in order (one, or the network's)

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["root"] = str(self.root)
        return d


# --------------------------------------------------------------------------- preparing


def prepare_area(
    revisits: Sequence[PathLike],
    band: Any,
    buildings_vector: Optional[PathLike],
    roads_vector: Optional[PathLike],
    out: PathLike,
    tile_lr: int = AREA_TILE_LR,
    val_fraction: float = 0.2,
    gap_tiles: int = 1,
    min_valid: float = 0.5,
    band_name: Optional[str] = None,
    overwrite: bool = False,
    progress: Optional[Progress] = None,
    bands: Optional[Sequence[str]] = None,
) -> AreaPrepared:
    """Write the area as scene tiles without HR into ``out`` (see the module docstring).

    ``band``: 1-based band number or band name in every revisit (``"all"``
    when one raster's bands are the dates). ``band_name``: the name written
    into the tiles (default: the band's description, e.g. ``"B8"``); it must
    match the SR checkpoint's band. Tiles where fewer than ``min_valid`` of the
    pixels are seen by any revisit are skipped. ``out`` must be new or empty,
    unless ``overwrite`` replaces an area prepared there. A vector given as
    ``None`` makes no mask of its kind (the Wald adaptation of
    :mod:`core.area.wald` trains without any).

    ``bands``: for a multi-band network, its band names in input order (its
    card's, e.g. B02, B03, B04, B08); they are then read by *name* from every
    revisit's band descriptions (one file per date holding the bands, one file
    per band and date, or a stack of ``B02_2023-05-01``... bands), ``band`` and
    ``band_name`` are not used, and every tile holds those bands in that order.
    """
    out = Path(out)
    tile_lr = _check_settings(tile_lr, min_valid)
    _check_out(out, overwrite)
    report = progress or (lambda _f, _m: None)
    messages: List[str] = []
    report(0.0, f"reading {len(revisits)} revisit file(s)")
    multi = bands is not None and len(bands) > 1
    with FrameSet(revisits, "all" if multi else band, messages) as fs:
        grid = fs.grid
        assert grid is not None
        layout = _tile_layout(grid, tile_lr, val_fraction, gap_tiles, messages)
        if multi:
            arranged = arrange_frames(fs.frames, list(bands or ()))
            messages.append(f"bands {', '.join(arranged.names)} read by name from {len(arranged.dates)} revisit(s)")
        else:
            arranged = AreaBands([_band_label(fs.frames, band, band_name)], [[f] for f in fs.frames])
        fs.inspect(Window(0, 0, grid.width, grid.height), arranged.frames)
        rscale = _radiometric_scale(arranged.frames, messages)
        name = "+".join(arranged.names)
        crs = grid.crs.to_string()
        tiled = _tiled_bounds(grid, layout, tile_lr, VECTOR_MARGIN_LR)
        given = (("buildings", buildings_vector), ("roads", roads_vector))
        vectors = {kind: Path(path) for kind, path in given if path is not None}  # None: no mask of that kind
        counts = {kind: _check_vector(path, kind, grid.crs, tiled, messages) for kind, path in vectors.items()}
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(out)  # hidden folders of a killed earlier run
        tmp = temp_path_for(out)
        tmp.mkdir()
        try:
            tiles, skipped = _write_tiles(arranged, grid, crs, layout, tile_lr, rscale, vectors,
                                          min_valid, tmp, report, input_level([Path(p) for p in revisits]))
            parts = {p: [t["name"] for t in tiles if t["part"] == p] for p in ("train", "held_out")}
            if skipped:
                messages.append(f"{len(skipped)} tile(s) skipped, less than {min_valid:.0%} of their pixels seen "
                                f"by a revisit (clouds or nodata): {', '.join(skipped)}")
            for part, names in parts.items():
                if not names:
                    raise AreaError(
                        f"every {part.replace('_', '-')} tile has less than {min_valid:.0%} of its pixels seen "
                        "by a revisit (clouds or nodata); add clearer revisits or lower min_valid"
                    )
            write_json_atomic(tmp / SPLIT_JSON, {"train": parts["train"], "val": parts["held_out"],
                                                 "test": parts["held_out"], "held_out_side": layout.side})
            record = {
                "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "root": str(out),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                # the inputs, as given (core.area.run_area compares them to reuse an area)
                "revisits": [str(p) for p in revisits], "band": _jsonable(band), "band_name": name,
                "bands": list(arranged.names),
                "vectors": {k: str(v) for k, v in given if v is not None},
                "tile_lr": tile_lr, "val_fraction": float(val_fraction), "gap_tiles": int(gap_tiles),
                "min_valid": float(min_valid),
                # the grid and the layout
                "crs": crs, "lr_transform": list(grid.transform)[:6], "size_lr": [grid.width, grid.height],
                "scale": SCALE, "grid_tiles": [layout.rows, layout.cols], "side": layout.side,
                "frames": arranged.labels(), "radiometric_scale": rscale, "features": counts,
                "train": parts["train"], "held_out": parts["held_out"],
                "gap": [_tile_name(r, c) for r, c in layout.tiles("gap")], "skipped": skipped,
                "tiles": tiles, "messages": messages,
            }
            write_json_atomic(tmp / AREA_JSON, record)
            replace_folder(tmp, out)  # an old area (or empty folder) there goes only then
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    report(1.0, f"{len(parts['train'])} training and {len(parts['held_out'])} held-out tile(s) in {out}")
    return AreaPrepared(out, parts["train"], parts["held_out"], skipped, layout.side, name, tile_lr, messages,
                        list(arranged.names))


def _check_settings(tile_lr: Any, min_valid: Any) -> int:
    if isinstance(tile_lr, bool) or not float(tile_lr).is_integer() or int(tile_lr) < MIN_TILE_LR:
        raise AreaError(f"the tile size must be a whole number of at least {MIN_TILE_LR} LR pixels, got {tile_lr}")
    if not 0.0 <= float(min_valid) <= 1.0:
        raise AreaError(f"min_valid must lie between 0 and 1, got {min_valid}")
    return int(tile_lr)


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an output that is a file, or a non-empty folder unless it holds an area to replace."""
    if out.exists() and not out.is_dir():
        raise AreaError(f"{out}: exists and is a file; choose a folder for the prepared area")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise AreaError(f"{out}: not empty; choose a new or empty folder, or overwrite the area prepared there "
                        "(overwrite=True, --overwrite)")
    if not (out / AREA_JSON).is_file():
        raise AreaError(f"{out}: not empty and not a prepared area (no {AREA_JSON}); it is not replaced, "
                        "choose a new or empty folder")


def _tile_layout(grid: Grid, tile_lr: int, val_fraction: float, gap_tiles: int, messages: List[str]) -> AreaLayout:
    rows, cols = grid.height // tile_lr, grid.width // tile_lr
    if rows < 1 or cols < 1:
        raise AreaError(
            f"the area ({grid.width} x {grid.height} LR px) is smaller than one tile ({tile_lr} x {tile_lr} px); "
            "choose a smaller tile size or revisits covering a larger area"
        )
    spare_x, spare_y = grid.width - cols * tile_lr, grid.height - rows * tile_lr
    if spare_x or spare_y:
        messages.append(f"the last {spare_x} LR column(s) and {spare_y} row(s) of the area do not fill a "
                        f"{tile_lr}-px tile and are left out")
    layout = plan_layout(rows, cols, val_fraction, gap_tiles)
    messages.append(f"{rows} x {cols} tiles of {tile_lr} LR px: {len(layout.tiles('held_out'))} held out on the "
                    f"{layout.side} side behind a gap of {gap_tiles} tile {'column' if layout.side == 'east' else 'row'}(s)")
    return layout


def _tiled_bounds(grid: Grid, layout: AreaLayout, tile_lr: int, margin: int) -> Tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) in the grid CRS of the tiled part, ``margin`` LR pixels wider all round."""
    corners = [apply(grid.transform, x, y) for x in (-margin, layout.cols * tile_lr + margin)
               for y in (-margin, layout.rows * tile_lr + margin)]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return min(xs), min(ys), max(xs), max(ys)


def _radiometric_scale(frames: Sequence[Frame], messages: List[str]) -> float:
    """The DN scale of the tiles: the inputs' own when they share one (so DNs are kept), else 1e-4."""
    maps = {(f.radiometry.scale, f.radiometry.offset) for f in frames}
    if len(maps) == 1:
        scale, offset = next(iter(maps))
        if offset == 0.0 and scale != 1.0 and scale > 0.0:
            return scale
    messages.append("the revisits are stored in the tiles as reflectance in digital numbers x 1e-4 "
                    f"(their own units: {'; '.join(sorted({f.radiometry.source for f in frames}))})")
    return S2_DN_SCALE


def _band_label(frames: Sequence[Frame], band: Any, band_name: Optional[str]) -> str:
    """The band name written into the tiles: ``band_name``, else the band's name as given or described."""
    if band_name is not None and str(band_name).strip():
        return str(band_name).strip()
    descs = [f.description.strip() for f in frames]
    asked = str(band).strip() if isinstance(band, str) else ""
    if asked and not asked.lstrip("-").isdigit() and asked.lower() != "all":
        # "b8" picks the band described "B8"; "B8" picks the dates "B8_2023-05-01", ...: the band is B8
        return descs[0] if descs[0].lower() == asked.lower() else asked
    if len(set(descs)) == 1 and descs[0]:
        return descs[0]
    # dates of one band ("B8_2023-05-01", "B8_2023-05-11"): the name before the date
    prefix = os.path.commonprefix(descs)
    dated = [i for i in range(1, len(prefix) - 1) if prefix[i] in "_- .:" and prefix[i + 1].isdigit()]
    return prefix[:dated[0]] if dated else (descs[0] or f"band{frames[0].bidx}")


def _jsonable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --------------------------------------------------------------------------- vectors


def _crs_label(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def _coords(c: Any) -> Iterator[Tuple[float, float]]:
    if isinstance(c[0], (list, tuple)):
        for part in c:
            yield from _coords(part)
    else:
        yield float(c[0]), float(c[1])


def _bbox(geom: Dict[str, Any]) -> Tuple[float, float, float, float]:
    if geom.get("type") == "GeometryCollection":
        boxes = [_bbox(g) for g in geom.get("geometries", [])]
        return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                max(b[3] for b in boxes)) if boxes else (math.inf, math.inf, -math.inf, -math.inf)
    pts = np.asarray(list(_coords(geom["coordinates"])), dtype=float)
    if pts.size == 0:
        return math.inf, math.inf, -math.inf, -math.inf
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def _check_vector(path: Path, kind: str, grid_crs: CRS, bounds: Tuple[float, float, float, float],
                  messages: List[str]) -> Dict[str, int]:
    """Refuse a vector layer that cannot label the area: empty, of the wrong kind, or elsewhere on Earth.

    Checked before any tile is cut, so a wrong layer costs seconds, not a
    prepared area of empty masks. Returns feature counts (total, on the area).
    """
    if not path.is_file():
        raise AreaError(f"{path}: the {kind} vector file does not exist")
    try:
        src_wkt, feats = read_features(path, None, "polygon" if kind == "buildings" else "line")
    except SceneError as exc:
        raise AreaError(str(exc)) from None
    if not feats:
        raise AreaError(f"{path}: the {kind} layer holds no features; export the {kind} of the area "
                        "(e.g. with QuickOSM) first")
    wanted = [g for g, attrs in feats if is_kind(g.get("type", ""), attrs, kind)]
    if not wanted:
        what = "a building polygon" if kind == "buildings" else "a road line (or a polygon with a highway tag)"
        raise AreaError(f"{path}: none of its {len(feats)} feature(s) is {what}; is this the {kind} layer?")
    if src_wkt:
        src = CRS.from_wkt(src_wkt)
    else:
        src = CRS.from_epsg(4326)
        messages.append(f"{path.name}: the layer has no CRS; assumed WGS 84 longitude/latitude (EPSG:4326)")
    minx, miny, maxx, maxy = transform_bounds(grid_crs, src, *bounds, densify_pts=21)
    on = 0
    for geom in wanted:
        x0, y0, x1, y1 = _bbox(geom)
        on += int(x1 >= minx and x0 <= maxx and y1 >= miny and y0 <= maxy)
    if on == 0:
        raise AreaError(
            f"{path}: none of its {len(wanted)} feature(s) falls on the area covered by the revisits "
            f"(area in {_crs_label(src)}: {minx:.4f}, {miny:.4f}, {maxx:.4f}, {maxy:.4f}); is it the {kind} "
            "layer of this area?"
        )
    reprojected = "" if src == grid_crs else f", reprojected from {_crs_label(src)} to {_crs_label(grid_crs)}"
    skipped = len(feats) - len(wanted)
    other = f" ({skipped} feature(s) that are not {kind} ignored)" if skipped else ""
    noun = "building" if kind == "buildings" else "road"
    messages.append(f"{path.name}: {on} of {len(wanted)} {noun} feature(s) on the area{reprojected}{other}")
    return {"features": len(feats), "of_kind": len(wanted), "on_area": on}


# --------------------------------------------------------------------------- tiles


def _tile_name(row: int, col: int) -> str:
    return f"tile_r{row:02d}_c{col:02d}"


def _write_tiles(
    arranged: AreaBands, grid: Grid, crs: str, layout: AreaLayout, tile_lr: int, rscale: float,
    vectors: Dict[str, Path], min_valid: float, folder: Path, report: Progress, level: Optional[str] = None,
) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Write every training and held-out tile with enough valid data; return (tile records, skipped names).

    ``level``: the revisits' processing level, written to each tile's scene.json
    so that a network fine-tuned on them records it in its card.

    Works through strips of tile rows: the LR frames are read per tile, the
    vectors are rasterized once per strip (not per tile: each call reads and
    reprojects the whole layer), whatever the number of bands.
    """
    labels = arranged.labels()
    wanted = {(r, c): layout.part(r, c) for r in range(layout.rows) for c in range(layout.cols)
              if layout.part(r, c) != "gap"}
    total = max(1, len(wanted))
    hr_tile = tile_lr * SCALE
    per_strip = max(1, STRIP_HR_PIXELS // (hr_tile * hr_tile * layout.cols))
    tiles: List[Dict[str, Any]] = []
    skipped: List[str] = []
    done = 0
    for r0 in range(0, layout.rows, per_strip):
        r1 = min(layout.rows, r0 + per_strip)
        kept = []
        for (r, c), part in wanted.items():
            if not r0 <= r < r1:
                continue
            lr, valid = _read_tile(arranged.dates, r, c, tile_lr)
            seen = float(valid.any(axis=0).mean())
            if seen < min_valid:
                skipped.append(_tile_name(r, c))
                done += 1
                continue
            kept.append((r, c, part, lr, valid, seen))
        if not kept:
            continue
        strip_transform = compose(compose(grid.transform, Affine.translation(0, r0 * tile_lr)),
                                  Affine.scale(1.0 / SCALE))
        shape = ((r1 - r0) * hr_tile, layout.cols * hr_tile)
        if vectors:
            report(done / total, f"rasterizing the {' and '.join(vectors)} for tile rows {r0}-{r1 - 1}")
        masks = {kind: rasterize_vectors(path, strip_transform, shape, crs, kind=kind)
                 for kind, path in vectors.items()}
        for r, c, part, lr, valid, seen in kept:
            name = _tile_name(r, c)
            ys = slice((r - r0) * hr_tile, (r - r0 + 1) * hr_tile)
            xs = slice(c * hr_tile, (c + 1) * hr_tile)
            lr_transform = compose(grid.transform, Affine.translation(c * tile_lr, r * tile_lr))
            scene = Scene(
                name=name, lr=lr, lr_valid=valid, hr=None, hr_valid=None,
                masks={kind: m[ys, xs].copy() for kind, m in masks.items()}, crs=crs,
                lr_transform=lr_transform, hr_transform=compose(lr_transform, Affine.scale(1.0 / SCALE)),
                bands=list(arranged.names), scale=SCALE, radiometric_scale=rscale,
                split="train" if part == "train" else "val",
                extra={"area": {"row": r, "col": c, "part": part, "revisits": labels},
                       **({"level": level} if level else {})},
            )
            write_scene(scene, folder / name, overwrite=False, root=folder)
            left, top = apply(lr_transform, 0, 0)
            right, bottom = apply(lr_transform, tile_lr, tile_lr)
            tiles.append({"name": name, "row": r, "col": c, "part": part, "valid_fraction": round(seen, 4),
                          "bounds": [min(left, right), min(top, bottom), max(left, right), max(top, bottom)]})
            done += 1
            report(done / total, f"wrote {name} ({part.replace('_', '-')})")
    return tiles, skipped


def _read_tile(dates: Sequence[Sequence[Frame]], row: int, col: int,
               tile_lr: int) -> Tuple[np.ndarray, np.ndarray]:
    """LR reflectance [T, C, t, t] and valid [T, t, t] of one tile, every revisit on the reference grid.

    A revisit's pixel is valid only where all its bands are (a date's bands share its clouds).
    """
    r0, c0 = row * tile_lr, col * tile_lr
    data, valid = [], []
    for group in dates:
        reads = [f.read_padded(r0, r0 + tile_lr, c0, c0 + tile_lr) for f in group]
        data.append(np.stack([d for d, _ in reads]))
        valid.append(np.logical_and.reduce([v for _, v in reads]))
    return np.stack(data).astype(np.float32, copy=False), np.stack(valid)


# --------------------------------------------------------------------------- reading


def read_area(area_root: PathLike) -> Dict[str, Any]:
    """The record of a prepared area (``area.json``), or :class:`AreaError` when ``area_root`` is not one."""
    root = Path(area_root)
    path = root / AREA_JSON
    if not path.is_file():
        raise AreaError(f"{root}: not a prepared area (no {AREA_JSON}); prepare one with "
                        "`python -m core.cli area prepare` (or `area run`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AreaError(f"{path}: not valid JSON ({exc})") from None
    missing = [k for k in ("tile_lr", "train", "held_out", "side", "tiles") if not isinstance(data, dict) or k not in data]
    if missing:
        raise AreaError(f"{path}: not a prepared area's record (missing {', '.join(missing)})")
    if not (root / SPLIT_JSON).is_file():
        raise AreaError(f"{root / SPLIT_JSON}: missing; prepare the area again")
    data["root"] = str(root)
    return data
