"""Pylontech low-voltage CAN (US2000/US3000/US5000, Force L).

Spoken by Deye/Sunsynk LV, Solis LV, Goodwe LV, Luxpower, Sol-Ark, Victron and
many more. 11-bit ids, 500 kbit/s, little-endian, each frame once per second;
the inverter answers with an all-zero 0x305 keep-alive.

Choices where sources disagree (shared/reference/inverter-protocols.md §1):
- "system error" is bit 3 of bytes 1 and 3 of 0x359 in the 2016 document and in
  readers of real batteries; some emulators use bit 7. Both decode, bit 3 is written.
- DCL in 0x351 is a positive magnitude on real batteries; older material sends it
  negative. The decoder takes the magnitude, the encoder writes it positive.
- 0x351 is 6 bytes in the 2016 document (no DVL) and 8 everywhere since: 6 is
  accepted, 8 is sent. 0x359 is 7 bytes, 8 accepted; 0x355 4, up to 8 accepted.
- Limits round toward safety when encoded: CVL, CCL and DCL down, DVL up.
- Alarms a Pylontech frame has no bit for go to the nearest bit so that none is
  lost: charge-temperature alarms to the temperature bits, short circuit to
  discharge over-current, contactor/general/imbalance to "system error".
"""

from __future__ import annotations

from bmslink.profiles.base import (
    AlarmBits,
    Const,
    Flag,
    FrameSpec,
    Num,
    Profile,
    Text,
    current_limit,
)

# Byte 0 (protection) and byte 2 (warning) share one layout, as do bytes 1 and 3.
_VOLTAGE_TEMP_BITS = {
    7: "high_discharge_current",
    4: "low_temperature",
    3: "high_temperature",
    2: "low_voltage",
    1: "high_voltage",
}
_VOLTAGE_TEMP_WRITE = {
    "high_discharge_current": 7,
    "short_circuit": 7,
    "low_temperature": 4,
    "low_temperature_charge": 4,
    "high_temperature": 3,
    "high_temperature_charge": 3,
    "low_voltage": 2,
    "high_voltage": 1,
}
_SYSTEM_BITS = {3: "bms_internal", 7: "bms_internal", 0: "high_charge_current"}
_SYSTEM_WRITE = {
    "bms_internal": 3,
    "contactor": 3,
    "general": 3,
    "cell_imbalance": 3,
    "high_charge_current": 0,
}

LIMITS = FrameSpec(
    0x351,
    "limits",
    length=8,
    min_length=6,
    sender="battery",
    fields=(
        Num("charge_voltage_v", 0, 2, scale=0.1, unit="V", non_negative=True, rounding="down"),
        current_limit("charge_current_a", 2),
        Num(
            "discharge_current_a",
            4,
            2,
            signed=True,
            scale=0.1,
            unit="A",
            magnitude=True,
            rounding="down",
        ),
        Num("discharge_voltage_v", 6, 2, scale=0.1, unit="V", rounding="up", doc="absent in 2016"),
    ),
    doc="Charge voltage limit, charge/discharge current limits, discharge voltage limit.",
)

SOC_SOH = FrameSpec(
    0x355,
    "soc_soh",
    length=4,
    sender="battery",
    fields=(
        Num("soc_pct", 0, 2, unit="%"),
        Num("soh_pct", 2, 2, unit="%"),
    ),
    doc="State of charge and health in whole percent.",
)

MEASUREMENTS = FrameSpec(
    0x356,
    "measurements",
    length=6,
    sender="battery",
    fields=(
        Num("voltage_v", 0, 2, signed=True, scale=0.01, unit="V"),
        Num("current_a", 2, 2, signed=True, scale=0.1, unit="A", doc="+ = charging"),
        Num("temperature_c", 4, 2, signed=True, scale=0.1, unit="degC"),
    ),
    doc="Pack voltage, current and temperature.",
)

PROTECTION = FrameSpec(
    0x359,
    "protection_alarms",
    length=7,
    sender="battery",
    fields=(
        AlarmBits("alarms", 0, _VOLTAGE_TEMP_BITS, _VOLTAGE_TEMP_WRITE, doc="protection"),
        AlarmBits("alarms", 1, _SYSTEM_BITS, _SYSTEM_WRITE, doc="protection"),
        AlarmBits("warnings", 2, _VOLTAGE_TEMP_BITS, _VOLTAGE_TEMP_WRITE, doc="alarm (warning)"),
        AlarmBits("warnings", 3, _SYSTEM_BITS, _SYSTEM_WRITE, doc="alarm (warning)"),
        Num("modules", 4, 1, unit="", integer=True, doc="modules in parallel"),
        Const("marker", 5, b"PN"),
    ),
    doc="Protection (alarm) and alarm (warning) bits, module count, 'PN'.",
)

REQUESTS = FrameSpec(
    0x35C,
    "requests",
    length=2,
    sender="battery",
    fields=(
        Flag("charge_enable", 0, 7),
        Flag("discharge_enable", 0, 6),
        Flag("force_charge_i", 0, 5, into="force_charge", absent_is_false=True),
        Flag("force_charge_ii", 0, 4, into="force_charge", write=False),
        Flag("full_charge_request", 0, 3, absent_is_false=True),
    ),
    doc="Charge/discharge enable, force charge I/II, full-charge request.",
)

NAME = FrameSpec(
    0x35E,
    "manufacturer",
    length=8,
    min_length=1,
    sender="battery",
    fields=(Text("manufacturer", 0, 8),),
    doc="Manufacturer name; Deye only accepts names starting with 'PYLON'.",
)

KEEPALIVE = FrameSpec(
    0x305,
    "inverter_keepalive",
    length=8,
    min_length=0,
    sender="inverter",
    accept_any_payload=True,
    doc="Inverter heartbeat, eight zero bytes once per second.",
)

PROFILE = Profile(
    name="pylontech",
    title="Pylontech LV CAN (US2000/US3000/US5000)",
    frames=(LIMITS, SOC_SOH, MEASUREMENTS, PROTECTION, REQUESTS, NAME, KEEPALIVE),
    bitrate=500_000,
    identity={"manufacturer": "PYLON"},
    doc=__doc__ or "",
)
