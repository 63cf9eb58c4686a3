"""Inverter-facing CAN profiles, looked up by name."""

from __future__ import annotations

from bmslink.errors import BmslinkError
from bmslink.profiles import (
    byd_hvs,
    givenergy,
    growatt_lv,
    pylontech,
    pylontech_hv,
    sma,
    solark_lv,
    victron,
)
from bmslink.profiles.base import DecodedFrame, FrameSpec, Profile, merge_fields

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        pylontech.PROFILE,
        givenergy.PROFILE,
        sma.PROFILE,
        victron.PROFILE,
        solark_lv.PROFILE,
        growatt_lv.PROFILE,
        pylontech_hv.PROFILE,
        byd_hvs.PROFILE,
    )
}


class UnknownProfileError(BmslinkError, KeyError):
    """The named profile does not exist; the message lists the ones that do."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise UnknownProfileError(f"unknown profile {name!r}; known: {known}") from None


__all__ = [
    "PROFILES",
    "DecodedFrame",
    "FrameSpec",
    "Profile",
    "UnknownProfileError",
    "get_profile",
    "merge_fields",
]
