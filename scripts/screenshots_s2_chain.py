"""Screenshot of the Sentinel-2 chain: products -> revisit stack -> 4-band super-resolution -> segmentation.

Part of the screenshots (``scripts/screenshots.py`` runs every shot); the QGIS
window, data and helpers come from ``screenshots_face.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional

from screenshots_face import (  # noqa: E402
    ROOT,
    ShotData,
    docked_window,
    grab_window,
    run,
    settle,
    start,
    wait_for,
)

RGBN = ("B02", "B03", "B04", "B08")
#: Dates of the chain's products; the second one is mostly under cloud (its SCL says so).
CHAIN_DATES = ("2023-05-12", "2023-05-22", "2023-06-01", "2023-06-11")
CLOUDY_DATE = "2023-05-22"
#: The world-v2 scene of the chain: the seed whose 1.8 km hold the most buildings among the first dozen.
CHAIN_SEED = 5
#: Half the height of the map view (m): a village at about 5 screen pixels per 3.33 m pixel.
CHAIN_HALF_VIEW = 400.0


def _four_band_models(folders: List[Path]) -> Optional[Dict[str, Path]]:
    """The first 4-band RAMS and building / road networks found in ``folders`` (cards read, no weights)."""
    from core.models.zoo import read_card

    found: Dict[str, Path] = {}
    for folder in folders:
        paths = sorted(Path(folder).glob("*.safetensors"), key=lambda q: ("taskdriven" not in q.stem, q.name)) \
            if Path(folder).is_dir() else []
        for path in paths:  # a task-driven network first: the one the chain is meant to show
            try:
                card = read_card(path)
            except Exception:
                continue
            if [str(b) for b in (card.bands or [])] != list(RGBN):
                continue
            key = "sr" if card.task == "sr" and (card.frames or 1) > 1 else card.target
            if key in ("sr", "buildings", "roads"):
                found.setdefault(key, path)
    return found if len(found) == 3 else None


def _train_tiny_rgbn(work: Path) -> Dict[str, Path]:
    """Tiny 4-band networks trained here on world v2 (minutes on a CPU): stand-ins until 4-band weights ship."""
    py = sys.executable
    data = work / "data_v2"
    log = work / "train_rgbn.log"
    bands = "data.bands=[B02,B03,B04,B08]"
    if not (data / "split.json").is_file():
        run([py, "-m", "core.cli", "synth", "--world", "v2", "--out", str(data), "--scenes", "8", "--size", "192",
              "--frames", "3", "--object-free-share", "0"], log)
    for target in ("buildings", "roads"):
        if not (work / f"rgbn_seg_{target}" / "best.safetensors").is_file():
            run([py, "-m", "core.cli", "train", f"resources/configs/tiny_segmentation_{target}.yaml",
                  "--set", f"data.root={data}", "--set", bands, "--set", "epochs=12",
                  "--set", "data.samples_per_epoch=32", "--out", str(work / f"rgbn_seg_{target}"),
                  "--progress", "none"], log)
    if not (work / "rgbn_rams" / "best.safetensors").is_file():
        run([py, "-m", "core.cli", "train", "resources/configs/tiny_rams_taskdriven.yaml",
              "--set", f"data.root={data}", "--set", bands, "--set", "epochs=12",
              "--set", "data.samples_per_epoch=32",
              "--set", f"seg_nets.buildings={work / 'rgbn_seg_buildings' / 'best.safetensors'}",
              "--set", f"seg_nets.roads={work / 'rgbn_seg_roads' / 'best.safetensors'}",
              "--out", str(work / "rgbn_rams"), "--progress", "none", "--no-resume"], log)
    return {"sr": work / "rgbn_rams" / "best.safetensors",
            "buildings": work / "rgbn_seg_buildings" / "best.safetensors",
            "roads": work / "rgbn_seg_roads" / "best.safetensors"}


def _chain_products(work: Path, frames: int) -> Dict[str, object]:
    """Sentinel-2 L2A products of one world-v2 scene, one per date (one mostly cloudy), and where its town is."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from core.data.synthetic.world_v2 import make_world_scene
    from tests.s2_fixtures import ORIGIN, make_safe, to_dn

    folder = work / f"products_seed{CHAIN_SEED}"
    scene = make_world_scene(size_hr=540, frames=len(CHAIN_DATES), seed=CHAIN_SEED, object_free=False,
                             name="chain")
    size = int(scene.lr.shape[-1])
    safes = sorted(folder.glob("*.SAFE")) if folder.is_dir() else []
    if len(safes) != len(CHAIN_DATES):
        folder.mkdir(parents=True, exist_ok=True)
        yy, xx = np.mgrid[0:size // 2, 0:size // 2]
        for t, day in enumerate(CHAIN_DATES):
            refl = scene.lr[t].copy()
            scl = np.full((size // 2, size // 2), 4, np.uint8)
            if day == CLOUDY_DATE:  # a cloud over most of the tile, white in every band, flagged in the SCL
                cloud = np.hypot(yy - size // 4, xx - size // 5) < size / 3.2
                scl[cloud] = 9
                big = np.repeat(np.repeat(cloud, 2, 0), 2, 1)[:size, :size]
                refl[:, big] = 0.6
            bands = {b: to_dn(refl[c]) for c, b in enumerate(RGBN)}
            make_safe(folder, date=day, time=f"0955{t:02d}", bands=bands, scl=scl, size=size)
        safes = sorted(folder.glob("*.SAFE"))
    # the densest building area (HR pixels -> map coordinates on the products' grid)
    mask = scene.masks["buildings"].astype(float)
    k = 90
    c = np.cumsum(np.cumsum(np.pad(mask, ((1, 0), (1, 0))), 0), 1)
    dens = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    r, col = np.unravel_index(int(np.argmax(dens)), dens.shape)
    px = 10.0 / 3.0
    side = mask.shape[0] * px
    margin = min(side / 2, CHAIN_HALF_VIEW * 1.5)  # keep the view on the raster
    cx = min(max((col + k / 2) * px, margin), side - margin)
    cy = min(max((r + k / 2) * px, CHAIN_HALF_VIEW), side - CHAIN_HALF_VIEW)
    centre = (ORIGIN[0] + cx, ORIGIN[1] - cy)
    return {"products": safes, "centre": centre, "frames": frames}


def shot_s2_product_chain(out_dir: Path, data: Optional[ShotData] = None) -> Path:
    """Sentinel-2 products -> Build revisit stack -> Super-resolve all 10 m bands -> true colour + buildings, roads."""
    import shutil

    ui, data = start(data)
    from core.models.zoo import read_card

    models = _four_band_models([p for p in (data.models_dir, ROOT / "resources" / "models") if p])
    stand_in = models is None
    if stand_in:
        models = _train_tiny_rgbn(data.work)
    frames = int(read_card(models["sr"]).frames or 3)
    chain = _chain_products(data.work, frames)
    win, _, dock = docked_window(ui, 1700, 980)
    dialogs = ui("dock.product_dialog")
    from qgis.core import QgsProject, QgsRectangle
    from qgis.PyQt.QtCore import Qt

    dock.setMinimumWidth(430)
    out = data.work / "chain_outputs"
    shutil.rmtree(out, ignore_errors=True)
    dock.out_dir.setFilePath(str(out))
    for key in ("buildings", "roads", "sr"):
        dock.add_checkpoint(str(models[key]))
    dock.select_checkpoint(str(models["sr"]))
    win.show()

    dialog = dock.product_dialog(dialogs.STACK)
    dialog.add_inputs(chain["products"])
    dock.run_product_job(dialog.job())
    wait_for(lambda: not dock.runner.busy())
    stack = dock.layer_combo.currentLayer()
    dock.sr.more["all_bands"].setChecked(True)
    if stack is None or not dock.run_button.isEnabled():
        raise RuntimeError("the stack cannot be super-resolved: " + dock.check_label.text())
    dock.run_button.click()
    wait_for(lambda: not dock.runner.busy())
    sr = dock.last_output
    if sr is None:
        raise RuntimeError("the super-resolution did not add a layer:\n" + dock.log_view.toPlainText())
    dock.vectors_check.setChecked(True)
    dock.segment_button.click()
    wait_for(lambda: not dock.runner.busy())

    root = QgsProject.instance().layerTreeRoot()
    for layer in QgsProject.instance().mapLayers().values():
        node = root.findLayer(layer.id())
        if node is not None and layer.id() != sr.id() and not layer.name().endswith("polygons"):
            node.setItemVisibilityChecked(False)  # the map: the 3.33 m true colour and its objects
    if stack is not None:
        root.findLayer(stack.id()).setItemVisibilityChecked(False)
    dock.tabs.setCurrentIndex(0)
    title = (f"{len(chain['products'])} L2A products \u2192 stack (up to {frames} clearest dates) \u2192 B02-B08 x3 in "
             "one pass \u2192 buildings, roads")
    if stand_in:
        title += " (tiny stand-in networks)"
    win.window.setWindowTitle(title)
    x, y = chain["centre"]
    half = CHAIN_HALF_VIEW
    win.canvas.setDestinationCrs(sr.crs())
    win.canvas.setExtent(QgsRectangle(x - half * 1.2, y - half, x + half * 1.2, y + half))
    win.window.resizeDocks([win.legend], [330], Qt.Orientation.Horizontal)
    win.tree.expandAll()
    win.bar.clearWidgets()
    win.bar.pushMessage("Chain", title)  # the grab has no title bar: the picture says what it shows here
    settle()
    return grab_window(win, dock, out_dir, "s2_product_chain.png")
