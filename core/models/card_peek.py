"""A checkpoint's model card as plain JSON, read without PyTorch: for start-up and listings that only look.

Why not :func:`core.models.zoo.read_card`: that one validates the card against
the network registry and so imports PyTorch, 3 s that QGIS's start-up paid
because the Processing provider looks up its default checkpoints when it loads
(issue 21). Looking up which shipped file is an SR network, or which segments
roads, needs only three fields of the card. Nothing here is trusted: a file
that is not one of this plugin's checkpoints, or is unreadable, gives None.
Loading a checkpoint still goes through ``zoo`` and its checks.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Dict, Optional, Union

__all__ = ["peek_card", "card_task", "card_target", "card_bands"]

#: As :data:`core.models.zoo.FORMAT`: the metadata mark of this plugin's checkpoints.
_FORMAT = "s2sr-checkpoint"
_MAX_HEADER = 100 * 1024 * 1024


def peek_card(path: Union[str, os.PathLike[str]]) -> Optional[Dict[str, Any]]:
    """The model card of one of this plugin's checkpoints as a dict, or None; no tensor is read, no check made."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                return None
            n = struct.unpack("<Q", head)[0]
            if not 0 < n <= _MAX_HEADER:
                return None
            header = json.loads(f.read(n).decode("utf-8"))
        meta = header.get("__metadata__") if isinstance(header, dict) else None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            return None
        card = json.loads(meta.get("card", ""))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return card if isinstance(card, dict) else None


def card_task(card: Dict[str, Any]) -> str:
    return str(card.get("task") or "sr")  # ModelCard's default


def card_target(card: Dict[str, Any]) -> Optional[str]:
    target = card.get("target")
    return str(target) if target else None


def card_bands(card: Dict[str, Any]) -> list:
    bands = card.get("bands")
    return [str(b) for b in bands] if isinstance(bands, list) and bands else ["B8"]  # ModelCard's default
