"""What the area workflows (task-driven fine-tune and Wald adaptation) share to report stages and reuse results.

Why a module of its own: :mod:`core.area.finetune` and :mod:`core.area.wald`
emit the same events to the CLI and the QGIS dialog and cache their
"before" measurement the same way; one copy keeps the two in step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

__all__ = ["Event", "RunResult", "event_sink", "log_stage", "cached_result"]

Event = Callable[[Dict[str, Any]], None]


def event_sink(progress: Optional[Event]) -> Event:
    """A callable that forwards events to ``progress``, or drops them when there is none (no checks at call sites)."""
    def emit(event: Dict[str, Any]) -> None:
        if progress is not None:
            progress(event)

    return emit


def log_stage(emit: Event, message: str, stage: str) -> None:
    """One ``log`` event naming the workflow's stage, as the CLI's jsonl and the QGIS dialog read it."""
    emit({"event": "log", "message": message, "stage": stage})


def cached_result(path: Path, key: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The ``result`` saved in ``path`` when it was made from the same ``key``, else None (so a rerun skips it)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved.get("result") if saved.get("key") == key else None


@dataclass
class RunResult:
    """What an area run produced: the registered checkpoint, its report files and the before/after scores.

    The fields both workflows return; :class:`core.area.finetune.AreaResult`
    and :class:`core.area.wald.WaldResult` name it for their caller.
    """

    checkpoint: Path
    report_json: Path
    report_md: Path
    plot: Optional[Path]
    before: Dict[str, Any]
    after: Dict[str, Any]
    run_dir: Path
    seconds: float

