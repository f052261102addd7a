"""Publish a network fine-tuned after ``make weights`` into ``resources/models``, with an honest card.

What it does, through the same code as ``make weights`` (``core.training.starter``):
measures the test metrics on the world-v2 test scenes (SR networks scored by the
segmentation networks given, which should be the ones shipped beside them),
writes the card's description and what the network was trained on, the training
time from its run's ``history.json``, saves it under its shipped name and
rebuilds ``resources/models/README.md`` from every card.

Usage::

    python scripts/publish_finetuned.py seg_buildings runs/segC/last.safetensors \\
        --test-root runs/starter/data_test --description "UNet++ buildings. ..." \\
        --train-data '{"fine_tuned_from": "...", "generators": ["core.data.synthetic.world_v2"]}'
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> int:
    from core.training.starter import (MODELS_DIR, STARTER_MODELS, publish, test_metrics, training_seconds,
                                       write_models_readme)

    keys = [m.key for m in STARTER_MODELS]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("key", choices=keys, help="which shipped network this checkpoint replaces")
    ap.add_argument("checkpoint", type=Path, help="the run's checkpoint (its folder holds history.json)")
    ap.add_argument("--test-root", type=Path, required=True, help="the world-v2 test scenes (seed 900)")
    ap.add_argument("--description", required=True, help="the card's description: what it is, what it saw")
    ap.add_argument("--train-data", default="{}", help="JSON: what it was trained on (seeds, generators, ...)")
    ap.add_argument("--seg-buildings", type=Path, help="SR only: the buildings network that scores it")
    ap.add_argument("--seg-roads", type=Path, help="SR only: the roads network that scores it")
    ap.add_argument("--seconds", type=float, default=None,
                    help="training time to record (default: the run's history.json)")
    ap.add_argument("--models", type=Path, default=MODELS_DIR)
    args = ap.parse_args()
    model = next(m for m in STARTER_MODELS if m.key == args.key)
    if "synthetic" not in args.description or "not on MuS2" not in args.description:
        ap.error("--description: say what it was trained on: synthetic data (and which real images, if any), "
                 "not on MuS2")
    seg = None
    if not model.is_segmentation:
        if not (args.seg_buildings and args.seg_roads):
            ap.error("an SR network is scored by segmentation networks: give --seg-buildings and --seg-roads")
        seg = {"buildings": args.seg_buildings, "roads": args.seg_roads}
    metrics = test_metrics(args.checkpoint, model, args.test_root, seg_nets=seg)
    seconds = args.seconds if args.seconds is not None else training_seconds(args.checkpoint.parent)
    target = publish(args.checkpoint, model, metrics, seconds, args.models, description=args.description,
                     train_data=json.loads(args.train_data) or None)
    print(f"{target}: " + json.dumps({k: v for k, v in metrics.items() if "dice" in k or k in ("cpsnr", "grid_score")},
                                      default=str))
    print("README rebuilt" if write_models_readme(args.models) else "README left as it was (a network is missing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
