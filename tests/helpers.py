"""What several test files need: a GeoTIFF writer, real model cards for in-memory networks, the plugin import.

Import as ``from tests.helpers import write_geotiff, make_card`` (pytest runs
with ``pythonpath = "."`` and ``tests`` has no ``__init__.py``: a namespace
package rooted at the repository).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import rasterio
from rasterio.transform import from_origin

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_PACKAGE = "s2_taskdriven_sr"
#: A 10 m grid in UTM 33N used by most raster tests.
T0 = from_origin(500000.0, 6000000.0, 10, 10)


def write_geotiff(path: Path, data: np.ndarray, transform=T0, crs: Optional[str] = "EPSG:32633",
                  nodata: Optional[float] = None, descriptions: Optional[Sequence[str]] = None,
                  tags: Optional[dict] = None) -> Path:
    """Write ``data`` ([H, W] or [C, H, W], any dtype) as a GeoTIFF; ``crs=None`` writes none."""
    data = data if data.ndim == 3 else data[None]
    prof = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                dtype=data.dtype.name, nodata=nodata, transform=transform)
    if crs is not None:
        prof["crs"] = crs
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            ds.set_band_description(i, d)
        if tags:
            ds.update_tags(**tags)
    return Path(path)


def make_card(arch: str = "rams", task: str = "sr", scale: int = 3, frames: Optional[int] = 1,
              normalization: Optional[dict] = None, hparams: Optional[dict] = None, name: str = "test model",
              target: Optional[str] = None, bands: Optional[Sequence[str]] = None, **extra: Any):
    """A real :class:`core.models.zoo.ModelCard` describing an in-memory test network.

    Inference reads only the card (units, frames, scale, bands, target); the
    network itself can be any module with the right shapes.
    """
    from core.models.zoo import ModelCard

    if task == "segmentation":
        scale, frames = 1, None
    return ModelCard(arch=arch, task=task, scale=scale, frames=frames,
                     normalization=dict(normalization or {"offset": 0.0, "scale": 1.0}),
                     hparams=dict(hparams or {}), name=name, target=target,
                     bands=list(bands) if bands is not None else ["B8"], **extra)


def import_plugin_package() -> types.ModuleType:
    """The repository root as package ``s2_taskdriven_sr`` (imported once, then reused)."""
    module = sys.modules.get(PLUGIN_PACKAGE)
    if module is not None and getattr(module, "__file__", None):
        return module
    spec = importlib.util.spec_from_file_location(
        PLUGIN_PACKAGE, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PLUGIN_PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(PLUGIN_PACKAGE, None)
        raise
    return module



def tiny_towns(seed: int) -> Any:
    """A module-scoped fixture: four 96 px synthetic town scenes with three revisits each (the training tests' data).

    Bind it to the fixture's name in a test module: ``data = tiny_towns(seed=0)``.
    """
    import pytest

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: Any) -> Path:
        from core.data.synthetic.towns import make_dataset

        root = tmp_path_factory.mktemp("synth")
        make_dataset(root, n_scenes=4, size_hr=96, seed=seed, frames=3)
        return root

    return fixture


#: The input statistics the world-v2 starter buildings network recorded (surface reflectance, L2A): the
#: card of a network that never saw L1C, for the checks that warn about a level or brightness mismatch.
WORLD_V2_L2A_STATS = {"B02": {"p2": 0.0137, "p50": 0.0387, "p98": 0.1021},
                      "B03": {"p2": 0.0229, "p50": 0.0689, "p98": 0.1384},
                      "B04": {"p2": 0.0121, "p50": 0.0518, "p98": 0.1679},
                      "B08": {"p2": 0.0082, "p50": 0.3003, "p98": 0.4885}}


def l2a_only_network(folder: Path, name: str = "l2a_buildings") -> Path:
    """The shipped buildings network re-saved with a card that says it was trained on L2A only.

    Why: every shipped segmentation network now learned L1C-like radiometry too, so the warning for a
    network given another level than it was trained on needs a network that records one level.
    """
    import dataclasses

    from core.api import shipped_models_dir
    from core.models.zoo import load_checkpoint, save_checkpoint

    net, card = load_checkpoint(shipped_models_dir() / "unetpp_buildings.safetensors")
    card = dataclasses.replace(card, name=name, level="L2A", input_stats=WORLD_V2_L2A_STATS)
    target = Path(folder) / f"{name}.safetensors"
    save_checkpoint(target, net, card)
    return target
