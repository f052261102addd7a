"""The evaluation scripts' way to fail: one line for the user and a non-zero exit, the traceback only with -v."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Tuple, Type


def run_reporting_errors(run: Callable[[argparse.Namespace], int], args: argparse.Namespace,
                         errors: Tuple[Type[BaseException], ...] = (OSError, ValueError)) -> int:
    """``run(args)``; an expected error (bad input, unreadable file) becomes ``error: ...`` on stderr and exit 1."""
    try:
        return run(args)
    except errors as exc:
        if getattr(args, "verbose", False):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
