"""The super-resolution tab's Sentinel-2 products: build a revisit stack or open a product, in a task.

Why a mixin of its own: the product and stack jobs have their own dialog,
tasks and layers; the tab only says which layer becomes its input
(``choose_input``) and where outputs go (``output_folder``).
"""

from __future__ import annotations

from typing import Any, Optional

from qgis.core import Qgis
from qgis.PyQt.QtWidgets import QDialog

from ..log import log, log_exception, notify
from ..s2_products import export_notes, product_label, stack_notes
from ..tasks import CoreTask, ExportJob, StackJob, export_task, stack_task
from .layers import add_s2_layer
from .product_dialog import ProductDialog

__all__ = ["ProductJobs"]


class ProductJobs:
    """Mixed into the SR tab, which provides ``dock``, ``current_entry``, ``output_folder`` and ``choose_input``."""

    def product_dialog(self, mode: str) -> ProductDialog:
        """The dialog for a stack (``STACK``) or a product export (``EXPORT``), filled with the tab's defaults."""
        entry = self.current_entry()
        frames = (entry.card.frames or 1) if entry is not None else 1
        return ProductDialog(mode, self.dock.iface, self.output_folder, frames if frames > 1 else None, parent=self)

    def open_product_dialog(self, mode: str) -> Optional[CoreTask]:
        """Ask for products (a modal dialog), then build the stack or export the product in a task."""
        dialog = self.product_dialog(mode)
        try:
            if dialog.exec() != QDialog.DialogCode.Accepted or dialog.chosen_job is None:
                return None
            return self.run_product_job(dialog.chosen_job)
        finally:
            dialog.deleteLater()

    def run_product_job(self, job: Any) -> Optional[CoreTask]:
        """Run a ``StackJob`` or ``ExportJob`` in a QgsTask; its layer is added (and chosen as input) when done."""
        iface = self.dock.iface
        if isinstance(job, StackJob):
            title, what = "Revisit stack", f"a revisit stack of {len(job.inputs)} input(s)"
            task = stack_task(job, f"Build {what}")
            task.succeeded.connect(lambda res: self._stack_done(res, job))
        elif isinstance(job, ExportJob):
            title, what = "Sentinel-2 product", product_label(job.product)
            task = export_task(job, f"Open {what} as 4 bands")
            task.succeeded.connect(lambda res: self._export_done(res, job))
        else:
            raise TypeError(f"not a product job: {job!r}")
        task.failed.connect(lambda exc: notify(iface, title, log_exception(exc, f"building {what}"),
                                               Qgis.MessageLevel.Critical, 0))
        task.canceledByUser.connect(lambda: notify(iface, title, "cancelled; no layer was added"))
        return self.dock.runner.start(task)

    def _stack_done(self, result: Any, job: StackJob) -> None:
        for m in stack_notes(result):
            log(m)
        name = f"Revisit stack: {len(result.dates)} dates ({product_label(job.inputs[0])})"
        layer = add_s2_layer(str(result.path), name)
        if layer is None:
            notify(self.dock.iface, "Revisit stack", f"the stack {result.path} could not be opened as a layer",
                   Qgis.MessageLevel.Critical)
            return
        self.choose_input(layer, dates=True)  # one raster whose bands are dates
        dropped = f", {len(result.dropped)} dropped (see the log)" if result.dropped else ""
        notify(self.dock.iface, "Revisit stack", f"added '{layer.name()}': {', '.join(result.dates)}{dropped}; "
               "chosen as the input ('bands are dates')", Qgis.MessageLevel.Success)

    def _export_done(self, path: Any, job: ExportJob) -> None:
        try:
            for m in export_notes(path):
                log(m)
        except Exception as exc:  # the tags are a courtesy; the layer is what matters
            log(f"could not read what the export recorded: {exc}", Qgis.MessageLevel.Warning)
        layer = add_s2_layer(str(path), f"{product_label(job.product)} (10 m, 4 bands)")
        if layer is None:
            notify(self.dock.iface, "Sentinel-2 product", f"the export {path} could not be opened as a layer",
                   Qgis.MessageLevel.Critical)
            return
        self.choose_input(layer, dates=False)
        notify(self.dock.iface, "Sentinel-2 product", f"added '{layer.name()}' in true colour; chosen as the input",
               Qgis.MessageLevel.Success)
