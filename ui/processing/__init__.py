"""Processing provider and algorithms: the plugin's jobs for the toolbox, models, batch runs and qgis_process.

``provider.py`` owns the list of algorithms; ``base.py`` holds what they share
(the base class, cancel/progress adapters, parameters generated from
``core.options``); each algorithm has its own module.
"""
