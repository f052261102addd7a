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
    # fine-tune the building and road networks on your OSM first (on the SR output of your revisits), then
    # the SR network against them; writes area_seg_buildings/roads.safetensors beside area_finetuned.safetensors
    python -m core.cli area run ... --finetune-segmenters --seg-epochs 5
    # the shipped 4-band networks: the bands B02, B03, B04, B08 are read by name (--band is not needed)
    python -m core.cli area run --revisits s2/*.tif --buildings b.gpkg --roads r.gpkg \\
        --checkpoint resources/models/rams_taskdriven.safetensors \\
        --seg-buildings resources/models/unetpp_buildings.safetensors \\
        --seg-roads resources/models/unetpp_roads.safetensors --out myarea
    # a synthetic world-v2 stand-in area (revisit GeoTIFFs + OSM-like GeoPackages) to try it on
    python -m core.cli area synth --world v2 --out standin --size 576 --frames 9

``--progress jsonl`` prints one JSON event per line (the trainer's events, stage
messages, and a final ``done`` with the registered checkpoint and the report).
The knobs of ``run``/``finetune`` are :class:`core.options.AreaOptions` and those
of ``wald`` :class:`core.options.WaldOptions`: flags, defaults and limits come
from there (the QGIS dialog and Processing read the same fields).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any, Dict, Sequence

from ..io.jsonsafe import json_safe
from ..lazy import lazy_module
from ..options import AREA_TILE_LR, AreaOptions, WaldOptions, add_cli_arguments, from_cli, parse_band
from .progress import event_printer, print_messages

__all__ = ["register"]

# The engine, imported when a command runs: parsing --help stays free of torch (tests/test_cli_light.py).
_synthetic_area = lazy_module("..data.synthetic.area", __package__)
_area_finetune = lazy_module("..area.finetune", __package__)
_area_wald = lazy_module("..area.wald", __package__)
_tiles = lazy_module("..area.tiles", __package__)

#: AreaOptions fields that only the preparation uses (``area finetune`` takes an area already prepared).
PREPARE_FIELDS = ("band", "band_name", "val_fraction", "gap_tiles", "tile_lr")
#: AreaOptions fields of the segmenter stage (``--finetune-segmenters``), which ``area prepare`` does not run.
SEGMENTER_FIELDS = ("finetune_segmenters", "seg_epochs", "seg_lr", "seg_input")


def _overrides(args: argparse.Namespace) -> tuple:
    """``--set`` given several times, each with one or more KEY=VALUE settings."""
    return tuple(v for group in (getattr(args, "set", None) or ()) for v in group)


def _command_line() -> str:
    return "python -m core.cli " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _print_result(args: argparse.Namespace, result) -> None:
    if args.progress == "jsonl":
        return
    for target, seg in (getattr(result, "segmenters", None) or {}).items():  # stage 1, with --finetune-segmenters
        b, a = seg["before"].get("dice"), seg["after"].get("dice")
        print(f"{'segmenter ' + target + ' Dice':<32} before {_fmt(b):>7}  after {_fmt(a):>7}")
        print(f"segmenter {target}: {seg['checkpoint']}")
    for key, label, _ in _area_finetune.metrics_for(result.before.get("bands") or []):
        b, a = (result.before.get(key), result.after.get(key))
        print(f"{label:<32} before {_fmt(b):>7}  after {_fmt(a):>7}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"report: {result.report_md}")


def _prepare(args: argparse.Namespace) -> int:
    def progress(fraction: float, message: str) -> None:
        event: Dict[str, Any] = {"event": "log", "message": f"prepare: {message}", "stage": "prepare",
                                 "fraction": fraction}
        if printer is not None:
            printer(event)

    printer = event_printer(args.progress)
    bands = None
    if args.checkpoint:  # the bands a multi-band network takes, read by name
        from ..area.bands import area_sr_card, network_bands

        bands = network_bands(area_sr_card(args.checkpoint))
    result = _tiles.prepare_area(
        args.revisits, parse_band(args.band), args.buildings, args.roads, args.out, tile_lr=args.tile_lr,
        val_fraction=args.val_fraction, gap_tiles=args.gap_tiles, min_valid=args.min_valid,
        band_name=args.band_name, overwrite=args.overwrite, progress=progress, bands=bands)
    if args.progress == "jsonl":
        printer({"event": "done", **json_safe(result.as_dict())})
    else:
        print_messages(result.messages)
        print(f"{len(result.train)} training tile(s), {len(result.held_out)} held-out tile(s) "
              f"({result.side}ern strip), {len(result.skipped)} skipped, band(s) {', '.join(result.bands)}: "
              f"{result.root}")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    options = from_cli(AreaOptions, args, overrides=_overrides(args))
    result = _area_finetune.finetune_area(
        args.area, args.checkpoint, args.seg_buildings, args.seg_roads, args.out, options=options,
        progress=event_printer(args.progress), resume=not args.no_resume, command=_command_line())
    _print_result(args, result)
    return 0


def _run(args: argparse.Namespace) -> int:
    options = from_cli(AreaOptions, args, overrides=_overrides(args))
    result = _area_finetune.run_area(
        args.revisits, args.buildings, args.roads, args.checkpoint, args.seg_buildings, args.seg_roads, args.out,
        options=options, progress=event_printer(args.progress), resume=not args.no_resume, command=_command_line())
    _print_result(args, result)
    return 0


def _wald(args: argparse.Namespace) -> int:
    options = from_cli(WaldOptions, args, overrides=_overrides(args))
    result = _area_wald.adapt_area(
        args.revisits, args.checkpoint, args.out, buildings_vector=args.buildings, roads_vector=args.roads,
        seg_buildings=args.seg_buildings, seg_roads=args.seg_roads, options=options,
        progress=event_printer(args.progress), resume=not args.no_resume, command=_command_line())
    if args.progress == "jsonl":
        return 0
    bands = result.before["wald"].get("bands") or []
    per_band = {"wald": [(f"cpsnr_{b}", f"cPSNR 30 m -> 10 m {b} (dB)", True) for b in bands],
                "upscaled": [(f"consistency_cpsnr_{b}", f"consistency cPSNR {b} (dB)", True) for b in bands]}
    for part, metrics in (("wald", _area_wald.WALD_METRICS), ("upscaled", _area_wald.UPSCALED_METRICS)):
        for key, label, _ in list(metrics) + (per_band[part] if len(bands) > 1 else []):
            b, a = result.before[part].get(key), result.after[part].get(key)
            if key in result.before[part]:
                print(f"{label:<42} before {_fmt(b):>7}  after {_fmt(a):>7}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"report: {result.report_md}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    """A synthetic stand-in area: revisit GeoTIFFs with named bands and OSM-like GeoPackages.

    World v2: rural land with villages, four bands (B02, B03, B04, B08), for the shipped networks; v1: the
    study's towns, one NIR band (B8), for one-band networks.
    """
    if args.world == "v3":  # a city (dense buildings and streets): where the shipped segmenters struggle
        from ..data.synthetic.world_v3 import make_world_v3_scene

        scene = make_world_v3_scene(size_hr=args.size, frames=args.frames, seed=args.seed,
                                    real_world=args.real_world, city_type=args.city)
    elif args.world == "v2":
        from ..data.synthetic.world_v2 import make_world_scene

        scene = make_world_scene(size_hr=args.size, frames=args.frames, seed=args.seed,
                                 real_world=args.real_world, object_free=False)
    else:
        from ..data.synthetic.towns import make_scene

        scene = make_scene(size_hr=args.size, frames=args.frames, seed=args.seed, real_world=args.real_world)
    files = _synthetic_area.write_area_files(scene, args.out, vector_crs=args.vector_crs)
    print(f"{len(files.revisits)} revisit(s) with bands {', '.join(scene.bands)}: {files.revisits[0].parent}")
    print(f"buildings: {files.buildings}")
    print(f"roads: {files.roads}")
    return 0


def _add_options(p: argparse.ArgumentParser, cls: type, exclude: Sequence[str] = ()) -> None:
    """The options' own flags (help, defaults, limits from core/options.py), ``--set`` repeatable."""
    add_cli_arguments(p, cls, exclude=tuple(exclude) + ("overrides",))
    p.add_argument("--set", action="append", nargs="+", metavar="KEY=VALUE",
                   help="override any setting of the recipe (repeatable)")


def _add_progress_and_resume(p: argparse.ArgumentParser) -> None:
    """--progress and --no-resume, the last options of every training action (the QGIS dialog reads jsonl)."""
    p.add_argument("--progress", choices=("tqdm", "jsonl", "none"), default="tqdm",
                   help="tqdm bars (default) or one JSON event per line on stdout (for the QGIS dialog)")
    p.add_argument("--no-resume", action="store_true", help="start the training afresh even if OUT/train/last.pt exists")


def _add_revisits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--revisits", nargs="+", required=True, metavar="RASTER",
                   help="Sentinel-2 rasters of the area (revisits); the first sets the grid, others are warped onto it")


def _add_vectors(p: argparse.ArgumentParser, required: bool) -> None:
    extra = "" if required else "optional; "
    p.add_argument("--buildings", required=required,
                   help=f"{extra}buildings polygon layer (GeoPackage, GeoJSON, Shapefile)")
    p.add_argument("--roads", required=required,
                   help=f"{extra}roads line layer with the OSM 'highway' class (and optional 'width' in metres)")


def _add_networks(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--checkpoint", required=True, help="SR checkpoint to start from (.safetensors; one band, or "
                                                       "several jointly, e.g. the shipped B02/B03/B04/B08 networks)")
    p.add_argument("--seg-buildings", required=required, help="building segmentation checkpoint (frozen; where "
                                                               "the segmenter stage starts with --finetune-segmenters)")
    p.add_argument("--seg-roads", required=required, help="road segmentation checkpoint (frozen; where the "
                                                           "segmenter stage starts with --finetune-segmenters)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "area", help="fine-tune an SR network on your own area from S-2 revisits and OSM vectors (no HR image)",
        description="Task-driven fine-tuning without HR: cut the area into tiles, rasterize the buildings and "
                    "roads onto the 3x grid, hold out a spatially separate strip, fine-tune with consistency cL1 "
                    "+ building/road Dice (dynamic weighting, patch selection), and report Dice and consistency "
                    "cPSNR on the held-out strip before and after. A multi-band network (the shipped ones take "
                    "B02, B03, B04, B08) reads its bands by name from the revisits.",
    )
    sub = p.add_subparsers(dest="area_command", metavar="ACTION")
    prep = sub.add_parser("prepare", help="cut the area into scene tiles with masks and a held-out strip",
                          description="Writes scene folders (no HR), split.json (train / held-out) and area.json.")
    _add_revisits(prep)
    _add_vectors(prep, required=True)
    add_cli_arguments(prep, AreaOptions, exclude=[f for f in ("epochs", "lr", "samples_per_epoch", "batch_size",
                                                              "lr_patch", "device", "seed", "recipe", "overrides",
                                                              "wald") + SEGMENTER_FIELDS])
    prep.add_argument("--checkpoint", help="an SR checkpoint taking several bands: cut tiles holding its bands, "
                                           "read by name (default: --band alone)")
    prep.add_argument("--out", required=True, help="folder for the prepared area (new or empty)")
    prep.add_argument("--min-valid", type=float, default=0.5,
                      help="skip tiles with a smaller share of pixels seen by any revisit (default 0.5)")
    prep.add_argument("--overwrite", action="store_true", help="replace an area already prepared in --out")
    prep.add_argument("--progress", choices=("tqdm", "jsonl", "none"), default="tqdm")
    prep.set_defaults(func=_prepare)

    ft = sub.add_parser("finetune", help="fine-tune on a prepared area; report before/after; register",
                        description="Resumes from OUT/train/last.pt when present. The registered checkpoint is "
                                    "the last epoch's weights (the held-out tiles never choose them).")
    ft.add_argument("--area", required=True, help="a folder made by `area prepare`")
    _add_networks(ft, required=True)
    ft.add_argument("--out", required=True, help="output folder: train/ (the run), area_finetuned.safetensors, "
                                                 "area_report.json/.md/.png")
    _add_options(ft, AreaOptions, exclude=PREPARE_FIELDS + ("wald",))
    _add_progress_and_resume(ft)
    ft.set_defaults(func=_finetune)

    run = sub.add_parser("run", help="prepare (into OUT/area) and fine-tune in one go",
                         description="`area prepare` into OUT/area (reused when the inputs are the same), then "
                                     "`area finetune`. This is what the QGIS dialog and Processing run.")
    _add_revisits(run)
    _add_vectors(run, required=True)
    _add_networks(run, required=True)
    run.add_argument("--out", required=True, help="output folder: area/ (the tiles), train/ (the run), "
                                                  "area_finetuned.safetensors, area_report.json/.md/.png; with "
                                                  "--finetune-segmenters also seg_inputs/, seg_<target>/ and "
                                                  "area_seg_<target>.safetensors")
    _add_options(run, AreaOptions, exclude=("wald",))
    _add_progress_and_resume(run)
    run.set_defaults(func=_run)

    wald = sub.add_parser("wald", help="self-supervised adaptation to your revisits alone (Wald's protocol)",
                          description="Degrades the 10 m revisits to 30 m with the S-2 PSF, trains the network to "
                                      "give back each tile's clearest 10 m revisit (cL1 + consistency cL1), and "
                                      "reports on the held-out strip before and after: cPSNR/cSSIM at 30 m -> 10 m "
                                      "and, on the 10 m -> 3.33 m output, the 3-px grid score, consistency and (with "
                                      "vectors and segmentation networks) the object-free false-positive share vs "
                                      "bicubic. Needs no HR image and no vectors. Resumes from OUT/train/last.pt.")
    _add_revisits(wald)
    _add_vectors(wald, required=False)
    _add_networks(wald, required=False)
    wald.add_argument("--out", required=True, help="output folder: area/ (10 m tiles), wald/ (30 m -> 10 m pairs), "
                                                   "train/ (the run), wald_adapted.safetensors, wald_report.*")
    _add_options(wald, WaldOptions)
    _add_progress_and_resume(wald)
    wald.set_defaults(func=_wald)

    syn = sub.add_parser("synth", help="write a synthetic world-v2 stand-in area (revisits + OSM-like vectors)",
                         description="One world v2 scene with objects, written as an analyst has an area: one "
                                     "GeoTIFF per revisit (B02, B03, B04, B08 named in the band descriptions) and "
                                     "buildings/roads GeoPackages. For trying `area run` and `area wald`.")
    syn.add_argument("--out", required=True, help="folder for the files")
    syn.add_argument("--world", choices=("v2", "v3", "v1"), default="v2",
                     help="v2: rural land and villages in B02, B03, B04, B08 (the shipped networks' bands; "
                          "default); v3: a city in the same bands (--city picks its kind); v1: the study's towns "
                          "in one NIR band")
    syn.add_argument("--city", default=None, help="world v3 only: the city type, e.g. european_blocks, "
                                                  "informal_settlement, superblocks (default: drawn by the seed)")
    syn.add_argument("--size", type=int, default=3 * 3 * AREA_TILE_LR,
                     help="HR size in pixels, a multiple of 3 (the LR area is a third of it)")
    syn.add_argument("--frames", type=int, default=9, help="revisits")
    syn.add_argument("--seed", type=int, default=0, help="random seed")
    syn.add_argument("--real-world", action="store_true", help="revisits that disagree (gain, haze, clouds)")
    syn.add_argument("--vector-crs", default="EPSG:4326", help="CRS of the GeoPackages (default EPSG:4326, as "
                                                              "QuickOSM exports)")
    syn.set_defaults(func=_synth)
    p.set_defaults(func=lambda a, parser=p: (parser.print_help(), 2)[1])
