"""Downloaded Sentinel-2 products are untrusted input (issue 23): crafted band files, bombs, entities, links, radiometry.

Every product here is real: ``.SAFE`` folders with lossless JPEG 2000 bands
written by GDAL (``tests.s2_fixtures``), real zips, real VRT XML, real XML with
a DTD, a real HTTP server on 127.0.0.1 that the test starts and stops. Each
test fails without its fix: the crafted file used to be obeyed or read to the end.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import threading
import time
import zipfile
from pathlib import Path
from typing import Iterator, List

import numpy as np
import pytest
import rasterio

from core.data.scene import SceneError, read_scene, write_scene
from core.io.radiometry import ImplausibleRadiometry
from core.io.rasters import FrameSet
from core.io.s2_product import export_product, open_product
from core.io.s2_untrusted import MEMBER_MAX_SIDE, METADATA_MAX_BYTES, METADATA_MAX_ELEMENTS, product_env
from core.io.stack import build_stack
from core.jobs import InputError
from core.options import StackOptions
from tests.robustness_support import assert_one_line_error, run_main, tiny_scene
from tests.s2_fixtures import make_safe, write_geotiff, zip_safe

SIZE = 60


def band_file(safe: Path, band: str) -> Path:
    """The JP2 of one 10 m band inside a ``.SAFE`` folder."""
    return next(safe.rglob(f"*_{band}_10m.jp2"))


def metadata_file(safe: Path) -> Path:
    return next(safe.glob("MTD_MSIL*.xml"))


def vrt_text(source: str) -> str:
    """A real VRT on the product's 10 m grid whose one band reads ``source`` (a file path or a /vsicurl/ URL)."""
    return f"""<VRTDataset rasterXSize="{SIZE}" rasterYSize="{SIZE}">
  <SRS>EPSG:32634</SRS>
  <GeoTransform>499980.0, 10.0, 0.0, 5600040.0, 0.0, -10.0</GeoTransform>
  <VRTRasterBand dataType="UInt16" band="1">
    <SimpleSource>
      <SourceFilename relativeToVRT="0">{source}</SourceFilename>
      <SourceBand>1</SourceBand>
    </SimpleSource>
  </VRTRasterBand>
</VRTDataset>
"""


def secret_raster(folder: Path) -> Path:
    """A GeoTIFF outside any product whose pixels must never reach an export: all 4242."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_geotiff(folder / "secret.tif", np.full((SIZE, SIZE), 4242, dtype=np.uint16))


# --------------------------------------------------------------------------- 1. band files obey only their format


def test_vrt_disguised_as_band_jp2_is_refused_naming_the_member(tmp_path):
    secret = secret_raster(tmp_path / "elsewhere")
    safe = make_safe(tmp_path / "dl", size=SIZE)
    b02 = band_file(safe, "B02")
    b02.write_text(vrt_text(str(secret)))
    with rasterio.open(b02) as ds:  # the crafted file really is a working VRT onto the secret
        assert int(ds.read(1).max()) == 4242
    out = tmp_path / "out.tif"
    with pytest.raises(InputError, match=rf"band B02 \({re.escape(b02.name)}\).*not a readable JP2OpenJPEG"):
        export_product(safe, out)
    assert not out.exists()


def test_vrt_band_in_a_zip_is_refused_by_the_cli(tmp_path, capsys):
    secret = secret_raster(tmp_path / "elsewhere")
    safe = make_safe(tmp_path / "dl", size=SIZE)
    band_file(safe, "B03").write_text(vrt_text(str(secret)))
    zipped = zip_safe(safe)
    proc = run_main(["export", zipped, "--out", tmp_path / "out.tif"], capsys)
    assert_one_line_error(proc, "band B03", "not a readable JP2OpenJPEG")
    assert not (tmp_path / "out.tif").exists()


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    """Serves one GeoTIFF and counts every request: the product must make none."""

    requests: List[str] = []
    payload = b""

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        type(self).requests.append(f"HEAD {self.path}")
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        type(self).requests.append(f"GET {self.path}")
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def local_server(payload: bytes, seconds: float = 60.0) -> Iterator[http.server.ThreadingHTTPServer]:
    """An HTTP server on 127.0.0.1 (a free port) in a thread; stopped on exit, and by itself after ``seconds``."""
    _CountingHandler.requests = []
    _CountingHandler.payload = payload
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    stopper = threading.Timer(seconds, server.shutdown)
    stopper.daemon = True
    thread.start()
    stopper.start()
    try:
        yield server
    finally:
        stopper.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_vrt_band_pointing_at_a_local_http_server_makes_no_request(tmp_path):
    secret = secret_raster(tmp_path / "served")
    with local_server(secret.read_bytes()) as server:
        port = server.server_address[1]
        safe = make_safe(tmp_path / "dl", size=SIZE)
        band_file(safe, "B04").write_text(vrt_text(f"/vsicurl/http://127.0.0.1:{port}/secret.tif"))
        zipped = zip_safe(safe)
        with pytest.raises(InputError, match=r"band B04 .*not a readable JP2OpenJPEG"):
            export_product(zipped, tmp_path / "out.tif")
        with pytest.raises(InputError, match=r"band B04"):
            build_stack([zipped], tmp_path / "stack.tif", StackOptions(frames=1))
        assert _CountingHandler.requests == []
    assert not (tmp_path / "out.tif").exists() and not (tmp_path / "stack.tif").exists()


def test_product_reading_env_makes_no_request_even_through_a_vrt(tmp_path):
    """The second line of defence: while products are read, /vsicurl/ fetches nothing, whatever opens it."""
    secret = secret_raster(tmp_path / "served")
    with local_server(secret.read_bytes()) as server:
        vrt = tmp_path / "remote.vrt"
        vrt.write_text(vrt_text(f"/vsicurl/http://127.0.0.1:{server.server_address[1]}/secret.tif"))
        with product_env(), pytest.raises(rasterio.errors.RasterioIOError):
            with rasterio.open(vrt) as ds:
                ds.read(1)
        assert _CountingHandler.requests == []
        with rasterio.open(vrt) as ds:  # outside it the same VRT does reach the server: the test can see requests
            assert int(ds.read(1).max()) == 4242
        assert _CountingHandler.requests


def test_band_file_linked_outside_the_product_folder_is_refused(tmp_path):
    other = make_safe(tmp_path / "other", date="2023-06-01", size=SIZE)
    safe = make_safe(tmp_path / "dl", size=SIZE)
    b08 = band_file(safe, "B08")
    b08.unlink()
    b08.symlink_to(band_file(other, "B08"))
    with pytest.raises(InputError, match=r"band B08 .*leads outside the product folder"):
        export_product(safe, tmp_path / "out.tif")


@pytest.mark.parametrize("name", ["T34UDA_20230512T095559_B08_10m.jp2", "T34UDA_20230512_B08.tif"])
def test_loose_band_file_that_is_a_vrt_is_refused_by_readers_and_stack(tmp_path, name):
    secret = secret_raster(tmp_path / "elsewhere")
    loose = tmp_path / "dl" / name
    loose.parent.mkdir()
    loose.write_text(vrt_text(str(secret)))
    with pytest.raises(InputError, match=rf"{re.escape(name)}: not a raster GDAL can read as "):
        with FrameSet([loose], band=1):
            pass
    with pytest.raises(InputError, match=rf"{re.escape(name)}: not a raster GDAL can read as "):
        build_stack([loose], tmp_path / "stack.tif", StackOptions(bands=("B08",)))


def test_band_claiming_more_pixels_than_a_tile_is_refused(tmp_path):
    from affine import Affine

    from tests.s2_fixtures import write_jp2

    safe = make_safe(tmp_path / "dl", size=SIZE)
    b02 = band_file(safe, "B02")
    b02.unlink()
    write_jp2(b02, np.ones((64, MEMBER_MAX_SIDE + 1), dtype=np.uint16), Affine(10.0, 0, 499980.0, 0, -10.0, 5600040.0))
    with pytest.raises(InputError, match=rf"band B02 .*claims {MEMBER_MAX_SIDE + 1} x 64 px"):
        export_product(safe, tmp_path / "out.tif")


# --------------------------------------------------------------------------- 2. metadata bombs


def _bomb_zip(path: Path, mtd_head: str, filler: bytes, repeat: int, mtd_tail: str) -> Path:
    """A real zip holding ``MTD_MSIL2A.xml`` = head + filler x repeat + tail, streamed (never whole in memory)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("S2B_MSIL2A_20230512T095559_N0509_R079_T34UDA_20230512T120000.SAFE/MTD_MSIL2A.xml", "w",
                     force_zip64=True) as fh:
            fh.write(mtd_head.encode())
            for _ in range(repeat):
                fh.write(filler)
            fh.write(mtd_tail.encode())
    return path


def _split_metadata(tmp_path: Path) -> tuple:
    """A real product's metadata, cut just before its root element closes (where a bomb's filler goes)."""
    text = metadata_file(make_safe(tmp_path / "real", size=SIZE)).read_text()
    cut = text.rindex("</n1:")
    return text[:cut], text[cut:]


def test_inflating_metadata_is_refused_by_the_zips_stated_size(tmp_path):
    head, tail = _split_metadata(tmp_path)
    chunk = b" " * (1 << 20)
    bomb = _bomb_zip(tmp_path / "bomb.zip", head, chunk, 2 * METADATA_MAX_BYTES >> 20, tail)
    assert bomb.stat().st_size < METADATA_MAX_BYTES // 50  # a small download that inflates 100-fold and more
    started = time.time()
    with pytest.raises(InputError, match=r"MTD_MSIL2A\.xml is \d+\.\d MB; product metadata is at most"):
        open_product(bomb)
    assert time.time() - started < 2.0  # refused before inflating anything


def test_metadata_of_many_empty_elements_is_refused_early(tmp_path):
    head, tail = _split_metadata(tmp_path)
    count = 3 * METADATA_MAX_ELEMENTS  # ~2.4 MB inflated, under the size cap: the element cap must stop it
    bomb = _bomb_zip(tmp_path / "elements.zip", head, b"<a/>" * 1000, count // 1000, tail)
    with pytest.raises(InputError, match=rf"more than {METADATA_MAX_ELEMENTS} XML elements"):
        open_product(bomb)


def test_oversized_metadata_in_a_folder_is_refused(tmp_path):
    safe = make_safe(tmp_path / "dl", size=SIZE)
    mtd = metadata_file(safe)
    text = mtd.read_text()
    cut = text.rindex("</n1:")
    with open(mtd, "w") as fh:
        fh.write(text[:cut])
        fh.write(" " * (METADATA_MAX_BYTES + 10))
        fh.write(text[cut:])
    with pytest.raises(InputError, match=r"product metadata is at most"):
        open_product(safe)


# --------------------------------------------------------------------------- 3. entities


def _with_doctype(text: str, internal_subset: str) -> str:
    """The metadata with a DOCTYPE (and its internal subset) right after the XML declaration."""
    decl_end = text.index("?>") + 2
    root = re.search(r"<(n1:[A-Za-z0-9_-]+)", text).group(1)
    return f"{text[:decl_end]}\n<!DOCTYPE {root} [{internal_subset}]>{text[decl_end:]}"


def test_internal_entity_in_metadata_is_refused(tmp_path):
    safe = make_safe(tmp_path / "dl", size=SIZE)
    mtd = metadata_file(safe)
    text = _with_doctype(mtd.read_text(), '<!ENTITY q "99999">')
    text = re.sub(r"(<BOA_QUANTIFICATION_VALUE[^>]*>)[^<]*", r"\1&q;", text)
    mtd.write_text(text)
    with pytest.raises(InputError, match=r"declares a DTD"):
        open_product(safe)
    with pytest.raises(InputError, match=r"declares a DTD"):
        open_product(zip_safe(safe))


def test_quadratic_entity_blowup_is_refused(tmp_path):
    safe = make_safe(tmp_path / "dl", size=SIZE)
    mtd = metadata_file(safe)
    big = "x" * 100_000
    text = _with_doctype(mtd.read_text(), f'<!ENTITY a "{big}">')
    text = text.replace("<PRODUCT_TYPE>", "<PRODUCT_TYPE>" + "&a;" * 100, 1)
    mtd.write_text(text)
    with pytest.raises(InputError, match=r"declares a DTD"):
        open_product(zip_safe(safe))


# --------------------------------------------------------------------------- 4. links out of a dataset


def test_revisit_linked_outside_the_scene_is_refused(tmp_path):
    scene_dir = write_scene(tiny_scene(), tmp_path / "data" / "s1")
    outside = secret_raster(tmp_path / "private")
    t00 = sorted((scene_dir / "lr").glob("*.tif"))[0]
    t00.unlink()
    t00.symlink_to(outside)
    with pytest.raises(SceneError, match=r"leads outside"):
        read_scene(scene_dir)


def test_scene_json_naming_a_link_outside_is_refused(tmp_path):
    import json

    scene_dir = write_scene(tiny_scene(), tmp_path / "data" / "s1")
    outside = secret_raster(tmp_path / "private")
    (scene_dir / "lr" / "extra.tif").symlink_to(outside)
    meta_path = scene_dir / "scene.json"
    meta = json.loads(meta_path.read_text())
    meta["lr_files"] = ["lr/extra.tif"]
    meta.pop("dates", None)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SceneError, match=r"lr_files\[0\].*leads outside"):
        read_scene(scene_dir)


def test_links_inside_the_scene_still_work(tmp_path):
    scene_dir = write_scene(tiny_scene(), tmp_path / "data" / "s1")
    frames = sorted((scene_dir / "lr").glob("*.tif"))
    kept = scene_dir / "kept"
    kept.mkdir()
    os.replace(frames[0], kept / frames[0].name)
    frames[0].symlink_to(Path("..") / "kept" / frames[0].name)
    assert read_scene(scene_dir).lr.shape[0] == len(frames)


# --------------------------------------------------------------------------- 5. radiometry that cannot be right


def _set_metadata(safe: Path, pattern: str, value: str) -> None:
    mtd = metadata_file(safe)
    text, n = re.subn(pattern, lambda m: m.group(1) + value, mtd.read_text())
    assert n >= 1, pattern
    mtd.write_text(text)


@pytest.mark.parametrize("value", ["1e999", "1e-300", "nan", "-10000", "0"])
def test_implausible_quantification_is_refused(tmp_path, value):
    safe = make_safe(tmp_path / "dl", size=SIZE)
    _set_metadata(safe, r"(<BOA_QUANTIFICATION_VALUE[^>]*>)[^<]*", value)
    with pytest.raises(ImplausibleRadiometry, match=r"quantification value .* is not plausible"):
        open_product(safe)


@pytest.mark.parametrize("value", ["NaN", "inf", "1e308", "-50000"])
def test_implausible_offset_is_refused(tmp_path, value):
    safe = make_safe(tmp_path / "dl", size=SIZE)
    _set_metadata(safe, r'(<BOA_ADD_OFFSET band_id="1">)[^<]*', value)
    with pytest.raises(ImplausibleRadiometry, match=r"BOA_ADD_OFFSET .* of band B02 .* is not plausible"):
        open_product(safe)


def test_cli_export_of_infinite_quantification_is_one_line(tmp_path, capsys):
    safe = make_safe(tmp_path / "dl", size=SIZE)
    _set_metadata(safe, r"(<BOA_QUANTIFICATION_VALUE[^>]*>)[^<]*", "1e999")
    proc = run_main(["export", safe, "--out", tmp_path / "out.tif"], capsys)
    assert proc.returncode == 1
    assert_one_line_error(proc, "quantification value inf", "not plausible")


def test_one_bad_date_never_poisons_a_stack(tmp_path):
    good = [make_safe(tmp_path / "dl", date=d, size=SIZE) for d in ("2023-05-12", "2023-06-01")]
    bad = make_safe(tmp_path / "dl", date="2023-05-20", size=SIZE)
    _set_metadata(bad, r'(<BOA_ADD_OFFSET band_id="\d+">)[^<]*', "NaN")
    result = build_stack([good[0], bad, good[1]], tmp_path / "stack.tif", StackOptions(frames=3))
    assert result.dates == ["2023-05-12", "2023-06-01"]
    assert any("2023-05-20" in what or bad.name in what for what, _ in result.dropped)
    assert any("not plausible" in why for _, why in result.dropped)
    with rasterio.open(result.path) as ds:
        data = ds.read()
        assert all(np.isfinite(o) for o in ds.offsets)
    assert (data > 0).mean() > 0.99  # the healthy dates keep their pixels


def test_stack_of_only_bad_dates_names_why(tmp_path):
    bad = make_safe(tmp_path / "dl", size=SIZE)
    _set_metadata(bad, r"(<BOA_QUANTIFICATION_VALUE[^>]*>)[^<]*", "1e-300")
    with pytest.raises(InputError, match=r"no usable date: .*quantification value 1e-300"):
        build_stack([bad], tmp_path / "stack.tif")


def test_raster_with_nan_offset_is_refused_before_reading(tmp_path):
    path = write_geotiff(tmp_path / "T34UDA_20230512_B08.tif", np.full((SIZE, SIZE), 2000, dtype=np.uint16))
    with rasterio.open(path, "r+") as ds:
        ds.scales = (1e-4,)
        ds.offsets = (float("nan"),)
    with pytest.raises(ImplausibleRadiometry, match=r"offset nan"):
        with FrameSet([path], band=1):
            pass


def test_stack_drops_a_raster_whose_offset_tag_is_nan(tmp_path):
    dn = np.full((SIZE, SIZE), 2000, dtype=np.uint16)
    good = [write_geotiff(tmp_path / f"T34UDA_{d}_B08.tif", dn) for d in ("20230512", "20230601")]
    bad = write_geotiff(tmp_path / "T34UDA_20230520_B08.tif", dn, tags={"S2_OFFSET_DN": "nan"})
    result = build_stack([good[0], bad, good[1]], tmp_path / "stack.tif", StackOptions(bands=("B08",)))
    assert result.dates == ["2023-05-12", "2023-06-01"]
    assert any(what == bad.name and "offset nan" in why for what, why in result.dropped)


def test_cli_predict_on_a_raster_with_nan_offset_is_one_line(tmp_path):
    from tests.robustness_support import ROOT, run_cli

    path = write_geotiff(tmp_path / "T34UDA_20230512_B08.tif",
                         np.stack([np.full((96, 96), 2000, dtype=np.uint16)] * 4),
                         descriptions=["B02", "B03", "B04", "B08"])
    with rasterio.open(path, "r+") as ds:
        ds.scales = (1e-4,) * 4
        ds.offsets = (float("nan"),) * 4
    out = tmp_path / "sr.tif"
    proc = run_cli(["predict", "--checkpoint", ROOT / "resources/models/hat_taskdriven.safetensors", "--inputs",
                    path, "--all-bands", "--out", out], timeout=240)
    assert_one_line_error(proc, path.name, "offset nan", "cannot map values to reflectance")
    assert not out.exists()
