"""Victron "CAN-bus BMS" protocol, as a Victron GX (Venus OS) reads it.

The SMA Sunny Island frame set (0x351-0x35F, see sma.py) plus Victron's extensions
0x360-0x382: cell extremes, module counts, energy counters, names and serial. Spoken
by BYD Battery-Box LVS, REC-Q, Pytes, diyBMS, Safiery and many DIY gateways towards a
Cerbo/Venus GX. CAN 2.0A (the GX ignores 29-bit frames), little-endian, usually 500
kbit/s ("CAN-bus BMS (500 kbit/s)" port profile); some BMSes (REC-Q, Safiery) use the
250 kbit/s "VE.Can & CAN-bus BMS" profile. The battery sends its frames about once
per second, all 8 bytes long (zero padded, as in the BYD capture); the GX answers
with 0x305 and 0x306 (8 zero bytes) and 0x307 (``12 34 56 78`` then ASCII "VIC").
If frames stop, Venus marks the battery disconnected. Source:
shared/reference/inverter-protocols.md §2 (dfch/BydCanProtocol capture, OpenDTU,
diyBMS, Safiery manual), frames shared with SMA from §3.

Rules bmslink keeps on the way out:
- CVL must never be 0: a GX treats CVL 0 as over-voltage and discharges (diyBMS).
  The table marks raw 0 as CVL's "invalid" value, so the 0x351 encoder refuses any
  CVL that would go out as 0 (anything below 0.1 V) with an EncodeError naming
  ``charge_voltage_v``, and a received CVL of 0 decodes as "no CVL" (the required
  0x351 then cannot be re-sent, which silences the link rather than passing 0 on).
  The battery role also refuses CVL <= 0 before encoding. The SMA 0xFFFF marker
  is therefore not recognised for Victron's CVL.
- CVL, CCL and DCL are required; DVL (which Victron ignores) is sent as the SMA
  invalid marker 0xFFFF when the state has none.

Choices where sources disagree or are silent (§2):
- DCL is a positive magnitude; a negative DCL on the wire decodes to its magnitude.
- 0x355 bytes 4-5 (HiResSOC, 0.01 %) wins over the 1 % SOC when sent. BYD sends
  zeros there with a valid 1 % SOC (vector B2), so for Victron a raw 0 means "not
  sent" (SMA's 0xFFFF marker would decode as 655.35 %). bmslink writes 0 there only
  when the SOC itself rounds to 0.00 %, which decodes to the same SOC.
- The SMA invalid markers (0x8000 signed, 0xFFFF unsigned) decode to absent in the
  frames Victron shares with SMA, since the frame set is SMA's.
- 0x35A uses the SMA arrive/leave pairs with the low bit meaning "active" (1 = active,
  2 = OK), the reading of dfch, OpenDTU, diyBMS and SMA; the TinyBMS notes disagree.
- 0x35F: bytes 0-1 are a product code (BYD "Li"), bytes 2-3 the firmware printed in
  hex ("1.17" from ``01 17``), 4-5 the capacity in Ah; bytes 6-7 are unknown and sent 0.
- 0x370/0x371 (BMS name) are diagnostic: bmslink writes the state's ``product`` there.
- 0x376/0x377 (ids of the coldest/hottest cell) have no BatteryState key: decoded as
  diagnostics, never sent.
- Temperatures in 0x373 are whole kelvin; bmslink converts with 273 (not 273.15), as
  the sources do.
- 0x307 bytes 0-3 (``12 34 56 78``) have no documented meaning; decoded as a number
  (read big-endian so it prints as 0x12345678). Bytes 4-6 "VIC" are reported as text,
  not checked: a 0x307 without "VIC" still decodes.
- Text is padded with NUL bytes, as BYD does.
"""

from __future__ import annotations

from dataclasses import replace

from bmslink.profiles import pylontech, sma
from bmslink.profiles.base import (
    Coded,
    Const,
    FrameSpec,
    Num,
    Profile,
    Text,
    Version,
)
from bmslink.state import BatteryState


def hires_soc(state: BatteryState) -> float | None:
    """HiResSOC to send; None (raw 0, "not sent") when it cannot say more than the 1 % SOC.

    That is when the SOC rounds to 0.00 % (raw 0 is the "not sent" marker) or does
    not fit the field at all (above 655.35 %, which the 1 % field still carries).
    """
    soc = state.soc_pct
    if soc is None or not 0 < round(soc * 100) <= 0xFFFF:
        return None
    return soc


LIMITS = replace(
    sma.LIMITS,
    fields=(
        replace(
            sma.CHARGE_VOLTAGE,
            invalid=0,
            doc="never sent as 0: 0 is Victron's over-voltage, decoded as not sent",
        ),
        *sma.LIMITS.fields[1:],
    ),
    doc="CVL (never 0), CCL, DCL (required); DVL (ignored by Victron, 0xFFFF if unknown).",
)

SOC_SOH = replace(
    sma.SOC_SOH,
    fields=(
        *sma.SOC_SOH.fields[:2],
        Num(
            "soc_pct",
            4,
            2,
            scale=0.01,
            unit="%",
            invalid=0,
            absent_as_invalid=True,
            derive=hires_soc,
            doc="high-resolution SOC; 0 = not sent (BYD)",
        ),
    ),
    doc="SOC (1 %), SOH (1 %), high-resolution SOC (0.01 %, 0 = not sent).",
)

IDENTIFICATION = FrameSpec(
    0x35F,
    "identification",
    length=8,
    min_length=6,
    sender="battery",
    required=False,
    fields=(
        Text("product_code", 0, 2, pad=b"\x00", send=b"Li", doc="BYD sends 'Li'; unused"),
        Version("firmware", 2, base=16),
        Num("capacity_ah", 4, 2, unit="Ah", doc="available / online capacity"),
    ),
    doc="Product code, firmware (hex major.minor), capacity in Ah.",
)

CHARGE_REQUEST = FrameSpec(
    0x360,
    "charge_request",
    length=8,
    min_length=1,
    sender="battery",
    required=False,
    fields=(Coded("force_charge", 0, {0xFF: True, 0x00: False}, otherwise=False),),
    doc="Byte 0 = 0xFF asks the GX to charge the battery.",
)


def _text_frame(can_id: int, name: str, text: Text, doc: str, emit: bool = True) -> FrameSpec:
    return FrameSpec(
        can_id,
        name,
        length=8,
        min_length=1,
        sender="battery",
        required=False,
        emit=emit,
        fields=(text,),
        doc=doc,
    )


BMS_NAME_1 = _text_frame(
    0x370,
    "bms_name_1",
    Text("bms_name", 0, 8, pad=b"\x00", part=0, source="product"),
    "BMS name, characters 1-8 (bmslink writes the state's product).",
)
BMS_NAME_2 = _text_frame(
    0x371,
    "bms_name_2",
    Text("bms_name", 0, 8, pad=b"\x00", part=1, source="product"),
    "BMS name, characters 9-16.",
)

MODULES = FrameSpec(
    0x372,
    "modules",
    length=8,
    sender="battery",
    required=False,
    fields=(
        Num("modules", 0, 2, integer=True, doc="online"),
        Num("modules_blocking_charge", 2, 2, integer=True),
        Num("modules_blocking_discharge", 4, 2, integer=True),
        Num("modules_offline", 6, 2, integer=True),
    ),
    doc="Modules online, blocking charge, blocking discharge, offline.",
)

CELL_EXTREMES = FrameSpec(
    0x373,
    "cell_extremes",
    length=8,
    sender="battery",
    required=False,
    fields=(
        Num("cell_min_v", 0, 2, scale=0.001, unit="V"),
        Num("cell_max_v", 2, 2, scale=0.001, unit="V"),
        Num("cell_temp_min_c", 4, 2, offset=-273.0, unit="degC", doc="sent in kelvin"),
        Num("cell_temp_max_c", 6, 2, offset=-273.0, unit="degC", doc="sent in kelvin"),
    ),
    doc="Lowest/highest cell voltage (mV) and cell temperature (K).",
)

CELL_MIN_ID = _text_frame(
    0x374,
    "cell_min_id",
    Text("cell_min_id", 0, 8, pad=b"\x00"),
    "Id of the cell with the lowest voltage.",
)
CELL_MAX_ID = _text_frame(
    0x375,
    "cell_max_id",
    Text("cell_max_id", 0, 8, pad=b"\x00"),
    "Id of the cell with the highest voltage.",
)
CELL_TEMP_MIN_ID = _text_frame(
    0x376,
    "cell_temp_min_id",
    Text("cell_temp_min_id", 0, 8, pad=b"\x00"),
    "Id of the coldest cell (diagnostic; bmslink does not send it).",
    emit=False,
)
CELL_TEMP_MAX_ID = _text_frame(
    0x377,
    "cell_temp_max_id",
    Text("cell_temp_max_id", 0, 8, pad=b"\x00"),
    "Id of the hottest cell (diagnostic; bmslink does not send it).",
    emit=False,
)

ENERGY = FrameSpec(
    0x378,
    "energy",
    length=8,
    sender="battery",
    required=False,
    fields=(
        Num("charged_kwh", 0, 4, scale=0.1, unit="kWh"),
        Num("discharged_kwh", 4, 4, scale=0.1, unit="kWh"),
    ),
    doc="Lifetime charged and discharged energy, 100 Wh steps.",
)

INSTALLED_CAPACITY = FrameSpec(
    0x379,
    "installed_capacity",
    length=8,
    min_length=2,
    sender="battery",
    required=False,
    fields=(Num("installed_capacity_ah", 0, 2, unit="Ah"),),
    doc="Installed capacity in Ah.",
)

SERIAL_1 = _text_frame(
    0x380,
    "serial_1",
    Text("serial", 0, 8, pad=b"\x00", part=0),
    "Serial number, characters 1-8.",
)
SERIAL_2 = _text_frame(
    0x381,
    "serial_2",
    Text("serial", 0, 8, pad=b"\x00", part=1),
    "Serial number, characters 9-16.",
)
PRODUCT = _text_frame(
    0x382,
    "product",
    Text("product", 0, 8, pad=b"\x00"),
    "Battery family / product name (BYD: 'PREMIUM').",
)

GX_KEEPALIVE = replace(pylontech.KEEPALIVE, name="gx_keepalive", doc="GX keep-alive, 8 zero bytes.")
GX_306 = FrameSpec(
    0x306,
    "gx_306",
    length=8,
    min_length=0,
    sender="inverter",
    accept_any_payload=True,
    doc="Sent by the GX once a battery is present, 8 zero bytes; no known meaning.",
)
GX_ID = FrameSpec(
    0x307,
    "gx_identification",
    length=8,
    min_length=0,
    sender="inverter",
    fields=(
        Num(
            "gx_id",
            0,
            4,
            byteorder="big",
            integer=True,
            send=0x12345678,
            doc="bytes 12 34 56 78 as Venus OS sends them; meaning unknown",
        ),
        Const("inverter_id", 4, b"VIC"),
    ),
    doc="GX identification: bytes 4-6 ASCII 'VIC'.",
)

PROFILE = Profile(
    name="victron",
    title="Victron CAN-bus BMS (GX / Venus OS)",
    frames=(
        LIMITS,
        SOC_SOH,
        sma.MEASUREMENTS,
        sma.ALARMS,
        sma.EVENTS,
        sma.NAME,
        IDENTIFICATION,
        CHARGE_REQUEST,
        BMS_NAME_1,
        BMS_NAME_2,
        MODULES,
        CELL_EXTREMES,
        CELL_MIN_ID,
        CELL_MAX_ID,
        CELL_TEMP_MIN_ID,
        CELL_TEMP_MAX_ID,
        ENERGY,
        INSTALLED_CAPACITY,
        SERIAL_1,
        SERIAL_2,
        PRODUCT,
        GX_KEEPALIVE,
        GX_306,
        GX_ID,
    ),
    bitrate=500_000,
    bitrates=(500_000, 250_000),
    identity={},
    lost_timeout_s=10.0,
    doc=__doc__ or "",
)
