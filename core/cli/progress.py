"""What every long CLI command shares: progress on stderr (bars, or JSON lines for a parent process), one-line endings."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from tqdm import tqdm

from ..io.jsonsafe import json_safe
from ..jobs import Cancelled, OutputError

__all__ = ["progress_bar", "fresh_line", "run_job", "run_with_bar", "print_messages", "event_printer"]

#: Whether a progress bar has drawn on stderr since the last line ended there. A bar redraws one line with
#: carriage returns; whatever is printed next must start a line of its own, or a log shows it glued to the bar.
_BAR_DREW = [False]


def fresh_line() -> None:
    """End the progress bar's line on stderr when a bar drew on it, so the next line (``error: ...``) starts clean."""
    if _BAR_DREW[0]:
        sys.stderr.write("\n")
        sys.stderr.flush()
        _BAR_DREW[0] = False


def progress_bar(desc: str) -> Tuple[Callable[[float, str], None], Callable[[], None]]:
    bar = tqdm(total=100, desc=desc, file=sys.stderr, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")

    def update(fraction: float, message: str) -> None:
        bar.n = round(fraction * 100, 1)
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()
        _BAR_DREW[0] = True

    return update, bar.close


def _attempt(fn: Callable[..., Any], kwargs: Dict[str, Any]) -> Tuple[Any, int, Optional[str]]:
    """Run a job: (result, exit code, the one line to print when it ended early, or None)."""
    try:
        return fn(**kwargs), 0, None
    except Cancelled as exc:
        return None, 130, f"cancelled: {exc}"
    except OutputError as exc:
        return None, 1, f"error: {exc}"


def run_job(fn, **kwargs):
    """Run an inference job; returns (result, exit code).

    Ctrl-C (and SIGTERM, see ``core.cli.main``) arrives as KeyboardInterrupt
    inside the job, whose cleanup removes the temporary files; output problems
    (an ``OSError`` the CLI's generic handler would not word) are printed as one line.
    """
    result, code, line = _attempt(fn, kwargs)
    if line:
        print(line, file=sys.stderr)
    return result, code


def run_with_bar(desc: str, fn: Callable[..., Any], **kwargs: Any) -> Tuple[Any, int]:
    """:func:`run_job` with a progress bar called ``desc`` passed as ``progress`` and closed however it ends.

    Every inference command runs its job this way; one place keeps the bar from
    outliving the job, and the job's last line is printed after the bar, on a line of its own.
    """
    update, close = progress_bar(desc)
    try:
        result, code, line = _attempt(fn, {**kwargs, "progress": update})
    finally:
        close()
    if line:
        fresh_line()
        print(line, file=sys.stderr)
    return result, code


def print_messages(messages: Iterable[str]) -> None:
    """Print what a job did to the data, a line each, before the command's own summary line."""
    for m in messages:
        print(m)


def _jsonl_printer(event: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(json_safe(event)) + "\n")
    sys.stdout.flush()


class _TqdmPrinter:
    """Progress bars: one per epoch, epoch summaries and log lines above them."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, event: Dict[str, Any]) -> None:
        kind = event.get("event")
        prefix = f"[{event['experiment']}] " if event.get("experiment") else ""
        if kind == "step":
            if self.bar is None or self.bar.total != event["steps"] or event["step"] == 1:
                self.close()
                self.bar = tqdm(total=event["steps"], desc=f"{prefix}epoch {event['epoch']}/{event['epochs']}",
                                unit="step", leave=False, file=sys.stderr)
            self.bar.n = event["step"]
            self.bar.set_postfix(loss=f"{event['loss']:.4g}", lr=f"{event['lr']:.2g}", refresh=False)
            self.bar.refresh()
            _BAR_DREW[0] = True
        elif kind == "epoch":
            self.close()
            val = ", ".join(f"{k} {v:.4g}" for k, v in (event.get("val") or {}).items()
                            if isinstance(v, (int, float)) and k != "scenes")
            train = ", ".join(f"{k} {v:.4g}" for k, v in (event.get("train") or {}).items())
            star = " *" if event.get("improved") else ""
            tqdm.write(f"{prefix}epoch {event['epoch']}/{event['epochs']}: train {train}"
                       + (f" | val {val}" if val else "") + star, file=sys.stderr)
        elif kind == "log":
            tqdm.write(f"{prefix}{event.get('message', '')}", file=sys.stderr)
        elif kind == "error" and prefix:  # which row stopped; the error itself ends the command as one line
            self.close()
            tqdm.write(f"{prefix}stopped", file=sys.stderr)
        elif kind == "error":
            self.close()
        elif kind == "done":
            self.close()
            if event.get("checkpoint"):
                tqdm.write(f"{prefix}best checkpoint: {event['checkpoint']}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def event_printer(mode: str) -> Optional[Callable[[Dict[str, Any]], None]]:
    """What prints training events: JSON lines (for the training dialog), tqdm bars, or nothing."""
    if mode == "jsonl":
        return _jsonl_printer
    if mode == "tqdm":
        return _TqdmPrinter()
    return None
