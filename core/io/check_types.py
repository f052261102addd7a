"""The one finding type of the input checks (:mod:`.checks`, :mod:`.input_signs`), in a module of its own.

Why apart: the checks on band and pixel (``checks``) and those on level, snow,
haze and statistics (``input_signs``) both return it, and ``checks`` runs both.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Check", "LEVELS"]

LEVELS = ("ok", "warning", "refusal")


@dataclass(frozen=True)
class Check:
    """One finding about the inputs: ``level`` is ``ok``, ``warning`` or ``refusal``; ``message`` one sentence."""

    level: str
    code: str
    message: str

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"check level must be one of {LEVELS}, got {self.level!r}")

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"
