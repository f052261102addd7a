"""``make demo``: the core demo pipeline, then a QGIS project that opens every layer grouped and styled.

The pipeline itself lives in ``core/demo.py`` (no QGIS); this script adds the
``demo.qgz`` project with QGIS's own Python API, headless, using the same
styles as the plugin's dock (``ui/styles.py``), so what the user opens is what
the plugin would show. Exits non-zero when any step fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.evaluation.showcase import BICUBIC, BICUBIC_TITLE, SR_TITLES, DemoNotReady, DemoResult, run_demo  # noqa: E402


def write_project(result: DemoResult, path: Path) -> Path:
    """A .qgz with groups Scene / bicubic / one per SR model: same stretch for all images, masks coloured.

    Rasters naming B02/B03/B04 open in true colour with false colour one click
    away (the dock's own styles), all with the HR image's stretch so that
    brightness differences are real; single-band ones in grey.
    """
    from qgis.core import QgsProject, QgsRasterLayer

    from ui.styles import add_s2_styles, apply_gray_stretch, layer_stretch, style_mask

    project = QgsProject()
    root = project.layerTreeRoot()

    def add(file: Path, name: str, group, visible: bool = True) -> QgsRasterLayer:
        layer = QgsRasterLayer(str(file), name)
        if not layer.isValid():
            raise RuntimeError(f"QGIS cannot open {file}")
        project.addMapLayer(layer, False)
        group.addLayer(layer).setItemVisibilityChecked(visible)
        return layer

    hr_group = root.addGroup("Reference (HR, exact masks)")
    hr = add(result.scene_dir / "hr.tif", "HR image", hr_group, visible=False)
    colour = add_s2_styles(hr)
    grey = None if colour else layer_stretch(hr)

    def style_image(layer: QgsRasterLayer) -> None:
        if colour is None or add_s2_styles(layer, colour) is None:
            apply_gray_stretch(layer, grey or layer_stretch(layer), layer.bandCount())

    for target in ("buildings", "roads"):
        mask_file = result.scene_dir / "masks" / f"{target}.tif"
        if mask_file.is_file():
            style_mask(add(mask_file, f"true {target}", hr_group, visible=False), target)
    titles = {BICUBIC: BICUBIC_TITLE, **SR_TITLES}
    for role in reversed(list(titles)):  # the first model ends on top
        group = root.insertGroup(0, titles[role])
        for target in ("buildings", "roads"):
            style_mask(add(result.masks[role][target], f"{target} ({role})", group), target)
        style_image(add(result.outputs[role], titles[role], group))
        group.setExpanded(role == "rams_taskdriven")
        group.setItemVisibilityChecked(role == "rams_taskdriven")
    lr_group = root.addGroup("Sentinel-2-like revisits (LR)")
    for i, lr in enumerate(sorted((result.scene_dir / "lr").glob("*.tif"))):
        style_image(add(lr, f"LR {lr.stem}", lr_group, visible=i == 0))
    lr_group.setExpanded(False)
    if not project.write(str(path)):
        raise RuntimeError(f"QGIS could not write the project {path}: {project.error()}")
    return path


def write_project_headless(result: DemoResult, path: Path) -> Path:
    """Start a QGIS application without GUI around :func:`write_project` (the script's own process)."""
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    try:
        return write_project(result, path)
    finally:
        app.exitQgis()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_output", help="output folder")
    parser.add_argument("--models", default=str(ROOT / "resources" / "models"), help="starter checkpoints")
    parser.add_argument("--seed", type=int, default=11, help="seed of the synthetic scene")
    parser.add_argument("--size", type=int, default=384, help="HR size in pixels (multiple of 3)")
    parser.add_argument("--no-project", action="store_true", help="skip the QGIS project")
    parser.add_argument("--simulated", action="store_true",
                        help="revisits that differ only by noise and shift (default: real-world-like dates with "
                             "phenology, haze, clouds)")
    args = parser.parse_args()
    try:
        result = run_demo(Path(args.out), Path(args.models), seed=args.seed, size_hr=args.size,
                          real_world=not args.simulated)
    except DemoNotReady as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    project = None if args.no_project else write_project_headless(result, result.out_dir / "demo.qgz")
    files: Dict[str, Path] = {"scene folder": result.scene_dir}
    files.update({(BICUBIC_TITLE if role == BICUBIC else f"SR {role}"): path for role, path in result.outputs.items()})
    files.update({"metrics table": result.table_md, "side-by-side figure": result.figure})
    if project:
        files["QGIS project"] = project
    print(f"\nDemo finished in {result.seconds:.0f} s:")
    for name, path in files.items():
        if not Path(path).exists():
            print(f"error: {name} {path} was not written", file=sys.stderr)
            return 1
        print(f"  {name:<22} {path}")
    print("\n" + result.table_md.read_text(encoding="utf-8"))
    if project:
        print(f"Open it in QGIS:  qgis {project}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
