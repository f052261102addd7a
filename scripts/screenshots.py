"""``make screenshots``: every picture of the plugin shown in the README, rendered offscreen into docs/img/.

Run:  QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py [--out docs/img] [--work DIR] [--only ...]
      [--models DIR]   (4-band checkpoints for the Sentinel-2 chain; else resources/models, else tiny ones trained)

The dock, comparison, training-dialog and Sentinel-2 chain pictures come from
``scripts/screenshots_face.py`` (:data:`FACE_SHOTS`, with the data and
checkpoints its ``prepare()`` makes or reuses); this script adds the
*Install dependencies* dialog, the first window a user without PyTorch sees.
Each picture is a ``grab()`` of the plugin's real widget.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from screenshots_face import FACE_SHOTS as FACE_ONLY_SHOTS  # noqa: E402
from screenshots_face import (  # noqa: E402
    LIGHT_SHOTS,
    ROOT,
    ensure_app,
    face,
    grab_dialog,
    light_data,
    prepare,
)
from screenshots_s2_chain import shot_s2_product_chain  # noqa: E402

#: Every shot of the QGIS face, the Sentinel-2 chain last.
FACE_SHOTS = [*FACE_ONLY_SHOTS, shot_s2_product_chain]

#: What the Install dependencies picture shows as missing: the two packages a fresh QGIS never has.
SHOWN_MISSING = ("torch", "segmentation_models_pytorch")


def shot_install_dialog(out_dir: Path) -> Path:
    """The Install dependencies dialog as QGIS's own Python (without PyTorch) opens it, before Install.

    The packages are made unimportable for the moment of the picture (``None``
    in ``sys.modules``, Python's switch for "cannot be imported"), because this
    environment has them all and the dialog would otherwise say so; and the
    interpreter is the one the dialog finds when it runs inside QGIS, whose
    ``sys.executable`` is the QGIS program rather than a virtual environment.
    """
    ensure_app()
    ui = face()
    interpreter = ui("install.interpreter")
    dialog_mod = ui("install.dialog")
    saved = {name: sys.modules.get(name) for name in SHOWN_MISSING}
    try:
        for name in SHOWN_MISSING:
            sys.modules[name] = None  # type: ignore[assignment]
        python = interpreter.find_python_interpreter(executable="") or sys.executable
        dialog = dialog_mod.InstallDialog(python=python)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    dialog.show()
    return grab_dialog(dialog, out_dir, "install_dialog.png")


#: Pictures that need no data: they run without ``prepare()`` (which may train tiny models first).
STANDALONE_SHOTS: List[Callable[[Path], Path]] = [shot_install_dialog]


def _name(shot: Callable[..., Path]) -> str:
    return shot.__name__.removeprefix("shot_")


def main(argv: Optional[List[str]] = None) -> int:
    names = [_name(s) for s in FACE_SHOTS + STANDALONE_SHOTS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"), help="folder for the PNGs")
    parser.add_argument("--work", default=None, help="work folder for data and models (kept for re-runs)")
    parser.add_argument("--only", default=None, help=f"comma-separated shot names ({', '.join(names)})")
    parser.add_argument("--models", default=None,
                        help="folder searched first for 4-band checkpoints (the Sentinel-2 chain picture)")
    args = parser.parse_args(argv)
    wanted = {s.strip() for s in args.only.split(",")} if args.only else set(names)
    unknown = wanted - set(names)
    if unknown:
        parser.error(f"unknown shot(s): {', '.join(sorted(unknown))}")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    ensure_app()
    out = Path(args.out)
    written: Dict[str, Path] = {}
    for shot in STANDALONE_SHOTS:
        if _name(shot) in wanted:
            written[_name(shot)] = shot(out)
    face_shots = [s for s in FACE_SHOTS if _name(s) in wanted]
    if face_shots:
        work = Path(args.work) if args.work else None
        light = all(_name(s) in LIGHT_SHOTS for s in face_shots)
        data = light_data(work, args.models) if light else prepare(work, args.models)
        for shot in face_shots:
            written[_name(shot)] = shot(out, data)
    for path in written.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
