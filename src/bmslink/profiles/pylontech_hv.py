"""Pylontech high-voltage CAN (Force H1/H2/H3, Dyness and other "Pylon-compatible" HV stacks).

Accepted by Felicity, Sofar, some Solis, Sungrow and Deye HV inverters. 29-bit
extended ids, 500 kbit/s (Battery-Emulator's Pylon battery reader also offers
250 kbit/s), little-endian, request/response: the inverter polls with 0x4200
about once a second; byte 0 = 0x00 asks for the ensemble frames 0x4210-0x4290,
byte 0 = 0x02 for the equipment information 0x7310-0x7340. The battery sends
nothing unasked. Its answers end in 0 or in 1 depending on its "send group"
setting (0x4210 or 0x4211, ...): both decode the same way, bmslink sends group 0.

Choices where sources disagree (shared/reference/inverter-protocols.md §4d):
- Byte order and offsets: Battery-Emulator's inverter side writes big-endian
  without offsets by default, but its own default payloads, its battery-side
  reader, ai-republic and a Pylon-to-Solax gateway all read little-endian with
  the offsets; so does this table (current and limits 0.1 A offset -3000 A,
  temperatures 0.1 degC offset -100 degC). The default payload
  ``A5 09 30 75 9D 04 2E 64`` is 246.9 V, 0 A, 18.1 degC, 46 %, 100 %.
- Discharge current limit in 0x4220: the standard counts it negative from the
  offset (raw = 30000 - 10 x DCL: Battery-Emulator's 30k-offset mode, the
  gateway reading real Pylon stacks); some BMSs (GCE, ai-republic) send it
  positive. The table decodes the standard encoding to a positive magnitude
  (scale -0.1, offset +3000) and encodes it the same way. The positive variant
  is NOT supported: it decodes as a negative DCL, because base.py cannot take
  the magnitude after the offset (see the report of this profile).
- A charge current limit below the offset (raw < 30000) decodes as a negative
  CCL: the table can neither clamp nor reject it.
- 0x4250 basic status (bits 0-2: 0 sleep, 1 charge, 2 discharge, 3 idle) is
  written from the current with a +/-0.5 A idle band; bmslink never sends
  "sleep". Bit 3 is the force-charge request, bit 4 the balance-charge request
  (``full_charge_request``).
- The error (byte 3), alarm (bytes 4-5) and protection (bytes 6-7) bits of
  0x4250 are diagnostic numbers, sent as 0: Battery-Emulator names only the
  bytes. ai-republic gives bit meanings (error: 0 voltage sensor, 1 temperature
  sensor, 2 internal communication, 3 charge breaker, 7 other; alarm and
  protection words: 0 cell low, 1 cell high, 2 pack low, 3 pack high voltage,
  4/5 charge low/high temperature, 6/7 discharge low/high temperature, 8/9
  charge/discharge over-current, 10/11 module low/high voltage) from one
  source only, so they are not mapped. Pylon HV therefore carries no alarm bits
  bmslink sets: alarms reach the inverter through the limits and the 0x4280
  forbidden marks, which the battery role zeroes/clears for active alarms.
- 0x4270 module temperatures are sent as the cell temperature extremes (as
  Battery-Emulator does); 0x4260 module voltages and all "number of" fields
  bmslink has no data for are sent as 0.
- 0x7320's "voltage level" (the nominal class, e.g. 384 V) is unknown to
  bmslink; it is sent as the present pack voltage in whole volts (approximate).
- Inverter side: bmslink asks for the equipment information once and for the
  ensemble data every second, and sends 0x8200 "quit sleep" (0xAA) every second,
  as Battery-Emulator's Pylon battery reader does. 0x8210 (charge/discharge
  command, 0xAA in that reader) is decoded but never sent: what its values mean
  is not documented.
"""

from __future__ import annotations

from bmslink.profiles.base import (
    Bits,
    Coded,
    Field,
    Flag,
    FrameSpec,
    Num,
    Profile,
    Response,
    Text,
    Version,
    cell_count,
    status_from_current,
)
from bmslink.state import BatteryState

_ENSEMBLE_IDS = (0x4210, 0x4220, 0x4230, 0x4240, 0x4250, 0x4260, 0x4270, 0x4280, 0x4290)
_EQUIPMENT_IDS = (0x7310, 0x7320, 0x7330, 0x7340)


#: 0x4250 bits 0-2: 1 charge, 2 discharge, 3 idle (never 0, sleep).
_basic_status = status_from_current(charging=1, discharging=2, idle=3)


def _cells_per_module(state: BatteryState) -> int:
    """Cells per module, 0 (unknown) unless the cells divide evenly into the modules."""
    cells, modules = cell_count(state), state.modules
    if not cells or not modules or cells % modules or cells // modules > 0xFF:
        return 0
    return cells // modules


def _voltage_level(state: BatteryState) -> int | None:
    return None if state.voltage_v is None else round(state.voltage_v)


def _module_temp_max(state: BatteryState) -> float | None:
    return state.cell_temp_max_c


def _module_temp_min(state: BatteryState) -> float | None:
    return state.cell_temp_min_c


def _battery(
    can_id: int, name: str, fields: tuple[Field, ...], doc: str, *, required: bool = True
) -> FrameSpec:
    """A battery answer: 29-bit, little-endian, sent only when asked, send group 1 = id + 1."""
    return FrameSpec(
        can_id,
        name,
        length=8,
        sender="battery",
        fields=fields,
        extended=True,
        byteorder="little",
        period_s=None,
        required=required,
        alt_ids=(can_id + 1,),
        doc=doc,
    )


STATUS = _battery(
    0x4210,
    "battery_status",
    (
        Num("voltage_v", 0, 2, scale=0.1, unit="V"),
        Num("current_a", 2, 2, scale=0.1, offset=-3000.0, unit="A", doc="+ = charging"),
        Num("temperature_c", 4, 2, scale=0.1, offset=-100.0, unit="degC", doc="BMS temperature"),
        Num("soc_pct", 6, 1, unit="%"),
        Num("soh_pct", 7, 1, unit="%"),
    ),
    "Pack voltage, current (offset -3000 A), BMS temperature (offset -100 degC), SOC, SOH.",
)

LIMITS = _battery(
    0x4220,
    "limits",
    (
        Num("charge_voltage_v", 0, 2, scale=0.1, unit="V", rounding="down", doc="charge cut-off"),
        Num(
            "discharge_voltage_v", 2, 2, scale=0.1, unit="V", rounding="up", doc="discharge cut-off"
        ),
        Num(
            "charge_current_a",
            4,
            2,
            scale=0.1,
            offset=-3000.0,
            unit="A",
            non_negative=True,
            rounding="down",
            doc="raw = 30000 + 10 x CCL",
        ),
        Num(
            "discharge_current_a",
            6,
            2,
            scale=-0.1,
            offset=3000.0,
            unit="A",
            non_negative=True,
            rounding="down",
            doc="raw = 30000 - 10 x DCL (the standard negative encoding)",
        ),
    ),
    "Charge/discharge cut-off voltages and current limits.",
)

CELL_VOLTAGES = _battery(
    0x4230,
    "cell_voltages",
    (
        Num("cell_max_v", 0, 2, scale=0.001, unit="V"),
        Num("cell_min_v", 2, 2, scale=0.001, unit="V"),
        Num("cell_max_id", 4, 2, as_text=True, doc="number of the highest cell, 0 = unknown"),
        Num("cell_min_id", 6, 2, as_text=True, doc="number of the lowest cell, 0 = unknown"),
    ),
    "Highest and lowest cell voltage and their cell numbers.",
)

CELL_TEMPERATURES = _battery(
    0x4240,
    "cell_temperatures",
    (
        Num("cell_temp_max_c", 0, 2, scale=0.1, offset=-100.0, unit="degC"),
        Num("cell_temp_min_c", 2, 2, scale=0.1, offset=-100.0, unit="degC"),
        Num("cell_temp_max_number", 4, 2, integer=True, send=0, doc="bmslink sends 0 (unknown)"),
        Num("cell_temp_min_number", 6, 2, integer=True, send=0, doc="bmslink sends 0 (unknown)"),
    ),
    "Highest and lowest cell temperature (offset -100 degC) and their cell numbers.",
)

STATUS_BITS = _battery(
    0x4250,
    "status",
    (
        Bits(
            "basic_status",
            0,
            0,
            3,
            derive=_basic_status,
            doc="0 sleep, 1 charge, 2 discharge, 3 idle (bmslink: from the current, +/-0.5 A idle)",
        ),
        Flag("force_charge", 0, 3, absent_is_false=True, doc="force-charge request"),
        Flag("full_charge_request", 0, 4, absent_is_false=True, doc="balance-charge request"),
        Num("cycle_period", 1, 2, integer=True, send=0, doc="meaning not documented; sent as 0"),
        Num("error_bits", 3, 1, integer=True, send=0, doc="not mapped (see module docstring)"),
        Num("alarm_bits", 4, 2, integer=True, send=0, doc="not mapped (see module docstring)"),
        Num("protection_bits", 6, 2, integer=True, send=0, doc="not mapped"),
    ),
    "Basic status, force/balance charge requests, cycle period, error/alarm/protection bits.",
)

MODULE_VOLTAGES = _battery(
    0x4260,
    "module_voltages",
    (
        Num("module_voltage_max_v", 0, 2, scale=0.001, unit="V", send=0.0, doc="sent as 0"),
        Num("module_voltage_min_v", 2, 2, scale=0.001, unit="V", send=0.0, doc="sent as 0"),
        Num("module_voltage_max_number", 4, 2, integer=True, send=0),
        Num("module_voltage_min_number", 6, 2, integer=True, send=0),
    ),
    "Highest and lowest module voltage and their module numbers (diagnostic).",
)

MODULE_TEMPERATURES = _battery(
    0x4270,
    "module_temperatures",
    (
        Num(
            "module_temp_max_c",
            0,
            2,
            scale=0.1,
            offset=-100.0,
            unit="degC",
            derive=_module_temp_max,
            doc="sent as the highest cell temperature",
        ),
        Num(
            "module_temp_min_c",
            2,
            2,
            scale=0.1,
            offset=-100.0,
            unit="degC",
            derive=_module_temp_min,
            doc="sent as the lowest cell temperature",
        ),
        Num("module_temp_max_number", 4, 2, integer=True, send=0),
        Num("module_temp_min_number", 6, 2, integer=True, send=0),
    ),
    "Highest and lowest module temperature (offset -100 degC) and their numbers (diagnostic).",
)

FORBIDDEN = _battery(
    0x4280,
    "charge_forbidden",
    (
        Coded(
            "charge_enable",
            0,
            {0x00: True, 0xAA: False},
            otherwise=False,
            doc="0xAA = charge forbidden",
        ),
        Coded(
            "discharge_enable",
            1,
            {0x00: True, 0xAA: False},
            otherwise=False,
            doc="0xAA = discharge forbidden",
        ),
    ),
    "Charge and discharge forbidden marks (0xAA forbidden, 0x00 allowed; anything else forbidden).",
)

FAULT_EXTENSION = _battery(
    0x4290,
    "fault_extension",
    (),
    "Fault extension; its layout is not documented in the sources, bmslink sends zeros.",
)

VERSIONS = _battery(
    0x7310,
    "versions",
    (
        Num("hardware_type", 0, 1, integer=True, send=0, doc="0 none, 1 'A', 2 'B' (ai-republic)"),
        Version("hardware", 2, base=10, doc="hardware V.R"),
        Version("firmware", 4, base=10, doc="software V.R; bytes 6-7 (build) not decoded"),
    ),
    "Hardware and software versions.",
    required=False,
)

MODULE_INFO = _battery(
    0x7320,
    "module_info",
    (
        Num("cell_count", 0, 2, integer=True, derive=cell_count, doc="total cells"),
        Num("modules", 2, 1, integer=True, doc="battery modules in series"),
        Num("cells_per_module", 3, 1, integer=True, derive=_cells_per_module),
        Num(
            "voltage_level_v",
            4,
            2,
            integer=True,
            unit="V",
            derive=_voltage_level,
            doc="nominal class; bmslink sends the present pack voltage (approximate)",
        ),
        Num("installed_capacity_ah", 6, 2, unit="Ah"),
    ),
    "Cell and module counts, voltage level, capacity.",
    required=False,
)

MANUFACTURER_1 = _battery(
    0x7330,
    "manufacturer_1",
    (Text("manufacturer", 0, 8, pad=b"\x00"),),
    "Manufacturer name, characters 1-8.",
    required=False,
)

MANUFACTURER_2 = _battery(
    0x7340,
    "manufacturer_2",
    (Text("manufacturer", 0, 8, pad=b"\x00", part=1),),
    "Manufacturer name, characters 9-16.",
    required=False,
)

ENSEMBLE_REQUEST = FrameSpec(
    0x4200,
    "ensemble_request",
    length=8,
    min_length=1,
    sender="inverter",
    extended=True,
    mux=(0, 0x00),
    period_s=1.0,
    doc="Byte 0 = 0x00: send the ensemble frames 0x4210-0x4290.",
)

EQUIPMENT_REQUEST = FrameSpec(
    0x4200,
    "equipment_request",
    length=8,
    min_length=1,
    sender="inverter",
    extended=True,
    mux=(0, 0x02),
    period_s=None,
    doc="Byte 0 = 0x02: send the equipment information 0x7310-0x7340 (bmslink asks once).",
)

SLEEP_CONTROL = FrameSpec(
    0x8200,
    "sleep_control",
    length=8,
    min_length=1,
    sender="inverter",
    extended=True,
    fields=(
        Num("sleep_control", 0, 1, integer=True, send=0xAA, doc="0xAA quit sleep, 0x55 sleep"),
    ),
    doc="Byte 0 = 0xAA: quit sleep; 0x55: go to sleep.",
)

CHARGE_COMMAND = FrameSpec(
    0x8210,
    "charge_command",
    length=8,
    min_length=1,
    sender="inverter",
    extended=True,
    fields=(Num("charge_command", 0, 1, integer=True, doc="0xAA in Battery-Emulator"),),
    period_s=None,
    emit=False,
    doc="Charge/discharge command; values other than Battery-Emulator's 0xAA are undocumented.",
)

PROFILE = Profile(
    name="pylontech-hv",
    title="Pylontech HV CAN (Force H1/H2/H3, Pylon-compatible HV)",
    frames=(
        STATUS,
        LIMITS,
        CELL_VOLTAGES,
        CELL_TEMPERATURES,
        STATUS_BITS,
        MODULE_VOLTAGES,
        MODULE_TEMPERATURES,
        FORBIDDEN,
        FAULT_EXTENSION,
        VERSIONS,
        MODULE_INFO,
        MANUFACTURER_1,
        MANUFACTURER_2,
        ENSEMBLE_REQUEST,
        EQUIPMENT_REQUEST,
        SLEEP_CONTROL,
        CHARGE_COMMAND,
    ),
    bitrate=500_000,
    bitrates=(500_000, 250_000),
    identity={"manufacturer": "PYLON"},
    responses=(
        Response(
            0x4200,
            _ENSEMBLE_IDS,
            match=((0, 0x00),),
            extended=True,
            doc="ensemble information",
        ),
        Response(
            0x4200,
            _EQUIPMENT_IDS,
            match=((0, 0x02),),
            extended=True,
            doc="equipment information",
        ),
    ),
    voltage_class="hv",
    doc=__doc__ or "",
)
