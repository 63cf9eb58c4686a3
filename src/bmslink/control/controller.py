"""The charge-control brain: BatteryState readings in, CVL / CCL / DCL / DVL and flags out.

Why it exists: a BMS's own limits are often crude (a fixed CVL, CCL at full
until its OVP trips), and an inverter that charges a 15 kWh LFP pack until one
cell trips OVP wears the cells and drops the battery off the bus. The
controller reproduces dbus-serialbattery's semantics (battery-model-and-
control.md §2.1, §5): min-of-rules current limits with derating tables, a
bulk → absorption → float CVL with a per-cell over-voltage cut, hold-and-ramp
recovery, and hard rules that no table or setting can undo.

It is pure apart from its own state and an injected clock: ``step`` takes the
latest reading (and when it was read) and returns a ``ControlOutput``; nothing
is sent from here. ``ControlOutput.apply`` merges the result into the state a
battery role encodes.

Hard rules, applied after every table (the safety properties the tests check):
CCL = 0 and charge disabled while the highest cell is at or above
``cell_over_voltage_v`` or the temperatures are outside the charge window; DCL
= 0 and discharge disabled while the lowest cell is at or below
``cell_under_voltage_v`` or outside the discharge window; a missing input a rule
needs gives 0 for that direction; input older than ``stale_after_s`` (or none)
gives the safe output: both currents 0, both directions disabled, CVL the last
one sent (else the float voltage; never 0) and DVL min_cell_v × series_cells.
Everything is finally clamped to the HardwareLimits.

Choices where the reference is silent:

- Inputs: the highest cell is the largest of every cell value sent
  (``cell_max_v``, ``cell_min_v``, the list) and the lowest the smallest, so an
  inconsistent state errs on the safe side; but the highest is unknown when
  only ``cell_min_v`` was sent, and the lowest when only ``cell_max_v`` was. A
  cell list or temperature list with a value that is not a finite number is
  treated as missing (a list that cannot be read says nothing about the
  cells, so the extremes sent beside it are not used either).
- Temperatures come from cell_temp_min_c / cell_temp_max_c; whichever is
  absent is taken from temperatures_c (which may include MOSFET or ambient
  sensors: the safe side), else from temperature_c. Coldest above warmest: the
  two are swapped.
- The cell-voltage tables read the highest cell of the last
  ``charge_cell_hold_s`` and the lowest of the last ``discharge_cell_hold_s``
  (``CellHold``: no 0 <-> 35 A cycling near full); the hard over/under-voltage
  rules and the CVL read the live cells, and ``targets`` reads the state alone.
- Alarms: a CHARGE_STOPPING alarm zeroes CCL, a DISCHARGE_STOPPING one DCL, any
  other alarm not in NON_STOPPING both (as ``limits_for_alarms``); warnings
  stop nothing.
- ``force_charge`` is requested at or below force_charge_on_soc_pct until the
  SoC reaches force_charge_off_soc_pct, never without a SoC, and only while
  charging is allowed (asking an inverter to charge a battery that refuses is
  a contradiction).
- The presented SoC is clamped to 0..100; the stale output presents the last
  presented SoC (``apply`` leaves a state's SoC alone when there is none).
- The cell count for CVL and DVL is always ``series_cells``. A cell list of
  another length contradicts the configuration (a misconfigured pack, or a
  decoder that lost cells): both directions are refused with the reason
  ``cell_count`` and CVL holds at most the float voltage, as the bank
  aggregator leaves such a pack out. (Taking the list's length instead would
  turn a list that lost half its cells into a CVL of half the pack voltage.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bmslink.clock import Clock
from bmslink.control.currents import CellHold, DirectionRules, RampedLimit, TemperatureWindow
from bmslink.control.settings import ControlSettings
from bmslink.control.tables import Table
from bmslink.control.voltage import MODES, ChargeVoltage
from bmslink.limits import HardwareLimits, stopped_directions
from bmslink.state import BatteryState

#: Presented modes: the CVL machine's three and "safe" (stale or no input).
OUTPUT_MODES: tuple[str, ...] = (*MODES, "safe")
#: Reasons after which a hard rule (over/under-voltage, temperature window) still speaks.
_DERATING = frozenset({"max", "bms", "cell_voltage", "temperature", "soc"})
_isfinite = math.isfinite


@dataclass(frozen=True, slots=True)
class ControlOutput:
    """What the controller decided for one step; ``apply`` merges it into a state."""

    charge_voltage_v: float
    charge_current_a: float
    discharge_current_a: float
    discharge_voltage_v: float
    charge_enable: bool
    discharge_enable: bool
    force_charge: bool
    #: The SoC to present (after the cap); None when none was received.
    soc_pct: float | None
    #: "bulk", "absorption", "float" or "safe".
    mode: str
    cvl_reason: str
    ccl_reason: str
    dcl_reason: str

    def apply(self, state: BatteryState) -> BatteryState:
        """A copy of ``state`` with the limits, enables, force charge and SoC merged in.

        A None SoC (nothing received) leaves the state's own SoC as it is.
        """
        updates: dict[str, Any] = {
            "charge_voltage_v": self.charge_voltage_v,
            "charge_current_a": self.charge_current_a,
            "discharge_current_a": self.discharge_current_a,
            "discharge_voltage_v": self.discharge_voltage_v,
            "charge_enable": self.charge_enable,
            "discharge_enable": self.discharge_enable,
            "force_charge": self.force_charge,
        }
        if self.soc_pct is not None:
            updates["soc_pct"] = self.soc_pct
        return state.merged(updates)


def discharge_voltage(settings: ControlSettings, hardware: HardwareLimits) -> float:
    """The DVL these settings send: min_cell_v × series_cells, not below the hardware minimum.

    ValueError when the hardware's maximum charge voltage leaves no room above it (the
    bridge's config check calls this too, so such a file is refused on load).
    """
    dvl = settings.min_cell_v * settings.series_cells
    if not hardware.max_charge_voltage_v > max(dvl, hardware.min_discharge_voltage_v):
        raise ValueError(
            f"hardware max_charge_voltage_v {hardware.max_charge_voltage_v:g} V must be "
            f"above min_cell_v × series_cells ({dvl:g} V)"
        )
    return max(dvl, hardware.min_discharge_voltage_v)


def _finite(value: float | None) -> float | None:
    return value if value is not None and _isfinite(value) else None


# cell count contradicts series_cells, cell_sum, cell_max, cell_min, excess, t_min, t_max
_Inputs = tuple[
    bool, float | None, float | None, float | None, float | None, float | None, float | None
]


class Controller:
    """BatteryState history → CVL/CCL/DCL/DVL and flags; call ``step`` once per reading."""

    def __init__(self, settings: ControlSettings, hardware: HardwareLimits, clock: Clock) -> None:
        s = settings
        self._dvl = discharge_voltage(settings, hardware)
        self.settings = settings
        self.hardware = hardware
        self.clock = clock
        self._series = s.series_cells
        self._bulk_cell = s.bulk_cell_v
        self._float_cell = s.float_cell_v
        self._ovp = s.cell_over_voltage_v
        self._uvp = s.cell_under_voltage_v
        self._stale_s = s.stale_after_s
        self._hw_ccl = hardware.max_charge_current_a
        self._hw_dcl = hardware.max_discharge_current_a
        self._hw_cvl = hardware.max_charge_voltage_v
        self._fc_on = s.force_charge_on_soc_pct
        self._fc_off = s.force_charge_off_soc_pct
        self._cap = s.soc_cap_pct if s.soc_cap_until_full else None
        self._cap_release = s.soc_cap_release_pct
        self._charge = DirectionRules(
            s.max_charge_current_a,
            _table(s, "charge_cell_voltage_table"),
            _table(s, "charge_temperature_table"),
            s.table("charge_soc_table"),
            "missing:cell_max_v",
        )
        self._discharge = DirectionRules(
            s.max_discharge_current_a,
            _table(s, "discharge_cell_voltage_table"),
            _table(s, "discharge_temperature_table"),
            s.table("discharge_soc_table"),
            "missing:cell_min_v",
        )
        hysteresis = s.temp_hysteresis_k
        self._charge_window = TemperatureWindow(
            s.charge_temp_min_c, s.charge_temp_max_c, hysteresis
        )
        self._discharge_window = TemperatureWindow(
            s.discharge_temp_min_c, s.discharge_temp_max_c, hysteresis
        )
        pct = s.current_recovery_threshold_pct / 100.0
        self._ccl = RampedLimit(
            pct * s.max_charge_current_a, s.current_recovery_hold_s, s.current_recovery_a_per_s
        )
        self._dcl = RampedLimit(
            pct * s.max_discharge_current_a,
            s.current_recovery_hold_s,
            s.current_recovery_a_per_s,
        )
        self._charge_hold = CellHold(s.charge_cell_hold_s, highest=True)
        self._discharge_hold = CellHold(s.discharge_cell_hold_s, highest=False)
        self._voltage = ChargeVoltage(s)
        self._force = False
        self._full_seen = False
        self._last_cvl: float | None = None
        self._last_soc: float | None = None

    @property
    def mode(self) -> str:
        """The CVL machine's mode: "bulk", "absorption" or "float"."""
        return self._voltage.mode

    # -- public API -----------------------------------------------------------

    def step(self, state: BatteryState | None, read_at: float | None = None) -> ControlOutput:
        """The output for the latest reading; ``read_at`` is when it was read (clock time).

        ``state`` None (nothing received) or read more than ``stale_after_s`` ago gives
        the safe output; ``read_at`` None means "just read".
        """
        now = self.clock.now()
        if state is None or (read_at is not None and not now - read_at <= self._stale_s):
            return self._safe(now)
        inputs = self._inputs(state)
        miscounted, cell_sum, cell_max, cell_min, excess, t_min, t_max = inputs
        soc = _finite(state.soc_pct)
        # the cell tables read the held extremes (never less extreme than the live ones)
        held = (
            self._charge_hold.update(now, cell_max),
            self._discharge_hold.update(now, cell_min),
        )
        ccl_target, ccl_reason, dcl_target, dcl_reason = self._targets(state, inputs, soc, held)

        # the windows' latches keep a direction blocked until back inside by the hysteresis
        if self._charge_window.update(t_min, t_max) and ccl_reason in _DERATING:
            ccl_target, ccl_reason = 0.0, "temperature"
        if self._discharge_window.update(t_min, t_max) and dcl_reason in _DERATING:
            dcl_target, dcl_reason = 0.0, "temperature"

        # recovery never rises above its target, so a hard 0 above stays 0 here
        ccl, ccl_reason = self._ccl.update(now, ccl_target, ccl_reason)
        dcl, dcl_reason = self._dcl.update(now, dcl_target, dcl_reason)
        if ccl > self._hw_ccl:
            ccl, ccl_reason = self._hw_ccl, "hardware"
        if dcl > self._hw_dcl:
            dcl, dcl_reason = self._hw_dcl, "hardware"
        charge_enable = ccl > 0.0
        discharge_enable = dcl > 0.0

        bms_cvl = _finite(state.charge_voltage_v)
        if bms_cvl is not None and bms_cvl <= 0.0:
            bms_cvl = None
        voltage = self._voltage
        cvl, cvl_reason = voltage.update(
            now, self._series, cell_sum, cell_max, cell_min, excess, soc, bms_cvl
        )
        if miscounted and cvl_reason == "missing:cell_max_v":
            cvl_reason = "cell_count"
        if cvl > self._hw_cvl:
            cvl, cvl_reason = self._hw_cvl, "hardware"
        self._last_cvl = cvl

        if self._cap is not None:
            if soc is not None and soc < self._cap_release:
                self._full_seen = False
            if voltage.full_edge:
                self._full_seen = True
        presented: float | None = None
        if soc is None:
            self._force = False
        else:
            if soc <= self._fc_on:
                self._force = True
            elif soc >= self._fc_off:
                self._force = False
            presented = 0.0 if soc < 0.0 else 100.0 if soc > 100.0 else float(soc)
            if self._cap is not None and not self._full_seen and presented > self._cap:
                presented = self._cap
        self._last_soc = presented

        return ControlOutput(
            cvl,
            ccl,
            dcl,
            self._dvl,
            charge_enable,
            discharge_enable,
            self._force and charge_enable,
            presented,
            voltage.mode,
            cvl_reason,
            ccl_reason,
            dcl_reason,
        )

    def targets(self, state: BatteryState) -> tuple[float, str, float, str]:
        """The CCL and DCL this state alone asks for, with reasons: no latch, hold, ramp, clamp."""
        return self._targets(state, self._inputs(state), _finite(state.soc_pct))

    # -- internals --------------------------------------------------------------

    def _safe(self, now: float) -> ControlOutput:
        self._ccl.cut(now)
        self._dcl.cut(now)
        self._voltage.interrupt(now)
        self._force = False
        cvl = self._last_cvl
        if cvl is None:
            cvl = min(self._float_cell * self._series, self._hw_cvl)
        return ControlOutput(
            cvl,
            0.0,
            0.0,
            self._dvl,
            False,
            False,
            False,
            self._last_soc,
            "safe",
            "stale",
            "stale",
            "stale",
        )

    def _inputs(self, state: BatteryState) -> _Inputs:
        miscounted = False
        cell_sum = None
        reported_max = _finite(state.cell_max_v)
        reported_min = _finite(state.cell_min_v)
        cells = state.cells_v
        from_list = False
        high = low = None
        if cells and len(cells) != self._series:
            miscounted = True
        elif cells:
            total = sum(cells)
            if _isfinite(total):
                cell_sum = total
                from_list = True
                high, low = max(cells), min(cells)
        cell_max = cell_min = None
        if not miscounted and (from_list or not cells):
            # the highest cell is at least every value sent, the lowest at most: an
            # inconsistent state errs on the safe side; a side nobody sent stays unknown
            if from_list or reported_max is not None:
                cell_max = _largest(high, reported_max, reported_min)
            if from_list or reported_min is not None:
                cell_min = _smallest(low, reported_max, reported_min)
        if cell_sum is None:
            cell_sum = _finite(state.voltage_v)

        excess: float | None = None
        if cell_max is not None:
            bulk = self._bulk_cell
            excess = 0.0
            if cell_max > bulk:
                excess = cell_max - bulk
                if from_list and cells is not None:
                    listed = sum(v - bulk for v in cells if v > bulk)
                    if listed > excess:
                        excess = listed

        t_min = _finite(state.cell_temp_min_c)
        t_max = _finite(state.cell_temp_max_c)
        if t_min is None or t_max is None:
            temps = state.temperatures_c
            if temps and _isfinite(sum(temps)):
                if t_min is None:
                    t_min = min(temps)
                if t_max is None:
                    t_max = max(temps)
            single = _finite(state.temperature_c)
            if t_min is None:
                t_min = single
            if t_max is None:
                t_max = single
        if t_min is not None and t_max is not None and t_min > t_max:
            t_min, t_max = t_max, t_min
        return miscounted, cell_sum, cell_max, cell_min, excess, t_min, t_max

    def _targets(
        self,
        state: BatteryState,
        inputs: _Inputs,
        soc: float | None,
        held: tuple[float | None, float | None] | None = None,
    ) -> tuple[float, str, float, str]:
        """``held``: the (highest, lowest) cell the tables read instead of the live ones.

        The hard rules below always read the live cells.
        """
        miscounted, _, cell_max, cell_min, _, t_min, t_max = inputs
        table_max, table_min = (cell_max, cell_min) if held is None else held
        alarms = state.alarms
        charge_alarm, discharge_alarm = stopped_directions(alarms) if alarms else (False, False)
        ccl, ccl_reason = self._charge.target(
            table_max,
            t_min,
            t_max,
            soc,
            state.charge_current_a,
            state.charge_enable is False,
            charge_alarm,
        )
        dcl, dcl_reason = self._discharge.target(
            table_min,
            t_min,
            t_max,
            soc,
            state.discharge_current_a,
            state.discharge_enable is False,
            discharge_alarm,
        )
        if miscounted:
            if ccl_reason == "missing:cell_max_v":
                ccl_reason = "cell_count"
            if dcl_reason == "missing:cell_min_v":
                dcl_reason = "cell_count"
        # hard rules: no table can allow current beyond the BMS's own protection limits
        # (a derating reason means the rule had every input it needs, none is None here)
        if ccl_reason in _DERATING and cell_max is not None:
            if cell_max >= self._ovp:
                ccl, ccl_reason = 0.0, "over_voltage"
            elif self._charge_window.outside(t_min, t_max):
                ccl, ccl_reason = 0.0, "temperature"
        if dcl_reason in _DERATING and cell_min is not None:
            if cell_min <= self._uvp:
                dcl, dcl_reason = 0.0, "under_voltage"
            elif self._discharge_window.outside(t_min, t_max):
                dcl, dcl_reason = 0.0, "temperature"
        return ccl, ccl_reason, dcl, dcl_reason


def _largest(a: float | None, b: float | None, c: float | None) -> float | None:
    best = a
    if b is not None and (best is None or b > best):
        best = b
    if c is not None and (best is None or c > best):
        best = c
    return best


def _smallest(a: float | None, b: float | None, c: float | None) -> float | None:
    best = a
    if b is not None and (best is None or b < best):
        best = b
    if c is not None and (best is None or c < best):
        best = c
    return best


def _table(settings: ControlSettings, key: str) -> Table:
    table = settings.table(key)
    if table is None:  # pragma: no cover - the four tables have no None default and no None type
        raise ValueError(f"{key} is required")
    return table
