"""CLI: ``area prepare``, ``area finetune``, ``area run`` (both) and ``area wald``: adapt to your own area without HR.

Examples::

    # cut the area into tiles, rasterize OSM, hold out the eastern strip
    python -m core.cli area prepare --revisits s2/*.tif --band B8 \\
        --buildings osm_buildings.gpkg --roads osm_roads.gpkg --out myarea/area
    # fine-tune, measure before/after on the held-out strip, register the checkpoint
    python -m core.cli area finetune --area myarea/area --checkpoint rams_taskdriven.safetensors \\
        --seg-buildings unetpp_buildings.safetensors --seg-roads unetpp_roads.safetensors \\
        --out myarea --epochs 10
    # both in one go (what the QGIS dialog and the Processing algorithm run)
    python -m core.cli area run --revisits s2/*.tif --band 1 --buildings b.gpkg --roads r.gpkg \\
        --checkpoint sr.safetensors --seg-buildings b.safetensors --seg-roads r.safetensors --out myarea
    # self-supervised on the revisits alone (Wald's protocol: 30 m -> 10 m, then applied at 10 m -> 3.33 m);
    # vectors and segmentation networks are optional (they add false-positive and Dice measurements)
    python -m core.cli area wald --revisits s2/*.tif --band B8 --checkpoint sr.safetensors --out myarea_wald

``--progress jsonl`` prints one JSON event per line (the trainer's events, stage
messages, and a final ``done`` with the registered checkpoint and the report).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any, Dict

from ..io.jsonsafe import json_safe
from ..options import AreaOptions
from .progress import event_printer, print_messages

__all__ = ["register"]


def _band(text: str) -> Any:
    return int(text) if text.strip().isdigit() else text


def _options(args: argparse.Namespace) -> AreaOptions:
    return AreaOptions(epochs=args.epochs, lr=args.lr, samples_per_epoch=args.samples, batch_size=args.batch_size,
                       lr_patch=args.patch, device=args.device, seed=args.seed, overrides=tuple(args.set or ()))


def _command_line() -> str:
    return "python -m core.cli " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _print_result(args: argparse.Namespace, result) -> None:
    from ..area.finetune import METRICS

    if args.progress == "jsonl":
        return
    for key, label, _ in METRICS:
        b, a = (result.before.get(key), result.after.get(key))
        print(f"{label:<24} before {_fmt(b):>7}  after {_fmt(a):>7}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"report: {result.report_md}")


def _prepare(args: argparse.Namespace) -> int:
    from ..area.tiles import prepare_area

    def progress(fraction: float, message: str) -> None:
        event: Dict[str, Any] = {"event": "log", "message": f"prepare: {message}", "stage": "prepare",
                                 "fraction": fraction}
        if printer is not None:
            printer(event)

    printer = event_printer(args.progress)
    result = prepare_area(args.revisits, _band(args.band), args.buildings, args.roads, args.out,
                          tile_lr=args.tile, val_fraction=args.val_fraction, gap_tiles=args.gap,
                          min_valid=args.min_valid, band_name=args.band_name, overwrite=args.overwrite,
                          progress=progress)
    if args.progress == "jsonl":
        printer({"event": "done", **json_safe(result.as_dict())})
    else:
        print_messages(result.messages)
        print(f"{len(result.train)} training tile(s), {len(result.held_out)} held-out tile(s) "
              f"({result.side}ern strip), {len(result.skipped)} skipped: {result.root}")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from ..area.finetune import finetune_area

    result = finetune_area(args.area, args.checkpoint, args.seg_buildings, args.seg_roads, args.out,
                           epochs=args.epochs, options=_options(args), progress=event_printer(args.progress),
                           resume=not args.no_resume, command=_command_line())
    _print_result(args, result)
    return 0


def _run(args: argparse.Namespace) -> int:
    from ..area.finetune import run_area

    result = run_area(args.revisits, _band(args.band), args.buildings, args.roads, args.checkpoint,
                      args.seg_buildings, args.seg_roads, args.out, epochs=args.epochs, tile_lr=args.tile,
                      val_fraction=args.val_fraction, band_name=args.band_name, options=_options(args),
                      progress=event_printer(args.progress), resume=not args.no_resume, command=_command_line())
    _print_result(args, result)
    return 0


def _wald(args: argparse.Namespace) -> int:
    from ..area.wald import UPSCALED_METRICS, WALD_METRICS, adapt_area
    from ..options import AreaOptions

    options = AreaOptions(epochs=args.epochs, lr=args.lr, samples_per_epoch=args.samples,
                          batch_size=args.batch_size, lr_patch=args.patch, device=args.device, seed=args.seed,
                          wald=True, recipe=args.recipe, overrides=tuple(args.set or ()))
    result = adapt_area(args.revisits, _band(args.band), args.checkpoint, args.out, buildings_vector=args.buildings,
                        roads_vector=args.roads, seg_buildings=args.seg_buildings, seg_roads=args.seg_roads,
                        options=options, tile_lr=args.tile, val_fraction=args.val_fraction, gap_tiles=args.gap,
                        band_name=args.band_name, noise=not args.no_noise, progress=event_printer(args.progress),
                        resume=not args.no_resume, command=_command_line())
    if args.progress == "jsonl":
        return 0
    for part, metrics in (("wald", WALD_METRICS), ("upscaled", UPSCALED_METRICS)):
        for key, label, _ in metrics:
            b, a = result.before[part].get(key), result.after[part].get(key)
            if key in result.before[part]:
                print(f"{label:<42} before {_fmt(b):>7}  after {_fmt(a):>7}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"report: {result.report_md}")
    return 0


def _add_step_sizes(p: argparse.ArgumentParser) -> None:
    """--lr, --samples, --batch-size: the recipe numbers ``finetune``/``run`` and ``wald`` word the same way."""
    p.add_argument("--lr", type=float, help="learning rate (default: the recipe's, 5e-5)")
    p.add_argument("--samples", type=int, help="patches per epoch (default: the recipe's, 256)")
    p.add_argument("--batch-size", type=int, help="patches per step (default: the recipe's, 8)")


def _add_progress_and_resume(p: argparse.ArgumentParser) -> None:
    """--progress and --no-resume, the last options of every training action (the QGIS dialog reads jsonl)."""
    p.add_argument("--progress", choices=("tqdm", "jsonl", "none"), default="tqdm",
                   help="tqdm bars (default) or one JSON event per line on stdout (for the QGIS dialog)")
    p.add_argument("--no-resume", action="store_true", help="start the training afresh even if OUT/train/last.pt exists")


def _add_wald(p: argparse.ArgumentParser) -> None:
    p.add_argument("--revisits", nargs="+", required=True, metavar="RASTER",
                   help="Sentinel-2 rasters of the area (revisits); the first sets the grid, others are warped onto it")
    p.add_argument("--band", default="1", help="1-based band number or band name (e.g. B8) in every revisit; "
                                               "'all' when one raster's bands are the dates (default 1)")
    p.add_argument("--band-name", help="band name written into the tiles (default: the checkpoint's band)")
    p.add_argument("--checkpoint", required=True, help="SR checkpoint to adapt (.safetensors, one band)")
    p.add_argument("--out", required=True, help="output folder: area/ (10 m tiles), wald/ (30 m -> 10 m pairs), "
                                                "train/ (the run), wald_adapted.safetensors, wald_report.json/.md/.png")
    p.add_argument("--buildings", help="optional buildings polygon layer: masks for the object-free "
                                       "false-positive share and Dice of the 10 m -> 3.33 m output")
    p.add_argument("--roads", help="optional roads line layer (OSM 'highway' class), as --buildings")
    p.add_argument("--seg-buildings", help="optional building segmentation checkpoint (frozen; measuring only)")
    p.add_argument("--seg-roads", help="optional road segmentation checkpoint (frozen; measuring only)")
    p.add_argument("--tile", type=int, default=96, help="tile size in 10 m pixels, a multiple of 3 (default 96 = "
                                                       "32 px at 30 m)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of tile columns (or rows) held out on the east (south) side (default 0.2)")
    p.add_argument("--gap", type=int, default=1, help="tile columns (rows) left out between training and held-out "
                                                      "tiles (default 1)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    _add_step_sizes(p)
    p.add_argument("--patch", type=int, help="patch size in 30 m pixels (default 24, at most the 30 m tile)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="cpu, cuda or auto (default)")
    p.add_argument("--seed", type=int, default=0, help="training seed (and the seed of the 30 m frames' noise)")
    p.add_argument("--no-noise", action="store_true", help="do not add instrument noise back to the 30 m frames")
    p.add_argument("--recipe", help="training recipe (default resources/configs/area/wald.yaml)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any setting of the recipe")
    _add_progress_and_resume(p)


def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--revisits", nargs="+", required=True, metavar="RASTER",
                   help="Sentinel-2 rasters of the area (revisits); the first sets the grid, others are warped onto it")
    p.add_argument("--band", default="1",
                   help="1-based band number or band name (e.g. B8) in every revisit; 'all' when one raster's "
                        "bands are the dates (default 1)")
    p.add_argument("--band-name", help="band name written into the tiles; must match the SR checkpoint's band "
                                       "(default: the checkpoint's band for `run`, else the band's description)")
    p.add_argument("--buildings", required=True, help="buildings polygon layer (GeoPackage, GeoJSON, Shapefile)")
    p.add_argument("--roads", required=True, help="roads line layer with the OSM 'highway' class (and optional "
                                                  "'width' in metres)")
    p.add_argument("--tile", type=int, default=64, help="tile size in LR pixels (default 64)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of tile columns (or rows) held out on the east (south) side (default 0.2)")


def _add_training(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="SR checkpoint to start from (.safetensors)")
    p.add_argument("--seg-buildings", required=True, help="building segmentation checkpoint (frozen)")
    p.add_argument("--seg-roads", required=True, help="road segmentation checkpoint (frozen)")
    p.add_argument("--out", required=True, help="output folder: train/ (the run), area_finetuned.safetensors, "
                                                "area_report.json/.md/.png")
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs (default 10)")
    _add_step_sizes(p)
    p.add_argument("--patch", type=int, help="LR patch size (default 32, at most the tile size)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any setting of resources/configs/area/finetune.yaml (repeatable)")
    _add_progress_and_resume(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "area", help="fine-tune an SR network on your own area from S-2 revisits and OSM vectors (no HR image)",
        description="Task-driven fine-tuning without HR: cut the area into tiles, rasterize the buildings and "
                    "roads onto the 3x grid, hold out a spatially separate strip, fine-tune with consistency cL1 "
                    "+ building/road Dice (dynamic weighting, patch selection), and report Dice and consistency "
                    "cPSNR on the held-out strip before and after.",
    )
    sub = p.add_subparsers(dest="area_command", metavar="ACTION")
    prep = sub.add_parser("prepare", help="cut the area into scene tiles with masks and a held-out strip",
                          description="Writes scene folders (no HR), split.json (train / held-out) and area.json.")
    _add_inputs(prep)
    prep.add_argument("--out", required=True, help="folder for the prepared area (new or empty)")
    prep.add_argument("--gap", type=int, default=1, help="tile columns (rows) left out between training and "
                                                         "held-out tiles (default 1)")
    prep.add_argument("--min-valid", type=float, default=0.5,
                      help="skip tiles with a smaller share of pixels seen by any revisit (default 0.5)")
    prep.add_argument("--overwrite", action="store_true", help="replace an area already prepared in --out")
    prep.add_argument("--progress", choices=("tqdm", "jsonl", "none"), default="tqdm")
    prep.set_defaults(func=_prepare)

    ft = sub.add_parser("finetune", help="fine-tune on a prepared area; report before/after; register",
                        description="Resumes from OUT/train/last.pt when present. The registered checkpoint is "
                                    "the last epoch's weights (the held-out tiles never choose them).")
    ft.add_argument("--area", required=True, help="a folder made by `area prepare`")
    _add_training(ft)
    ft.set_defaults(func=_finetune)

    run = sub.add_parser("run", help="prepare (into OUT/area) and fine-tune in one go",
                         description="`area prepare` into OUT/area (reused when the inputs are the same), then "
                                     "`area finetune`. This is what the QGIS dialog and Processing run.")
    _add_inputs(run)
    _add_training(run)
    run.set_defaults(func=_run)

    wald = sub.add_parser("wald", help="self-supervised adaptation to your revisits alone (Wald's protocol)",
                          description="Degrades the 10 m revisits to 30 m with the S-2 PSF, trains the network to "
                                      "give back each tile's clearest 10 m revisit (cL1 + consistency cL1), and "
                                      "reports on the held-out strip before and after: cPSNR/cSSIM at 30 m -> 10 m "
                                      "and, on the 10 m -> 3.33 m output, the 3-px grid score, consistency and (with "
                                      "vectors and segmentation networks) the object-free false-positive share vs "
                                      "bicubic. Needs no HR image and no vectors. Resumes from OUT/train/last.pt.")
    _add_wald(wald)
    wald.set_defaults(func=_wald)
    p.set_defaults(func=lambda a, parser=p: (parser.print_help(), 2)[1])
