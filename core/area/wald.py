"""Self-supervised adaptation to the analyst's own Sentinel-2 revisits (Wald's protocol): no HR image at all.

Why: a network trained elsewhere meets other land, other haze and other
revisit geometry on the analyst's area, and no HR image of that area exists.
Wald's protocol makes a training pair from what does exist: the 10 m revisits
are degraded to 30 m by the Sentinel-2 operator (:class:`core.data.degrade.Degradation`
at scale 3, the band's PSF from its MTF) and the network learns to give the
10 m image back; the adapted network is then applied at 10 m -> 3.33 m. The
protocol assumes the 30 m -> 10 m relation resembles the 10 m -> 3.33 m one
(scale invariance); it holds for the sensor model, not necessarily for the
ground (objects smaller than 30 m vanish from the 30 m frames).

The steps (:func:`adapt_area`):

1. :func:`core.area.tiles.prepare_area` cuts the revisits into 10 m tiles with
   the held-out strip and its gap, with masks when vectors are given
   (``OUT/area``): the held-out 10 m tiles are the input of the
   10 m -> 3.33 m measurements, exactly as for ``area finetune``;
2. :func:`core.area.wald_pairs.prepare_wald` turns every tile into a 30 m -> 10 m pair
   (``OUT/wald``, see :func:`core.area.wald_pairs.wald_scene`): HR = the clearest 10 m revisit of
   the tile; LR = *every* revisit (the reference included, first) degraded to
   30 m with the sub-pixel shifts the revisits have among themselves left as
   they are, plus the instrument noise the averaging removed;
3. training through :func:`core.training.trainer.train` with
   ``resources/configs/area/wald.yaml`` (cL1 against the 10 m reference +
   consistency cL1), resumable from ``OUT/train/last.pt``;
4. before and after, on the held-out strip only: cPSNR and cSSIM of the
   30 m -> 10 m output against the held-out 10 m reference (and of bicubic), and
   on the 10 m -> 3.33 m output (:func:`core.area.wald_eval.evaluate_upscaled`, through the
   plugin's own tiled passes of :mod:`core.evaluation.scene_predict`): the 3-px
   grid score, consistency cPSNR, and with masks and segmentation networks the
   object-free false-positive share against bicubic and Dice;
5. the last epoch's weights are registered as ``OUT/wald_adapted.safetensors``
   with a card naming the protocol and both measurements, plus a report
   (:mod:`core.area.wald_report`).

Choices, and why:

* **The HR of a tile is its clearest revisit, not each revisit in turn.** The
  patch sampler orders frames clearest first (ties in acquisition order) and the
  plugin super-resolves onto the clearest frame; training on each revisit in
  turn would ask the same frame stack for T different, mutually misregistered
  targets, whose best compromise is their blurred mean. The reference is stored
  as frame 0, so it stays first whenever it ties.
* **No Dice terms in the 30 m -> 10 m training.** The frozen networks were
  trained on 3.33 m images; on a 10 m output they see objects three times too
  small and their Dice would reward painting 3.33 m-looking objects into a
  10 m image. The masks are still written onto the 10 m grid (majority of each
  3 x 3 block of the 3.33 m masks) so an experiment can switch the terms on
  (``--set``); the task losses belong to ``area finetune`` at 10 m -> 3.33 m,
  which can start from the adapted checkpoint.
* **Noise is added back to the 30 m frames** (the default S-2-like model of
  :func:`core.data.degrade.add_noise`, seeded per tile): the 3 x 3 area mean
  divides the revisits' own noise by about three, and a network trained on
  cleaner inputs than it meets at 10 m would not learn to suppress that noise.
* **The sub-pixel shifts stay as they are**: at 30 m they are a third of what
  they are at 10 m (in LR pixels), a known weakness of Wald's protocol for
  multi-image networks, reported rather than faked.

Modules: the pairs are made by :mod:`core.area.wald_pairs`, measured by
:mod:`core.area.wald_eval` and laid out by :mod:`core.area.wald_report`; this
one runs the job.

Honesty rules as for ``area finetune``: the held-out tiles are monitored during
training but never choose the weights (the last epoch's are registered), and the
held-out strip is separated from the training tiles by a gap.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
import yaml

from .. import RESOURCES
from ..data.scene import list_scenes, read_scene
from ..evaluation.evaluate import load_split_scenes
from ..inference.loading import load_model
from ..io.paths import check_output_folder
from ..jobs import InputError, check_cancel
from ..models.zoo import file_sha256, load_checkpoint, save_checkpoint
from ..options import AreaOptions, WaldOptions
from ..training.config import load_config, validate_config
from ..training.distributed import resolve_device
from ..training.trainer import train
from .bands import area_sr_card, check_seg_networks, network_bands
from .stages import Event, RunResult, cached_result, event_sink, log_stage
from .tiles import AREA_JSON, prepare_area, read_area
from .wald_eval import evaluate_upscaled, evaluate_wald
from .wald_pairs import MIN_WALD_TILE, SCALE, WALD_JSON, WaldPrepared, prepare_wald, read_wald, wald_scene
from .wald_report import (  # what is reported, in report order
    UPSCALED_METRICS,
    WALD_METRICS,
    write_wald_report,
)

__all__ = [
    "WALD_RECIPE",
    "WALD_JSON",
    "CHECKPOINT_NAME",
    "REPORT_STEM",
    "WALD_METRICS",
    "UPSCALED_METRICS",
    "WaldPrepared",
    "WaldResult",
    "wald_scene",
    "prepare_wald",
    "read_wald",
    "evaluate_wald",
    "evaluate_upscaled",
    "adapt_area",
    "result_dict",
]

PathLike = Union[str, os.PathLike]
Progress = Callable[[float, str], None]

WALD_RECIPE = RESOURCES / "configs" / "area" / "wald.yaml"
CHECKPOINT_NAME = "wald_adapted.safetensors"
REPORT_STEM = "wald_report"
AREA_DIR, WALD_DIR, TRAIN_DIR = "area", "wald", "train"


def _measure(checkpoint: PathLike, wald_root: Path, area_root: Path, seg_paths: Mapping[str, PathLike],
             device: str, preview: bool, emit: Event, stage: str, cancel: Any) -> Dict[str, Any]:
    """Both held-out measurements of one SR checkpoint: ``{"wald": ..., "upscaled": ...}``.

    Both through the plugin's default tile plan for the network (what ``super_resolve`` would use), not
    the trainer's small validation tiles: the numbers describe what the plugin writes.
    """
    dev = torch.device(device)
    loaded = load_model(checkpoint, dev, task="sr")
    seg = {}
    for target, path in seg_paths.items():
        net = load_model(path, dev, task="segmentation")
        if net.card.target != target:
            raise InputError(f"{path}: segments {net.card.target!r}, not {target}")
        seg[target] = net

    def prog(f: float, m: str) -> None:
        emit({"event": "log", "message": f"{stage}: {m}", "stage": stage, "fraction": f})

    check_cancel(cancel)
    wald = evaluate_wald(loaded, load_split_scenes(wald_root, "test"), progress=lambda f, m: prog(f / 100.0, f"30 m -> 10 m, {m}"))
    check_cancel(cancel)
    up = evaluate_upscaled(loaded, load_split_scenes(area_root, "test"), seg, preview=preview, progress=prog,
                           cancel=cancel)
    return {"wald": wald, "upscaled": up}


def _preview(checkpoint: PathLike, area_root: Path, device: str) -> Optional[Dict[str, Any]]:
    """The first held-out tile's 10 m -> 3.33 m images only (for the figure of a resumed run)."""
    paths = list_scenes(area_root, split="test")
    if not paths:
        return None
    loaded = load_model(checkpoint, torch.device(device), task="sr")
    return evaluate_upscaled(loaded, [read_scene(paths[0])], preview=True).get("_preview")


# --------------------------------------------------------------------------- training


def _config(wald_root: Path, run_dir: Path, sr_checkpoint: PathLike, opts: WaldOptions, tile_30m: int,
            sigma: Union[float, Sequence[float]], area_name: str):

    card = area_sr_card(sr_checkpoint)
    over: Dict[str, Any] = {
        "data.root": str(wald_root), "out_dir": str(run_dir), "epochs": int(opts.epochs),
        "model.arch": card.arch, "model.init_from": str(sr_checkpoint), "data.frames": card.input_frames,
        "device": opts.device, "seed": int(opts.seed),
        "name": f"Wald adaptation of {card.name or card.arch}",
        "experiment.title": f"Wald self-supervised adaptation on {area_name}",
    }
    bands = network_bands(card)
    if bands:  # channels from in_chans, revisits from frames; each band's consistency PSF from its MTF (the
        over["data.bands"] = bands  # same per-band sigma the 30 m frames were made with)
    else:
        over["loss.psf_sigma"] = float(sigma if isinstance(sigma, (int, float)) else sigma[0])
    if card.arch == "hat":
        over["model.hparams"] = {"in_chans": card.in_chans}
    for key, value in (("lr", opts.lr), ("data.samples_per_epoch", opts.samples_per_epoch),
                       ("data.batch_size", opts.batch_size), ("data.lr_patch", opts.lr_patch)):
        if value is not None:
            over[key] = value
    for text in opts.overrides or ():  # the user's KEY=VALUE settings win over the ones above
        if "=" not in text:
            raise InputError(f"setting {text!r}: expected KEY=VALUE, e.g. lr=1e-4")
        key, value = text.split("=", 1)
        over[key.strip()] = yaml.safe_load(value)
    config = load_config(opts.recipe or WALD_RECIPE, over)
    # Patches and validation tiles must fit in one 30 m tile.
    config.data.lr_patch = min(config.data.lr_patch, tile_30m)
    config.val_tile = min(config.val_tile, tile_30m)
    config.val_overlap = min(config.val_overlap, max(0, config.val_tile // 2 - 1))
    validate_config(config)
    return config


# --------------------------------------------------------------------------- the whole job


@dataclass
class WaldResult(RunResult):
    """What :func:`adapt_area` produced; ``before``/``after`` hold ``{"wald": ..., "upscaled": ...}``."""


def _tile_10m(tile_lr: int, messages: List[str]) -> int:
    tile = int(tile_lr)
    if tile < MIN_WALD_TILE * SCALE:
        raise InputError(f"the tile size must be at least {MIN_WALD_TILE * SCALE} px at 10 m ({MIN_WALD_TILE} px at "
                         f"30 m) for Wald pairs, got {tile}")
    if tile % SCALE:
        messages.append(f"tile size {tile} px rounded down to {tile - tile % SCALE} px (a multiple of 3, so each "
                        "tile has a whole 30 m grid)")
    return tile - tile % SCALE


def _same(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return {k: saved.get(k) for k in wanted} == dict(wanted)


def _public(d: Mapping[str, Any]) -> Dict[str, Any]:
    """A measurement without its in-memory images (``_``-keys) and per-tile rows (for cards and events)."""
    return {k: v for k, v in d.items() if not k.startswith("_") and k != "per_tile"}


def adapt_area(
    revisits: Sequence[PathLike],
    sr_checkpoint: PathLike,
    out_dir: PathLike,
    buildings_vector: Optional[PathLike] = None,
    roads_vector: Optional[PathLike] = None,
    seg_buildings: Optional[PathLike] = None,
    seg_roads: Optional[PathLike] = None,
    options: Union[WaldOptions, AreaOptions, None] = None,
    progress: Optional[Event] = None,
    resume: bool = True,
    cancel: Any = None,
    command: Optional[str] = None,
) -> WaldResult:
    """Adapt ``sr_checkpoint`` to the revisits by Wald's protocol; measure before/after; register it.

    ``options``: :class:`core.options.WaldOptions` (band, tile size in 10 m
    pixels, held-out share, gap, noise, epochs, lr, patches, device, seed,
    recipe, overrides); an :class:`~core.options.AreaOptions` is converted
    (:meth:`~core.options.AreaOptions.to_wald`). A multi-band network (the
    shipped ones) gets its card's bands, read by name from the revisits; a
    one-band network ``options.band``. Vectors and segmentation networks are
    optional; with both, the object-free false-positive share and Dice of the
    10 m -> 3.33 m output are measured too (the vectors rasterized once).
    ``progress`` receives the trainer's events plus stage ``log`` events and a
    final ``done``. Started again with the same arguments, it reuses the
    prepared tiles and the "before" measurement and resumes training from
    ``OUT/train/last.pt``. Everything is written inside ``out_dir``.
    """
    t0 = time.perf_counter()
    opts = options.to_wald() if isinstance(options, AreaOptions) else (options or WaldOptions())
    emit = event_sink(progress)
    out_dir = check_output_folder(out_dir)  # one clear line, not "[Errno 17] File exists" from deep inside
    area_name = out_dir.resolve().name
    for what, path in (("SR checkpoint", sr_checkpoint), ("buildings network", seg_buildings),
                       ("roads network", seg_roads)):
        if path is not None and not Path(path).is_file():
            raise InputError(f"the {what} {path} does not exist")
    start_card = area_sr_card(sr_checkpoint)
    check_seg_networks(start_card, [seg_buildings, seg_roads])  # before anything is cut or trained
    bands = network_bands(start_card)
    band_name = opts.band_name
    if band_name is None and start_card.bands and not bands:
        band_name = start_card.bands[0]
    band = None if bands else opts.band
    messages: List[str] = []
    tile = _tile_10m(opts.tile_lr, messages)
    for m in messages:
        log_stage(emit, m, "prepare")

    # 1. the 10 m area tiles (reused when made from the same inputs)
    area_root, wald_root, run_dir = out_dir / AREA_DIR, out_dir / WALD_DIR, out_dir / TRAIN_DIR
    vectors = {k: str(v) for k, v in (("buildings", buildings_vector), ("roads", roads_vector)) if v is not None}
    wanted = {"revisits": [str(p) for p in revisits], "band": band, "tile_lr": tile,
              "val_fraction": opts.val_fraction, "gap_tiles": int(opts.gap_tiles),
              "band_name": "+".join(bands) if bands else band_name, "bands": bands or [band_name], "vectors": vectors}
    saved = json.loads((area_root / AREA_JSON).read_text(encoding="utf-8")) if (area_root / AREA_JSON).is_file() \
        else None
    if saved is not None and _same(saved, wanted):
        log_stage(emit, f"using the area already prepared in {area_root}", "prepare")
        remade = False
    else:
        log_stage(emit, "cutting the area into 10 m tiles" + (" and rasterizing the vectors" if vectors else ""),
               "prepare")
        done = prepare_area(revisits, band, buildings_vector, roads_vector, area_root, tile_lr=tile,
                            val_fraction=opts.val_fraction, gap_tiles=opts.gap_tiles, band_name=band_name,
                            overwrite=True, bands=bands,
                            progress=lambda f, m: emit({"event": "log", "message": f"prepare: {m}",
                                                        "stage": "prepare", "fraction": f}))
        for m in done.messages:
            log_stage(emit, m, "prepare")
        remade = True
    area = read_area(area_root)
    check_cancel(cancel)

    # 2. the 30 m -> 10 m pairs
    noise = bool(opts.noise)
    wald_key = {"area_created": area.get("created"), "noise": noise, "seed": int(opts.seed)}
    record = read_wald(wald_root) if (wald_root / WALD_JSON).is_file() else None
    if record is not None and _same(record, wald_key):
        log_stage(emit, f"using the 30 m -> 10 m pairs already made in {wald_root}", "prepare")
    else:
        log_stage(emit, "degrading every revisit to 30 m (Wald's protocol)", "prepare")
        made = prepare_wald(area_root, wald_root, noise=noise, seed=int(opts.seed), cancel=cancel,
                            progress=lambda f, m: emit({"event": "log", "message": f"wald: {m}", "stage": "prepare",
                                                        "fraction": f}))
        for m in made.messages:
            log_stage(emit, m, "prepare")
        record = read_wald(wald_root)
        remade = True
    sigma = record["psf_sigma_10m_px"]  # one value, or one per band
    config = _config(wald_root, run_dir, sr_checkpoint, opts, int(record["tile_30m"]), sigma, area_name)
    device = str(resolve_device(config.device))
    seg_paths = {t: p for t, p in (("buildings", seg_buildings), ("roads", seg_roads))
                 if p is not None and t in area.get("vectors", {})}
    if len(seg_paths) < len([p for p in (seg_buildings, seg_roads) if p is not None]):
        log_stage(emit, "a segmentation network without its vector layer is not used: no mask to tell object-free "
                     "land", "before")

    # 3. before
    key = {"checkpoint": file_sha256(sr_checkpoint), "seg": {t: file_sha256(p) for t, p in seg_paths.items()},
           "area_created": area.get("created"), "wald_created": record.get("created")}
    log_stage(emit, f"measuring the starting network on {len(area['held_out'])} held-out tile(s)", "before")
    before = cached_result(out_dir / "before.json", key)
    if before is None:
        before = _measure(sr_checkpoint, wald_root, area_root, seg_paths, device, True, emit, "before", cancel)
        from ..io.atomic import write_json_atomic

        write_json_atomic(out_dir / "before.json", {"key": key, "result": {k: {kk: vv for kk, vv in v.items()
                                                                               if not kk.startswith("_")}
                                                                           for k, v in before.items()}})

    # 4. training
    log_stage(emit, f"Wald adaptation for {config.epochs} epoch(s) on {len(area['train'])} training tile(s)", "train")

    def forward(event: Dict[str, Any]) -> None:
        if event.get("event") == "done":  # done only once measured and registered
            emit({"event": "log", "message": f"training finished ({event.get('run_dir')})", "stage": "train"})
        else:
            emit(event)

    if remade and resume and (run_dir / "last.pt").is_file():
        log_stage(emit, "the tiles were made anew, so the earlier training in train/ is not resumed", "train")
    # a run started on other tiles must not be continued on these
    train(config, progress=forward, resume=resume and not remade, cancel=cancel)
    last = run_dir / "last.safetensors"

    # 5. after, and the registered checkpoint
    log_stage(emit, "measuring the adapted network on the held-out tiles", "after")
    after = _measure(last, wald_root, area_root, seg_paths, device, True, emit, "after", cancel)
    if "_preview" not in before.get("upscaled", {}):  # cached numbers keep no images: the figure's tile again
        before["upscaled"] = {**before["upscaled"], "_preview": _preview(sr_checkpoint, area_root, device)}
    model, card = load_checkpoint(last)
    start_name = start_card.name or start_card.arch
    card.name = f"{start_name} (Wald adaptation: {area_name})"
    card.description = (f"Wald self-supervised adaptation on {area_name}: {start_name} trained to give back the "
                        "area's clearest 10 m revisit from all revisits degraded to 30 m with the S-2 PSF (cL1 + "
                        "consistency cL1), then applied at 10 m -> 3.33 m; no HR image used")
    card.recipe = dict(card.recipe or {})
    card.recipe["kind"] = "wald self-supervised adaptation"
    card.recipe["wald_adaptation"] = {
        "protocol": "Wald: 10 m revisits degraded to 30 m (S-2 PSF, sub-pixel shifts kept, noise added), "
                    "target = the clearest 10 m revisit",
        "area": area_name, "started_from": str(sr_checkpoint), "started_from_sha256": key["checkpoint"],
        "psf_sigma_10m_px": sigma, "noise": bool(noise), "train_tiles": len(area["train"]),
        "held_out_tiles": len(area["held_out"]), "held_out_side": area.get("side"), "tile_10m": tile,
        "weights": "last epoch (no selection on held-out)",
    }
    card.metrics = {
        "wald_held_out": {"before": _public(before["wald"]), "after": _public(after["wald"])},
        "upscaled_held_out": {"before": _public(before["upscaled"]), "after": _public(after["upscaled"])},
        "val": (card.metrics or {}).get("val"),
    }
    registered = out_dir / CHECKPOINT_NAME
    save_checkpoint(registered, model, card)
    seconds = time.perf_counter() - t0
    paths = write_wald_report(out_dir / REPORT_STEM, area=area, wald=record, before=before, after=after,
                              checkpoint=registered, start=sr_checkpoint, config=config, seconds=seconds,
                              command=command)
    result = WaldResult(registered, paths["json"], paths["md"], paths.get("png"), before, after, run_dir, seconds)
    emit({"event": "done", "checkpoint": str(registered), "run_dir": str(out_dir), "report": str(paths["md"]),
          "before": {k: _public(v) for k, v in before.items()}, "after": {k: _public(v) for k, v in after.items()}})
    return result


def result_dict(result: WaldResult) -> Dict[str, Any]:
    """JSON-friendly summary of a :class:`WaldResult` (paths as text, images and per-tile rows dropped)."""
    d: Dict[str, Any] = {k: str(getattr(result, k)) if getattr(result, k) is not None else None
                         for k in ("checkpoint", "report_json", "report_md", "plot", "run_dir")}
    d["seconds"] = result.seconds
    for when in ("before", "after"):
        d[when] = {part: _public(v) for part, v in getattr(result, when).items()}
    return d
