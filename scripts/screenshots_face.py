"""Screenshots of the QGIS face: the dock with layers, the comparison with its table, the training dialog.

``scripts/screenshots.py`` runs the functions of :data:`FACE_SHOTS` (each ``shot(out_dir) -> png path``)
and the Sentinel-2 chain of ``screenshots_s2_chain.py`` (``make screenshots``).

Everything shown is real: a synthetic scene written by ``core.data.synthetic``,
the shipped checkpoints when ``resources/models`` has them (else tiny ones
trained here with the headless trainer, a few minutes on a laptop CPU), the
plugin's own widgets driven through their buttons, and the training dialog fed
the events a real ``--progress jsonl`` run printed.

The Sentinel-2 chain (``screenshots_s2_chain.shot_s2_product_chain``) needs 4-band networks (B02,
B03, B04, B08 jointly): the first 4-band RAMS and building / road UNet++ found
in ``--models DIR`` or ``resources/models``, else tiny ones trained here on a
world-v2 dataset (then the picture says so in its window title). Its products
are real ``.SAFE`` folders (JPEG 2000 bands, SCL, MTD_MSIL2A.xml) written from a
world-v2 scene by ``tests/s2_fixtures.py``, the project's product writer.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "s2_taskdriven_sr"
WORK_ENV = "S2SR_SCREENSHOT_WORK"
SHIPPED = {"baseline": "rams_baseline.safetensors", "taskdriven": "rams_taskdriven.safetensors",
           "buildings": "unetpp_buildings.safetensors", "roads": "unetpp_roads.safetensors"}


# --------------------------------------------------------------------------- QGIS, plugin package, interface


def ensure_app():
    """The running QgsApplication, or a new one (GUI enabled; offscreen with QT_QPA_PLATFORM)."""
    from qgis.core import QgsApplication

    app = QgsApplication.instance()
    if app is None:
        app = QgsApplication([], True)
        app.initQgis()
        ensure_app.keep = app  # the application must outlive this call
    from qgis.PyQt.QtGui import QFont

    font = QFont(app.font())
    font.setPointSize(9)  # QGIS's usual UI size (the offscreen platform defaults to 12 pt)
    app.setFont(font)
    return app


def face():
    """The repository as package ``s2_taskdriven_sr`` (the plugin's own name), so ``ui`` finds ``core``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if PACKAGE not in sys.modules:
        pkg = types.ModuleType(PACKAGE)
        pkg.__path__ = [str(ROOT)]
        sys.modules[PACKAGE] = pkg
    return lambda name: importlib.import_module(f"{PACKAGE}.ui.{name}")


class ShotWindow:
    """A QGIS-like main window: layer tree on the left, map in the middle, docks on the right.

    It also plays QGIS's interface object (``iface``) for the plugin's widgets.
    """

    def __init__(self, width: int = 1500, height: int = 900) -> None:
        from qgis.core import QgsLayerTreeModel, QgsProject
        from qgis.gui import QgsLayerTreeMapCanvasBridge, QgsLayerTreeView, QgsMapCanvas, QgsMessageBar
        from qgis.PyQt.QtCore import Qt
        from qgis.PyQt.QtWidgets import QDockWidget, QMainWindow, QVBoxLayout, QWidget

        self.window = QMainWindow()
        self.window.setWindowTitle("QGIS")
        self.window.resize(width, height)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        self.bar = QgsMessageBar()
        self.canvas = QgsMapCanvas()
        self.canvas.setCanvasColor(Qt.GlobalColor.white)
        lay.addWidget(self.bar)
        lay.addWidget(self.canvas, 1)
        self.window.setCentralWidget(central)
        root = QgsProject.instance().layerTreeRoot()
        self.bridge = QgsLayerTreeMapCanvasBridge(root, self.canvas)
        self.model = QgsLayerTreeModel(root)
        self.model.setFlag(QgsLayerTreeModel.Flag.AllowNodeChangeVisibility)
        self.tree = QgsLayerTreeView()
        self.tree.setModel(self.model)
        legend = QDockWidget("Layers")
        legend.setObjectName("Layers")
        legend.setWidget(self.tree)
        self.window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, legend)
        self.legend = legend

    # the parts of QgisInterface the plugin uses
    def mapCanvas(self):  # noqa: N802 - QGIS API
        return self.canvas

    def mainWindow(self):  # noqa: N802 - QGIS API
        return self.window

    def messageBar(self):  # noqa: N802 - QGIS API
        return self.bar

    def addDockWidget(self, area, dock):  # noqa: N802 - QGIS API
        self.window.addDockWidget(area, dock)

    def removeDockWidget(self, dock):  # noqa: N802 - QGIS API
        self.window.removeDockWidget(dock)

    def createNewMapCanvas(self, name):  # noqa: N802 - QGIS API: the plugin then docks its own canvas
        return None

    def closeMapCanvas(self, name):  # noqa: N802 - QGIS API
        return None

    def show(self) -> None:
        self.window.show()
        settle()

    def close(self) -> None:
        self.window.close()
        self.window.deleteLater()
        settle(0.2)


def settle(seconds: float = 0.5) -> None:
    from qgis.PyQt.QtCore import QCoreApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.01)


def wait_for(condition: Callable[[], bool], timeout: float = 600.0) -> None:
    from qgis.PyQt.QtCore import QCoreApplication

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("a screenshot step took too long")
        QCoreApplication.processEvents()
        time.sleep(0.02)


def render(*canvases) -> None:
    for c in canvases:
        c.refresh()
    settle(0.3)
    for c in canvases:
        c.waitWhileRendering()
    settle(0.3)


def save_grab(widget, out_dir: Path, name: str) -> Path:
    """The picture of ``widget`` saved as ``out_dir/name`` (the folder made when missing)."""
    out = Path(out_dir) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    widget.grab().save(str(out), "PNG", 0)
    return out


def grab_dialog(dialog, out_dir: Path, name: str) -> Path:
    """Let ``dialog`` settle, save its picture as ``out_dir/name`` and close it."""
    settle()
    out = save_grab(dialog, out_dir, name)
    dialog.close()
    dialog.deleteLater()
    settle(0.2)
    return out


# --------------------------------------------------------------------------- data and models


@dataclass
class ShotData:
    revisits: List[Path]
    reference: Path
    masks: Dict[str, Path]
    models: Dict[str, Path]
    events: Optional[Path]
    work: Path
    models_dir: Optional[Path] = None  # where 4-band checkpoints are looked for first (``--models``)


def run(cmd: List[str], log: Path) -> None:
    with open(log, "ab") as fh:
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=fh, stderr=subprocess.STDOUT)


def _train_tiny(work: Path) -> Dict[str, Path]:
    """Tiny segmentation and RAMS networks trained here (minutes on a CPU), with recorded progress."""
    py = sys.executable
    data = work / "data"
    log = work / "train.log"
    if not (data / "split.json").is_file():
        run([py, "-m", "core.cli", "synth", "--out", str(data), "--scenes", "8", "--size", "144",
              "--frames", "3"], log)
    for target in ("buildings", "roads"):
        if not (work / f"seg_{target}" / "best.safetensors").is_file():
            run([py, "-m", "core.cli", "train", f"resources/configs/tiny_segmentation_{target}.yaml",
                  "--set", f"data.root={data}", "--set", "epochs=6", "--set", "data.samples_per_epoch=16",
                  "--out", str(work / f"seg_{target}"), "--progress", "none"], log)
    for recipe in ("baseline", "taskdriven"):
        if not (work / f"rams_{recipe}" / "best.safetensors").is_file():
            with open(work / f"rams_{recipe}.jsonl", "wb") as fh:
                subprocess.run([py, "-m", "core.cli", "train", f"resources/configs/tiny_rams_{recipe}.yaml",
                                "--set", f"data.root={data}", "--set", "epochs=10",
                                "--set", "data.samples_per_epoch=16",
                                "--set", f"seg_nets.buildings={work / 'seg_buildings' / 'best.safetensors'}",
                                "--set", f"seg_nets.roads={work / 'seg_roads' / 'best.safetensors'}",
                                "--out", str(work / f"rams_{recipe}"), "--progress", "jsonl", "--no-resume"],
                               cwd=ROOT, check=True, stdout=fh)
    return {"baseline": work / "rams_baseline" / "best.safetensors",
            "taskdriven": work / "rams_taskdriven" / "best.safetensors",
            "buildings": work / "seg_buildings" / "best.safetensors",
            "roads": work / "seg_roads" / "best.safetensors"}


def prepare(work: Optional[Path] = None, models_dir: Optional[Path] = None) -> ShotData:
    """A synthetic scene plus checkpoints (shipped, else trained tiny here); cached in ``work``."""
    work = Path(work or os.environ.get(WORK_ENV) or Path(tempfile.gettempdir()) / "s2sr_screenshots")
    work.mkdir(parents=True, exist_ok=True)
    shipped = ROOT / "resources" / "models"
    if all((shipped / name).is_file() for name in SHIPPED.values()):
        models = {k: shipped / v for k, v in SHIPPED.items()}
    else:
        models = _train_tiny(work)
    events = work / "rams_taskdriven.jsonl"
    if not events.is_file():
        _train_tiny(work)
    frames, bands = 3, 1
    try:
        sys.path.insert(0, str(ROOT))
        from core.models.zoo import read_card

        card = read_card(models["baseline"])
        frames, bands = int(card.frames or 3), len(card.bands)
    except Exception:
        pass
    from core.data.scene import write_scene

    if bands == 4:  # the shipped networks: a world-v2 village in B02, B03, B04, B08
        scene_dir = work / f"scene540_v2_t{frames}"
        if not (scene_dir / "hr.tif").is_file():
            from core.data.synthetic.world_v2 import make_world_scene

            write_scene(make_world_scene(size_hr=540, frames=frames, seed=11, name="demo_scene",
                                         object_free=False), scene_dir)
    else:  # tiny one-band stand-ins trained here on towns
        scene_dir = work / f"scene540_t{frames}"
        if not (scene_dir / "hr.tif").is_file():
            from core.data.synthetic.towns import make_scene

            write_scene(make_scene(size_hr=540, frames=frames, seed=7, name="demo_scene"), scene_dir)
    revisits = sorted((scene_dir / "lr").glob("*.tif"))
    return ShotData(revisits, scene_dir / "hr.tif",
                    {t: scene_dir / "masks" / f"{t}.tif" for t in ("buildings", "roads")}, models, events, work,
                    Path(models_dir) if models_dir else None)


def light_data(work: Optional[Path] = None, models_dir: Optional[Path] = None) -> ShotData:
    """Only a work folder and where 4-band models are: all the Sentinel-2 chain needs (no 1-band training)."""
    work = Path(work or os.environ.get(WORK_ENV) or Path(tempfile.gettempdir()) / "s2sr_screenshots")
    work.mkdir(parents=True, exist_ok=True)
    return ShotData([], work / "none", {}, {}, None, work, Path(models_dir) if models_dir else None)


#: Shots that need only :func:`light_data`.
LIGHT_SHOTS = ("s2_product_chain",)


def _fresh_project():
    from qgis.core import QgsProject, QgsSettings

    QgsProject.instance().clear()
    QgsSettings().remove(PACKAGE)


def _load(path: Path, name: str):
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(path), name)
    if not layer.isValid():
        raise RuntimeError(f"{path} did not open")
    QgsProject.instance().addMapLayer(layer)
    return layer


def _zoom(canvas, layer, fraction: float = 0.55) -> None:
    ext = layer.extent()
    c = ext.center()
    w, h = ext.width() * fraction / 2, ext.height() * fraction / 2
    from qgis.core import QgsRectangle

    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(QgsRectangle(c.x() - w, c.y() - h, c.x() + w, c.y() + h))


# --------------------------------------------------------------------------- the shots


def start(data: Optional[ShotData]):
    """The QApplication, the plugin's ``ui`` importer and the shot's data (prepared when not given)."""
    ensure_app()
    return face(), data or prepare()


def docked_window(ui, width: int = 1500, height: int = 900):
    """A fresh project and a :class:`ShotWindow` with the plugin's dock on its right: ``(window, dock module, dock)``."""
    from qgis.PyQt.QtCore import Qt

    _fresh_project()
    win = ShotWindow(width, height)
    dock_mod = ui("dock")
    dock = dock_mod.SRDockWidget(win, parent=win.window)
    win.window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    return win, dock_mod, dock


def grab_window(win, dock, out_dir: Path, name: str, *views) -> Path:
    """Render the main map (and ``views``), save the window's picture as ``out_dir/name``, close dock and window."""
    render(win.canvas, *views)
    out = save_grab(win.window, out_dir, name)
    dock.shutdown()
    win.close()
    return out


def _zoomed_picture(win, dock, out_dir: Path, name: str, layer, fraction: float = 0.55, views=()) -> Path:
    """Zoom the main map to ``layer``, tidy the layer tree and message bar, then :func:`grab_window`."""
    settle()
    _zoom(win.canvas, layer, fraction)
    win.tree.expandAll()
    win.bar.clearWidgets()
    return grab_window(win, dock, out_dir, name, *views)


def _revisit_name(path: Path) -> str:
    """``S2 t00`` for a 4-band revisit (its bands are named inside), ``S2 B8 t00`` for a one-band one."""
    import rasterio

    with rasterio.open(path) as src:
        return f"S2 {path.stem}" if src.count == 4 else f"S2 B8 {path.stem}"


def _all_bands_if_four(dock, layers) -> None:
    """Tick 'All 10 m bands' when the revisits hold B02, B03, B04 and B08 (the shipped networks take them jointly)."""
    if layers and layers[0].bandCount() == 4:
        dock.sr.more["all_bands"].setChecked(True)


def shot_dock(out_dir: Path, data: Optional[ShotData] = None) -> Path:
    """The dock after a super-resolution and a segmentation, with the layers on the map."""
    ui, data = start(data)
    win, dock_mod, dock = docked_window(ui)
    from qgis.core import QgsProject

    dock.setMinimumWidth(450)
    layers = [_load(p, _revisit_name(p)) for p in data.revisits]
    _all_bands_if_four(dock, layers)
    for m in ("baseline", "buildings", "roads"):
        dock.add_checkpoint(str(data.models[m]))
    dock.mode_combo.setCurrentIndex(dock_mod.REVISITS)
    dock.set_revisits(layers)
    dock.select_checkpoint(str(data.models["taskdriven"]) if "taskdriven" in data.models else str(data.models["baseline"]))
    dock.out_dir.setFilePath(str(data.work / "outputs"))
    win.show()
    dock.run_button.click()
    wait_for(lambda: not dock.runner.busy())
    dock.segment_button.click()
    wait_for(lambda: not dock.runner.busy())
    for lyr in layers:
        node = QgsProject.instance().layerTreeRoot().findLayer(lyr.id())
        if node is not None:
            node.setItemVisibilityChecked(False)
    dock.tabs.setCurrentIndex(0)
    return _zoomed_picture(win, dock, out_dir, "dock_with_layers.png", layers[0])


def shot_compare(out_dir: Path, data: Optional[ShotData] = None) -> Path:
    """Baseline (main map) vs task-driven (synced view) with the metric table filled."""
    ui, data = start(data)
    win, dock_mod, dock = docked_window(ui, 1920, 1000)
    from qgis.core import QgsProject
    from qgis.PyQt.QtCore import Qt

    layers = [_load(p, _revisit_name(p)) for p in data.revisits]
    _all_bands_if_four(dock, layers)
    hr = _load(data.reference, "HR reference")
    masks = {t: _load(p, f"OSM {t} (raster)") for t, p in data.masks.items()}
    for m in ("baseline", "taskdriven", "buildings", "roads"):
        dock.add_checkpoint(str(data.models[m]))
    dock.mode_combo.setCurrentIndex(dock_mod.REVISITS)
    dock.set_revisits(layers)
    dock.out_dir.setFilePath(str(data.work / "outputs"))
    panel = dock.compare
    panel.baseline_combo.setCurrentIndex(panel.baseline_combo.findData(str(Path(data.models["baseline"]).resolve())))
    panel.taskdriven_combo.setCurrentIndex(
        panel.taskdriven_combo.findData(str(Path(data.models["taskdriven"]).resolve())))
    panel.reference_combo.setLayer(hr)
    panel.buildings_combo.setLayer(masks["buildings"])
    panel.roads_combo.setLayer(masks["roads"])
    dock.tabs.setCurrentWidget(panel)
    root = QgsProject.instance().layerTreeRoot()
    for lyr in layers + [hr] + list(masks.values()):
        root.findLayer(lyr.id()).setItemVisibilityChecked(False)
    win.show()
    panel.compare_button.click()
    wait_for(lambda: not dock.runner.busy())
    dock.setMinimumWidth(450)
    if panel.view is not None and panel.view.dock is not None:
        win.window.splitDockWidget(dock, panel.view.dock, Qt.Orientation.Horizontal)
        panel.view.dock.setWindowTitle("Task-driven SR (synced with the main map)")
        panel.view.dock.setMinimumWidth(600)
    win.window.resizeDocks([win.legend], [240], Qt.Orientation.Horizontal)
    if panel.view is not None and panel.view.dock is not None:
        win.window.resizeDocks([dock, panel.view.dock], [450, 620], Qt.Orientation.Horizontal)
    return _zoomed_picture(win, dock, out_dir, "compare.png", hr, 0.7, [panel.view.canvas] if panel.view else [])


def shot_train_dialog(out_dir: Path, data: Optional[ShotData] = None) -> Path:
    """The training dialog showing a recorded task-driven run (losses, dynamic weights, validation)."""
    ui, data = start(data)
    mod = ui("train_dialog")
    dlg = mod.TrainDialog(None)
    dlg.data_dir.setFilePath(str(data.work / "data"))
    dlg.select_preset("tiny_rams_taskdriven")
    dlg.seg_buildings.setFilePath(str(data.models["buildings"]))
    dlg.seg_roads.setFilePath(str(data.models["roads"]))
    dlg.epochs_spin.setValue(10)
    dlg.samples_spin.setValue(16)
    dlg.out_dir.setFilePath(str(data.work / "rams_taskdriven"))
    events = mod.read_events(data.events) if data.events and Path(data.events).is_file() else []
    dlg.show()
    settle()
    # replay all but the last events so the picture shows a run in progress, ETA and all
    cut = next((i for i, e in enumerate(events) if e.get("event") == "step" and e.get("epoch") == 9), len(events))
    dlg.replay(events[:cut])
    dlg.status_label.setText("training... (replayed from a recorded run)")
    dlg.start_button.setEnabled(False)
    dlg.cancel_button.setEnabled(True)
    return grab_dialog(dlg, out_dir, "train_dialog.png")


#: The shots of this module (the Sentinel-2 chain is in screenshots_s2_chain.py); scripts/screenshots.py runs them.
FACE_SHOTS: List[Callable[..., Path]] = [shot_dock, shot_compare, shot_train_dialog]
