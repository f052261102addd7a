"""The training dialog: recipes, the form, the child trainer process, its event history and live curves.

``dialog.TrainDialog`` assembles the recipe picker (``presets``), the Settings
tab (``form``, with the rules in ``recipe``), the YAML tab, the "Your area" tab
(``area_panel``), the child process (``process``), the event reducer
(``history``) and the curves (``plot``).
"""

from .dialog import TrainDialog
from .history import TrainHistory, format_eta, read_events
from .plot import CurvePlot
from .presets import Preset, load_presets
from .process import python_interpreter

__all__ = ["TrainDialog", "TrainHistory", "CurvePlot", "Preset", "load_presets", "python_interpreter",
           "read_events", "format_eta"]
