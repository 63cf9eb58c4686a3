"""Charge control: from BMS readings to the limits an inverter is given (docs/control.md).

The voltage-based SoC estimator (``soc``) is re-exported lazily: it pulls in the
simulator's OCV table, and the controller must import even if that module does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bmslink.control.controller import OUTPUT_MODES, Controller, ControlOutput
from bmslink.control.currents import CURRENT_REASONS, MISSING_KEYS
from bmslink.control.settings import ControlSettings
from bmslink.control.tables import Table
from bmslink.control.voltage import CVL_REASONS

if TYPE_CHECKING:
    from bmslink.control.soc import SocSettings, VoltageSocEstimator

_LAZY = ("SocSettings", "VoltageSocEstimator")

__all__ = [
    "CURRENT_REASONS",
    "CVL_REASONS",
    "MISSING_KEYS",
    "OUTPUT_MODES",
    "ControlOutput",
    "ControlSettings",
    "Controller",
    "SocSettings",
    "Table",
    "VoltageSocEstimator",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from bmslink.control import soc

        return getattr(soc, name)
    raise AttributeError(f"module 'bmslink.control' has no attribute {name!r}")
