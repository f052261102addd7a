"""The CLI's help is light: parsing ``--help`` of every command imports neither PyTorch nor rasterio.

Why a test: the command modules import their engine lazily (``core.lazy``) so
that ``python -m core.cli <command> --help`` answers at once; one top-level
import of an engine module in any command module would make every help page
wait for PyTorch. The check runs in fresh interpreters.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import contextlib, io, json, sys
from core.cli.main import build_parser
parser = build_parser()
commands = sorted(parser._subparsers._group_actions[0].choices)
for argv in [["--help"]] + [[c, "--help"] for c in commands]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        parser.parse_args(argv)
print(json.dumps({"commands": commands,
                  "heavy": sorted(m for m in ("torch", "rasterio", "numpy") if m in sys.modules)}))
"""


def test_every_help_page_is_free_of_torch_and_rasterio():
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(out["commands"]) >= 8, out
    assert out["heavy"] == [], f"parsing the CLI's help imported {out['heavy']}"
