"""Pylontech low-voltage RS485 protocol: the commands, as requests and as answers.

The inverter (or a PC) is the master and polls; the battery answers. CID1 is
0x46 (LiFePO4 battery data) and CID2 is the command in a request, the return
code in an answer. Values are big-endian inside the hex text: cell voltages S16
mV, temperatures 0.1 K with offset 2731, module current S16 in 100 mA (+ =
charging), module voltage U16 mV, capacities U16 mAh (U24 when the pack is
above 65 Ah).

``COMMANDS`` is the table: what each request carries, how its answer is laid
out, and how well the layout is known. V3.3 commands come from Pylontech's
document; the V3.5 "system" commands 0x60-0x63 are known only from
implementations and real captures, and ``confidence`` says so (docs/protocols.md).

Decoding gives a BatteryState for the commands that describe the battery and a
flat dict (BatteryState keys where they match) for those that describe
settings or versions. Encoding builds answers from a BatteryState per module;
alarms are mapped to the states and status bits of 0x44 (and 0x62) by tables,
and an alarm 0x44 has no bit for still shows as an "other error" state rather
than vanishing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

from bmslink.bank import bank_of, cell_extremes, with_cell_extremes
from bmslink.errors import DecodeError, EncodeError
from bmslink.rs485.frame import AsciiFrame, Rtn, rtn_text
from bmslink.rs485.layout import Reader, Word, Writer
from bmslink.state import BatteryState, required

VER = 0x20  # what US2000/US3000 answer
CID1_BATTERY = 0x46
ALL_MODULES = 0xFF
KELVIN_OFFSET_RAW = 2731  # 0.1 K
#: Above this many Ah a module sends the 3-byte "capacity 2" fields.
U16_CAPACITY_AH = 65.535


class Command(IntEnum):
    ANALOG = 0x42
    ALARM = 0x44
    SYSTEM_PARAMETERS = 0x47
    PROTOCOL_VERSION = 0x4F
    MANUFACTURER_INFO = 0x51
    MANAGEMENT = 0x92
    SERIAL_NUMBER = 0x93
    SOFTWARE_VERSION = 0x96
    SYSTEM_BASIC = 0x60
    SYSTEM_ANALOG = 0x61
    SYSTEM_ALARM = 0x62
    SYSTEM_MANAGEMENT = 0x63


Decoded = BatteryState | dict[str, Any]


class ResponseError(DecodeError):
    """The battery answered with a return code other than 00."""

    def __init__(self, rtn: int, command: int) -> None:
        super().__init__(f"battery answered command {command:02X} with {rtn_text(rtn)}")
        self.rtn = rtn


# -- identity and settings the battery role presents ------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Who the emulated battery says it is (0x51, 0x60, 0x93, 0x96, 0x4F)."""

    device_name: str = "US3000C"
    manufacturer: str = "PYLON"
    software_version: tuple[int, int] = (1, 0)
    manufacturer_version: tuple[int, int] = (1, 0)
    mainline_version: tuple[int, int, int] = (0, 1, 0)
    protocol_version: int = VER


@dataclass(frozen=True)
class SystemParameters:
    """The limits 0x47 reports; from the pack's configuration, never from a guess."""

    cell_high_voltage_v: float
    cell_low_voltage_v: float
    cell_under_voltage_v: float
    charge_high_temperature_c: float
    charge_low_temperature_c: float
    charge_current_a: float
    module_high_voltage_v: float
    module_low_voltage_v: float
    module_under_voltage_v: float
    discharge_high_temperature_c: float
    discharge_low_temperature_c: float
    discharge_current_a: float

    def as_dict(self) -> dict[str, float]:
        return {w.key: getattr(self, w.key) for w in PARAMETER_WORDS}


# -- fixed layouts ------------------------------------------------------------------------------

_MV = 0.001


def _temperature(key: str) -> Word:
    """A temperature: S16 in 0.1 K, 0 °C = raw 2731."""
    return Word(key, "s16", 0.1, offset=-KELVIN_OFFSET_RAW / 10)


TEMPERATURE = _temperature("temperature")
CELL_VOLTAGE = Word("cell voltage", "s16", _MV)

PARAMETER_WORDS: tuple[Word, ...] = (
    Word("cell_high_voltage_v", "u16", _MV),
    Word("cell_low_voltage_v", "u16", _MV),
    Word("cell_under_voltage_v", "u16", _MV),
    _temperature("charge_high_temperature_c"),
    _temperature("charge_low_temperature_c"),
    Word("charge_current_a", "s16", 0.1, rounding="down"),
    Word("module_high_voltage_v", "u16", _MV),
    Word("module_low_voltage_v", "u16", _MV),
    Word("module_under_voltage_v", "u16", _MV),
    _temperature("discharge_high_temperature_c"),
    _temperature("discharge_low_temperature_c"),
    Word("discharge_current_a", "s16", 0.1, rounding="down", negate=True),
)

#: 0x92 (after the command byte) and 0x63: the limits an inverter follows.
MANAGEMENT_WORDS: tuple[Word, ...] = (
    Word("charge_voltage_v", "u16", _MV, rounding="down"),
    Word("discharge_voltage_v", "u16", _MV, rounding="up"),
    Word("charge_current_a", "s16", 0.1, rounding="down"),
    Word("discharge_current_a", "s16", 0.1, rounding="down", negate=True),
)
#: 0x63 sends the discharge limit as a positive number (every implementation and capture).
SYSTEM_MANAGEMENT_WORDS: tuple[Word, ...] = (
    *MANAGEMENT_WORDS[:3],
    Word("discharge_current_a", "s16", 0.1, rounding="down"),
)
#: Management status byte: bit -> state flag (0x92 and 0x63 agree on bits 7 and 6).
MANAGEMENT_FLAGS: dict[int, dict[int, str]] = {
    Command.MANAGEMENT: {
        7: "charge_enable",
        6: "discharge_enable",
        5: "force_charge",
        4: "force_charge",
        3: "full_charge_request",
    },
    Command.SYSTEM_MANAGEMENT: {
        7: "charge_enable",
        6: "discharge_enable",
        5: "force_charge",
        4: "full_charge_request",
    },
}

_TEMPERATURE_TRIPLE = ("avg", "max", "max_id", "min", "min_id")
SYSTEM_ANALOG_WORDS: tuple[Word, ...] = (
    Word("voltage_v", "u16", _MV),
    Word("current_a", "s16", 0.01),
    Word("soc_pct", "u8", 1.0),
    Word("cycles_avg", "u16", integer=True),
    Word("cycles", "u16", integer=True),  # the maximum: the worst module's count
    Word("soh_avg", "u8", 1.0),
    Word("soh_pct", "u8", 1.0),  # the minimum
    Word("cell_max_v", "u16", _MV),
    Word("cell_max_id", "u16", integer=True),
    Word("cell_min_v", "u16", _MV),
    Word("cell_min_id", "u16", integer=True),
    *(
        Word(f"{group}_temp_{part}", "u16", integer=True)
        if part.endswith("id")
        else _temperature(f"{group}_temp_{part}")
        for group in ("cell", "mosfet", "bms")
        for part in _TEMPERATURE_TRIPLE
    ),
)

# -- alarm tables ------------------------------------------------------------------------------

#: 0x44 status 1: protection bits -> alarm.
STATUS1_ALARMS: dict[int, str] = {
    0: "high_voltage",  # module over-voltage
    1: "low_voltage",  # cell under-voltage
    2: "high_charge_current",
    4: "high_discharge_current",
    5: "high_temperature",  # discharge over-temperature
    6: "high_temperature_charge",
    7: "low_voltage",  # module under-voltage
}
#: State codes of the per-item bytes of 0x44.
STATE_NORMAL, STATE_LOW, STATE_HIGH, STATE_OTHER = 0x00, 0x01, 0x02, 0xF0
#: Alarm/warning -> (which 0x44 state item, which code) it shows as.
ALARM_STATES: dict[str, tuple[str, int]] = {
    "high_voltage": ("voltage", STATE_HIGH),
    "low_voltage": ("voltage", STATE_LOW),
    "high_temperature": ("temperature", STATE_HIGH),
    "high_temperature_charge": ("temperature", STATE_HIGH),
    "low_temperature": ("temperature", STATE_LOW),
    "low_temperature_charge": ("temperature", STATE_LOW),
    "high_charge_current": ("charge_current", STATE_HIGH),
    "high_discharge_current": ("discharge_current", STATE_HIGH),
    "short_circuit": ("discharge_current", STATE_HIGH),
    # no item of their own: an "other error" on the module-voltage item
    "contactor": ("voltage", STATE_OTHER),
    "bms_internal": ("voltage", STATE_OTHER),
    "general": ("voltage", STATE_OTHER),
}
#: Alarms 0x44 shows only as a state item, not a status-1 protection bit.
_STATUS1_FOR_ALARM = {
    "short_circuit": 4,
    **{name: bit for bit, name in sorted(STATUS1_ALARMS.items(), reverse=True)},
}

#: 0x62 (low confidence: the bit meanings come from one implementation, no document).
#: (byte, bit) -> name; bytes 0-1 are alarm status (warnings), 2-3 protection status (alarms).
SYSTEM_ALARM_BITS: dict[tuple[int, int], str] = {
    (0, 7): "high_voltage",  # module voltage high
    (0, 6): "low_voltage",
    (0, 5): "high_voltage",  # cell voltage high
    (0, 4): "low_voltage",
    (0, 3): "high_temperature",  # cell temperature high
    (0, 2): "low_temperature",
    (0, 1): "high_temperature",  # MOSFET temperature high
    (0, 0): "cell_imbalance",  # cell voltage consistency
    (1, 7): "general",  # cell temperature consistency
    (1, 6): "high_charge_current",
    (1, 5): "high_discharge_current",
    (1, 4): "bms_internal",  # internal communication error
    (2, 7): "high_voltage",  # module over-voltage
    (2, 6): "low_voltage",
    (2, 5): "high_voltage",  # cell over-voltage
    (2, 4): "low_voltage",
    (2, 3): "high_temperature",
    (2, 2): "low_temperature",
    (2, 1): "high_temperature",  # MOSFET over-temperature
    (3, 6): "high_charge_current",
    (3, 5): "high_discharge_current",
    (3, 3): "general",  # system fault
}
#: Names with no bit of their own on 0x62, sent as the nearest one. A name with no bit at
#: its level goes out as "general" (system fault, or cell temperature consistency as a
#: warning); cell_imbalance has only a warning bit, so it is sent there at either level.
_SYSTEM_ALARM_NEAREST = {
    "high_temperature_charge": "high_temperature",
    "low_temperature_charge": "low_temperature",
    "short_circuit": "high_discharge_current",
    "contactor": "general",
}
_SYSTEM_ALARM_BIT: dict[tuple[str, bool], tuple[int, int]] = {}
for (_byte, _bit), _name in SYSTEM_ALARM_BITS.items():
    _SYSTEM_ALARM_BIT.setdefault((_name, _byte >= 2), (_byte, _bit))


# -- helpers -----------------------------------------------------------------------------------


def _bits(value: int, table: Mapping[int, str]) -> list[str]:
    return sorted({name for bit, name in table.items() if value >> bit & 1})


def _cell_temperatures(temps: Sequence[float]) -> list[float]:
    """The cell-group sensors of 0x42: sensor 1 is the BMS board, a 6th the MOSFET."""
    if len(temps) <= 1:
        return list(temps)
    return list(temps[1:5])


# -- 0x42 analog values ------------------------------------------------------------------------


def _read_module(r: Reader, n: int) -> BatteryState:
    m = f"module {n} "
    cells = [
        r.number("s16", f"{m}cell {i + 1} voltage") / 1000 for i in range(r.u8(m + "cell count"))
    ]
    temps = [
        TEMPERATURE.from_raw(r.number("s16", f"{m}temperature {i + 1}"))
        for i in range(r.u8(m + "sensors"))
    ]
    current = r.number("s16", m + "current") / 10
    voltage = r.number("u16", m + "voltage") / 1000
    remaining = r.number("u16", m + "remaining capacity")
    count = r.u8(m + "user-defined item count")
    if count not in (2, 4):
        raise DecodeError(
            f"{r.what}: {m}user-defined item count is {count}, Pylontech sends 2 or 4 "
            f"(byte {r.pos - 1})"
        )
    total = r.number("u16", m + "total capacity")
    cycles = r.number("u16", m + "cycle count")
    if count == 4:
        remaining = r.number("u24", m + "remaining capacity 2")
        total = r.number("u24", m + "total capacity 2")
    cell_temps = _cell_temperatures(temps)
    state = BatteryState(
        voltage_v=voltage,
        current_a=current,
        cells_v=cells or None,
        temperatures_c=temps or None,
        remaining_ah=remaining / 1000,
        capacity_ah=total / 1000,
        cycles=cycles,
        soc_pct=round(100 * remaining / total, 1) if total else None,
        cell_temp_min_c=min(cell_temps) if cell_temps else None,
        cell_temp_max_c=max(cell_temps) if cell_temps else None,
        temperature_c=max(cell_temps) if cell_temps else None,
    )
    return state.merged(cell_extremes(cells))


def decode_analog(info: bytes) -> BatteryState:
    """0x42 answer: one module, or all modules of a group (after an FF request)."""
    r = Reader(info, "0x42 analog values")
    r.u8("INFOFLAG")
    first = r.u8("command value / module count")
    modules: list[BatteryState] = []
    while r.remaining or not modules:
        modules.append(_read_module(r, len(modules) + 1))
    if len(modules) == 1:
        return modules[0]
    if len(modules) != first:
        raise DecodeError(
            f"0x42 analog values: INFO holds {len(modules)} module blocks, "
            f"the module count byte says {first}"
        )
    return bank_of(modules)


def _write_module(w: Writer, state: BatteryState, n: int) -> None:
    where = f"0x42 module {n}"
    cells = state.cells_v or []
    if len(cells) > 255:
        raise EncodeError(f"{where}: {len(cells)} cells do not fit the count byte")
    w.u8(len(cells), "cell count")
    for i, volts in enumerate(cells):
        w.number("s16", CELL_VOLTAGE.to_raw(volts, f"{where} cell {i + 1}"), "cell voltage")
    temps = state.temperatures_c
    if temps is None and state.temperature_c is not None:
        temps = [state.temperature_c]
    temps = temps or []
    w.u8(len(temps), "temperature count")
    for t in temps:
        w.number("s16", TEMPERATURE.to_raw(t, where), "temperature")
    w.word(Word("current_a", "s16", 0.1), required(state, "current_a", where))
    w.word(Word("voltage_v", "u16", _MV), required(state, "voltage_v", where))
    capacity = required(state, "capacity_ah", where)
    remaining = state.remaining_ah
    if remaining is None:
        soc = required(state, "soc_pct", where + " (remaining_ah or soc_pct)")
        remaining = capacity * soc / 100
    big = max(capacity, remaining) > U16_CAPACITY_AH
    w.number("u16", 0xFFFF if big else round(remaining * 1000), "remaining capacity")
    w.u8(4 if big else 2, "user-defined item count")
    w.number("u16", 0xFFFF if big else round(capacity * 1000), "total capacity")
    # no "unknown" value exists for the cycle count: a state without one is refused
    w.word(Word("cycles", "u16", integer=True), required(state, "cycles", where))
    if big:
        w.word(Word("remaining capacity 2", "u24", _MV), remaining)
        w.word(Word("total capacity 2", "u24", _MV), capacity)


def encode_analog(modules: Sequence[BatteryState], command_value: int) -> bytes:
    """0x42 answer; ``command_value`` is the module address, or the count after FF."""
    w = Writer("0x42 analog values")
    w.u8(0x11 if any(m.alarms for m in modules) else 0x10, "INFOFLAG")
    w.u8(command_value, "command value")
    for n, module in enumerate(modules, 1):
        _write_module(w, module, n)
    return w.bytes()


# -- 0x44 alarm info ---------------------------------------------------------------------------


def decode_alarm(info: bytes) -> BatteryState:
    """0x44 answer: states per cell, sensor and current, and the five status bytes."""
    r = Reader(info, "0x44 alarm info")
    r.u8("DATAFLAG")
    r.u8("command value")
    cells = [r.u8(f"cell {i + 1} state") for i in range(r.u8("cell count"))]
    temps = [r.u8(f"temperature {i + 1} state") for i in range(r.u8("sensor count"))]
    charge_current = r.u8("charge current state")
    voltage = r.u8("module voltage state")
    discharge_current = r.u8("discharge current state")
    status = [r.u8(f"status {i}") for i in range(1, 6)]
    r.done()
    alarms = set(_bits(status[0], STATUS1_ALARMS))
    warnings: set[str] = set()
    items = [
        ("high_voltage", "low_voltage", [*cells, voltage]),
        ("high_temperature", "low_temperature", temps),
        ("high_charge_current", None, [charge_current]),
        ("high_discharge_current", None, [discharge_current]),
    ]
    for high, low, codes in items:
        if STATE_HIGH in codes:
            warnings.add(high)
        if low is not None and STATE_LOW in codes:
            warnings.add(low)
    if STATE_OTHER in (*cells, *temps, charge_current, voltage, discharge_current):
        alarms.add("general")
    if status[3] or status[4]:
        alarms.add("general")  # a cell reads > 4.2 V or < 1 V: a cell or sensor fault
    return BatteryState(
        alarms=sorted(alarms),
        warnings=sorted(warnings - alarms),
        charge_enable=bool(status[1] >> 1 & 1),
        discharge_enable=bool(status[1] >> 2 & 1),
    )


def _extreme_index(values: Sequence[float], high: bool) -> int:
    pick = max(values) if high else min(values)
    return values.index(pick)


def encode_alarm(state: BatteryState, command_value: int) -> bytes:
    """0x44 answer from a state's alarms, warnings and enable flags."""
    where = "0x44 alarm info"
    alarms = required(state, "alarms", where)
    warnings = state.warnings or []
    cells = state.cells_v or []
    temps = state.temperatures_c or ([state.temperature_c] if state.temperature_c else [])
    cell_states = [STATE_NORMAL] * len(cells)
    temp_states = [STATE_NORMAL] * len(temps)
    item = {"voltage": STATE_NORMAL, "charge_current": STATE_NORMAL}
    item["discharge_current"] = STATE_NORMAL
    status1 = 0
    for name in sorted({*alarms, *warnings}):
        mapped = ALARM_STATES.get(name)
        if mapped is None:
            continue  # cell_imbalance: 0x44 has no place for it (it stops nothing)
        what, code = mapped
        if what == "temperature" and temps:
            temp_states[_extreme_index(temps, code == STATE_HIGH)] = code
        elif what == "temperature":
            item["voltage"] = STATE_OTHER  # nowhere to show it: still not "normal"
        else:
            item[what] = code if item[what] in (STATE_NORMAL, code) else STATE_OTHER
        if what == "voltage" and code != STATE_OTHER and cells:
            cell_states[_extreme_index(cells, code == STATE_HIGH)] = code
        if name in alarms and name in _STATUS1_FOR_ALARM:
            status1 |= 1 << _STATUS1_FOR_ALARM[name]
    status2 = (state.charge_enable is True) << 1 | (state.discharge_enable is True) << 2
    current = state.current_a or 0.0
    status3 = (current > 0.1) << 7 | (current < -0.1) << 6 | ((state.soc_pct or 0) >= 100) << 3
    flagged = status1 or any(cell_states) or any(temp_states) or any(item.values())
    w = Writer(where)
    w.u8(0x11 if flagged else 0x10, "DATAFLAG")  # bit 0: something to look at
    w.u8(command_value, "command value")
    w.u8(len(cell_states), "cell count")
    for code in cell_states:
        w.u8(code, "cell state")
    w.u8(len(temp_states), "sensor count")
    for code in temp_states:
        w.u8(code, "temperature state")
    for key in ("charge_current", "voltage", "discharge_current"):
        w.u8(item[key], key + " state")
    for value in (status1, status2, status3, 0, 0):
        w.u8(value, "status")
    return w.bytes()


# -- 0x47 system parameters, 0x92 / 0x63 management --------------------------------------------


def decode_parameters(info: bytes) -> dict[str, Any]:
    r = Reader(info, "0x47 system parameters")
    r.u8("INFOFLAG")
    out = r.words(PARAMETER_WORDS)
    r.done()
    return out


def encode_parameters(params: SystemParameters) -> bytes:
    w = Writer("0x47 system parameters")
    w.u8(0x00, "INFOFLAG")
    w.words(PARAMETER_WORDS, params.as_dict())
    return w.bytes()


def _decode_management(info: bytes, command: Command, with_command_byte: bool) -> BatteryState:
    words = MANAGEMENT_WORDS if command == Command.MANAGEMENT else SYSTEM_MANAGEMENT_WORDS
    r = Reader(info, f"0x{command:02X} charge/discharge management")
    if with_command_byte:
        r.u8("command value")
    values: dict[str, Any] = r.words(words)
    status = r.u8("status")
    r.done()
    if values["charge_current_a"] < 0:
        raise DecodeError(
            f"0x{command:02X} charge/discharge management: charge_current_a is negative "
            f"({values['charge_current_a']:g} A)"
        )
    values["discharge_current_a"] = abs(values["discharge_current_a"])  # either sign is seen
    flags: dict[str, bool] = {}
    for bit, key in MANAGEMENT_FLAGS[command].items():
        flags[key] = flags.get(key, False) or bool(status >> bit & 1)
    return BatteryState().merged({**values, **flags})


def _encode_management(state: BatteryState, command: Command, command_value: int | None) -> bytes:
    words = MANAGEMENT_WORDS if command == Command.MANAGEMENT else SYSTEM_MANAGEMENT_WORDS
    where = f"0x{command:02X} charge/discharge management"
    w = Writer(where)
    if command_value is not None:
        w.u8(command_value, "command value")
    for key in ("charge_enable", "discharge_enable"):
        required(state, key, where)
    w.words(words, {wd.key: getattr(state, wd.key) for wd in words})
    status = 0
    written: set[str] = set()
    for bit, key in MANAGEMENT_FLAGS[command].items():
        if key not in written and getattr(state, key):
            status |= 1 << bit
            written.add(key)  # force charge: level 1 only
    w.u8(status, "status")
    return w.bytes()


# -- identity commands -------------------------------------------------------------------------


def _version(parts: Sequence[int]) -> str:
    return ".".join(str(p) for p in parts)


def _version_parts(text: str, count: int, what: str) -> list[int]:
    try:
        parts = [int(p) for p in text.split(".")]
    except ValueError:
        parts = []
    if len(parts) != count or not all(0 <= p <= 255 for p in parts):
        raise EncodeError(f"{what}: version {text!r} is not {count} numbers 0-255 joined by '.'")
    return parts


def decode_manufacturer(info: bytes) -> BatteryState:
    r = Reader(info, "0x51 manufacturer info")
    product = r.text(10, "device name")
    firmware = _version(r.take(2, "software version"))
    manufacturer = r.text(20, "manufacturer name")
    r.done()
    return BatteryState(product=product, firmware=firmware, manufacturer=manufacturer)


def encode_manufacturer(identity: Identity) -> bytes:
    w = Writer("0x51 manufacturer info")
    w.text(identity.device_name, 10, "device name")
    for part in identity.software_version:
        w.u8(part, "software version")
    w.text(identity.manufacturer, 20, "manufacturer name")
    return w.bytes()


def decode_serial(info: bytes) -> BatteryState:
    r = Reader(info, "0x93 serial number")
    r.u8("command value")
    serial = r.text(16, "serial number")
    r.done()
    return BatteryState(serial=serial)


def encode_serial(serial: str, command_value: int) -> bytes:
    w = Writer("0x93 serial number")
    w.u8(command_value, "command value")
    w.text(serial, 16, "serial number")
    return w.bytes()


def decode_software_version(info: bytes) -> dict[str, Any]:
    r = Reader(info, "0x96 software version")
    r.u8("command value")
    manufacturer = _version(r.take(2, "manufacturer version"))
    mainline = _version(r.take(3, "main-line version"))
    r.done()
    return {"firmware": mainline, "manufacturer_version": manufacturer}


def encode_software_version(identity: Identity, command_value: int) -> bytes:
    return bytes(
        [command_value, *identity.manufacturer_version, *identity.mainline_version],
    )


def decode_system_basic(info: bytes) -> BatteryState:
    r = Reader(info, "0x60 system basic info")
    product = r.text(10, "device name")
    manufacturer = r.text(20, "manufacturer name")
    firmware = _version(r.take(2, "software version"))
    count = r.u8("module count")
    serials = [r.text(16, f"module {i + 1} serial") for i in range(count)]
    r.done()
    return BatteryState(
        product=product,
        manufacturer=manufacturer,
        firmware=firmware,
        modules=count,
        packs=[BatteryState(serial=s) for s in serials] or None,
    )


def encode_system_basic(identity: Identity, modules: Sequence[BatteryState]) -> bytes:
    w = Writer("0x60 system basic info")
    w.text(identity.device_name, 10, "device name")
    w.text(identity.manufacturer, 20, "manufacturer name")
    for part in identity.software_version:
        w.u8(part, "software version")
    w.u8(len(modules), "module count")
    for n, module in enumerate(modules, 1):
        w.text(module.serial or "", 16, f"module {n} serial")
    return w.bytes()


# -- 0x61 system analog, 0x62 system alarm -----------------------------------------------------


def _id_text(raw: int) -> str:
    """0x61 ids: high byte module (0 on single-module systems), low byte cell, both 1-based."""
    module, cell = raw >> 8, raw & 0xFF
    return str(cell) if module == 0 else f"m{module} c{cell}"


def _id_raw(text: str | None, where: str) -> int:
    if text is None:
        return 0
    try:
        if text.startswith("m") and " c" in text:
            module, cell = (int(p) for p in text[1:].split(" c"))
        else:
            module, cell = 0, int(text)
    except ValueError as exc:
        raise EncodeError(f"{where}: cell id {text!r} is neither 'N' nor 'mM cN'") from exc
    if not (0 <= module <= 255 and 0 <= cell <= 255):
        raise EncodeError(f"{where}: cell id {text!r} does not fit module and cell bytes")
    return module << 8 | cell


def decode_system_analog(info: bytes) -> BatteryState:
    r = Reader(info, "0x61 system analog data")
    v = r.words(SYSTEM_ANALOG_WORDS)
    r.done()
    return BatteryState(
        voltage_v=v["voltage_v"],
        current_a=v["current_a"],
        soc_pct=v["soc_pct"],
        cycles=v["cycles"],
        soh_pct=v["soh_pct"],
        cell_max_v=v["cell_max_v"],
        cell_max_id=_id_text(v["cell_max_id"]),
        cell_min_v=v["cell_min_v"],
        cell_min_id=_id_text(v["cell_min_id"]),
        temperature_c=v["cell_temp_avg"],
        cell_temp_max_c=v["cell_temp_max"],
        cell_temp_min_c=v["cell_temp_min"],
    )


def encode_system_analog(state: BatteryState) -> bytes:
    where = "0x61 system analog data"
    state = with_cell_extremes(state)
    temps = state.temperatures_c or []
    cell_temps = _cell_temperatures(temps)
    t_max = state.cell_temp_max_c if state.cell_temp_max_c is not None else None
    t_min = state.cell_temp_min_c if state.cell_temp_min_c is not None else None
    if t_max is None and cell_temps:
        t_max, t_min = max(cell_temps), min(cell_temps)
    t_avg = state.temperature_c if state.temperature_c is not None else t_max
    board = [temps[0]] if len(temps) > 1 else []
    mosfet = [temps[5]] if len(temps) > 5 else []
    values: dict[str, Any] = {
        "voltage_v": state.voltage_v,
        "current_a": state.current_a,
        "soc_pct": None if state.soc_pct is None else round(state.soc_pct),
        "cycles_avg": state.cycles,
        "cycles": state.cycles,
        "soh_avg": None if state.soh_pct is None else round(state.soh_pct),
        "soh_pct": None if state.soh_pct is None else round(state.soh_pct),
        "cell_max_v": state.cell_max_v,
        "cell_max_id": _id_raw(state.cell_max_id, where),
        "cell_min_v": state.cell_min_v,
        "cell_min_id": _id_raw(state.cell_min_id, where),
        "cell_temp_avg": t_avg,
        "cell_temp_max": t_max,
        "cell_temp_max_id": 0,
        "cell_temp_min": t_min,
        "cell_temp_min_id": 0,
    }
    for group, sensors in (("mosfet", mosfet or cell_temps), ("bms", board or cell_temps)):
        hot = max(sensors) if sensors else t_max
        cold = min(sensors) if sensors else t_min
        values.update(
            {
                f"{group}_temp_avg": None if hot is None or cold is None else (hot + cold) / 2,
                f"{group}_temp_max": hot,
                f"{group}_temp_max_id": 0,
                f"{group}_temp_min": cold,
                f"{group}_temp_min_id": 0,
            }
        )
    w = Writer(where)
    w.words(SYSTEM_ANALOG_WORDS, values)
    return w.bytes()


def decode_system_alarm(info: bytes) -> BatteryState:
    r = Reader(info, "0x62 system alarm/protection")
    raw = [r.u8(name) for name in ("alarm 1", "alarm 2", "protection 1", "protection 2")]
    r.done()
    names: dict[bool, set[str]] = {False: set(), True: set()}
    for (byte, bit), name in SYSTEM_ALARM_BITS.items():
        if raw[byte] >> bit & 1:
            names[byte >= 2].add(name)
    return BatteryState(alarms=sorted(names[True]), warnings=sorted(names[False] - names[True]))


def encode_system_alarm(state: BatteryState) -> bytes:
    alarms = required(state, "alarms", "0x62 system alarm/protection")
    raw = [0, 0, 0, 0]
    for names, protection in ((state.warnings or [], False), (alarms, True)):
        for name in names:
            name = _SYSTEM_ALARM_NEAREST.get(name, name)
            byte, bit = _SYSTEM_ALARM_BIT.get(
                (name, protection),
                (0, 0) if name == "cell_imbalance" else _SYSTEM_ALARM_BIT[("general", protection)],
            )
            raw[byte] |= 1 << bit
    return bytes(raw)


# -- the command table -------------------------------------------------------------------------

Confidence = Literal["document", "implementations", "low"]


@dataclass(frozen=True)
class CommandSpec:
    """One command: its request INFO, how its answer decodes, how well it is known."""

    command: Command
    name: str
    #: INFO of the request: nothing, or one byte naming the module (FF: all modules)
    request_info: Literal["none", "address"]
    decode: Callable[[bytes], Decoded]
    confidence: Confidence = "document"
    all_modules: bool = False  # FF accepted


def _decode_management_92(info: bytes) -> BatteryState:
    return _decode_management(info, Command.MANAGEMENT, True)


def _decode_management_63(info: bytes) -> BatteryState:
    return _decode_management(info, Command.SYSTEM_MANAGEMENT, False)


def _decode_protocol_version(info: bytes) -> dict[str, Any]:
    if info:
        raise DecodeError(f"0x4F protocol version: INFO should be empty, has {len(info)} bytes")
    return {}


COMMANDS: dict[int, CommandSpec] = {
    spec.command: spec
    for spec in (
        CommandSpec(Command.ANALOG, "analog values", "address", decode_analog, all_modules=True),
        CommandSpec(Command.ALARM, "alarm info", "address", decode_alarm),
        CommandSpec(Command.SYSTEM_PARAMETERS, "system parameters", "address", decode_parameters),
        CommandSpec(Command.PROTOCOL_VERSION, "protocol version", "none", _decode_protocol_version),
        CommandSpec(Command.MANUFACTURER_INFO, "manufacturer info", "none", decode_manufacturer),
        CommandSpec(
            Command.MANAGEMENT, "charge/discharge management", "address", _decode_management_92
        ),
        CommandSpec(Command.SERIAL_NUMBER, "serial number", "address", decode_serial),
        CommandSpec(
            Command.SOFTWARE_VERSION, "software version", "address", decode_software_version
        ),
        CommandSpec(
            Command.SYSTEM_BASIC, "system basic info", "none", decode_system_basic, confidence="low"
        ),
        CommandSpec(
            Command.SYSTEM_ANALOG,
            "system analog data",
            "none",
            decode_system_analog,
            confidence="implementations",
        ),
        CommandSpec(
            Command.SYSTEM_ALARM,
            "system alarm/protection",
            "none",
            decode_system_alarm,
            confidence="low",
        ),
        CommandSpec(
            Command.SYSTEM_MANAGEMENT,
            "system charge/discharge management",
            "none",
            _decode_management_63,
            confidence="implementations",
        ),
    )
}


def command_spec(cid2: int) -> CommandSpec:
    spec = COMMANDS.get(cid2)
    if spec is None:
        known = ", ".join(f"{c:02X}" for c in sorted(COMMANDS))
        raise DecodeError(f"unknown command {cid2:02X} (known: {known})")
    return spec


# -- requests and answers as frames ------------------------------------------------------------


def request(command: int, adr: int, module: int | None = None, ver: int = VER) -> AsciiFrame:
    """The request an inverter sends; ``module`` defaults to ``adr`` (FF: all modules)."""
    spec = command_spec(command)
    info = b"" if spec.request_info == "none" else bytes([adr if module is None else module])
    return AsciiFrame(ver, adr, CID1_BATTERY, int(command), info)


def decode_request(frame: AsciiFrame) -> dict[str, Any]:
    """The contract's request form: ver, adr, cid1, cid2 and INFO as hex."""
    return {
        "ver": f"{frame.ver:02X}",
        "adr": f"{frame.adr:02X}",
        "cid1": f"{frame.cid1:02X}",
        "cid2": f"{frame.cid2:02X}",
        "info": frame.info.hex().upper(),
    }


def decode_response(frame: AsciiFrame, command: int) -> Decoded:
    """An answer to ``command``; ResponseError when the battery returned an error code."""
    spec = command_spec(command)
    if frame.cid1 != CID1_BATTERY:
        raise DecodeError(f"CID1 is {frame.cid1:02X}, a battery answer has 46")
    if frame.cid2 != Rtn.NORMAL:
        raise ResponseError(frame.cid2, command)
    decoded = spec.decode(frame.info)
    if spec.command == Command.PROTOCOL_VERSION:
        return {"protocol_version": f"{frame.ver >> 4}.{frame.ver & 0xF}"}
    return decoded


def answer_frame(request_frame: AsciiFrame, info: bytes, identity: Identity) -> AsciiFrame:
    """A normal answer to ``request_frame``: same address, RTN 00."""
    return AsciiFrame(identity.protocol_version, request_frame.adr, CID1_BATTERY, Rtn.NORMAL, info)


def error_frame(adr: int, rtn: Rtn, identity: Identity) -> AsciiFrame:
    return AsciiFrame(identity.protocol_version, adr, CID1_BATTERY, rtn, b"")


@dataclass(frozen=True)
class Answerer:
    """Builds the INFO of an answer for one command from the module states (pure)."""

    identity: Identity
    parameters: SystemParameters | None

    def info(self, command: Command, value: int, modules: Sequence[BatteryState]) -> bytes:
        """``value`` is the request's module byte (or the count for FF); ``modules`` the
        states to answer for, in address order (one unless FF was asked)."""
        first = modules[0]
        if command == Command.ANALOG:
            return encode_analog(modules, value)
        if command == Command.ALARM:
            return encode_alarm(first, value)
        if command == Command.SYSTEM_PARAMETERS:
            if self.parameters is None:
                raise EncodeError("0x47 system parameters: none configured")
            return encode_parameters(self.parameters)
        if command == Command.PROTOCOL_VERSION:
            return b""
        if command == Command.MANUFACTURER_INFO:
            return encode_manufacturer(self.identity)
        if command == Command.MANAGEMENT:
            return _encode_management(first, Command.MANAGEMENT, value)
        if command == Command.SERIAL_NUMBER:
            return encode_serial(required(first, "serial", "0x93 serial number"), value)
        if command == Command.SOFTWARE_VERSION:
            return encode_software_version(self.identity, value)
        if command == Command.SYSTEM_BASIC:
            return encode_system_basic(self.identity, modules)
        if command == Command.SYSTEM_ANALOG:
            return encode_system_analog(first)
        if command == Command.SYSTEM_ALARM:
            return encode_system_alarm(first)
        if command == Command.SYSTEM_MANAGEMENT:
            return _encode_management(first, Command.SYSTEM_MANAGEMENT, None)
        raise EncodeError(f"command {command:02X} has no answer")  # pragma: no cover
