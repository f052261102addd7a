"""The plugin's Processing provider: its algorithms in the toolbox, the modeler, batch mode and qgis_process.

It owns the list of algorithms; each algorithm module imports only
``base.py``, so there is no import cycle between them.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

from qgis.core import QgsProcessingAlgorithm, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .area import FinetuneAreaAlgorithm
from .compare import CompareAlgorithm
from .evaluate import EvaluateAlgorithm
from .export import ExportProductAlgorithm
from .segment import SegmentAlgorithm
from .stack import StackAlgorithm
from .superresolve import SuperResolveAlgorithm
from .train import TrainAlgorithm
from .trust import TrustMapAlgorithm

__all__ = ["PROVIDER_ID", "SRProcessingProvider", "all_algorithms"]

PROVIDER_ID = "s2sr"
_ICON = Path(__file__).resolve().parents[2] / "resources" / "icons" / "icon.png"


def all_algorithms() -> List[QgsProcessingAlgorithm]:
    """One new instance of every algorithm, in toolbox order."""
    return [ExportProductAlgorithm(), StackAlgorithm(), SuperResolveAlgorithm(), SegmentAlgorithm(),
            EvaluateAlgorithm(), TrainAlgorithm(), FinetuneAreaAlgorithm(), TrustMapAlgorithm(), CompareAlgorithm()]


class SRProcessingProvider(QgsProcessingProvider):
    """Algorithms ``s2sr:exportproduct``, ``s2sr:stack``, ``s2sr:superresolve``, ``s2sr:segment``,
    ``s2sr:evaluate``, ``s2sr:train``, ``s2sr:finetunearea`` and ``s2sr:trustmap``."""

    def id(self) -> str:  # noqa: A003 - QGIS API
        return PROVIDER_ID

    def name(self) -> str:
        return "Sentinel-2 super-resolution"

    def longName(self) -> str:  # noqa: N802 - QGIS API
        return "Task-driven Sentinel-2 super-resolution (RAMS / HAT, UNet++ buildings and roads)"

    def icon(self) -> QIcon:
        return QIcon(str(_ICON)) if _ICON.is_file() else super().icon()

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API
        for alg in all_algorithms():
            self.addAlgorithm(alg)
