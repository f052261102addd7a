"""Processing algorithm ``s2sr:finetunearea``: fine-tune an SR network on your own area (no HR image).

One call into :func:`core.api.finetune_area`: the revisits are cut into
tiles, the buildings and roads layers (exported to GeoPackages in the output
folder, so temporary QuickOSM layers work) are rasterized onto the 3x grid, a
strip is held out, the network is fine-tuned with consistency cL1 +
building/road Dice, and Dice and consistency cPSNR on the held-out strip are
reported before and after. The job's options (band, tile size, held-out share,
gap, training knobs, the Wald switch, the segmenter stage) are ``core.options.AreaOptions`` (through
``base.py``: names, defaults and limits come from there); the layers and files
are added here. A multi-band network, such as the shipped RAMS and HAT, reads
its card's bands (B02, B03, B04, B08) by name from the revisits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterVectorLayer,
)

from ...core import api
from ...core.options import AreaOptions
from ..sources import Refused, export_vector, revisit_files
from .base import (
    TRAIN_GROUP,
    TRAIN_GROUP_ID,
    AlgorithmBase,
    FeedbackCancel,
    add_option_parameters,
    options_from_parameters,
    shipped_default,
)

__all__ = ["FinetuneAreaAlgorithm"]

SCORES = ("buildings_dice", "roads_dice", "consistency_cpsnr")
#: the segmenter stage (FINETUNE_SEGMENTERS): its checkpoints and held-out Dice, per target
SEG_TARGETS = ("buildings", "roads")
#: every area option is a parameter (WALD switches to the self-supervised adaptation in ``api.finetune_area``)
EXCLUDE: tuple = ()


def _start_default() -> Any:
    """The shipped task-driven RAMS (4 bands) when present, else the first shipped SR network."""
    try:
        from ...core import api

        rams = api.shipped_models_dir() / "rams_taskdriven.safetensors"
        return str(rams) if rams.is_file() else shipped_default("sr")
    except Exception:  # a default is a convenience; the toolbox must load
        return None


class FinetuneAreaAlgorithm(AlgorithmBase):
    NAME, TITLE = "finetunearea", "Fine-tune on your own area (S-2 + OSM, no HR image)"
    GROUP_NAME, GROUP_KEY = TRAIN_GROUP, TRAIN_GROUP_ID
    HELP = (
        "Fine-tunes a super-resolution network on the area covered by your Sentinel-2 revisits, with no "
        "high-resolution image: buildings and roads vector layers (e.g. from QuickOSM) are rasterized onto the "
        "3x grid, the area is cut into tiles, the eastern (or southern) strip is held out with a one-tile gap, "
        "and the network is trained with consistency cL1 (its output degraded back to 10 m must match the "
        "revisits) plus building and road Dice of the frozen segmentation networks (dynamic weighting, patch "
        "selection). A network taking several bands (the shipped RAMS and HAT: B02, B03, B04, B08) reads them by "
        "name from the revisits' band descriptions, whatever their order; a one-band network reads 'Band'. "
        "With 'Also fine-tune the segmenters on the OSM masks' the building and road networks are first "
        "fine-tuned on the area (on the starting network's super-resolved revisits, the input they get in the "
        "plugin, against your OSM layers) and the SR network then trains against them; their checkpoints and "
        "held-out Dice before and after are outputs too. "
        "The report gives Dice and consistency cPSNR on the held-out strip before and after; the new "
        "checkpoints are listed in the plugin's dock. Long runs are better started from the training dialog "
        "('Your area' tab) or the command line (python -m core.cli area run)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "REVISITS", "Sentinel-2 revisits covering the area", QgsProcessing.SourceType.TypeRaster))
        self.addParameter(QgsProcessingParameterVectorLayer(
            "BUILDINGS", "Buildings (polygons)", [QgsProcessing.SourceType.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterVectorLayer(
            "ROADS", "Roads (lines with the OSM 'highway' class)", [QgsProcessing.SourceType.TypeVectorLine]))
        self.addParameter(QgsProcessingParameterFile(
            "CHECKPOINT", "SR checkpoint to start from (.safetensors)", extension="safetensors",
            defaultValue=_start_default()))
        self.addParameter(QgsProcessingParameterFile(
            "SEG_BUILDINGS", "Buildings network (.safetensors)", extension="safetensors",
            defaultValue=shipped_default("segmentation", "buildings")))
        self.addParameter(QgsProcessingParameterFile(
            "SEG_ROADS", "Roads network (.safetensors)", extension="safetensors",
            defaultValue=shipped_default("segmentation", "roads")))
        add_option_parameters(self, AreaOptions, exclude=EXCLUDE)
        self.addParameter(QgsProcessingParameterFolderDestination("OUT_DIR", "Output folder"))
        self.addOutput(QgsProcessingOutputFile("CHECKPOINT_OUT", "Fine-tuned checkpoint"))
        self.addOutput(QgsProcessingOutputFile("REPORT", "Report (Markdown)"))
        for key in SCORES:
            for when in ("BEFORE", "AFTER"):
                self.addOutput(QgsProcessingOutputNumber(f"{key.upper()}_{when}", f"{key} {when.lower()}"))
        for target in SEG_TARGETS:
            self.addOutput(QgsProcessingOutputFile(f"SEG_{target.upper()}_OUT",
                                                   f"Fine-tuned {target} network (segmenter stage)"))
            for when in ("BEFORE", "AFTER"):
                self.addOutput(QgsProcessingOutputNumber(f"SEG_{target.upper()}_DICE_{when}",
                                                         f"segmenter {target} Dice {when.lower()}"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        out_dir = Path(self.parameterAsString(parameters, "OUT_DIR", context))
        options = options_from_parameters(AreaOptions, self, parameters, context)
        try:
            revisits = revisit_files(self.parameterAsLayerList(parameters, "REVISITS", context))
            buildings = export_vector(self.parameterAsVectorLayer(parameters, "BUILDINGS", context), "buildings",
                                      out_dir / "inputs" / "buildings.gpkg")
            roads = export_vector(self.parameterAsVectorLayer(parameters, "ROADS", context), "roads",
                                  out_dir / "inputs" / "roads.gpkg")
        except Refused as exc:
            raise QgsProcessingException(str(exc)) from None

        def progress(event: Dict[str, Any]) -> None:
            kind = event.get("event")
            if kind == "step" and event.get("epochs") and event.get("steps"):
                done = event["epoch"] - 1 + event["step"] / event["steps"]
                feedback.setProgress(5.0 + 85.0 * done / event["epochs"])
            elif kind == "epoch":
                val = ", ".join(f"{k} {v:.3f}" for k, v in (event.get("val") or {}).items()
                                if k in ("buildings_dice", "roads_dice") and isinstance(v, (int, float)))
                feedback.pushInfo(f"epoch {event.get('epoch')}/{event.get('epochs')}"
                                  + (f": held-out {val}" if val else ""))
            elif kind == "log":
                feedback.setProgressText(str(event.get("message", "")))
                if not event.get("fraction"):
                    feedback.pushInfo(str(event.get("message", "")))

        try:
            result = api.finetune_area(
                revisits, buildings, roads, self.parameterAsFile(parameters, "CHECKPOINT", context),
                self.parameterAsFile(parameters, "SEG_BUILDINGS", context),
                self.parameterAsFile(parameters, "SEG_ROADS", context), out_dir, options, progress=progress,
                cancel=FeedbackCancel(feedback), command="QGIS Processing s2sr:finetunearea")
        except Exception as exc:
            raise self.fail(exc) from None
        segmenters = getattr(result, "segmenters", None) or {}
        try:  # the dock lists them from now on
            from ..dock.model_store import remember_checkpoint

            for path in [result.checkpoint] + [s["checkpoint"] for s in segmenters.values()]:
                remember_checkpoint(str(path))
        except Exception as exc:  # listing is a convenience; the checkpoint exists either way
            feedback.pushInfo(f"the new checkpoint could not be added to the model list: {exc}")
        out: Dict[str, Any] = {"CHECKPOINT_OUT": str(result.checkpoint), "REPORT": str(result.report_md)}
        for target, seg in segmenters.items():
            out[f"SEG_{target.upper()}_OUT"] = str(seg["checkpoint"])
            for when, res in (("BEFORE", seg["before"]), ("AFTER", seg["after"])):
                if isinstance(res.get("dice"), (int, float)):
                    out[f"SEG_{target.upper()}_DICE_{when}"] = float(res["dice"])
            feedback.pushInfo(f"segmenter {target} Dice: before {seg['before'].get('dice')}, after "
                              f"{seg['after'].get('dice')} ({seg['checkpoint']})")
        for key in SCORES:
            for when, res in (("BEFORE", result.before), ("AFTER", result.after)):
                value = res.get(key)
                if isinstance(value, (int, float)):
                    out[f"{key.upper()}_{when}"] = float(value)
            feedback.pushInfo(f"{key}: before {result.before.get(key)}, after {result.after.get(key)}")
        feedback.pushInfo(f"report: {result.report_md}")
        return out
