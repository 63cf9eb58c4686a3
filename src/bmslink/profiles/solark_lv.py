"""Sol-Ark LV CAN v1.3: the Pylontech low-voltage frame set in fixed 8-byte frames.

Sol-Ark's low-voltage hybrid inverters read the Pylontech LV ids 0x351, 0x355,
0x356, 0x359, 0x35C and 0x35E (layouts as in pylontech.py), little-endian, 500
kbit/s. Sol-Ark's v1.3 document asks for standard CAN frames of exactly 8 data bytes
(no CAN FD) and the full set once per second; each time the inverter has received
the data correctly it answers 0x305 with 8 zero bytes. Source:
shared/reference/inverter-protocols.md §4f and §1 (Battery-Emulator
``SOL-ARK-LV-CAN.cpp``, which quotes the v1.3 document).

Choices where sources disagree (§4f, §1):
- 0x356 voltage: Battery-Emulator writes it in 0.1 V, unlike Pylontech's 0.01 V.
  The reference calls this unverified and possibly a bug, and nothing else supports
  it; bmslink keeps Pylontech's 0.01 V.
- 0x359 "system error": Battery-Emulator's Sol-Ark code sets bit 7 of byte 1, the
  Pylontech document bit 3. bmslink writes both bits (and the same in byte 3 for a
  warning) and decodes either as ``bms_internal``.
- 0x359 over-temperature: Battery-Emulator writes 0x0C, which also raises the
  under-voltage bit; bmslink writes bit 3 alone, as Pylontech defines it.
- Frames are always sent as 8 bytes (zero padded: 0x359 byte 7 and 0x35C byte 1 are
  0); on decode the shorter Pylontech lengths are accepted too.
- Alarms without a bit of their own go to the nearest bit as in pylontech.py.
- The manufacturer name comes from the BMS (Battery-Emulator sends "BAT-EMU", so the
  inverter does not need "PYLON"); 0x35E is left out when the state has no name.
"""

from __future__ import annotations

from dataclasses import replace

from bmslink.profiles import pylontech
from bmslink.profiles.base import AlarmBits, Profile

#: System error on bit 3 (Pylontech document) and bit 7 (Sol-Ark per Battery-Emulator).
SYSTEM_WRITE: dict[str, int | tuple[int, ...]] = {
    name: (3, 7) if bit == 3 else bit for name, bit in pylontech._SYSTEM_WRITE.items()
}

LIMITS = pylontech.LIMITS  # already 8 bytes
SOC_SOH = replace(pylontech.SOC_SOH, length=8, min_length=4)
MEASUREMENTS = replace(pylontech.MEASUREMENTS, length=8, min_length=6)
PROTECTION = replace(
    pylontech.PROTECTION,
    length=8,
    min_length=7,
    fields=tuple(
        replace(f, write=SYSTEM_WRITE)
        if isinstance(f, AlarmBits) and f.bits is pylontech._SYSTEM_BITS
        else f
        for f in pylontech.PROTECTION.fields
    ),
    doc="Protection and warning bits (system error on bits 3 and 7), modules, 'PN'.",
)

REQUESTS = replace(pylontech.REQUESTS, length=8, min_length=2)
NAME = replace(pylontech.NAME, required=False)

PROFILE = Profile(
    name="solark-lv",
    title="Sol-Ark LV CAN v1.3 (Pylontech LV frames, 8 bytes each)",
    frames=(LIMITS, SOC_SOH, MEASUREMENTS, PROTECTION, REQUESTS, NAME, pylontech.KEEPALIVE),
    bitrate=500_000,
    identity={},
    doc=__doc__ or "",
)
