"""Hypothesis strategies derived from the profile tables, so every profile gets them for free."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from bmslink.bridge.aggregate import PackReading, PackSettings
from bmslink.profiles.base import (
    AlarmBits,
    AlarmPairs,
    Bits,
    Cells,
    Coded,
    Flag,
    FrameSpec,
    Num,
    Profile,
    Text,
    Version,
)
from bmslink.state import ALARM_NAMES, STATE_KEYS, BatteryState

ALARM_LISTS = st.lists(st.sampled_from(ALARM_NAMES), unique=True).map(
    lambda names: [n for n in ALARM_NAMES if n in names]
)
TEXT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"


def num_range(f: Num) -> tuple[float, float]:
    """Physical values a field can carry (a negative scale flips the ends).

    Limits that must not be negative are bounded at 0 in physical terms: with an
    offset or a negative scale (Pylon HV) a raw of 0 is not 0 A.
    """
    lo, hi = sorted((f.raw_min * f.scale + f.offset, f.raw_max * f.scale + f.offset))
    if f.magnitude or f.non_negative:
        lo = max(lo, 0.0)
    return lo, hi


def num_values(fields: list[Num]) -> st.SearchStrategy[Any]:
    """Values every one of ``fields`` (one state key) can carry, on the finest field's grid."""
    finest = min(fields, key=lambda f: abs(f.scale))
    if finest.as_text:
        top = min(f.raw_max for f in fields)
        return st.integers(1, top).map(str)
    lo = max(num_range(f)[0] for f in fields)
    hi = min(num_range(f)[1] for f in fields)
    step, offset = abs(finest.scale), finest.offset
    first = int(-(-(lo - offset) // step))
    last = int((hi - offset) // step)
    marked = [f for f in fields if f.invalid is not None]

    def physical(raw: int) -> Any:
        value = round(raw * step + offset, finest.decimals)
        return int(value) if finest.integer else value

    raws = st.integers(first, last)
    if marked:
        # a value whose raw equals an invalid marker cannot be sent; keep clear of it
        raws = raws.filter(
            lambda r: all(
                round((physical(r) - f.offset) / f.scale) != f.invalid_raw for f in marked
            )
        )
    return raws.map(physical)


def _versions(base: int = 16) -> st.SearchStrategy[str]:
    """Version texts as a field of ``base`` prints them (BYD/Victron hex, Pylon HV decimal)."""
    return st.tuples(st.integers(1, 0xFF), st.integers(0, 0xFF)).map(
        lambda mm: f"{mm[0]:x}.{mm[1]:x}" if base == 16 else f"{mm[0]}.{mm[1]}"
    )


def states_for(profile: Profile, sender: str = "battery") -> st.SearchStrategy[BatteryState]:
    """States whose every field a profile's frames carry is set to a representable value."""
    specs: list[FrameSpec] = [s for s in profile.frames_from(sender) if s.emit]  # type: ignore[arg-type]
    nums: dict[str, list[Num]] = {}
    parts: dict[str, Any] = {}
    texts: dict[str, int] = {}
    cells = 0
    for spec in specs:
        for f in spec.fields:
            if isinstance(f, Num) and f.key in STATE_KEYS and f.derive is None:
                nums.setdefault(f.key, []).append(f)
            elif isinstance(f, Flag):
                parts[f.into or f.key] = st.booleans()
            elif isinstance(f, Coded) and f.key in STATE_KEYS:
                parts[f.key] = st.sampled_from(sorted(set(f.values.values())))
            elif isinstance(f, AlarmBits | AlarmPairs):
                parts[f.target] = ALARM_LISTS
            elif isinstance(f, Text) and (f.key in STATE_KEYS or f.source):
                key = f.key if f.key in STATE_KEYS else f.source
                assert key is not None
                total = f.size * (f.part + 1)
                texts[key] = total if key not in texts else min(texts[key], total)
            elif isinstance(f, Cells):
                cells = max(cells, f.count * (f.part + 1))
            elif isinstance(f, Version) and f.key in STATE_KEYS:
                parts[f.key] = _versions(f.base)
            elif isinstance(f, Bits) and f.key in STATE_KEYS:  # a state value in a few bits
                parts[f.key] = st.integers(0, (1 << f.width) - 1).map(float)
    for key, fields in nums.items():
        parts[key] = num_values(fields)
    for key, size in texts.items():
        parts[key] = st.text(alphabet=TEXT_ALPHABET, min_size=1, max_size=size)
    if cells:
        mv = st.integers(2000, 4200).map(lambda v: v / 1000)
        parts["cells_v"] = st.lists(mv, min_size=1, max_size=cells)
    return st.fixed_dictionaries(parts).map(lambda d: BatteryState(**_ordered(d)))


ORDERED_PAIRS = (("cell_min_v", "cell_max_v"), ("cell_temp_min_c", "cell_temp_max_c"))


def _ordered(values: dict[str, Any]) -> dict[str, Any]:
    """A minimum above its maximum is a state no battery reports (encoders refuse it)."""
    for low, high in ORDERED_PAIRS:
        if low in values and high in values and values[low] > values[high]:
            values[low], values[high] = values[high], values[low]
    return values


def plausible_states(voltage_class: str = "lv") -> st.SearchStrategy[BatteryState]:
    """Complete states a real 48 V ("lv") or high-voltage battery could report."""
    low, high = (400, 650) if voltage_class == "lv" else (1500, 9000)
    volts = st.integers(low, high).map(lambda v: v / 10)
    cell = st.integers(2500, 3650).map(lambda v: v / 1000)
    temp = st.integers(-200, 600).map(lambda v: v / 10)
    amps = st.integers(0, 2500).map(lambda v: v / 10)
    pct = st.integers(0, 100).map(float)
    ident = st.text(alphabet=TEXT_ALPHABET, min_size=1, max_size=7)

    def build(d: dict[str, Any]) -> BatteryState:
        cells = d.pop("cells_v")
        d["cells_v"] = cells
        d["cell_min_v"], d["cell_max_v"] = min(cells), max(cells)
        d["cell_min_id"] = str(cells.index(min(cells)) + 1)
        d["cell_max_id"] = str(cells.index(max(cells)) + 1)
        d["charge_voltage_v"] = round(d["voltage_v"] * 1.05, 1)
        d["discharge_voltage_v"] = round(d["voltage_v"] * 0.85, 1)
        return BatteryState(**d)

    return st.fixed_dictionaries(
        {
            "voltage_v": volts,
            "current_a": st.integers(-2000, 2000).map(lambda v: v / 10),
            "temperature_c": temp,
            "soc_pct": pct,
            "soh_pct": pct,
            "charge_current_a": amps,
            "discharge_current_a": amps,
            "charge_enable": st.booleans(),
            "discharge_enable": st.booleans(),
            "force_charge": st.booleans(),
            "full_charge_request": st.booleans(),
            "cells_v": st.lists(cell, min_size=1, max_size=16),
            "cell_temp_min_c": st.integers(-20, 30).map(float),
            "cell_temp_max_c": st.integers(30, 60).map(float),
            "capacity_ah": st.integers(50, 600).map(float),
            "remaining_ah": st.integers(0, 50).map(float),
            "installed_capacity_ah": st.integers(50, 600).map(float),
            "cycles": st.integers(0, 6000),
            "modules": st.integers(1, 16),
            "modules_blocking_charge": st.integers(0, 1),
            "modules_blocking_discharge": st.integers(0, 1),
            "modules_offline": st.integers(0, 1),
            "charged_kwh": st.integers(0, 100000).map(lambda v: v / 10),
            "discharged_kwh": st.integers(0, 100000).map(lambda v: v / 10),
            "manufacturer": ident,
            "product": ident,
            "serial": st.text(alphabet=TEXT_ALPHABET, min_size=1, max_size=16),
            "firmware": _versions(),
            "alarms": ALARM_LISTS,
            "warnings": ALARM_LISTS,
        }
    ).map(build)


def good_state(**changes: Any) -> BatteryState:
    """A complete, healthy 48 V state as a Pylontech battery reports it; ``changes`` override."""
    base = dict(
        voltage_v=53.1,
        current_a=-12.3,
        temperature_c=21.5,
        soc_pct=64.0,
        soh_pct=99.0,
        charge_voltage_v=55.2,
        charge_current_a=100.0,
        discharge_current_a=120.0,
        discharge_voltage_v=46.4,
        charge_enable=True,
        discharge_enable=True,
        force_charge=False,
        full_charge_request=False,
        modules=1,
        manufacturer="bmslink-sim",
        alarms=[],
        warnings=[],
    )
    base.update(changes)
    return BatteryState(**base)


# -- bridge packs ---------------------------------------------------------------------------------


def pack(name: str = "p", **values: object) -> PackReading:
    base: dict[str, object] = {
        "voltage_v": 53.0,
        "current_a": 10.0,
        "soc_pct": 50.0,
        "temperature_c": 21.0,
        "capacity_ah": 100.0,
        "remaining_ah": 50.0,
        "cells_v": [3.31] * 16,
        "cell_min_v": 3.30,
        "cell_max_v": 3.32,
        "cell_min_id": "3",
        "cell_max_id": "7",
        "charge_enable": True,
        "discharge_enable": True,
        "alarms": [],
        "warnings": [],
    }
    base.update(values)
    return PackReading(PackSettings(name, 100.0, 120.0), BatteryState().merged(base))


def lost(name: str) -> PackReading:
    return PackReading(PackSettings(name, 100.0, 120.0), None, "no valid answer")
