"""The plugin's Processing provider: its algorithms in the toolbox, the modeler, batch mode and qgis_process."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

PROVIDER_ID = "s2sr"
_ICON = Path(__file__).resolve().parents[2] / "resources" / "icons" / "icon.png"


class SRProcessingProvider(QgsProcessingProvider):
    """Algorithms ``s2sr:superresolve``, ``s2sr:segment``, ``s2sr:evaluate``, ``s2sr:train``,
    ``s2sr:finetunearea`` and ``s2sr:trustmap``."""

    def id(self) -> str:  # noqa: A003 - QGIS API
        return PROVIDER_ID

    def name(self) -> str:
        return "Sentinel-2 super-resolution"

    def longName(self) -> str:  # noqa: N802 - QGIS API
        return "Task-driven Sentinel-2 super-resolution (RAMS / HAT, UNet++ buildings and roads)"

    def icon(self) -> QIcon:
        return QIcon(str(_ICON)) if _ICON.is_file() else super().icon()

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API
        from .algorithms import all_algorithms

        for alg in all_algorithms():
            self.addAlgorithm(alg)
