"""How real L1C relates to real L2A of the same acquisition, against the radiometry the networks train under.

Why: training patches are shown "as L1C" by ``core.data.radiometric.RadiometricJitter``
(per band: ``L1C = g * j_b * L2A + a * (l_b / 490 nm) ** -k``). Its ranges were
first set from dark-object offsets of one L1C scene; this script measures the
relation on ESA's own L1C and L2A products of one acquisition (same 10 m grid)
and says, band by band, whether the fitted gain and offset lie inside the
ranges the training draws from.

Per band it fits ``L1C = gain * L2A + offset`` (reflectance) by reduced major
axis regression on the pixels a scene classification calls vegetation or bare soil (SCL 4 and
5, when given: water, snow, cloud and shadow follow other physics), and prints
a Markdown table: gain, offset, the offset relative to B02 against the
jitter's wavelength law, and whether each lies in the jitter's range.

Data: any pair on one grid. The one used in ``docs/results/real_scenes.md`` is
the sen2r R package's example output (github.com/ranghetti/sen2r, GPL-3,
``inst/extdata/out/S2A1C_*_Barbellino_TOA_10.tif`` with
``S2A2A_*_Barbellino_BOA_10.tif`` and ``*_SCL_10.tif``: Lago del Barbellino,
Italian Alps, 2017-07-03 and 2019-07-23, 42 x 24 px; bands in ESA's order, so
B02/B03/B04/B08 are bands 2/3/4/8 in both files).

Usage::

    python scripts/fit_l1c_l2a.py --pair L1C.tif L2A.tif [--scl SCL.tif] [--pair ... --scl ...]
        [--bands 2 3 4 8] [--l2a-offset 0]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BAND_NAMES = ("B02", "B03", "B04", "B08")
#: Scene classification classes whose L1C/L2A relation the jitter models (vegetation, bare soil).
LAND_CLASSES = (4, 5)
#: Sentinel-2 digital numbers per unit reflectance.
QUANTIFICATION = 10000.0


@dataclass
class BandFit:
    band: str
    gain: float
    offset: float
    r: float
    pixels: int


def read_bands(path: Path, bands: Sequence[int]) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(list(bands)).astype(np.float64)


def land_mask(scl: Optional[Path], like: Path) -> Optional[np.ndarray]:
    """The scene classification resampled (nearest) to the bands' grid, as a vegetation/bare-soil mask."""
    if scl is None:
        return None
    import rasterio
    from rasterio.warp import Resampling, reproject

    with rasterio.open(like) as ref, rasterio.open(scl) as src:
        out = np.zeros((ref.height, ref.width), np.uint8)
        reproject(src.read(1), out, src_transform=src.transform, src_crs=src.crs, dst_transform=ref.transform,
                  dst_crs=ref.crs, resampling=Resampling.nearest)
    return np.isin(out, LAND_CLASSES)


def fit_pair(l1c: Path, l2a: Path, scl: Optional[Path], bands: Sequence[int], l2a_offset: float) -> List[BandFit]:
    top = read_bands(l1c, bands) / QUANTIFICATION
    surface = (read_bands(l2a, bands) + l2a_offset) / QUANTIFICATION
    if top.shape != surface.shape:
        raise SystemExit(f"{l1c.name} and {l2a.name} are not on one grid: {top.shape} vs {surface.shape}")
    keep = land_mask(scl, l2a)
    if keep is None:
        keep = np.ones(top.shape[1:], bool)
    keep &= np.all((top > 0) & (surface > 0) & (top < 6.5) & (surface < 6.5), axis=0)  # no nodata (65535)
    fits = []
    for i, band in enumerate(BAND_NAMES[:len(bands)]):
        x, y = surface[i][keep], top[i][keep]
        # Reduced major axis (geometric mean) regression: neither level is free of error (terrain and
        # adjacency corrections scatter L2A; least squares of one on the other would bias the gain either way).
        r = float(np.corrcoef(x, y)[0, 1])
        gain = float(np.sign(r) * y.std() / x.std())
        offset = float(y.mean() - gain * x.mean())
        fits.append(BandFit(band, gain, offset, r, int(keep.sum())))
    return fits


def jitter_ranges():
    """Per band: (gain range, offset range, offset relative to B02) the training jitter draws from."""
    from core.data.radiometric import RadiometricJitter, band_wavelengths

    jitter = RadiometricJitter()
    law = [float(f) for f in (band_wavelengths(BAND_NAMES) / 490.0) ** -jitter.exponent]
    # the transmittance takes up to ``transmittance * law_b`` of each band's contrast (none in the worst case)
    gains = [(jitter.gain_low * (1 - jitter.band_gain) * (1 - jitter.transmittance * f),
              jitter.gain_high * (1 + jitter.band_gain)) for f in law]
    return jitter, gains, [(0.0, jitter.path_radiance * f) for f in law], law


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", nargs=2, action="append", type=Path, metavar=("L1C", "L2A"), required=True,
                    help="an L1C file and the L2A file of the same acquisition on the same grid (repeatable)")
    ap.add_argument("--scl", action="append", type=Path, default=[],
                    help="the scene classification of each pair, in the same order (optional)")
    ap.add_argument("--bands", nargs=4, type=int, default=[2, 3, 4, 8],
                    help="1-based band numbers of B02 B03 B04 B08 in both files (default: ESA order, 2 3 4 8)")
    ap.add_argument("--l2a-offset", type=float, default=0.0,
                    help="add to L2A digital numbers first: -1000 for products of processing baseline 04.00 on")
    args = ap.parse_args(argv)
    if args.scl and len(args.scl) != len(args.pair):
        ap.error("give one --scl per --pair, or none")
    jitter, gains, offsets, law = jitter_ranges()
    print("Training jitter (core.data.radiometric defaults): gain " + ", ".join(
        f"{b} {g[0]:.2f}..{g[1]:.2f}" for b, g in zip(BAND_NAMES, gains))
          + f"; B02 offset 0..{jitter.path_radiance:.3f}; other bands x (wavelength / 490 nm)^-{jitter.exponent:g}\n")
    print("| pair | band | pixels | gain | offset | offset / B02's (jitter's law) | r | gain in range | "
          "offset in range |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    for k, (l1c, l2a) in enumerate(args.pair):
        scl = args.scl[k] if args.scl else None
        fits = fit_pair(l1c, l2a, scl, args.bands, args.l2a_offset)
        for i, f in enumerate(fits):
            ratio = f.offset / fits[0].offset if fits[0].offset else float("nan")
            in_gain = "yes" if gains[i][0] <= f.gain <= gains[i][1] else "**no**"
            in_offset = "yes" if offsets[i][0] <= f.offset <= offsets[i][1] else "**no**"
            print(f"| {l1c.name} | {f.band} | {f.pixels} | {f.gain:.3f} | {f.offset:.4f} | {ratio:.2f} ({law[i]:.2f}) "
                  f"| {f.r:.3f} | {in_gain} | {in_offset} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
