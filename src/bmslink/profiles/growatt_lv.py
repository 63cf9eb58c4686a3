"""Growatt low-voltage battery CAN ("BMS CAN-Bus protocol Low Voltage Rev_04").

LOW CONFIDENCE: the only source is Battery-Emulator's ``GROWATT-LV-CAN``
emulator, whose wiki says "testing ongoing"; the Growatt document itself was
not available. Spoken to Growatt's 48 V hybrid inverters (SPF/SPH LV models).
11-bit ids, 500 kbit/s, big-endian, request/response: the inverter sends 0x301
once per second and the battery answers with the whole set 0x311-0x321.

Growatt LV carries fault/alarm bits (0x312 bytes 0-3) whose meanings the
source does not state ("TODO, map these according to documentation"), so
bmslink decodes them as one diagnostic number and sends 0: alarms reach the
inverter only through the limits and the charge/discharge enable flags, which
the battery role sets for active alarms.

Choices where the sources are silent or disagree (shared/reference/inverter-protocols.md §4e):
- 0x311 status word (bytes 6-7, big-endian): bits 0-1 (byte 7) and the "SP
  status" bits 10-11 (byte 6 bits 2-3) are 01 idle, 10 charging, 11
  discharging. bmslink writes both from the current with a +/-0.5 A idle band
  (Battery-Emulator uses the power sign with a 1 W band). The other status bits
  are not documented and stay 0.
- 0x313 SOH: bits 0-6 are the SOH in %, bit 7 flags "battery in unsafe use";
  the flag is diagnostic and sent as 0.
- 0x312 byte 4 "pack number" is read as the number of packs: it is diagnostic
  (``pack_number``) and sent as ``modules`` (1 when unknown, as Battery-Emulator
  does); the 2-byte manufacturer code is sent as 0 (Battery-Emulator's AA BB is
  a placeholder); the total cell count is sent as the number of cells in
  ``cells_v`` (0 when unknown).
- 0x319 cell numbers map to ``cell_max_id``/``cell_min_id`` (0 = unknown);
  force-charge requests 1 (bit 5) and 2 (bit 4) both feed ``force_charge``,
  bmslink writes request 1.
- 0x320 hardware revision and software version are single numbers 1-9: they
  map to ``hardware``/``firmware`` as text ("1"); the packed date-time
  (s, min, h, day, month, year - 2000 from bit 0 up) is diagnostic and sent as 0.
- 0x301 from the inverter: Battery-Emulator answers any 0x301 and reads
  nothing from it; bmslink sends it as eight zero bytes.
- ai-republic's Growatt emulator writes these frames little-endian with a
  different 0x311 status layout; it contradicts the big-endian document header
  Battery-Emulator quotes and is not used.
"""

from __future__ import annotations

from bmslink.profiles.base import (
    Bits,
    Cells,
    Field,
    Flag,
    FrameSpec,
    Num,
    Profile,
    Response,
    Text,
    cell_count,
    current_limit,
    status_from_current,
)
from bmslink.state import BatteryState

_ANSWER_IDS = (0x311, 0x312, 0x313, 0x314, 0x315, 0x316, 0x317, 0x318, 0x319, 0x320, 0x321)


#: 0x311 status: 1 idle, 2 charging, 3 discharging.
_status = status_from_current(charging=2, discharging=3, idle=1)


def _soh(state: BatteryState) -> int | None:
    """SOH as the 7-bit whole percent of 0x313 byte 7 (the Bits encoder checks the range)."""
    return None if state.soh_pct is None else round(state.soh_pct)


def _pack_number(state: BatteryState) -> int:
    return 1 if state.modules is None else state.modules


def _cell_delta_v(state: BatteryState) -> float | None:
    high, low = state.cell_max_v, state.cell_min_v
    if (high is None or low is None) and state.cells_v:
        high, low = max(state.cells_v), min(state.cells_v)
    if high is None or low is None:
        return None
    return high - low


def _answer(
    can_id: int, name: str, fields: tuple[Field, ...], doc: str, *, required: bool = True
) -> FrameSpec:
    """A battery answer to 0x301: 11-bit, big-endian, only sent when asked."""
    return FrameSpec(
        can_id,
        name,
        length=8,
        sender="battery",
        fields=fields,
        byteorder="big",
        period_s=None,
        required=required,
        doc=doc,
    )


LIMITS = _answer(
    0x311,
    "limits_status",
    (
        Num("charge_voltage_v", 0, 2, scale=0.1, unit="V", rounding="down"),
        current_limit("charge_current_a", 2),
        current_limit("discharge_current_a", 4),
        Bits("sp_status", 6, 2, 2, derive=_status, doc="bits 10-11: 1 idle, 2 charge, 3 discharge"),
        Bits("status", 7, 0, 2, derive=_status, doc="bits 0-1: 1 idle, 2 charging, 3 discharging"),
    ),
    "Charge voltage, charge and discharge current limits, status word.",
)

FAULTS = _answer(
    0x312,
    "faults_info",
    (
        Num("fault_bits", 0, 4, integer=True, send=0, doc="meanings not stated; sent as 0"),
        Num("pack_number", 4, 1, integer=True, derive=_pack_number, doc="packs"),
        Num("manufacturer_code", 5, 2, integer=True, send=0),
        Num("cell_count", 7, 1, integer=True, derive=cell_count, doc="total cells, 0 = unknown"),
    ),
    "Fault/alarm bits, pack number, manufacturer code, total cell count.",
)

MEASUREMENTS = _answer(
    0x313,
    "measurements",
    (
        Num("voltage_v", 0, 2, scale=0.01, unit="V"),
        Num("current_a", 2, 2, signed=True, scale=0.1, unit="A", doc="+ = charging"),
        Num("cell_temp_max_c", 4, 2, signed=True, scale=0.1, unit="degC"),
        Num("soc_pct", 6, 1, unit="%"),
        Bits("soh_pct", 7, 0, 7, derive=_soh, doc="SOH % in bits 0-6"),
        Bits("soh_unsafe", 7, 7, 1, send=0, doc="bit 7: battery in unsafe use"),
    ),
    "Voltage, current, highest cell temperature, SOC, SOH with the unsafe flag.",
)

CAPACITY = _answer(
    0x314,
    "capacity",
    (
        Num("remaining_ah", 0, 2, scale=0.01, unit="Ah", doc="10 mAh"),
        Num("capacity_ah", 2, 2, scale=0.01, unit="Ah", doc="fully charged, 10 mAh"),
        Num("cell_delta_v", 4, 2, scale=0.001, unit="V", derive=_cell_delta_v),
        Num("cycles", 6, 2, integer=True),
    ),
    "Remaining and full capacity, cell voltage spread, cycle count.",
    required=False,
)

CELLS = tuple(
    _answer(
        0x315 + k,
        f"cells_{4 * k + 1}_{4 * k + 4}",
        (Cells("cells_v", 0, 4, part=k),),
        f"Cell voltages {4 * k + 1}-{4 * k + 4} in mV.",
        required=False,
    )
    for k in range(4)
)

REQUESTS = _answer(
    0x319,
    "requests_cells",
    (
        Flag("charge_enable", 0, 7),
        Flag("discharge_enable", 0, 6),
        Flag("force_charge_1", 0, 5, into="force_charge", absent_is_false=True),
        Flag("force_charge_2", 0, 4, into="force_charge", write=False),
        Num("cell_max_v", 1, 2, scale=0.001, unit="V"),
        Num("cell_min_v", 3, 2, scale=0.001, unit="V"),
        Num("cell_max_id", 5, 1, as_text=True, doc="0 = unknown"),
        Num("cell_min_id", 6, 1, as_text=True, doc="0 = unknown"),
        Num("protect_pack_id", 7, 1, integer=True, send=0, doc="0: no pack is protecting"),
    ),
    "Request flags, highest/lowest cell voltage and their numbers, protecting pack id.",
)

INFO = _answer(
    0x320,
    "bms_info",
    (
        Text("manufacturer", 0, 2, doc="abbreviation in capitals"),
        Num("hardware", 2, 1, as_text=True, doc="hardware revision 1-9"),
        Num("firmware", 3, 1, as_text=True, doc="software version 1-9"),
        Num("date_time", 4, 4, integer=True, send=0, doc="packed date-time"),
    ),
    "Manufacturer abbreviation, hardware and software version, date and time.",
    required=False,
)

UPDATE_STATUS = _answer(
    0x321,
    "update_status",
    (),
    "Update status; all zero = no update (layout not documented).",
)

INVERTER_REQUEST = FrameSpec(
    0x301,
    "inverter_request",
    length=8,
    min_length=0,
    sender="inverter",
    byteorder="big",
    period_s=1.0,
    accept_any_payload=True,
    doc="Once per second; any 0x301 makes the battery answer. Content not documented.",
)

PROFILE = Profile(
    name="growatt-lv",
    title="Growatt low-voltage battery CAN (Rev_04, low confidence)",
    frames=(
        LIMITS,
        FAULTS,
        MEASUREMENTS,
        CAPACITY,
        *CELLS,
        REQUESTS,
        INFO,
        UPDATE_STATUS,
        INVERTER_REQUEST,
    ),
    bitrate=500_000,
    responses=(Response(0x301, _ANSWER_IDS, doc="the whole set on every 0x301"),),
    voltage_class="lv",
    doc=__doc__ or "",
)
