"""Processing algorithm ``s2sr:evaluate``: whole-scene metrics of a checkpoint on a dataset split.

Options (split, scenes, device, tiling, anchored scoring, HR reference) come
from ``core.options.EvaluateOptions`` through ``base.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
)

from ...core import api
from ...core.io.jsonsafe import json_safe
from ...core.options import EvaluateOptions
from .base import (
    TRAIN_GROUP,
    TRAIN_GROUP_ID,
    AlgorithmBase,
    add_option_parameters,
    options_from_parameters,
    progress_to,
)

__all__ = ["EvaluateAlgorithm"]


class EvaluateAlgorithm(AlgorithmBase):
    NAME, TITLE = "evaluate", "Evaluate a checkpoint on a dataset"
    GROUP_NAME, GROUP_KEY = TRAIN_GROUP, TRAIN_GROUP_ID
    HELP = (
        "Whole-scene metrics of a checkpoint on a split of a dataset folder (scene folders with split.json): "
        "cPSNR and cSSIM against the HR images for a super-resolution model, plus building / road Dice of "
        "the given segmentation networks on its output; Dice, accuracy, precision and recall for a "
        "segmentation network. The full result is written as JSON."
    )
    METRICS = ("cpsnr", "cssim", "lpips", "buildings_dice", "roads_dice", "task_dice", "dice", "accuracy",
               "precision", "recall")

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterFile("CHECKPOINT", "Checkpoint (.safetensors)",
                                                     extension="safetensors"))
        self.addParameter(QgsProcessingParameterFile("DATA", "Dataset folder",
                                                     behavior=QgsProcessingParameterFile.Behavior.Folder))
        self.addParameter(QgsProcessingParameterFile("SEG_BUILDINGS", "Buildings network (for Dice on the SR output)",
                                                     extension="safetensors", optional=True))
        self.addParameter(QgsProcessingParameterFile("SEG_ROADS", "Roads network (for Dice on the SR output)",
                                                     extension="safetensors", optional=True))
        add_option_parameters(self, EvaluateOptions)
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_JSON", "Metrics (JSON)", "JSON files (*.json)"))
        for key in self.METRICS:
            self.addOutput(QgsProcessingOutputNumber(key.upper(), key))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        options = options_from_parameters(EvaluateOptions, self, parameters, context)
        out_json = self.parameterAsFileOutput(parameters, "OUTPUT_JSON", context)
        try:
            result = api.evaluate(
                self.parameterAsFile(parameters, "CHECKPOINT", context),
                self.parameterAsFile(parameters, "DATA", context),
                seg_buildings=self.parameterAsFile(parameters, "SEG_BUILDINGS", context) or None,
                seg_roads=self.parameterAsFile(parameters, "SEG_ROADS", context) or None,
                options=options, progress=progress_to(feedback, percent=True))
        except Exception as exc:
            raise self.fail(exc) from None
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(json_safe(result), indent=1), encoding="utf-8")
        out: Dict[str, Any] = {"OUTPUT_JSON": out_json}
        for key in self.METRICS:
            value = result.get(key)
            if isinstance(value, (int, float)):
                out[key.upper()] = float(value)
                feedback.pushInfo(f"{key}: {value:.4f}")
        return out
