"""How long a battery frame's values count: one rule for every reader of a battery's frames.

The inverter role, ``bmslink sniff`` and ``bmslink analyze`` all judge freshness
the same way, so a value shown by a diagnostic is one the gateway would have
used. Each frame's values live ``floor_s`` (10 s) after that frame was last
seen, or ``PERIODS_TO_EXPIRE`` of its table period when that is longer (BYD's
alarms come every 60 s); an expired value is absent, never stale. Frames are
held per :func:`frame_key`, so each index of a multiplexed frame expires on
its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bmslink.profiles.base import FrameSpec, assemble
from bmslink.state import BatteryState

#: A frame's values live at least this long after it was last seen.
FRAME_EXPIRY_S = 10.0
#: ... and at least this many of its periods (slow frames: BYD 0x190 every 60 s).
PERIODS_TO_EXPIRE = 2.5

#: frame key -> (time last seen, its spec, its decoded fields)
Latest = Mapping[str, tuple[float, FrameSpec, Mapping[str, Any]]]


def frame_expiry(spec: FrameSpec, floor_s: float = FRAME_EXPIRY_S) -> float:
    """Seconds after it was seen that ``spec``'s values stop counting."""
    if spec.period_s is None:
        return floor_s
    return max(floor_s, PERIODS_TO_EXPIRE * spec.period_s)


def frame_key(spec: FrameSpec) -> str:
    """Where a frame's last values are held: its label, and the index of a multiplexed frame."""
    return spec.label if spec.mux is None else f"{spec.label}/{spec.mux[1]}"


def fresh_state(latest: Latest, now: float, floor_s: float = FRAME_EXPIRY_S) -> BatteryState | None:
    """The battery from the frames still fresh at ``now``; None when none is."""
    fresh = [
        (spec, fields)
        for seen, spec, fields in latest.values()
        if now - seen <= frame_expiry(spec, floor_s)
    ]
    if not fresh:
        return None
    # fresh lists: a consumer editing its alarms must not change what the caller holds
    values: dict[str, Any] = {
        k: list(v) if isinstance(v, list) else v for k, v in assemble(fresh).items()
    }
    return BatteryState(**values)
