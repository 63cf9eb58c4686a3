"""Several BMSs in parallel as one bank: which packs may be combined, and the bank's limits.

Rules (issue 5, and what a pack that drops out must do to the bank):

- A pack counts only while it answers: a pack whose last poll failed, that
  reports no voltage, or reports a cell count other than the bank's, is left
  out and named in the notes.
- Packs in parallel share one bus voltage. Packs whose voltages differ by more
  than ``max_voltage_difference_v`` are not combined: the bank is the largest
  group that agrees; when two groups of the same size disagree nobody can tell
  which is right, and no pack is combined.
- Measurements come from ``bank_of`` (mean voltage, summed current and
  capacities, capacity-weighted SoC, cell extremes naming their pack ``m2 c5``).
- Current limits are summed over the combined packs, each pack giving what its
  BMS sends, else its configured maximum, and 0 while it blocks that direction
  (FET off, enable cleared, or an alarm that stops that direction). A pack that
  is missing gives nothing: the limit is never an average that counts it.
- CVL is the lowest any pack asks for, else the configured one; DVL the highest.
- Alarms and warnings are merged (union). A pack left out or blocking a
  direction adds the ``general`` warning and a note saying which and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bmslink.bank import bank_of, state_capacity_ah
from bmslink.limits import stopped_directions
from bmslink.state import ALARM_NAMES, BatteryState


@dataclass(frozen=True)
class PackSettings:
    """What the installation says about one pack."""

    name: str
    #: Used when the BMS sends no current limits (JK, JBD, Daly, Seplos V2, Pace do not).
    max_charge_current_a: float
    max_discharge_current_a: float


@dataclass(frozen=True)
class BankSettings:
    """What the installation says about the bank."""

    series_cells: int = 16
    #: CVL / DVL when no pack sends one (16S LFP: 3.45 V and 2.90 V per cell).
    charge_voltage_v: float = 55.2
    discharge_voltage_v: float = 46.4
    max_voltage_difference_v: float = 1.0
    #: SoH presented when no pack sends one (JK, JBD, Daly do not) but a profile needs it
    #: (Pylontech's 0x355). A stated value, not a reading; None: leave it absent, and
    #: the profiles that need it then refuse to broadcast.
    soh_pct_if_unknown: float | None = 100.0


@dataclass(frozen=True)
class PackReading:
    """A pack's latest poll: its state, or None with the reason it is missing."""

    settings: PackSettings
    state: BatteryState | None
    error: str | None = None


@dataclass
class Bank:
    """The combined state (None when no pack can be combined) and what the user should know."""

    state: BatteryState | None
    combined: list[str]
    notes: list[str] = field(default_factory=list)
    blocking_charge: list[str] = field(default_factory=list)
    blocking_discharge: list[str] = field(default_factory=list)


def _stops(alarms: Iterable[str], direction: str) -> bool:
    """Does an active alarm stop ``direction`` ("charge" or "discharge")?"""
    charge, discharge = stopped_directions(alarms)
    return charge if direction == "charge" else discharge


def pack_limit(reading: PackReading, direction: str) -> float:
    """What one pack allows in ``direction`` ("charge" or "discharge"), 0 while it blocks it."""
    state = reading.state
    assert state is not None
    if direction == "charge":
        sent, enabled = state.charge_current_a, state.charge_enable
        configured = reading.settings.max_charge_current_a
    else:
        sent, enabled = state.discharge_current_a, state.discharge_enable
        configured = reading.settings.max_discharge_current_a
    if enabled is False or _stops(state.alarms or (), direction):
        return 0.0
    amps = configured if sent is None else min(sent, configured)
    return max(0.0, amps)


def _voltage_group(packs: Sequence[PackReading], margin: float) -> tuple[list[int], str | None]:
    """Indexes of the largest group of packs within ``margin`` volts of each other."""
    volts = [_volts(p) for p in packs]
    order = sorted(range(len(packs)), key=volts.__getitem__)
    best: list[list[int]] = []
    for start, first in enumerate(order):
        group = [i for i in order[start:] if volts[i] - volts[first] <= margin + 1e-9]
        if not best or len(group) > len(best[0]):
            best = [group]
        elif len(group) == len(best[0]) and not set(group) <= set(best[0]):
            best.append(group)
    if len(best) > 1:
        listed = ", ".join(
            f"{p.settings.name} {v:.2f} V" for p, v in zip(packs, volts, strict=True)
        )
        return [], f"pack voltages disagree by more than {margin:g} V ({listed}): none combined"
    return sorted(best[0]), None


def _volts(reading: PackReading) -> float:
    assert reading.state is not None and reading.state.voltage_v is not None
    return reading.state.voltage_v


def aggregate(readings: Sequence[PackReading], bank: BankSettings) -> Bank:
    """The bank from the packs' latest readings (see the module docstring for the rules)."""
    notes: list[str] = []
    usable: list[PackReading] = []
    for r in readings:
        name, state = r.settings.name, r.state
        if state is None:
            notes.append(f"{name} lost: {r.error}" if r.error else f"{name} has not answered yet")
        elif state.voltage_v is None:
            notes.append(f"{name} left out: it reports no voltage")
        elif state.cells_v is not None and len(state.cells_v) != bank.series_cells:
            notes.append(
                f"{name} left out: it reports {len(state.cells_v)} cells, "
                f"the bank is configured for {bank.series_cells}"
            )
        else:
            usable.append(r)
    if not usable:
        return Bank(None, [], notes)
    chosen, disagreement = _voltage_group(usable, bank.max_voltage_difference_v)
    if disagreement:
        return Bank(None, [], [*notes, disagreement])
    for i, r in enumerate(usable):
        if i not in chosen:
            notes.append(
                f"{r.settings.name} left out: {_volts(r):.2f} V differs from the other "
                f"packs by more than {bank.max_voltage_difference_v:g} V"
            )
    packs = [usable[i] for i in chosen]
    states = [p.state for p in packs if p.state is not None]

    result = Bank(None, [p.settings.name for p in packs], notes)
    charge = discharge = 0.0
    for p in packs:
        c, d = pack_limit(p, "charge"), pack_limit(p, "discharge")
        charge += c
        discharge += d
        if c == 0:
            result.blocking_charge.append(p.settings.name)
        if d == 0:
            result.blocking_discharge.append(p.settings.name)
    blocked = ((result.blocking_charge, "charging"), (result.blocking_discharge, "discharging"))
    for names, what in blocked:
        if names:
            notes.append(f"{', '.join(names)} blocks {what}")

    alarms = sorted({a for s in states for a in s.alarms or ()}, key=ALARM_NAMES.index)
    warnings = {w for s in states for w in s.warnings or ()}
    degraded = len(packs) < len(readings) or result.blocking_charge or result.blocking_discharge
    if degraded:
        warnings.add("general")
    cvls = [s.charge_voltage_v for s in states if s.charge_voltage_v is not None]
    dvls = [s.discharge_voltage_v for s in states if s.discharge_voltage_v is not None]
    temps = [t for s in states for t in s.temperatures_c or ()]
    healths = [s.soh_pct for s in states]
    extra: dict[str, object] = {
        "charge_current_a": round(charge, 1),
        "discharge_current_a": round(discharge, 1),
        "charge_voltage_v": min(cvls) if cvls else bank.charge_voltage_v,
        "discharge_voltage_v": max(dvls) if dvls else bank.discharge_voltage_v,
        "charge_enable": charge > 0 and not _stops(alarms, "charge"),
        "discharge_enable": discharge > 0 and not _stops(alarms, "discharge"),
        "alarms": alarms,
        "warnings": sorted(warnings - set(alarms), key=ALARM_NAMES.index),
        "modules": len(packs),
        "modules_offline": len(readings) - len(packs),
        "modules_blocking_charge": len(result.blocking_charge),
        "modules_blocking_discharge": len(result.blocking_discharge),
        "force_charge": any(s.force_charge for s in states),
    }
    if temps:
        extra["temperatures_c"] = temps
    if all(h is not None for h in healths):
        extra["soh_pct"] = min(h for h in healths if h is not None)
    elif bank.soh_pct_if_unknown is not None:
        extra["soh_pct"] = bank.soh_pct_if_unknown
    extra.update(_weighted_soc(states))
    if len(states) == 1:  # one pack: its own cell ids, not "m1 c5"
        only = states[0]
        extra.update(cell_min_id=only.cell_min_id, cell_max_id=only.cell_max_id)
    result.state = bank_of(states).merged(extra)
    return result


def _weighted_soc(states: Sequence[BatteryState]) -> dict[str, float]:
    """The BMSs' own SoCs weighted by capacity (the plain mean when a capacity is unknown:
    packs of one bank are alike). Without every pack's SoC, ``bank_of``'s remaining/capacity."""
    socs = [s.soc_pct for s in states]
    if any(v is None for v in socs):
        return {}
    weights = [state_capacity_ah(s) or 0.0 for s in states]
    if not all(weights):
        weights = [1.0] * len(states)
    weighted = sum((v or 0.0) * w for v, w in zip(socs, weights, strict=True))
    return {"soc_pct": round(weighted / sum(weights), 1)}
