"""What every Processing algorithm of the plugin shares, and its parameters generated from ``core.options``.

Why generated: a job's options (band, tiling, device, anchoring...) are one
frozen dataclass in ``core/options.py`` whose fields carry their help text,
label, limits, choices and Processing name. The CLI builds its flags from the
same fields, and the dock fills the same dataclass from its widgets, so an
option added there appears here (toolbox, modeler, batch mode, qgis_process)
with no second declaration to drift:

* bool -> Boolean; int / float -> Number ("0 = automatic" when the option is
  ``auto``); choice -> Enum; band -> Band tied to the input layer (a String
  "number or name" where there is no single input layer); ints / strs ->
  multiple Enum (with choices) or a comma-separated String; str -> String;
* extent -> skipped: the algorithm adds its own QgsProcessingParameterExtent
  and converts it into the layer's CRS (:func:`extent_in_layer_crs`);
* ``processing=None`` -> not a parameter; ``advanced=True`` -> the Advanced group.

:func:`options_from_parameters` reads them back into the dataclass, whose own
checks then refuse a bad value with one sentence (raised as
``QgsProcessingException``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type, TypeVar

from qgis.core import (
    Qgis,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsRasterLayer,
)

from ...core.options import OptionMeta, option_fields, parse_band, processing_name
from ..log import analyst_message
from ..sources import Refused, layer_file, utm_crs_for_layer

__all__ = [
    "GROUP",
    "GROUP_ID",
    "TRAIN_GROUP",
    "TRAIN_GROUP_ID",
    "AlgorithmBase",
    "FeedbackCancel",
    "progress_to",
    "shipped_default",
    "option_parameters",
    "add_option_parameters",
    "options_from_parameters",
    "extent_in_layer_crs",
    "EXTENT",
]

GROUP, GROUP_ID = "Super-resolution and segmentation", "s2sr"
TRAIN_GROUP, TRAIN_GROUP_ID = "Training and evaluation", "s2sr_training"
EXTENT = "EXTENT"
OptionsT = TypeVar("OptionsT")
JobT = TypeVar("JobT")


class FeedbackCancel:
    """``core``'s cancel token interface on top of a Processing feedback object."""

    def __init__(self, feedback: Any) -> None:
        self.feedback = feedback

    @property
    def cancelled(self) -> bool:
        return bool(self.feedback is not None and self.feedback.isCanceled())


def progress_to(feedback: Any, percent: bool = False) -> Callable[[float, str], None]:
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


def shipped_default(task: str, target: Optional[str] = None, one_band: bool = False) -> Optional[str]:
    """The first shipped checkpoint for ``task`` (and segmentation ``target``), as a parameter default.

    ``one_band``: only a network taking one band (the area workflows prepare one band; the shipped SR
    networks take four, so such a parameter starts empty rather than with a file that would be refused).
    """
    try:  # the cards as plain JSON: no PyTorch while QGIS starts (issue 21)
        from ...core import api

        found = api.shipped_checkpoint(task, target, one_band=one_band)
        return str(found) if found is not None else None
    except Exception:  # a broken shipped file must not break the toolbox
        return None


# --------------------------------------------------------------------------- options -> parameters


def _advanced_flag() -> Any:
    flags = getattr(Qgis, "ProcessingParameterFlag", None)  # QGIS >= 3.36
    return flags.Advanced if flags is not None else QgsProcessingParameterDefinition.FlagAdvanced


def _number_type(integer: bool) -> Any:
    types = getattr(Qgis, "ProcessingNumberParameterType", None)  # QGIS >= 3.36
    if types is not None:
        return types.Integer if integer else types.Double
    return QgsProcessingParameterNumber.Type.Integer if integer else QgsProcessingParameterNumber.Type.Double


def _parameter(f: dataclasses.Field, meta: OptionMeta, name: str,
               band_parent: Optional[str]) -> QgsProcessingParameterDefinition:
    """One Processing parameter for one option field (see the module docstring for the mapping)."""
    default, label, kind = f.default, meta.label, meta.kind
    if kind == "bool":
        param = QgsProcessingParameterBoolean(name, label, bool(default))
    elif kind in ("int", "float"):
        auto = meta.auto or default is None
        minimum = 0.0 if auto else meta.minimum
        param = QgsProcessingParameterNumber(
            name, f"{label} (0 = automatic)" if auto else label, _number_type(kind == "int"),
            0 if default is None else default, False,
            -1.7976931348623157e308 if minimum is None else minimum,
            1.7976931348623157e308 if meta.maximum is None else meta.maximum)
    elif kind == "choice":
        param = QgsProcessingParameterEnum(name, label, [str(c) for c in meta.choices], False,
                                           list(meta.choices).index(default))
    elif kind == "band" and band_parent:
        param = QgsProcessingParameterBand(name, label, default, band_parent, default is None)
    elif kind in ("ints", "strs") and meta.choices:
        picks = [list(meta.choices).index(v) for v in (default or ())]
        param = QgsProcessingParameterEnum(name, label, [str(c) for c in meta.choices], True, picks, True)
    else:  # str, a band without one input layer (number or name), lists without choices
        text = ",".join(map(str, default)) if isinstance(default, tuple) else ("" if default is None else str(default))
        hint = {"band": " (number or name; empty = default)", "ints": " (comma-separated)",
                "strs": " (comma-separated)"}.get(kind, "")
        param = QgsProcessingParameterString(name, f"{label}{hint}", text, False, default is None or kind != "str")
    param.setHelp(meta.help)
    if meta.advanced:
        param.setFlags(param.flags() | _advanced_flag())
    return param


def option_parameters(cls: type, band_parent: Optional[str] = None, exclude: Iterable[str] = (),
                      names: Optional[Dict[str, str]] = None) -> List[QgsProcessingParameterDefinition]:
    """The Processing parameters of an options dataclass, in field order.

    ``exclude``: field names the algorithm handles itself. ``names``: field ->
    parameter name where it must differ from the field's own (kept for
    parameter names published before the option existed).
    """
    out = []
    for f, meta in option_fields(cls):
        name = (names or {}).get(f.name) or processing_name(f, meta)
        if name is None or meta.kind == "extent" or f.name in exclude:
            continue
        out.append(_parameter(f, meta, name, band_parent))
    return out


def add_option_parameters(alg: QgsProcessingAlgorithm, cls: type, band_parent: Optional[str] = None,
                          exclude: Iterable[str] = (), names: Optional[Dict[str, str]] = None) -> None:
    """Add :func:`option_parameters` to ``alg`` (call from ``initAlgorithm``)."""
    for param in option_parameters(cls, band_parent, exclude, names):
        alg.addParameter(param)


def _split(text: str) -> List[str]:
    return [part for part in text.replace(";", ",").replace(" ", ",").split(",") if part]


def _value(alg: QgsProcessingAlgorithm, definition: QgsProcessingParameterDefinition, meta: OptionMeta,
           default: Any, parameters: Dict[str, Any], context: Any) -> Any:
    name = definition.name()
    kind = meta.kind
    if isinstance(definition, QgsProcessingParameterBoolean):
        return alg.parameterAsBoolean(parameters, name, context)
    if isinstance(definition, QgsProcessingParameterNumber):
        value = (alg.parameterAsInt if kind == "int" else alg.parameterAsDouble)(parameters, name, context)
        return None if (meta.auto or default is None) and value == 0 else value
    if isinstance(definition, QgsProcessingParameterEnum):
        if definition.allowMultiple():
            return tuple(meta.choices[i] for i in alg.parameterAsEnums(parameters, name, context))
        return meta.choices[alg.parameterAsEnum(parameters, name, context)]
    if isinstance(definition, QgsProcessingParameterBand):
        band = alg.parameterAsInt(parameters, name, context)
        return None if band < 1 and default is None else band
    text = (alg.parameterAsString(parameters, name, context) or "").strip()
    if kind == "band":  # "0" kept meaning "the default" (the published Number parameter's 0)
        band = parse_band(text) if text else default
        return default if band == 0 else band
    if kind == "strs":
        return tuple(_split(text))
    if kind == "ints":
        try:
            return tuple(int(v) for v in _split(text))
        except ValueError:
            raise QgsProcessingException(f"{definition.description()}: expected whole numbers, got '{text}'") \
                from None
    return text if text or default is not None else None


def options_from_parameters(cls: Type[OptionsT], alg: QgsProcessingAlgorithm, parameters: Dict[str, Any],
                            context: Any, names: Optional[Dict[str, str]] = None, **extra: Any) -> OptionsT:
    """The options object of ``cls`` from an algorithm's parameters (``extra`` wins, e.g. ``extent=``).

    A parameter that is absent or None keeps the dataclass default (which is
    the parameter's default anyway). A value the options refuse raises
    ``QgsProcessingException`` with the options' own sentence.
    """
    values: Dict[str, Any] = {}
    for f, meta in option_fields(cls):
        name = (names or {}).get(f.name) or processing_name(f, meta)
        if f.name in extra or name is None or meta.kind == "extent":
            continue
        definition = alg.parameterDefinition(name)
        if definition is None or parameters.get(name) is None:
            continue
        values[f.name] = _value(alg, definition, meta, f.default, parameters, context)
    values.update(extra)
    try:
        return cls(**values)
    except ValueError as exc:  # core.jobs.InputError: one sentence naming the option
        raise QgsProcessingException(analyst_message(exc)) from None


def extent_in_layer_crs(alg: QgsProcessingAlgorithm, parameters: Dict[str, Any], context: Any,
                        layer: Optional[QgsRasterLayer], name: str = EXTENT,
                        ) -> Optional[Tuple[float, float, float, float]]:
    """The optional extent parameter in the grid the engine reads (the layer's CRS; UTM for degrees)."""
    if layer is None or not parameters.get(name):
        return None
    crs = utm_crs_for_layer(layer) if layer.crs().isGeographic() else layer.crs()
    return extent_in_crs(alg, parameters, context, crs, name)


def extent_in_crs(alg: QgsProcessingAlgorithm, parameters: Dict[str, Any], context: Any, crs: Any,
                  name: str = EXTENT) -> Optional[Tuple[float, float, float, float]]:
    """The extent parameter converted into ``crs`` as (xmin, ymin, xmax, ymax); None when null or empty.

    Shared by the layer-based algorithms and those whose input is a file (a
    product or stack), which find the CRS themselves.
    """
    rect = alg.parameterAsExtent(parameters, name, context, crs)
    if rect.isNull() or rect.isEmpty():
        return None
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())


# --------------------------------------------------------------------------- the shared base class


class AlgorithmBase(QgsProcessingAlgorithm):
    """Common plumbing of the plugin's algorithms: naming, help, error wording, layer -> file."""

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

    def add_extent(self, name: str = EXTENT) -> None:
        """The optional extent an options dataclass leaves to the algorithm (see :func:`extent_in_layer_crs`)."""
        self.addParameter(QgsProcessingParameterExtent(name, "Only this extent (optional)", optional=True))

    @staticmethod
    def fail(exc: BaseException) -> QgsProcessingException:
        """An engine error as the exception Processing shows (the engine's words; "cancelled" for a cancel)."""
        if isinstance(exc, QgsProcessingException):
            return exc
        if type(exc).__name__ in ("Cancelled", "TrainingCancelled"):
            return QgsProcessingException(f"cancelled: {exc}")
        return QgsProcessingException(analyst_message(exc))

    @staticmethod
    def file_of(layer: Optional[QgsRasterLayer], what: str) -> str:
        if layer is None:
            raise QgsProcessingException(f"{what}: no raster given")
        try:
            return layer_file(layer)
        except Refused as exc:
            raise QgsProcessingException(f"{what}: {exc}") from None

    def run_engine(self, feedback: Any, job: Callable[..., JobT], *args: Any, **kwargs: Any) -> JobT:
        """``job(*args, **kwargs)`` with the feedback's progress and cancel; its errors worded by :meth:`fail`.

        Every engine call of the algorithms goes this way, so progress, cancel
        and the error wording cannot drift apart between them.
        """
        try:
            return job(*args, progress=progress_to(feedback), cancel=FeedbackCancel(feedback), **kwargs)
        except Exception as exc:
            raise self.fail(exc) from None

    @staticmethod
    def report(feedback: Any, messages: Sequence[str]) -> None:
        for m in messages or []:
            feedback.pushInfo(m)
