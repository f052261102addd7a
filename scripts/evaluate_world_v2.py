"""The shipped networks on held-out world-v2 scenes: fidelity, 3-px grid, phantom objects, task-driven gain.

Evaluates every SR checkpoint of a folder (default ``resources/models``) on the
simulated and the real-world-like world-v2 test scenes that ``make weights``
writes (seeds no training run saw), through the plugin's own tiled passes
(``core.evaluation.evaluate.evaluate_checkpoint``), with the folder's UNet++
networks, and writes ``docs/results/world_v2.md`` (+ ``.json``):

* cPSNR / cSSIM against the HR image;
* the 3-px grid score of the SR output beside bicubic's (DESIGN.md section 4);
* the share of object-free land each network flags on the SR output beside
  the share it flags on bicubic upsampling of the same revisits;
* Dice raw (the study's protocol) and anchored (what the plugin writes);
* the task-driven gain over the baseline of the same architecture.

``--world v3`` does the same on world-v3 city scenes (``synth --world v3``; one city type per scene, drawn
in turn; written to ``--work`` as ``v3_test`` / ``v3_test_real`` when absent) and writes ``world_v3.md``.

Usage: ``python scripts/evaluate_world_v2.py [--world v2|v3] [--models DIR] [--work runs/starter] [--out PAGE]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATASETS = (("simulated", "data_test"), ("real-world-like", "data_test_real"))


def _fmt(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}f}"


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.2f} %"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(ROOT / "resources" / "models"))
    ap.add_argument("--work", default=str(ROOT / "runs" / "starter"), help="where make weights wrote the test data")
    ap.add_argument("--world", choices=("v2", "v3"), default="v2", help="which synthetic world to test on")
    ap.add_argument("--out", default=None, help="the page (default docs/results/world_<world>.md)")
    ap.add_argument("--max-scenes", type=int, default=None)
    ap.add_argument("--from-json", default=None,
                    help="only re-render the page from the rows a previous run saved (its .json)")
    args = ap.parse_args()
    args.out = args.out or str(ROOT / "docs" / "results" / f"world_{args.world}.md")
    if args.from_json:
        import json

        rows = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        return _write_page(rows, Path(args.out), minutes=None, world=args.world)

    from core.data.synthetic.world_v2 import make_world_dataset
    from core.data.synthetic.world_v3 import make_world_v3_dataset
    from core.evaluation.evaluate import evaluate_checkpoint
    from core.models.zoo import read_card
    from core.options import EvaluateOptions
    from core.training.starter import TEST_DATA

    models = Path(args.models)
    seg = {"buildings": models / "unetpp_buildings.safetensors", "roads": models / "unetpp_roads.safetensors"}
    work = Path(args.work)
    rows = []
    t0 = time.time()
    make = make_world_dataset if args.world == "v2" else make_world_v3_dataset
    for label, folder in DATASETS:
        root = work / (folder if args.world == "v2" else folder.replace("data_", "v3_"))
        if not (root / "split.json").is_file():
            real = label != "simulated"
            make(root, n_scenes=TEST_DATA["scenes"], size_hr=TEST_DATA["size"], frames=TEST_DATA["frames"],
                 seed=TEST_DATA["seed"] + (1 if real else 0), real_world=real)
        for path in sorted(models.glob("*.safetensors")):
            card = read_card(path)
            if card.task != "sr":
                continue
            res = evaluate_checkpoint(path, root, seg_buildings=seg["buildings"], seg_roads=seg["roads"],
                                      options=EvaluateOptions(split="all", max_scenes=args.max_scenes))
            row = {**{k: v for k, v in res.items() if not isinstance(v, (list, dict))},
                   "data": label, "data_root": str(root), "model": path.stem, "arch": card.arch,
                   "bands": card.bands}  # after the result: its own "data" (the folder) must not win
            rows.append(row)
            print(f"{label:<16} {path.stem:<18} cPSNR {_fmt(row.get('cpsnr'), 2)} grid {_fmt(row.get('grid_score'), 2)}"
                  f" (bicubic {_fmt(row.get('grid_score_bicubic'), 2)})  FP b {_pct(row.get('buildings_fp_share'))}"
                  f" (bic {_pct(row.get('buildings_fp_share_bicubic'))}) r {_pct(row.get('roads_fp_share'))}"
                  f" (bic {_pct(row.get('roads_fp_share_bicubic'))})  Dice anch b/r "
                  f"{_fmt(row.get('buildings_dice_anchored'))}/{_fmt(row.get('roads_dice_anchored'))}", flush=True)
    return _write_page(rows, Path(args.out), minutes=(time.time() - t0) / 60, world=args.world)


def _write_page(rows, out: Path, minutes, world: str = "v2") -> int:
    """The markdown page and its JSON rows (written atomically)."""
    from core.io.atomic import write_json_atomic, write_text_atomic
    from core.training.starter import TEST_DATA

    took = f" ({minutes:.0f} min on this 2-core CPU)" if minutes is not None else ""
    lines = [f"# The shipped networks on held-out world-{world} scenes", "",
             f"`python scripts/evaluate_world_v2.py --world {world}`{took}: "
             f"{TEST_DATA['scenes']} world-{world} test scenes per version ({TEST_DATA['size']} px HR, "
             f"{TEST_DATA['frames']} revisits), seeds no training run saw; SR outputs made by the plugin's own "
             "tiled passes, anchored to the revisits' brightness as the plugin writes them (raw Dice is the "
             "study's protocol). *Grid*: the 3-px grid score (DESIGN.md section 4; a stamped pixel-shuffle grid "
             "scores tens to thousands, bicubic well below 2). *Phantoms*: share of object-free land (farther "
             "than 20 m from any building or road in the masks) flagged by the shipped segmentation networks, on the "
             "SR output and on bicubic upsampling of the same revisits.", ""]
    for label, _folder in DATASETS:
        lines += [f"## {label.capitalize()} revisits", "",
                  "| model | cPSNR dB | cSSIM | grid (bicubic) | phantom buildings (bicubic) | phantom roads "
                  "(bicubic) | Dice buildings raw / anchored | Dice roads raw / anchored |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in (r for r in rows if r["data"] == label):
            lines.append(
                f"| {r['model']} | {_fmt(r.get('cpsnr'), 2)} | {_fmt(r.get('cssim'))} | "
                f"{_fmt(r.get('grid_score'), 2)} ({_fmt(r.get('grid_score_bicubic'), 2)}) | "
                f"{_pct(r.get('buildings_fp_share'))} ({_pct(r.get('buildings_fp_share_bicubic'))}) | "
                f"{_pct(r.get('roads_fp_share'))} ({_pct(r.get('roads_fp_share_bicubic'))}) | "
                f"{_fmt(r.get('buildings_dice'))} / {_fmt(r.get('buildings_dice_anchored'))} | "
                f"{_fmt(r.get('roads_dice'))} / {_fmt(r.get('roads_dice_anchored'))} |")
        lines.append("")
        by = {r["model"]: r for r in rows if r["data"] == label}
        for arch in ("rams", "hat"):
            base, td = by.get(f"{arch}_baseline"), by.get(f"{arch}_taskdriven")
            if base and td:
                def gain(key, td=td, base=base):
                    a, b = td.get(key), base.get(key)
                    return float("nan") if a is None or b is None else a - b
                lines.append(f"* {arch.upper()} task-driven vs baseline: anchored Dice buildings "
                             f"{gain('buildings_dice_anchored'):+.3f}, roads {gain('roads_dice_anchored'):+.3f}, "
                             f"cPSNR {gain('cpsnr'):+.2f} dB.")
        lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, "\n".join(lines))
    write_json_atomic(out.with_suffix(".json"), rows)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
