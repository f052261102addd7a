"""The one-command demo: super-resolve a synthetic world-v2 scene with the shipped models.

Why a separate module: ``make demo`` is the first thing a new user runs, so the
pipeline lives in core (testable, no QGIS) and ``scripts/demo.py`` only adds the
QGIS project file on top. Every step writes real GeoTIFFs that open in QGIS,
through the same engine calls ``core.api`` makes for the plugin.

Why world v2, real-world-like: the scene is mostly fields, forest and water with
a village, and its revisits differ in phenology, haze, cloud and sub-pixel
shift, as an analyst's dates do. Beside fidelity and Dice the table reports
what matters on such land: the share of object-free land each output makes the
networks flag (beside the same share on a bicubic upsampling: no network) and
the 3-px grid score (DESIGN.md section 4).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import rasterio

from ..data.scene import read_scene, to_dn, write_geotiff, write_scene
from ..data.synthetic.world_v2 import make_world_scene
from ..inference.segment import segment
from ..inference.sr import super_resolve
from ..io.qgis_style import TRUE_COLOUR  # red, green, blue
from ..io.sentinel2 import canonical_band
from ..models.artifacts import grid_score
from ..models.zoo import read_card
from ..options import SegmentOptions, SuperResolveOptions
from .compare import band_names, read_band_reflectance
from .evaluate import FP_MARGIN_HR
from .metrics import SegCounts, cpsnr, cssim
from .report import MetricSpec, plot_sr_comparison, render_markdown
from .scene_predict import bicubic_baseline, object_free

log = logging.getLogger(__name__)

#: Shipped starter checkpoints the demo needs, by role.
DEMO_MODELS: Dict[str, str] = {
    "rams_baseline": "rams_baseline.safetensors",
    "rams_taskdriven": "rams_taskdriven.safetensors",
    "hat_baseline": "hat_baseline.safetensors",
    "hat_taskdriven": "hat_taskdriven.safetensors",
    "seg_buildings": "unetpp_buildings.safetensors",
    "seg_roads": "unetpp_roads.safetensors",
}

#: Human titles of the SR outputs, in the order they are shown.
SR_TITLES: Dict[str, str] = {
    "rams_baseline": "RAMS baseline (cL1)",
    "rams_taskdriven": "RAMS task-driven",
    "hat_baseline": "HAT baseline (cL1)",
    "hat_taskdriven": "HAT task-driven",
}
#: The no-network reference: bicubic upsampling of the mean of the revisits, segmented like the outputs.
BICUBIC = "bicubic"
BICUBIC_TITLE = "Bicubic (no network)"


class DemoNotReady(RuntimeError):
    """Raised when the starter checkpoints are missing (not built yet)."""


@dataclass
class DemoResult:
    out_dir: Path
    scene_dir: Path
    outputs: Dict[str, Path] = field(default_factory=dict)
    masks: Dict[str, Dict[str, Path]] = field(default_factory=dict)
    metrics: List[dict] = field(default_factory=list)
    figure: Optional[Path] = None
    table_md: Optional[Path] = None
    seconds: float = 0.0


def missing_models(models_dir: Path) -> List[str]:
    return [name for name in DEMO_MODELS.values() if not (models_dir / name).is_file()]


def _read_reflectance(path: Path) -> np.ndarray:
    """Every band of an image raster as reflectance ``[C, H, W]`` (compare's reader, per band), NaN where nodata."""

    with rasterio.open(path) as src:
        count = src.count
    bands = []
    for b in range(1, count + 1):
        values, valid, _grid, _units = read_band_reflectance(str(path), b)
        bands.append(np.where(valid, values, np.nan))
    return np.stack(bands).astype(np.float32)


def _read_mask(path: Path) -> np.ndarray:
    """A mask GeoTIFF written by ``segment`` (1 = target; 0 and nodata = not) as bool."""
    with rasterio.open(path) as src:
        return src.read(1) == 1


def _rgb(image: np.ndarray, bands) -> np.ndarray:
    """The true-colour composite [3, H, W] of ``image`` [C, H, W], or its only band [H, W]."""
    names = [str(b) for b in bands]
    if all(b in names for b in TRUE_COLOUR) and image.shape[0] == len(names):
        return np.stack([image[names.index(b)] for b in TRUE_COLOUR])
    return image[-1]


def run_demo(
    out_dir: Path,
    models_dir: Path,
    seed: int = 11,
    size_hr: int = 384,
    say: Callable[[str], None] = print,
    real_world: bool = True,
) -> DemoResult:
    """Run the whole demo and return where everything is.

    The scene is world v2 (4 bands); models whose cards name one band are run
    on that band of it (``band`` option), 4-band ones on all four at once.
    """
    start = time.time()
    out_dir = Path(out_dir)
    models_dir = Path(models_dir)
    missing = missing_models(models_dir)
    if missing:
        raise DemoNotReady(
            "The starter checkpoints are not built yet: missing "
            + ", ".join(missing)
            + f" in {models_dir}. Run `make weights` to train them."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = {role: models_dir / name for role, name in DEMO_MODELS.items()}
    cards = {role: read_card(path) for role, path in ckpt.items()}

    kind = "real-world-like" if real_world else "simulated"
    say(f"[1/5] synthetic world-v2 scene, {kind} revisits (seed {seed}, {size_hr} px HR)")
    frames = int(cards["rams_baseline"].frames or 1)
    scene = make_world_scene(size_hr=size_hr, frames=frames, seed=seed, real_world=real_world, name="demo_scene",
                             object_free=False)
    scene_dir = write_scene(scene, out_dir / "scene")
    scene = read_scene(scene_dir)
    scene_bands = [canonical_band(b) for b in scene.bands]
    lr_files = sorted((scene_dir / "lr").glob("*.tif"))
    result = DemoResult(out_dir=out_dir, scene_dir=scene_dir)

    def sr_options(role: str) -> SuperResolveOptions:
        bands = [canonical_band(b) for b in cards[role].bands]
        if len(bands) > 1:
            return SuperResolveOptions(all_bands=True)
        return SuperResolveOptions(band=scene_bands.index(bands[0]) + 1)

    # single-image networks get the clearest date, as an analyst would pick it
    clear_share = np.asarray(scene.lr_valid, dtype=bool).reshape(len(lr_files), -1).mean(1)
    clearest = lr_files[int(np.argmax(clear_share))]
    say(f"[2/5] super-resolution: RAMS on all {len(lr_files)} revisits, HAT on the clearest ({clearest.stem}, "
        f"{100 * clear_share.max():.0f} % clear); bicubic for reference")
    for role in SR_TITLES:
        inputs = [str(p) for p in (lr_files if role.startswith("rams") else [clearest])]
        out = out_dir / f"sr_{role}.tif"
        super_resolve(inputs, str(out), str(ckpt[role]), sr_options(role))
        result.outputs[role] = out
        say(f"      {SR_TITLES[role]:<22} -> {out}")
    bicubic = bicubic_baseline(scene, range(len(scene_bands)), range(scene.lr.shape[0]))
    dn = to_dn(bicubic * 10000.0, np.ones(bicubic.shape[1:], bool), 1.0)  # L2A-like DN = reflectance x 1e4
    result.outputs[BICUBIC] = write_geotiff(out_dir / "bicubic.tif", dn, scene.crs, scene.hr_transform, nodata=0,
                                            descriptions=scene_bands)

    say("[3/5] segmentation of buildings and roads on every output and on HR")
    targets = {"buildings": ckpt["seg_buildings"], "roads": ckpt["seg_roads"]}
    to_segment = dict(result.outputs)
    to_segment["hr"] = scene_dir / "hr.tif"
    for role, raster in to_segment.items():
        result.masks[role] = {}
        for target, seg_ckpt in targets.items():
            mask = out_dir / f"mask_{target}_{role}.tif"
            prob = out_dir / f"prob_{target}_{role}.tif"
            segment(str(raster), str(seg_ckpt), out_mask=str(mask), out_prob=str(prob),
                    options=SegmentOptions())
            result.masks[role][target] = mask

    say("[4/5] metrics against the HR image and the exact masks")
    hr = np.asarray(scene.hr, dtype=np.float32)
    valid = np.asarray(scene.hr_valid, dtype=bool)
    land = object_free([scene.masks["buildings"], scene.masks["roads"]], FP_MARGIN_HR) & valid
    rows = []
    for role in [BICUBIC, *SR_TITLES, "hr"]:
        title = {BICUBIC: BICUBIC_TITLE, "hr": "HR image (upper bound)"}.get(role) or SR_TITLES[role]
        row: dict = {"id": role, "name": title, "data": kind}
        if role != "hr":
            sr = _read_reflectance(result.outputs[role])
            idx = [scene_bands.index(canonical_band(b)) for b in _output_bands(result.outputs[role])]
            ok = valid & np.isfinite(sr).all(0)
            sr = np.nan_to_num(sr)
            row["cPSNR"] = cpsnr(sr, hr[idx], ok)
            row["cSSIM"] = cssim(sr, hr[idx], ok)
            row["grid_score"] = grid_score(sr, ok)
        for target in ("buildings", "roads"):
            counts = SegCounts()
            pred = _read_mask(result.masks[role][target])
            counts.update(pred.astype(np.float32), scene.masks[target], valid)
            row[f"Dice {target}"] = counts.dice
            row[f"fp_{target}"] = float(pred[land].mean()) if land.any() else None
        rows.append(row)
    result.metrics = rows
    metrics = (
        MetricSpec("cpsnr", "cPSNR [dB]", True, "{:.2f}"),
        MetricSpec("cssim", "cSSIM", True, "{:.4f}"),
        MetricSpec("dice_buildings", "Building Dice", True, "{:.3f}"),
        MetricSpec("dice_roads", "Road Dice", True, "{:.3f}"),
        MetricSpec("fp_buildings", "Phantom buildings (share of object-free land)", False, "{:.2%}"),
        MetricSpec("fp_roads", "Phantom roads (share of object-free land)", False, "{:.2%}"),
        MetricSpec("grid_score", "3-px grid score (~1-2: no grid)", False, "{:.2f}"),
    )
    table = render_markdown(rows, title="Demo scene: bicubic vs baseline vs task-driven SR", metrics=metrics)
    result.table_md = out_dir / "metrics.md"
    result.table_md.write_text(table, encoding="utf-8")
    (out_dir / "metrics.json").write_text(json.dumps(rows, indent=2, default=float), encoding="utf-8")

    say("[5/5] side-by-side figure (true colour where the outputs have B04, B03, B02)")
    panels = [(f"clearest LR revisit (10 m, {clearest.stem})", _rgb(_read_reflectance(clearest), scene_bands), None)]
    for role in (BICUBIC, *SR_TITLES):
        image = _read_reflectance(result.outputs[role])
        overlays = {t: _read_mask(result.masks[role][t]) for t in ("buildings", "roads")}
        panels.append(({BICUBIC: BICUBIC_TITLE}.get(role, SR_TITLES.get(role)),
                       _rgb(image, _output_bands(result.outputs[role])), overlays))
    panels.append(("HR reference", _rgb(hr, scene_bands), {t: scene.masks[t] for t in ("buildings", "roads")}))
    result.figure = out_dir / "comparison.png"
    plot_sr_comparison(panels, result.figure, ncols=4)
    result.seconds = time.time() - start
    return result


def _output_bands(path: Path) -> List[str]:
    """The S-2 band names of an output's bands (compare's reading of descriptions and tags), e.g. ``['B02', ...]``."""
    names = band_names(str(path))
    if any(n is None for n in names):
        raise ValueError(f"{path}: band descriptions {names} do not all name a Sentinel-2 band")
    return [str(n) for n in names]
