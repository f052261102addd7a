"""Processing algorithm ``s2sr:train``: train a network from a YAML recipe (the recipe is its options).

Training has no options dataclass: the recipe YAML is the complete set of
options, and this algorithm only overrides a few of its keys (dataset,
epochs, device, run folder). Long runs are better started from the training
dialog or the command line, which survive QGIS being closed.
"""

from __future__ import annotations

from typing import Any, Dict

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from ...core import api
from .base import TRAIN_GROUP, TRAIN_GROUP_ID, AlgorithmBase, FeedbackCancel

__all__ = ["TrainAlgorithm", "TRAIN_DEVICES"]

TRAIN_DEVICES = ["auto", "cpu", "cuda"]


class TrainAlgorithm(AlgorithmBase):
    NAME, TITLE = "train", "Train a model from a recipe"
    GROUP_NAME, GROUP_KEY = TRAIN_GROUP, TRAIN_GROUP_ID
    HELP = (
        "Trains a segmentation or super-resolution network from a YAML recipe (resources/configs). The run "
        "folder holds the checkpoints (best.safetensors, last.safetensors), the resume state (last.pt), "
        "history.json and the training curves; a run folder that already holds a run is resumed. Long runs "
        "are better started from the training dialog or the command line (python -m core.cli train)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterFile("CONFIG", "Recipe (YAML)", extension="yaml"))
        self.addParameter(QgsProcessingParameterFile("DATA", "Dataset folder (overrides the recipe's)",
                                                     behavior=QgsProcessingParameterFile.Behavior.Folder,
                                                     optional=True))
        self.addParameter(QgsProcessingParameterNumber("EPOCHS", "Epochs (0 = the recipe's)",
                                                       QgsProcessingParameterNumber.Type.Integer, 0, minValue=0))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", TRAIN_DEVICES, defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean("RESUME", "Resume a run found in the folder", True))
        self.addParameter(QgsProcessingParameterFolderDestination("OUT_DIR", "Run folder"))
        self.addOutput(QgsProcessingOutputFile("CHECKPOINT", "Best checkpoint"))
        self.addOutput(QgsProcessingOutputFolder("RUN_DIR", "Run folder"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        overrides: Dict[str, Any] = {}
        data = self.parameterAsFile(parameters, "DATA", context)
        if data:
            overrides["data.root"] = data
        epochs = self.parameterAsInt(parameters, "EPOCHS", context)
        if epochs:
            overrides["epochs"] = epochs
        overrides["device"] = TRAIN_DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)]
        out_dir = self.parameterAsString(parameters, "OUT_DIR", context)
        overrides["out_dir"] = out_dir

        def progress(event: Dict[str, Any]) -> None:
            kind = event.get("event")
            if kind == "step" and event.get("epochs") and event.get("steps"):
                done = event["epoch"] - 1 + event["step"] / event["steps"]
                feedback.setProgress(100.0 * done / event["epochs"])
            elif kind == "epoch":
                val = ", ".join(f"{k} {v:.4g}" for k, v in (event.get("val") or {}).items()
                                if isinstance(v, (int, float)) and k != "scenes")
                feedback.pushInfo(f"epoch {event.get('epoch')}/{event.get('epochs')}: "
                                  f"loss {(event.get('train') or {}).get('total', float('nan')):.4g}"
                                  + (f" | val {val}" if val else ""))
            elif kind == "log":
                feedback.pushInfo(str(event.get("message", "")))
            elif kind == "error":
                feedback.reportError(str(event.get("message", "")), False)

        try:
            best = api.train(self.parameterAsFile(parameters, "CONFIG", context), progress=progress,
                             resume=self.parameterAsBoolean(parameters, "RESUME", context),
                             cancel=FeedbackCancel(feedback), overrides=overrides)
        except Exception as exc:
            raise self.fail(exc) from None
        return {"CHECKPOINT": str(best), "RUN_DIR": out_dir}
