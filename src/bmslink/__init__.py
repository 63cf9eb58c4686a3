"""bmslink: make home batteries and hybrid inverters understand each other."""

from bmslink.errors import BmslinkError, DecodeError, EncodeError, StateError
from bmslink.state import ALARM_NAMES, BatteryState

__all__ = [
    "ALARM_NAMES",
    "BatteryState",
    "BmslinkError",
    "DecodeError",
    "EncodeError",
    "StateError",
]
__version__ = "0.1.0"
