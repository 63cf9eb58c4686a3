"""SMA Sunny Island external-BMS CAN ("SMA CAN", also Sofar LV, Goodwe LV).

An external BMS drives a Sunny Island 6.0H/8.0H (and the inverters that copied the
protocol) with this frame set. CAN 2.0A, 11-bit ids, 500 kbit/s, little-endian
("low byte first unless stated otherwise"). bmslink sends each battery frame once
per second and never two transmissions of one frame less than 200 ms apart, the
SI's inhibit time. The SI itself sends 0x305, 0x306 and 0x307 every second. Their
measurements (voltage, current, temperature, SOC, SOH) echo what the battery
reported, so when bmslink emulates the SI it writes those from the state it
received; the SI's own status words are sent as fixed values: charging procedure
10 (external BMS), operating state 1, error number 0, relay state 0. Source:
shared/reference/inverter-protocols.md §3 (SMA Technical Information
FSS-ConnectingBat-TI-en-10) and §2 for the 0x35A pair table.

Invalid markers: a signed field of 0x8000 or an unsigned field of 0xFFFF means "not
sent" and makes the SI fall back to its internal default for that value. Decoding
turns every marker into an absent value. Encoding writes the marker only where the
state may honestly lack the value (DVL, SOH, temperature, the 0x35F identification
words); the limits CVL, CCL and DCL are required, because an "invalid" limit would
silently let the SI run on its own defaults.

Timeouts (modelled by the inverter role, not here): no 0x355 for 60 s is the SI
fault F952 ExtBMSTimeout (standby, defaults restored, SOC 0 %), hence
``liveness_ids=(0x355,)`` and ``lost_timeout_s=60``; no 0x351 for 60 s is only the
warning W952 WrnExtBMSTmOut.

Choices where sources disagree (§3):
- Battery-Emulator's SMA-LV writes 0x351/0x355/0x356 big-endian with DCL before
  CCL. The SMA document, REC, ai-republic and Victron practice are little-endian
  with CVL, CCL, DCL, DVL; bmslink follows them.
- The SMA document asks for at least 200 ms between transmissions of a frame; REC,
  the Goodwe mapping and Battery-Emulator send every 100 ms. bmslink keeps 200 ms
  as the floor and sends once per second.
- 0x355 HiResSOC (0.01 %) is used instead of the 1 % SOC when it is present, as the
  SI does; 0xFFFF there means "not sent" and the 1 % value stands.
- DCL is a positive magnitude; a negative DCL on the wire decodes to its magnitude.
- 0x35F: only "Bat-Type, BMS version, capacity (Ah), manufacturer id" are named; no
  source gives the codes. bmslink sends the invalid marker 0xFFFF in the three
  words it cannot know, as the SMA document asks for unused fields.
- 0x307 relay state: SMA names bytes 0-1 as bit-coded relay state; jaedog counts
  bytes from 1 and reports AC2-relay and AC2-voltage bits in "byte 2", which is most
  likely the high byte of the same word. Only the word is decoded (diagnostic).
- 0x00F remote quick stop has no data in the SMA document (Battery-Emulator sends 8
  zero bytes): any payload decodes. bmslink never sends it.
- Text is padded with NUL bytes, as the BYD capture on the same frame set does.
"""

from __future__ import annotations

from bmslink.profiles.base import (
    AlarmPairs,
    FrameSpec,
    Num,
    Profile,
    Text,
)
from bmslink.state import BatteryState

#: 0x35A: the four 2-bit pairs of each alarm byte (bytes 0-3) and warning byte (4-7).
#: Byte 3 pairs 1-3 are reserved (pair 3 is "generator" on the SI, not for a BMS):
#: they are not listed, so they decode to nothing and encode as 0 ("not supported").
ALARM_PAIRS: tuple[dict[int, str], ...] = (
    {0: "general", 1: "high_voltage", 2: "low_voltage", 3: "high_temperature"},
    {
        0: "low_temperature",
        1: "high_temperature_charge",
        2: "low_temperature_charge",
        3: "high_discharge_current",
    },
    {0: "high_charge_current", 1: "contactor", 2: "short_circuit", 3: "bms_internal"},
    {0: "cell_imbalance"},
)
#: Every contract alarm name has its own pair, so each name is written to itself.
ALARM_PAIRS_WRITE: tuple[dict[str, int], ...] = tuple(
    {name: pair for pair, name in pairs.items()} for pairs in ALARM_PAIRS
)

_S16_INVALID = 0x8000
_U16_INVALID = 0xFFFF


def not_known(state: BatteryState) -> None:
    """A diagnostic word bmslink has no value for: sent as the SMA invalid marker."""
    return None


CHARGE_VOLTAGE = Num(
    "charge_voltage_v",
    0,
    2,
    scale=0.1,
    unit="V",
    non_negative=True,
    rounding="down",
    invalid=_U16_INVALID,
)

LIMITS = FrameSpec(
    0x351,
    "limits",
    length=8,
    min_length=6,
    sender="battery",
    fields=(
        CHARGE_VOLTAGE,
        Num(
            "charge_current_a",
            2,
            2,
            signed=True,
            scale=0.1,
            unit="A",
            non_negative=True,
            rounding="down",
            invalid=_S16_INVALID,
        ),
        Num(
            "discharge_current_a",
            4,
            2,
            signed=True,
            scale=0.1,
            unit="A",
            magnitude=True,
            rounding="down",
            invalid=_S16_INVALID,
        ),
        Num(
            "discharge_voltage_v",
            6,
            2,
            scale=0.1,
            unit="V",
            rounding="up",
            invalid=_U16_INVALID,
            absent_as_invalid=True,
        ),
    ),
    doc="CVL, CCL, DCL (required, never 'invalid'), DVL (0xFFFF when not known).",
)

SOC_SOH = FrameSpec(
    0x355,
    "soc_soh",
    length=8,
    min_length=4,
    sender="battery",
    fields=(
        Num("soc_pct", 0, 2, unit="%", invalid=_U16_INVALID),
        Num("soh_pct", 2, 2, unit="%", invalid=_U16_INVALID, absent_as_invalid=True),
        # after the 1 % SOC, so the high-resolution value wins when it was sent
        Num(
            "soc_pct",
            4,
            2,
            scale=0.01,
            unit="%",
            invalid=_U16_INVALID,
            absent_as_invalid=False,
            doc="HiResSOC, used instead of the 1 % SOC when present",
        ),
    ),
    doc="SOC (1 %), SOH (1 %), HiResSOC (0.01 %).",
)

MEASUREMENTS = FrameSpec(
    0x356,
    "measurements",
    length=8,
    min_length=6,
    sender="battery",
    fields=(
        Num("voltage_v", 0, 2, signed=True, scale=0.01, unit="V", invalid=_S16_INVALID),
        Num(
            "current_a",
            2,
            2,
            signed=True,
            scale=0.1,
            unit="A",
            invalid=_S16_INVALID,
            doc="+ = charging",
        ),
        Num(
            "temperature_c",
            4,
            2,
            signed=True,
            scale=0.1,
            unit="degC",
            invalid=_S16_INVALID,
            absent_as_invalid=True,
        ),
    ),
    doc="Battery voltage, current (+ = charging) and temperature.",
)

ALARMS = FrameSpec(
    0x35A,
    "alarms_warnings",
    length=8,
    sender="battery",
    fields=(
        *(
            AlarmPairs("alarms", i, ALARM_PAIRS[i], ALARM_PAIRS_WRITE[i], doc="alarm pairs")
            for i in range(4)
        ),
        *(
            AlarmPairs("warnings", 4 + i, ALARM_PAIRS[i], ALARM_PAIRS_WRITE[i], doc="warnings")
            for i in range(4)
        ),
    ),
    doc="Alarms (bytes 0-3) and warnings (4-7) as 2-bit pairs: 1 = active, 2 = OK.",
)

EVENTS = FrameSpec(
    0x35B,
    "events",
    length=8,
    min_length=0,
    sender="battery",
    accept_any_payload=True,
    required=False,
    doc="Events; no meaning is documented, real batteries send 8 zero bytes.",
)

NAME = FrameSpec(
    0x35E,
    "manufacturer",
    length=8,
    min_length=1,
    sender="battery",
    required=False,
    fields=(Text("manufacturer", 0, 8, pad=b"\x00"),),
    doc="Manufacturer name, 8 ASCII bytes (from the BMS; left out when it has none).",
)

IDENTIFICATION = FrameSpec(
    0x35F,
    "identification",
    length=8,
    min_length=6,
    sender="battery",
    fields=(
        Num(
            "bat_type",
            0,
            2,
            invalid=_U16_INVALID,
            absent_as_invalid=True,
            derive=not_known,
            doc="Bat-Type; codes not documented, sent as 0xFFFF",
        ),
        Num(
            "bms_version",
            2,
            2,
            invalid=_U16_INVALID,
            absent_as_invalid=True,
            derive=not_known,
            doc="BMS version; encoding not documented, sent as 0xFFFF",
        ),
        Num(
            "capacity_ah",
            4,
            2,
            unit="Ah",
            invalid=_U16_INVALID,
            absent_as_invalid=True,
            doc="Bat-Capacity",
        ),
        Num(
            "manufacturer_id",
            6,
            2,
            invalid=_U16_INVALID,
            absent_as_invalid=True,
            derive=not_known,
            doc="manufacturer id (reserved); codes not documented, sent as 0xFFFF",
        ),
    ),
    doc="Bat-Type, BMS version, capacity in Ah, manufacturer id.",
)

QUICK_STOP = FrameSpec(
    0x00F,
    "remote_quick_stop",
    length=0,
    sender="battery",
    period_s=None,
    accept_any_payload=True,
    emit=False,
    doc="Remote quick stop: the SI goes to standby at once and needs a start command.",
)

SI_MEASUREMENTS = FrameSpec(
    0x305,
    "si_battery",
    length=8,
    sender="inverter",
    fields=(
        Num(
            "voltage_v",
            0,
            2,
            scale=0.1,
            unit="V",
            invalid=_U16_INVALID,
            absent_as_invalid=True,
            doc="battery voltage measured by the SI",
        ),
        Num(
            "current_a",
            2,
            2,
            signed=True,
            scale=-0.1,
            unit="A",
            invalid=_S16_INVALID,
            absent_as_invalid=True,
            doc="measured by the SI, negative while charging on the wire",
        ),
        Num(
            "temperature_c",
            4,
            2,
            signed=True,
            scale=0.1,
            unit="degC",
            invalid=_S16_INVALID,
            absent_as_invalid=True,
        ),
        Num(
            "soc_pct",
            6,
            2,
            signed=True,
            scale=0.1,
            unit="%",
            invalid=_S16_INVALID,
            absent_as_invalid=True,
            doc="SOC as received from the BMS",
        ),
    ),
    doc="SI to BMS: battery voltage, current, temperature and SOC as the SI sees them.",
)

SI_STATUS = FrameSpec(
    0x306,
    "si_status",
    length=8,
    sender="inverter",
    fields=(
        Num("soh_pct", 0, 2, unit="%", invalid=_U16_INVALID, absent_as_invalid=True),
        Num("charging_procedure", 2, 1, send=10, doc="10 = external BMS in use"),
        Num(
            "operating_state",
            3,
            1,
            send=1,
            doc="0 '---', 1 operating, 3 warning, 4 failure",
        ),
        Num("error_number", 4, 2, send=0, doc="active error message number"),
        Num(
            "charge_voltage_v",
            6,
            2,
            scale=0.1,
            unit="V",
            rounding="down",
            invalid=_U16_INVALID,
            absent_as_invalid=True,
            doc="charge voltage set-point in use",
        ),
    ),
    doc="SI to BMS: SOH, charging procedure, operating state, error, CVL in use.",
)

SI_RELAYS = FrameSpec(
    0x307,
    "si_relays",
    length=8,
    min_length=2,
    sender="inverter",
    fields=(Num("relay_state", 0, 2, send=0, doc="relay state, bit-coded"),),
    doc="SI to BMS: relay state bits (AC2 relay closed / AC2 voltage valid, per jaedog).",
)

PROFILE = Profile(
    name="sma",
    title="SMA Sunny Island external BMS CAN",
    frames=(
        LIMITS,
        SOC_SOH,
        MEASUREMENTS,
        ALARMS,
        EVENTS,
        NAME,
        IDENTIFICATION,
        QUICK_STOP,
        SI_MEASUREMENTS,
        SI_STATUS,
        SI_RELAYS,
    ),
    bitrate=500_000,
    identity={},
    lost_timeout_s=60.0,
    liveness_ids=(0x355,),
    min_frame_interval_s=0.2,
    doc=__doc__ or "",
)
