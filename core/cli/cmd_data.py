"""Data commands: ``synth``, ``simulate``, ``rasterize``, ``split``, ``import-mus2``.

Examples::

    python -m core.cli synth --out data/synth --scenes 20 --size 384 --seed 0
    python -m core.cli synth --out data/synth_rw --scenes 20 --real-world
    python -m core.cli synth --world v2 --out data/world --scenes 50 --object-free-share 0.2
    python -m core.cli synth --world v3 --out data/cities --scenes 40 --city-types high_rise,informal_settlement
    python -m core.cli simulate --src data/real --out data/simulated --frames 9
    python -m core.cli rasterize --vectors osm.gpkg --grid data/real/s01/hr.tif --out data/real/s01/masks
    python -m core.cli split --root data/real
    python -m core.cli import-mus2 --src /data/MuS2 --out data/mus2_real --band B8
    python -m core.cli simulate --src /data/MuS2 --out data/mus2_sim      # simulated version of MuS2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from tqdm import tqdm

from ..lazy import lazy_module

# The engine, imported when a command runs: parsing --help stays free of torch (tests/test_cli_light.py).
_degrade = lazy_module("..data.degrade", __package__)
_mus2 = lazy_module("..data.mus2", __package__)
_road_classes = lazy_module("..data.road_classes", __package__)
_scene = lazy_module("..data.scene", __package__)
_vectors = lazy_module("..data.vectors", __package__)


def _bar(total_desc: str) -> Tuple[tqdm, Callable[[float, str], None]]:
    """A tqdm bar and a ``progress(fraction, message)`` callback that drives it."""
    bar = tqdm(total=100, desc=total_desc, unit="%", bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}% {postfix}")

    def progress(fraction: float, message: str) -> None:
        bar.n = round(100 * fraction, 1)
        bar.set_postfix_str(message)
        bar.refresh()

    return bar, progress


# The data modules (and torch) are imported inside the handlers so that `--help` stays fast.


def _synth(args: argparse.Namespace) -> int:
    common = dict(n_scenes=args.scenes, size_hr=args.size, seed=args.seed, real_world=args.real_world, frames=args.frames)
    if args.world != "v2" and args.object_free_share is not None:
        raise ValueError("--object-free-share applies to --world v2 only (v1 towns and v3 cities always hold objects; "
                         "every v3 scene keeps some object-free land of its own)")
    city_types = [t.strip() for t in (args.city_types or "").split(",") if t.strip()]
    if city_types and args.world != "v3":
        raise ValueError("--city-types applies to --world v3 only")
    if city_types:
        from ..data.synthetic.world_v3 import CITY_TYPES

        unknown = [t for t in city_types if t not in CITY_TYPES]
        if unknown:
            raise ValueError(f"--city-types: unknown {', '.join(unknown)}; choose from {', '.join(CITY_TYPES)}")
    bar, progress = _bar("synth")
    try:
        if args.world == "v3":
            from ..data.synthetic.world_v3 import make_world_v3_dataset

            paths = make_world_v3_dataset(args.out, progress=progress, city_types=city_types or None, **common)
        elif args.world == "v2":
            from ..data.synthetic.world_v2 import make_world_dataset

            share = 0.2 if args.object_free_share is None else args.object_free_share
            paths = make_world_dataset(args.out, object_free_share=share, progress=progress, **common)
        else:
            from ..data.synthetic.towns import make_dataset

            paths = make_dataset(args.out, progress=progress, **common)
    finally:
        bar.close()
    print(f"wrote {len(paths)} scene(s) and split.json to {args.out}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    bar, progress = _bar("simulate")
    try:
        paths = _degrade.simulate_dataset(
            args.src,
            args.out,
            frames=args.frames,
            seed=args.seed,
            max_shift_lr=args.max_shift,
            progress=progress,
            band=args.band,
        )
    finally:
        bar.close()
    print(f"wrote {len(paths)} simulated scene(s) to {args.out}")
    return 0


def _widths(text: Optional[str]) -> Optional[dict]:
    """``--widths``: ``CLASS=METRES[,CLASS=METRES...]`` or a JSON file ``{"class": metres}``."""
    if not text:
        return None
    if "=" in text and not Path(text).is_file():
        table = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            try:
                if not sep or not key.strip():
                    raise ValueError
                table[key.strip()] = float(value)
            except ValueError:
                raise ValueError(f"--widths: {item.strip()!r} is not CLASS=METRES (e.g. footway=2)") from None
        return table
    try:
        table = json.loads(Path(text).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--widths {text}: not CLASS=METRES and not a readable JSON file ({exc})") from None
    if not isinstance(table, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in table.values()):
        raise ValueError(f"{text}: expected a JSON object {{\"highway class\": width in metres}}")
    return {str(k): float(v) for k, v in table.items()}


def _mask_targets(out: Path, kinds: Tuple[str, ...]) -> List[Tuple[str, Path]]:
    """Where each mask goes: ``--out`` ending in .tif/.tiff is the file of a single kind, else a folder."""
    if out.suffix.lower() in (".tif", ".tiff"):
        if len(kinds) > 1:
            raise ValueError(f"--out {out} names one GeoTIFF, but --kind both writes two masks; give a folder "
                             "(masks go to FOLDER/buildings.tif and FOLDER/roads.tif) or one --kind")
        return [(kinds[0], out)]
    if out.is_file():
        raise ValueError(f"--out {out}: is a file; give a folder, or a .tif path with one --kind")
    return [(kind, out / f"{kind}.tif") for kind in kinds]


def _rasterize(args: argparse.Namespace) -> int:
    kinds = ("buildings", "roads") if args.kind == "both" else (args.kind,)
    widths = _widths(args.widths)
    for kind, target in _mask_targets(Path(args.out), kinds):
        layer = args.layer if len(kinds) == 1 else (args.buildings_layer if kind == "buildings" else args.roads_layer)
        _vectors.rasterize_to_grid(args.vectors, args.grid, target, kind=kind, layer=layer, widths=widths)
        print(f"{kind}: {target}")
    return 0


def _split(args: argparse.Namespace) -> int:
    fractions = tuple(float(x) for x in args.fractions.split(","))
    assignment = _scene.make_split(args.root, seed=args.seed, fractions=fractions)
    print(", ".join(f"{k}: {len(v)}" for k, v in assignment.items()) + f"  -> {Path(args.root) / 'split.json'}")
    return 0


def _import_mus2(args: argparse.Namespace) -> int:
    bands = [b.strip() for b in args.band.split(",") if b.strip()]
    bar, progress = _bar("import-mus2")
    try:
        paths = _mus2.import_mus2(
            args.src,
            args.out,
            band=bands,
            seed=args.seed,
            progress=progress,
            lr_offset=args.lr_offset,
            hr_radiometric_scale=args.hr_scale,
            match_hr_to_lr=args.match_hr_to_lr,
        )
    finally:
        bar.close()
    print(f"imported {len(paths)} MuS2 scene(s) into {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = subparsers.add_parser(
        "synth",
        help="generate synthetic scenes (HR, LR revisits, building and road masks)",
        description="Procedural scenes with exact masks, georeferenced in UTM, written as scene folders: "
        "v1 NIR-like towns (the study's grid), v2 rural land or v3 cities of the world in four bands "
        "(v3 scenes lie in a UTM zone of their city; scene.json records city_type and epsg).",
        formatter_class=fmt,
    )
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--scenes", type=int, default=10, help="number of scenes")
    p.add_argument("--size", type=int, default=384, help="HR size in pixels (multiple of 3; HR pixel 10/3 m)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same scenes)")
    p.add_argument("--frames", type=int, default=9, help="LR revisits per scene")
    p.add_argument(
        "--real-world",
        action="store_true",
        help="revisits differ in gain, haze, registration, season; some have clouds (nodata)",
    )
    p.add_argument(
        "--world",
        choices=("v1", "v2", "v3"),
        default="v1",
        help="v1: the study's NIR towns; v2: mostly rural land in B02/B03/B04/B08 with villages and roads; "
        "v3: cities of the world (one city type per scene) in B02/B03/B04/B08",
    )
    p.add_argument(
        "--city-types",
        default=None,
        metavar="TYPE[,TYPE...]",
        help="v3: only these city types (european_blocks, informal_settlement, high_rise, villa_suburb, superblocks, "
        "industrial, port_rail_airport, motorway_interchange, desert_city, tropical_city); default all, in turn",
    )
    p.add_argument(
        "--object-free-share",
        type=float,
        default=None,
        help="v2: share of scenes without any building or road (default 0.2)",
    )
    p.set_defaults(func=_synth)

    p = subparsers.add_parser(
        "simulate",
        help="make the simulated version of a dataset (LR revisits from HR with the S-2 PSF)",
        description="For every scene with an HR image: T revisits = area-downsample(PSF * shift(HR)) + noise; "
        "HR, masks, georeferencing and split are kept.",
        formatter_class=fmt,
    )
    p.add_argument("--src", required=True, help="source dataset (or scene) folder with hr.tif")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--frames", type=int, default=9, help="LR revisits per scene")
    p.add_argument("--seed", type=int, default=0, help="random seed for shifts and noise")
    p.add_argument("--max-shift", type=float, default=1.0, help="largest random shift, in LR pixels")
    p.add_argument("--band", default="B8", help="band to read when --src is a MuS2 tree")
    p.set_defaults(func=_simulate)


    p = subparsers.add_parser(
        "rasterize",
        help="burn OSM buildings/roads from a vector file into masks on an HR grid",
        description="Reprojects to the grid's CRS, buffers roads by a width per OSM 'highway' class (or the "
        "feature's own width tag, in metres), rasterizes with the pixel-centre rule; writes uint8 0/1 GeoTIFFs. "
        "Road widths in m: " + ", ".join(f"{k} {v:g}" for k, v in _road_classes.ROAD_WIDTHS_M.items())
        + f"; other classes {_road_classes.DEFAULT_ROAD_WIDTH_M:g}. Left out as not roads for vehicles: "
        + ", ".join(_road_classes.NON_VEHICLE_CLASSES) + " (include one with --widths, e.g. footway=2). "
        "A layer with no usable feature, or whose features cover no pixel of the grid, is refused.",
        formatter_class=fmt,
    )
    p.add_argument("--vectors", required=True, help="vector file OGR can read (GeoPackage, GeoJSON, Shapefile)")
    p.add_argument("--grid", required=True, help="raster whose grid the masks take (e.g. a scene's hr.tif)")
    p.add_argument("--out", required=True,
                   help="output folder: masks go to OUT/buildings.tif and OUT/roads.tif; or, with a single --kind, "
                        "a path ending in .tif/.tiff for that one mask (refused with --kind both)")
    p.add_argument("--kind", choices=("buildings", "roads", "both"), default="both", help="what to rasterize")
    p.add_argument("--layer", default=None, help="layer name for a single --kind (default: first fitting layer)")
    p.add_argument("--buildings-layer", default=None, help="buildings layer name with --kind both")
    p.add_argument("--roads-layer", default=None, help="roads layer name with --kind both")
    p.add_argument("--widths", default=None, metavar="CLASS=M,...",
                   help="road widths overriding the defaults: CLASS=METRES pairs (e.g. footway=2,primary=14; "
                        "0 leaves a class out) or a JSON file {\"class\": metres}")
    p.set_defaults(func=_rasterize)

    p = subparsers.add_parser(
        "split",
        help="write a reproducible train/val/test split.json for a dataset folder",
        formatter_class=fmt,
    )
    p.add_argument("--root", required=True, help="dataset folder (a folder of scene folders)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--fractions", default="0.8,0.1,0.1", help="train,val,test fractions")
    p.set_defaults(func=_split)

    p = subparsers.add_parser(
        "import-mus2",
        help="convert a MuS2 benchmark folder into scene folders (the real-world version)",
        description="Reads <scene>/b8/lrs/* (S-2 L2A revisits) and <scene>/hr_resized/mul_band_6.tiff (WV-2, 3x); "
        "writes scene folders with split.json (72/9/9-style split unless the MuS2 folder has a split.json).",
        formatter_class=fmt,
    )
    p.add_argument("--src", required=True, help="MuS2 root folder")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--band", default="B8", help="band(s), comma-separated: B2, B3, B4, B8")
    p.add_argument("--seed", type=int, default=0, help="seed of the split when MuS2 has no split.json")
    p.add_argument("--lr-offset", type=float, default=0.0, help="DN offset (-1000 for S-2 baseline >= 04.00)")
    p.add_argument("--hr-scale", type=float, default=None, help="WV-2 DN -> reflectance factor (default: by data type)")
    p.add_argument("--match-hr-to-lr", action="store_true", help="fit HR gain/offset to the median clear revisit")
    p.set_defaults(func=_import_mus2)
