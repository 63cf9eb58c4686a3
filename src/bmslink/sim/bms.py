"""A simulated BMS on top of ``Pack``: FETs, latched protections, limits, SoC estimate.

Why it exists: the inverter side of bmslink must be exercised against a battery that
behaves like a real one — it cuts off at the knees, latches protections with
hysteresis, tapers its limits, and reports a SoC that is *its own estimate* (coulomb
counting with a sensor gain error, re-synchronised at full and empty), not the truth.

Protections (all latching; an activation increments ``cutoffs`` and is logged in
``events``):

===========================  =========  ===========================  ==========================
kind                         blocks     trips when                   releases when
===========================  =========  ===========================  ==========================
cell_over_voltage            charge     max cell ≥ 3.65 V            all cells < 3.40 V
cell_under_voltage           discharge  min cell ≤ 2.50 V            all cells > 2.90 V
charge_over_temperature      charge     max sensor > 45 °C           max sensor ≤ 43 °C
charge_under_temperature     charge     min sensor < 0 °C            min sensor ≥ 2 °C
discharge_over_temperature   discharge  max sensor > 60 °C           max sensor ≤ 58 °C
discharge_under_temperature  discharge  min sensor < −20 °C          min sensor ≥ −18 °C
charge_over_current          charge     I > 1.1 × max charge         60 s after the trip
discharge_over_current       discharge  −I > 1.1 × max discharge     60 s after the trip
===========================  =========  ===========================  ==========================

Over-current cannot release on a measured condition (the open FET makes the current 0
at once), so it releases after a recovery time, like JK's "OCP recovery" setting.

Balancing (reference §1.5/§1.6), a passive-style bleed: every cell that reads at least
``balance_start_v`` (3.40 V) *and* more than ``balance_trigger_v`` (15 mV) above the
lowest cell has ``balance_current_a`` (0.2 A) drawn out of it by ``Pack.bleed``. Choices
where the reference is silent or sources differ:

- 0.2 A is the top of the 50–200 mA passive range (§1.5); JK's 1–2 A active balancers
  *move* charge between cells, which this model does not do (set a larger current to
  get their speed, not their efficiency). 0 disables balancing.
- 3.40 V / 15 mV are the typical JBD-style settings (§1.6: start 3.40 V, delta 15–30 mV);
  JK's example frame uses 3.45 V / 3 mV.
- Only while charging or resting (measured current ≥ 0): a discharge stops it at once.
  The decision uses the quantised readings of one ``update`` and the bleed runs during
  the next interval (applied at the start of the next ``update``, for that interval's
  dt, unless that interval was a discharge) — as a real balancer switches on a reading
  and then bleeds until the next one. So a cell stops bleeding within one step of
  reading below 3.40 V.
- The shunt does not see balancing current: the SoC estimate ignores it, as on a real
  BMS; the pack counts what was bled (``Pack.bled_ah``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bmslink.sim.pack import Pack
from bmslink.state import BatteryState


@dataclass
class BmsSettings:
    """Configuration of the simulated BMS; defaults suit a 16S LFP 280 Ah pack."""

    capacity_ah: float = 280.0
    # Cell voltage protection and warnings (V).
    cell_ovp_v: float = 3.65
    cell_ovp_release_v: float = 3.40
    cell_uvp_v: float = 2.50
    cell_uvp_release_v: float = 2.90
    cell_high_warning_v: float = 3.60
    cell_low_warning_v: float = 2.90
    cell_imbalance_warning_v: float = 0.100
    # Temperature windows (°C); protections release this far back inside the window.
    charge_temp_min_c: float = 0.0
    charge_temp_max_c: float = 45.0
    discharge_temp_min_c: float = -20.0
    discharge_temp_max_c: float = 60.0
    temp_release_hysteresis_k: float = 2.0
    #: Temperature warnings are raised this far inside each window edge.
    temp_warning_margin_k: float = 3.0
    # Currents (A) and over-current protection.
    max_charge_current_a: float = 140.0
    max_discharge_current_a: float = 140.0
    overcurrent_factor: float = 1.1
    overcurrent_release_s: float = 60.0
    # Voltage limits sent to the inverter, per cell (V).
    charge_voltage_per_cell_v: float = 3.45
    discharge_voltage_per_cell_v: float = 2.90
    # CCL taper on the highest cell: full up to start, linear to end_fraction at end,
    # then a step to 0 at zero_v and above.
    ccl_taper_start_v: float = 3.40
    ccl_taper_end_v: float = 3.55
    ccl_taper_zero_v: float = 3.55
    # DCL taper on the lowest cell, mirrored.
    dcl_taper_start_v: float = 3.10
    dcl_taper_end_v: float = 2.90
    dcl_taper_zero_v: float = 2.80
    #: Fraction of the max current left at the end of each taper. The charge taper
    #: runs to 0: a runner cell past full cannot take even 10 % without jumping
    #: over OVP within seconds.
    ccl_taper_end_fraction: float = 0.0
    dcl_taper_end_fraction: float = 0.10
    #: A limit that was cut is held this long, then comes back at most this fast;
    #: cuts apply at once. A limit computed from the voltage its own current causes
    #: oscillates at the top knee without this (the recovery rule of
    #: dbus-serialbattery: hold, then ramp).
    limit_recovery_hold_s: float = 30.0
    limit_recovery_a_per_s: float = 1.0
    # Temperature derating inside the windows: (°C, factor) points, linear between,
    # flat outside the first/last point but 0 outside the window (assumption).
    charge_temp_derate: tuple[tuple[float, float], ...] = (
        (0.0, 0.1),
        (10.0, 1.0),
        (40.0, 1.0),
        (45.0, 0.1),
    )
    discharge_temp_derate: tuple[tuple[float, float], ...] = (
        (-20.0, 0.2),
        (0.0, 1.0),
        (50.0, 1.0),
        (60.0, 0.2),
    )
    # Force-charge request on the BMS's own SoC estimate (%), with hysteresis.
    force_charge_on_soc_pct: float = 5.0
    force_charge_off_soc_pct: float = 10.0
    # SoC estimator.
    current_gain_error: float = 0.005
    soc_full_cell_v: float = 3.45
    soc_full_tail_c: float = 0.05
    soc_empty_cell_v: float = 2.90
    #: Fixed offsets of the 4 temperature sensors from the pack's lumped temperature.
    temp_sensor_offsets_c: tuple[float, ...] = (-0.6, 0.2, 0.7, -0.3)
    # Balancing (see the module docstring): bleed current per cell (A), 0 = off; a cell
    # bleeds while it reads >= start and > trigger above the lowest cell.
    balance_current_a: float = 0.2
    balance_start_v: float = 3.40
    balance_trigger_v: float = 0.015


# Protection kinds: (kind, blocks_charge, contract alarm name). Order = alarm order.
_CELL_OV = "cell_over_voltage"
_CELL_UV = "cell_under_voltage"
_CHG_OT = "charge_over_temperature"
_CHG_UT = "charge_under_temperature"
_DSG_OT = "discharge_over_temperature"
_DSG_UT = "discharge_under_temperature"
_CHG_OC = "charge_over_current"
_DSG_OC = "discharge_over_current"

#: Every protection kind, whether it blocks charging (else discharging), and its alarm.
PROTECTIONS: tuple[tuple[str, bool, str], ...] = (
    (_CELL_OV, True, "high_voltage"),
    (_CELL_UV, False, "low_voltage"),
    (_DSG_OT, False, "high_temperature"),
    (_DSG_UT, False, "low_temperature"),
    (_CHG_OT, True, "high_temperature_charge"),
    (_CHG_UT, True, "low_temperature_charge"),
    (_CHG_OC, True, "high_charge_current"),
    (_DSG_OC, False, "high_discharge_current"),
)
_floor = math.floor
#: Comparisons of 1 mV-quantised readings with thresholds allow this much float error.
_READ_EPS_V = 1e-6
_CHARGE_KINDS = tuple(k for k, c, _ in PROTECTIONS if c)
_DISCHARGE_KINDS = tuple(k for k, c, _ in PROTECTIONS if not c)


def _piecewise(points: tuple[tuple[float, float], ...], x: float) -> float:
    """Linear interpolation through ``points`` (sorted by x), flat beyond the ends."""
    x0, y0 = points[0]
    if x <= x0:
        return y0
    for x1, y1 in points[1:]:
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        x0, y0 = x1, y1
    return y0


def _full_span(points: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    """The x range over which ``points`` give a factor of at least 1 (fast path)."""
    full = [i for i, (_, y) in enumerate(points) if y >= 1.0]
    if not full or full != list(range(full[0], full[-1] + 1)):
        return (math.inf, -math.inf)  # empty: never take the fast path
    return (points[full[0]][0], points[full[-1]][0])


def _r1(x: float) -> float:
    """Round to 0.1 (half up); ~5× cheaper than round(x, 1), which matters per step."""
    return _floor(x * 10.0 + 0.5) / 10.0


def _r3(x: float) -> float:
    """Round to 0.001 (half up)."""
    return _floor(x * 1000.0 + 0.5) / 1000.0


class SimBms:
    """The BMS of one ``Pack``: call ``gate`` before stepping the pack, ``update`` after."""

    def __init__(
        self,
        pack: Pack,
        settings: BmsSettings | None = None,
        manufacturer: str = "bmslink-sim",
    ) -> None:
        self.pack = pack
        self.settings = settings if settings is not None else BmsSettings()
        self.manufacturer = manufacturer
        self.product = f"SIM-{pack.n_cells}S{self.settings.capacity_ah:g}"
        s = self.settings
        n = pack.n_cells
        self._cvl = round(s.charge_voltage_per_cell_v * n, 3)
        self._dvl = round(s.discharge_voltage_per_cell_v * n, 3)
        #: Number of protection activations since start.
        self.cutoffs = 0
        #: (kind, cell or sensor) for each protection activation, in order.
        self.events: list[tuple[str, str]] = []
        self._latched: dict[str, bool] = {k: False for k, _, _ in PROTECTIONS}
        self._oc_timer: dict[str, float] = {_CHG_OC: 0.0, _DSG_OC: 0.0}
        self._charge_fet = True
        self._discharge_fet = True
        self._current = 0.0
        self._remaining_ah = pack.soc_pct / 100.0 * s.capacity_ah
        self._discharged_ah = 0.0
        self._charged_kwh = 0.0
        self._discharged_kwh = 0.0
        self._force_charge = False
        # Measurements of the last update (filled now so that state() works at once).
        self._cells: list[float] = []
        self._temps: list[float] = []
        self._ccl = 0.0
        self._dcl = 0.0
        self._ccl_held = 0.0
        self._dcl_held = 0.0
        self._spans: dict[int, tuple[tuple[tuple[float, float], ...], float, float]] = {}
        # Cells (0-based) whose bleed runs during the next interval, and their currents.
        self._balancing: list[int] = []
        self._bleed_currents: list[float] = []
        self._measure(0.0)
        self._limits(min(self._cells), max(self._cells))
        self._force_charge = self.soc_pct < s.force_charge_on_soc_pct

    # -- read-outs --------------------------------------------------------------

    @property
    def charge_fet(self) -> bool:
        """True while no charge-blocking protection is latched."""
        return self._charge_fet

    @property
    def discharge_fet(self) -> bool:
        """True while no discharge-blocking protection is latched."""
        return self._discharge_fet

    @property
    def latched(self) -> tuple[str, ...]:
        """Kinds of the protections latched now."""
        return tuple(k for k, on in self._latched.items() if on)

    @property
    def soc_pct(self) -> float:
        """The BMS's own SoC estimate in percent (unrounded)."""
        return 100.0 * self._remaining_ah / self.settings.capacity_ah

    @property
    def balancing_cells(self) -> tuple[int, ...]:
        """Cells (1-based) whose balancer is on now, i.e. bleeds during the next step."""
        return tuple(i + 1 for i in self._balancing)

    @property
    def charge_current_limit_a(self) -> float:
        return self._ccl

    @property
    def discharge_current_limit_a(self) -> float:
        return self._dcl

    # -- stepping ---------------------------------------------------------------

    def gate(self, requested_current_a: float) -> float:
        """The current that really flows: 0 against an open FET, else the request."""
        if requested_current_a > 0.0 and not self._charge_fet:
            return 0.0
        if requested_current_a < 0.0 and not self._discharge_fet:
            return 0.0
        return requested_current_a

    def update(self, current_a: float, dt_s: float) -> None:
        """Account for ``current_a`` having flowed for ``dt_s``, then re-evaluate everything.

        Call after ``pack.apply`` with the gated current, so the measurements below see
        the pack's new state at the current that is flowing.
        """
        s = self.settings
        self._current = current_a
        cap = s.capacity_ah
        if self._balancing and current_a >= 0.0:
            self.pack.bleed(self._bleed_currents, dt_s)

        # Own SoC estimate: coulomb counting with the current sensor's gain error.
        measured = current_a * (1.0 + s.current_gain_error)
        ah = measured * dt_s / 3600.0
        rem = self._remaining_ah + ah
        self._remaining_ah = cap if rem > cap else 0.0 if rem < 0.0 else rem
        if ah < 0.0:
            self._discharged_ah -= ah

        volts = self._measure(current_a)
        kwh = volts * measured * dt_s / 3.6e6
        if kwh > 0.0:
            self._charged_kwh += kwh
        else:
            self._discharged_kwh -= kwh

        cells = self._cells
        vmax = max(cells)
        vmin = min(cells)
        # Re-synchronise at the ends of the curve.
        if vmax >= s.soc_full_cell_v and 0.0 <= current_a < s.soc_full_tail_c * cap:
            self._remaining_ah = cap
        elif vmin <= s.soc_empty_cell_v and current_a < 0.0:
            self._remaining_ah = 0.0

        soc = self.soc_pct
        if soc < s.force_charge_on_soc_pct:
            self._force_charge = True
        elif soc > s.force_charge_off_soc_pct:
            self._force_charge = False

        self._protect(current_a, dt_s, vmin, vmax)
        self._limits(vmin, vmax, dt_s)
        self._balance(current_a, vmin, vmax)

    def _balance(self, current_a: float, vmin: float, vmax: float) -> None:
        """Choose the cells that bleed during the next interval (none while discharging)."""
        s = self.settings
        start = s.balance_start_v - _READ_EPS_V
        trigger = s.balance_trigger_v + _READ_EPS_V
        if current_a < 0.0 or s.balance_current_a <= 0.0 or vmax < start or vmax - vmin <= trigger:
            if self._balancing:
                self._balancing = []
            return
        # v >= start and v - vmin > trigger, as one test: readings are whole millivolts and
        # both thresholds carry a 1 µV margin, so ">" against the larger one is the same
        over = max(start, vmin + trigger)
        chosen = [i for i, v in enumerate(self._cells) if v > over]
        if chosen != self._balancing:
            self._balancing = chosen
            currents = [0.0] * len(self._cells)
            for i in chosen:
                currents[i] = s.balance_current_a
            self._bleed_currents = currents

    def _measure(self, current_a: float) -> float:
        """Read cell voltages (1 mV resolution) and temperature sensors (0.1 K) from the pack.

        Quantising here, once, means that every decision the BMS takes is based on
        exactly the numbers it reports — as with a real BMS and its ADC. Returns the
        unquantised pack voltage (for the energy counters).
        """
        fl = _floor
        raw = self.pack.cell_voltages(current_a)
        self._cells = [fl(v * 1000.0 + 0.5) / 1000.0 for v in raw]
        t = self.pack.temperature_c
        self._temps = [fl((t + o) * 10.0 + 0.5) / 10.0 for o in self.settings.temp_sensor_offsets_c]
        return sum(raw)

    def _trip(self, kind: str, where: str) -> None:
        if not self._latched[kind]:
            self._latched[kind] = True
            self.cutoffs += 1
            self.events.append((kind, where))

    def _protect(self, current_a: float, dt_s: float, vmin: float, vmax: float) -> None:
        """Latch and release protections, then derive the FET states."""
        s = self.settings
        lat = self._latched
        cells = self._cells
        temps = self._temps
        tmin = min(temps)
        tmax = max(temps)
        hyst = s.temp_release_hysteresis_k

        if lat[_CELL_OV]:
            if vmax < s.cell_ovp_release_v:
                lat[_CELL_OV] = False
        elif vmax >= s.cell_ovp_v:
            self._trip(_CELL_OV, f"cell{cells.index(vmax) + 1}")

        if lat[_CELL_UV]:
            if vmin > s.cell_uvp_release_v:
                lat[_CELL_UV] = False
        elif vmin <= s.cell_uvp_v:
            self._trip(_CELL_UV, f"cell{cells.index(vmin) + 1}")

        # Fast path: nothing temperature-related latched and every sensor inside both
        # windows means no temperature protection can trip or release this step.
        if (
            lat[_CHG_OT]
            or lat[_CHG_UT]
            or lat[_DSG_OT]
            or lat[_DSG_UT]
            or tmin < s.charge_temp_min_c
            or tmin < s.discharge_temp_min_c
            or tmax > s.charge_temp_max_c
            or tmax > s.discharge_temp_max_c
        ):
            for kind, hot, limit, release in (
                (_CHG_OT, True, s.charge_temp_max_c, s.charge_temp_max_c - hyst),
                (_CHG_UT, False, s.charge_temp_min_c, s.charge_temp_min_c + hyst),
                (_DSG_OT, True, s.discharge_temp_max_c, s.discharge_temp_max_c - hyst),
                (_DSG_UT, False, s.discharge_temp_min_c, s.discharge_temp_min_c + hyst),
            ):
                if lat[kind]:
                    if (tmax <= release) if hot else (tmin >= release):
                        lat[kind] = False
                elif (tmax > limit) if hot else (tmin < limit):
                    sensor = temps.index(tmax if hot else tmin) + 1
                    self._trip(kind, f"T{sensor}")

        charge_over = current_a > s.max_charge_current_a * s.overcurrent_factor
        discharge_over = -current_a > s.max_discharge_current_a * s.overcurrent_factor
        if charge_over or discharge_over or lat[_CHG_OC] or lat[_DSG_OC]:
            for kind, over in ((_CHG_OC, charge_over), (_DSG_OC, discharge_over)):
                if lat[kind]:
                    self._oc_timer[kind] += dt_s
                    if self._oc_timer[kind] >= s.overcurrent_release_s:
                        lat[kind] = False
                elif over:
                    self._oc_timer[kind] = 0.0
                    self._trip(kind, "current")

        self._charge_fet = not any(lat[k] for k in _CHARGE_KINDS)
        self._discharge_fet = not any(lat[k] for k in _DISCHARGE_KINDS)

    def _limits(self, vmin: float, vmax: float, dt_s: float | None = None) -> None:
        """Derive CCL/DCL from the tapers, temperature and protections; ramp recoveries."""
        ccl, dcl = self.target_limits(vmin, vmax)
        if dt_s is None:
            self._ccl, self._dcl = ccl, dcl
            return
        s = self.settings
        self._ccl, self._ccl_held = self._recover(
            self._ccl, ccl, self._ccl_held, dt_s, headroom=vmax < s.ccl_taper_start_v
        )
        self._dcl, self._dcl_held = self._recover(
            self._dcl, dcl, self._dcl_held, dt_s, headroom=vmin > s.dcl_taper_start_v
        )

    def _recover(
        self, current: float, target: float, held_s: float, dt_s: float, headroom: bool
    ) -> tuple[float, float]:
        """(new limit, time held so far): cut at once; recover after a hold, then ramp.

        The hold runs while recovery is possible (target above the limit and headroom);
        it restarts whenever either stops. A limit only recovers while the cell that set
        it shows headroom (below the taper's start): near full, a runner cell's voltage
        depends so steeply on the current that raising the limit on a low reading
        overshoots OVP within a step.
        """
        if target <= current or not headroom:
            return min(target, current), 0.0
        s = self.settings
        held_s += dt_s
        if held_s < s.limit_recovery_hold_s:
            return current, held_s
        return min(target, current + s.limit_recovery_a_per_s * dt_s), held_s

    def target_limits(self, vmin: float, vmax: float) -> tuple[float, float]:
        """(CCL, DCL) the tapers, temperatures and protections ask for at these cell extremes."""
        s = self.settings
        tmin = min(self._temps)
        tmax = max(self._temps)

        if (
            not self._charge_fet
            or tmin < s.charge_temp_min_c
            or tmax > s.charge_temp_max_c
            or vmax >= s.ccl_taper_zero_v
        ):
            ccl = 0.0
        else:
            if vmax <= s.ccl_taper_start_v:
                taper = 1.0
            elif vmax >= s.ccl_taper_end_v:
                taper = s.ccl_taper_end_fraction
            else:
                x = (vmax - s.ccl_taper_start_v) / (s.ccl_taper_end_v - s.ccl_taper_start_v)
                taper = 1.0 - (1.0 - s.ccl_taper_end_fraction) * x
            temp = self._derate(s.charge_temp_derate, tmin, tmax)
            ccl = s.max_charge_current_a * min(taper, temp)

        if (
            not self._discharge_fet
            or tmin < s.discharge_temp_min_c
            or tmax > s.discharge_temp_max_c
            or vmin <= s.dcl_taper_zero_v
        ):
            dcl = 0.0
        else:
            if vmin >= s.dcl_taper_start_v:
                taper = 1.0
            elif vmin <= s.dcl_taper_end_v:
                taper = s.dcl_taper_end_fraction
            else:
                x = (s.dcl_taper_start_v - vmin) / (s.dcl_taper_start_v - s.dcl_taper_end_v)
                taper = 1.0 - (1.0 - s.dcl_taper_end_fraction) * x
            temp = self._derate(s.discharge_temp_derate, tmin, tmax)
            dcl = s.max_discharge_current_a * min(taper, temp)
        return ccl, dcl

    def _derate(self, points: tuple[tuple[float, float], ...], tmin: float, tmax: float) -> float:
        """The temperature factor for the coldest and hottest sensor (the smaller wins)."""
        span = self._spans.get(id(points))
        if span is None or span[0] is not points:
            span = (points, *_full_span(points))
            self._spans[id(points)] = span
        if span[1] <= tmin and tmax <= span[2]:
            return 1.0
        return min(_piecewise(points, tmin), _piecewise(points, tmax))

    # -- report -----------------------------------------------------------------

    def _warnings(self, vmin: float, vmax: float, tmin: float, tmax: float) -> list[str]:
        s = self.settings
        m = s.temp_warning_margin_k
        i = self._current
        out: list[str] = []
        if vmax >= s.cell_high_warning_v:
            out.append("high_voltage")
        if vmin <= s.cell_low_warning_v:
            out.append("low_voltage")
        if tmax >= s.discharge_temp_max_c - m:
            out.append("high_temperature")
        if tmin <= s.discharge_temp_min_c + m:
            out.append("low_temperature")
        if tmax >= s.charge_temp_max_c - m:
            out.append("high_temperature_charge")
        if tmin <= s.charge_temp_min_c + m:
            out.append("low_temperature_charge")
        if i > s.max_charge_current_a:
            out.append("high_charge_current")
        if -i > s.max_discharge_current_a:
            out.append("high_discharge_current")
        if vmax - vmin > s.cell_imbalance_warning_v:
            out.append("cell_imbalance")
        return out

    def state(self) -> BatteryState:
        """What this BMS reports, with every field such a BMS carries filled in."""
        s = self.settings
        cells = self._cells
        temps = self._temps
        vmin = min(cells)
        vmax = max(cells)
        tmin = min(temps)
        tmax = max(temps)
        charge_enable = self._charge_fet and self._ccl > 0.0
        discharge_enable = self._discharge_fet and self._dcl > 0.0
        lat = self._latched
        cap = s.capacity_ah
        r1, r3 = _r1, _r3
        alarms = (
            [name for kind, _, name in PROTECTIONS if lat[kind]]
            if not (self._charge_fet and self._discharge_fet)
            else []
        )
        return BatteryState(
            voltage_v=r3(sum(cells)),
            current_a=self._current,
            temperature_c=r1(self.pack.temperature_c),
            soc_pct=r1(self.soc_pct),
            soh_pct=100.0,
            charge_voltage_v=self._cvl,
            charge_current_a=r1(self._ccl),
            discharge_current_a=r1(self._dcl),
            discharge_voltage_v=self._dvl,
            charge_enable=charge_enable,
            discharge_enable=discharge_enable,
            force_charge=self._force_charge,
            full_charge_request=False,
            cells_v=list(cells),
            cell_min_v=vmin,
            cell_max_v=vmax,
            cell_min_id=str(cells.index(vmin) + 1),
            cell_max_id=str(cells.index(vmax) + 1),
            temperatures_c=list(temps),
            cell_temp_min_c=tmin,
            cell_temp_max_c=tmax,
            capacity_ah=cap,
            remaining_ah=r1(self._remaining_ah),
            installed_capacity_ah=cap,
            cycles=int(self._discharged_ah // cap),
            modules=1,
            modules_blocking_charge=0 if charge_enable else 1,
            modules_blocking_discharge=0 if discharge_enable else 1,
            modules_offline=0,
            charged_kwh=r3(self._charged_kwh),
            discharged_kwh=r3(self._discharged_kwh),
            manufacturer=self.manufacturer,
            product=self.product,
            alarms=alarms,
            warnings=self._warnings(vmin, vmax, tmin, tmax),
        )
