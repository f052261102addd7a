"""What every long CLI command shares: a progress bar on stderr and one-line endings for cancel and output errors."""

from __future__ import annotations

import sys
from typing import Callable, Tuple

__all__ = ["progress_bar", "run_job"]


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
