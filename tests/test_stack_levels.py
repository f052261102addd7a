"""Products as they really come (issue 23, cases 6-10): levels in a stack, loose band files, old and odd containers.

Real ``.SAFE`` folders with JPEG 2000 bands and real zips (``tests.s2_fixtures``).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import rasterio

from core.io.s2_product import export_product, open_product
from core.io.stack import build_stack
from core.jobs import InputError
from core.options import StackOptions
from tests.robustness_support import assert_one_line_error, run_main
from tests.s2_fixtures import make_safe, zip_safe

SIZE = 60


# --------------------------------------------------------------------------- 6. L1C and L2A in one stack


@pytest.fixture()
def mixed(tmp_path) -> list:
    """Two L2A dates and one L1C date of one tile."""
    return [make_safe(tmp_path / "dl", level="L2A", date="2023-05-12", size=SIZE),
            make_safe(tmp_path / "dl", level="L1C", date="2023-05-20", size=SIZE),
            make_safe(tmp_path / "dl", level="L2A", date="2023-06-01", size=SIZE)]


def test_stack_refuses_a_mix_of_levels_naming_the_dates(mixed, tmp_path):
    with pytest.raises(InputError, match=r"mix processing levels \(L1C .*2023-05-20; L2A .*2023-05-12, 2023-06-01\)"
                                         r".*--mix-levels"):
        build_stack(mixed, tmp_path / "stack.tif", StackOptions(frames=3))
    assert not (tmp_path / "stack.tif").exists()


def test_cli_stack_refuses_the_mix_in_one_line(mixed, tmp_path, capsys):
    proc = run_main(["stack", *mixed, "--out", tmp_path / "stack.tif"], capsys)
    assert_one_line_error(proc, "mix processing levels", "--mix-levels")


def test_mix_when_asked_records_levels_and_says_clouds_stay(mixed, tmp_path):
    result = build_stack(mixed, tmp_path / "stack.tif", StackOptions(frames=3, mix_levels=True))
    assert sorted(result.dates) == ["2023-05-12", "2023-05-20", "2023-06-01"]
    assert any("processing levels mixed as asked" in m for m in result.messages)
    assert any(m.startswith("2023-05-20: L1C") and "clouds could not be masked" in m for m in result.messages)
    with rasterio.open(result.path) as ds:
        levels = json.loads(ds.tags()["STACK_LEVELS"])
    assert levels == {"2023-05-12": "L2A", "2023-05-20": "L1C", "2023-06-01": "L2A"}


def test_l1c_only_stack_says_clouds_are_not_masked(tmp_path):
    safes = [make_safe(tmp_path / "dl", level="L1C", date=d, size=SIZE) for d in ("2023-05-12", "2023-06-01")]
    result = build_stack(safes, tmp_path / "stack.tif", StackOptions(frames=2))
    assert any("L1C" in m and "clouds could not be masked" in m for m in result.messages)


# --------------------------------------------------------------------------- 7. a band file out of an L2A product


def test_band_file_from_inside_an_l2a_product_says_its_scl_is_not_applied(tmp_path):
    safes = [make_safe(tmp_path / "dl", date=d, size=SIZE) for d in ("2023-05-12", "2023-06-01")]
    bands = [next(s.rglob("*_B08_10m.jp2")) for s in safes]
    result = build_stack(bands, tmp_path / "stack.tif", StackOptions(frames=2, bands=("B08",)))
    said = [m for m in result.messages if "scene classification (SCL)" in m]
    assert len(said) == 2 and all("clouds are not masked" in m and "give the product itself" in m for m in said)


# --------------------------------------------------------------------------- 8. old multi-tile products

OLD_MTD = "S2A_OPER_MTD_SAFL1C_PDMC_20160101T120000_R079_V20151231T100000_20151231T100000.xml"


def old_product(folder: Path) -> Path:
    """An old multi-tile L1C product as ESA wrote them before December 2016: its metadata has the OPER name."""
    safe = make_safe(folder, level="L1C", date="2015-12-31", baseline="02.01", size=SIZE)
    mtd = safe / "MTD_MSIL1C.xml"
    mtd.rename(safe / OLD_MTD)
    return safe


def test_old_multi_tile_product_gets_the_documented_message(tmp_path):
    safe = old_product(tmp_path / "dl")
    for given in (safe, zip_safe(safe), safe / OLD_MTD):
        with pytest.raises(InputError, match=r"old multi-tile product .*open one granule or a single-tile product"):
            open_product(given)


# --------------------------------------------------------------------------- 9. metadata names in any case


@pytest.mark.parametrize("name", ["MTD_MSIL2a.xml", "mtd_msil2a.xml"])
def test_metadata_name_in_any_case_reads_alike_in_folder_and_zip(tmp_path, name):
    safe = make_safe(tmp_path / "dl", size=SIZE)
    (safe / "MTD_MSIL2A.xml").rename(safe / name)
    zipped = zip_safe(safe)
    for given in (safe, zipped):
        product = open_product(given)
        assert product.level == "L2A" and product.date == "2023-05-12" and product.scl_path
    export_product(zipped, tmp_path / "out.tif")
    assert (tmp_path / "out.tif").exists()


# --------------------------------------------------------------------------- 10. two products in one container


def test_folder_with_two_products_is_refused_naming_both(tmp_path):
    a = make_safe(tmp_path / "dl", date="2023-05-12", size=SIZE)
    b = make_safe(tmp_path / "dl", date="2023-06-01", size=SIZE)
    with pytest.raises(InputError, match=rf"folder holds 2 Sentinel-2 products \({a.name} and {b.name}\)"):
        open_product(tmp_path / "dl")


def test_zip_with_two_products_is_refused_naming_both(tmp_path, capsys):
    a = make_safe(tmp_path / "dl", date="2023-05-12", size=SIZE)
    b = make_safe(tmp_path / "dl", date="2023-06-01", size=SIZE)
    both = tmp_path / "both.zip"
    with zipfile.ZipFile(both, "w") as zf:
        for safe in (a, b):
            for p in sorted(safe.rglob("*")):
                zf.write(p, p.relative_to(safe.parent).as_posix())
    with pytest.raises(InputError, match=rf"zip holds 2 Sentinel-2 products \({a.name} and {b.name}\)"):
        open_product(both)
    proc = run_main(["export", both, "--out", tmp_path / "out.tif"], capsys)
    assert_one_line_error(proc, a.name, b.name)
    assert not (tmp_path / "out.tif").exists()
