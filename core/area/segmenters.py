"""The segmenter stage of an area fine-tune: fit the building and road networks to the analyst's own area first.

Why: the task-driven fine-tune (:mod:`core.area.finetune`) trains the SR
network through *frozen* segmentation networks. The shipped ones learned on
synthetic towns; on a real city they may see almost no building, and an SR
network driven by a blind segmenter learns nothing useful from its Dice. Most
analysts have OpenStreetMap of their own city, so this stage fine-tunes the
segmenters on the area first, and the SR stage then trains against them.

What the segmenters learn on (the honest input): they take HR-grid images, and
the area has no HR image, only 10 m revisits. In the plugin the segmenters run
on SR outputs, so by default (``seg_input="sr"``) each area tile's HR-grid
input is **the starting SR network's output of the tile's revisits**, made by
the plugin's own tiled pass (:func:`core.evaluation.scene_predict.predict_sr_scene`,
quantised as the GeoTIFF would hold it), **twice per tile**: not anchored (what
the SR stage's task loss and its headline held-out Dice feed them) and anchored
to the revisits' brightness (what the plugin writes by default and the
analyst later segments; the shift is 0.01-0.02 reflectance on the stand-in
areas, enough to halve the Dice of a segmenter that saw only the other).
The held-out "before"/"after" Dice is on the not-anchored output, so it is
the same count as the SR stage's "before"; ``dice_anchored`` is reported
beside it. ``seg_input="bicubic"`` uses the bicubic upsampling of the mean
revisit instead (the baseline the evaluation uses). The labels are the OSM
masks rasterized on the HR grid when the area was prepared.

These inputs are written as an ordinary scene dataset (``OUT/seg_inputs``: the
area tiles with ``hr.tif`` = that image, the same masks and the same split; the
anchored copies are named ``<tile>_anchored`` and train with the rest), so
the project's own segmentation trainer (:func:`core.training.trainer.train`,
recipe ``resources/configs/area/segmenters.yaml``) fine-tunes each network
from its checkpoint, resumable from ``OUT/seg_<target>/last.pt``, and
:func:`core.evaluation.evaluate.evaluate_segmentation` scores it.

Honesty rules, as for the SR stage: the held-out tiles (the area's spatially
separate strip, :mod:`core.area.tiles`) are monitored per epoch but never pick
the weights (the registered network is the last epoch's); Dice is counted over
all held-out tiles together, before and after. The registered checkpoints'
cards say they were fine-tuned on this area, from which revisits, on which
input.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Tuple

import numpy as np
import torch

from .. import RESOURCES
from ..data.scene import SPLIT_JSON, Scene, list_scenes, read_scene, write_json_atomic, write_scene
from ..evaluation.evaluate import band_indices, evaluate_segmentation, load_split_scenes, scalar_metrics
from ..evaluation.scene_predict import bicubic_baseline, predict_sr_scene, valid_hr
from ..inference.loading import load_model
from ..inference.planning import TilePlan
from ..io.atomic import remove_orphans, replace_folder, temp_path_for
from ..jobs import InputError, PathLike, check_cancel
from ..models.zoo import file_sha256, load_checkpoint, read_card, save_checkpoint
from ..options import AreaOptions
from ..training.config import load_config, validate_config
from ..training.trainer import train
from .bands import band_positions
from .stages import Event, cached_result, log_stage
from .tiles import read_area

__all__ = ["SEG_RECIPE", "INPUTS_DIR", "TARGETS", "CHECKPOINT_NAMES", "SEG_INPUTS", "prepare_seg_inputs",
           "evaluate_segmenter", "finetune_segmenters"]

SEG_RECIPE = RESOURCES / "configs" / "area" / "segmenters.yaml"
INPUTS_DIR = "seg_inputs"
INPUTS_JSON = "seg_inputs.json"
INPUTS_FORMAT = 2  # 2: anchored copies of the SR output
ANCHORED = "_anchored"  # suffix of a tile's anchored copy
TARGETS = ("buildings", "roads")
#: The registered checkpoints, in the area run's output folder.
CHECKPOINT_NAMES = {"buildings": "area_seg_buildings.safetensors", "roads": "area_seg_roads.safetensors"}
#: ``AreaOptions.seg_input`` -> the words the cards and the report use.
SEG_INPUTS = {
    "sr": "the starting SR network's output of the area's revisits (the plugin's tiled pass; each tile both as "
          "the SR stage's loss sees it and anchored to the revisits' brightness, as the plugin writes it), the "
          "input the segmenters get at run time in the plugin",
    "bicubic": "the bicubic upsampling of the mean of the area's revisits",
}


# --------------------------------------------------------------------------- the HR-grid inputs


def prepare_seg_inputs(area_root: Path, sr_checkpoint: PathLike, out: Path, source: str, tile: int, overlap: int,
                       device: str, emit: Event, cancel: Any = None) -> Tuple[Dict[str, Any], bool]:
    """Write ``out`` as a scene dataset: every area tile with ``hr`` = its HR-grid input (see the module docstring).

    Reused when made from the same area, SR checkpoint and ``source``; returns
    (the record, whether it was made now). ``tile``/``overlap``: the LR tile
    plan of the SR pass, widened to a whole area tile (as the held-out
    evaluation of :func:`core.area.finetune.evaluate_area` does).
    """
    area = read_area(area_root)
    key = {"area_created": area.get("created"), "area": str(Path(area_root).resolve()), "source": source,
           "sr_checkpoint": file_sha256(sr_checkpoint) if source == "sr" else None, "format": INPUTS_FORMAT}
    saved = cached_result(out / INPUTS_JSON, key)
    if saved is not None and (out / SPLIT_JSON).is_file():
        log_stage(emit, f"segmenters: using the inputs already made in {out}", "segmenters")
        return saved, False
    if source not in SEG_INPUTS:
        raise InputError(f"segmenter input {source!r}: choose one of {', '.join(SEG_INPUTS)}")
    paths = list_scenes(area_root)
    log_stage(emit, f"segmenters: making their HR-grid inputs ({source}) for {len(paths)} tile(s)", "segmenters")
    loaded = load_model(sr_checkpoint, torch.device(device), task="sr") if source == "sr" else None
    card = loaded.card if loaded is not None else read_card(sr_checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(out)
    tmp = temp_path_for(out)
    tmp.mkdir()
    try:
        names: List[str] = []
        for i, path in enumerate(paths):
            check_cancel(cancel)
            scene = read_scene(path)
            bands = band_positions(scene.bands, card, sr_checkpoint)
            valid = valid_hr(scene)
            images = {}  # tile name -> its HR-grid input
            if loaded is not None:
                side = max(scene.lr.shape[-2:])
                plan = TilePlan(max(int(tile), side), int(overlap), 1)
                images[scene.name] = predict_sr_scene(loaded, scene, plan, anchor=False, bands=bands).image
                images[scene.name + ANCHORED] = predict_sr_scene(loaded, scene, plan, anchor=True, bands=bands).image
            else:
                images[scene.name] = bicubic_baseline(scene, bands, range(scene.frames))
            for name, image in images.items():
                image = np.where(valid[None], np.clip(image, 0.0, None), 0.0).astype(np.float32)
                extra = {k: v for k, v in scene.extra.items() if not k.startswith("_")}
                extra["seg_input"] = {"source": source, "anchored": name.endswith(ANCHORED),
                                      "sr_checkpoint": str(sr_checkpoint) if source == "sr" else None}
                write_scene(Scene(
                    name=name, lr=np.ascontiguousarray(scene.lr[:, bands]), lr_valid=scene.lr_valid, hr=image,
                    hr_valid=valid, masks=dict(scene.masks), crs=scene.crs, lr_transform=scene.lr_transform,
                    hr_transform=scene.hr_transform, bands=[scene.bands[b] for b in bands], scale=scene.scale,
                    dates=list(scene.dates), radiometric_scale=scene.radiometric_scale, split=scene.split,
                    extra=extra), tmp / name, overwrite=False, root=tmp)
                names.append(name)
            emit({"event": "log", "message": f"segmenters: input of {scene.name} made", "stage": "segmenters",
                  "fraction": (i + 1) / max(1, len(paths))})
        split = json.loads((Path(area_root) / SPLIT_JSON).read_text(encoding="utf-8"))
        # the anchored copies train with their tiles; held out, they are scored apart (dice_anchored)
        split["train"] = list(split["train"]) + [n + ANCHORED for n in split["train"] if n + ANCHORED in names]
        write_json_atomic(tmp / SPLIT_JSON, split)
        record = {"source": source, "description": SEG_INPUTS[source], "tiles": names,
                  "revisits": [Path(str(p)).name for p in area.get("revisits") or []],
                  "created": datetime.now(timezone.utc).isoformat()}  # to the microsecond: it keys the stage
        write_json_atomic(tmp / INPUTS_JSON, {"key": key, "result": record})
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record, True


# --------------------------------------------------------------------------- measuring


def evaluate_segmenter(checkpoint: PathLike, inputs_root: Path, device: str, target: str, tile: int = 0,
                       overlap: int = 8) -> Dict[str, Any]:
    """Held-out Dice/precision/recall/accuracy of a segmentation checkpoint on the area's HR-grid inputs.

    Confusion counts are summed over all held-out tiles (DESIGN.md section 4),
    each tile predicted whole through the plugin's tiled pass with the tile
    plan of the SR stage's held-out evaluation (``tile``/``overlap`` in LR
    pixels, widened to a whole area tile, times the scale), so with
    ``seg_input="sr"`` a segmenter's "after" is the same count as the SR
    stage's "before".
    """
    loaded = load_model(checkpoint, torch.device(device), task="segmentation")
    if loaded.card.target != target:
        raise InputError(f"{checkpoint}: segments {loaded.card.target!r}, not {target}")
    scenes = load_split_scenes(inputs_root, "test")
    scale = scenes[0].scale
    side = max(max(s.lr.shape[-2:]) for s in scenes)
    plan = TilePlan(max(int(tile), side) * scale, int(overlap) * scale, 1)
    idx = band_indices(scenes[0].bands, loaded.card.bands, checkpoint)
    out = evaluate_segmentation(loaded, scenes, idx, plan)
    out.update({"tiles": len(scenes), "checkpoint": str(checkpoint)})
    anchored = [inputs_root / (s.name + ANCHORED) for s in scenes if (inputs_root / (s.name + ANCHORED)).is_dir()]
    if anchored:  # the same held-out tiles, anchored as the plugin writes them
        out["dice_anchored"] = evaluate_segmentation(loaded, [read_scene(p) for p in anchored], idx, plan)["dice"]
    return out


# --------------------------------------------------------------------------- training


def _seg_config(inputs_root: Path, run_dir: Path, start: PathLike, target: str, opts: AreaOptions, tile_lr: int,
                area_name: str, scene_bands: List[str]):
    """The segmenter recipe for one target, filled in from the options (patches and batch as the SR stage's)."""
    card = read_card(start)
    over: Dict[str, Any] = {
        "data.root": str(inputs_root), "out_dir": str(run_dir), "epochs": int(opts.seg_epochs), "target": target,
        "model.arch": card.arch, "model.init_from": str(start), "device": opts.device, "seed": int(opts.seed),
        "data.selection.classes": [target], "name": f"area fine-tune of {card.name or card.arch}",
        "experiment.title": f"{target} segmenter fine-tuned on {area_name}",
    }
    channels = int((card.hparams or {}).get("in_channels", len(card.bands or []) or 1))
    if channels > 1:
        over["data.bands"] = list(card.bands)
    else:
        idx = band_indices(scene_bands, card.bands, start)
        over["data.band"] = idx[0]
    if opts.seg_lr is not None:
        over["lr"] = float(opts.seg_lr)
    if opts.samples_per_epoch is not None:
        over["data.samples_per_epoch"] = int(opts.samples_per_epoch)
    if opts.batch_size is not None:
        over["data.batch_size"] = int(opts.batch_size)
    if opts.lr_patch is not None:  # the same ground footprint as the SR stage's patches
        over["data.seg_patch"] = 3 * int(opts.lr_patch)
    config = load_config(str(SEG_RECIPE), over)
    config.data.seg_patch = min(config.data.seg_patch, 3 * tile_lr)  # a patch fits in one area tile
    # The trainer's validation tiles are in the network's own (HR) pixels: one whole area tile, as the held-out
    # measurement (evaluate_segmenter) predicts it, so the monitored Dice of the last epoch is the "after" number.
    config.val_tile = 3 * tile_lr
    config.val_overlap = min(3 * config.val_overlap, config.val_tile // 2 - 1)
    validate_config(config)
    return config


def _forward(emit: Event, target: str) -> Callable[[Dict[str, Any]], None]:
    """The trainer's events of one segmenter, so they do not read as the SR run's.

    Steps keep moving the progress bar (without their loss, which is not the SR
    run's curve); an epoch becomes one log line; the trainer's own ``done`` too.
    """
    stage = f"segmenter_{target}"

    def forward(event: Dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "step":
            emit({**{k: v for k, v in event.items() if k not in ("loss", "losses")}, "stage": stage})
        elif kind == "epoch":
            loss = (event.get("train") or {}).get("total")
            dice = (event.get("val") or {}).get("dice")
            text = f"segmenter {target}: epoch {event.get('epoch')}/{event.get('epochs')}"
            if isinstance(loss, (int, float)):
                text += f", Dice loss {loss:.4f}"
            if isinstance(dice, (int, float)):
                text += f", held-out Dice {dice:.3f} (monitored only)"
            emit({"event": "log", "message": text, "stage": stage})
        elif kind == "done":
            emit({"event": "log", "message": f"segmenter {target}: training finished ({event.get('run_dir')})",
                  "stage": stage})
        else:
            emit({**event, "stage": stage})

    return forward


def finetune_segmenters(area_root: Path, sr_checkpoint: PathLike, seg_paths: Mapping[str, PathLike], out_dir: Path,
                        opts: AreaOptions, emit: Event, device: str, tile: int, overlap: int, resume: bool = True,
                        cancel: Any = None) -> Dict[str, Dict[str, Any]]:
    """Fine-tune the building and road networks on a prepared area; measure and register them.

    Returns, per target: ``checkpoint`` (the registered file in ``out_dir``),
    ``start``, ``before``/``after`` (held-out scores), ``run_dir``, ``input``,
    ``reused`` (True when registered by an earlier call with the same settings).
    A rerun with the same inputs and settings reuses the registered networks;
    a killed one resumes each training from its ``last.pt``.
    """
    area = read_area(area_root)
    area_name = out_dir.resolve().name
    inputs_root = out_dir / INPUTS_DIR
    record, remade = prepare_seg_inputs(area_root, sr_checkpoint, inputs_root, opts.seg_input, tile, overlap,
                                        device, emit, cancel)
    scene_bands = read_scene(list_scenes(inputs_root)[0]).bands
    results: Dict[str, Dict[str, Any]] = {}
    for target in TARGETS:
        check_cancel(cancel)
        start = Path(seg_paths[target])
        run_dir = out_dir / f"seg_{target}"
        config = _seg_config(inputs_root, run_dir, start, target, opts, int(area["tile_lr"]), area_name, scene_bands)
        registered = out_dir / CHECKPOINT_NAMES[target]
        key = {"start": file_sha256(start), "inputs": record.get("created"), "source": record.get("source"),
               "epochs": config.epochs, "lr": config.lr, "seed": config.seed,
               "samples": config.data.samples_per_epoch, "batch": config.data.batch_size,
               "patch": config.data.seg_patch}
        done = cached_result(out_dir / f"segmenters_{target}.json", key)
        if done is not None and registered.is_file() and file_sha256(registered) == done.get("sha256"):
            log_stage(emit, f"segmenter {target}: already fine-tuned on this area ({registered.name})", "segmenters")
            results[target] = {**done, "reused": True}
            continue
        log_stage(emit, f"segmenter {target}: measuring {start.name} on {len(area['held_out'])} held-out tile(s)",
                  "segmenters")
        before = evaluate_segmenter(start, inputs_root, device, target, tile, overlap)
        check_cancel(cancel)
        log_stage(emit, f"segmenter {target}: fine-tuning for {config.epochs} epoch(s) on {len(area['train'])} "
                        "training tile(s)", "segmenters")
        train(config, progress=_forward(emit, target), resume=resume and not remade, cancel=cancel)
        last = run_dir / "last.safetensors"
        log_stage(emit, f"segmenter {target}: measuring the fine-tuned network on the held-out tiles", "segmenters")
        after = evaluate_segmenter(last, inputs_root, device, target, tile, overlap)
        _register(last, registered, start, key["start"], target, area, area_name, record, before, after)
        results[target] = {"target": target, "checkpoint": str(registered), "start": str(start),
                           "run_dir": str(run_dir), "input": record.get("source"),
                           "input_description": SEG_INPUTS[str(record.get("source"))],
                           "before": scalar_metrics(before), "after": scalar_metrics(after),
                           "sha256": file_sha256(registered)}
        write_json_atomic(out_dir / f"segmenters_{target}.json", {"key": key, "result": results[target]})
        results[target]["reused"] = False
        emit({"event": "log", "stage": "segmenters", "target": target,
              "message": f"segmenter {target}: held-out Dice before {_fmt(before.get('dice'))}, after "
                         f"{_fmt(after.get('dice'))} ({registered.name})"})
    return results


def _fmt(v: Any) -> str:
    return "n/a" if not isinstance(v, (int, float)) else f"{v:.3f}"


def _register(last: Path, registered: Path, start: Path, start_sha: str, target: str, area: Mapping[str, Any],
              area_name: str, record: Mapping[str, Any], before: Mapping[str, Any],
              after: Mapping[str, Any]) -> None:
    """Save the last epoch's weights with a card that says where, from what and on what they were fine-tuned."""
    model, card = load_checkpoint(last)
    start_card = read_card(start)
    start_name = start_card.name or start.stem
    card.name = f"{start_name} (area fine-tune: {area_name})"
    card.description = (f"{start_name} ({target}) fine-tuned on the analyst's area {area_name} against the OSM "
                        f"{target} rasterized on the HR grid; input: {SEG_INPUTS[str(record.get('source'))]}. "
                        "No HR image was used.")
    card.recipe = dict(card.recipe or {})
    card.recipe["kind"] = "area fine-tune (segmenter)"
    card.recipe["area_finetune"] = {
        "area": str(area.get("root")), "target": target, "started_from": str(start),
        "started_from_sha256": start_sha, "input": record.get("source"),
        "input_description": SEG_INPUTS[str(record.get("source"))],
        "revisits": list(record.get("revisits") or []), "vectors": dict(area.get("vectors") or {}),
        "train_tiles": len(area.get("train") or []), "held_out_tiles": len(area.get("held_out") or []),
        "held_out_side": area.get("side"), "tile_lr": area.get("tile_lr"),
        "weights": "last epoch (no selection on held-out)",
    }
    card.metrics = {"area_held_out": {"before": scalar_metrics(before), "after": scalar_metrics(after)},
                    "val": (card.metrics or {}).get("val")}
    save_checkpoint(registered, model, card)
