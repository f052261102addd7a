"""Engine of the task-driven Sentinel-2 super-resolution plugin.

Plain Python + PyTorch + NumPy + rasterio: no QGIS and no Qt, ever, so the
headless trainer, the tests and the plugin share one engine. Modules use
relative imports only so this package works both as ``core`` (``python -m
core.cli``) and as ``s2_taskdriven_sr.core`` inside QGIS.
"""

__version__ = "0.1.0"

from pathlib import Path as _Path

#: The plugin's ``resources`` folder (recipes, icons, shipped checkpoints): one definition for every module.
RESOURCES = _Path(__file__).resolve().parent.parent / "resources"
