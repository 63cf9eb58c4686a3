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
"""

from __future__ import annotations

from collections.abc import Collection

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
        # Dynamic resistance seen at the terminals, estimated from the last two
        # operating points; it caps the CV loop's gain (see _charge).
        self._r_est_ohm = 0.05
        self._last_point: tuple[float, float] | None = None
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
        ``dt_s`` is accepted for interface symmetry; the CV loop works per step.
        """
        self._estimate_resistance(battery_voltage_v)
        cmd, limit = self._decide(seen, pv_w, load_w, battery_voltage_v)
        self.last_limit = limit
        self.last_command_a = cmd
        return cmd

    def _estimate_resistance(self, volts: float) -> None:
        """dV/dI between the last two commands, when they differ enough to tell."""
        point = (self.last_command_a, volts)
        last = self._last_point
        self._last_point = point
        if last is None:
            return
        di = point[0] - last[0]
        if abs(di) >= 0.01:
            r = (point[1] - last[1]) / di
            if r > 0.0:
                self._r_est_ohm = min(100.0, max(0.002, r))

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
        want_w = pv_w - load_w
        limit = "none"
        if want_w > self.rating_w:
            want_w = self.rating_w
            limit = "rating"
        elif want_w < -self.rating_w:
            want_w = -self.rating_w
            limit = "rating"
        if volts <= 0.0 or want_w == 0.0:
            return 0.0, limit
        want_a = want_w / volts

        if want_a > 0.0:
            return self._charge(seen, want_a, volts, limit)
        return self._discharge(seen, -want_a, volts, limit)

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
        # CV loop: integrate the voltage error onto the previous charge command, so the
        # ceiling falls by gain × overshoot each step and recovers the same way below CVL.
        # The gain is capped at half the inverse of the battery's dynamic resistance:
        # at the top knee that resistance grows tenfold, and a fixed gain then makes
        # the loop flip between 0 A and full current on alternate steps.
        prev = self.last_command_a if self.last_command_a > 0.0 else 0.0
        gain = min(self.cv_gain_a_per_v, 0.5 / self._r_est_ohm)
        ceiling = prev - gain * (volts - cvl)
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
