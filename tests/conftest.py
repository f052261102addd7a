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
    """Free Python-owned QGIS layers while QGIS still runs, not at interpreter exit.

    Why: a layer still alive when the session ends is otherwise freed by
    Python's finalisation, after pytest-qgis has called ``exitQgis()``; its
    destructor then corrupts the heap and the whole run ends in SIGSEGV after
    every test passed (gdb: ``QgsRasterLayer::~QgsRasterLayer`` under
    ``Py_FinalizeEx``). Two ways a layer outlives its test: a reference cycle
    (collected here), and a frame kept by a ``QgsProcessingException`` that
    sip holds on the C++ side after ``processing.run`` re-raised it (the
    test's own frame and the algorithm's, with the layers in their locals),
    which no collection frees: those layers are deleted explicitly. Inside
    QGIS the plugin's objects go with the Python interpreter before QGIS
    exits, so this only restores that order. Session-scoped and depending on
    ``qgis_app``, it is torn down first.
    """
    yield
    import gc
    import warnings

    from qgis.core import QgsMapLayer
    from qgis.PyQt import sip

    gc.collect()
    with warnings.catch_warnings():  # isinstance() on every object wakes lazy modules' deprecation warnings
        warnings.simplefilter("ignore")
        layers = [o for o in gc.get_objects() if isinstance(o, QgsMapLayer)]
    for layer in layers:
        if not sip.isdeleted(layer) and sip.ispyowned(layer):
            sip.delete(layer)
