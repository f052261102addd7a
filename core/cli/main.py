"""The headless trainer: ``python -m core.cli <command> --help``.

Commands live in ``core/cli/cmd_<group>.py``; each module's ``register(subparsers)``
adds its sub-commands, so adding a command is one module and one entry below.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from .. import __version__
from . import cmd_area, cmd_data, cmd_demo, cmd_models, cmd_predict, cmd_stack, cmd_train, cmd_trust

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
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # Errors meant for the user carry a readable message; no traceback unless -v.
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
