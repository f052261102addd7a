"""The plain values of a comparison (masks given, results returned, row names): what the plugin handles.

Why apart from :mod:`.compare`: ``core.api`` re-exports these when QGIS starts
and the CLI names the rows in ``--help``; neither may import the engine
(PyTorch, rasterio) to do so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["MaskSource", "CompareResult", "TARGETS", "TRUST_CLASS_KEYS", "NO_TRUST_NOTE", "METRIC_NAMES",
           "TrustInputs"]

TARGETS = ("buildings", "roads")
#: The trust classes whose shares each row reports (``trust_supported`` ...; the summary's ``class_shares`` keys).
TRUST_CLASS_KEYS = ("supported", "uncertain", "invented")
#: (result key, title) of every metric row, in the order the dock and the CLI show them.
METRIC_NAMES = (("cpsnr", "cPSNR (dB)"), ("cssim", "cSSIM"), ("buildings_dice", "Building Dice"),
                ("roads_dice", "Road Dice"), ("trust_mean", "Trust: mean disagreement"),
                ("trust_flagged", "Trust: share flagged"), ("trust_supported", "Trust: share supported"),
                ("trust_uncertain", "Trust: share uncertain"), ("trust_invented", "Trust: share likely invented"))
#: label -> (LR inputs, band) that made an SR output (its trust map needs them)
TrustInputs = Dict[str, Tuple[List[str], Any]]


@dataclass
class MaskSource:
    """A building or road mask: a raster (1 = target) or a vector layer rasterized on the SR grid."""

    path: str
    kind: str = "raster"  # "raster" | "vector"
    layer: Optional[str] = None  # layer name inside a multi-layer vector file
    band: int = 1


@dataclass
class CompareResult:
    """Metrics per output label; ``None`` where a value could not be computed, with the reason in ``notes``."""

    outputs: Dict[str, str]
    metrics: Dict[str, Dict[str, Optional[float]]]
    messages: List[str] = field(default_factory=list)
    notes: Dict[str, str] = field(default_factory=dict)  # metric -> why it is missing
    trust_paths: Dict[str, str] = field(default_factory=dict)  # label -> trust map kept beside the output
    #: metric -> which band(s) it was computed on, when that is not simply "band 1" (multi-band outputs):
    #: e.g. ``{"cpsnr": "mean of B02, B03, B04, B08 (the bands the reference shares)"}``
    metric_bands: Dict[str, str] = field(default_factory=dict)


#: Why the trust rows are empty when the comparison was asked not to make trust maps.
NO_TRUST_NOTE = "trust maps not computed (tick 'Trust maps' to fill these rows; they take several times a run)"
