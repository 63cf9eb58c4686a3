"""GivEnergy: the Pylontech low-voltage CAN frame set under GivEnergy's name.

GivEnergy hybrid and AC-coupled inverters accept third-party 48 V batteries that
speak Pylontech LV CAN (0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E at 500 kbit/s,
little-endian, once per second; the inverter answers with the 0x305 keep-alive).
This profile is that frame set, table for table (see pylontech.py), presenting the
manufacturer name "PYLON".

What is known (shared/reference/inverter-protocols.md §4a, §4g):
- GivEnergy inverters only take 48 V (low-voltage) batteries (Battery-Emulator
  issue #114).

What is not known:
- No stored source describes a GivEnergy-specific battery CAN variant, so nothing
  here differs from Pylontech; any claimed difference is unverified. If one is
  found it belongs in a profile of its own, not in this alias.
- Connector pinout, termination and inverter settings are inverter facts and live
  in the inverter registry, not in this profile.
"""

from __future__ import annotations

from dataclasses import replace

from bmslink.profiles import pylontech

PROFILE = replace(
    pylontech.PROFILE,
    name="givenergy",
    title="GivEnergy (Pylontech LV CAN frame set)",
    alias_of="pylontech",
    doc=__doc__ or "",
)
