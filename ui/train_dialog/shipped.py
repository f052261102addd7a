"""The training dialog's "Start from" picker: begin from a shipped network and the recipe that made it.

Why: the shipped networks take Sentinel-2's four 10 m bands jointly and were
trained by ``resources/configs/starter/*.yaml``; the dialog's other recipes
are the study's one-band ones. Choosing a shipped checkpoint here selects its
own recipe (found by :func:`core.api.shipped_recipe` from the checkpoint's file
and card) and puts the checkpoint in "Fine-tune from", so the analyst continues
from those weights with the settings that made them (clear "Fine-tune from" to
train that recipe from scratch). A separate module so the dialog only places
the widget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Tuple

from qgis.PyQt.QtWidgets import QComboBox

from ...core import api
from ...core.models.card_peek import card_bands, peek_card
from ..log import log

__all__ = ["ShippedStart", "shipped_choices"]


def shipped_choices() -> List[Tuple[str, Path, Path]]:
    """``(label, checkpoint, recipe)`` of every shipped checkpoint whose recipe is shipped too (no PyTorch)."""
    out = []
    folder = api.shipped_models_dir()
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        recipe = api.shipped_recipe(path)
        card = peek_card(path)
        if recipe is None or card is None:
            continue
        bands = card_bands(card)
        out.append((f"{path.stem} ({', '.join(bands) or 'one band'})", path, recipe))
    return out


class ShippedStart(QComboBox):
    """A combo of the shipped networks; choosing one selects its recipe and its weights in the dialog."""

    def __init__(self, dialog: Any) -> None:
        super().__init__(dialog)
        self.dialog = dialog
        self.setToolTip("Start from a network shipped with the plugin: selects the recipe that made it "
                        "(resources/configs/starter) and fine-tunes from its weights")
        self.addItem("(the recipe chosen below)", None)
        try:
            for label, path, _recipe in shipped_choices():
                self.addItem(label, str(path))
        except Exception as exc:  # a broken shipped file must not break the dialog
            log(f"could not list the shipped networks: {exc}")
        self.currentIndexChanged.connect(lambda _i: self._chosen())

    def start_from(self, checkpoint: str) -> None:
        """Choose ``checkpoint`` (a shipped file) as if picked in the list (for scripts and tests)."""
        index = self.findData(str(checkpoint))
        if index < 0:
            raise KeyError(f"{checkpoint} is not a shipped network with a shipped recipe")
        if index == self.currentIndex():
            self._chosen()
        self.setCurrentIndex(index)

    def _chosen(self) -> Optional[str]:
        path = self.currentData()
        if not path:
            return None
        recipe = api.shipped_recipe(path)
        dialog = self.dialog
        preset = next((p for p in dialog.presets if recipe is not None and p.path.resolve() == recipe.resolve()),
                      None)
        if preset is None:
            dialog.show_status(f"the recipe of {Path(path).name} is not among the dialog's recipes", error=True)
            return None
        dialog.task_combo.setCurrentIndex(dialog.task_combo.findData(preset.kind))
        dialog.preset_combo.setCurrentIndex(dialog.preset_combo.findData(str(preset.path)))
        dialog.init_from.setFilePath(str(path))  # after the recipe: filling the form resets it
        for widget, target in ((dialog.seg_buildings, "buildings"), (dialog.seg_roads, "roads")):
            current = widget.filePath().strip()
            if not current or not Path(current).is_file():  # the recipe's own run folders are not shipped
                shipped = api.shipped_checkpoint("segmentation", target)
                widget.setFilePath(str(shipped) if shipped is not None else "")
        dialog.preset_note.setText(f"{dialog.preset_note.text()}; starts from the shipped weights of "
                                   f"{Path(path).name} (clear 'Fine-tune from' to train this recipe from scratch)")
        return str(preset.path)
