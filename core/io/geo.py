"""Composing affine transforms and applying them to points on every ``affine`` release we run on.

Why a module of its own: ``affine`` 3 deprecates ``*`` for both operations in
favour of ``@`` (a DeprecationWarning at every call), while ``affine`` 2.4
(Debian 12, QGIS 3.22 installs) has no ``@`` at all. Writing either spelling
at the call sites breaks one of the two; these two functions work on both.
"""

from __future__ import annotations

from typing import Any, Tuple

from affine import Affine

__all__ = ["compose", "apply"]


def compose(a: Affine, b: Affine) -> Affine:
    """``a`` after ``b``: the transform that applies ``b`` first, then ``a`` (``a @ b``).

    ``affine`` >= 3 has ``@`` (and warns on ``*``); 2.x knows only ``*``. Asked
    of the object, not of the module, so a subclass is handled as it behaves.
    """
    return a @ b if hasattr(a, "__matmul__") else a * b


def apply(transform: Affine, x: Any, y: Any) -> Tuple[Any, Any]:
    """The point ``(x, y)`` (e.g. a column and row) mapped by ``transform`` (e.g. to map coordinates).

    Written out from the six coefficients (what both operators compute) so it
    takes plain numbers and NumPy arrays alike, whatever the operator rules of
    the installed ``affine``.
    """
    a, b, c, d, e, f = tuple(transform)[:6]
    return a * x + b * y + c, d * x + e * y + f
