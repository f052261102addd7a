"""The suite shows deprecations our code triggers and hides those of third-party internals (issue 24, item 7).

The project's pytest settings used to ignore every DeprecationWarning, which hid
``setFilters()``, ``grayBand()``, rasterio's ``statistics()`` and affine's ``*``
until a newer Debian removed them. The settings in ``pyproject.toml`` are what
is active while this test runs; each warning below is attributed to a module
by name, as Python does for the frame that called the deprecated function.
"""

from __future__ import annotations

import warnings

import pytest

OURS = ("core.io.geo", "core", "ui.styles", "plugin", "scripts.demo", "tests.test_robustness_affine",
        "s2_taskdriven_sr.ui.compat")
THEIRS = ("torch.nn.modules.module", "timm.layers", "osgeo.gdal", "rasterio.io", "affine", "numpy",
          "coreutils", "uikit", "plugins.other")


@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning])
def test_our_deprecations_are_shown_and_third_party_ones_hidden(category) -> None:
    with warnings.catch_warnings(record=True) as caught:  # keeps the active filters, records what they let through
        for module in OURS + THEIRS:
            warnings.warn_explicit(f"old API called from {module}", category, f"/{module.replace('.', '/')}.py", 1,
                                   module=module, registry={})
    shown = sorted(str(w.message).rsplit(" ", 1)[-1] for w in caught if issubclass(w.category, category))
    assert shown == sorted(OURS)
