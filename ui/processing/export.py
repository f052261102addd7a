"""Processing algorithm ``s2sr:exportproduct``: one Sentinel-2 product -> a 4-band GeoTIFF QGIS opens as it is.

A product (``.SAFE`` folder, ``.zip``, ``MTD_MSIL2A.xml``) is not a layer and
its JPEG 2000 bands carry neither the radiometric offset of baseline 04.00
nor the cloud mask; the export writes B02, B03, B04, B08 on their 10 m grid
with the offset as GDAL scale/offset (QGIS reads reflectance) and the SCL
classes chosen as nodata. Its parameters are ``ExportOptions``' own fields
(one help text, one parser; the extent is the algorithm's extent parameter). What the engine applied (offset rule,
classes masked, clear share) goes to the log, read from the tags it writes.
"""

from __future__ import annotations

from typing import Any, Dict

from qgis.core import (
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
)

from ...core import api
from ...core.options import ExportOptions
from ..s2_products import export_notes, export_tags, input_crs, write_default_style
from ..sources import Refused
from .base import (
    EXTENT,
    AlgorithmBase,
    FeedbackCancel,
    add_option_parameters,
    extent_in_crs,
    options_from_parameters,
    progress_to,
)

__all__ = ["ExportProductAlgorithm"]

class ExportProductAlgorithm(AlgorithmBase):
    NAME, TITLE = "exportproduct", "Open a Sentinel-2 product as a 4-band GeoTIFF"
    HELP = (
        "Writes a Sentinel-2 L2A or L1C product's four 10 m bands (B02, B03, B04, B08) into one GeoTIFF on their "
        "10 m grid, optionally cropped to an extent. Give the product's .zip, its .SAFE folder (type or paste "
        "the folder path) or its MTD_MSIL2A.xml / MTD_MSIL1C.xml. Values stay the product's digital numbers; "
        "the reflectance rule, including the -1000 offset of processing baseline 04.00 and later, is stored as "
        "the bands' scale and offset, so QGIS and the super-resolution read reflectance. Pixels of the chosen "
        "scene classes (SCL: clouds, shadows, snow...) become nodata (L2A only). Bands are named, so the "
        "output opens in true colour and 4-band networks find their bands."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterFile(
            "PRODUCT", "Sentinel-2 product (.zip, MTD_MSI*.xml or .SAFE folder)",
            fileFilter="Sentinel-2 products (*.zip *.ZIP *.xml *.XML);;All files (*)"))
        self.add_extent()
        add_option_parameters(self, ExportOptions)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "4-band GeoTIFF"))
        self.addOutput(QgsProcessingOutputString("OFFSET_RULE", "Radiometric offset rule applied"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        product = self.parameterAsFile(parameters, "PRODUCT", context)
        if not product:
            raise self.fail(ValueError("give a Sentinel-2 product"))
        extent = None
        if parameters.get(EXTENT):
            try:
                crs = input_crs(product)
            except Refused as exc:
                raise self.fail(exc) from None
            extent = extent_in_crs(self, parameters, context, crs)
        options = options_from_parameters(ExportOptions, self, parameters, context, extent=extent)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        try:
            path = api.export_product(product, out, options, progress=progress_to(feedback),
                                      cancel=FeedbackCancel(feedback))
            notes, tags = export_notes(path), export_tags(path)
        except Exception as exc:
            raise self.fail(exc) from None
        self.report(feedback, notes + [n for n in (write_default_style(path),) if n])
        result: Dict[str, Any] = {"OUTPUT": str(path), "OFFSET_RULE": tags.get("S2_OFFSET_RULE", "")}
        return result
