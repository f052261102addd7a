"""What a run folder holds: resume-state names and signature, the history's plot view, paired atomic writes.

Why apart from the loop: these decide whether an old ``last.pt`` may be
resumed (:func:`resume_signature`, compared key by key with :func:`diff_keys`)
and that ``last.pt`` and ``history.json`` never describe different epochs
(:func:`commit_together`). What goes into the signature must not change, or a
run folder written by an earlier version would be refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

from ..io.atomic import remove_orphans, replace_file, temp_path_for
from .config import TrainConfig, config_to_dict

__all__ = [
    "RESUME_FILE",
    "RESUME_FORMAT",
    "RUN_FILES",
    "RESUME_KEYS",
    "RESUME_DATA_KEYS",
    "CURVE_METRICS",
    "curves_history",
    "commit_together",
    "resume_signature",
    "diff_keys",
]

RESUME_FILE = "last.pt"
RESUME_FORMAT = 1
RUN_FILES = (RESUME_FILE, "last.safetensors", "best.safetensors", "history.json", "training_curves.png")
# Changing these between a run and its resumption would silently train another recipe.
RESUME_KEYS = ("task", "target", "lr", "optimizer", "weight_decay", "grad_clip", "scheduler", "seed",
               "model", "loss", "seg_nets", "max_steps_per_epoch")
#: Resuming also compares the network's own hyper-parameters (upsampler, bands...): a code default that
#: changed between two sessions must not load old weights into a different network.
RESUME_DATA_KEYS = ("version", "train_split", "band", "bands", "lr_patch", "seg_patch", "frames", "samples_per_epoch",
                    "batch_size", "augment", "selection", "normalization")


CURVE_METRICS = ("cpsnr", "cssim", "buildings_dice", "roads_dice", "dice")


def curves_history(history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The history with only the headline validation metrics, for readable training-curve plots."""
    return [{**h, "val": {k: v for k, v in (h.get("val") or {}).items() if k in CURVE_METRICS}} for h in history]


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM and SIGINT until the block ends, then deliver them (main thread only).

    The QGIS dialog stops a run with SIGTERM; landing between two renames it
    would leave ``history.json`` and ``last.pt`` describing different epochs.
    Elsewhere than the main thread Python cannot catch signals: the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: List[int] = []
    previous: Dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, lambda signum, _frame: caught.append(signum))
        except (ValueError, OSError):  # pragma: no cover - no signals on this platform
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if caught:
            os.kill(os.getpid(), caught[0])  # now that the files agree, stop as asked


def commit_together(writers: Mapping[Path, Callable[[Path], None]]) -> None:
    """Write each file into its temporary sibling, then rename them all in order, signals held.

    Files that describe the same moment (the resume state and the history of
    its epochs) are either all the old ones or all the new ones: the slow part
    (writing) happens before, only the renames happen inside the held block.
    """
    temps: List[Any] = []
    try:
        for path, write in writers.items():
            remove_orphans(path)
            tmp = temp_path_for(path)
            temps.append((tmp, path))
            write(tmp)
        with _signals_held():
            for tmp, path in temps:
                replace_file(tmp, path)
    finally:
        for tmp, _ in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def resume_signature(config: TrainConfig, world_size: int, network: Optional[Mapping[str, Any]] = None
                     ) -> Dict[str, Any]:
    """The recipe keys a resumed run must share with the run that wrote ``last.pt`` (JSON-ready).

    Stored in ``last.pt``: what goes in here must stay as it is, or old run folders are refused.
    """
    full = config_to_dict(config)
    sig = {k: full[k] for k in RESUME_KEYS}
    if network is not None:
        sig["network"] = dict(network)
    sig["world_size"] = world_size  # the global batch (and so the trajectory) depends on it
    sig["data"] = {k: full["data"][k] for k in RESUME_DATA_KEYS}
    if config.data.radiometry.active:  # only then: run folders from before this setting stay resumable
        sig["data"]["radiometry"] = dict(full["data"]["radiometry"])
        if not config.data.radiometry.transmittance:  # as run folders from before the transmittance recorded it
            sig["data"]["radiometry"].pop("transmittance", None)
    for key in ("sharpness", "season"):
        if getattr(config.data, key).active:
            sig["data"][key] = full["data"][key]
    if config.data.weak.root:  # the real crops riding along change the trajectory
        sig["data"]["weak"] = full["data"]["weak"]
    if config.scheduler.name == "cosine":  # its period is the number of epochs; otherwise runs may be extended
        sig["epochs"] = config.epochs
    return json.loads(json.dumps(sig))


def diff_keys(a: Any, b: Any, prefix: str = "") -> List[str]:
    """Dotted keys where two signatures differ, so the refusal names what changed."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys: List[str] = []
        for k in sorted(set(a) | set(b)):
            keys += diff_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        return keys
    return [] if a == b else [prefix]
