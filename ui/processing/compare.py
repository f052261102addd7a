"""Processing algorithm ``s2sr:compare``: baseline vs task-driven SR outputs of one area, as the dock's Compare tab.

One call into :func:`core.api.compare_outputs`; its options (trust maps or
not, reference band, border, device) come from ``core.options.CompareOptions``
through ``base.py``, the same dataclass the dock and ``python -m core.cli
compare`` fill. The metrics come back as numbers (``<METRIC>_BASELINE``,
``<METRIC>_TASKDRIVEN``; NaN where one could not be computed, with the reason
in the log), so a model can chain them.
"""

from __future__ import annotations

import math
from typing import Any, Dict

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterRasterLayer,
)

from ...core import api
from ...core.options import CompareOptions
from ..sources import Refused, mask_source
from .base import AlgorithmBase, add_option_parameters, options_from_parameters, shipped_default

__all__ = ["CompareAlgorithm"]

#: (result key, output name, title)
METRICS = (("cpsnr", "CPSNR", "cPSNR (dB)"), ("cssim", "CSSIM", "cSSIM"),
           ("buildings_dice", "BUILDINGS_DICE", "Building Dice"), ("roads_dice", "ROADS_DICE", "Road Dice"),
           ("trust_mean", "TRUST_MEAN", "Trust: mean disagreement"))
LABELS = (("Baseline", "BASELINE"), ("Task-driven", "TASKDRIVEN"))


class CompareAlgorithm(AlgorithmBase):
    NAME, TITLE = "compare", "Compare baseline vs task-driven outputs"
    HELP = (
        "Scores two super-resolved rasters of the same area side by side: cPSNR and cSSIM against an HR "
        "reference (warped onto each output's grid), building and road Dice of the segmentation networks "
        "against mask rasters or OSM vector layers, and, with 'Trust maps (slower)', the trust rows of each "
        "output (a trust map each, the slow part; without it a trust map already beside an output is read). "
        "Every input but the two outputs is optional; a metric whose inputs are missing is NaN, with the "
        "reason in the log."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer("BASELINE", "Baseline SR raster"))
        self.addParameter(QgsProcessingParameterRasterLayer("TASKDRIVEN", "Task-driven SR raster"))
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", "HR reference raster", optional=True))
        self.addParameter(QgsProcessingParameterMapLayer("BUILDINGS", "Buildings (mask raster or vector layer)",
                                                         optional=True))
        self.addParameter(QgsProcessingParameterMapLayer("ROADS", "Roads (mask raster or vector layer)",
                                                         optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "SEG_BUILDINGS", "Buildings network (.safetensors)", extension="safetensors", optional=True,
            defaultValue=shipped_default("segmentation", "buildings")))
        self.addParameter(QgsProcessingParameterFile(
            "SEG_ROADS", "Roads network (.safetensors)", extension="safetensors", optional=True,
            defaultValue=shipped_default("segmentation", "roads")))
        add_option_parameters(self, CompareOptions)
        for _key, name, title in METRICS:
            for label, suffix in LABELS:
                self.addOutput(QgsProcessingOutputNumber(f"{name}_{suffix}", f"{title}, {label.lower()}"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        outputs = {label: self.file_of(self.parameterAsRasterLayer(parameters, suffix, context), label)
                   for label, suffix in LABELS}
        reference = self.parameterAsRasterLayer(parameters, "REFERENCE", context)
        masks: Dict[str, Any] = {}
        try:
            for target, key in (("buildings", "BUILDINGS"), ("roads", "ROADS")):
                found = mask_source(self.parameterAsLayer(parameters, key, context), target)
                if found is not None:
                    masks[target] = found
        except Refused as exc:
            raise QgsProcessingException(str(exc)) from None
        seg = {t: self.parameterAsString(parameters, key, context) for t, key in
               (("buildings", "SEG_BUILDINGS"), ("roads", "SEG_ROADS"))}
        options = options_from_parameters(CompareOptions, self, parameters, context)
        result = self.run_engine(feedback, api.compare_outputs, outputs,
                                 self.file_of(reference, "HR reference") if reference is not None else None,
                                 masks, {t: c for t, c in seg.items() if c and t in masks}, options)
        self.report(feedback, result.messages + [f"{k}: {v}" for k, v in sorted(result.notes.items())])
        values: Dict[str, Any] = {}
        for key, name, _title in METRICS:
            for label, suffix in LABELS:
                value = result.metrics.get(label, {}).get(key)
                values[f"{name}_{suffix}"] = float(value) if value is not None else math.nan
        return values
