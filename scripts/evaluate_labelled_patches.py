"""Score the shipped networks on real patches labelled as a whole (held-out EuroSAT): share flagged per class.

Why: a real scene with land-use polygons (scripts/evaluate_real_scenes.py) is one
place and one date; held-out EuroSAT patches are many places across Europe, all
seasons, each labelled with what it is (Residential, Industrial, Highway, Forest,
SeaLake...). For each patch, as the plugin does it: super-resolve (or bicubic),
then segment with the buildings and roads networks, then count the share of its
pixels flagged. The table gives, per class, the mean share flagged as building and
as road, at L1C as delivered and at an approximate L2A (dark-object subtraction).
What to expect from a network that sees real buildings: Residential and Industrial
patches flagged far more than Forest, SeaLake, Pasture and fields (object-free).

Input: a folder written by ``scripts/weak_labels_from_eurosat.py`` (its
``holdout.json`` and ``holdout/``). Outputs are cached in ``--work`` under a key of
the checkpoints' contents, so a new segmenter reuses the SR outputs.

Usage::

    python scripts/evaluate_labelled_patches.py --patches weak_eurosat --work runs/patches \\
        [--models resources/models] [--methods bicubic hat_baseline hat_taskdriven] [--out table.md]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.real_scenes.cli import run_reporting_errors  # noqa: E402
from scripts.real_scenes.scoring import METHODS, SEG_MODELS, patch_l2a_approx, read_masks  # noqa: E402

#: classes whose patches hold no building and no road a segmenter should find (fields have farm tracks, so
#: they count only for buildings)
OBJECT_FREE = ("Forest", "SeaLake", "Pasture", "HerbaceousVegetation", "AnnualCrop", "PermanentCrop")
BUILT = ("Residential", "Industrial")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patches", required=True, help="folder with holdout.json (scripts/weak_labels_from_eurosat.py)")
    ap.add_argument("--work", required=True, help="folder for SR outputs and masks (cached by checkpoint)")
    ap.add_argument("--models", default=None, help="folder of the six checkpoints (default: the shipped ones)")
    ap.add_argument("--methods", nargs="+", default=["bicubic", "hat_baseline", "hat_taskdriven"],
                    choices=[m for m in METHODS if not m.startswith("rams")])
    ap.add_argument("--levels", nargs="+", default=["L1C", "L2A~"], choices=["L1C", "L2A~"])
    ap.add_argument("--out", default=None, help="also write the table (Markdown) and a JSON beside it")
    ap.add_argument("--pictures", default=None, help="also draw a PNG: held-out patches of four classes, true "
                    "colour of the last method's output at the first level, buildings red, roads yellow")
    ap.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    return ap.parse_args(argv)


def _key(*paths: Path) -> str:
    h = hashlib.sha1()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:10]


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_reporting_errors(_run, parse_args(argv), (OSError, ValueError, KeyError))


def _run(args: argparse.Namespace) -> int:
    import rasterio

    from core import api
    from core.data.geotiff import write_geotiff
    from core.io.paths import inside
    from core.options import SegmentOptions, SuperResolveOptions
    from scripts.evaluate_real_scenes import bicubic_output

    src, work = Path(args.patches), Path(args.work)
    index = json.loads((src / "holdout.json").read_text(encoding="utf-8"))
    models = Path(args.models) if args.models else api.shipped_models_dir()
    segs = [models / SEG_MODELS["buildings"], models / SEG_MODELS["roads"]]
    seg_key = _key(*segs)
    rows: Dict[str, Dict[str, Dict[str, List[float]]]] = {}
    drawn: List[tuple] = []  # (group, SR path, mask path) of the last method at the first level
    images = index["images"]
    for level in args.levels:
        tag = level.replace("~", "approx")
        for method in args.methods:
            ckpt = models / str(METHODS[method][1]) if METHODS[method][1] else None
            sr_key = _key(ckpt) if ckpt else "bicubic"
            shares = rows.setdefault(f"{level}|{method}", {})
            for entry in images:
                patch = inside(src, entry["path"], what="holdout.json image path")
                stem = f"{entry['group']}_{patch.stem}"
                lr = work / "lr" / tag / f"{stem}.tif"
                if not lr.is_file():
                    with rasterio.open(patch) as ds:
                        dn, crs, transform = ds.read(), ds.crs.to_string(), ds.transform
                        names = list(ds.descriptions)
                    if level != "L1C":
                        dn = patch_l2a_approx(dn)
                    lr.parent.mkdir(parents=True, exist_ok=True)
                    write_geotiff(lr, dn, crs, transform, nodata=0, descriptions=names)
                sr = work / "sr" / tag / f"{method}_{sr_key}" / f"{stem}.tif"
                if not sr.is_file():
                    sr.parent.mkdir(parents=True, exist_ok=True)
                    if ckpt is None:
                        bicubic_output(lr, sr)
                    else:
                        api.super_resolve([str(lr)], str(sr), str(ckpt), SuperResolveOptions(all_bands=True))
                mask = work / "mask" / tag / f"{method}_{sr_key}_{seg_key}" / f"{stem}.tif"
                if not mask.is_file():
                    mask.parent.mkdir(parents=True, exist_ok=True)
                    api.segment(str(sr), [str(s) for s in segs], out_mask=str(mask), options=SegmentOptions())
                b, r, v = read_masks(mask)
                if level == args.levels[0] and method == args.methods[-1]:
                    drawn.append((entry["group"], sr, mask))
                n = max(int(v.sum()), 1)
                shares.setdefault(entry["group"], []).append([float((b & v).sum()) / n, float((r & v).sum()) / n])
            print(f"{level} {method}: {len(images)} patches", flush=True)
    text = _table(rows, args)
    print(text)
    if args.pictures:
        title = f"{args.levels[0]}: {METHODS[args.methods[-1]][0]} + segmentation"
        print(f"picture: {_picture(drawn, Path(args.pictures), title)}")
    if args.out:
        out = Path(args.out)
        out.write_text(text + "\n", encoding="utf-8")
        summary = {k: {g: np.mean(np.asarray(v), 0).round(5).tolist() for g, v in d.items()} for k, d in rows.items()}
        out.with_suffix(".json").write_text(json.dumps({"models": str(models), "shares": summary}, indent=1),
                                            encoding="utf-8")
    return 0


def _picture(drawn: Sequence[tuple], out: Path, title: str, per_class: int = 3) -> Path:
    """Three held-out patches each of Residential, Industrial, Highway and Forest, as the plugin shows them."""
    import rasterio

    from core.evaluation.report import plot_sr_comparison

    panels = []
    for group in ("Residential", "Industrial", "Highway", "Forest"):
        for _g, sr, mask in [d for d in drawn if d[0] == group][:per_class]:
            with rasterio.open(sr) as ds:
                names = [str(n) for n in ds.descriptions]
                rgb = np.stack([ds.read(names.index(b) + 1).astype(np.float32) * 1e-4 for b in ("B04", "B03", "B02")])
            b, r, _v = read_masks(mask)
            panels.append((f"{group} ({Path(sr).stem.split('_')[-1]})", rgb, {"buildings": b, "roads": r}))
    if not panels:
        raise ValueError("no held-out patch of Residential, Industrial, Highway or Forest to draw")
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_sr_comparison([(f"{title}: {t}" if i == 0 else t, im, ov) for i, (t, im, ov) in enumerate(panels)], out,
                       ncols=per_class * 2)
    return out


def _mean(d: Dict[str, List[List[float]]], groups: Sequence[str], col: int) -> Optional[float]:
    values = [s[col] for g in groups for s in d.get(g, [])]
    return float(np.mean(values)) if values else None


def _table(rows: Dict[str, Dict[str, List[List[float]]]], args: argparse.Namespace) -> str:
    groups = sorted({g for d in rows.values() for g in d})
    head = ["level", "method", "built (Residential, Industrial): building", "object-free: building",
            "ratio", "Highway: road", "Forest, SeaLake: road"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for key, d in rows.items():
        level, method = key.split("|")
        built, free = _mean(d, BUILT, 0), _mean(d, OBJECT_FREE, 0)
        ratio = built / max(free, 1e-3) if built is not None and free is not None else None
        hw, fs = _mean(d, ("Highway",), 1), _mean(d, ("Forest", "SeaLake"), 1)
        cells = [level, METHODS[method][0], _pct(built), _pct(free), "n/a" if ratio is None else f"{ratio:.1f}x",
                 _pct(hw), _pct(fs)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per class, mean share of each patch flagged as building / road:", "",
              "| level | method | " + " | ".join(groups) + " |", "|---|---|" + "---:|" * len(groups)]
    for key, d in rows.items():
        level, method = key.split("|")
        cells = [f"{_pct(_mean(d, (g,), 0))} / {_pct(_mean(d, (g,), 1))}" for g in groups]
        lines.append(f"| {level} | {METHODS[method][0]} | " + " | ".join(cells) + " |")
    n = {g: len(rows[next(iter(rows))].get(g, [])) for g in groups}
    lines += ["", "Patches per class: " + ", ".join(f"{g} {c}" for g, c in n.items()) + "."]
    return "\n".join(lines)


def _pct(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


if __name__ == "__main__":
    raise SystemExit(main())
