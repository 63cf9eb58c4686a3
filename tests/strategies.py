"""Hypothesis strategies derived from the profile tables, so every profile gets them for free."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from bmslink.profiles.base import AlarmBits, Flag, Num, Profile, Text
from bmslink.state import ALARM_NAMES, BatteryState

ALARM_LISTS = st.lists(st.sampled_from(ALARM_NAMES), unique=True).map(
    lambda names: [n for n in ALARM_NAMES if n in names]
)


def num_values(f: Num) -> st.SearchStrategy[float | int]:
    lo, hi = f.raw_min, f.raw_max
    if f.magnitude or f.non_negative:
        lo = max(lo, 0)
    raws = st.integers(min_value=lo, max_value=hi)
    if f.integer:
        return raws.map(lambda r: int(r * f.scale + f.offset))
    return raws.map(lambda r: round(r * f.scale + f.offset, f.decimals))


def states_for(profile: Profile, sender: str = "battery") -> st.SearchStrategy[BatteryState]:
    """States whose every field a profile's frames carry is set to a representable value."""
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for spec in profile.frames_from(sender):  # type: ignore[arg-type]
        for f in spec.fields:
            if isinstance(f, Num):
                parts[f.key] = num_values(f)
            elif isinstance(f, Flag):
                parts[f.into or f.key] = st.booleans()
            elif isinstance(f, AlarmBits):
                parts[f.target] = ALARM_LISTS
            elif isinstance(f, Text):
                parts[f.key] = st.text(
                    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=f.size
                )
    return st.fixed_dictionaries(parts).map(lambda d: BatteryState(**d))
