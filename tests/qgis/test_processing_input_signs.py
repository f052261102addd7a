"""Processing's log says the input's level, snow and haze (issue 20 item 4), and segmentation masks snow."""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.transform import from_origin

from tests.helpers import l2a_only_network, write_geotiff


def test_segment_log_warns_about_l1c_and_snow_and_leaves_snow_without_objects(provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingFeedback

    from core.api import shipped_models_dir

    class Log(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.lines = []

        def pushInfo(self, info: str) -> None:  # noqa: N802 (Qt's name)
            self.lines.append(info)
            super().pushInfo(info)

    img = np.stack([np.full((60, 60), v) for v in (0.15, 0.12, 0.10, 0.30)])  # a hazy L1C field
    img[:, :24] = np.array([0.82, 0.80, 0.78, 0.70])[:, None, None]  # snow
    hr = write_geotiff(tmp_path / "winter_sr.tif", (img * 10000).astype(np.uint16), descriptions=["B02", "B03", "B04", "B08"],
                       transform=from_origin(500000.0, 6000000.0, 10 / 3, 10 / 3), tags={"S2_LEVEL": "L1C"})
    log = Log()
    res = processing.run("s2sr:segment", {
        "INPUT": str(hr), "BAND": 1, "BUILDINGS": str(l2a_only_network(tmp_path)),
        "OUTPUT_PROB": str(tmp_path / "p.tif"), "OUTPUT_MASK": str(tmp_path / "m.tif")}, feedback=log)
    text = "\n".join(log.lines)
    assert "winter_sr.tif is L1C (top-of-atmosphere reflectance); l2a_buildings was trained on L2A" in text
    assert "About 40 % of winter_sr.tif is bright snow or thick cloud" in text and "a snow-covered scene" in text
    assert "% of the area looks like a snow-covered scene" in text
    with rasterio.open(res["OUTPUT_MASK"]) as m:
        assert (m.read(1)[:24] == 0).all()
    # the shipped networks were trained for L1C and L2A: the level is said, not warned about
    log = Log()
    processing.run("s2sr:segment", {
        "INPUT": str(hr), "BAND": 1, "ROADS": str(shipped_models_dir() / "unetpp_roads.safetensors"),
        "OUTPUT_PROB": str(tmp_path / "rp.tif"), "OUTPUT_MASK": str(tmp_path / "r.tif")}, feedback=log)
    text = "\n".join(log.lines)
    assert "winter_sr.tif is L1C (top-of-atmosphere reflectance)." in text and "was trained on L2A" not in text
