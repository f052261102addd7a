"""The engine's input checks in the dock's check lines: red refusals, orange warnings, before anything runs.

Why the engine's and not the dock's own: ``core.io.checks`` decides what a
run refuses (a band the model was not trained on, bands of one date given as
revisits, a 3.33 m output fed back in) and what it only warns about (a 10 m
raster segmented, mostly cloudy frames). Showing exactly those sentences
before the click means the run can never refuse something the dock did not
announce. The checks read metadata and decimated samples; their results are
cached per (files, modification times, band, model bands) because the check
line is redrawn on every change of the dock.
"""

from __future__ import annotations

import html
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

from .model_store import breakable

__all__ = ["CheckReport", "run_checks", "check_lines", "OK_COLOUR", "WARNING_COLOUR", "REFUSAL_COLOUR"]

OK_COLOUR, WARNING_COLOUR, REFUSAL_COLOUR = "#1a7f37", "#b54708", "#b42318"
_CACHE: OrderedDict[Tuple[Any, ...], CheckReport] = OrderedDict()
_CACHE_SIZE = 16


@dataclass
class CheckReport:
    """The engine's checks on the chosen inputs: ``(level, message)`` pairs; ``error`` when they could not run."""

    checks: List[Tuple[str, str]] = field(default_factory=list)
    error: Optional[str] = None  # an input the engine cannot read: the run would fail the same way
    unavailable: Optional[str] = None  # the checks themselves could not run (e.g. a missing dependency)

    @property
    def refused(self) -> bool:
        return self.error is not None or any(level == "refusal" for level, _m in self.checks)


def _key(paths: Sequence[str], band: Any, card_bands: Sequence[str], multi_image: bool, task: str,
         cards: Sequence[Any] = ()) -> Tuple[Any, ...]:
    stamps = []
    for p in paths:
        try:
            st = os.stat(p)
            stamps.append((p, st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append((p, None, None))
    trained = tuple((getattr(c, "display_name", ""), getattr(c, "trained_level", None), getattr(c, "created", ""))
                    for c in cards)
    return tuple(stamps), str(band), tuple(card_bands), bool(multi_image), task, trained


def run_checks(paths: Sequence[str], band: Any, card_bands: Sequence[str] = ("B8",), multi_image: bool = False,
               task: str = "super-resolve", cards: Sequence[Any] = ()) -> CheckReport:
    """``core.io.checks.check_inputs`` on ``paths`` as the job will read them (cached; main thread).

    ``cards``: the chosen networks' model cards, so the line also says when the
    input's processing level or reflectances are not what they were trained on.
    """
    key = _key(paths, band, card_bands, multi_image, task, cards)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    try:
        from ...core.io.checks import check_inputs
    except ImportError as exc:  # the engine's dependencies are missing: the installer says so elsewhere
        return CheckReport(unavailable=f"input checks unavailable ({exc})")
    try:
        found = check_inputs(list(paths), band, list(card_bands) or ["B8"], multi_image, task, list(cards))
        report = CheckReport([(c.level, c.message) for c in found])
    except ValueError as exc:  # core.jobs.InputError: a sentence for the analyst
        report = CheckReport(error=str(exc))
    except Exception as exc:  # an unreadable file: say it, as the run would
        report = CheckReport(error=f"{type(exc).__name__}: {exc}")
    _CACHE[key] = report
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return report


def _text(message: str) -> str:
    """Escaped rich text in which a long file name may wrap (the engine's sentences name the files)."""
    return re.sub(r"\S{24,}", lambda m: breakable(m.group(0)), html.escape(message))


def check_lines(report: CheckReport, forced: bool = False, can_force: bool = True) -> List[str]:
    """The report as rich-text lines: green ticks, orange warnings, red refusals (and what 'forced' does).

    ``can_force``: the job has "Run despite refused checks" (super-resolution does, segmentation does not).
    """
    if report.unavailable:
        return [f"<span style='color:gray'>{_text(report.unavailable)}</span>"]
    if report.error:
        return [f"<span style='color:{REFUSAL_COLOUR}'>&#10007; {_text(report.error)}</span>"]
    lines = []
    for level, message in report.checks:
        text = _text(message)
        if level == "refusal":
            lines.append(f"<span style='color:{REFUSAL_COLOUR}'>&#10007; {text}</span>")
        elif level == "warning":
            lines.append(f"<span style='color:{WARNING_COLOUR}'>&#9888; {text}</span>")
        else:
            lines.append(f"<span style='color:{OK_COLOUR}'>&#10003;</span> {text}")
    if report.refused and can_force:
        lines.append(f"<span style='color:{REFUSAL_COLOUR}'>"
                     + ("refused checks overridden: 'Run despite refused checks' is ticked" if forced else
                        "the run is refused; tick 'Run despite refused checks' (Advanced) to run anyway")
                     + "</span>")
    return lines
