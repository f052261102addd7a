"""Dependencies: what the plugin needs, QGIS's own Python, and the consented pip install.

Nothing is imported here: the plugin's ``__init__.py`` reads ``deps`` while
QGIS starts, and that must not pull in Qt or any other module of this package.
"""
