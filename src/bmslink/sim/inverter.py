"""A simulated hybrid inverter doing self-consumption with a BMS-managed battery.

Why: this is the consumer of everything the battery role puts on the bus. It obeys
the received limits the way a well-behaved inverter does, and it treats a missing
limit as a prohibition — a limit that was not received is not a licence. What its
protocol does not carry at all (Victron's enable flags, Growatt's DVL) it does
without, as the real inverter must: a zero current limit is then the stop. It also
keeps the books (energy, grid flows, time spent at each limit) so that a simulation
can show what a given link or configuration costs.

Simplifications (documented, deliberate): no conversion losses, no grid charging
(``force_charge`` is not acted upon), PV beyond the rating is not clipped separately
from the battery power (the rating limits the battery power only).

CV regulation. A real inverter holds the terminal voltage at CVL with a PI loop running
in milliseconds; it does not know the OCV. Stepped at 1–10 s, the model needs two things
a fast loop gets for free, and the reference is silent on both (our choices):

- A gain that suits the battery: the integrator's gain is capped at half the inverse of
  the dynamic resistance dV/dI, which grows tenfold and more at the top knee. The
  resistance is fitted by least squares over the last ``RESISTANCE_WINDOW_STEPS`` steps
  as ΔV = R·ΔI + d·Δt, i.e. together with a drift d: at a held current the voltage keeps
  moving (OCV hysteresis, the RC pair, the knee rising with SoC), and a plain ΔV/ΔI
  between two steps reads that drift as resistance (huge or negative when ΔI is small).
  The fit is used only when the current varied across the window (beyond what a drift
  would explain) and its standard error is at most ``RESISTANCE_MAX_RELATIVE_ERROR`` of
  the value; otherwise the last estimate stands. Before the window holds three steps, a
  fresh inverter uses ΔV/ΔI of the last step, as before. Clamped to 2 mΩ…100 Ω. The
  ΔI are the inverter's own commands (as before), not the current the BMS let through.
- Anticipation of a rising voltage: the drift (what ΔV left after R·ΔI, per second) is
  assumed to go on over the next step, and the current is lowered by the rise it would
  bring past the target, divided by R — what a fast loop does continuously as the
  voltage creeps up. Only a rise seen on two steps running counts (the smaller of the
  two): a one-off jump, such as the resistance of a pack that suddenly went cold, is
  not a drift. A falling drift never raises the current. Only near the target does this
  matter: far below it, the predicted rise stays short of the target and nothing is
  taken off.

``VoltageOnlyInverter`` is the same inverter with its battery type set to "lithium /
user-defined voltage", i.e. what an inverter does with no BMS communication at all: a
bulk → absorption → float charger on fixed voltages, a low-voltage cut-off, and a SoC
read off the terminal voltage. It exists to show what the link is worth: on LFP's flat
plateau (reference battery-model-and-control.md §1.1: 10 mV per cell ≈ 30 % SoC) the
IR drop alone moves that SoC by tens of percent, and a BMS cut-off is visible to it
only as a voltage. Choices where the reference is silent or sources disagree:

- Absorption 56.4 V (3.525 V/cell) is what many DIY users set on a user-defined
  battery type; it is deliberately above the 55.2 V (3.45 V/cell) the reference (§1.7)
  calls typical, because that is the real-world setting being modelled.
- Float 54.0 V (3.375 V/cell) is dbus-serialbattery's float default (§2.1); rebulk
  52.8 V is Sleeper85's 3.30 V/cell (§2.3) — but applied to the terminal voltage, so a
  heavy load in float re-enters bulk, as a voltage-only charger does.
- Absorption time 900 s follows dbus-serialbattery's absorption hold (§2.1). It counts
  from the first step at which the terminal voltage is within 0.1 V
  (``absorption_entry_band_v``) of ``absorption_v``, and keeps counting while in
  absorption whatever PV does (a timer in the charger, not a measurement). A voltage
  below ``rebulk_v`` returns to bulk from absorption as well as from float.
- Low-voltage cut-off 48.0 V (3.00 V/cell, the empty end of the rested range, §1.7)
  is applied under load, so it leaves a few percent in the cells; restart 51.0 V
  (~3.19 V/cell, ~10 % at rest by §1.1) is far enough above it that the rebound after
  the load stops does not restart a near-empty pack. The cut-off and restart watch the
  voltage on every step, charging or not.
- The SoC table (``VOLTAGE_SOC_TABLE_16S``) is coarse, as display tables in inverter
  firmware are: its ends are the reference's 48.0 V / 54.4 V rested range, 51.2 V is
  the nominal 3.20 V/cell, and the middle points are round voltages within ~0.3 V of
  the §1.1 rested curve (52.21 V at 40 %, 52.90 V at 80 %). It is read on the terminal
  voltage with no IR compensation, no filtering and no coulomb counting: that is the
  failure being demonstrated.
- CV regulation: the same integrating loop as ``SimInverter`` (so the two inverters
  differ only in what they know), plus the fast cut a charger's own voltage regulation
  has: while the terminal voltage is more than ``overvoltage_cut_band_v`` above the
  setpoint, the current is halved each step. A real charger regulates in milliseconds;
  stepped at seconds, past full the knee (its resistance grows e-fold per ~0.1 % of
  capacity) outruns the integrator alone and pushes an ideal pack volts over the
  setpoint and into its BMS's over-voltage protection: an artifact of the stepping,
  not the voltage-only failure being shown. The halving is our choice (assumption).
- Voltages are pack voltages for 16S; ``VoltageOnlySettings.for_series`` scales them
  (and the table) for another cell count.
- Currents: 100 A charge is the usual round user setting (≤ 0.5 C for the common
  200–314 Ah cells); 120 A discharge is a 6 kW inverter's rating at 50 V.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from itertools import pairwise

from bmslink.state import BatteryState

#: Every name ``last_limit`` can take, also the keys of ``seconds_at_limit``.
LIMIT_NAMES: tuple[str, ...] = (
    "none",
    "ccl",
    "cvl",
    "dcl",
    "dvl",
    "charge_disabled",
    "discharge_disabled",
    "rating",
    "battery_lost",
)

#: Keys the inverter can do without when its protocol has no place for them.
OPTIONAL_WHEN_NOT_CARRIED = ("charge_enable", "discharge_enable", "discharge_voltage_v")

#: After a DVL stop, discharging resumes only once the battery is this far above DVL,
#: per cell in series (2 V on 16S); without it the inverter would chatter on/off each
#: step as the voltage recovers from the IR drop.
DVL_RESTART_MARGIN_PER_CELL_V = 0.125

_J_PER_KWH = 3.6e6

#: Steps the CV loop's resistance fit looks back over (see the module docstring).
RESISTANCE_WINDOW_STEPS = 5
#: The fit is used only when its standard error is at most this fraction of its value.
RESISTANCE_MAX_RELATIVE_ERROR = 0.25
#: ... and the current varied by at least this much (A, root-sum-square) beyond a drift-like ramp.
_MIN_CURRENT_SPREAD_A = 0.001
#: A single step's ΔV/ΔI (start-up only) needs at least this current change (A).
_MIN_CURRENT_STEP_A = 0.01
_R_MIN_OHM = 0.002
_R_MAX_OHM = 100.0


class SimInverter:
    """Self-consumption: battery power = PV − load, within the rating and the BMS limits."""

    def __init__(
        self,
        rating_w: float = 6000.0,
        cv_gain_a_per_v: float = 40.0,
        carried: Collection[str] | None = None,
        series_cells: int = 16,
    ) -> None:
        """``carried``: the state keys the link's profile carries (None: all of them)."""
        if rating_w <= 0.0 or cv_gain_a_per_v <= 0.0:
            raise ValueError("rating and CV gain must be positive")
        self.rating_w = rating_w
        self.dvl_restart_margin_v = DVL_RESTART_MARGIN_PER_CELL_V * series_cells
        self._optional = (
            frozenset()
            if carried is None
            else frozenset(k for k in OPTIONAL_WHEN_NOT_CARRIED if k not in carried)
        )
        self.cv_gain_a_per_v = cv_gain_a_per_v
        #: What limited the last decision (one of LIMIT_NAMES).
        self.last_limit = "none"
        #: The last command returned by ``decide`` (A, + = charge).
        self.last_command_a = 0.0
        self._dvl_stopped = False
        # Dynamic resistance seen at the terminals and the voltage drift at a held
        # current, fitted over the last steps; they set the CV loop's gain and
        # anticipation (module docstring, _cv_ceiling).
        self._r_est_ohm = 0.05
        # Drift (V/s) over the last step and the one before (what R·ΔI did not explain).
        self._drift_v_per_s = 0.0
        self._previous_drift_v_per_s = 0.0
        # (command, voltage) at the last reading, and the length of the step after it.
        self._last_point: tuple[float, float] | None = None
        self._last_step_s: float | None = None
        self._next_step_s = 0.0
        # (ΔI, Δt, ΔV) of the last steps, oldest first.
        self._steps: deque[tuple[float, float, float]] = deque(maxlen=RESISTANCE_WINDOW_STEPS)
        self.energy_in_kwh = 0.0
        self.energy_out_kwh = 0.0
        self.grid_import_kwh = 0.0
        self.grid_export_kwh = 0.0
        self.pv_kwh = 0.0
        self.load_kwh = 0.0
        self.seconds_at_limit: dict[str, float] = dict.fromkeys(LIMIT_NAMES, 0.0)

    def decide(
        self,
        seen: BatteryState | None,
        pv_w: float,
        load_w: float,
        battery_voltage_v: float,
        dt_s: float,
    ) -> float:
        """The battery current (A, + = charge) to drive for the next step.

        ``seen`` is the latest state received from the BMS (None: link lost → 0 A).
        ``dt_s`` is how long the command will be held: the CV loop anticipates the
        voltage drift over it.
        """
        self._observe(battery_voltage_v, dt_s)
        cmd, limit = self._decide(seen, pv_w, load_w, battery_voltage_v)
        self.last_limit = limit
        self.last_command_a = cmd
        return cmd

    def _forget_steps(self) -> None:
        """Drop the step history (a reading was unusable): the next step starts afresh."""
        self._last_point = None
        self._last_step_s = None
        self._steps.clear()
        self._drift_v_per_s = self._previous_drift_v_per_s = 0.0

    def _observe(self, volts: float, dt_s: float) -> None:
        """Record the step that just ended and refit resistance and drift from it.

        The reading was taken under the previous command, held for the previous ``dt_s``.
        """
        step_ok = math.isfinite(dt_s) and dt_s > 0.0
        self._next_step_s = dt_s if step_ok else 0.0
        if not math.isfinite(volts):
            self._forget_steps()
            return
        last, elapsed = self._last_point, self._last_step_s
        self._last_point = (self.last_command_a, volts)
        self._last_step_s = dt_s if step_ok else None
        self._previous_drift_v_per_s = self._drift_v_per_s
        if last is None or elapsed is None:
            self._drift_v_per_s = 0.0
            return
        di = self.last_command_a - last[0]
        dv = volts - last[1]
        self._steps.append((di, elapsed, dv))
        self._fit_resistance(di, dv)
        # What the resistance does not explain: the drift, assumed to go on (_cv_ceiling).
        self._drift_v_per_s = (dv - self._r_est_ohm * di) / elapsed

    def _fit_resistance(self, di: float, dv: float) -> None:
        """Least squares ΔV = R·ΔI + d·Δt over the window; keep R only if it is well told.

        R is told apart from the drift d only by how ΔI varies across the window beyond
        a ramp proportional to Δt (``spread``, the Schur complement of the normal
        equations); its standard error is sigma / sqrt(spread).
        """
        steps = self._steps
        n = len(steps)
        if n < 3:  # too few steps for a fit with a residual: the last step alone
            if abs(di) >= _MIN_CURRENT_STEP_A and dv / di > 0.0:
                self._r_est_ohm = min(_R_MAX_OHM, max(_R_MIN_OHM, dv / di))
            return
        sii = sit = stt = siv = stv = 0.0
        for i, t, v in steps:
            sii += i * i
            sit += i * t
            stt += t * t
            siv += i * v
            stv += t * v
        spread = sii - sit * sit / stt
        if not spread >= _MIN_CURRENT_SPREAD_A * _MIN_CURRENT_SPREAD_A:
            return
        r = (siv - sit * stv / stt) / spread
        if not r > 0.0:
            return
        d = (stv - r * sit) / stt
        sse = sum((v - r * i - d * t) ** 2 for i, t, v in steps)
        if sse / (n - 2) > (RESISTANCE_MAX_RELATIVE_ERROR * r) ** 2 * spread:
            return
        self._r_est_ohm = min(_R_MAX_OHM, max(_R_MIN_OHM, r))

    def _decide(
        self,
        seen: BatteryState | None,
        pv_w: float,
        load_w: float,
        volts: float,
    ) -> tuple[float, str]:
        if seen is None:
            self._dvl_stopped = False
            return 0.0, "battery_lost"
        want_w, limit = self._wanted_power(pv_w, load_w)
        if volts <= 0.0 or want_w == 0.0:
            return 0.0, limit
        want_a = want_w / volts

        if want_a > 0.0:
            return self._charge(seen, want_a, volts, limit)
        return self._discharge(seen, -want_a, volts, limit)

    def _wanted_power(self, pv_w: float, load_w: float) -> tuple[float, str]:
        """Self-consumption: the battery power (W, + = charge) PV − load asks for, rated."""
        want_w = pv_w - load_w
        if want_w > self.rating_w:
            return self.rating_w, "rating"
        if want_w < -self.rating_w:
            return -self.rating_w, "rating"
        return want_w, "none"

    def _cv_ceiling(self, volts: float, target_v: float) -> float:
        """The most charge current the CV loop allows this step (may be ≤ 0: then none).

        Integrates the voltage error onto the previous charge command, so the ceiling
        falls by gain × overshoot each step and recovers the same way below the target.
        The gain is capped at half the inverse of the battery's dynamic resistance: at
        the top knee that resistance grows tenfold, and a fixed gain then makes the loop
        flip between 0 A and full current on alternate steps. A rising drift is taken
        off in advance (the part of next step's rise that would pass the target, / R):
        at a held current the voltage climbs on (the knee steepens as the cells fill),
        and an integrator alone trails that ramp by about twice one step's rise.
        """
        prev = self.last_command_a if self.last_command_a > 0.0 else 0.0
        r = self._r_est_ohm
        gain = min(self.cv_gain_a_per_v, 0.5 / r)
        # a rise seen on two steps running, and only the part that would pass the target
        rise = min(self._drift_v_per_s, self._previous_drift_v_per_s) * self._next_step_s
        anticipated = min(rise, volts + rise - target_v)
        if anticipated < 0.0:
            anticipated = 0.0
        return prev - gain * (volts - target_v) - anticipated / r

    def _charge(
        self, seen: BatteryState, want_a: float, volts: float, limit: str
    ) -> tuple[float, str]:
        ccl = seen.charge_current_a
        cvl = seen.charge_voltage_v
        enabled = seen.charge_enable or (
            seen.charge_enable is None and "charge_enable" in self._optional
        )
        if not enabled or ccl is None or cvl is None or ccl <= 0.0:
            return 0.0, "charge_disabled"
        if want_a > ccl:
            want_a = ccl
            limit = "ccl"
        ceiling = self._cv_ceiling(volts, cvl)
        if ceiling < want_a:
            want_a = ceiling if ceiling > 0.0 else 0.0
            limit = "cvl"
        return want_a, limit

    def _discharge(
        self, seen: BatteryState, want_a: float, volts: float, limit: str
    ) -> tuple[float, str]:
        """``want_a`` is the wanted discharge magnitude; returns a negative command."""
        dcl = seen.discharge_current_a
        dvl = seen.discharge_voltage_v
        enabled = seen.discharge_enable or (
            seen.discharge_enable is None and "discharge_enable" in self._optional
        )
        dvl_known = dvl is not None or "discharge_voltage_v" in self._optional
        if not enabled or dcl is None or not dvl_known or dcl <= 0.0:
            return 0.0, "discharge_disabled"
        if dvl is not None:  # without a DVL the BMS's own cut-off is the last word
            if self._dvl_stopped and volts >= dvl + self.dvl_restart_margin_v:
                self._dvl_stopped = False
            if volts < dvl:
                self._dvl_stopped = True
            if self._dvl_stopped:
                return 0.0, "dvl"
        if want_a > dcl:
            want_a = dcl
            limit = "dcl"
        return -want_a, limit

    def account(
        self,
        actual_current_a: float,
        battery_voltage_v: float,
        pv_w: float,
        load_w: float,
        dt_s: float,
    ) -> None:
        """Book one step with the current that really flowed (after the BMS gate)."""
        battery_w = actual_current_a * battery_voltage_v
        if battery_w > 0.0:
            self.energy_in_kwh += battery_w * dt_s / _J_PER_KWH
        else:
            self.energy_out_kwh -= battery_w * dt_s / _J_PER_KWH
        grid_w = load_w + battery_w - pv_w  # + = import
        if grid_w > 0.0:
            self.grid_import_kwh += grid_w * dt_s / _J_PER_KWH
        else:
            self.grid_export_kwh -= grid_w * dt_s / _J_PER_KWH
        self.pv_kwh += pv_w * dt_s / _J_PER_KWH
        self.load_kwh += load_w * dt_s / _J_PER_KWH
        self.seconds_at_limit[self.last_limit] += dt_s


# -- without BMS communication ------------------------------------------------------------------

#: Voltage → SoC lookup of a voltage-only inverter on 16S LFP: (pack V, SoC %), rising.
#: Basis in the module docstring (reference §1.1 / §1.7).
VOLTAGE_SOC_TABLE_16S: tuple[tuple[float, float], ...] = (
    (48.0, 0.0),
    (51.2, 20.0),
    (52.0, 40.0),
    (52.6, 60.0),
    (53.2, 80.0),
    (54.4, 100.0),
)

#: The charge phases of a voltage-only charger, in the order a full cycle visits them.
PHASES: tuple[str, ...] = ("bulk", "absorption", "float")

_SERIES_16 = 16

#: The charge current is multiplied by this on each step the voltage is clearly above the
#: CV setpoint (see the module docstring).
OVERVOLTAGE_CUT_FACTOR = 0.5


@dataclass(frozen=True)
class VoltageOnlySettings:
    """What a DIY user sets on a "lithium / user-defined" battery type (16S LFP, pack volts).

    The reasons for each default are in the module docstring.
    """

    #: Inverter power rating (W); the same default as ``SimInverter``.
    rating_w: float = 6000.0
    #: Largest charge current the user allows (A).
    max_charge_current_a: float = 100.0
    #: Largest discharge current (A); 6 kW at 50 V.
    max_discharge_current_a: float = 120.0
    #: Bulk ends and absorption holds at this terminal voltage (3.525 V/cell).
    absorption_v: float = 56.4
    #: Absorption starts once the terminal voltage is this close to ``absorption_v``: the
    #: CV loop approaches its target asymptotically, so exact equality might never come.
    absorption_entry_band_v: float = 0.1
    #: Above the CV setpoint by more than this, the charge current is halved each step.
    overvoltage_cut_band_v: float = 0.1
    #: How long absorption is held before float (s).
    absorption_time_s: float = 900.0
    #: Float voltage (3.375 V/cell): just below the 54.4 V rested full, so float adds little.
    float_v: float = 54.0
    #: Back to bulk when the terminal voltage falls below this (3.30 V/cell).
    rebulk_v: float = 52.8
    #: Discharge stops when the terminal voltage under load falls to this (3.00 V/cell).
    low_voltage_cutoff_v: float = 48.0
    #: Discharge resumes only once the terminal voltage is back at this.
    restart_v: float = 51.0
    #: CV loop gain, as ``SimInverter``'s.
    cv_gain_a_per_v: float = 40.0
    #: Terminal voltage → SoC lookup, (V, %) with both columns rising.
    soc_table: tuple[tuple[float, float], ...] = field(default=VOLTAGE_SOC_TABLE_16S)

    def __post_init__(self) -> None:
        numbers = (
            self.rating_w,
            self.max_charge_current_a,
            self.max_discharge_current_a,
            self.absorption_v,
            self.absorption_entry_band_v,
            self.overvoltage_cut_band_v,
            self.absorption_time_s,
            self.float_v,
            self.rebulk_v,
            self.low_voltage_cutoff_v,
            self.restart_v,
            self.cv_gain_a_per_v,
        )
        if not all(math.isfinite(x) for x in numbers):
            raise ValueError("every voltage-only setting must be a finite number")
        if min(self.rating_w, self.max_charge_current_a, self.max_discharge_current_a) <= 0.0:
            raise ValueError("rating and current maxima must be positive")
        if self.cv_gain_a_per_v <= 0.0:
            raise ValueError("CV gain must be positive")
        if min(self.absorption_time_s, self.absorption_entry_band_v) < 0.0:
            raise ValueError("absorption time and entry band must not be negative")
        if self.overvoltage_cut_band_v < 0.0:
            raise ValueError("the over-voltage cut band must not be negative")
        if not 0.0 < self.low_voltage_cutoff_v < self.restart_v:
            raise ValueError(
                f"need 0 < low_voltage_cutoff_v ({self.low_voltage_cutoff_v})"
                f" < restart_v ({self.restart_v})"
            )
        if not 0.0 < self.rebulk_v < self.float_v <= self.absorption_v:
            raise ValueError(
                f"need 0 < rebulk_v ({self.rebulk_v}) < float_v ({self.float_v})"
                f" <= absorption_v ({self.absorption_v})"
            )
        table = self.soc_table
        if len(table) < 2:
            raise ValueError("the SoC table needs at least two points")
        for (v0, p0), (v1, p1) in pairwise(table):
            if not (v0 < v1 and p0 <= p1):
                raise ValueError(f"SoC table must rise: {(v0, p0)} then {(v1, p1)}")
        if not all(0.0 <= p <= 100.0 and math.isfinite(v) for v, p in table):
            raise ValueError("SoC table percentages must lie in 0..100")

    @classmethod
    def for_series(cls, series_cells: int) -> VoltageOnlySettings:
        """The 16S defaults with every voltage (and the SoC table) scaled to ``series_cells``.

        Change anything else with ``dataclasses.replace`` on the result.
        """
        if series_cells < 1:
            raise ValueError(f"series_cells {series_cells} must be at least 1")
        k = series_cells / _SERIES_16
        base = cls()
        return replace(
            base,
            absorption_v=base.absorption_v * k,
            absorption_entry_band_v=base.absorption_entry_band_v * k,
            overvoltage_cut_band_v=base.overvoltage_cut_band_v * k,
            float_v=base.float_v * k,
            rebulk_v=base.rebulk_v * k,
            low_voltage_cutoff_v=base.low_voltage_cutoff_v * k,
            restart_v=base.restart_v * k,
            soc_table=tuple((v * k, p) for v, p in base.soc_table),
        )


def soc_from_voltage(volts: float, table: tuple[tuple[float, float], ...]) -> float:
    """Linear interpolation in ``table`` ((V, %) rising), clamped to its end points."""
    if volts <= table[0][0]:
        return table[0][1]
    if volts >= table[-1][0]:
        return table[-1][1]
    i = bisect_right([v for v, _ in table], volts)
    (v0, p0), (v1, p1) = table[i - 1], table[i]
    return p0 + (p1 - p0) * (volts - v0) / (v1 - v0)


class VoltageOnlyInverter(SimInverter):
    """An inverter without BMS communication: it ignores ``seen`` and steers on voltage alone.

    Bulk at up to ``max_charge_current_a`` with a CV loop to ``absorption_v``, absorption
    for ``absorption_time_s``, then float at ``float_v`` until the terminal voltage drops
    below ``rebulk_v``. Discharge at up to ``max_discharge_current_a`` until the voltage
    under load falls to ``low_voltage_cutoff_v``, again from ``restart_v``. Limit names:
    "cvl" (CV loop), "dvl" (low-voltage cut-off), "ccl"/"dcl" (its own maxima), "rating";
    never "battery_lost" — it has no link to lose. A BMS that opens its FETs is seen
    only through what that does to the voltage.
    """

    def __init__(self, settings: VoltageOnlySettings | None = None) -> None:
        s = settings if settings is not None else VoltageOnlySettings()
        super().__init__(rating_w=s.rating_w, cv_gain_a_per_v=s.cv_gain_a_per_v)
        self.settings = s
        self._phase = "bulk"
        self._absorption_s = 0.0
        self._low_voltage_stopped = False
        self._soc_pct: float | None = None

    @property
    def soc_pct(self) -> float | None:
        """Its own SoC (%), looked up on the last terminal voltage; None before any reading."""
        return self._soc_pct

    @property
    def phase(self) -> str:
        """The charge phase, one of PHASES."""
        return self._phase

    @property
    def absorption_elapsed_s(self) -> float:
        """Time spent in the current absorption phase (0 outside it)."""
        return self._absorption_s

    @property
    def discharge_stopped(self) -> bool:
        """True between a low-voltage cut-off and the restart voltage."""
        return self._low_voltage_stopped

    def decide(
        self,
        seen: BatteryState | None,
        pv_w: float,
        load_w: float,
        battery_voltage_v: float,
        dt_s: float,
    ) -> float:
        """The battery current (A, + = charge) for the next ``dt_s``; ``seen`` is ignored."""
        volts = battery_voltage_v
        if not (math.isfinite(volts) and volts > 0.0):
            # No usable measurement: nothing to steer on, so drive nothing.
            self._forget_steps()
            self._soc_pct = None
            self.last_limit = "none"
            self.last_command_a = 0.0
            return 0.0
        self._soc_pct = soc_from_voltage(volts, self.settings.soc_table)
        self._watch_voltage(volts)
        command = super().decide(None, pv_w, load_w, volts, dt_s)
        if self._phase == "absorption":
            self._absorption_s += dt_s
        return command

    def _watch_voltage(self, volts: float) -> None:
        """Phase changes and the low-voltage latch, on every reading."""
        s = self.settings
        if volts < s.rebulk_v:
            self._phase = "bulk"
            self._absorption_s = 0.0
        elif self._phase == "bulk" and volts >= s.absorption_v - s.absorption_entry_band_v:
            self._phase = "absorption"
            self._absorption_s = 0.0
        if self._phase == "absorption" and self._absorption_s >= s.absorption_time_s:
            self._phase = "float"
            self._absorption_s = 0.0
        if self._low_voltage_stopped and volts >= s.restart_v:
            self._low_voltage_stopped = False
        if volts <= s.low_voltage_cutoff_v:
            self._low_voltage_stopped = True

    def _decide(
        self,
        seen: BatteryState | None,
        pv_w: float,
        load_w: float,
        volts: float,
    ) -> tuple[float, str]:
        want_w, limit = self._wanted_power(pv_w, load_w)
        if volts <= 0.0 or want_w == 0.0:
            return 0.0, limit
        s = self.settings
        want_a = want_w / volts
        if want_a > 0.0:
            if want_a > s.max_charge_current_a:
                want_a, limit = s.max_charge_current_a, "ccl"
            target = s.float_v if self._phase == "float" else s.absorption_v
            ceiling = self._cv_ceiling(volts, target)
            if volts > target + s.overvoltage_cut_band_v:
                # a charger's own fast cut: halve per step while clearly above the setpoint
                ceiling = min(ceiling, OVERVOLTAGE_CUT_FACTOR * max(self.last_command_a, 0.0))
            if ceiling < want_a:
                want_a, limit = max(ceiling, 0.0), "cvl"
            return want_a, limit
        if self._low_voltage_stopped:
            return 0.0, "dvl"
        if -want_a > s.max_discharge_current_a:
            return -s.max_discharge_current_a, "dcl"
        return want_a, limit
