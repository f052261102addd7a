"""Fixtures of the QGIS face tests: the plugin package, tiny GeoTIFFs, tiny real checkpoints.

Everything is real and small: GeoTIFFs in UTM written with rasterio, networks
from ``core.models.zoo`` (RAMS with 8 filters and 1 block, UNet++ "tiny")
saved as safetensors checkpoints with model cards, and QGIS widgets driven
through their public slots in an offscreen QGIS.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
import types
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "s2_taskdriven_sr"
ORIGIN = (500000.0, 6000000.0)
LR_PX = 10.0


def _import_plugin_package() -> types.ModuleType:
    """The repository root as package ``s2_taskdriven_sr`` (so ``ui`` reaches ``core`` relatively)."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    init = ROOT / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location(PACKAGE, init, submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)
        return module
    module = types.ModuleType(PACKAGE)  # no __init__.py yet: a namespace over the repo root
    module.__path__ = [str(ROOT)]
    sys.modules[PACKAGE] = module
    return module


@pytest.fixture
def face(request) -> types.ModuleType:
    """The plugin package (the suite-wide ``plugin_pkg`` fixture when there is one)."""
    try:
        return request.getfixturevalue("plugin_pkg")
    except pytest.FixtureLookupError:
        return _import_plugin_package()


def ui(face, name: str):
    return importlib.import_module(f"{face.__name__}.ui.{name}")


# --------------------------------------------------------------------------- rasters


def smooth_image(h: int, w: int, seed: int, scale: float = 8.0) -> np.ndarray:
    """A smooth NIR-like field in reflectance (0.1..0.4): blurred noise, deterministic."""
    rng = np.random.default_rng(seed)
    small = rng.random((max(2, int(h / scale)) + 2, max(2, int(w / scale)) + 2))
    ys = np.linspace(0, small.shape[0] - 1.001, h)
    xs = np.linspace(0, small.shape[1] - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = small[y0][:, x0] * (1 - fx) + small[y0][:, x0 + 1] * fx
    b = small[y0 + 1][:, x0] * (1 - fx) + small[y0 + 1][:, x0 + 1] * fx
    return (0.1 + 0.3 * (a * (1 - fy) + b * fy)).astype("float32")


def write_tif(path: Path, data: np.ndarray, px: float = LR_PX, crs: str = "EPSG:32633", nodata=None,
              origin=ORIGIN) -> Path:
    data = data if data.ndim == 3 else data[None]
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=data.dtype.name, crs=crs, transform=from_origin(origin[0], origin[1], px, px),
                   nodata=nodata)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


@pytest.fixture
def scene_files(tmp_path) -> Dict[str, object]:
    """Three LR revisits (uint16 DN, 10 m, UTM 33N), an HR reference at 10/3 m and masks on its grid."""
    h, w = 30, 36
    hr = smooth_image(3 * h, 3 * w, seed=1)
    lr = hr.reshape(h, 3, w, 3).mean(axis=(1, 3))
    folder = tmp_path / "scene"
    folder.mkdir()
    revisits = []
    rng = np.random.default_rng(2)
    for i in range(3):
        noisy = lr + rng.normal(0, 0.004, lr.shape)
        revisits.append(write_tif(folder / f"revisit_{i}.tif", (noisy * 1e4).astype("uint16"), nodata=0))
    reference = write_tif(folder / "hr.tif", (hr * 1e4).astype("uint16"), px=LR_PX / 3, nodata=0)
    yy, xx = np.mgrid[0 : 3 * h, 0 : 3 * w]
    buildings = ((yy // 12) % 3 == 0) & ((xx // 12) % 3 == 0)
    roads = (np.abs(yy - 45) < 3) | (np.abs(xx - 60) < 3)
    masks = {
        "buildings": write_tif(folder / "buildings.tif", buildings.astype("uint8"), px=LR_PX / 3),
        "roads": write_tif(folder / "roads.tif", roads.astype("uint8"), px=LR_PX / 3),
    }
    return {"revisits": revisits, "reference": reference, "masks": masks, "size": (h, w), "folder": folder}


# --------------------------------------------------------------------------- checkpoints


def _save(path: Path, model, **card_fields) -> Path:
    from core.models.zoo import ModelCard, save_checkpoint

    card = ModelCard.for_model(model, normalization={"offset": 0.0, "scale": 0.5}, bands=["B8"], **card_fields)
    save_checkpoint(path, model, card)
    return path


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> Dict[str, Path]:
    """Tiny real checkpoints: two RAMS (baseline / task-driven recipes), one slow RAMS, two UNet++."""
    import torch

    from core.models.zoo import build

    folder = tmp_path_factory.mktemp("models")
    out: Dict[str, Path] = {}
    torch.manual_seed(0)
    out["baseline"] = _save(folder / "tiny_baseline.safetensors", build("rams", filters=8, N=1, r=4, frames=3),
                            name="tiny baseline",
                            recipe={"losses": [{"name": "cl1", "weight": 1.0}], "weighting": "static", "epochs": 1})
    torch.manual_seed(1)
    out["taskdriven"] = _save(
        folder / "tiny_taskdriven.safetensors", build("rams", filters=8, N=1, r=4, frames=3),
        name="tiny task-driven",
        recipe={"losses": [{"name": "cl1"}, {"name": "dice_buildings", "proportion": 0.25},
                           {"name": "dice_roads", "proportion": 0.25}], "weighting": "dynamic", "epochs": 1},
        metrics={"test": {"cpsnr": 30.1, "buildings_dice": 0.2}})
    torch.manual_seed(2)
    out["slow"] = _save(folder / "slow_rams.safetensors", build("rams", filters=32, N=4, r=8, frames=3),
                        name="slow rams")
    torch.manual_seed(3)
    out["buildings"] = _save(folder / "seg_buildings.safetensors", build("unetpp", preset="unetpp-tiny"),
                             name="tiny buildings", target="buildings")
    torch.manual_seed(4)
    out["roads"] = _save(folder / "seg_roads.safetensors", build("unetpp", preset="unetpp-tiny"),
                         name="tiny roads", target="roads")
    return out


#: Sentinel-2's four 10 m bands, as 4-band cards name them.
BANDS_10M = ["B02", "B03", "B04", "B08"]


@pytest.fixture(scope="session")
def checkpoints4(tmp_path_factory) -> Dict[str, Path]:
    """Tiny real 4-band checkpoints (B02, B03, B04, B08 jointly): a RAMS (T = 3) and two UNet++."""
    import torch

    from core.models.zoo import ModelCard, build, save_checkpoint

    folder = tmp_path_factory.mktemp("models4")
    out: Dict[str, Path] = {}
    for key, seed, model, extra in (
        ("rams", 10, lambda: build("rams", filters=8, N=1, r=4, frames=3, in_chans=4), {"name": "tiny rgbn rams"}),
        ("buildings", 11, lambda: build("unetpp", preset="unetpp-tiny", in_channels=4),
         {"name": "tiny rgbn buildings", "target": "buildings"}),
        ("roads", 12, lambda: build("unetpp", preset="unetpp-tiny", in_channels=4),
         {"name": "tiny rgbn roads", "target": "roads"}),
    ):
        torch.manual_seed(seed)
        net = model()
        card = ModelCard.for_model(net, normalization={"offset": 0.0, "scale": 0.5}, bands=list(BANDS_10M), **extra)
        out[key] = folder / f"{key}4.safetensors"
        save_checkpoint(out[key], net, card)
    return out


# --------------------------------------------------------------------------- QGIS helpers


@pytest.fixture
def clean_qgis(qgis_iface):
    """An empty project and no remembered plugin settings before and after the test."""
    from qgis.core import QgsProject, QgsSettings

    QgsSettings().remove(PACKAGE)
    QgsProject.instance().clear()
    yield qgis_iface
    QgsProject.instance().clear()
    QgsSettings().remove(PACKAGE)


@pytest.fixture
def train_dialog(clean_qgis, face):
    """The training dialog on QGIS's main window, shut down (child process, renderer) after the test."""
    dlg = ui(face, "train_dialog").TrainDialog(clean_qgis, parent=clean_qgis.mainWindow())
    yield dlg
    dlg.shutdown()
    dlg.deleteLater()


def load_raster(path: Path, name: str):
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(path), name)
    assert layer.isValid(), path
    QgsProject.instance().addMapLayer(layer)
    return layer


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, step: float = 0.02) -> bool:
    """Process Qt events until ``condition()`` holds or ``timeout`` seconds pass."""
    from qgis.PyQt.QtCore import QCoreApplication

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QCoreApplication.processEvents()
        if condition():
            return True
        time.sleep(step)
    QCoreApplication.processEvents()
    return condition()


def files_in(folder: Path) -> List[str]:
    return sorted(p.name for p in Path(folder).iterdir())


def new_layers(before) -> list:
    """The project's layers whose ids are not in ``before`` (what a run added)."""
    from qgis.core import QgsProject

    return [lyr for lid, lyr in QgsProject.instance().mapLayers().items() if lid not in before]


def dock_on_revisits(face, dock, revisits, checkpoint, out_dir) -> list:
    """Load ``revisits`` as layers and set the dock to super-resolve them with ``checkpoint`` into ``out_dir``.

    The analyst's usual first steps, shared by the dock and trust-map tests; returns the layers.
    """
    layers = [load_raster(p, f"revisit {i}") for i, p in enumerate(revisits)]
    dock.mode_combo.setCurrentIndex(ui(face, "dock").REVISITS)
    dock.set_revisits(layers)
    dock.select_checkpoint(str(checkpoint))
    dock.out_dir.setFilePath(str(out_dir))
    return layers


@pytest.fixture
def qh(face):
    """Helpers for the tests (conftest modules cannot be imported under importlib mode)."""
    return types.SimpleNamespace(
        ui=lambda name: ui(face, name),
        load_raster=load_raster,
        wait_until=wait_until,
        files_in=files_in,
        write_tif=write_tif,
        smooth_image=smooth_image,
        new_layers=new_layers,
        dock_on_revisits=lambda *args: dock_on_revisits(face, *args),
    )


@pytest.fixture
def dock(clean_qgis, qh):
    """The plugin's dock on an empty project, shut down (jobs cancelled) after the test."""
    widget = qh.ui("dock").SRDockWidget(clean_qgis, parent=clean_qgis.mainWindow())
    yield widget
    widget.shutdown()
    widget.deleteLater()


@pytest.fixture
def provider(qgis_processing, face, qh):
    """The plugin's Processing provider, registered for the test (replacing one registered elsewhere)."""
    from qgis.core import QgsApplication

    mod = qh.ui("processing.provider")
    registry = QgsApplication.processingRegistry()
    existing = registry.providerById(mod.PROVIDER_ID)
    if existing is not None:  # e.g. registered by the plugin under test elsewhere
        registry.removeProvider(existing)
    prov = mod.SRProcessingProvider()
    assert registry.addProvider(prov)
    yield prov
    registry.removeProvider(prov)
