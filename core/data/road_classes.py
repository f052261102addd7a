"""Which OSM ``highway`` classes are roads for the road masks, and how wide they are.

Why a module of its own, without GDAL or NumPy: the CLI's ``rasterize --help``
prints this table, and the help must not wait for rasterio to load; the
rasteriser (:mod:`core.data.vectors`) reads the same numbers.
"""

from __future__ import annotations

from typing import Dict, Tuple

__all__ = ["ROAD_WIDTHS_M", "NON_VEHICLE_CLASSES", "DEFAULT_ROAD_WIDTH_M"]

# Carriageway width per OSM highway class, in metres: typical European values
# (lanes x ~3.25 m, plus shoulders for motorways). Override per call with `widths`.
# Classes neither here nor in NON_VEHICLE_CLASSES get DEFAULT_ROAD_WIDTH_M.
ROAD_WIDTHS_M: Dict[str, float] = {
    "motorway": 20.0,
    "trunk": 16.0,
    "primary": 12.0,
    "secondary": 10.0,
    "tertiary": 8.0,
    "motorway_link": 8.0,
    "trunk_link": 7.0,
    "primary_link": 7.0,
    "secondary_link": 6.0,
    "tertiary_link": 6.0,
    "unclassified": 6.0,
    "residential": 6.0,
    "living_street": 5.0,
    "service": 4.0,
    "road": 5.0,
    "busway": 6.0,
    "track": 3.0,
}
#: OSM highway classes that are not roads for vehicles (or not built / no longer used):
#: left out unless ``widths`` gives them a width (e.g. ``{"footway": 2.0, "path": 1.5}``).
NON_VEHICLE_CLASSES: Tuple[str, ...] = (
    "footway", "path", "steps", "pedestrian", "cycleway", "bridleway", "corridor", "elevator", "platform",
    "via_ferrata", "proposed", "construction", "abandoned", "disused", "razed",
)
DEFAULT_ROAD_WIDTH_M = 4.0
