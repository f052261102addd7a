"""The one-command demo: super-resolve a synthetic scene with the shipped models.

Why a separate module: ``make demo`` is the first thing a new user runs, so the
pipeline lives in core (testable, no QGIS) and ``scripts/demo.py`` only adds the
QGIS project file on top. Every step writes real GeoTIFFs that open in QGIS.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

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
    """Band 1 of an image raster as reflectance (the same unit rules as inference), NaN where nodata."""
    import rasterio

    from ..io.radiometry import detect_radiometry

    with rasterio.open(path) as src:
        values = src.read(1, masked=True)
        valid = ~np.ma.getmaskarray(values)
        data = np.asarray(values.filled(0), dtype=np.float32)
        radiometry = detect_radiometry(src, 1, data[valid][::97], src.dtypes[0])
    out = radiometry.to_reflectance(data).astype(np.float32)
    out[~valid] = np.nan
    return out


def _read_mask(path: Path) -> np.ndarray:
    """A mask GeoTIFF written by ``segment`` (1 = target; 0 and nodata = not) as bool."""
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1) == 1


def run_demo(
    out_dir: Path,
    models_dir: Path,
    seed: int = 11,
    size_hr: int = 384,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Run the whole demo and return where everything is."""
    from .. import api
    from ..data.scene import read_scene, write_scene
    from ..data.synthetic.towns import make_scene
    from .metrics import SegCounts, cpsnr, cssim
    from .report import plot_sr_comparison, render_markdown

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

    say(f"[1/5] synthetic scene (seed {seed}, {size_hr} px HR)")
    frames = int(api.model_card(ckpt["rams_baseline"]).frames)
    scene = make_scene(size_hr=size_hr, frames=frames, seed=seed, real_world=False, name="demo_scene")
    scene_dir = write_scene(scene, out_dir / "scene")
    scene = read_scene(scene_dir)
    lr_files = sorted((scene_dir / "lr").glob("*.tif"))
    result = DemoResult(out_dir=out_dir, scene_dir=scene_dir)

    say("[2/5] super-resolution: RAMS on all revisits, HAT on the first")
    for role in SR_TITLES:
        inputs = [str(p) for p in (lr_files if role.startswith("rams") else lr_files[:1])]
        out = out_dir / f"sr_{role}.tif"
        api.super_resolve(inputs, str(out), str(ckpt[role]))
        result.outputs[role] = out
        say(f"      {SR_TITLES[role]:<22} -> {out}")

    say("[3/5] segmentation of buildings and roads on every output and on HR")
    targets = {"buildings": ckpt["seg_buildings"], "roads": ckpt["seg_roads"]}
    to_segment = dict(result.outputs)
    to_segment["hr"] = scene_dir / "hr.tif"
    for role, raster in to_segment.items():
        result.masks[role] = {}
        for target, seg_ckpt in targets.items():
            mask = out_dir / f"mask_{target}_{role}.tif"
            prob = out_dir / f"prob_{target}_{role}.tif"
            api.segment(str(raster), str(seg_ckpt), out_mask=str(mask), out_prob=str(prob))
            result.masks[role][target] = mask

    say("[4/5] metrics against the HR image and the exact masks")
    hr = scene.hr[0]
    valid = scene.hr_valid
    rows = []
    for role in list(SR_TITLES) + ["hr"]:
        row: dict = {"id": role, "name": SR_TITLES.get(role, "HR image (upper bound)"), "data": "simulated"}
        if role != "hr":
            sr = _read_reflectance(result.outputs[role])
            ok = valid & np.isfinite(sr)
            sr = np.nan_to_num(sr)
            row["cPSNR"] = cpsnr(sr, hr, ok)
            row["cSSIM"] = cssim(sr, hr, ok)
        else:
            row["cPSNR"] = None
            row["cSSIM"] = None
        row["LPIPS"] = None
        for target in ("buildings", "roads"):
            counts = SegCounts()
            pred = _read_mask(result.masks[role][target])
            counts.update(pred.astype(np.float32), scene.masks[target], valid)
            row[f"Dice {target}"] = counts.dice
        rows.append(row)
    result.metrics = rows
    table = render_markdown(rows, title="Demo scene: baseline vs task-driven SR")
    result.table_md = out_dir / "metrics.md"
    result.table_md.write_text(table, encoding="utf-8")
    (out_dir / "metrics.json").write_text(json.dumps(rows, indent=2, default=float), encoding="utf-8")

    say("[5/5] side-by-side figure")
    lr_first = _read_reflectance(lr_files[0])
    panels = [("LR revisit (10 m)", lr_first, None)]
    for role in ("rams_baseline", "rams_taskdriven", "hat_baseline", "hat_taskdriven"):
        overlays = {t: _read_mask(result.masks[role][t]) for t in ("buildings", "roads")}
        panels.append((SR_TITLES[role], _read_reflectance(result.outputs[role]), overlays))
    panels.append(("HR reference", hr, {t: scene.masks[t] for t in ("buildings", "roads")}))
    result.figure = out_dir / "comparison.png"
    plot_sr_comparison(panels, result.figure)
    result.seconds = time.time() - start
    return result
