"""BYD Battery-Box Premium HVS/HVM over CAN, as high-voltage hybrid inverters expect it.

Spoken to GoodWe ET/EH/BT/BH, Solis RHI, Deye/Sunsynk HV, Sungrow SH-RS/RT (in
some regions), KACO and Viessmann inverters. 11-bit ids, 500 kbit/s,
big-endian. The battery stays silent until it has heard the inverter; then it
sends its limits every 2 s, states, measurements and temperatures every 10 s
and an alarm frame every 60 s. The identification frames (0x250, 0x290, 0x2D0
and the four 0x3D0 product-name frames) go out when the inverter asks with
0x151 byte 0 = 0x01. Otherwise 0x151 carries the inverter's brand in ASCII.

BYD HVS carries no alarm bits bmslink can set: what 0x190 means is not known,
so it is always sent as the documented default ``00 00 03 00 00 00 00 00``.
Alarms reach the inverter only through the limits (0x110), which the battery
role sets to 0 A for active alarms.

Quirk: Deye ignores a 0 A limit in 0x110 (Battery-Emulator has a "Deye
workaround" that reports SOC 100 %/0 % instead); the quirk registry holds it.

Choices where sources disagree or are silent (shared/reference/inverter-protocols.md §4b;
Battery-Emulator ``inverter/BYD-CAN`` and ``battery/BYD-BATTERY-BOX-BATTERY``):
- 0x110 carries the discharge current limit (bytes 4-5) BEFORE the charge
  current limit (bytes 6-7). Current limits are read as S16 that must not be
  negative, so a corrupt 0xFFxx is a decode error rather than a 6500 A limit.
- 0x250 is FW major/minor (printed in hex, 0x03 0x29 = "3.29"), ``00 66``,
  capacity in 0.1 kWh (big-endian) and ``02 09`` (the reference stops at byte
  6, Battery-Emulator sends 0x09 in byte 7). bmslink sends the capacity as
  ``capacity_ah`` (else ``installed_capacity_ah``) x ``voltage_v`` / 1000, an
  approximation; without both the frame is left out.
- 0x1D0 temperature is Battery-Emulator's average of the max and min
  temperature: it maps to ``temperature_c``.
- Inverter side: bmslink sends 0x151 once with the identify request and then
  every second with its brand "BMSLINK" in bytes 1-7, like Battery-Emulator's
  BYD battery reader (which sends zeros as brand). The other inverter frames
  (0x091 voltage/current/temperature, 0x0D1 SOC, 0x111 timestamp, 0x191) are
  decoded as diagnostics but never sent: their periods and, for 0x191, their
  content are not documented, and the reader above does without them. Their
  values are the inverter's own view and never enter the battery state.
"""

from __future__ import annotations

from bmslink.profiles.base import (
    Const,
    FrameSpec,
    Num,
    Profile,
    Response,
    Text,
    Version,
    current_limit,
)
from bmslink.state import BatteryState

PRODUCT = "Battery-Box Premium HVS"
CAPACITY_KWH_MAX = 6553.5  # U16 in 0.1 kWh


def _capacity_kwh(state: BatteryState) -> float | None:
    """Approximate energy capacity: full capacity (Ah) at the present pack voltage.

    Informational only, so it saturates at the field's 6553.5 kWh instead of refusing.
    """
    ah = state.capacity_ah if state.capacity_ah is not None else state.installed_capacity_ah
    if ah is None or state.voltage_v is None:
        return None
    return min(ah * state.voltage_v / 1000.0, CAPACITY_KWH_MAX)


LIMITS = FrameSpec(
    0x110,
    "limits",
    length=8,
    sender="battery",
    byteorder="big",
    period_s=2.0,
    fields=(
        Num("charge_voltage_v", 0, 2, scale=0.1, unit="V", rounding="down"),
        Num("discharge_voltage_v", 2, 2, scale=0.1, unit="V", rounding="up"),
        current_limit("discharge_current_a", 4, "max discharge current (before the charge one)"),
        current_limit("charge_current_a", 6, "max charge current"),
    ),
    doc="Max charge voltage, min discharge voltage, max discharge current, max charge current.",
)

STATES = FrameSpec(
    0x150,
    "states",
    length=8,
    sender="battery",
    byteorder="big",
    period_s=10.0,
    fields=(
        Num("soc_pct", 0, 2, scale=0.01, unit="%"),
        Num("soh_pct", 2, 2, scale=0.01, unit="%"),
        Num("remaining_ah", 4, 2, scale=0.1, unit="Ah"),
        Num("capacity_ah", 6, 2, scale=0.1, unit="Ah", doc="fully charged capacity"),
    ),
    doc="SOC, SOH, remaining and fully charged capacity.",
)

ALARM = FrameSpec(
    0x190,
    "alarm",
    length=8,
    sender="battery",
    byteorder="big",
    period_s=60.0,
    fields=(
        Num("alarm_bits_0_3", 0, 4, integer=True, send=0x0000_0300, doc="meaning unknown"),
        Num("alarm_bits_4_7", 4, 4, integer=True, send=0, doc="meaning unknown"),
    ),
    doc="Alarm bits of unknown meaning; always the default 00 00 03 00 00 00 00 00.",
)

BATTERY_INFO = FrameSpec(
    0x1D0,
    "battery_info",
    length=8,
    sender="battery",
    byteorder="big",
    period_s=10.0,
    fields=(
        Num("voltage_v", 0, 2, scale=0.1, unit="V"),
        Num("current_a", 2, 2, signed=True, scale=0.1, unit="A", doc="+ = charging"),
        Num("temperature_c", 4, 2, signed=True, scale=0.1, unit="degC"),
        Const("marker", 6, b"\x03\x08"),
    ),
    doc="Pack voltage, current, temperature and the fixed bytes 03 08.",
)

CELL_INFO = FrameSpec(
    0x210,
    "cell_info",
    length=8,
    sender="battery",
    byteorder="big",
    period_s=10.0,
    fields=(
        Num("cell_temp_max_c", 0, 2, signed=True, scale=0.1, unit="degC"),
        Num("cell_temp_min_c", 2, 2, signed=True, scale=0.1, unit="degC"),
    ),
    doc="Highest and lowest temperature.",
)

IDENT_FIRMWARE = FrameSpec(
    0x250,
    "ident_firmware",
    length=8,
    sender="battery",
    byteorder="big",
    period_s=None,
    required=False,
    fields=(
        Version("firmware", 0, base=16, doc="major.minor in hex, 0x03 0x29 = 3.29"),
        Const("marker", 2, b"\x00\x66"),
        Num(
            "capacity_kwh",
            4,
            2,
            scale=0.1,
            unit="kWh",
            derive=_capacity_kwh,
            doc="bmslink sends capacity x voltage (approximate)",
        ),
        Const("marker_2", 6, b"\x02\x09"),
    ),
    doc="Firmware version and energy capacity.",
)

IDENT_FIXED = FrameSpec(
    0x290,
    "ident_fixed",
    length=8,
    sender="battery",
    byteorder="big",
    period_s=None,
    required=False,
    fields=(Const("fixed", 0, bytes.fromhex("063710D9"), doc="bytes 4-7 are 0"),),
    doc="Fixed identification bytes 06 37 10 D9 00 00 00 00.",
)

IDENT_MANUFACTURER = FrameSpec(
    0x2D0,
    "ident_manufacturer",
    length=8,
    sender="battery",
    byteorder="big",
    period_s=None,
    required=False,
    fields=(Text("manufacturer", 1, 7, pad=b"\x00"),),
    doc="Byte 0 = 0, then the manufacturer in ASCII ('BYD').",
)


def _product_part(k: int) -> FrameSpec:
    first = 7 * k + 1
    return FrameSpec(
        0x3D0,
        f"ident_product_{k}",
        length=8,
        sender="battery",
        byteorder="big",
        period_s=None,
        required=False,
        mux=(0, k),
        fields=(Text("product", 1, 7, pad=b"\x00", part=k),),
        doc=f"Index {k}, then characters {first}-{first + 6} of the product name.",
    )


IDENT_PRODUCT = tuple(_product_part(k) for k in range(4))

IDENTIFY_REQUEST = FrameSpec(
    0x151,
    "identify_request",
    length=8,
    sender="inverter",
    byteorder="big",
    mux=(0, 0x01),
    period_s=None,
    doc="Byte 0 = 0x01: battery, identify yourself (bmslink asks once).",
)

INVERTER_BRAND = FrameSpec(
    0x151,
    "inverter_brand",
    length=8,
    sender="inverter",
    byteorder="big",
    mux=(0, 0x00),
    period_s=1.0,
    fields=(Text("inverter_brand", 1, 7, pad=b"\x00", send=b"BMSLINK"),),
    doc="Byte 0 = 0x00, bytes 1-7 the inverter brand in ASCII.",
)

INVERTER_MEASUREMENTS = FrameSpec(
    0x091,
    "inverter_measurements",
    length=8,
    min_length=6,
    sender="inverter",
    byteorder="big",
    period_s=None,
    emit=False,
    fields=(
        Num("inverter_voltage_v", 0, 2, scale=0.1, unit="V"),
        Num("inverter_current_a", 2, 2, signed=True, scale=0.1, unit="A", doc="sign unknown"),
        Num("inverter_temperature_c", 4, 2, signed=True, scale=0.1, unit="degC"),
    ),
    doc="The inverter's battery voltage, current and temperature (diagnostic).",
)

INVERTER_SOC = FrameSpec(
    0x0D1,
    "inverter_soc",
    length=8,
    min_length=2,
    sender="inverter",
    byteorder="big",
    period_s=None,
    emit=False,
    fields=(Num("inverter_soc_pct", 0, 2, scale=0.1, unit="%"),),
    doc="The SOC the inverter shows (diagnostic).",
)

INVERTER_TIME = FrameSpec(
    0x111,
    "inverter_time",
    length=8,
    min_length=4,
    sender="inverter",
    byteorder="big",
    period_s=None,
    emit=False,
    fields=(Num("inverter_timestamp", 0, 4, integer=True, doc="U32, epoch not documented"),),
    doc="The inverter's timestamp (diagnostic).",
)

INVERTER_191 = FrameSpec(
    0x191,
    "inverter_191",
    length=8,
    min_length=0,
    sender="inverter",
    byteorder="big",
    period_s=None,
    emit=False,
    accept_any_payload=True,
    doc="Sent by inverters; content not documented.",
)

PROFILE = Profile(
    name="byd-hvs",
    title="BYD Battery-Box Premium HVS/HVM CAN",
    frames=(
        LIMITS,
        STATES,
        ALARM,
        BATTERY_INFO,
        CELL_INFO,
        IDENT_FIRMWARE,
        IDENT_FIXED,
        IDENT_MANUFACTURER,
        *IDENT_PRODUCT,
        IDENTIFY_REQUEST,
        INVERTER_BRAND,
        INVERTER_MEASUREMENTS,
        INVERTER_SOC,
        INVERTER_TIME,
        INVERTER_191,
    ),
    bitrate=500_000,
    identity={"manufacturer": "BYD", "product": PRODUCT},
    responses=(
        Response(
            0x151,
            (0x250, 0x290, 0x2D0, 0x3D0),
            match=((0, 0x01),),
            doc="identification on request",
        ),
    ),
    battery_waits_for_inverter=True,
    voltage_class="hv",
    doc=__doc__ or "",
)
