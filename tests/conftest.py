"""Fixtures shared by the whole suite.

``plugin_pkg`` imports the repository root as the package ``s2_taskdriven_sr``,
the name QGIS gives the plugin when it is installed from the zip, so ``ui``
reaches ``core`` through relative imports exactly as it does inside QGIS.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from tests.helpers import ROOT, import_plugin_package


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def plugin_pkg() -> types.ModuleType:
    """The plugin package as QGIS loads it (``classFactory`` and all)."""
    return import_plugin_package()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors on a shared 2-core CPU: one intra-op thread avoids oversubscription stalls.

    Training tests use it through ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``;
    their child processes get the same through ``OMP_NUM_THREADS=1``.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="session")
def collect_qgis_objects_before_exit(qgis_app):
    """Free Python-owned QGIS objects while QGIS still runs, not at interpreter exit.

    Why: a layer that ends in a reference cycle (a test frame kept by an
    exception's traceback, say) is otherwise freed by Python's final
    collection, after pytest-qgis has called ``exitQgis()``; its destructor
    then corrupts the heap and the whole run ends in SIGSEGV after every test
    passed. Inside QGIS the plugin's objects go with the Python interpreter
    before QGIS exits, so this only restores that order. Session-scoped and
    depending on ``qgis_app``, it is torn down first.
    """
    yield
    import gc

    gc.collect()
