"""Parallel packs as one bank, and cell extremes: shared by every protocol that carries modules.

Packs in parallel share one bus voltage, so a bank's voltage is their mean, its
current and capacities are sums and its SoC follows the capacities. Cell
extremes of a bank name their pack (``m2 c5``), the way Pylontech names modules.
Only what every pack sent is combined; a key one pack lacks stays absent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bmslink.state import BatteryState


def state_capacity_ah(state: BatteryState) -> float | None:
    """The full capacity a state reports: ``capacity_ah``, else ``installed_capacity_ah``
    (None when neither is a positive finite number)."""
    for value in (state.capacity_ah, state.installed_capacity_ah):
        if value is not None and 0.0 < value < math.inf:
            return value
    return None


def cell_extremes(cells: Sequence[float]) -> dict[str, Any]:
    """cell_min/max_v and their 1-based ids ("1" = the first cell; the first one on a tie)."""
    if not cells:
        return {}
    lo, hi = min(cells), max(cells)
    return {
        "cell_min_v": lo,
        "cell_max_v": hi,
        "cell_min_id": str(cells.index(lo) + 1),
        "cell_max_id": str(cells.index(hi) + 1),
    }


def with_cell_extremes(state: BatteryState) -> BatteryState:
    """Fill cell and temperature extremes from the lists when the source sent only those."""
    fill: dict[str, Any] = {}
    if state.cells_v and state.cell_min_v is None and state.cell_max_v is None:
        fill.update(cell_extremes(state.cells_v))
    temps = state.temperatures_c
    if temps and state.cell_temp_min_c is None and state.cell_temp_max_c is None:
        fill.update(cell_temp_min_c=min(temps), cell_temp_max_c=max(temps))
    return state.merged(fill) if fill else state


def bank_of(modules: Sequence[BatteryState]) -> BatteryState:
    """One state for parallel modules, the modules kept in ``packs``.

    Current and capacities add up, SoC follows the capacities, the voltage is the
    modules' mean (they share the bus), cell extremes name their module (``m2 c5``).
    Only what every module sent is combined; a key one module lacks stays absent.
    """

    def every(key: str) -> list[Any] | None:
        values = [getattr(m, key) for m in modules]
        return None if any(v is None for v in values) else values

    modules = [with_cell_extremes(m) for m in modules]
    out: dict[str, Any] = {"packs": list(modules), "modules": len(modules)}
    for key in ("current_a", "remaining_ah", "capacity_ah"):
        values = every(key)
        if values is not None:
            out[key] = round(sum(values), 3)
    volts = every("voltage_v")
    if volts is not None:
        out["voltage_v"] = round(sum(volts) / len(volts), 3)
    if out.get("capacity_ah") and "remaining_ah" in out:
        out["soc_pct"] = round(100 * out["remaining_ah"] / out["capacity_ah"], 1)
    cycles = every("cycles")
    if cycles is not None:
        out["cycles"] = max(cycles)
    for key, pick in (
        ("cell_temp_min_c", min),
        ("cell_temp_max_c", max),
        ("temperature_c", max),
    ):
        values = every(key)
        if values is not None:
            out[key] = pick(values)
    lows = [
        (m.cell_min_v, i, m.cell_min_id)
        for i, m in enumerate(modules, 1)
        if m.cell_min_v is not None
    ]
    highs = [
        (m.cell_max_v, i, m.cell_max_id)
        for i, m in enumerate(modules, 1)
        if m.cell_max_v is not None
    ]
    if len(lows) == len(modules) and len(highs) == len(modules):
        lo = min(lows, key=lambda t: t[0])
        hi = max(highs, key=lambda t: t[0])
        out.update(
            cell_min_v=lo[0],
            cell_min_id=f"m{lo[1]} c{lo[2]}",
            cell_max_v=hi[0],
            cell_max_id=f"m{hi[1]} c{hi[2]}",
        )
    return BatteryState().merged(out)
