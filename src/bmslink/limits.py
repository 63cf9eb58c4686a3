"""Hardware limits: the last clamp on every limit that leaves bmslink.

Whatever a BMS or a controller asks for, the current into the battery must never
exceed what the cells, cables, fuses and inverter are rated for. A charge voltage
limit of 0 is refused outright: Victron treats CVL = 0 as over-voltage and
discharges at full power.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bmslink.errors import BmslinkError
from bmslink.state import BatteryState


class LimitError(BmslinkError, ValueError):
    """A limit that must never be sent (CVL of 0 or below)."""


@dataclass(frozen=True)
class HardwareLimits:
    """Configured ratings; outgoing CCL/DCL/CVL never exceed them, DVL never falls below."""

    max_charge_current_a: float
    max_discharge_current_a: float
    max_charge_voltage_v: float
    min_discharge_voltage_v: float

    def __post_init__(self) -> None:
        for name in ("max_charge_current_a", "max_discharge_current_a", "max_charge_voltage_v"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.min_discharge_voltage_v < self.max_charge_voltage_v:
            raise ValueError(
                f"min_discharge_voltage_v {self.min_discharge_voltage_v} must be below "
                f"max_charge_voltage_v {self.max_charge_voltage_v}"
            )

    @classmethod
    def for_cells(
        cls,
        cells: int,
        max_charge_current_a: float,
        max_discharge_current_a: float,
        max_cell_v: float = 3.55,
        min_cell_v: float = 2.80,
    ) -> HardwareLimits:
        """Voltage limits from per-cell values (LFP defaults: 3.55 V / 2.80 V)."""
        return cls(
            max_charge_current_a=max_charge_current_a,
            max_discharge_current_a=max_discharge_current_a,
            max_charge_voltage_v=round(max_cell_v * cells, 3),
            min_discharge_voltage_v=round(min_cell_v * cells, 3),
        )

    def clamp(self, state: BatteryState) -> tuple[BatteryState, list[str]]:
        """A copy with the limits clamped, and the keys that were changed.

        Absent limits stay absent (the profile then refuses the frame, or, where
        it has an "invalid" marker such as SMA's DVL, sends "not given"); a CVL
        of 0 or below raises LimitError instead of being "clamped" into something.
        """
        refuse_zero_cvl(state)
        changes: dict[str, float] = {}
        cvl = state.charge_voltage_v
        if cvl is not None and cvl > self.max_charge_voltage_v:
            changes["charge_voltage_v"] = self.max_charge_voltage_v
        ccl = state.charge_current_a
        if ccl is not None and ccl > self.max_charge_current_a:
            changes["charge_current_a"] = self.max_charge_current_a
        dcl = state.discharge_current_a
        if dcl is not None and dcl > self.max_discharge_current_a:
            changes["discharge_current_a"] = self.max_discharge_current_a
        dvl = state.discharge_voltage_v
        if dvl is not None and dvl < self.min_discharge_voltage_v:
            changes["discharge_voltage_v"] = self.min_discharge_voltage_v
        if not changes:
            return state, []
        return state.merged(changes), sorted(changes)


def refuse_zero_cvl(state: BatteryState) -> None:
    """A CVL of 0 or below is never sent: Victron reads it as over-voltage and discharges."""
    cvl = state.charge_voltage_v
    if cvl is not None and cvl <= 0:
        raise LimitError(f"charge_voltage_v {cvl:g} V is never sent")


#: Alarms that must stop charging / discharging when a profile can only say so with limits.
CHARGE_STOPPING_ALARMS = frozenset(
    {
        "high_voltage",
        "high_temperature_charge",
        "low_temperature_charge",
        "high_charge_current",
    }
)
DISCHARGE_STOPPING_ALARMS = frozenset({"low_voltage", "high_discharge_current"})
#: The only alarms that stop nothing; any other name (a new one included) stops both ways.
NON_STOPPING_ALARMS = frozenset({"cell_imbalance"})


def stopped_directions(alarms: Iterable[str]) -> tuple[bool, bool]:
    """(charging stopped, discharging stopped) by these active alarms.

    A charge-stopping alarm stops charging, a discharge-stopping one discharging, and any
    other name but ``cell_imbalance`` (a new one included) stops both.
    """
    active = set(alarms)
    if not active:
        return False, False
    both = bool(active - CHARGE_STOPPING_ALARMS - DISCHARGE_STOPPING_ALARMS - NON_STOPPING_ALARMS)
    return (
        both or bool(active & CHARGE_STOPPING_ALARMS),
        both or bool(active & DISCHARGE_STOPPING_ALARMS),
    )


def limits_for_alarms(state: BatteryState) -> tuple[BatteryState, list[str]]:
    """Express active alarms as zero current limits, for profiles with no alarm bits.

    BYD HVS, for one, has no alarm field bmslink can set: an over-voltage
    alarm would never reach the inverter unless CCL says 0. ``cell_imbalance``
    alone stops nothing. Returns the state and the keys set to 0.
    """
    stops_charge, stops_discharge = stopped_directions(state.alarms or ())
    changes: dict[str, float] = {}
    if stops_charge and state.charge_current_a != 0:
        changes["charge_current_a"] = 0.0
    if stops_discharge and state.discharge_current_a != 0:
        changes["discharge_current_a"] = 0.0
    if not changes:
        return state, []
    return state.merged(changes), sorted(changes)
