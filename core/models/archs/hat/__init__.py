"""HAT, the single-image SR family: network and registration (:mod:`.network`), blocks, window machinery."""

from .network import ATTENTION_IMPLS, HAT, HAT_PRESETS, HATConfig, hat_config
from .windows import (
    WindowPlan,
    relative_position_index_oca,
    relative_position_index_sa,
    shifted_window_mask,
    window_plan,
)

__all__ = ["HATConfig", "HAT", "HAT_PRESETS", "hat_config", "ATTENTION_IMPLS", "WindowPlan", "window_plan",
           "relative_position_index_sa", "relative_position_index_oca", "shifted_window_mask"]
