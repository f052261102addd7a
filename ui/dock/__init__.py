"""The plugin's dock: one module per tab, the checkpoint store, the layer-tree helpers and the dock itself.

``widget.SRDockWidget`` assembles the Super-resolve (``sr_tab``), Segment
(``segment_tab``) and Compare (``compare_tab``) tabs; ``model_store`` lists and
remembers checkpoints; ``layers`` checks grids and adds styled result layers;
``fit`` keeps every page inside a narrow dock.
"""

from .model_store import ModelEntry, ModelStore, card_html, remember_checkpoint
from .sr_tab import DATES, REVISITS, SINGLE
from .widget import SRDockWidget

__all__ = ["SRDockWidget", "ModelEntry", "ModelStore", "card_html", "remember_checkpoint", "SINGLE", "REVISITS",
           "DATES"]
