"""Segmentation networks on the HR images of synthetic held-out scenes: Dice per world and city type, phantom share, L1C-like too.

For each pair of building/road checkpoints given, on every scene (or one split) of each
dataset root (``synth --world v2`` or ``v3``; a v3 scene names its
``city_type``), through the plugin's own tiled pass
(:func:`core.evaluation.scene_predict.predict_seg_image`):

* Dice of each network against the exact masks, summed over the scenes of a
  group (DESIGN.md section 4), per world and per city type;
* the share of object-free land (farther than the margin from any object)
  flagged as building or road;
* the same on the **L1C-like** version of each HR image: a fixed, typical
  top-of-atmosphere path radiance (B02 0.08 reflectance, falling with
  wavelength as in :mod:`core.data.radiometric`) added to every band, the
  largest failure of the networks on real imagery (``docs/results/real_scenes.md``);
* with ``--l1c-measured``, the same on each HR image turned L1C by the per-band gain and
  offset measured on ESA's L1C and L2A of one acquisition (``docs/results/l1c_l2a.md``);
* with ``--bicubic``, the same on the **bicubic upsampling of the scene's 10 m
  revisits** (their mean, :func:`core.evaluation.scene_predict.bicubic_baseline`):
  how much of a network's skill survives when the image has only 10 m detail,
  as SR of real imagery mostly delivers it.

``--precision`` picks the networks' number format (``core.inference.precision``;
the plugin's default ``auto`` is bf16 on CPUs that do it natively), so fp32 and
bf16 masks can be compared on the same scenes.

Usage::

    python scripts/evaluate_segmenters.py --roots data/world_v2_test data/world_v3_test \
        --pair shipped resources/models/unetpp_buildings.safetensors resources/models/unetpp_roads.safetensors \
        --pair new runs/seg_buildings/best.safetensors runs/seg_roads/best.safetensors [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

#: Path radiance added for the L1C-like images (B02; other bands by the wavelength law of core.data.radiometric).
L1C_PATH_RADIANCE_B02 = 0.08
OBJECT_FREE_MARGIN_PX = 6


def _l1c_like(hr: np.ndarray, bands: List[str]) -> np.ndarray:
    from core.data.radiometric import band_wavelengths

    scatter = (band_wavelengths(bands) / 490.0) ** -2.5
    return hr + (L1C_PATH_RADIANCE_B02 * scatter)[:, None, None].astype(hr.dtype)


#: L1C = gain * L2A + offset per band as ESA's own products of one acquisition relate them (reduced major axis fit,
#: mean of the two dates of ``docs/results/l1c_l2a.md``, vegetation and bare soil): less contrast in the blue.
MEASURED_L1C = {"B02": (0.593, 0.0728), "B03": (0.684, 0.0410), "B04": (0.753, 0.0239), "B08": (0.727, 0.0362)}


def _l1c_measured(hr: np.ndarray, bands: List[str]) -> np.ndarray:
    gain = np.array([MEASURED_L1C[b][0] for b in bands], hr.dtype)[:, None, None]
    offset = np.array([MEASURED_L1C[b][1] for b in bands], hr.dtype)[:, None, None]
    return gain * hr + offset


def _group(scene, root: Path) -> str:
    """A v3 scene's city type (scene.json's ``city_type``, kept in ``Scene.extra``), else the dataset folder."""
    meta = json.loads((root / scene.name / "scene.json").read_text(encoding="utf-8"))
    city = meta.get("city_type") or scene.extra.get("city_type")
    return f"v3 {city}" if city else root.name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--roots", nargs="+", required=True, help="dataset folders written by synth (scenes held out from training)")
    ap.add_argument("--pair", nargs=3, action="append", required=True, metavar=("NAME", "BUILDINGS", "ROADS"))
    ap.add_argument("--split", default=None, help="split to use (default: every scene of the folder)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    ap.add_argument("--bicubic", action="store_true", help="also score the bicubic upsampling of the 10 m revisits")
    ap.add_argument("--l1c-measured", action="store_true",
                    help="also score the HR images turned L1C by the gains and offsets measured on ESA's products "
                         "(docs/results/l1c_l2a.md): B02 keeps 59 %% of its contrast")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="number format of the networks (default: the plugin's, auto)")
    args = ap.parse_args()

    import torch

    from core.evaluation.evaluate import band_indices, load_split_scenes
    from core.evaluation.scene_predict import bicubic_baseline, object_free, predict_seg_image, valid_hr
    from core.inference.loading import load_model
    from core.inference.planning import plan_tiles

    dev = torch.device("cpu")
    rows = []
    for name, b_path, r_path in args.pair:
        nets = [load_model(p, dev, task="segmentation", precision=args.precision) for p in (b_path, r_path)]
        plan = plan_tiles(nets[0].card, dev)
        counts: Dict[str, Dict[str, np.ndarray]] = defaultdict(lambda: defaultdict(lambda: np.zeros(4)))
        for root in map(Path, args.roots):
            for scene in load_split_scenes(root, args.split):
                group = _group(scene, root)
                idx = band_indices(scene.bands, nets[0].card.bands, b_path)
                valid = valid_hr(scene)
                free = object_free([scene.masks[t] for t in ("buildings", "roads")], OBJECT_FREE_MARGIN_PX) & valid
                hr = np.asarray(scene.hr[idx], np.float32)
                levels = [("L2A", hr), ("L1C-like", _l1c_like(hr, [scene.bands[i] for i in idx]))]
                if args.l1c_measured:
                    levels.append(("L1C measured", _l1c_measured(hr, [scene.bands[i] for i in idx])))
                if args.bicubic:
                    levels.append(("bicubic of 10 m", bicubic_baseline(scene, idx, range(scene.lr.shape[0]))))
                for level, image in levels:
                    prob = predict_seg_image(nets, image, valid, plan)
                    flagged = (prob > 0.5)
                    for k, target in enumerate(("buildings", "roads")):
                        truth = np.asarray(scene.masks[target], bool) & valid
                        pred = flagged[k] & valid
                        c = counts[(group, level)][target]
                        c += [np.sum(pred & truth), np.sum(pred), np.sum(truth), 0]
                    c = counts[(group, level)]["object_free"]
                    c += [np.sum((flagged[0] | flagged[1]) & free), np.sum(free), 0, 0]
        for (group, level), per in sorted(counts.items()):
            row = {"pair": name, "group": group, "level": level}
            for target in ("buildings", "roads"):
                tp, p, g, _ = per[target]
                row[f"dice_{target}"] = float(2 * tp / (p + g)) if p + g else None
            hit, n, _, _ = per["object_free"]
            row["object_free_flagged"] = float(hit / n) if n else None
            rows.append(row)

    def fmt(v, pct=False):
        return "n/a" if v is None else (f"{100 * v:.2f} %" if pct else f"{v:.3f}")

    print(f"| networks | scenes | level | Dice buildings | Dice roads | object-free flagged |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['pair']} | {r['group']} | {r['level']} | {fmt(r['dice_buildings'])} | {fmt(r['dice_roads'])} | "
              f"{fmt(r['object_free_flagged'], True)} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
