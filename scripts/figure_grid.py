"""Figure for docs/results: SR outputs of two grid rows side by side, with the masks the frozen networks find.

Usage::

    python scripts/figure_grid.py --grid runs/experiments --rows 1 7 --data data/sim \\
        --out docs/results/grid/outputs_1_vs_7.png [--scene 0] [--raw]

For one test scene of ``--data``: the first LR revisit, each row's SR output
(``<grid>/<row>/best.safetensors``) with the buildings (red) and roads (yellow)
that the segmentation networks recorded in the row's recipe find on it, and the
HR image with the true masks. Outputs are shifted to their revisits' brightness
as the plugin does (``--raw``: the network's own output, the study's protocol);
the Dice of each panel is in its title. All panels share one grey stretch.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", required=True, help="the experiments' output folder (runs/experiments)")
    ap.add_argument("--rows", nargs="+", required=True, help="row ids, e.g. 1 7")
    ap.add_argument("--data", required=True, help="the dataset the rows were evaluated on")
    ap.add_argument("--scene", type=int, default=0, help="index among the test scenes")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--raw", action="store_true", help="no brightness anchoring")
    args = ap.parse_args()

    import torch

    from core.evaluation.evaluate import load_split_scenes
    from core.evaluation.metrics import SegCounts
    from core.evaluation.report import plot_sr_comparison
    from core.evaluation.scene_predict import predict_seg_image, predict_sr_scene
    from core.inference.loading import load_model
    from core.inference.planning import TilePlan

    cpu = torch.device("cpu")
    scene = load_split_scenes(args.data, "test")[args.scene]
    valid = np.asarray(scene.hr_valid, bool)
    panels = [("LR revisit (10 m)", scene.lr[0, 0], None)]
    for row in args.rows:
        path = Path(args.grid) / row / "best.safetensors"
        loaded = load_model(path, cpu)
        card = loaded.card
        seg_paths = (card.recipe or {}).get("seg_nets") or {}
        sr = predict_sr_scene(loaded, scene, TilePlan(32, 4, 1), anchor=not args.raw, bands=[0]).image
        overlays, scores = {}, []
        for target in ("buildings", "roads"):
            net = load_model(seg_paths[target], cpu, task="segmentation")
            prob = predict_seg_image([net], sr, valid, TilePlan(96, 12, 1))[0]
            counts = SegCounts()
            counts.update(prob, np.asarray(scene.masks[target], bool), valid)
            overlays[target] = prob > 0.5
            scores.append(f"{target[0].upper()} {counts.dice:.2f}")
        title = (card.recipe or {}).get("experiment", {}).get("title") or card.name or row
        label = textwrap.fill(f"row {row}: {title}", 44)
        panels.append((f"{label}\nDice {', '.join(scores)}", sr[0], overlays))
    panels.append(("HR reference, true masks", scene.hr[0], {t: scene.masks[t] for t in ("buildings", "roads")}))
    out = plot_sr_comparison(panels, args.out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
