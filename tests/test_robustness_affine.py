"""Case 10a: affine transforms are composed and applied without the operator affine 3 deprecates.

Reported on a newer Debian: ``affine`` 3 warns at every ``Affine * Affine`` and
``Affine * (x, y)``; Debian 12's ``affine`` 2.4 has no ``@``. ``core.io.geo`` works on both;
an affine-3-like transform (``@``, and a warning on ``*``) stands in for the newer release
when the installed one is 2.4. ``Affine`` is a tuple in 2.4 and an attrs class in 3.x
(issue 24, item 5), so the stand-in is built through the constructor both share.
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from core.io.geo import apply, compose

ROOT = Path(__file__).resolve().parents[1]

#: The product as the installed release computes it, without its deprecation warning: ``@`` where
#: there is one (affine 3), ``*`` otherwise (affine 2.4, where ``*`` does not warn).
_PRODUCT = getattr(Affine, "__matmul__", None) or Affine.__mul__


class Affine3(Affine):
    """Behaves like affine 3 for these operations: ``@`` works, ``*`` warns."""

    def __matmul__(self, other):
        return _PRODUCT(self, other)

    def __mul__(self, other):
        warnings.warn("Use the @ operator instead of *", DeprecationWarning, stacklevel=2)
        return _PRODUCT(self, other)


def _affine3(t: Affine) -> Affine3:
    """``t`` as the stand-in: the six coefficients through the constructor (2.4's tuple and 3.x's attrs class)."""
    return Affine3(*tuple(t)[:6])


HR = Affine(10.0 / 3.0, 0.0, 423_450.0, 0.0, -10.0 / 3.0, 5_546_780.0)
ROTATED = compose(Affine.rotation(30.0), Affine.translation(5.0, -2.0))


@pytest.mark.parametrize("make", [lambda t: t, _affine3], ids=["installed affine", "affine 3"])
def test_helpers_give_the_product_without_a_deprecation_warning(make) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", PendingDeprecationWarning)  # affine 3.0's own warning on ``*``
        lr = compose(make(HR), Affine.scale(3))
        moved = compose(make(ROTATED), Affine.translation(1.5, 0))
        x, y = apply(make(HR), 30, 24)
        xs, ys = apply(make(ROTATED), np.array([0.0, 2.0]), np.array([1.0, -3.0]))
    assert tuple(lr)[:6] == pytest.approx((10.0, 0.0, 423_450.0, 0.0, -10.0, 5_546_780.0))
    assert tuple(moved)[:6] == pytest.approx(tuple(_PRODUCT(ROTATED, Affine.translation(1.5, 0)))[:6])
    assert (x, y) == pytest.approx((423_550.0, 5_546_700.0))
    expected = [_PRODUCT(ROTATED, p) for p in ((0.0, 1.0), (2.0, -3.0))]
    np.testing.assert_allclose(np.stack([xs, ys], axis=1), expected)


def test_the_affine_3_stand_in_does_warn_on_star() -> None:
    with pytest.warns(DeprecationWarning):
        _affine3(HR) * Affine.scale(3)


def test_the_stand_in_is_an_affine_with_the_same_coefficients() -> None:
    t = _affine3(HR)
    assert isinstance(t, Affine) and tuple(t) == tuple(HR)
    assert isinstance(compose(t, Affine.scale(3)), Affine)


#: Names that hold a transform here (``transform``, ``lr_transform``, ``inv``, ``gt``, ...).
_TRANSFORM_NAME = re.compile(r"transform|affine|^inv$|^inv_|_inv$|^gt$", re.IGNORECASE)
#: ``Affine.<constructor>(...)``.
_AFFINE_CONSTRUCTORS = {"scale", "translation", "rotation", "identity", "shear", "from_gdal", "permutation"}


def _name_of(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _name_of(node.func)
    return ""


def _is_transform(node: ast.AST) -> bool:
    """Whether ``node`` is, by its spelling, an affine transform: ``~t``, ``Affine.scale(3)``, ``lr_transform``."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
        return True  # ``~t``: NumPy masks are inverted with ~ too, but never multiplied in this project
    if isinstance(node, ast.Call):
        func = node.func
        return (isinstance(func, ast.Name) and func.id in ("Affine", "from_origin", "window_transform")) or (
            isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "Affine"
            and func.attr in _AFFINE_CONSTRUCTORS)
    return bool(_TRANSFORM_NAME.search(_name_of(node)))


def star_products(source: str) -> list:
    """Line numbers of ``a * b`` (or ``a *= b``) where either side is a transform, read from the syntax tree.

    A regular expression on ``transform * (`` missed ``inv * (x, y)`` in
    ``core/io/polygons.py`` (68 warnings per run on affine 3); the syntax tree
    sees every spelling of the operands.
    """
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            pair = (node.left, node.right)
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Mult):
            pair = (node.target, node.value)
        else:
            continue
        if any(_is_transform(side) for side in pair):
            lines.append(node.lineno)
    return sorted(lines)


def _sources():
    core = [p for p in (ROOT / "core").rglob("*.py") if not p.name.startswith("world_v2")]
    tests = list((ROOT / "tests").rglob("*.py"))  # every test too: the sid run showed 7 left in tests
    return sorted(core + list((ROOT / "ui").rglob("*.py")) + list((ROOT / "scripts").glob("*.py")) + tests)


def test_the_search_finds_every_spelling_of_a_star_product() -> None:
    found = star_products(
        "inv = ~transform\n"
        "cols, rows = inv * (xs, ys)\n"           # the one polygons.py had
        "x, y = ~t * (1, 2)\n"
        "lr = hr_transform * Affine.scale(3)\n"
        "t *= Affine.translation(1, 0)\n"
        "area = width * (height + 1)\n"           # plain arithmetic is not a transform
        "gain = 2 * (a - b)\n")
    assert found == [2, 3, 4, 5]


def test_no_star_products_of_transforms_are_left() -> None:
    found = [f"{p.relative_to(ROOT)}:{line}" for p in _sources() if p != Path(__file__)
             for line in star_products(p.read_text(encoding="utf-8"))]
    assert found == []
