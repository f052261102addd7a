"""Case 10a: affine transforms are composed and applied without the operator affine 3 deprecates.

Reported on a newer Debian: ``affine`` 3 warns at every ``Affine * Affine`` and
``Affine * (x, y)``; Debian 12's ``affine`` 2.4 has no ``@``. ``core.io.geo`` works on both;
an affine-3-like transform (``@``, and a warning on ``*``) stands in for the newer release.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from core.io.geo import apply, compose

ROOT = Path(__file__).resolve().parents[1]


class Affine3(Affine):
    """Behaves like affine 3 for these operations: ``@`` works, ``*`` warns."""

    def __matmul__(self, other):
        return Affine.__mul__(self, other)

    def __mul__(self, other):
        warnings.warn("Use the @ operator instead of *", DeprecationWarning, stacklevel=2)
        return Affine.__mul__(self, other)


def _affine3(t: Affine) -> Affine3:
    return tuple.__new__(Affine3, tuple(t))


HR = Affine(10.0 / 3.0, 0.0, 423_450.0, 0.0, -10.0 / 3.0, 5_546_780.0)
ROTATED = compose(Affine.rotation(30.0), Affine.translation(5.0, -2.0))


@pytest.mark.parametrize("make", [lambda t: t, _affine3], ids=["installed affine", "affine 3"])
def test_helpers_give_the_product_without_a_deprecation_warning(make) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        lr = compose(make(HR), Affine.scale(3))
        moved = compose(make(ROTATED), Affine.translation(1.5, 0))
        x, y = apply(make(HR), 30, 24)
        xs, ys = apply(make(ROTATED), np.array([0.0, 2.0]), np.array([1.0, -3.0]))
    assert tuple(lr)[:6] == pytest.approx((10.0, 0.0, 423_450.0, 0.0, -10.0, 5_546_780.0))
    assert tuple(moved)[:6] == pytest.approx(tuple(Affine.__mul__(ROTATED, Affine.translation(1.5, 0)))[:6])
    assert (x, y) == pytest.approx((423_550.0, 5_546_700.0))
    expected = [Affine.__mul__(ROTATED, p) for p in ((0.0, 1.0), (2.0, -3.0))]
    np.testing.assert_allclose(np.stack([xs, ys], axis=1), expected)


def test_the_affine_3_stand_in_does_warn_on_star() -> None:
    with pytest.warns(DeprecationWarning):
        _affine3(HR) * Affine.scale(3)


STAR = re.compile(r"\*\s*Affine\.|transform\s*\*\s*\(|\b(lr|hr)_transform\s*\*\s*Affine")


def _sources():
    core = [p for p in (ROOT / "core").rglob("*.py")
            if "inference" not in p.parts and not p.name.startswith("world_v2")]
    tests = [*(ROOT / "tests").glob("test_data_*.py"), *(ROOT / "tests").glob("test_robustness_*.py"),
             *(ROOT / "tests" / "qgis").glob("*.py")]
    return sorted(core + list((ROOT / "scripts").glob("*.py")) + tests)


def test_no_star_products_of_transforms_are_left() -> None:
    found = [f"{p.relative_to(ROOT)}:{i}" for p in _sources() if p != Path(__file__)
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1) if STAR.search(line)]
    assert found == []
