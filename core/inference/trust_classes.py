"""The trust class of every SR pixel: 0 supported, 1 uncertain, 2 likely invented (255 = no data).

Torch-free (the plugin may import it for colours and names). The class is a
rule over the trust map's signals, each in its own unit:

* **disagreement** D (reflectance): the output, degraded to 10 m, differs from
  what most revisits saw. Likely invented when D >= ``disagreement``, the
  output fits the revisits worse than the bicubic upsampling of them by at
  least ``beyond_bicubic`` (a blurry output disagrees at edges too, but that is
  detail missed, not invented) *and* the revisits agree among themselves better
  than that (spread < D; when they do not, a cloud or a change between dates,
  S-2 itself is not sure there). Uncertain from ``disagreement_uncertain``.
* **revisit spread** S (reflectance): uncertain from ``spread``.
* **instability** I (reflectance, when the checkpoint was at hand): the output
  moves when the input is flipped, turned, shifted by a third of a pixel or
  loses a revisit. Likely invented from ``instability``, uncertain from
  ``instability_uncertain``.
* **grid** (score, amplitude in reflectance): an upsampler's 3-px checkerboard.
  Likely invented when its amplitude reaches ``grid_amplitude`` and the score
  says a grid dominates there (``grid_score``); uncertain from
  ``grid_amplitude_uncertain`` with the same score.

A pixel takes the highest class any signal gives it. Signals that are NaN
(no checkpoint: no instability; a window mostly nodata: no grid value) give
no class; no disagreement (no valid revisit or SR pixel) makes the pixel nodata.

How the thresholds were set (``python scripts/evaluate_trust.py --calibrate``, numbers in
``docs/results/trust_calibration.json``): on two world-v2 calibration scenes (seeds 800-801, apart
from the evaluation's 900-902), "invented" is where an output leaves the range between the bicubic
upsampling of its input and the HR truth by more than 0.02 reflectance (3x3 mean;
:func:`core.evaluation.trust_eval.invented_truth`). The outputs were the HR image with stamped
3-px checkerboards (RMS 0.01, 0.02, 0.04), with painted roads and roofs that are not in the HR
image, with "phantom" roads (detail finer than 10 m only), and the four shipped networks' outputs.
Each "likely invented" threshold is the value above which 0.5 % of the truly *supported* pixels of
those outputs lie, each "uncertain" threshold 2.5 % (the grid amplitude's among pixels whose grid
score reaches ``grid_score``): four signals, so the rule as a whole keeps within about 2 % and 10 %
of false alarms where nothing was invented. Measured on the calibration samples: networks' outputs
1.5 % / 10 % false alarms, precision 0.57 / 0.43 and recall 0.11 / 0.42 for "likely invented" / "at
least uncertain"; planted inventions precision 1.00, recall 0.65 (the phantom roads are the miss:
without the network there is no instability band, and they average out at 10 m). The disagreement
threshold stays :class:`core.options.TrustOptions` ``threshold`` (0.02, about ten times S-2's noise;
its calibrated 0.5 % value was 0.012); the spread threshold is the same 0.02: clouds and changes
between dates, which the synthetic revisits do not have, so it could not be calibrated here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

import numpy as np

__all__ = ["ClassRule", "classify", "CLASS_NAMES", "CLASS_KEYS", "CLASS_COLOURS", "NODATA", "SUPPORTED",
           "UNCERTAIN", "INVENTED"]

SUPPORTED, UNCERTAIN, INVENTED = 0, 1, 2
NODATA = 255
#: Names for legends and messages, by class value.
CLASS_NAMES: Dict[int, str] = {SUPPORTED: "supported", UNCERTAIN: "uncertain", INVENTED: "likely invented"}
#: Keys of the class shares in the summary (``supported_share`` ...).
CLASS_KEYS: Dict[int, str] = {SUPPORTED: "supported", UNCERTAIN: "uncertain", INVENTED: "invented"}
#: RGBA colour of each class, embedded as the class raster's colour table (QGIS shows it as is):
#: supported faint green (the output shows through), uncertain orange, likely invented red.
CLASS_COLOURS: Dict[int, Tuple[int, int, int, int]] = {
    SUPPORTED: (26, 150, 65, 60),
    UNCERTAIN: (253, 174, 97, 170),
    INVENTED: (215, 25, 28, 230),
}


@dataclass(frozen=True)
class ClassRule:
    """Thresholds of the class rule (see the module docstring; units: reflectance, score for ``grid_score``).

    Defaults: calibrated on world-v2 scenes 800-801 (``docs/results/trust_calibration.json``), rounded;
    ``disagreement`` and ``spread`` are the fixed 0.02 (ten times S-2's noise).
    """

    disagreement: float = 0.02
    beyond_bicubic: float = 0.003  # calibrated 0.0033
    disagreement_uncertain: float = 0.008  # calibrated 0.0077
    spread: float = 0.02
    instability: float = 0.06  # calibrated 0.0612
    instability_uncertain: float = 0.04  # calibrated 0.0397
    grid_amplitude: float = 0.005  # calibrated 0.0051 (where the score is >= grid_score)
    grid_amplitude_uncertain: float = 0.004  # calibrated 0.0039
    grid_score: float = 2.0

    def with_disagreement(self, threshold: float) -> ClassRule:
        """The same rule with another disagreement threshold (the uncertain one scaled alike)."""
        d = asdict(self)
        ratio = self.disagreement_uncertain / self.disagreement if self.disagreement else 0.5
        d.update(disagreement=float(threshold), disagreement_uncertain=ratio * float(threshold))
        return ClassRule(**d)

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


def _ge(a: Optional[np.ndarray], t: float) -> np.ndarray:
    """``a >= t`` with NaN as False."""
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(a, nan=-np.inf) >= t


def classify(rule: ClassRule, disagreement: np.ndarray, spread: np.ndarray, beyond_bicubic: np.ndarray,
             instability: Optional[np.ndarray], grid_score: Optional[np.ndarray],
             grid_amplitude: Optional[np.ndarray]) -> np.ndarray:
    """uint8 classes (0/1/2, 255 where the disagreement is NaN) from same-shaped signal arrays."""
    d = disagreement
    s = np.nan_to_num(spread, nan=0.0)
    invented = _ge(d, rule.disagreement) & _ge(beyond_bicubic, rule.beyond_bicubic) & (s < d)
    uncertain = _ge(d, rule.disagreement_uncertain) | _ge(spread, rule.spread)
    if instability is not None:
        invented |= _ge(instability, rule.instability)
        uncertain |= _ge(instability, rule.instability_uncertain)
    if grid_score is not None and grid_amplitude is not None:
        gridded = _ge(grid_score, rule.grid_score)
        invented |= gridded & _ge(grid_amplitude, rule.grid_amplitude)
        uncertain |= gridded & _ge(grid_amplitude, rule.grid_amplitude_uncertain)
    out = np.where(invented, INVENTED, np.where(uncertain, UNCERTAIN, SUPPORTED)).astype(np.uint8)
    out[~np.isfinite(d)] = NODATA
    return out
