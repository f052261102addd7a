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

    from core.evaluation.evaluate import (
        Normalization,
        load_frozen_segnet,
        load_split_scenes,
        predict_seg_scene,
        predict_sr_scene,
    )
    from core.evaluation.metrics import SegCounts
    from core.evaluation.report import plot_sr_comparison
    from core.inference.sr import anchor_offsets
    from core.models.zoo import load_checkpoint

    scene = load_split_scenes(args.data, "test")[args.scene]
    valid = np.asarray(scene.hr_valid, bool)
    panels = [("LR revisit (10 m)", scene.lr[0, 0], None)]
    for row in args.rows:
        path = Path(args.grid) / row / "best.safetensors"
        model, card = load_checkpoint(path)
        recipe = card.recipe or {}
        seg_paths = recipe.get("seg_nets") or {}
        sr = predict_sr_scene(model, scene, Normalization.from_card(card.normalization), int(card.frames or 1),
                              tile=32, overlap=4)
        if not args.raw:
            shift = anchor_offsets(scene.lr[None, :, 0], scene.lr_valid[None], sr[None, None], scene.scale)[0]
            sr = sr + shift
        overlays, scores = {}, []
        for target in ("buildings", "roads"):
            net, _ = load_frozen_segnet(seg_paths[target])
            prob = predict_seg_scene(net, sr, tile=96, overlap=12)
            counts = SegCounts()
            counts.update(prob, np.asarray(scene.masks[target], bool), valid)
            overlays[target] = prob > 0.5
            scores.append(f"{target[0].upper()} {counts.dice:.2f}")
        title = (card.recipe or {}).get("experiment", {}).get("title") or card.name or row
        label = textwrap.fill(f"row {row}: {title}", 44)
        panels.append((f"{label}\nDice {', '.join(scores)}", sr, overlays))
    panels.append(("HR reference, true masks", scene.hr[0], {t: scene.masks[t] for t in ("buildings", "roads")}))
    out = plot_sr_comparison(panels, args.out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
