"""Run the study's experiment grid: train every row, evaluate it on the test split, report.

A grid is a folder of training configs (``resources/configs/experiments/``; files
whose name starts with ``_`` are shared bases, not rows) or a YAML file listing
config files under ``experiments:``. Each row names its data version
(``data.version: simulated | real``); :func:`run_grid` points it at the dataset
given for that version, so one grid runs on MuS2, on simulated MuS2 or on the
synthetic demo data alike.

Rows may refer to other rows' results with ``run:<id>``:

* ``model.init_from: "run:1"`` fine-tunes from the best checkpoint of row 1, as
  row 1 was written (its own data version), trained first when needed;
* ``seg_nets.buildings: "run:seg_buildings"`` uses a segmentation prerequisite
  (a config with ``task: segmentation``). Segmentation networks learn from HR
  images and masks only, so a prerequisite is trained once per data version of
  the rows that use it, on that version's dataset.

Every trained row is evaluated on whole test scenes (cPSNR, cSSIM, LPIPS when its
weights are on disk, building and road Dice through the frozen segmentation
networks); the rows, plus an "HR" row per data version (the segmentation
networks on the HR images: the upper bound), go to ``rows.json`` and to
``core.report.write_report``.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import yaml

from ..evaluation.evaluate import (
    evaluate_checkpoint,
    evaluate_hr_reference,
    load_split_scenes,
    scalar_metrics,
)
from ..evaluation.report import ANCHORED_METRICS, DEFAULT_METRICS, write_report
from ..inference.loading import load_model
from ..inference.planning import TilePlan
from ..models.registry import registered
from ..models.zoo import load_checkpoint, save_checkpoint
from ..options import EvaluateOptions
from .config import (
    REFERENCE_PREFIX,
    ConfigError,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    is_reference,
    read_recipe_yaml,
)
from .trainer import curves_history, train

__all__ = ["GridEntry", "load_grid", "load_profile", "run_grid", "write_grid_report", "VERSION_LABELS"]

VERSION_LABELS = {"simulated": "simulated", "real": "real-world"}
TABLE_LABELS = {"3": "Table 3 (MISR, RAMS)", "4": "Table 4 (SISR, HAT)"}
EventCallback = Callable[[Dict[str, Any]], None]


@dataclass
class GridEntry:
    """One config of the grid; ``data`` is its raw mapping (bases merged), so it can be re-targeted."""

    id: str
    path: Path
    data: Dict[str, Any]
    config: TrainConfig

    @property
    def is_prerequisite(self) -> bool:
        return self.config.task == "segmentation"

    @property
    def table(self) -> str:
        return str(self.config.experiment.table or "")


def _grid_files(source: Path) -> List[Path]:
    if source.is_dir():
        files = sorted(p for p in source.glob("*.yaml") if not p.name.startswith("_"))
        if not files:
            raise ConfigError(f"{source}: no experiment configs (*.yaml) in this folder")
        return files
    if not source.is_file():
        raise ConfigError(f"{source}: no such grid folder or file")
    data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    if isinstance(data, Mapping) and "experiments" in data:
        items = data["experiments"]
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{source}: experiments: expected a list of config file names")
        return [source.parent / i for i in items]
    return [source]  # a single training config


def _sort_key(entry_id: str) -> Tuple[int, int, str]:
    head = entry_id.split("-")[0]
    return (0, int(head), entry_id) if head.isdigit() else (1, 0, entry_id)


def load_grid(source) -> Dict[str, GridEntry]:
    """Read and validate every config of a grid (checkpoints may not exist yet)."""
    entries: Dict[str, GridEntry] = {}
    for path in _grid_files(Path(source)):
        data = read_recipe_yaml(path)
        config = config_from_dict(data, source=path.name, check_files=False)
        entry_id = str(config.experiment.id or path.stem)
        if entry_id in entries:
            raise ConfigError(f"{path.name}: experiment id {entry_id!r} is also used by {entries[entry_id].path.name}")
        entries[entry_id] = GridEntry(entry_id, path, data, config)
    for entry in entries.values():
        for key, ref in _references(entry.config):
            if ref not in entries:
                raise ConfigError(f"{entry.path.name}: {key}: refers to experiment {ref!r}, which the grid lacks")
    return dict(sorted(entries.items(), key=lambda kv: _sort_key(kv[0])))


#: Settings that may hold a ``run:<id>`` reference to another row's checkpoint.
REFERENCE_KEYS = ("model.init_from", "seg_nets.buildings", "seg_nets.roads")


def _references(config: TrainConfig) -> List[Tuple[str, str]]:
    refs = []
    for key, value in zip(REFERENCE_KEYS, (config.model.init_from, config.seg_nets.buildings,
                                           config.seg_nets.roads)):
        if is_reference(value):
            refs.append((key, value[len(REFERENCE_PREFIX):]))
    return refs


def _references_in(data: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """The references left in a row's settings *after* overrides.

    Why not the row's own config: ``--set seg_nets.buildings=FILE`` replaces the reference with a
    checkpoint the user already has (e.g. one pair of segmentation networks for both data versions,
    as the study trains them on the HR images that both share); the prerequisite is then not trained.
    """
    refs = []
    for key in REFERENCE_KEYS:
        node: Any = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if is_reference(node):
            refs.append((key, node[len(REFERENCE_PREFIX):]))
    return refs


def _set(data: Dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def load_profile(path) -> Dict[str, List[str]]:
    """A compute profile: ``KEY=VALUE`` overrides per architecture (``rams``, ``hat``, ``unetpp``) and for
    fine-tuning rows (``finetune``, applied after the architecture's, to rows with ``model.init_from``).

    Why: the grid's rows encode the study's *recipes*; how big the networks are and how long they train
    is a matter of the machine. A profile shrinks every row the same way (e.g. a 2-core CPU run on
    synthetic data) without copying the rows, so the recipes stay exactly those of the grid.
    """
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a profile maps rams / hat / unetpp / finetune to lists of KEY=VALUE")
    profile: Dict[str, List[str]] = {}
    for key, items in data.items():
        sections = registered() + ["finetune"]
        if key not in sections:
            raise ConfigError(f"{path}: unknown profile section {key!r} ({', '.join(sections)})")
        if not isinstance(items, list) or not all(isinstance(i, str) and "=" in i for i in items):
            raise ConfigError(f"{path}: {key}: expected a list of KEY=VALUE strings")
        profile[key] = list(items)
    return profile


def _profile_overrides(profile: Mapping[str, Sequence[str]], data: Mapping[str, Any]) -> List[str]:
    model = data.get("model") or {}
    found = list(profile.get(str(model.get("arch", "")), ()))
    if model.get("init_from"):
        found += list(profile.get("finetune", ()))
    return found


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


class _GridRun:
    def __init__(self, entries: Dict[str, GridEntry], data_roots: Mapping[str, str], out: Path,
                 epochs: Optional[int], device: Optional[str], overrides: Sequence[str],
                 progress: Optional[EventCallback], resume: bool, max_test_scenes: Optional[int],
                 profile: Optional[Mapping[str, Sequence[str]]] = None):
        self.entries = entries
        self.profile = dict(profile or {})
        self.data_roots = dict(data_roots)
        self.out = out
        self.epochs = epochs
        self.device = device
        self.overrides = list(overrides)
        self.progress = progress
        self.resume = resume
        self.max_test_scenes = max_test_scenes
        self.trained: Dict[Tuple[str, str], Tuple[Path, TrainConfig]] = {}
        self.active: List[Tuple[str, str]] = []

    def emit(self, event: Dict[str, Any]) -> None:
        if self.progress:
            self.progress(event)

    def root_for(self, version: str, who: str) -> str:
        root = self.data_roots.get(version)
        if not root:
            flag = "--data-simulated" if version == "simulated" else "--data-real"
            raise ConfigError(f"{who} uses the {version!r} data version; give its dataset with {flag} PATH")
        return str(root)

    def resolve(self, entry: GridEntry, version: str) -> TrainConfig:
        """The entry's config on ``version``'s dataset, with references replaced by checkpoints."""
        data = copy.deepcopy(entry.data)
        data = apply_overrides(data, _profile_overrides(self.profile, data) + self.overrides)
        run_dir = self.out / (_slug(entry.id) if not entry.is_prerequisite else f"{_slug(entry.id)}-{version}")
        _set(data, "data.version", version)
        _set(data, "data.root", self.root_for(version, f"experiment {entry.id}"))
        _set(data, "out_dir", str(run_dir))
        if self.epochs is not None:
            _set(data, "epochs", int(self.epochs))
        if self.device is not None:
            _set(data, "device", self.device)
        for key, ref in _references_in(data):
            target = self.entries[ref]
            # Segmentation prerequisites follow the user's data version; SR rows keep their own.
            ref_version = version if target.is_prerequisite else target.config.data.version
            best, _ = self.train_entry(target, ref_version)
            _set(data, key, str(best))
        return config_from_dict(data, source=entry.path.name)

    def train_entry(self, entry: GridEntry, version: str) -> Tuple[Path, TrainConfig]:
        key = (entry.id, version)
        if key in self.trained:
            return self.trained[key]
        if key in self.active:
            chain = " -> ".join(k[0] for k in self.active + [key])
            raise ConfigError(f"experiment references form a loop: {chain}")
        self.active.append(key)
        try:
            config = self.resolve(entry, version)
            self.emit({"event": "log", "message": f"experiment {entry.id} ({version}): training",
                       "experiment": entry.id})

            def relay(event: Dict[str, Any]) -> None:
                self.emit({**event, "experiment": entry.id, "data_version": version})

            t0 = time.perf_counter()
            best = train(config, progress=relay, resume=self.resume)
            self.emit({"event": "log", "experiment": entry.id,
                       "message": f"experiment {entry.id} trained in {time.perf_counter() - t0:.0f} s"})
        finally:
            self.active.remove(key)
        self.trained[key] = (best, config)
        return best, config

    def evaluate(self, entry: GridEntry, best: Path, config: TrainConfig) -> Dict[str, Any]:
        device = config.device if config.device != "auto" else _auto_device()
        res = evaluate_checkpoint(
            best, config.data.root, seg_buildings=config.seg_nets.buildings, seg_roads=config.seg_nets.roads,
            options=EvaluateOptions(split=config.data.test_split or "all", device=str(device).split(":")[0],
                                    tile=config.val_tile, overlap=config.val_overlap,
                                    max_scenes=self.max_test_scenes),
        )
        _record_test_metrics(best, res)
        version = config.data.version
        history_path = Path(config.out_dir) / "history.json"
        return {
            "id": entry.id,
            "name": config.experiment.title or config.name,
            "data_version": _group_label(entry.table, version),
            "cpsnr": res.get("cpsnr"),
            "cssim": res.get("cssim"),
            "lpips": res.get("lpips"),
            "dice_buildings": res.get("buildings_dice"),
            "dice_roads": res.get("roads_dice"),
            "dice_buildings_anchored": res.get("buildings_dice_anchored"),
            "dice_roads_anchored": res.get("roads_dice_anchored"),
            "anchor_offset": res.get("anchor_offset"),
            "fp_buildings": res.get("buildings_fp_share"),
            "fp_roads": res.get("roads_fp_share"),
            "fp_buildings_bicubic": res.get("buildings_fp_share_bicubic"),
            "fp_roads_bicubic": res.get("roads_fp_share_bicubic"),
            "epochs": config.epochs,
            "test_scenes": res.get("scenes"),
            "checkpoint": str(best),
            "history": str(history_path) if history_path.is_file() else None,
            "lpips_note": res.get("lpips_note"),
        }

    def hr_reference(self, version: str, table: str, seg_paths: Mapping[str, str], config: TrainConfig):
        device = torch.device(config.device if config.device != "auto" else _auto_device())
        scenes = load_split_scenes(config.data.root, config.data.test_split, self.max_test_scenes)
        nets = {t: load_model(p, device, task="segmentation") for t, p in seg_paths.items() if p}
        scale = config.model.scale
        res = evaluate_hr_reference(scenes, nets, [config.data.band],
                                    TilePlan(config.val_tile * scale, config.val_overlap * scale, 1))
        return {
            "id": "HR",
            "name": "segmentation networks on the HR images (upper bound)",
            "data_version": _group_label(table, version),
            "cpsnr": None, "cssim": None, "lpips": None,
            "dice_buildings": res.get("buildings_dice"),
            "dice_roads": res.get("roads_dice"),
        }


def _auto_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _group_label(table: str, version: str) -> str:
    label = VERSION_LABELS.get(version, version)
    return f"{TABLE_LABELS.get(table, 'Table ' + table if table else 'experiments')}, {label} data"


def _record_test_metrics(checkpoint: Path, result: Mapping[str, Any]) -> None:
    """Add the test metrics to the checkpoint's card (the card travels with the weights)."""
    model, card = load_checkpoint(checkpoint, device="cpu")
    metrics = dict(card.metrics or {})
    metrics["test"] = scalar_metrics(result)
    card.metrics = metrics
    save_checkpoint(checkpoint, model, card)


def write_grid_report(out_dir, rows: Sequence[Mapping[str, Any]], title: str = "Task-driven SR experiments"):
    """Render ``rows`` (and each row's training curves) with :func:`core.report.write_report`."""
    histories = {}
    for r in rows:
        h = r.get("history")
        if h and Path(h).is_file():
            histories[str(r["id"])] = curves_history(json.loads(Path(h).read_text(encoding="utf-8")))
    notes = sorted({str(r["lpips_note"]) for r in rows if r.get("lpips_note")})
    if notes:  # once in the title rather than in every row
        title = f"{title} ({'; '.join(notes)})"
    plain = [{k: v for k, v in r.items() if k not in ("history", "checkpoint", "lpips_note")} for r in rows]
    metrics = tuple(DEFAULT_METRICS)
    if any(r.get("dice_buildings_anchored") is not None for r in rows):
        metrics += ANCHORED_METRICS
    return write_report(plain, out_dir, title, histories=histories, metrics=metrics)


def run_grid(
    source,
    only: Optional[Sequence[str]] = None,
    data_roots: Optional[Mapping[str, str]] = None,
    epochs: Optional[int] = None,
    out_dir="runs/experiments",
    device: Optional[str] = None,
    overrides: Sequence[str] = (),
    progress: Optional[EventCallback] = None,
    resume: bool = True,
    max_test_scenes: Optional[int] = None,
    title: str = "Task-driven SR experiments",
    profile: Optional[Mapping[str, Sequence[str]]] = None,
) -> List[Dict[str, Any]]:
    """Train and evaluate the grid's rows (``only``: a subset of ids); returns the report rows.

    Everything is checked before the first row trains: every selected row (and
    whatever it refers to) must resolve to a dataset. Rows already trained in
    ``out_dir`` are resumed (a finished run just re-evaluates).
    """
    entries = load_grid(source)
    selected = [e for e in entries.values() if not e.is_prerequisite]
    if only:
        wanted = [str(i) for i in only]
        unknown = [i for i in wanted if i not in entries]
        if unknown:
            raise ConfigError(f"--only: unknown experiment id(s) {', '.join(unknown)}; "
                              f"the grid has {', '.join(entries)}")
        selected = [entries[i] for i in wanted]
    out = Path(out_dir)
    grid = _GridRun(entries, data_roots or {}, out, epochs, device, overrides, progress, resume, max_test_scenes,
                    profile)
    for e in selected:  # refuse missing datasets before hours of training
        grid.root_for(e.config.data.version, f"experiment {e.id}")
        for _, ref in _references(e.config):
            t = entries[ref]
            grid.root_for(e.config.data.version if t.is_prerequisite else t.config.data.version,
                          f"experiment {t.id} (needed by {e.id})")
    out.mkdir(parents=True, exist_ok=True)
    rows: List[Dict[str, Any]] = []
    # one HR reference row per (table, data version), with that group's segmentation networks
    groups: Dict[Tuple[str, str], TrainConfig] = {}
    for entry in selected:
        version = entry.config.data.version
        best, config = grid.train_entry(entry, version)
        if entry.is_prerequisite:
            continue
        rows.append(grid.evaluate(entry, best, config))
        if config.seg_nets.buildings or config.seg_nets.roads:
            groups.setdefault((entry.table, version), config)
        _write_rows(out, rows)
    for (table, version), config in groups.items():
        seg = {t: getattr(config.seg_nets, t) for t in ("buildings", "roads") if getattr(config.seg_nets, t)}
        rows.append(grid.hr_reference(version, table, seg, config))
    _write_rows(out, rows)
    paths = write_grid_report(out, rows, title)
    if progress:
        progress({"event": "done", "report": str(paths.get("html", "")), "rows": len(rows)})
    return rows


def _write_rows(out: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    tmp = out / ".rows.json.tmp"
    tmp.write_text(json.dumps(list(rows), indent=1), encoding="utf-8")
    tmp.replace(out / "rows.json")
