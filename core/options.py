"""One options dataclass per job; the defaults, help texts and limits live here and nowhere else.

Why: the CLI (argparse), the Processing algorithms and the dock all start the
same jobs. Each used to declare every option again, and they drifted. Now a
job's options are one frozen dataclass whose fields carry their own metadata
(:func:`option`): help text, a short label, limits, choices and the name of
the command-line flag and the Processing parameter. :func:`add_cli_arguments`
and :func:`from_cli` build the argparse side from it, ``ui/processing/base.py``
builds the Processing side, and the dock fills the same dataclass from its
widgets. Adding an option is one field here plus one widget in the dock.

Values are checked in ``__post_init__`` so a bad one is refused with one
sentence before any work starts, wherever it came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Type, TypeVar, Union

from .jobs import InputError

__all__ = [
    "OptionMeta",
    "option",
    "option_fields",
    "add_cli_arguments",
    "from_cli",
    "to_cli_arguments",
    "SuperResolveOptions",
    "SegmentOptions",
    "TrustOptions",
    "CompareOptions",
    "StackOptions",
    "ExportOptions",
    "EvaluateOptions",
    "AreaOptions",
    "WaldOptions",
    "AREA_TILE_LR",
    "WALD_TILE_10M",
    "DEVICES",
    "SCL_NODATA_DEFAULT",
]

BandSpec = Union[int, str, None]
Extent = Optional[Tuple[float, float, float, float]]
T = TypeVar("T")

DEVICES = ("cpu", "cuda")
#: Number formats a job may ask for (``core.inference.precision``): auto = the fast one the device has natively.
PRECISIONS = ("auto", "fp32", "bf16")
#: Sentinel-2 scene classification (SCL) classes that become nodata by default: 0 no data, 1 saturated or
#: defective, 3 cloud shadow, 8 cloud (medium probability), 9 cloud (high probability), 10 thin cirrus, 11 snow.
SCL_NODATA_DEFAULT: Tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)
SCL_HELP = ("L2A scene classes (SCL) that become nodata: 0 no data, 1 saturated, 3 cloud shadow, 8/9 cloud, "
            "10 cirrus, 11 snow")


@dataclass(frozen=True)
class OptionMeta:
    """How one option is shown and parsed everywhere.

    ``kind``: ``bool``, ``int``, ``float``, ``str``, ``choice``, ``band``
    (1-based number or band name), ``extent`` (minx miny maxx maxy),
    ``ints`` (a list of integers) or ``strs`` (a list of names). ``auto``: ``None`` means "choose for me";
    Processing shows it as 0. ``cli``: the flag (default ``--field-name``);
    ``processing``: the parameter name (default ``FIELD_NAME``); ``None`` in
    either hides the option there (e.g. the extent, which Processing takes
    from its own extent widget).
    """

    help: str
    label: str = ""
    kind: str = "str"
    choices: Tuple[Any, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    auto: bool = False
    cli: Optional[str] = ""
    processing: Optional[str] = ""
    advanced: bool = False


def option(default: Any, help: str, *, label: str = "", kind: str = "", choices: Sequence[Any] = (),
           minimum: Optional[float] = None, maximum: Optional[float] = None, auto: bool = False,
           cli: Optional[str] = "", processing: Optional[str] = "", advanced: bool = False) -> Any:
    """A dataclass field with its :class:`OptionMeta` (``kind`` guessed from the default when omitted)."""
    if not kind:
        kind = ("choice" if choices else "bool" if isinstance(default, bool) else "int" if isinstance(default, int)
                else "float" if isinstance(default, float) else "str")
    meta = OptionMeta(help, label or help.split(";")[0].split(" (")[0], kind, tuple(choices), minimum, maximum, auto,
                      cli, processing, advanced)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for a sequence default (options are frozen)")
    return field(default=default, metadata={"option": meta})


def option_fields(cls_or_obj: Any) -> Iterator[Tuple[dataclasses.Field, OptionMeta]]:
    """``(field, meta)`` of every option of an options dataclass, in declaration order."""
    for f in dataclasses.fields(cls_or_obj):
        meta = f.metadata.get("option")
        if meta is not None:
            yield f, meta


def cli_flag(f: dataclasses.Field, meta: OptionMeta) -> Optional[str]:
    if meta.cli is None:
        return None
    return meta.cli or "--" + f.name.replace("_", "-")


def processing_name(f: dataclasses.Field, meta: OptionMeta) -> Optional[str]:
    if meta.processing is None:
        return None
    return meta.processing or f.name.upper()


# --------------------------------------------------------------------------- parsing and checking


def parse_band(value: Any) -> BandSpec:
    """``"4"`` -> 4 (1-based index); ``"B8"``, ``"all"`` stay names; ``None`` stays ``None``."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else text


def _check(obj: Any) -> None:
    """Refuse values outside an option's limits or choices with one sentence naming the option."""
    for f, meta in option_fields(obj):
        value = getattr(obj, f.name)
        flag = cli_flag(f, meta)
        name = f"{meta.label} ({flag})" if flag else meta.label  # read the same in the dock, Processing and a shell
        if value is None:
            continue
        if meta.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{name}: expected a number, got {value!r}")
            if meta.kind == "int" and int(value) != value:
                raise InputError(f"{name}: expected a whole number, got {value!r}")
            if not math.isfinite(float(value)):
                raise InputError(f"{name}: must be a finite number, got {value!r}")
            if meta.minimum is not None and value < meta.minimum:
                raise InputError(f"{name}: must be at least {meta.minimum:g}, got {value:g}")
            if meta.maximum is not None and value > meta.maximum:
                raise InputError(f"{name}: must be at most {meta.maximum:g}, got {value:g}")
        elif meta.kind == "choice" and value not in meta.choices:
            raise InputError(f"{name}: must be one of {', '.join(map(str, meta.choices))}, got {value!r}")
        elif meta.kind == "bool" and not isinstance(value, bool):
            raise InputError(f"{name}: expected true or false, got {value!r}")
        elif meta.kind == "extent":
            if len(value) != 4 or not all(math.isfinite(float(v)) for v in value):
                raise InputError(f"{name}: expected minx miny maxx maxy, got {list(value)}")
            if not (value[2] > value[0] and value[3] > value[1]):
                raise InputError(f"{name}: {list(value)} is empty (need minx < maxx and miny < maxy)")
        elif meta.kind == "strs":
            if not all(isinstance(v, str) and v for v in value):
                raise InputError(f"{name}: expected names, got {list(value)}")
        elif meta.kind == "ints":
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise InputError(f"{name}: expected whole numbers, got {list(value)}")
            for v in value:
                if (meta.minimum is not None and v < meta.minimum) or (meta.maximum is not None and v > meta.maximum):
                    raise InputError(f"{name}: {v} is outside {meta.minimum:g}..{meta.maximum:g}")


class _Options:
    """Shared behaviour: checked on creation, copied with changes by :meth:`replace`."""

    def __post_init__(self) -> None:
        for f, meta in option_fields(self):
            value = getattr(self, f.name)
            if meta.kind == "band":
                object.__setattr__(self, f.name, parse_band(value))
            elif meta.kind in ("extent", "ints", "strs") and value is not None:
                object.__setattr__(self, f.name, tuple(value))
        _check(self)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f, _ in option_fields(self)}


# --------------------------------------------------------------------------- argparse


def add_cli_arguments(parser: argparse.ArgumentParser, cls: type, exclude: Sequence[str] = ()) -> None:
    """Add one argparse flag per option of ``cls`` (help, default and limits from the field)."""
    for f, meta in option_fields(cls):
        flag = cli_flag(f, meta)
        if flag is None or f.name in exclude:
            continue
        default = f.default
        text = meta.help
        if meta.kind == "bool":
            if default:
                no_flag = "--no-" + flag[2:]
                parser.add_argument(no_flag, dest=f.name, action="store_false", help=text)
            else:
                parser.add_argument(flag, dest=f.name, action="store_true", help=text)
            parser.set_defaults(**{f.name: default})
            continue
        kw: Dict[str, Any] = {"dest": f.name, "default": default}
        if meta.kind == "int":
            kw["type"] = int
        elif meta.kind == "float":
            kw["type"] = float
        elif meta.kind == "choice":
            kw["choices"] = meta.choices
            kw["type"] = type(meta.choices[0]) if meta.choices else str
        elif meta.kind == "band":
            kw["type"] = parse_band
        elif meta.kind == "extent":
            kw.update(type=float, nargs=4, metavar=("MINX", "MINY", "MAXX", "MAXY"))
        elif meta.kind == "ints":
            kw.update(type=int, nargs="*")  # none at all is a choice too (e.g. mask no SCL class)
        elif meta.kind == "strs":
            kw.update(nargs="+")
        if default is not None and default != () and meta.kind != "extent":
            text += f" (default {','.join(map(str, default)) if isinstance(default, tuple) else default})"
        elif meta.auto:
            text += " (default: automatic)"
        kw["help"] = text
        parser.add_argument(flag, **kw)


def to_cli_arguments(options: Any, keep: Sequence[str] = ()) -> list:
    """The command-line flags that give ``options`` to the headless CLI (the reverse of :func:`from_cli`).

    Only values that differ from the defaults are written, plus the fields in
    ``keep``, so a logged command shows what the analyst chose.
    """
    args: list = []
    for f, meta in option_fields(options):
        flag = cli_flag(f, meta)
        value = getattr(options, f.name)
        if flag is None or (value == f.default and f.name not in keep):
            continue
        if meta.kind == "bool":
            if value != f.default:
                args.append(("--no-" + flag[2:]) if f.default else flag)
        elif isinstance(value, tuple):
            args += [flag, *map(str, value)]
        elif value is not None:
            args += [flag, str(value)]
    return args


def from_cli(cls: Type[T], args: argparse.Namespace, **extra: Any) -> T:
    """The options object of ``cls`` from parsed arguments (fields the CLI hides keep their defaults)."""
    values: Dict[str, Any] = {}
    for f, _meta in option_fields(cls):
        if hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    values.update(extra)
    return cls(**values)


# --------------------------------------------------------------------------- the jobs' options


def _tile(help_text: str) -> Any:
    return option(None, help_text, label="Tile size", kind="int", minimum=16, maximum=4096, auto=True,
                  advanced=True)


_OVERLAP = dict(kind="int", minimum=0, maximum=1024, auto=True, advanced=True)
_BATCH = dict(kind="int", minimum=1, maximum=256, auto=True, advanced=True)


@dataclass(frozen=True)
class SuperResolveOptions(_Options):
    """How to super-resolve: band(s), tiling, device, area, anchoring and extras."""

    band: BandSpec = option(1, "band to use: 1-based number or name matched against the band descriptions "
                               "(e.g. B8); 'all' when the raster's bands are dates of one band", kind="band",
                            label="Band")
    all_bands: bool = option(False, "super-resolve Sentinel-2's four 10 m bands (B02, B03, B04, B08) into one "
                                    "4-band output (true colour B04/B03/B02)", label="All 10 m bands")
    tile: Optional[int] = _tile("tile size in input (10 m) pixels; by default chosen from the model and free memory")
    overlap: Optional[int] = option(None, "overlap between tiles in input pixels, blended smoothly",
                                    label="Tile overlap", **_OVERLAP)
    batch: Optional[int] = option(None, "tiles per model call", label="Tiles per call", **_BATCH)
    device: str = option("cpu", "cpu (all the machine's threads) or cuda (falls back to cpu with a message if "
                                "absent)", choices=DEVICES, label="Run on")
    extent: Extent = option(None, "process only this window (in the raster's CRS), snapped outward to its pixels",
                            kind="extent", label="Only this extent", processing=None)
    anchor: bool = option(True, "shift each tile to the mean brightness of its revisits (cL1-trained networks are "
                                "blind to a constant offset); off writes the network's raw output",
                          label="Match the revisits' brightness")
    trust: bool = option(False, "also write <out>_trust.tif: where the output is supported by the revisits, "
                                "unstable, or gridded", label="Also write a trust map")
    force: bool = option(False, "run even when the input checks refuse (a band the model was not trained on)",
                         label="Run despite refused checks", advanced=True)


@dataclass(frozen=True)
class SegmentOptions(_Options):
    """How to segment: band(s), threshold, tiling, device, area and what to write."""

    band: BandSpec = option(1, "band to segment: 1-based number or name; a 4-band output is read by the bands "
                               "the networks' cards name", kind="band", label="Band")
    threshold: float = option(0.5, "probability above which a pixel is the target", minimum=0.0, maximum=1.0,
                              label="Mask threshold")
    tile: Optional[int] = _tile("tile size in pixels; by default 256 on CPU, 512 on CUDA")
    overlap: Optional[int] = option(None, "overlap between tiles in pixels, blended smoothly",
                                    label="Tile overlap", **_OVERLAP)
    batch: Optional[int] = option(None, "tiles per model call", label="Tiles per call", **_BATCH)
    device: str = option("cpu", "cpu or cuda (falls back to cpu with a message if absent)", choices=DEVICES,
                         label="Run on")
    precision: str = option("auto", "number format of the networks: auto = bf16 where the CPU or GPU does it "
                                    "natively (about twice as fast, masks differ only on the threshold), else fp32",
                            choices=PRECISIONS, label="Number format")
    extent: Extent = option(None, "process only this window (in the raster's CRS)", kind="extent",
                            label="Only this extent", processing=None)
    supported_only: bool = option(False, "write only objects the 10 m input supports (also found on the bicubic "
                                         "upsampling of the input)", label="Supported objects only")
    mask_snow: bool = option(True, "leave pixels that look like snow or thick cloud (bright and white in B02-B04, "
                                   "no vegetation in B08) without objects: the networks were not trained on them and "
                                   "paint roads and buildings there; needs B02, B03, B04 and B08 in the raster",
                             label="No objects on snow/cloud")


@dataclass(frozen=True)
class TrustOptions(_Options):
    """How to judge an SR output without an HR image."""

    band: BandSpec = option(None, "band of the inputs: 1-based number or name (default: the one recorded in the "
                                  "SR output)", kind="band", label="Band")
    threshold: float = option(0.02, "disagreement (reflectance) above which a pixel counts as flagged",
                              minimum=0.0, maximum=1.0, label="Flag threshold")
    max_shift: float = option(1.0, "largest misregistration of a revisit to search for, in LR pixels",
                              minimum=0.0, maximum=5.0, label="Largest revisit shift")
    tta: bool = option(True, "measure the output's instability under flips, rotations and dropped revisits "
                             "(needs the checkpoint; slower)", label="Instability (test-time augmentation)")
    device: str = option("cpu", "cpu or cuda", choices=DEVICES, label="Run on")


@dataclass(frozen=True)
class StackOptions(_Options):
    """How to build a revisit stack from several Sentinel-2 products or rasters."""

    frames: int = option(9, "keep the clearest this many dates", minimum=1, maximum=64, label="Dates to keep")
    # Empty means the sensor description's 10 m bands (core.io.sentinel2.BANDS_10M): options sit below io.
    bands: Tuple[str, ...] = option((), "bands to stack (default: all four 10 m bands)", kind="strs",
                                    label="Bands (empty: all 10 m)")
    scl_nodata: Tuple[int, ...] = option(SCL_NODATA_DEFAULT, SCL_HELP, kind="ints", minimum=0, maximum=11,
                                         label="SCL classes masked")
    min_clear: float = option(0.05, "drop dates with less than this share of clear pixels over the area",
                              minimum=0.0, maximum=1.0, label="Least clear share")
    extent: Extent = option(None, "stack only this window (minx miny maxx maxy in the first input's CRS)",
                            kind="extent", label="Only this extent", processing=None)
    baseline: str = option("auto", "processing baseline of plain rasters without offset metadata: auto (from the "
                                   "name or date), pre-04.00 (no offset) or 04.00+ (L1C/L2A offset -0.1)",
                           choices=("auto", "pre-04.00", "04.00+"), label="Processing baseline")
    mix_levels: bool = option(False, "allow L1C (top of atmosphere) and L2A (surface reflectance) dates in one "
                                     "stack; their reflectances differ, most in B02",
                              label="Allow L1C and L2A dates together")


@dataclass(frozen=True)
class ExportOptions(_Options):
    """How to export one Sentinel-2 product's 10 m bands to one GeoTIFF (DN kept, clouds as nodata)."""

    # Empty means the sensor description's 10 m bands (core.io.sentinel2.BANDS_10M): options sit below io.
    bands: Tuple[str, ...] = option((), "bands to export (default: all four 10 m bands)", kind="strs",
                                    label="Bands (empty: all 10 m)", processing=None)
    scl_nodata: Tuple[int, ...] = option(SCL_NODATA_DEFAULT, SCL_HELP + " (give none to mask nothing)", kind="ints",
                                         minimum=0, maximum=11, label="SCL classes masked")
    extent: Extent = option(None, "export only this window (in the product's CRS), snapped outward to whole pixels",
                            kind="extent", label="Only this extent", processing=None)


@dataclass(frozen=True)
class CompareOptions(_Options):
    """How to compare two SR outputs of one area (baseline vs task-driven): what to compute and where."""

    trust: bool = option(False, "also make a trust map of each output for the trust rows (the slowest part: "
                                "several times a super-resolution); without it a trust map already beside an "
                                "output is still read", label="Trust maps (slower)")
    reference_band: int = option(1, "band of the HR reference scored against a one-band output (multi-band "
                                    "outputs are scored on the bands the reference names)", minimum=1, maximum=64,
                                 label="Reference band", advanced=True)
    border: int = option(3, "pixels left out at each edge for cPSNR and cSSIM", minimum=0, maximum=64,
                         label="Border (pixels)", advanced=True)
    device: str = option("cpu", "cpu or cuda, for segmentation and trust maps (falls back to cpu with a message "
                                "if absent)", choices=DEVICES, label="Run on")


@dataclass(frozen=True)
class EvaluateOptions(_Options):
    """How to evaluate a checkpoint on a dataset's scenes."""

    split: str = option("test", "split to evaluate", choices=("test", "val", "train", "all"), label="Split")
    max_scenes: Optional[int] = option(None, "at most this many scenes", kind="int", minimum=1, auto=True,
                                       label="At most this many scenes")
    device: str = option("cpu", "cpu or cuda", choices=DEVICES, label="Run on")
    tile: Optional[int] = _tile("tile size in LR pixels (as super-resolve chooses it by default)")
    overlap: Optional[int] = option(None, "overlap between tiles in LR pixels", label="Tile overlap", **_OVERLAP)
    anchor: bool = option(True, "also score the output anchored to its revisits' brightness, as the plugin "
                                "writes it", label="Also score anchored output")
    hr_reference: bool = option(False, "also score the segmentation networks on the HR images (the upper bound)",
                                label="Score HR reference")


#: The area workflows' tile sides (LR pixels at 10 m): a fine-tune tile, and a Wald tile (a multiple of 3, so
#: that it has a whole 30 m grid: 96 px = 32 px at 30 m). Declared here only; the CLI, Processing and the dialog
#: read them from the options.
AREA_TILE_LR = 64
WALD_TILE_10M = 96


@dataclass(frozen=True)
class _AreaJobOptions(_Options):
    """What both area workflows (task-driven fine-tune and Wald adaptation) take: bands, layout, training knobs.

    Everything else comes from the recipe YAML. The fields shared by
    :class:`AreaOptions` and :class:`WaldOptions`, declared once.
    """

    band: BandSpec = option(1, "band of a one-band network: 1-based number or name (e.g. B8) in every revisit; "
                               "'all' when one raster's bands are the dates. A multi-band network (the shipped "
                               "ones: B02, B03, B04, B08) reads its card's bands by name and ignores this",
                            kind="band", label="Band")
    band_name: Optional[str] = option(None, "band name written into one-band tiles (default: the checkpoint's "
                                            "band)", kind="str", label="Band name in the tiles", advanced=True)
    val_fraction: float = option(0.2, "share of tile columns (or rows) held out on the east (south) side",
                                 minimum=0.01, maximum=0.9, label="Held-out share")
    gap_tiles: int = option(1, "tile columns (rows) left out between training and held-out tiles", minimum=0,
                            maximum=64, cli="--gap", processing="GAP", label="Gap (tiles)", advanced=True)
    epochs: int = option(10, "training epochs", minimum=1, maximum=10000, label="Epochs")
    lr: Optional[float] = option(None, "learning rate (default: the recipe's, 5e-5)", kind="float", minimum=0.0,
                                 maximum=1.0, auto=True, label="Learning rate")
    samples_per_epoch: Optional[int] = option(None, "patches per epoch (default: the recipe's, 256)", kind="int",
                                              minimum=1, auto=True, cli="--samples", processing="SAMPLES",
                                              label="Patches per epoch")
    batch_size: Optional[int] = option(None, "patches per step (default: the recipe's, 8)", kind="int", minimum=1,
                                       maximum=4096, auto=True, label="Batch size")
    lr_patch: Optional[int] = option(None, "LR patch size (default: the recipe's, at most the tile size)",
                                     kind="int", minimum=8, maximum=1024, auto=True, cli="--patch",
                                     label="Patch size")
    device: str = option("auto", "cpu, cuda or auto", choices=("auto", "cpu", "cuda"), label="Device")
    seed: int = option(0, "random seed (training, and the Wald 30 m frames' noise)", minimum=0, label="Seed")
    recipe: Optional[str] = option(None, "training recipe (YAML) to start from (default: the shipped area recipe)",
                                   kind="str", label="Recipe", advanced=True)
    overrides: Tuple[str, ...] = option((), "extra KEY=VALUE settings on the recipe", kind="strs", cli="--set",
                                        processing=None, label="Recipe overrides", advanced=True)


@dataclass(frozen=True)
class AreaOptions(_AreaJobOptions):
    """An area fine-tune (``api.finetune_area``): the shared knobs, its tile size, the switch to Wald, and the
    segmenter stage (``finetune_segmenters``: the building and road networks are fine-tuned on the area first,
    see :mod:`core.area.segmenters`)."""

    tile_lr: int = option(AREA_TILE_LR, "tile size in LR (10 m) pixels", minimum=8, maximum=4096, cli="--tile",
                          processing="TILE", label="Tile size (LR px)")
    wald: bool = option(False, "self-supervised (Wald's protocol): degrade the 10 m revisits to 30 m and learn to "
                               "give them back, then apply at 10 m -> 3.33 m; needs no HR image",
                        label="Self-supervised on the revisits (Wald)")
    finetune_segmenters: bool = option(
        False, "first fine-tune the building and road networks on the area (the starting SR network's output of "
               "the revisits against the OSM masks; patches per epoch and batch as the SR stage), then fine-tune "
               "the SR network against them; the report gives each network's held-out Dice before and after",
        label="Also fine-tune the segmenters on the OSM masks")
    seg_epochs: int = option(5, "epochs of the segmenter stage (with --finetune-segmenters)", minimum=1,
                             maximum=10000, label="Segmenter epochs")
    seg_lr: Optional[float] = option(None, "learning rate of the segmenter stage (default: the recipe's, 5e-4)",
                                     kind="float", minimum=0.0, maximum=1.0, auto=True,
                                     label="Segmenter learning rate", advanced=True)
    seg_input: str = option("sr", "what the segmenters are fine-tuned on: sr = the starting SR network's output "
                                  "of the revisits (what they see in the plugin), bicubic = the bicubic upsampling "
                                  "of the mean revisit", choices=("sr", "bicubic"), label="Segmenters learn on",
                            advanced=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.wald and self.finetune_segmenters:
            raise InputError("Also fine-tune the segmenters (--finetune-segmenters) belongs to the task-driven "
                             "fine-tune; the Wald adaptation (--wald) trains no segmentation network: choose one")

    def to_wald(self) -> WaldOptions:
        """The same knobs for the Wald adaptation (``wald`` set); a tile size left at the fine-tune's default
        becomes the Wald default (a multiple of 3), a chosen one is kept."""
        shared = {f.name: getattr(self, f.name) for f, _m in option_fields(_AreaJobOptions)}
        if self.tile_lr != AREA_TILE_LR:
            shared["tile_lr"] = self.tile_lr
        return WaldOptions(**shared)


@dataclass(frozen=True)
class WaldOptions(_AreaJobOptions):
    """A Wald adaptation (``api.adapt_area``): the shared knobs, its tile size and the noise of the 30 m frames."""

    tile_lr: int = option(WALD_TILE_10M, "tile size in 10 m pixels, a multiple of 3 (96 = 32 px at 30 m)",
                          minimum=24, maximum=4096, cli="--tile", processing="TILE", label="Tile size (10 m px)")
    noise: bool = option(True, "add instrument noise back to the 30 m frames (the 3 x 3 mean removed most of it)",
                         label="Add noise to the 30 m frames")
