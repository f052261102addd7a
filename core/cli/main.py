"""The headless trainer: ``python -m core.cli <command> --help``.

Commands live in ``core/cli/cmd_<group>.py``; each module's ``register(subparsers)``
adds its sub-commands, so adding a command is one module and one entry below.

Every failure ends as one line on stderr, ``error: <what is wrong>``, and a
non-zero exit status (1 for bad input or output, 70 for a bug); the traceback
is printed only with ``-v``. Messages are written at the source (the job that
knows which file and which value is wrong); this module only keeps them short.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Optional, Sequence, Tuple

from .. import __version__
from ..jobs import Cancelled, JobError
from . import cmd_area, cmd_data, cmd_demo, cmd_models, cmd_predict, cmd_stack, cmd_train, cmd_trust
from .progress import fresh_line

#: Command modules, in the order their commands appear in ``--help``.
COMMAND_MODULES = (cmd_data, cmd_stack, cmd_models, cmd_predict, cmd_trust, cmd_train, cmd_demo, cmd_area)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.cli",
        description="Task-driven Sentinel-2 super-resolution: data, training, evaluation and inference.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:  # GDAL's own chatter (each failed block read) would bury the one line that matters
        logging.getLogger("rasterio").setLevel(logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous = _terminate_like_interrupt()
    try:
        return int(args.func(args) or 0)
    except Terminated:
        fresh_line()
        print("terminated (SIGTERM); stopped cleanly, no partial output left", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        fresh_line()
        print("interrupted", file=sys.stderr)
        return 130
    except Cancelled as exc:
        fresh_line()
        print(f"cancelled: {one_line(exc)}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every error ends as one line (the traceback with -v)
        if args.verbose:
            raise
        fresh_line()
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 1 if isinstance(exc, user_error_types()) else EXIT_INTERNAL
    finally:
        _restore_sigterm(previous)


#: Exit status after SIGTERM: 128 + 15, what a shell reports for a process the signal ended.
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so every job cleans up (temporary files) as it does for Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _terminate_like_interrupt() -> object:
    """Make SIGTERM (a batch scheduler's or ``kill``'s stop) unwind like Ctrl-C; returns the handler it replaced.

    Python's default for SIGTERM is to die on the spot: no ``finally``, so the
    hidden ``.partial-*`` output stays and nothing is printed. Only the main
    thread may set handlers; elsewhere (e.g. a test runner's thread) nothing changes.
    """
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        return None


def _restore_sigterm(previous: object) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


#: Exit status of an error the code did not foresee (a bug to report), as BSD's EX_SOFTWARE.
EXIT_INTERNAL = 70


def user_error_types() -> Tuple[type, ...]:
    """Errors whose message is written for the analyst: the project's, bad values, files, GDAL's.

    rasterio's errors are included only when rasterio was imported (no GDAL
    error can have happened otherwise), so ``--help`` stays free of it.
    """
    types = [JobError, ValueError, OSError, RuntimeError, MemoryError]
    rio = sys.modules.get("rasterio.errors")
    if rio is not None:
        types.append(rio.RasterioError)
    err = sys.modules.get("rasterio._err")
    if err is not None and hasattr(err, "CPLE_BaseError"):
        types.append(err.CPLE_BaseError)
    return tuple(types)


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (GDAL and torch messages may span several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def describe_error(exc: BaseException) -> str:
    """What the analyst reads after ``error:``: the message, or for a bug its kind and a hint."""
    if isinstance(exc, MemoryError):
        return f"not enough memory ({one_line(exc)}); choose a smaller area, tile or batch"
    if isinstance(exc, user_error_types()):
        return one_line(exc)
    return (f"unexpected {type(exc).__name__}: {one_line(exc)} (a bug: rerun with -v for the details and "
            "report them)")
