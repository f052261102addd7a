"""Qt + QGIS face of the plugin; a thin layer over core.api."""
