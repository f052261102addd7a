"""Evidence for the area fine-tune: does held-out Dice rise on an area without any HR image?

What it does (all on CPU, seeds fixed, about 10-15 min on 2 busy shared cores):

1. Starting networks: the shipped checkpoints in ``resources/models`` when they
   are there (``rams_baseline``, ``unetpp_buildings``, ``unetpp_roads``), else
   small ones trained here on *simulated* synthetic scenes (UNet++ "tiny" on HR
   patches; a small RAMS with cL1, the study's baseline recipe).
2. An "analyst's area": one large *real-world-like* synthetic scene (other seed,
   revisits with gain/offset changes, haze, misregistration, clouds) written
   the way an analyst has it: revisit GeoTIFFs plus buildings/roads GeoPackages
   in EPSG:4326 (as QuickOSM exports), no HR image.
3. ``core.area.run_area`` for each fine-tune seed: tiles, held-out eastern strip
   with a one-tile gap, fine-tune with consistency cL1 + 0.25 B-Dice + 0.25
   R-Dice (dynamic weighting, patch selection), before/after on the held-out strip.
4. Writes ``docs/results/area_finetune.md`` and ``docs/results/area_finetune.png``.

Run:  ``.venv/bin/python scripts/area_finetune_demo.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

CAVEAT_TRAINED_HERE = ("the starting networks are small and briefly trained here (no shipped checkpoints were in "
                       "resources/models), so absolute Dice is low. ")
CAVEAT = ("There is no consistency-only control run: consistency cPSNR may rise too, so part of the Dice gain can be "
          "the network adapting to this area's revisits (gain, haze, misregistration) rather than the Dice terms "
          "alone (see each run's train/history.json). The anchored Dice (the output shifted to its revisits' "
          "brightness, as the plugin writes it) tells how much of the gain is brightness alone.")
SHIPPED = {"sr": "rams_baseline.safetensors", "buildings": "unetpp_buildings.safetensors",
           "roads": "unetpp_roads.safetensors"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def starting_networks(work: Path, quick: bool) -> Dict[str, Path]:
    """Shipped checkpoints, else small ones trained here on simulated synthetic scenes."""
    from core.models.zoo import read_card

    models = ROOT / "resources" / "models"
    shipped = [models / f for f in SHIPPED.values()]
    if all(p.is_file() for p in shipped) and all(len(read_card(p).bands) == 1 for p in shipped):
        log("using the shipped checkpoints in resources/models")
        return {k: models / f for k, f in SHIPPED.items()}
    if all(p.is_file() for p in shipped):  # this demo's area is one band (B8); the shipped networks take four
        log("the shipped checkpoints take four bands jointly and this demo's area is the study's one-band (B8) "
            "towns: training small one-band networks here (for the shipped ones: `python -m core.cli area synth "
            "--world v2` and `area run`)")
    from core.data.scene import list_scenes
    from core.data.synthetic.towns import make_dataset
    from core.training.config import load_config
    from core.training.trainer import train

    data = work / "sim_data"
    if not (data / "split.json").is_file() or len(list_scenes(data)) != 6:
        log("no shipped checkpoints: making 6 simulated synthetic scenes (seed 100) to train small ones")
        make_dataset(data, n_scenes=6, size_hr=192, seed=100, frames=5)
    epochs_seg, epochs_sr = (2, 2) if quick else (8, 8)
    out: Dict[str, Path] = {}
    for target in ("buildings", "roads"):
        log(f"training UNet++ tiny for {target} on HR patches ({epochs_seg} epochs)")
        cfg = load_config(ROOT / "resources" / "configs" / f"tiny_segmentation_{target}.yaml", [
            f"data.root={data}", f"out_dir={work / ('seg_' + target)}", f"epochs={epochs_seg}",
            "data.seg_patch=48", "data.samples_per_epoch=96", "data.batch_size=8", "data.val_scenes=1",
            "val_tile=32", "val_overlap=4", "seed=0"])
        out[target] = train(cfg)
    log(f"training a small RAMS with cL1 on the simulated scenes ({epochs_sr} epochs): the starting network")
    cfg = load_config(ROOT / "resources" / "configs" / "tiny_rams_baseline.yaml", [
        f"data.root={data}", f"out_dir={work / 'rams_baseline'}", f"epochs={epochs_sr}", "data.frames=5",
        "model.hparams={filters: 16, N: 2, r: 4}", "data.lr_patch=16", "data.samples_per_epoch=64",
        "data.batch_size=8", "lr=1.0e-3", "val_tile=32", "seed=0"])
    out["sr"] = train(cfg)
    return out


def make_area(work: Path, size_hr: int, seed: int) -> Dict[str, object]:
    from core.data.synthetic.area import write_area_files
    from core.data.synthetic.towns import make_scene

    scene = make_scene(size_hr=size_hr, frames=5, seed=seed, real_world=True, name="my_area")
    files = write_area_files(scene, work / "area_inputs", vector_crs="EPSG:4326")
    return {"files": files, "scene": scene}


def plot(rows: List[Dict[str, object]], png: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.4, 3.3))
    axes = fig.subplots(1, 3)
    keys = (("buildings_dice", "Dice buildings (held-out)"), ("roads_dice", "Dice roads (held-out)"),
            ("consistency_cpsnr", "consistency cPSNR, dB (held-out)"))
    for ax, (key, title) in zip(axes, keys):
        for r in rows:
            b, a = r["before"].get(key), r["after"].get(key)
            ax.plot([0, 1], [b, a], marker="o", label=f"seed {r['seed']}")
        ax.set_xticks([0, 1], ["before", "after"])
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xlim(-0.3, 1.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Area fine-tune without HR: held-out strip of a real-world-like synthetic area", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(ROOT / "runs" / "area_demo"), help="working folder")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"), help="where the results page goes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="fine-tune seeds")
    parser.add_argument("--area-seed", type=int, default=4242)
    parser.add_argument("--size", type=int, default=480, help="area size in HR px (LR = size / 3)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=5e-4, help="fine-tuning learning rate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a smoke run (tiny everything)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    nets = starting_networks(work, args.quick)
    area = make_area(work, args.size if not args.quick else 288, args.area_seed)
    files = area["files"]
    from core.area.finetune import run_area
    from core.options import AreaOptions

    rows = []
    for seed in args.seeds:
        log(f"area fine-tune, seed {seed}")
        t1 = time.perf_counter()
        opts = AreaOptions(samples_per_epoch=16 if args.quick else 64, batch_size=8, device="cpu",
                           seed=seed, lr=args.lr, band=1, tile_lr=32, epochs=2 if args.quick else args.epochs)
        res = run_area(files.revisits, files.buildings, files.roads, nets["sr"], nets["buildings"],
                       nets["roads"], work / f"finetune_seed{seed}", options=opts, resume=False,
                       progress=lambda e: log(e["message"]) if e.get("event") == "log" and not e.get("fraction")
                       else None)
        rows.append({"seed": seed, "before": res.before, "after": res.after, "checkpoint": str(res.checkpoint),
                     "seconds": time.perf_counter() - t1, "report": str(res.report_md)})
        log(f"seed {seed}: buildings {res.before['buildings_dice']:.3f} -> {res.after['buildings_dice']:.3f}, "
            f"roads {res.before['roads_dice']:.3f} -> {res.after['roads_dice']:.3f}, consistency cPSNR "
            f"{res.before['consistency_cpsnr']:.2f} -> {res.after['consistency_cpsnr']:.2f} dB")
    total = time.perf_counter() - t0
    png = out / "area_finetune.png"
    plot(rows, png)
    area_json = json.loads((work / f"finetune_seed{args.seeds[0]}" / "area" / "area.json").read_text())
    write_page(out / "area_finetune.md", rows, args, nets, area_json, total, png)
    (work / "rows.json").write_text(json.dumps([{k: v for k, v in r.items()} for r in rows], indent=1,
                                               default=str))
    log(f"done in {total / 60:.1f} min: {out / 'area_finetune.md'}")
    return 0


def write_page(path: Path, rows, args, nets, area_json, total: float, png: Path) -> None:
    from core.area.finetune import METRICS
    from core.models.zoo import read_card

    cmd = "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0]).relative_to(ROOT))
                                                         if Path(sys.argv[0]).is_absolute() else sys.argv[0]]
                                + sys.argv[1:])
    lines = [
        "# Area fine-tune without HR: held-out Dice before and after",
        "",
        "Generated by `scripts/area_finetune_demo.py`; numbers are copied from its run, not typed.",
        "",
        f"- command: `{cmd}`",
        f"- run time: {total / 60:.1f} min on {__import__('os').cpu_count()} CPU cores shared with other jobs "
        f"({args.threads} torch thread(s))",
        f"- area: a real-world-like synthetic scene (seed {args.area_seed}, {args.size} HR px = "
        f"{args.size // 3} LR px at 10 m, 5 revisits with gain/offset, haze, misregistration and clouds), "
        "written as revisit GeoTIFFs + buildings/roads GeoPackages in EPSG:4326 (reprojected by the tool); "
        "its HR image is never used",
        f"- tiles: {len(area_json['train'])} training and {len(area_json['held_out'])} held-out tiles of "
        f"{area_json['tile_lr']} LR px; held-out = the {area_json['side']}ern strip, one tile column of gap",
        f"- starting SR network: `{read_card(nets['sr']).name}` ({Path(nets['sr']).name}); segmentation: "
        f"`{read_card(nets['buildings']).name}`, `{read_card(nets['roads']).name}` (frozen)",
        f"- recipe: consistency cL1 + 0.25 B-Dice + 0.25 R-Dice, dynamic weighting, patch selection 0.5; "
        f"{args.epochs} epochs x 64 patches of 32 LR px, batch 8, lr {args.lr:g}; the registered weights are the "
        "last epoch's",
        "",
        "| seed | " + " | ".join(f"{label} before | after" for _k, label, _h in METRICS) + " | time |",
        "|---:|" + "---:|---:|" * len(METRICS) + "---:|",
    ]
    for r in rows:
        cells = []
        for key, _label, _h in METRICS:
            b, a = r["before"].get(key), r["after"].get(key)
            f = "{:.2f}" if "cpsnr" in key else "{:.3f}"
            cells += [f.format(b) if b is not None else "n/a", f.format(a) if a is not None else "n/a"]
        lines.append(f"| {r['seed']} | " + " | ".join(cells) + f" | {r['seconds'] / 60:.1f} min |")
    lines += ["", f"![before and after]({png.name})", ""]
    rises = [r["after"]["buildings_dice"] > r["before"]["buildings_dice"] and
             r["after"]["roads_dice"] > r["before"]["roads_dice"] for r in rows]
    lines.append(f"Building and road Dice on the held-out strip rose in {sum(rises)} of {len(rows)} seed(s). "
                 "Dice: the frozen segmentation networks on the SR output against the rasterized vectors, counts "
                 "summed over the held-out tiles. Consistency cPSNR: SR degraded back to 10 m vs the clearest "
                 "revisit; a drop means the output drifts from what the satellite saw (the trade-off the study "
                 "reports for task-driven training).")
    shipped = all(Path(nets[k]).parent == ROOT / "resources" / "models" for k in SHIPPED)
    lines += ["", "Synthetic data stand in for a real area here: these numbers show the workflow does what it "
              "says on data with a known truth; they are not a measurement of real-world quality.", "",
              "Caveats: " + ("" if shipped else CAVEAT_TRAINED_HERE) + CAVEAT]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
