"""Processing algorithm ``s2sr:trustmap``: where does an SR raster disagree with the Sentinel-2 revisits?

One call into :func:`core.api.trust_map`; its options (band, threshold,
largest shift, instability, device) come from ``core.options.TrustOptions``
through ``base.py``. The band is a "number or name" text here because it names
a band of the revisits, not of the SR raster. The revisits default to those
the SR output records in its metadata (``super_resolve`` writes them), so in a
model the algorithm can follow ``s2sr:superresolve`` with only its output wired in.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ...core import api
from ...core.options import TrustOptions
from .base import AlgorithmBase, add_option_parameters, options_from_parameters

__all__ = ["TrustMapAlgorithm"]

SCORES = (("MEAN_DISAGREEMENT", "mean_disagreement", "Mean disagreement (reflectance)"),
          ("P95_DISAGREEMENT", "p95_disagreement", "95th percentile of the disagreement (reflectance)"),
          ("FLAGGED_SHARE", "flagged_share", "Share of pixels above the threshold"))


class TrustMapAlgorithm(AlgorithmBase):
    NAME, TITLE = "trustmap", "Trust map of a super-resolved raster"
    HELP = (
        "Degrades a super-resolved raster back to Sentinel-2 (PSF, each revisit's sub-pixel shift, 3x3 area "
        "mean) and compares it with the LR revisits after removing each one's brightness offset. Writes a "
        "float32 raster on the LR grid: band 1 = median |disagreement| over the revisits (red where the output "
        "invented or missed what S-2 saw), band 2 = the spread of the revisits among themselves (clouds, "
        "changes; empty for a single image), both in reflectance. Leave the revisits empty to use those the "
        "SR raster records in its metadata. The SR raster must be on the LR grid, as Super-resolve writes it."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Super-resolved raster"))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "REVISITS", "LR revisits it was made from (empty: those recorded in its metadata)",
            QgsProcessing.SourceType.TypeRaster, optional=True))
        add_option_parameters(self, TrustOptions)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Trust map"))
        for key, _attr, title in SCORES:
            self.addOutput(QgsProcessingOutputNumber(key, title))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        sr = self.file_of(self.parameterAsRasterLayer(parameters, "INPUT", context), "Super-resolved raster")
        revisits = self.parameterAsLayerList(parameters, "REVISITS", context)
        inputs: Optional[List[str]] = [self.file_of(lyr, "Revisit") for lyr in revisits] or None
        options = options_from_parameters(TrustOptions, self, parameters, context)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        summary = self.run_engine(feedback, api.trust_map, sr, inputs, out_path=out, options=options)
        self.report(feedback, summary.messages)
        result: Dict[str, Any] = {"OUTPUT": str(summary.path)}
        for key, attr, _title in SCORES:
            result[key] = float(getattr(summary, attr))
        return result
