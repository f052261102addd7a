"""One rule for turning results into strict JSON, shared by the CLI, reports and the QGIS face.

Why a module of its own: progress events (``--progress jsonl``), ``results.json`` and the
Processing algorithms' outputs are read by other programs (the training dialog, spreadsheets,
``json.loads`` in strict mode), which reject ``NaN`` and ``Infinity``. A metric that could not be
computed is ``null``, never a made-up number.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["json_safe"]


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dumps`` writes as standard JSON.

    NaN and infinities become ``None``; NumPy scalars become Python numbers; mappings get string
    keys; tuples become lists; anything else that JSON has no type for (paths, dates) becomes text.
    """
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():  # NumPy / torch scalar
        return json_safe(obj.item())
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
