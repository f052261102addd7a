"""Turn real EuroSAT multispectral patches into a weak-label folder for the segmenters (and a held-out set).

Why: the buildings and roads networks learned from synthetic worlds only; EuroSAT
(Helber et al., 2019: Sentinel-2 L1C patches of 34 European countries, 64 x 64 px at
10 m, one land-use class per patch) is real imagery with a near-infrared band and a
label per patch. A *Residential* or *Industrial* patch holds buildings, a *Forest*,
*SeaLake*, *Pasture* or field patch holds none. The segmenters run on super-resolved
output, so each patch is super-resolved here with the SR network the plugin ships,
anchored exactly as the plugin writes it, and the 3.33 m result is what the
segmenter learns from (``data.weak.root`` + loss ``weak_real``, core.data.weak_labels).

What it writes into ``--out`` (nothing elsewhere):

* ``labels.json`` and ``images/<level>/<Class>/<name>.tif``: the training half, at
  L1C as delivered and, with ``--levels L1C L2A~``, at an approximate L2A
  (dark-object subtraction per patch, offsets capped: scripts/real_scenes/scoring.py).
* ``holdout/<Class>/<name>.tif`` (4 bands at 10 m, as delivered) and
  ``holdout.json``: the patches kept out of training, for
  ``scripts/evaluate_labelled_patches.py``.

Patches within ``--exclude-km`` of any raster given with ``--exclude-near`` (the
evaluation scenes) go to neither half, so no evaluated place is learned.

Usage::

    python scripts/weak_labels_from_eurosat.py --eurosat EUROSAT_MS_DIR --out weak_eurosat \\
        --exclude-near eval1.tif eval2.tif ... [--sr resources/models/hat_taskdriven.safetensors]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.real_scenes.cli import run_reporting_errors  # noqa: E402
from scripts.real_scenes.scoring import patch_l2a_approx  # noqa: E402

#: EuroSAT MS band order as its GeoTIFFs hold them (B8A last, as its per-band means show); B02-B04 and B08,
#: all this project reads, sit at the same places in the order torchgeo lists too
EUROSAT_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
TAKEN = ("B02", "B03", "B04", "B08")
#: what each EuroSAT class says about the two targets. Highway patches run through fields and towns, River
#: patches past towns: unknown for buildings. Streets run through residential land, farm tracks through
#: fields: roads are known present only on Highway and absent only where no track goes (forest, water).
CLASS_LABELS: Dict[str, Dict[str, str]] = {
    "Residential": {"buildings": "present", "roads": "unknown"},
    "Industrial": {"buildings": "present", "roads": "unknown"},
    "Highway": {"buildings": "unknown", "roads": "present"},
    "Forest": {"buildings": "absent", "roads": "absent"},
    "SeaLake": {"buildings": "absent", "roads": "absent"},
    "Pasture": {"buildings": "absent", "roads": "unknown"},
    "HerbaceousVegetation": {"buildings": "absent", "roads": "unknown"},
    "AnnualCrop": {"buildings": "absent", "roads": "unknown"},
    "PermanentCrop": {"buildings": "absent", "roads": "unknown"},
    "River": {"buildings": "unknown", "roads": "unknown"},
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eurosat", required=True, help="folder of EuroSAT MS class folders (<Class>/<Class>_<n>.tif)")
    ap.add_argument("--out", required=True, help="weak-label folder to write (created; must not exist yet)")
    ap.add_argument("--sr", default=None, help="SR checkpoint whose output the segmenter will see (default: the "
                    "shipped task-driven HAT)")
    ap.add_argument("--levels", nargs="+", default=["L1C", "L2A~"], choices=["L1C", "L2A~"],
                    help="radiometric levels of the training images (default: both)")
    ap.add_argument("--holdout", type=float, default=0.4, help="share of each class kept out for evaluation")
    ap.add_argument("--exclude-near", nargs="*", default=[], help="rasters of evaluation scenes: patches near "
                    "them are used nowhere")
    ap.add_argument("--exclude-km", type=float, default=5.0, help="distance to those rasters' footprints (km)")
    ap.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    return ap.parse_args(argv)


def _centre_lonlat(path: Path) -> Tuple[float, float, Tuple[float, float, float, float]]:
    import rasterio
    from rasterio.warp import transform_bounds

    with rasterio.open(path) as ds:
        box = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box


def _km_to_box(lon: float, lat: float, box: Tuple[float, float, float, float]) -> float:
    """Distance (km, local flat Earth) from a point to a lon/lat box; 0 inside it."""
    dx = max(box[0] - lon, 0.0, lon - box[2]) * 111.32 * math.cos(math.radians(lat))
    dy = max(box[1] - lat, 0.0, lat - box[3]) * 110.57
    return math.hypot(dx, dy)


def _held_out(path: Path, share: float) -> bool:
    """A patch's half, fixed by its content (stable across copies and file orders)."""
    digest = hashlib.sha1(path.read_bytes()).digest()
    return int.from_bytes(digest[:4], "big") / 2 ** 32 < share


def _read_patch(path: Path) -> Tuple[np.ndarray, str, object]:
    import rasterio

    with rasterio.open(path) as ds:
        if ds.count != len(EUROSAT_BANDS):
            raise ValueError(f"{path}: {ds.count} bands, a EuroSAT MS patch has {len(EUROSAT_BANDS)}")
        dn = ds.read([EUROSAT_BANDS.index(b) + 1 for b in TAKEN])
        return dn, ds.crs.to_string(), ds.transform


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_reporting_errors(_run, parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    from core import api
    from core.data.geotiff import write_geotiff
    from core.data.weak_labels import FORMAT, LABELS_FILE
    from core.options import SuperResolveOptions

    src, out = Path(args.eurosat), Path(args.out)
    if out.exists():
        raise ValueError(f"{out}: exists already; give a new folder")
    sr_ckpt = Path(args.sr) if args.sr else api.shipped_models_dir() / "hat_taskdriven.safetensors"
    avoid = [_centre_lonlat(Path(p))[2] for p in args.exclude_near]
    patches = sorted(p for p in src.glob("*/*.tif") if p.parent.name in CLASS_LABELS)
    if not patches:
        raise ValueError(f"{src}: no EuroSAT class folders ({', '.join(CLASS_LABELS)}) with .tif patches")
    out.mkdir(parents=True)
    entries: List[Dict[str, str]] = []
    holdout: List[Dict[str, str]] = []
    skipped = 0
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        for n, path in enumerate(patches, 1):
            cls = path.parent.name
            lon, lat, _ = _centre_lonlat(path)
            if any(_km_to_box(lon, lat, box) < args.exclude_km for box in avoid):
                skipped += 1
                continue
            dn, crs, transform = _read_patch(path)
            if _held_out(path, args.holdout):
                dest = out / "holdout" / cls / path.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                write_geotiff(dest, dn, crs, transform, nodata=0, descriptions=list(TAKEN))
                holdout.append({"path": f"holdout/{cls}/{path.name}", "group": cls, **CLASS_LABELS[cls]})
                continue
            for level in args.levels:
                data = dn if level == "L1C" else patch_l2a_approx(dn)
                lr = Path(tmp) / f"{cls}_{path.stem}_{level[:3]}.tif"
                write_geotiff(lr, data, crs, transform, nodata=0, descriptions=list(TAKEN))
                tag = level.replace("~", "approx")
                rel = f"images/{tag}/{cls}/{path.name}"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                api.super_resolve([str(lr)], str(out / rel), str(sr_ckpt), SuperResolveOptions(all_bands=True))
                entries.append({"path": rel, "group": cls, "level": level, **CLASS_LABELS[cls]})
            if n % 25 == 0:
                print(f"{n}/{len(patches)} patches", flush=True)
    meta = {"format": FORMAT, "radiometric_scale": 1e-4,
            "source": f"EuroSAT MS patches from {src}, super-resolved with {sr_ckpt.name} (anchored, as the "
                      f"plugin writes it)", "images": entries}
    (out / LABELS_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    (out / "holdout.json").write_text(json.dumps({"format": FORMAT, "radiometric_scale": 1e-4,
                                                  "images": holdout}, indent=1), encoding="utf-8")
    per_class: Dict[str, List[int]] = {}
    for e in entries:
        per_class.setdefault(e["group"], [0, 0])[0] += 1
    for e in holdout:
        per_class.setdefault(e["group"], [0, 0])[1] += 1
    print(f"{len(entries)} training images ({', '.join(args.levels)}), {len(holdout)} held-out patches, "
          f"{skipped} left out within {args.exclude_km:g} km of an evaluation scene")
    for cls, (a, b) in sorted(per_class.items()):
        print(f"  {cls:<22} training images {a:>4}   held out {b:>3}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
