"""Processing provider and algorithms: the plugin's jobs for the toolbox, models, batch runs and qgis_process."""
