"""Charge and discharge current limits (CCL / DCL): the minimum of the rules, then recovery.

Why a minimum of named rules: every rule (ceiling, the BMS's own limit, cell
voltage, temperature, SoC, FET state, alarms) may be the one that matters, and
the user must be able to see which one it was (battery-model-and-control.md
§2.1.2). A rule that lacks its input refuses: that direction gets 0 A with the
reason ``missing:<key>`` instead of a guessed value.

Pieces, all pure or with explicit state and time:

- ``DirectionRules.target``: the pure target for one direction and its reason.
  Zeroing rules come first (alarm, fet_off, missing inputs); then "max", "bms",
  "cell_voltage", "temperature", "soc" in that order, and on a tie the earlier
  name is given (a table at fraction 1 reads as "max").
- ``TemperatureWindow``: outside the window (at or beyond a limit) the direction
  is blocked, and it stays blocked until the temperatures are back inside by
  ``temp_hysteresis_k``, so a sensor sitting on the limit does not chatter.
- ``RampedLimit``: cuts apply at once. A rise waits until the target exceeds
  the recovery threshold, and until ``current_recovery_hold_s`` have passed
  since the last cut, then ramps at ``current_recovery_a_per_s``; while held or
  ramping the reason is "recovering".
- ``CellHold``: what a cell-voltage table reads. The charge table is loop
  gain > 1 near full: a cut drops the current, the highest cell falls back by
  I·R plus its RC relaxation, the table allows more, the ramp brings the
  current back and the cell spikes again (CCL 0 <-> ~35 A every few minutes in
  the simulator). The table therefore reads the highest cell of the last
  ``charge_cell_hold_s`` (the lowest, for discharge, of the last
  ``discharge_cell_hold_s``): a rise needs a whole quiet window, a cut still
  follows the live value at once (the live reading is part of the window).

Choices where the reference is silent: the hold counts from the last cut (a cut
of any size re-arms it; an unchanged limit does not), so a noisy table near
the top of charge follows its lowest value and rises only after a quiet
``hold_s``; the first reading's target is taken as it is (nothing was sent
before, so there is nothing to recover from; starting at 0 instead would send
DCL = 0, which shuts an off-grid inverter down, every time the bridge starts)
and counts as a cut only when at or below the threshold; after stale input
both limits restart from 0 through the hold and the ramp; a BMS limit that is
negative or not a number counts as 0.

For ``CellHold`` (the reference has no such smoothing; dbus-serialbattery shows
the same cycling): a plain window maximum, no decay and no margin, because in
the closed-loop simulator a 300-900 s window removed the cycling as well as a
decaying peak with a hysteresis band did, and a window puts a hard bound on
how long one reading counts (a single bogus 3.6 V reading costs at most one
window of charging; with an unbounded decaying peak it cost 1 kWh of a day). The
window is in controller time (``step``'s clock), readings with no cell value
add nothing and keep what is held (the rule refuses on them anyway), and stale
input keeps the window: it empties by time alone. The discharge hold is off by
default: the default discharge table does not cycle in the simulator, and a
held dip under a surge load would hold DCL low for a whole window, which an
off-grid inverter feels at once.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from bmslink.control.tables import Table

#: Every reason a current limit can carry (plus "missing:<key>", see MISSING_KEYS).
CURRENT_REASONS: tuple[str, ...] = (
    "max",
    "bms",
    "cell_voltage",
    "temperature",
    "soc",
    "fet_off",
    "alarm",
    "recovering",
    "over_voltage",
    "under_voltage",
    "hardware",
    "stale",
    "cell_count",
)
#: The input keys a current rule can miss ("missing:<key>").
MISSING_KEYS: tuple[str, ...] = (
    "cell_max_v",
    "cell_min_v",
    "cell_temp_min_c",
    "cell_temp_max_c",
    "soc_pct",
)


@dataclass(frozen=True, slots=True)
class DirectionRules:
    """The rules of one direction (charge or discharge) as data."""

    maximum_a: float
    cell_table: Table
    temperature_table: Table
    soc_table: Table | None
    #: "missing:cell_max_v" for charge, "missing:cell_min_v" for discharge.
    missing_cell: str

    def target(
        self,
        cell_v: float | None,
        temp_min_c: float | None,
        temp_max_c: float | None,
        soc_pct: float | None,
        bms_limit_a: float | None,
        fet_off: bool,
        alarm: bool,
    ) -> tuple[float, str]:
        """The lowest limit (A) of every rule and the name of the rule that set it."""
        if alarm:
            return 0.0, "alarm"
        if fet_off:
            return 0.0, "fet_off"
        if cell_v is None:
            return 0.0, self.missing_cell
        if temp_min_c is None:
            return 0.0, "missing:cell_temp_min_c"
        if temp_max_c is None:
            return 0.0, "missing:cell_temp_max_c"
        soc_table = self.soc_table
        if soc_table is not None and soc_pct is None:
            return 0.0, "missing:soc_pct"
        maximum = self.maximum_a
        limit, reason = maximum, "max"
        if bms_limit_a is not None and not bms_limit_a >= limit:
            limit, reason = (float(bms_limit_a) if bms_limit_a > 0.0 else 0.0), "bms"
        value = maximum * self.cell_table(cell_v)
        if value < limit:
            limit, reason = value, "cell_voltage"
        table = self.temperature_table
        value = maximum * min(table(temp_min_c), table(temp_max_c))
        if value < limit:
            limit, reason = value, "temperature"
        if soc_table is not None and soc_pct is not None:
            value = maximum * soc_table(soc_pct)
            if value < limit:
                limit, reason = value, "soc"
        return limit, reason


class TemperatureWindow:
    """Blocked at or beyond a limit; free again only ``hysteresis_k`` back inside."""

    __slots__ = ("blocked", "high_c", "hysteresis_k", "low_c")

    def __init__(self, low_c: float, high_c: float, hysteresis_k: float) -> None:
        self.low_c = low_c
        self.high_c = high_c
        self.hysteresis_k = hysteresis_k
        self.blocked = False

    def outside(self, temp_min_c: float | None, temp_max_c: float | None) -> bool:
        """At or beyond a limit now, without the latch (unknown counts as outside)."""
        if temp_min_c is None or temp_max_c is None:
            return True
        return temp_min_c <= self.low_c or temp_max_c >= self.high_c

    def update(self, temp_min_c: float | None, temp_max_c: float | None) -> bool:
        """Whether the direction is blocked; unknown temperatures leave the latch as it is."""
        if temp_min_c is None or temp_max_c is None:
            return self.blocked
        if self.outside(temp_min_c, temp_max_c):
            self.blocked = True
        elif (
            self.blocked
            and temp_min_c >= self.low_c + self.hysteresis_k
            and temp_max_c <= self.high_c - self.hysteresis_k
        ):
            self.blocked = False
        return self.blocked


class RampedLimit:
    """A current limit that falls at once and rises after a hold, at a set rate."""

    __slots__ = ("_last_now", "hold_from", "hold_s", "rate_a_per_s", "threshold_a", "value")

    def __init__(self, threshold_a: float, hold_s: float, rate_a_per_s: float) -> None:
        self.threshold_a = threshold_a
        self.hold_s = hold_s
        self.rate_a_per_s = rate_a_per_s
        #: The limit now (A); None before the first update, which takes its target as is.
        self.value: float | None = None
        #: When the last cut happened (none yet: -inf).
        self.hold_from = -math.inf
        self._last_now = 0.0

    def cut(self, now: float) -> None:
        """Drop to 0 now (stale input): the next rise waits for the hold again."""
        self.value = 0.0
        self.hold_from = now
        self._last_now = now

    def update(self, now: float, target: float, reason: str) -> tuple[float, str]:
        """The limit to send for ``target`` at ``now``, and its reason."""
        value = self.value
        last = self._last_now
        self._last_now = now
        if value is None:  # nothing sent yet: nothing to recover from
            self.value = target
            if target <= self.threshold_a:
                self.hold_from = now
            return target, reason
        if target <= value:
            if target < value or target <= self.threshold_a:
                self.hold_from = now
            self.value = target
            return target, reason
        if target <= self.threshold_a:
            self.hold_from = now
            return value, "recovering"
        start = self.hold_from + self.hold_s
        if now > start:
            value = min(target, value + self.rate_a_per_s * (now - max(last, start)))
            self.value = value
        if value >= target:
            return value, reason
        return value, "recovering"


class CellHold:
    """The most extreme cell voltage of the last ``hold_s`` seconds, towards a limit.

    ``highest`` True (charge) holds the maximum, False (discharge) the minimum.
    Why: the cell-voltage tables read the loaded voltage, and a table that reads
    only the live value lets the current back up as soon as a cut has let the
    cell relax, which re-creates the spike that caused the cut. The live reading
    is always part of the window, so a cut is never delayed; a rise waits until
    the reading that caused the cut is ``hold_s`` old. ``hold_s`` 0 is the live
    value.
    """

    __slots__ = ("_readings", "_sign", "hold_s")

    def __init__(self, hold_s: float, highest: bool) -> None:
        self.hold_s = hold_s
        self._sign = 1.0 if highest else -1.0
        # (time, sign × voltage), times ascending, values strictly descending: an
        # older reading no more extreme than a newer one can never be the answer again
        self._readings: deque[tuple[float, float]] = deque()

    def update(self, now: float, cell_v: float | None) -> float | None:
        """The value the table reads at ``now`` with ``cell_v`` read; None when ``cell_v`` is.

        A missing reading returns None (the rule then refuses) and leaves the window
        as it is, so an earlier peak still counts when readings come back.
        """
        if cell_v is None:
            return None
        if not self.hold_s > 0.0:
            return cell_v
        sign = self._sign
        value = sign * cell_v
        readings = self._readings
        while readings and readings[-1][1] <= value:
            readings.pop()
        readings.append((now, value))
        oldest = now - self.hold_s
        while len(readings) > 1 and readings[0][0] <= oldest:  # the live one always stays
            readings.popleft()
        return sign * readings[0][1]
