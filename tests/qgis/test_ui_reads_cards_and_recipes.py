"""The dock's architecture filter and the training dialog's task list come from cards and recipes, not name lists."""

from __future__ import annotations

import importlib

import tests.toy_archs.toy_sr  # noqa: F401  (registers the toy architecture)
from core.models.card import ModelCard
from tests.helpers import import_plugin_package


def _ui(name):
    return importlib.import_module(f"{import_plugin_package().__name__}.ui.{name}")


def _entry(arch, n_frames, **hp):
    return _ui("dock.model_store").ModelEntry(path=f"/x/{arch}.safetensors",
                            card=ModelCard(arch=arch, task="sr", scale=3, frames=n_frames, hparams=hp))


def test_arch_filter_lists_the_architectures_of_the_checkpoints(qgis_iface):
    sr_tab = _ui("dock.sr_tab")
    entries = [_entry("toysr", 3, scale=3, frames=3, in_chans=1, width=4),
               _entry("hat", 1, preset="hat-tiny", scale=3, in_chans=1)]
    assert sr_tab.arch_filters(entries) == [sr_tab.ANY_ARCH, ("HAT (single image)", "hat"),
                                            ("TOYSR (multi-image)", "toysr")]


def test_training_tasks_come_from_the_recipes():
    presets = _ui("train_dialog.presets")
    recipes = presets.load_presets()
    kinds = [k for _, k in presets.task_choices(recipes)]
    assert kinds[:2] == ["seg_buildings", "seg_roads"]
    assert {"rams", "hat"} <= set(kinds) and kinds.index("rams") < kinds.index("hat")
    assert set(kinds) == {p.kind for p in recipes}
