"""Scaled integers on the wire: how many decimals a scale resolves, how a value rounds.

Shared by every codec (CAN profile tables, RS485 layouts, Modbus register maps) so that
"limits round toward safety" means the same thing on every wire.
"""

from __future__ import annotations

import math
from typing import Literal

Rounding = Literal["nearest", "down", "up"]
#: A tolerance of a millionth of a step: 48.2 V / 1 mV is 48199.99999... in floats, and
#: must not be cut to 48199 when rounding down.
STEP_TOLERANCE = 1e-6


def decimal_places(value: float) -> int:
    """Decimal places of a decimal number (0.1 -> 1, 0.25 -> 2, 273.15 -> 2, 5 -> 0)."""
    for places in range(10):
        scaled = abs(value) * 10**places
        if abs(scaled - round(scaled)) < 1e-9 * max(1.0, scaled):
            return places
    return 10


def round_raw(exact: float, rounding: Rounding) -> int:
    """``exact`` (a value in wire steps) as an integer: limits round toward safety."""
    if rounding == "down":
        return math.floor(exact + STEP_TOLERANCE)
    if rounding == "up":
        return math.ceil(exact - STEP_TOLERANCE)
    return round(exact)
