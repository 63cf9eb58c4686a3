"""The charge voltage limit (CVL): bulk → absorption → float, and the per-cell OVP cut.

Why CVL and not only CCL: Victron and others ignore CCL in some set-ups (MPPTs
feeding DC-coupled PV into the grid), so the voltage limit is what really stops
a high cell; and a balanced pack can take full current to the end while only
the voltage target decides when charging is over (battery-model-and-control.md
§2.1.1, dbus-serialbattery semantics).

The machine:

- **bulk**: CVL = bulk_cell_v × cells. Absorption starts when the cell sum is
  within ``absorption_start_margin_cell_v`` × cells of that target and the cell
  spread is at most ``absorption_max_spread_v``.
- **absorption**: CVL stays at the bulk target. The timer counts while the
  spread stays within max + hysteresis; above that it is cleared and starts
  again once the spread is back at or below the max. The cell sum falling
  ``absorption_exit_drop_cell_v`` × cells below the target is back to bulk.
  After ``absorption_time_s`` of counted time: float (the "full" edge).
- **float**: CVL ramps from the last CVL down to float_cell_v × cells at
  ``float_ramp_v_per_s`` (pack volts). Back to bulk when SoC < rebulk_soc_pct
  or spread ≥ rebulk_spread_v.

On top, the **per-cell over-voltage P-controller**: when a cell is above
bulk_cell_v, CVL = Σ cells − Σ (each cell's excess over bulk_cell_v). A cut
applies at once; the cut value is held ``cvl_recovery_hold_s`` and then ramps up
at ``cvl_recovery_v_per_s`` (pack volts) until it reaches the bulk target, and
it never rises above the current P-controller value.

Choices where the reference is silent or where this differs:

- The OVP cut works in float too (the reference runs it in bulk/absorption
  only). It changes nothing unless a cell is above bulk_cell_v, which in float
  means a badly drifting cell: cutting then is the safe side. (With the default
  re-bulk spread it cannot bind below the float voltage; it matters with a
  wide ``rebulk_spread_v``.)
- Without a cell list (a bank or a BMS that sends only extremes) the cell sum
  is the pack voltage and the excess is the highest cell's alone (the others
  are unknown; with one runaway cell, the usual case, that is exact). With an
  excess but neither cells nor pack voltage, CVL goes to its floor.
- Without the highest cell voltage CVL is at most the float voltage
  (``missing:cell_max_v``): nothing can be verified, float is safe to hold.
- The BMS's own CVL, when it sends one, is a ceiling (reason ``bms``).
- CVL is clamped to [cvl_floor_cell_v × cells, bulk_cell_v × cells]: never 0
  (Victron reads CVL = 0 as over-voltage and discharges at full power).
- The absorption start margin (per cell) exists because a charger regulating
  to CVL settles just below it, and the OVP cut holds the sum below the target
  whenever any cell is above bulk_cell_v; 0 gives the reference's exact test.
"""

from __future__ import annotations

import math

from bmslink.control.settings import ControlSettings

MODES: tuple[str, ...] = ("bulk", "absorption", "float")
#: Every reason ChargeVoltage.update gives (the controller adds "hardware", "stale", "cell_count").
CVL_REASONS: tuple[str, ...] = (
    "max",
    "absorption",
    "float",
    "bms",
    "cell_ovp",
    "recovering",
    "floor",
    "missing:cell_max_v",
)
_INF = math.inf


class ChargeVoltage:
    """The CVL state machine; feed it one reading per step with ``update``."""

    __slots__ = (
        "_absorb_since",
        "_bulk_cell",
        "_drop_cell",
        "_float_cell",
        "_float_from",
        "_float_rate",
        "_float_since",
        "_floor_cell",
        "_hold_s",
        "_hysteresis",
        "_last_now",
        "_margin_cell",
        "_max_spread",
        "_ov_hold_from",
        "_ov_rate",
        "_ov_value",
        "_ovp_control",
        "_rebulk_soc",
        "_rebulk_spread",
        "_time_s",
        "full_edge",
        "last_cvl",
        "mode",
    )

    def __init__(self, settings: ControlSettings) -> None:
        s = settings
        self._bulk_cell = s.bulk_cell_v
        self._float_cell = s.float_cell_v
        self._floor_cell = s.cvl_floor_cell_v
        self._margin_cell = s.absorption_start_margin_cell_v
        self._drop_cell = s.absorption_exit_drop_cell_v
        self._max_spread = s.absorption_max_spread_v
        self._hysteresis = s.absorption_spread_hysteresis_v
        self._time_s = s.absorption_time_s
        self._float_rate = s.float_ramp_v_per_s
        self._rebulk_soc = s.rebulk_soc_pct
        self._rebulk_spread = s.rebulk_spread_v
        self._ovp_control = s.cell_ovp_control
        self._hold_s = s.cvl_recovery_hold_s
        self._ov_rate = s.cvl_recovery_v_per_s
        #: "bulk", "absorption" or "float".
        self.mode = "bulk"
        #: True on the one update where absorption turned into float (a full charge).
        self.full_edge = False
        #: The CVL of the last update (None before the first).
        self.last_cvl: float | None = None
        self._absorb_since: float | None = None
        self._float_since = 0.0
        self._float_from = 0.0
        self._ov_value: float | None = None
        self._ov_hold_from = 0.0
        self._last_now = -_INF

    def update(
        self,
        now: float,
        cells: int,
        cell_sum: float | None,
        cell_max: float | None,
        cell_min: float | None,
        excess: float | None,
        soc: float | None,
        bms_cvl: float | None,
    ) -> tuple[float, str]:
        """The CVL (pack volts, before the hardware clamp) and the name of what set it.

        ``excess`` is Σ of the cells' excess over bulk_cell_v (None: unknown);
        ``cell_sum`` the sum of the cells or the pack voltage (None: unknown).
        """
        bulk = self._bulk_cell * cells
        spread = None if cell_max is None or cell_min is None else cell_max - cell_min
        self.full_edge = False
        self._advance(now, cells, bulk, cell_sum, spread, soc)

        mode = self.mode
        if mode == "float":
            ramped = self._float_from - self._float_rate * (now - self._float_since)
            cvl = max(self._float_cell * cells, ramped)
            reason = "float"
        else:
            cvl = bulk
            reason = "absorption" if mode == "absorption" else "max"
        if cell_max is None:
            cvl = min(cvl, self._float_cell * cells)
            reason = "missing:cell_max_v"
        if bms_cvl is not None and bms_cvl < cvl:
            cvl, reason = bms_cvl, "bms"
        floor = self._floor_cell * cells
        if self._ovp_control:
            ov, held = self._overvoltage(now, bulk, floor, cell_sum, excess)
            if ov < cvl:
                cvl, reason = ov, "recovering" if held else "cell_ovp"
        if not cvl >= floor:
            cvl, reason = floor, "floor"
        elif cvl > bulk:
            cvl = bulk
        self.last_cvl = cvl
        self._last_now = now
        return cvl, reason

    def interrupt(self, now: float) -> None:
        """No trustworthy input: the absorption timer restarts, an OVP cut holds afresh."""
        self._absorb_since = None
        if self._ov_value is not None:
            self._ov_hold_from = now
        self._last_now = now

    def _advance(
        self,
        now: float,
        cells: int,
        bulk: float,
        cell_sum: float | None,
        spread: float | None,
        soc: float | None,
    ) -> None:
        mode = self.mode
        if mode == "bulk":
            if (
                cell_sum is not None
                and spread is not None
                and cell_sum >= bulk - self._margin_cell * cells
                and spread <= self._max_spread
            ):
                self.mode = "absorption"
                self._absorb_since = now
        elif mode == "absorption":
            if cell_sum is None or spread is None:
                self._absorb_since = None
            elif cell_sum < bulk - self._drop_cell * cells:
                self.mode = "bulk"
                self._absorb_since = None
            elif spread > self._max_spread + self._hysteresis:
                self._absorb_since = None
            elif self._absorb_since is None:
                if spread <= self._max_spread:
                    self._absorb_since = now
            elif now - self._absorb_since >= self._time_s:
                self.mode = "float"
                self.full_edge = True
                self._absorb_since = None
                self._float_since = now
                self._float_from = bulk if self.last_cvl is None else self.last_cvl
        elif (soc is not None and soc < self._rebulk_soc) or (
            spread is not None and spread >= self._rebulk_spread
        ):
            self.mode = "bulk"

    def _overvoltage(
        self,
        now: float,
        bulk: float,
        floor: float,
        cell_sum: float | None,
        excess: float | None,
    ) -> tuple[float, bool]:
        """The OVP-controller's CVL (inf when inactive) and whether it is held/ramping."""
        if excess is None:
            raw: float | None = None  # no cell data: no new cut, a running recovery goes on
        elif excess > 0.0:
            raw = floor if cell_sum is None else cell_sum - excess
        else:
            raw = _INF
        value = self._ov_value
        if raw is not None and raw < (_INF if value is None else value):
            self._ov_value = raw
            self._ov_hold_from = now
            return raw, False
        if value is None:
            return _INF, False
        start = self._ov_hold_from + self._hold_s
        if now > start:
            value += self._ov_rate * (now - max(self._last_now, start))
        if raw is not None and value > raw:
            value = raw
        if value >= bulk:
            self._ov_value = None
            return _INF, False
        self._ov_value = value
        return value, raw is None or value < raw
