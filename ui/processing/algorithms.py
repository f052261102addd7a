"""Processing algorithms: super-resolve, segment, evaluate, train (+ area fine-tuning, trust map); each calls core.

They take files and layers as Processing parameters (so they work in the
modeler, in batch mode and from ``qgis_process``), report the engine's progress
to the feedback object, honour its Cancel, and turn engine errors into
``QgsProcessingException`` with the engine's message (written for the analyst:
it names the file and what is wrong).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsRasterLayer,
)

from ...core.io.jsonsafe import json_safe
from ..log import analyst_message
from ..tasks import Refused, layer_file, utm_crs_for_layer

GROUP, GROUP_ID = "Super-resolution and segmentation", "s2sr"
TRAIN_GROUP, TRAIN_GROUP_ID = "Training and evaluation", "s2sr_training"
DEVICES = ["cpu", "cuda"]
TRAIN_DEVICES = ["auto", "cpu", "cuda"]
SPLITS = ["test", "val", "train", "all"]


class FeedbackCancel:
    """``core``'s cancel token interface on top of a Processing feedback object."""

    def __init__(self, feedback: Any) -> None:
        self.feedback = feedback

    @property
    def cancelled(self) -> bool:
        return bool(self.feedback is not None and self.feedback.isCanceled())


def progress_to(feedback: Any, percent: bool = False):
    """core's ``progress(fraction, message)`` -> the feedback's bar and text."""
    last = {"text": None}

    def call(value: float, message: str) -> None:
        if feedback is None:
            return
        feedback.setProgress(float(value) if percent else 100.0 * float(value))
        if message and message != last["text"]:
            last["text"] = message
            feedback.setProgressText(message)

    return call


def _shipped_default(task: str) -> Optional[str]:
    """The first shipped checkpoint for ``task`` (its path), as a parameter default."""
    try:
        from ...core import api

        for path, card in api.list_models():
            if getattr(card, "task", "sr") == task:
                return str(path)
    except Exception:  # a broken shipped file must not break the toolbox
        pass
    return None


class _Base(QgsProcessingAlgorithm):
    """Common plumbing: naming, help, error wording."""

    NAME = ""
    TITLE = ""
    HELP = ""
    GROUP_NAME, GROUP_KEY = GROUP, GROUP_ID

    def createInstance(self):  # noqa: N802 - QGIS API
        return type(self)()

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.TITLE

    def group(self) -> str:
        return self.GROUP_NAME

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return self.GROUP_KEY

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.HELP

    def _fail(self, exc: BaseException) -> QgsProcessingException:
        if type(exc).__name__ in ("Cancelled", "TrainingCancelled"):
            return QgsProcessingException(f"cancelled: {exc}")
        return QgsProcessingException(analyst_message(exc))

    @staticmethod
    def _file_of(layer: Optional[QgsRasterLayer], what: str) -> str:
        if layer is None:
            raise QgsProcessingException(f"{what}: no raster given")
        try:
            return layer_file(layer)
        except Refused as exc:
            raise QgsProcessingException(f"{what}: {exc}") from None

    @staticmethod
    def _report(feedback: Any, messages: List[str]) -> None:
        for m in messages or []:
            feedback.pushInfo(m)


class SuperResolveAlgorithm(_Base):
    NAME, TITLE = "superresolve", "Super-resolve raster (x3)"
    HELP = (
        "Super-resolves a Sentinel-2 band three times (10 m to 3.3 m) with a RAMS (multi-image) or HAT "
        "(single-image) checkpoint. Give one raster, or several revisits of the same place (the first one "
        "sets the grid; others are resampled onto it), or one raster whose bands are dates. The output is a "
        "georeferenced GeoTIFF on the input's extent with a pixel three times smaller, in the input's units. "
        "Rasters in degrees are warped to their UTM zone first."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster (or the first revisit)"))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "REVISITS", "Further revisits of the same place (multi-image models)", QgsProcessing.SourceType.TypeRaster,
            optional=True))
        self.addParameter(QgsProcessingParameterBand("BAND", "Band", 1, "INPUT"))
        self.addParameter(QgsProcessingParameterBoolean(
            "BANDS_ARE_DATES", "The input's bands are dates of one band (ignores Band)", False))
        self.addParameter(QgsProcessingParameterFile(
            "CHECKPOINT", "Checkpoint (.safetensors)", extension="safetensors", defaultValue=_shipped_default("sr")))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Only this extent (optional)", optional=True))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Run on", DEVICES, defaultValue=0))
        tile = QgsProcessingParameterNumber("TILE", "Tile size in input pixels (0 = automatic)",
                                            QgsProcessingParameterNumber.Type.Integer, 0, minValue=0)
        self.addParameter(tile)
        self.addParameter(QgsProcessingParameterBoolean(
            "ANCHOR", "Match each tile's brightness to the revisits (off: the network's raw output)", True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Super-resolved raster"))
        self.addOutput(QgsProcessingOutputString("FRAMES_USED", "Frames used"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        first = self._file_of(layer, "Input raster")
        inputs = [first]
        for extra in self.parameterAsLayerList(parameters, "REVISITS", context):
            path = self._file_of(extra, "Revisit")
            if path != first:
                inputs.append(path)
        band: Any = "all" if self.parameterAsBoolean(parameters, "BANDS_ARE_DATES", context) \
            else self.parameterAsInt(parameters, "BAND", context)
        checkpoint = self.parameterAsFile(parameters, "CHECKPOINT", context)
        extent = None
        if parameters.get("EXTENT"):
            crs = utm_crs_for_layer(layer) if layer.crs().isGeographic() else layer.crs()
            rect = self.parameterAsExtent(parameters, "EXTENT", context, crs)
            if not rect.isNull() and not rect.isEmpty():
                extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        tile = self.parameterAsInt(parameters, "TILE", context) or None
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        device = DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)]
        from ...core import api

        try:
            result = api.super_resolve(inputs, out, checkpoint, band=band, tile=tile, device=device,
                                       progress=progress_to(feedback), cancel=FeedbackCancel(feedback),
                                       extent=extent, anchor=self.parameterAsBoolean(parameters, "ANCHOR", context))
        except Exception as exc:
            raise self._fail(exc) from None
        self._report(feedback, result.messages)
        return {"OUTPUT": str(result.path), "FRAMES_USED": "; ".join(result.frames_used)}


class SegmentAlgorithm(_Base):
    NAME, TITLE = "segment", "Segment buildings and roads"
    HELP = (
        "Segments buildings and/or roads on a high-resolution raster (a super-resolved output or any HR "
        "image) with UNet++ checkpoints. Writes the probability (0..1, one band per target), a mask "
        "(1 = target, 0 = background, 255 = nodata) and optionally polygons (a GeoPackage with one layer "
        "per target)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster to segment"))
        self.addParameter(QgsProcessingParameterBand("BAND", "Band", 1, "INPUT"))
        self.addParameter(QgsProcessingParameterFile(
            "BUILDINGS", "Buildings network (.safetensors)", extension="safetensors", optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "ROADS", "Roads network (.safetensors)", extension="safetensors", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "THRESHOLD", "Mask threshold on the probability", QgsProcessingParameterNumber.Type.Double, 0.5,
            minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Run on", DEVICES, defaultValue=0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_PROB", "Probability"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_MASK", "Mask"))
        vectors = QgsProcessingParameterVectorDestination(
            "OUTPUT_VECTORS", "Polygons (GeoPackage)", QgsProcessing.SourceType.TypeVectorPolygon, optional=True,
            createByDefault=False)
        self.addParameter(vectors)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        path = self._file_of(layer, "Raster to segment")
        checkpoints = [p for p in (self.parameterAsFile(parameters, "BUILDINGS", context),
                                   self.parameterAsFile(parameters, "ROADS", context)) if p]
        if not checkpoints:
            raise QgsProcessingException("give a buildings and/or a roads network")
        prob = self.parameterAsOutputLayer(parameters, "OUTPUT_PROB", context)
        mask = self.parameterAsOutputLayer(parameters, "OUTPUT_MASK", context)
        vectors = self.parameterAsOutputLayer(parameters, "OUTPUT_VECTORS", context) \
            if parameters.get("OUTPUT_VECTORS") else None
        if vectors and not vectors.lower().endswith(".gpkg"):
            raise QgsProcessingException(f"polygons are written as a GeoPackage: choose a .gpkg file, not {vectors}")
        from ...core import api

        try:
            result = api.segment(path, checkpoints, out_prob=prob, out_mask=mask, vectors=vectors,
                                 band=self.parameterAsInt(parameters, "BAND", context),
                                 device=DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)],
                                 threshold=self.parameterAsDouble(parameters, "THRESHOLD", context),
                                 progress=progress_to(feedback), cancel=FeedbackCancel(feedback))
        except Exception as exc:
            raise self._fail(exc) from None
        self._report(feedback, result.messages)
        feedback.pushInfo(f"targets (bands in this order): {', '.join(result.targets)}")
        out: Dict[str, Any] = {"OUTPUT_PROB": str(result.prob_path), "OUTPUT_MASK": str(result.mask_path)}
        if result.vectors_path:
            out["OUTPUT_VECTORS"] = str(result.vectors_path)
        return out


class EvaluateAlgorithm(_Base):
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
        self.addParameter(QgsProcessingParameterEnum("SPLIT", "Split", SPLITS, defaultValue=0))
        self.addParameter(QgsProcessingParameterFile("SEG_BUILDINGS", "Buildings network (for Dice on the SR output)",
                                                     extension="safetensors", optional=True))
        self.addParameter(QgsProcessingParameterFile("SEG_ROADS", "Roads network (for Dice on the SR output)",
                                                     extension="safetensors", optional=True))
        self.addParameter(QgsProcessingParameterNumber("MAX_SCENES", "At most this many scenes (0 = all)",
                                                       QgsProcessingParameterNumber.Type.Integer, 0, minValue=0))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Run on", DEVICES, defaultValue=0))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_JSON", "Metrics (JSON)", "JSON files (*.json)"))
        for key in self.METRICS:
            self.addOutput(QgsProcessingOutputNumber(key.upper(), key))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        from ...core import api

        split = SPLITS[self.parameterAsEnum(parameters, "SPLIT", context)]
        out_json = self.parameterAsFileOutput(parameters, "OUTPUT_JSON", context)
        try:
            result = api.evaluate(
                self.parameterAsFile(parameters, "CHECKPOINT", context),
                self.parameterAsFile(parameters, "DATA", context),
                split=None if split == "all" else split,
                seg_buildings=self.parameterAsFile(parameters, "SEG_BUILDINGS", context) or None,
                seg_roads=self.parameterAsFile(parameters, "SEG_ROADS", context) or None,
                device=DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)],
                max_scenes=self.parameterAsInt(parameters, "MAX_SCENES", context) or None,
                progress=progress_to(feedback, percent=True),
            )
        except Exception as exc:
            raise self._fail(exc) from None
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(json_safe(result), indent=1), encoding="utf-8")
        out: Dict[str, Any] = {"OUTPUT_JSON": out_json}
        for key in self.METRICS:
            value = result.get(key)
            if isinstance(value, (int, float)):
                out[key.upper()] = float(value)
                feedback.pushInfo(f"{key}: {value:.4f}")
        return out


class TrainAlgorithm(_Base):
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
        from ...core import api

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
            raise self._fail(exc) from None
        return {"CHECKPOINT": str(best), "RUN_DIR": out_dir}


def all_algorithms() -> List[QgsProcessingAlgorithm]:
    from .area_algorithm import FinetuneAreaAlgorithm  # its module imports this one
    from .trust_algorithm import TrustMapAlgorithm  # likewise

    return [SuperResolveAlgorithm(), SegmentAlgorithm(), EvaluateAlgorithm(), TrainAlgorithm(),
            FinetuneAreaAlgorithm(), TrustMapAlgorithm()]

