"""Task-driven fine-tuning on the analyst's own area, with no HR image: evaluate, fine-tune, register.

Why: a network trained on someone else's towns is rarely at its best on yours,
and no HR image of your area exists. What exists is Sentinel-2 revisits and
OpenStreetMap. :func:`core.data.area_tiles.prepare_area` turns those into scene
tiles without HR, with a spatially separate held-out block; this module

1. measures the starting SR checkpoint on the held-out tiles
   (:func:`evaluate_area`): Dice of the frozen building and road networks on
   the SR output against the rasterized vectors (confusion counts summed over
   all held-out tiles), and the consistency cPSNR, i.e. cPSNR between the SR
   output degraded back to 10 m (the simulation operator of
   :class:`core.data.degrade.Degradation`) and the clearest LR revisit, with a
   1-LR-pixel border (mean over tiles). It tells whether the output still
   agrees with what the satellite saw;
2. fine-tunes with the study's recipe for data without HR
   (``resources/configs/area/finetune.yaml``: consistency cL1 as the reference
   loss, building and road Dice at 0.25 of it by dynamic weighting, patch
   selection) through :func:`core.training.train`, resumable from its
   ``last.pt``;
3. measures the fine-tuned network the same way and registers it: a
   checkpoint whose card says "area fine-tune" and holds both measurements,
   plus a JSON and a Markdown report (:mod:`core.area_report`).

Honesty rules: the held-out tiles are *monitored* during training (their Dice
per epoch appears in the curves) but never used to pick the weights: the
registered network is the last epoch's. The held-out block is separated from
the training tiles by a gap (see :mod:`core.data.area_tiles`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import yaml

from .. import RESOURCES
from ..data.degrade import Degradation, sigma_for_bands
from ..data.patches import choose_frames
from ..evaluation.evaluate import load_split_scenes, scalar_metrics
from ..evaluation.metrics import SegCounts, cpsnr
from ..evaluation.scene_predict import predict_sr_scene
from ..inference.loading import load_model
from ..inference.planning import TilePlan
from ..jobs import check_cancel
from ..models.zoo import file_sha256, load_checkpoint, save_checkpoint
from ..options import AreaOptions
from ..training.config import load_config, validate_config
from ..training.distributed import resolve_device
from ..training.trainer import train
from .bands import area_sr_card, band_positions, check_seg_networks, network_bands, seg_channels, seg_probs
from .report import write_area_report
from .segmenters import finetune_segmenters
from .stages import Event, RunResult, cached_result, event_sink, log_stage
from .tiles import AREA_JSON, prepare_area, read_area

__all__ = [
    "AreaResult",
    "RECIPE",
    "evaluate_area",
    "finetune_area",
    "metrics_for",
    "run_area",
]

PathLike = Union[str, os.PathLike]
RECIPE = RESOURCES / "configs" / "area" / "finetune.yaml"
CHECKPOINT_NAME = "area_finetuned.safetensors"
REPORT_STEM = "area_report"
#: The metrics compared before/after, in report order: (key, label, higher is better).
METRICS = (("buildings_dice", "Dice buildings", True), ("roads_dice", "Dice roads", True),
           ("buildings_dice_anchored", "anchored Dice buildings", True),
           ("roads_dice_anchored", "anchored Dice roads", True),
           ("consistency_cpsnr", "consistency cPSNR (dB)", True))


def metrics_for(bands: Sequence[str]) -> Tuple[Tuple[str, str, bool], ...]:
    """:data:`METRICS` plus, for a multi-band area, the consistency cPSNR of each band (the report per band)."""
    if len(bands) <= 1:
        return METRICS
    return METRICS + tuple((f"consistency_cpsnr_{b}", f"consistency cPSNR {b} (dB)", True) for b in bands)


@dataclass
class AreaResult(RunResult):
    """What :func:`finetune_area` produced; ``segmenters``: per target, the segmenter stage's registered
    checkpoint and held-out scores (empty when that stage did not run)."""

    segmenters: Dict[str, Dict[str, Any]] = field(default_factory=dict)


# --------------------------------------------------------------------------- evaluation


def _seen(scene) -> np.ndarray:
    """HR-grid pixels seen by at least one revisit (where the rasterized vectors count as labels)."""
    seen = np.asarray(scene.lr_valid, dtype=bool).any(axis=0)
    return np.repeat(np.repeat(seen, scene.scale, axis=0), scene.scale, axis=1)


def evaluate_area(
    checkpoint: PathLike,
    area_root: PathLike,
    seg_buildings: PathLike,
    seg_roads: PathLike,
    tile: int,
    overlap: int,
    split: str = "test",
    device: str = "cpu",
    progress: Optional[Callable[[float, str], None]] = None,
) -> Dict[str, Any]:
    """Held-out scores of an SR checkpoint on a prepared area (see the module docstring).

    Keys: ``buildings_dice``/``_precision``/``_recall``, ``roads_*`` (None when
    undefined), ``<target>_dice_anchored`` (the same on the output shifted to its
    revisits' brightness, as the plugin's inference writes it: consistency cL1 is
    blind to a constant offset too), ``consistency_cpsnr`` (dB, mean over tiles
    and bands), for a multi-band network ``consistency_cpsnr_<band>`` per band,
    ``bands``, ``tiles``, ``per_tile`` rows. ``tile``/``overlap``: the LR tile
    plan (the training run's validation tiles), widened to a whole area tile.
    """
    dev = torch.device(device)
    loaded = load_model(checkpoint, dev)
    card = loaded.card
    if card.task != "sr":
        raise ValueError(f"{checkpoint}: a {card.task} checkpoint, not a super-resolution network")
    scenes = load_split_scenes(area_root, split)
    bands = band_positions(scenes[0].bands, card, checkpoint)
    names = [scenes[0].bands[b] for b in bands]
    scale = loaded.scale
    nets = {}
    for target, path in (("buildings", seg_buildings), ("roads", seg_roads)):
        net = load_model(path, dev, task="segmentation")
        if net.card.target != target:
            raise ValueError(f"{path}: segments {net.card.target!r}, not {target}")
        nets[target] = net
    # The same tiled passes as the plugin (core.evaluation.scene_predict): what is scored is what it writes.
    # An area tile fits in one network call, as it would under the plugin's default tiles (256 LR px for
    # RAMS): cutting it into val_tile pieces with overlap ran the network 4x per tile and blended seams
    # the plugin does not write.
    side = max(max(s.lr.shape[-2:]) for s in scenes)
    tile = max(int(tile), side)
    plan, seg_plan = TilePlan(tile, overlap, 1), TilePlan(tile * scale, overlap * scale, 1)
    fed = [(net, seg_channels(names, net.card, net.source)) for net in nets.values()]  # each its bands, by name
    degrade = Degradation(scale=scale, sigma_hr=sigma_for_bands(names, scale)).eval()  # each band its own PSF
    counts = {t: SegCounts() for t in nets}
    anchored = {t: SegCounts() for t in nets}
    rows: List[Dict[str, Any]] = []
    for i, scene in enumerate(scenes):
        if progress:
            progress(i / max(1, len(scenes)), f"evaluating {scene.name}")
        raw = predict_sr_scene(loaded, scene, plan, anchor=False, bands=bands)
        written = predict_sr_scene(loaded, scene, plan, anchor=True, bands=bands)
        valid = _seen(scene)
        shift = float(np.mean(written.offsets)) if written.offsets else 0.0
        row: Dict[str, Any] = {"tile": scene.name, "anchor_offset": shift}
        probs = seg_probs(fed, raw.image, valid, seg_plan)
        probs_anchored = seg_probs(fed, written.image, valid, seg_plan)
        for k, target in enumerate(nets):
            mask = np.asarray(scene.masks[target], dtype=bool)
            counts[target].update(probs[k], mask, valid)
            one = SegCounts()
            one.update(probs[k], mask, valid)
            row[f"{target}_dice"] = _finite(one.dice)
            anchored[target].update(probs_anchored[k], mask, valid)
        ref = choose_frames(scene.valid_fraction(), 1)[0]
        with torch.no_grad():
            low = degrade(torch.from_numpy(np.ascontiguousarray(raw.image))[None])[0].numpy()  # [C, h, w]
        if scene.lr_valid[ref].any():
            per_band = [float(cpsnr(low[c], scene.lr[ref, b], valid=scene.lr_valid[ref], border=1))
                        for c, b in enumerate(bands)]
            row["consistency_cpsnr"] = float(np.mean(per_band))
            if len(bands) > 1:
                row.update({f"consistency_cpsnr_{n}": v for n, v in zip(names, per_band)})
        rows.append(row)
    out: Dict[str, Any] = {"tiles": len(scenes), "split": split, "checkpoint": str(checkpoint), "bands": names}
    for target, c in counts.items():
        d = c.as_dict()
        for k in ("dice", "precision", "recall"):
            out[f"{target}_{k}"] = _finite(d[k])
        out[f"{target}_dice_anchored"] = _finite(anchored[target].dice)
    ps = [r["consistency_cpsnr"] for r in rows if r.get("consistency_cpsnr") is not None]
    out["consistency_cpsnr"] = float(np.mean(ps)) if ps else None
    if len(bands) > 1:
        for n in names:
            vals = [r[f"consistency_cpsnr_{n}"] for r in rows if r.get(f"consistency_cpsnr_{n}") is not None]
            out[f"consistency_cpsnr_{n}"] = float(np.mean(vals)) if vals else None
    out["per_tile"] = rows
    if progress:
        progress(1.0, "evaluated")
    return out


def _finite(v: Any) -> Optional[float]:
    v = float(v)
    return v if np.isfinite(v) else None


# --------------------------------------------------------------------------- fine-tuning


def _config(area_root: Path, run_dir: Path, sr_checkpoint: PathLike, seg_buildings: PathLike,
            seg_roads: PathLike, opts: AreaOptions, tile_lr: int):

    card = area_sr_card(sr_checkpoint)
    over: Dict[str, Any] = {
        "data.root": str(area_root), "out_dir": str(run_dir), "epochs": int(opts.epochs),
        "model.arch": card.arch, "model.init_from": str(sr_checkpoint), "data.frames": card.input_frames,
        "seg_nets.buildings": str(seg_buildings), "seg_nets.roads": str(seg_roads), "device": opts.device,
        "seed": int(opts.seed), "name": f"area fine-tune of {card.display_name}",
        "experiment.title": f"area fine-tune on {area_root.name}",
    }
    bands = network_bands(card)
    if bands:  # the network takes these bands jointly (channels from in_chans, revisits from frames)
        over["data.bands"] = bands
    if card.arch == "hat":
        over["model.hparams"] = {"in_chans": card.in_chans}
    if opts.lr is not None:
        over["lr"] = float(opts.lr)
    if opts.samples_per_epoch is not None:
        over["data.samples_per_epoch"] = int(opts.samples_per_epoch)
    if opts.batch_size is not None:
        over["data.batch_size"] = int(opts.batch_size)
    if opts.lr_patch is not None:
        over["data.lr_patch"] = int(opts.lr_patch)
    for text in opts.overrides or ():  # the user's KEY=VALUE settings win over the ones above
        if "=" not in text:
            raise ValueError(f"setting {text!r}: expected KEY=VALUE, e.g. lr=1e-4")
        key, value = text.split("=", 1)
        over[key.strip()] = yaml.safe_load(value)
    config = load_config(opts.recipe or str(RECIPE), over)
    # Patches and validation tiles must fit in one area tile.
    config.data.lr_patch = min(config.data.lr_patch, tile_lr)
    config.val_tile = min(config.val_tile, tile_lr)
    config.val_overlap = min(config.val_overlap, config.val_tile // 2 - 1)
    validate_config(config)
    return config


def finetune_area(
    area_root: PathLike,
    sr_checkpoint: PathLike,
    buildings_ckpt: PathLike,
    roads_ckpt: PathLike,
    out_dir: PathLike,
    options: Optional[AreaOptions] = None,
    progress: Optional[Event] = None,
    resume: bool = True,
    cancel: Any = None,
    command: Optional[str] = None,
) -> AreaResult:
    """Fine-tune ``sr_checkpoint`` on a prepared area; report before/after on its held-out tiles.

    ``options``: :class:`core.options.AreaOptions` (epochs, learning rate,
    patches, device, seed, recipe, overrides; the band and layout fields were
    used when the area was prepared). A one-band or a multi-band network: the
    tiles must hold the bands its card names (see :mod:`core.area.bands`).

    With ``options.finetune_segmenters`` the building and road networks are
    fine-tuned on the area first (:mod:`core.area.segmenters`: on the starting
    SR network's output of the revisits, or their bicubic upsampling, against
    the OSM masks), registered as ``out_dir/area_seg_<target>.safetensors``,
    and the SR stage trains and is measured against *those* networks.

    ``progress`` receives the trainer's events (``step``, ``epoch``, ``log``)
    plus ``log`` events for the stages, and one final ``done`` event with the
    registered ``checkpoint``, ``report``, the ``before``/``after`` scores and
    (segmenter stage) ``segmenters``. A killed run started again with the same
    arguments resumes training from ``out_dir/train/last.pt`` (and
    ``out_dir/seg_<target>/last.pt``).
    """
    t0 = time.perf_counter()
    opts = options or AreaOptions()
    emit = event_sink(progress)
    area_root, out_dir = Path(area_root), Path(out_dir)
    area = read_area(area_root)
    for what, path in (("SR checkpoint", sr_checkpoint), ("buildings network", buildings_ckpt),
                       ("roads network", roads_ckpt)):
        if not path or not Path(path).is_file():
            raise FileNotFoundError(f"the {what} {path} does not exist")
    run_dir = out_dir / "train"
    config = _config(area_root, run_dir, sr_checkpoint, buildings_ckpt, roads_ckpt, opts, int(area["tile_lr"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = _device(config.device)
    start_seg = {"buildings": str(buildings_ckpt), "roads": str(roads_ckpt)}
    segmenters: Dict[str, Dict[str, Any]] = {}
    if opts.finetune_segmenters:  # stage 1: the segmenters learn the area; the SR stage then trains against them
        log_stage(emit, "fine-tuning the building and road networks on the area first (OSM masks)", "segmenters")
        segmenters = finetune_segmenters(area_root, sr_checkpoint, start_seg, out_dir, opts, emit, dev,
                                         tile=config.val_tile, overlap=config.val_overlap, resume=resume,
                                         cancel=cancel)
        buildings_ckpt, roads_ckpt = segmenters["buildings"]["checkpoint"], segmenters["roads"]["checkpoint"]
        config = _config(area_root, run_dir, sr_checkpoint, buildings_ckpt, roads_ckpt, opts, int(area["tile_lr"]))
        check_cancel(cancel)

    def eval_progress(stage: str):
        return lambda f, m: emit({"event": "log", "message": f"{stage}: {m}", "stage": stage, "fraction": f})

    log_stage(emit, f"measuring the starting network on {len(area['held_out'])} held-out tile(s)", "before")
    key = {"checkpoint": file_sha256(sr_checkpoint), "buildings": file_sha256(buildings_ckpt),
           "roads": file_sha256(roads_ckpt), "area": str(area_root.resolve()), "train": area["train"],
           "held_out": area["held_out"]}
    before = cached_result(out_dir / "before.json", key)
    if before is None:
        before = evaluate_area(sr_checkpoint, area_root, buildings_ckpt, roads_ckpt, config.val_tile,
                               config.val_overlap, device=dev, progress=eval_progress("before"))
        from ..data.scene import write_json_atomic

        write_json_atomic(out_dir / "before.json", {"key": key, "result": before})

    log_stage(emit, f"fine-tuning for {config.epochs} epoch(s) on {len(area['train'])} training tile(s)", "train")

    def forward(event: Dict[str, Any]) -> None:
        if event.get("event") == "done":  # the area run is done only once it is measured and registered
            emit({"event": "log", "message": f"training finished ({event.get('run_dir')})", "stage": "train"})
        else:
            emit(event)

    retrained = any(not s.get("reused") for s in segmenters.values())
    if retrained and resume and (run_dir / "last.pt").is_file():  # its Dice terms came from other segmenters
        log_stage(emit, "the segmenters were fine-tuned anew, so the earlier SR training in train/ is not resumed",
                  "train")
    train(config, progress=forward, resume=resume and not retrained, cancel=cancel)
    last = run_dir / "last.safetensors"

    log_stage(emit, "measuring the fine-tuned network on the held-out tiles", "after")
    after = evaluate_area(last, area_root, buildings_ckpt, roads_ckpt, config.val_tile, config.val_overlap,
                          device=dev, progress=eval_progress("after"))

    model, card = load_checkpoint(last)
    start_card = area_sr_card(sr_checkpoint)
    metrics = metrics_for(before.get("bands") or [])
    summary = {k: {"before": before.get(k), "after": after.get(k)} for k, _label, _hb in metrics}
    card.name = f"{start_card.display_name} (area fine-tune: {area_root.name})"
    card.description = (f"{start_card.display_name} fine-tuned on the analyst's area {area_root.name} "
                        "without HR: consistency cL1 + building/road Dice (dynamic weighting, patch selection)")
    card.recipe = dict(card.recipe or {})
    card.recipe["kind"] = "area fine-tune"
    card.recipe["area_finetune"] = {
        "area": str(area_root), "started_from": str(sr_checkpoint), "started_from_sha256": key["checkpoint"],
        "train_tiles": len(area["train"]), "held_out_tiles": len(area["held_out"]),
        "held_out_side": area["side"], "tile_lr": area["tile_lr"], "bands": area.get("bands") or [area.get("band_name")],
        "weights": "last epoch (no selection on held-out)",
        "seg_nets": {"buildings": str(buildings_ckpt), "roads": str(roads_ckpt)},
        "segmenters_finetuned_on_area": bool(segmenters),
    }
    card.metrics = {"area_held_out": {"before": scalar_metrics(before), "after": scalar_metrics(after)},
                    "val": (card.metrics or {}).get("val")}
    registered = out_dir / CHECKPOINT_NAME
    save_checkpoint(registered, model, card)


    seconds = time.perf_counter() - t0
    paths = write_area_report(out_dir / REPORT_STEM, area=area, before=before, after=after,
                              checkpoint=registered, start=sr_checkpoint, config=config, seconds=seconds,
                              command=command, metrics=metrics, segmenters=segmenters,
                              seg_nets={"buildings": str(buildings_ckpt), "roads": str(roads_ckpt)})
    emit({"event": "done", "checkpoint": str(registered), "run_dir": str(out_dir), "report": str(paths["md"]),
          "before": scalar_metrics(before), "after": scalar_metrics(after), "summary": summary,
          "seg_nets": {"buildings": str(buildings_ckpt), "roads": str(roads_ckpt)},
          "segmenters": {t: {"checkpoint": s["checkpoint"], "before": s["before"].get("dice"),
                             "after": s["after"].get("dice")} for t, s in segmenters.items()}})
    return AreaResult(registered, paths["json"], paths["md"], paths.get("png"), before, after, run_dir, seconds,
                      segmenters)


def _device(device: str) -> str:
    return str(resolve_device(device))


def run_area(
    revisits: Sequence[PathLike],
    buildings_vector: PathLike,
    roads_vector: PathLike,
    sr_checkpoint: PathLike,
    buildings_ckpt: PathLike,
    roads_ckpt: PathLike,
    out_dir: PathLike,
    options: Optional[AreaOptions] = None,
    progress: Optional[Event] = None,
    resume: bool = True,
    cancel: Any = None,
    command: Optional[str] = None,
) -> AreaResult:
    """Prepare the area into ``out_dir/area`` (once) and fine-tune into ``out_dir``.

    The tiles hold the bands the SR checkpoint takes: a multi-band network's
    (the shipped ones: B02, B03, B04, B08) read by name from the revisits in
    its card's order, else ``options.band`` named after the checkpoint's band
    (``options.band_name``), so a raster without band descriptions still
    matches a one-band network. The vectors are rasterized once, whatever the
    number of bands. An area already prepared in ``out_dir/area`` is reused
    when it came from the same inputs (so a resumed run does not cut the
    tiles again).
    """
    opts = options or AreaOptions()
    emit = event_sink(progress)
    out_dir = Path(out_dir)
    area_root = out_dir / "area"
    card = area_sr_card(sr_checkpoint)  # before anything is cut or trained
    check_seg_networks(card, [buildings_ckpt, roads_ckpt])
    bands = network_bands(card)
    band_name = opts.band_name
    if band_name is None and not bands:
        band_name = card.bands[0] if card.bands else None
    wanted = {"revisits": [str(p) for p in revisits], "band": None if bands else opts.band,
              "tile_lr": opts.tile_lr, "val_fraction": opts.val_fraction, "gap_tiles": opts.gap_tiles,
              "band_name": band_name if not bands else "+".join(bands), "bands": bands or [band_name],
              "vectors": {"buildings": str(buildings_vector), "roads": str(roads_vector)}}
    reuse = False
    if (area_root / AREA_JSON).is_file():
        saved = json.loads((area_root / AREA_JSON).read_text(encoding="utf-8"))
        reuse = {k: saved.get(k) for k in wanted} == wanted
    if reuse:
        log_stage(emit, f"using the area already prepared in {area_root}", "prepare")
    else:
        what = f"bands {', '.join(bands)} by name" if bands else f"band {opts.band}"
        log_stage(emit, f"cutting the area into tiles ({what}) and rasterizing the vectors", "prepare")
        done = prepare_area(revisits, None if bands else opts.band, buildings_vector, roads_vector, area_root,
                            tile_lr=opts.tile_lr, val_fraction=opts.val_fraction, gap_tiles=opts.gap_tiles,
                            band_name=band_name, overwrite=True, bands=bands,
                            progress=lambda f, m: emit({"event": "log", "message": f"prepare: {m}",
                                                        "stage": "prepare", "fraction": f}))
        for m in done.messages:
            emit({"event": "log", "message": m, "stage": "prepare"})
    return finetune_area(area_root, sr_checkpoint, buildings_ckpt, roads_ckpt, out_dir, options=opts,
                         progress=progress, resume=resume, cancel=cancel, command=command)


def result_dict(result: AreaResult) -> Dict[str, Any]:
    """JSON-friendly summary of an :class:`AreaResult` (paths as text, per-tile rows dropped)."""
    d = asdict(result)
    for k in ("before", "after"):
        d[k] = {kk: v for kk, v in d[k].items() if kk != "per_tile"}
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}
