"""The starter checkpoints shipped in ``resources/models``: how ``make weights`` (re)builds them.

Why a module and not a shell script: the recipe is part of the product. It
makes the synthetic data with fixed seeds, trains the six networks with the
project's own trainer (segmentation first, because the task-driven SR recipes
and the Dice metrics use those networks), evaluates every network on synthetic
scenes it never saw, writes those test metrics into each checkpoint's model
card and lists them in ``resources/models/README.md``. Training resumes from
each run's last checkpoint, so an interrupted ``make weights`` continues.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from .. import RESOURCES
from ..data.scene import list_scenes
from ..options import EvaluateOptions

log = logging.getLogger(__name__)

ROOT = RESOURCES.parent
CONFIG_DIR = RESOURCES / "configs" / "starter"
MODELS_DIR = RESOURCES / "models"

#: Seeds and sizes of the synthetic data; part of the recipe (the model cards repeat them). World v2:
#: mostly rural land with villages and towns in B02, B03, B04 and B08 (``core.data.synthetic.world_v2``).
TRAIN_DATA = dict(scenes=40, size=288, frames=9, seed=100)
TEST_DATA = dict(scenes=8, size=288, frames=9, seed=900)
GENERATOR = "core.data.synthetic.world_v2"

#: What ``make weights`` trains (its cards' descriptions): world v2 only.
NOTE = ("Demo weights trained on the project's procedural synthetic world v2 (mostly rural land with villages "
        "and towns, Sentinel-2's four 10 m bands B02/B03/B04/B08 jointly, simulated revisits), not on MuS2 or "
        "real imagery: use them to try the plugin, not for production maps.")
#: Said in resources/models/README.md when a shipped network's card records real images labelled as a whole.
REAL_IMAGES_NOTE = ("Besides the synthetic worlds, {who} also learned from real Sentinel-2 images labelled only as a "
                    "whole (no pixel masks; `recipe.data.weak` and `metrics.train_data.real_images` of the card say "
                    "which, see core/data/weak_labels.py).")


@dataclass(frozen=True)
class StarterModel:
    """One shipped checkpoint: its recipe (a config in resources/configs/starter) and file name."""

    key: str
    config: str
    file: str
    title: str

    @property
    def is_segmentation(self) -> bool:
        return self.key.startswith("seg_")


STARTER_MODELS: Sequence[StarterModel] = (
    StarterModel("seg_buildings", "seg_buildings.yaml", "unetpp_buildings.safetensors", "UNet++ buildings"),
    StarterModel("seg_roads", "seg_roads.yaml", "unetpp_roads.safetensors", "UNet++ roads"),
    StarterModel("rams_baseline", "rams_baseline.yaml", "rams_baseline.safetensors", "RAMS baseline (cL1)"),
    StarterModel("rams_taskdriven", "rams_taskdriven.yaml", "rams_taskdriven.safetensors",
                 "RAMS task-driven (baseline fine-tuned: dynamic cL1 + 0.25 B-Dice + 0.25 R-Dice + 0.5 fixed phantom "
                 "terms, patch selection)"),
    StarterModel("hat_baseline", "hat_baseline.yaml", "hat_baseline.safetensors", "HAT baseline (cL1)"),
    StarterModel("hat_taskdriven", "hat_taskdriven.yaml", "hat_taskdriven.safetensors",
                 "HAT task-driven (baseline fine-tuned: dynamic cL1 + 0.25 B-Dice + 0.25 R-Dice + 0.5 fixed phantom "
                 "terms, patch selection)"),
)


def ensure_dataset(root: Path, scenes: int, size: int, frames: int, seed: int) -> Path:
    """Write the synthetic dataset once; an existing complete one is reused (same seed, same scenes)."""
    from ..data.synthetic.world_v2 import make_world_dataset

    root = Path(root)
    if (root / "split.json").is_file() and len(list_scenes(root)) == scenes:
        return root
    make_world_dataset(root, n_scenes=scenes, size_hr=size, frames=frames, seed=seed)
    return root


def _train(model: StarterModel, data_root: Path, runs: Path, say: Callable[[str], None]) -> Path:
    from .config import load_config
    from .trainer import train

    overrides = [f"data.root={data_root}", f"out_dir={runs / model.key}"]
    recipe = load_config(CONFIG_DIR / model.config, overrides, check_files=False)
    if recipe.task_targets:  # task-driven recipes run through the starter segmentation networks
        overrides += [f"seg_nets.buildings={runs / 'seg_buildings' / 'best.safetensors'}",
                      f"seg_nets.roads={runs / 'seg_roads' / 'best.safetensors'}"]
    config = load_config(CONFIG_DIR / model.config, overrides)
    best = Path(train(config, progress=None, resume=True))
    return best


def training_seconds(run_dir: Path) -> float:
    """Wall time of all epochs of a run (history.json), so a resumed run still reports its full cost."""
    history = json.loads((Path(run_dir) / "history.json").read_text(encoding="utf-8"))
    return float(sum(float(epoch.get("time_s") or 0.0) for epoch in history))


def test_metrics(checkpoint: Path, model: StarterModel, test_root: Path, runs: Optional[Path] = None,
                 seg_nets: Optional[Dict[str, Path]] = None) -> Dict[str, object]:
    """The card's test metrics of a checkpoint on the world-v2 test scenes (SR: scored by ``seg_nets``,
    by default the starter run's own segmentation networks in ``runs``)."""
    from ..evaluation.evaluate import evaluate_checkpoint, scalar_metrics
    seg = {}
    if not model.is_segmentation:
        nets = seg_nets or {"buildings": Path(runs or ".") / "seg_buildings" / "best.safetensors",
                            "roads": Path(runs or ".") / "seg_roads" / "best.safetensors"}
        seg = dict(seg_buildings=nets["buildings"], seg_roads=nets["roads"])
    result = evaluate_checkpoint(checkpoint, test_root, options=EvaluateOptions(split="all"), **seg)
    metrics = scalar_metrics(result)
    metrics["test_scenes"] = int(result.get("scenes", 0))
    return metrics


def publish(checkpoint: Path, model: StarterModel, metrics: Dict[str, object], seconds: float,
            out_dir: Path, description: Optional[str] = None,
            train_data: Optional[Dict[str, object]] = None) -> Path:
    """Copy a trained checkpoint into ``out_dir`` under its shipped name, its test metrics in the card.

    ``description``/``train_data``: for a network fine-tuned after ``make weights`` (on other data or
    against other networks), what it really was trained on; by default the starter recipe's.
    """
    from ..models.zoo import load_checkpoint, save_checkpoint

    net, card = load_checkpoint(checkpoint)
    card = dataclasses.replace(
        card,
        name=Path(model.file).stem,
        description=description or f"{model.title}. {NOTE}",
        metrics={**(card.metrics or {}), "test": metrics,
                 "test_data": {"generator": GENERATOR, **TEST_DATA},
                 "train_data": train_data or {"generator": GENERATOR, **TRAIN_DATA},
                 "train_seconds": round(seconds)},
    )
    target = Path(out_dir) / model.file
    save_checkpoint(target, net, card)
    return target


def _fmt(value: object, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def models_readme(rows: List[Dict[str, object]], minutes: float) -> str:
    """``resources/models/README.md``: what each shipped file is, honestly."""
    real = " and ".join(f"`{r['file']}`" for r in rows if r.get("real_images"))
    lines = [
        "# Starter checkpoints",
        "",
        NOTE if not real else NOTE.replace(" or real imagery", "") + " " + REAL_IMAGES_NOTE.format(who=real),
        "",
        "`make weights` rebuilds the starter recipe (`resources/configs/starter/*.yaml`, data seeds "
        f"{TRAIN_DATA['seed']} for training and {TEST_DATA['seed']} for testing). Networks of a later release "
        "were fine-tuned from those (world v3's cities, L1C-like radiometry, seasons, against newer segmentation "
        "networks) and published with `scripts/publish_finetuned.py`: each card's description and "
        "`metrics.train_data` say what it saw, and its train time includes the starter run it began from "
        "(README: *Starter models*). Training them took "
        f"{minutes:.0f} min in all on a 2-core CPU without GPU (the sum of the train times below).",
        "",
        f"Metrics below are measured on {TEST_DATA['scenes']} synthetic test scenes ({TEST_DATA['size']} px HR, "
        f"{TEST_DATA['frames']} simulated revisits, seed {TEST_DATA['seed']}) that no training run saw. "
        "Dice of an SR model is the Dice of the shipped UNet++ networks applied to its output; the "
        "UNet++ rows give their Dice on the HR images themselves (the upper bound). *Phantom* columns: the "
        "share of object-free land (farther than 6 HR pixels from any building or road) that those networks "
        "flag on the SR output, beside the same share on bicubic upsampling of the same revisits (no "
        "network). *Grid*: the 3-px grid score of the output (~1-2 without a checkerboard; DESIGN.md "
        "section 4), beside bicubic's.",
        "",
        "| file | network | parameters | cPSNR (dB) | cSSIM | Dice buildings | Dice roads | phantom buildings "
        "(bicubic) | phantom roads (bicubic) | grid (bicubic) | train time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def pair(m: Dict[str, object], key: str, pct: bool) -> str:
        sr, bic = m.get(key), m.get(f"{key}_bicubic")
        if sr is None:
            return "n/a"
        f = (lambda v: f"{100 * float(v):.2f} %") if pct else (lambda v: f"{float(v):.2f}")
        return f(sr) + (f" ({f(bic)})" if bic is not None else "")

    for r in rows:
        m = r["metrics"]
        if r["segmentation"]:
            dice_b = m.get("dice") if r["key"] == "seg_buildings" else None
            dice_r = m.get("dice") if r["key"] == "seg_roads" else None
        else:
            dice_b, dice_r = m.get("buildings_dice"), m.get("roads_dice")
        lines.append(
            f"| `{r['file']}` | {r['title']} | {r['parameters']:,} | {_fmt(m.get('cpsnr'), 2)} | "
            f"{_fmt(m.get('cssim'))} | {_fmt(dice_b)} | {_fmt(dice_r)} | {pair(m, 'buildings_fp_share', True)} | "
            f"{pair(m, 'roads_fp_share', True)} | {pair(m, 'grid_score', False)} | {r['seconds'] / 60:.1f} min |"
        )
    lines += ["", "Each file is a safetensors checkpoint whose metadata holds its model card "
              "(`python -m core.cli models info FILE`): architecture, hyper-parameters, bands, frames, "
              "normalization, training recipe and these test metrics; also the processing level it was "
              "trained for (`L2A`: world v2 is drawn with surface-reflectance spectra) and the per-band "
              "reflectance percentiles (p2/p50/p98) of its training inputs, which the input checks compare "
              "with what they are given (cards written before they could say so: "
              "`python scripts/record_card_facts.py`, tensors kept byte-identical).", ""]
    return "\n".join(lines)


def shipped_row(model: StarterModel, out_dir: Path) -> Optional[Dict[str, object]]:
    """The README row of a checkpoint already published in ``out_dir``, read back from its card.

    Why: ``make weights`` with ``--only`` retrains some networks; the README must still list all
    of them with the figures their own cards hold, not with figures typed by hand.
    """
    from ..models.zoo import load_checkpoint

    path = Path(out_dir) / model.file
    if not path.is_file():
        return None
    net, card = load_checkpoint(path)
    metrics = dict((card.metrics or {}).get("test") or {})
    seconds = float((card.metrics or {}).get("train_seconds") or 0.0)
    title = model.title
    if (card.hparams or {}).get("decoder") == "unet":  # the file keeps its name; the table says what it holds
        title = title.replace("UNet++", "U-Net (UNet++'s encoder, plain decoder)")
    mix = loss_mix((card.recipe or {}).get("losses"), (card.recipe or {}).get("weighting"))
    if mix and "(baseline fine-tuned: " in title:  # the last fine-tune's losses, which may differ from the starter's
        head, _, rest = title.partition("(baseline fine-tuned: ")
        title = f"{head}(baseline fine-tuned: {mix}{rest[rest.index(','):]}"
    return dict(key=model.key, file=model.file, title=title, segmentation=model.is_segmentation,
                metrics=metrics, seconds=seconds, parameters=sum(p.numel() for p in net.parameters()),
                real_images=bool(((card.recipe or {}).get("data") or {}).get("weak")))


_LOSS_WORDS = {"cl1": "cL1", "dice_buildings": "B-Dice", "dice_roads": "R-Dice"}


def loss_mix(losses: Optional[Sequence[Mapping[str, object]]], weighting: Optional[str]) -> Optional[str]:
    """``dynamic cL1 + 0.25 B-Dice + 0.9 R-Dice + 0.5 fixed phantom terms`` from a card's recipe (None if unknown)."""
    if not losses:
        return None
    parts, phantom = [], set()
    for term in losses:
        name = str(term.get("name"))
        if name.startswith("fp_"):
            phantom.add(term.get("weight"))
            continue
        share = term.get("proportion") if weighting == "dynamic" else term.get("weight")
        word = _LOSS_WORDS.get(name, name)
        parts.append(word if name == "cl1" or share is None else f"{float(share):g} {word}")
    if len(phantom) == 1 and None not in phantom:
        parts.append(f"{float(phantom.pop()):g} fixed phantom terms")
    return (f"{weighting} " if weighting else "") + " + ".join(parts)


def write_models_readme(out_dir: Path = MODELS_DIR) -> bool:
    """Rebuild ``out_dir/README.md`` from the cards of the checkpoints published there (all six, or nothing)."""
    rows = [shipped_row(m, Path(out_dir)) for m in STARTER_MODELS]
    if any(r is None for r in rows):
        return False
    minutes = sum(float(r["seconds"]) for r in rows) / 60
    (Path(out_dir) / "README.md").write_text(models_readme(rows, minutes), encoding="utf-8")
    return True


def build_starter_weights(
    out_dir: Path = MODELS_DIR,
    work_dir: Path = ROOT / "runs" / "starter",
    only: Optional[Sequence[str]] = None,
    say: Callable[[str], None] = print,
) -> List[Path]:
    """Train, evaluate and publish the starter checkpoints; returns the written files."""
    from ..models.zoo import load_checkpoint

    begin = time.time()
    work_dir = Path(work_dir)
    say(f"[data] synthetic world v2: training {TRAIN_DATA}, test {TEST_DATA}")
    train_root = ensure_dataset(work_dir / "data_train", **TRAIN_DATA)
    test_root = ensure_dataset(work_dir / "data_test", **TEST_DATA)
    runs = work_dir
    wanted = [m for m in STARTER_MODELS if not only or m.key in only]
    written: List[Path] = []
    rows: List[Dict[str, object]] = []
    for model in STARTER_MODELS:
        if model not in wanted:
            continue
        say(f"[train] {model.title}")
        best = _train(model, train_root, runs, say)
        seconds = training_seconds(best.parent)
        say(f"      {model.key}: {seconds / 60:.1f} min of training -> {best}")
        say(f"[test] {model.key} on {TEST_DATA['scenes']} unseen scenes")
        metrics = test_metrics(best, model, test_root, runs)
        target = publish(best, model, metrics, seconds, out_dir)
        written.append(target)
        net, _ = load_checkpoint(target)
        rows.append(dict(key=model.key, file=model.file, title=model.title, segmentation=model.is_segmentation,
                         metrics=metrics, seconds=seconds, parameters=sum(p.numel() for p in net.parameters())))
        say(f"      {target.name}: " + json.dumps({k: v for k, v in metrics.items() if "dice" in k or k in
                                                   ("cpsnr", "cssim")}, default=str))
    retrained = {r["key"] for r in rows}
    shipped = [r for r in (shipped_row(m, Path(out_dir)) for m in STARTER_MODELS if m.key not in retrained) if r]
    table = sorted(rows + shipped, key=lambda r: [m.key for m in STARTER_MODELS].index(r["key"]))
    if len(table) == len(STARTER_MODELS):  # the README lists every file or is left as it was
        minutes = sum(float(r["seconds"]) for r in table) / 60
        (Path(out_dir) / "README.md").write_text(models_readme(table, minutes), encoding="utf-8")
    (work_dir / "summary.json").write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    say(f"[done] {len(written)} checkpoint(s) in {out_dir} after {(time.time() - begin) / 60:.1f} min")
    return written
