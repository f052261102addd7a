"""What every long CLI command shares: progress on stderr (bars, or JSON lines for a parent process), one-line endings."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from ..io.jsonsafe import json_safe

__all__ = ["progress_bar", "run_job", "run_with_bar", "print_messages", "event_printer"]


def progress_bar(desc: str) -> Tuple[Callable[[float, str], None], Callable[[], None]]:
    from tqdm import tqdm

    bar = tqdm(total=100, desc=desc, file=sys.stderr, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")

    def update(fraction: float, message: str) -> None:
        bar.n = round(fraction * 100, 1)
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return update, bar.close


def run_job(fn, **kwargs):
    """Run an inference job; returns (result, exit code).

    Ctrl-C arrives as KeyboardInterrupt inside the job, whose cleanup removes
    the temporary files; output problems (an ``OSError`` the CLI's generic
    handler would not word) are printed as one line.
    """
    from ..jobs import Cancelled, OutputError

    try:
        return fn(**kwargs), 0
    except Cancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return None, 130
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 1


def run_with_bar(desc: str, fn: Callable[..., Any], **kwargs: Any) -> Tuple[Any, int]:
    """:func:`run_job` with a progress bar called ``desc`` passed as ``progress`` and closed however it ends.

    Every inference command runs its job this way; one place keeps the bar from outliving the job.
    """
    update, close = progress_bar(desc)
    try:
        return run_job(fn, progress=update, **kwargs)
    finally:
        close()


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
        from tqdm import tqdm

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
