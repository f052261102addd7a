"""Processing algorithm ``s2sr:segment``: buildings and/or roads on a high-resolution raster.

Options (band, threshold, tiling, device, supported objects only) come from
``core.options.SegmentOptions`` through ``base.py``; this module adds the input,
the two networks, the extent and the three outputs.
"""

from __future__ import annotations

from typing import Any, Dict

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from ...core import api
from ...core.options import SegmentOptions
from .base import (
    AlgorithmBase,
    add_option_parameters,
    extent_in_layer_crs,
    options_from_parameters,
)

__all__ = ["SegmentAlgorithm"]


class SegmentAlgorithm(AlgorithmBase):
    NAME, TITLE = "segment", "Segment buildings and roads"
    HELP = (
        "Segments buildings and/or roads on a high-resolution raster (a super-resolved output or any HR "
        "image) with UNet++ checkpoints. Writes the probability (0..1, one band per target), a mask "
        "(1 = target, 0 = background, 255 = nodata) and optionally polygons (a GeoPackage with one layer "
        "per target)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster to segment"))
        self.addParameter(QgsProcessingParameterFile(
            "BUILDINGS", "Buildings network (.safetensors)", extension="safetensors", optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "ROADS", "Roads network (.safetensors)", extension="safetensors", optional=True))
        self.add_extent()
        add_option_parameters(self, SegmentOptions, band_parent="INPUT")
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_PROB", "Probability"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_MASK", "Mask"))
        self.addParameter(QgsProcessingParameterVectorDestination(
            "OUTPUT_VECTORS", "Polygons (GeoPackage)", QgsProcessing.SourceType.TypeVectorPolygon, optional=True,
            createByDefault=False))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        path = self.file_of(layer, "Raster to segment")
        checkpoints = [p for p in (self.parameterAsFile(parameters, "BUILDINGS", context),
                                   self.parameterAsFile(parameters, "ROADS", context)) if p]
        if not checkpoints:
            raise QgsProcessingException("give a buildings and/or a roads network")
        options = options_from_parameters(SegmentOptions, self, parameters, context,
                                          extent=extent_in_layer_crs(self, parameters, context, layer))
        prob = self.parameterAsOutputLayer(parameters, "OUTPUT_PROB", context)
        mask = self.parameterAsOutputLayer(parameters, "OUTPUT_MASK", context)
        vectors = self.parameterAsOutputLayer(parameters, "OUTPUT_VECTORS", context) \
            if parameters.get("OUTPUT_VECTORS") else None
        if vectors and not vectors.lower().endswith(".gpkg"):
            raise QgsProcessingException(f"polygons are written as a GeoPackage: choose a .gpkg file, not {vectors}")
        result = self.run_engine(feedback, api.segment, path, checkpoints, out_mask=mask, out_prob=prob,
                                 vectors=vectors, options=options)
        self.report(feedback, result.messages)
        feedback.pushInfo(f"targets (bands in this order): {', '.join(result.targets)}")
        out: Dict[str, Any] = {"OUTPUT_PROB": str(result.prob_path), "OUTPUT_MASK": str(result.mask_path)}
        if result.vectors_path:
            out["OUTPUT_VECTORS"] = str(result.vectors_path)
        return out
