"""Seplos V3 BMS over Modbus RTU: the register map as data, with pure encode and decode.

A Seplos V3 pack ("XZH BMS Modbus-RTU protocol", 19200 8N1) answers function
04 for the register blocks PIA, PIB and SPA and function 01 for the coil block
PIC. bmslink reads real packs with this map and serves a BatteryState to hosts
that poll a Seplos V3 (serialbattery, esphome-seplos-bms), so one table drives
both directions. Facts: shared/reference/bms-protocols.md §4b and
inverter-protocols.md §6.

Choices where the sources are silent or disagree:

- Temperatures are 0.1 K. The raw offset of 0 °C is 2731.5 here, as
  esphome-seplos-bms uses; serialbattery uses raw/10 - 273.0 (an offset of
  2730). ``kelvin_offset_raw`` selects it on both encode and decode.
- Raw 0 in a temperature or SOH register means "absent" both ways: 0 K and a
  health of 0 % are not readings. An unused sensor on a real pack reads about
  2731, which decodes to about 0 °C and is kept: 0 °C is a plausible reading.
- Registers whose meaning is unknown are served as 0 and listed in
  :data:`RESERVED`; 0x1004 (total discharged, 10 Ah) is 0 because bmslink
  keeps no Ah counter, and it is never decoded.
- Current limits are whole amps rounded down, so a host never gets more than
  the state allows; a negative limit is refused.
- An alarm or warning without a coil at its level (``contactor``,
  ``bms_internal``, ``general``, a ``short_circuit`` warning, a
  ``cell_imbalance`` alarm) is refused: serving the state would hide it.
- ``cells_v`` is required besides the limits and measurements: the cell
  count, the cells and the average cell voltage (0x1008) cannot be honest
  without it. Cell extremes and the cell temperature registers are derived
  from the cells and cell sensors when the state lacks them.
- ``temperatures_c`` is read in Seplos order: up to four cell sensors, then
  environment, then power (2-6 values); other lengths are refused.
- Without ``charge_enable``/``discharge_enable`` a FET coil reads "on" while
  the matching current limit is above 0. Cycles unknown are sent as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from bmslink.bank import cell_extremes
from bmslink.bms.base import (
    BmsProtocol,
    Conversation,
    Framer,
    Request,
    StateSource,
    modbus_addressed,
)
from bmslink.bms.framing import modbus_reply_framer, modbus_request_framer
from bmslink.bms.modbus_rtu import EXCEPTION_NAMES as MODBUS_EXCEPTION_NAMES
from bmslink.bms.modbus_rtu import (
    ModbusException,
    ReadRequest,
    build_bit_reply,
    build_exception_reply,
    build_read_request,
    build_register_reply,
    check_crc,
    parse_bit_reply,
    parse_read_request,
    parse_register_reply,
)
from bmslink.errors import DecodeError, EncodeError
from bmslink.scaling import decimal_places, round_raw
from bmslink.state import ALARM_NAMES, FIELD_NAMES, STATE_KEYS, BatteryState

#: Raw value of 0 °C in the 0.1 K registers (esphome-seplos-bms); serialbattery's is 2730.
KELVIN_OFFSET_RAW = 2731.5
SERIALBATTERY_KELVIN_OFFSET_RAW = 2730.0

#: Modbus exception codes with the one Seplos adds for its history block.
EXCEPTION_NAMES: dict[int, str] = {**MODBUS_EXCEPTION_NAMES, 0x81: "no history record"}

MAX_CELLS = 16
Level = Literal["alarm", "warning"]
Derive = Callable[[BatteryState], float | None]


@dataclass(frozen=True)
class Block:
    """A block of registers (function 04) or coils (function 01) read in one request."""

    name: str
    function: int
    start: int
    count: int
    doc: str = ""

    @property
    def end(self) -> int:
        return self.start + self.count


PIA = Block("PIA", 0x04, 0x1000, 18, "pack values and current limits")
PIB = Block("PIB", 0x04, 0x1100, 26, "cell voltages and temperatures")
PIC = Block("PIC", 0x01, 0x1200, 0x90, "alarm, protection and FET state bits")
SPA = Block("SPA", 0x04, 0x1300, 0x6A, "settings: only the cell count and capacity are known")
BLOCKS: tuple[Block, ...] = (PIA, PIB, PIC, SPA)
REGISTER_BLOCKS: tuple[Block, ...] = (PIA, PIB, SPA)
#: PIA as documented has 17 registers (esphome reads 17); serialbattery reads 18.
PIA_COUNTS = (17, 18)


@dataclass(frozen=True)
class RegisterField:
    """One 16-bit register: physical = raw * scale (or (raw - offset) / 10 for 0.1 K).

    ``key`` is a BatteryState key, or a name of a value the state has no key for
    (sent from ``derive`` or ``send``, never decoded).
    """

    address: int
    key: str
    scale: float = 1.0
    signed: bool = False
    kelvin: bool = False
    unit: str = ""
    integer: bool = False  # the state value is an int (cycles)
    #: Limits round down (never more than allowed); measurements to the nearest step.
    rounding: Literal["nearest", "down"] = "nearest"
    #: Raw 0 is no possible reading: an absent value is sent as 0 and 0 decodes as absent.
    zero_is_absent: bool = False
    low: float | None = None  # physical bounds tighter than the register's own
    high: float | None = None
    derive: Derive | None = None  # the value to send when the state lacks the key
    send: int = 0  # raw value sent when there is no value at all (optional keys)
    doc: str = ""

    @property
    def raw_range(self) -> tuple[int, int]:
        low = -0x8000 if self.signed else 0
        high = 0x7FFF if self.signed else 0xFFFF
        return (max(low, 1) if self.zero_is_absent else low), high


# -- derived values -------------------------------------------------------------------------------


def _cells(state: BatteryState) -> list[float]:
    return state.cells_v or []


def _split_temperatures(state: BatteryState) -> tuple[list[float], float | None, float | None]:
    """(cell sensors, environment, power) of ``temperatures_c`` in Seplos order.

    Seplos lists up to four cell sensors, then environment, then power (MOSFET):
    a state's list is read the same way, the last two being environment and power.
    """
    temps = state.temperatures_c
    if not temps:
        return [], None, None
    if not 2 <= len(temps) <= 6:
        raise EncodeError(
            f"temperatures_c: Seplos V3 sends 0-4 cell sensors, then environment and power "
            f"(2-6 values), got {len(temps)}"
        )
    return list(temps[:-2]), temps[-2], temps[-1]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _cell_temps(state: BatteryState) -> list[float]:
    return _split_temperatures(state)[0]


# -- the map --------------------------------------------------------------------------------------


def _kelvin(address: int, key: str, doc: str, derive: Derive | None = None) -> RegisterField:
    return RegisterField(
        address, key, 0.1, kelvin=True, unit="°C", zero_is_absent=True, derive=derive, doc=doc
    )


PIA_FIELDS: tuple[RegisterField, ...] = (
    RegisterField(0x1000, "voltage_v", 0.01, unit="V", doc="pack voltage"),
    RegisterField(0x1001, "current_a", 0.01, signed=True, unit="A", doc="+ = charging"),
    RegisterField(0x1002, "remaining_ah", 0.01, unit="Ah", doc="remaining capacity"),
    RegisterField(0x1003, "capacity_ah", 0.01, unit="Ah", doc="total (full) capacity"),
    RegisterField(
        0x1004, "total_discharged_ah", 10, unit="Ah", doc="sent as 0: bmslink keeps no Ah counter"
    ),
    RegisterField(0x1005, "soc_pct", 0.1, unit="%", high=100, doc="state of charge"),
    RegisterField(0x1006, "soh_pct", 0.1, unit="%", high=100, zero_is_absent=True, doc="health"),
    RegisterField(0x1007, "cycles", integer=True, doc="required: no value means unknown"),
    RegisterField(
        0x1008,
        "average_cell_v",
        0.001,
        unit="V",
        zero_is_absent=True,
        derive=lambda s: _mean(_cells(s)),
        doc="mean of cells_v; not decoded",
    ),
    _kelvin(0x1009, "temperature_c", "average cell temperature", lambda s: _mean(_cell_temps(s))),
    RegisterField(
        0x100A,
        "cell_max_v",
        0.001,
        unit="V",
        zero_is_absent=True,
        derive=lambda s: max(_cells(s), default=None),
    ),
    RegisterField(
        0x100B,
        "cell_min_v",
        0.001,
        unit="V",
        zero_is_absent=True,
        derive=lambda s: min(_cells(s), default=None),
    ),
    _kelvin(0x100C, "cell_temp_max_c", "", lambda s: max(_cell_temps(s), default=None)),
    _kelvin(0x100D, "cell_temp_min_c", "", lambda s: min(_cell_temps(s), default=None)),
    RegisterField(0x100F, "discharge_current_a", unit="A", rounding="down", doc="limit"),
    RegisterField(0x1010, "charge_current_a", unit="A", rounding="down", doc="limit"),
)

#: Cells 1-16 in mV from 0x1100; a cell the pack does not have reads 0.
CELLS_START = 0x1100
#: Temperature sensors in PIB, in the order ``temperatures_c`` lists them.
CELL_TEMPERATURES = (0x1110, 0x1111, 0x1112, 0x1113)
ENVIRONMENT_TEMPERATURE = 0x1118
POWER_TEMPERATURE = 0x1119  # MOSFET

SPA_CELL_COUNT = 0x1301
SPA_FIELDS: tuple[RegisterField, ...] = (
    RegisterField(
        0x1359,
        "installed_capacity_ah",
        0.01,
        unit="Ah",
        zero_is_absent=True,
        derive=lambda s: s.capacity_ah,
        doc="capacity setting; capacity_ah when the state has no installed capacity",
    ),
)

#: Registers served as 0 because their meaning is not known (first, last, note).
RESERVED: tuple[tuple[int, int, str], ...] = (
    (0x100E, 0x100E, "PIA: undocumented"),
    (0x1011, 0x1011, "PIA: read by serialbattery, meaning unknown"),
    (0x1114, 0x1117, "PIB: reserved"),
    (0x1300, 0x1300, "SPA: settings of unknown meaning"),
    (0x1302, 0x1358, "SPA: settings of unknown meaning"),
    (0x135A, 0x1369, "SPA: settings of unknown meaning"),
)

REQUIRED_KEYS: tuple[tuple[str, str], ...] = (
    ("voltage_v", "register 0x1000"),
    ("current_a", "register 0x1001"),
    ("remaining_ah", "register 0x1002"),
    ("capacity_ah", "register 0x1003"),
    ("soc_pct", "register 0x1005"),
    ("cycles", "register 0x1007 has no 'unknown' value"),
    ("discharge_current_a", "register 0x100F"),
    ("charge_current_a", "register 0x1010"),
    ("cells_v", "cells, cell count and average cell voltage 0x1008"),
    ("alarms", "coils: an unknown alarm state is not served as 'no alarm'"),
)


@dataclass(frozen=True)
class AlarmCoil:
    """A PIC coil that reports one contract alarm name at one level."""

    coil: int
    name: str
    level: Level
    doc: str = ""


@dataclass(frozen=True)
class FlagCoil:
    """A PIC coil that is a boolean state key; ``derive`` sends it when the state lacks it."""

    coil: int
    key: str
    derive: Callable[[BatteryState], bool]
    doc: str = ""


#: Encoding sets the first coil listed for a name at its level: the cell-level
#: voltage coils (TB02 bits 0-3), the first protection level (not 2nd-level OCP).
ALARM_COILS: tuple[AlarmCoil, ...] = (
    AlarmCoil(0x1248, "high_voltage", "warning", "TB02.0 cell high voltage alarm"),
    AlarmCoil(0x1249, "high_voltage", "alarm", "TB02.1 cell over-voltage protection"),
    AlarmCoil(0x124A, "low_voltage", "warning", "TB02.2 cell low voltage alarm"),
    AlarmCoil(0x124B, "low_voltage", "alarm", "TB02.3 cell under-voltage protection"),
    AlarmCoil(0x124C, "high_voltage", "warning", "TB02.4 pack high voltage alarm"),
    AlarmCoil(0x124D, "high_voltage", "alarm", "TB02.5 pack over-voltage protection"),
    AlarmCoil(0x124E, "low_voltage", "warning", "TB02.6 pack low voltage alarm"),
    AlarmCoil(0x124F, "low_voltage", "alarm", "TB02.7 pack under-voltage protection"),
    AlarmCoil(0x1250, "high_temperature_charge", "warning", "TB03.0 charge high temp alarm"),
    AlarmCoil(0x1251, "high_temperature_charge", "alarm", "TB03.1 charge over-temp protection"),
    AlarmCoil(0x1252, "low_temperature_charge", "warning", "TB03.2 charge low temp alarm"),
    AlarmCoil(0x1253, "low_temperature_charge", "alarm", "TB03.3 charge under-temp protection"),
    AlarmCoil(0x1254, "high_temperature", "warning", "TB03.4 discharge high temp alarm"),
    AlarmCoil(0x1255, "high_temperature", "alarm", "TB03.5 discharge over-temp protection"),
    AlarmCoil(0x1256, "low_temperature", "warning", "TB03.6 discharge low temp alarm"),
    AlarmCoil(0x1257, "low_temperature", "alarm", "TB03.7 discharge under-temp protection"),
    AlarmCoil(0x1260, "high_charge_current", "warning", "TB05.0 charge current alarm"),
    AlarmCoil(0x1261, "high_charge_current", "alarm", "TB05.1 charge over-current protection"),
    AlarmCoil(0x1262, "high_charge_current", "alarm", "TB05.2 charge 2nd-level OCP"),
    AlarmCoil(0x1263, "high_discharge_current", "warning", "TB05.3 discharge current alarm"),
    AlarmCoil(0x1264, "high_discharge_current", "alarm", "TB05.4 discharge OCP"),
    AlarmCoil(0x1265, "high_discharge_current", "alarm", "TB05.5 discharge 2nd-level OCP"),
    AlarmCoil(0x1266, "short_circuit", "alarm", "TB05.6 output short circuit"),
    AlarmCoil(0x1274, "cell_imbalance", "warning", "TB06.4 cell voltage difference alarm"),
)

FLAG_COILS: tuple[FlagCoil, ...] = (
    FlagCoil(
        0x1278,
        "discharge_enable",
        lambda s: bool(s.discharge_current_a),
        "TB07.0 discharge FET on; without discharge_enable: on while the DCL is above 0",
    ),
    FlagCoil(
        0x1279,
        "charge_enable",
        lambda s: bool(s.charge_current_a),
        "TB07.1 charge FET on; without charge_enable: on while the CCL is above 0",
    ),
)

#: Per-cell voltage alarm coils: cell n at base + n - 1 (8 coils per group, cells 1-16).
#: A high_voltage (low_voltage) alarm or warning sets the coil of the highest (lowest)
#: cell, the cell a cell-level alarm is about. Decoding ignores these coils.
CELL_LOW_VOLTAGE_COILS = 0x1200
CELL_HIGH_VOLTAGE_COILS = 0x1210
#: Known but not served (always 0): cell temperature alarms 0x1220-0x122F, balancing
#: 0x1230-0x123F, system state TB09 0x1240, environment/power temperature TB04 0x1258,
#: latch-ups TB16 0x1268, SoC alarm/protection TB06.2/.3, TB07.2-.3 (current limit,
#: heating), battery state TB08 0x1280, hard faults TB15 0x1288.

_COIL_FOR: dict[tuple[str, Level], int] = {}
for _c in ALARM_COILS:
    _COIL_FOR.setdefault((_c.name, _c.level), _c.coil)
#: (name, level) pairs the map can express, in contract order.
EXPRESSIBLE: dict[Level, tuple[str, ...]] = {
    level: tuple(n for n in ALARM_NAMES if (n, level) in _COIL_FOR)
    for level in ("alarm", "warning")
}


@dataclass(frozen=True)
class SeplosImage:
    """Everything a Seplos V3 serves: registers by block start, and the PIC coils."""

    registers: dict[int, tuple[int, ...]]  # PIA, PIB and SPA by start address
    coils: tuple[bool, ...]  # PIC, coil 0x1200 first

    @property
    def pia(self) -> tuple[int, ...]:
        return self.registers[PIA.start]

    @property
    def pib(self) -> tuple[int, ...]:
        return self.registers[PIB.start]

    @property
    def spa(self) -> tuple[int, ...]:
        return self.registers[SPA.start]


# -- encode ---------------------------------------------------------------------------------------


def _physical(f: RegisterField, raw: int, offset: float) -> float:
    if f.kelvin:
        return round((raw - offset) / 10, max(1, decimal_places(offset / 10)))
    return round(raw * f.scale, decimal_places(f.scale))


def _range_text(f: RegisterField, offset: float) -> str:
    low_raw, high_raw = f.raw_range
    low, high = _physical(f, low_raw, offset), _physical(f, high_raw, offset)
    if f.low is not None:
        low = max(low, f.low)
    if f.high is not None:
        high = min(high, f.high)
    return f"{low:g}..{high:g} {f.unit}".rstrip()


def _raw(f: RegisterField, value: float, offset: float) -> int:
    """The register value for ``value``; EncodeError naming the key and the range."""
    where = f"register 0x{f.address:04X}"
    unit = f" {f.unit}" if f.unit else ""
    if not math.isfinite(value):
        raise EncodeError(f"{f.key} = {value} is not a number ({where})")
    if f.rounding == "down" and value < 0:
        raise EncodeError(f"{f.key} = {value:g}{unit} is negative: a limit must be >= 0")
    exact = value * 10 + offset if f.kelvin else value / f.scale
    raw = round_raw(exact, f.rounding)
    low, high = f.raw_range
    out_of_bounds = (f.low is not None and value < f.low) or (f.high is not None and value > f.high)
    if out_of_bounds or not low <= raw <= high:
        raise EncodeError(
            f"{f.key} = {value:g}{unit} is outside {_range_text(f, offset)} ({where})"
        )
    return raw & 0xFFFF


def _value(f: RegisterField, state: BatteryState) -> float | None:
    """The state's value for a field, or the derived one when the state lacks it."""
    value = getattr(state, f.key) if f.key in STATE_KEYS else None
    if value is None and f.derive is not None:
        value = f.derive(state)
    return None if value is None else float(value)


def _encode_field(f: RegisterField, state: BatteryState, offset: float) -> int:
    value = _value(f, state)
    return f.send if value is None else _raw(f, value, offset)


#: (minimum, maximum) register pairs: a minimum above its maximum is refused.
_ORDERED = ((0x100B, 0x100A), (0x100D, 0x100C))


def _check_order(state: BatteryState) -> None:
    by_address = {f.address: f for f in PIA_FIELDS}
    for low_address, high_address in _ORDERED:
        low, high = by_address[low_address], by_address[high_address]
        a, b = _value(low, state), _value(high, state)
        if a is not None and b is not None and a > b:
            raise EncodeError(
                f"{low.key} = {a:g} {low.unit} is above {high.key} = {b:g} {high.unit}"
            )


def _encode_coils(state: BatteryState, cells: list[float]) -> tuple[bool, ...]:
    coils = [False] * PIC.count
    active: dict[Level, list[str]] = {"alarm": state.alarms or [], "warning": state.warnings or []}
    for level, names in active.items():
        for name in names:
            coil = _COIL_FOR.get((name, level))
            if coil is None:
                can = ", ".join(EXPRESSIBLE[level])
                raise EncodeError(
                    f"{level} {name!r} has no Seplos V3 coil; refusing to serve a state that "
                    f"would hide it ({level}s it can carry: {can})"
                )
            coils[coil - PIC.start] = True
    any_level = {*active["alarm"], *active["warning"]}
    if "high_voltage" in any_level:
        coils[CELL_HIGH_VOLTAGE_COILS - PIC.start + cells.index(max(cells))] = True
    if "low_voltage" in any_level:
        coils[CELL_LOW_VOLTAGE_COILS - PIC.start + cells.index(min(cells))] = True
    for flag in FLAG_COILS:
        value = getattr(state, flag.key)
        coils[flag.coil - PIC.start] = flag.derive(state) if value is None else bool(value)
    return tuple(coils)


def encode(state: BatteryState, *, kelvin_offset_raw: float = KELVIN_OFFSET_RAW) -> SeplosImage:
    """Every register and coil a Seplos V3 serves for ``state``.

    Raises EncodeError naming the key for a missing required value, a value out
    of its register's range, or an alarm the coils cannot carry.
    """
    for key, why in REQUIRED_KEYS:
        if getattr(state, key) is None:
            raise EncodeError(f"missing {key}: Seplos V3 needs it ({why})")
    cells = list(_cells(state))
    if not 1 <= len(cells) <= MAX_CELLS:
        raise EncodeError(f"cells_v: Seplos V3 carries 1..{MAX_CELLS} cells, got {len(cells)}")
    cell_temps, environment, power = _split_temperatures(state)
    offset = kelvin_offset_raw

    pib = [0] * PIB.count
    for index, volts in enumerate(cells):
        cell = RegisterField(
            CELLS_START + index, f"cells_v[{index}]", 0.001, unit="V", zero_is_absent=True
        )
        pib[index] = _raw(cell, volts, offset)

    _check_order(state)
    pia = [0] * PIA.count
    for f in PIA_FIELDS:
        pia[f.address - PIA.start] = _encode_field(f, state, offset)
    sensors: list[tuple[int, float | None]] = list(zip(CELL_TEMPERATURES, cell_temps, strict=False))
    sensors += [(ENVIRONMENT_TEMPERATURE, environment), (POWER_TEMPERATURE, power)]
    for index, (address, celsius) in enumerate(sensors):
        if celsius is not None:
            f = _kelvin(address, f"temperatures_c[{index}]", "")
            pib[address - PIB.start] = _raw(f, celsius, offset)

    spa = [0] * SPA.count
    spa[SPA_CELL_COUNT - SPA.start] = len(cells)
    for f in SPA_FIELDS:
        spa[f.address - SPA.start] = _encode_field(f, state, offset)

    return SeplosImage(
        {PIA.start: tuple(pia), PIB.start: tuple(pib), SPA.start: tuple(spa)},
        _encode_coils(state, cells),
    )


# -- decode ---------------------------------------------------------------------------------------


def _check_block(block: Block, values: Sequence[int], counts: tuple[int, ...]) -> list[int]:
    if len(values) not in counts:
        expected = " or ".join(str(c) for c in counts)
        raise DecodeError(f"{block.name}: expected {expected} registers, got {len(values)}")
    out = []
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise DecodeError(
                f"{block.name}: register 0x{block.start + index:04X} value {value!r} "
                "is not a 16-bit register"
            )
        out.append(value)
    return out


def _decode_field(f: RegisterField, raw: int, offset: float) -> float | int | None:
    if f.signed and raw >= 0x8000:
        raw -= 0x10000
    if f.zero_is_absent and raw == 0:
        return None
    if f.integer:
        return raw
    return _physical(f, raw, offset)


def _cell_id(cells: list[float], value: float) -> str:
    return str(cells.index(value) + 1)


def decode(
    pia: Sequence[int],
    pib: Sequence[int] | None = None,
    pic: Sequence[bool] | None = None,
    spa: Sequence[int] | None = None,
    *,
    kelvin_offset_raw: float = KELVIN_OFFSET_RAW,
) -> BatteryState:
    """A state from the blocks read; only keys the given blocks carry are set.

    ``pia`` has 17 or 18 registers, ``pib`` 26, ``pic`` 0x90 coils and ``spa``
    0x6A registers; anything else raises DecodeError naming the block.
    """
    offset = kelvin_offset_raw
    values: dict[str, Any] = {}
    regs = _check_block(PIA, pia, PIA_COUNTS)
    for f in PIA_FIELDS:
        index = f.address - PIA.start
        if f.key in STATE_KEYS and index < len(regs):
            value = _decode_field(f, regs[index], offset)
            if value is not None:
                values[f.key] = value

    cell_count: int | None = None
    if spa is not None:
        settings = _check_block(SPA, spa, (SPA.count,))
        cell_count = settings[SPA_CELL_COUNT - SPA.start]
        if not 1 <= cell_count <= MAX_CELLS:
            raise DecodeError(
                f"SPA: cell count (register 0x{SPA_CELL_COUNT:04X}) is {cell_count}, "
                f"expected 1..{MAX_CELLS}"
            )
        for f in SPA_FIELDS:
            value = _decode_field(f, settings[f.address - SPA.start], offset)
            if value is not None:
                values[f.key] = value

    if pib is not None:
        info = _check_block(PIB, pib, (PIB.count,))
        raw_cells = info[:MAX_CELLS]
        if cell_count is None:
            cell_count = next((i for i, mv in enumerate(raw_cells) if mv == 0), MAX_CELLS)
        cells = [mv / 1000 for mv in raw_cells[:cell_count]]
        if cells:
            values["cells_v"] = cells
            values["cell_max_id"] = _cell_id(cells, max(cells))
            values["cell_min_id"] = _cell_id(cells, min(cells))
        temps = []
        for address in (*CELL_TEMPERATURES, ENVIRONMENT_TEMPERATURE, POWER_TEMPERATURE):
            f = _kelvin(address, "temperatures_c", "")
            celsius = _decode_field(f, info[address - PIB.start], offset)
            if celsius is not None:
                temps.append(float(celsius))
        if temps:
            values["temperatures_c"] = temps

    if pic is not None:
        if len(pic) != PIC.count:
            raise DecodeError(f"{PIC.name}: expected {PIC.count} coils, got {len(pic)}")
        seen: dict[Level, set[str]] = {"alarm": set(), "warning": set()}
        for coil in ALARM_COILS:
            if pic[coil.coil - PIC.start]:
                seen[coil.level].add(coil.name)
        values["alarms"] = sorted(seen["alarm"])
        values["warnings"] = sorted(seen["warning"] - seen["alarm"])
        for flag in FLAG_COILS:
            values[flag.key] = bool(pic[flag.coil - PIC.start])

    return BatteryState(**values)


# -- the BmsProtocol adapter ----------------------------------------------------------------------

READ_COILS = 0x01
READ_INPUT_REGISTERS = 0x04
#: Register counts a read of each block may ask for (PIA: 17 documented, 18 by serialbattery).
BLOCK_COUNTS: dict[str, tuple[int, ...]] = {
    block.name: PIA_COUNTS if block is PIA else (block.count,) for block in BLOCKS
}


def _data_bytes(block: Block, count: int) -> int:
    return (count + 7) // 8 if block.function == READ_COILS else 2 * count


#: (function, byte count) -> block: every block's reply size is distinct, so a reply
#: without its request is still recognised.
BLOCK_BY_REPLY_SIZE: dict[tuple[int, int], Block] = {
    (block.function, _data_bytes(block, count)): block
    for block in BLOCKS
    for count in BLOCK_COUNTS[block.name]
}
#: State keys decoded from PIA, left out when a decode has no PIA.
PIA_KEYS: frozenset[str] = frozenset(f.key for f in PIA_FIELDS if f.key in STATE_KEYS)


@dataclass(frozen=True)
class _PendingRead:
    """The read request the next reply answers, and the block it reads (None: not mapped)."""

    request: ReadRequest
    block: Block | None


def _request_block(request: ReadRequest) -> Block | None:
    """The block a read asks for; DecodeError for a block start read with a wrong count."""
    for block in BLOCKS:
        if block.function == request.function and block.start == request.address:
            counts = BLOCK_COUNTS[block.name]
            if request.count not in counts:
                allowed = " or ".join(str(c) for c in counts)
                raise DecodeError(
                    f"a read of {block.name} (0x{block.start:04X}) asks for {request.count} "
                    f"{'coils' if block.function == READ_COILS else 'registers'}, "
                    f"bmslink decodes whole blocks ({allowed})"
                )
            return block
    return None


class SeplosV3Protocol(BmsProtocol):
    """Seplos V3 over Modbus RTU: the register map above behind the BmsProtocol interface.

    Choices (besides the map's own, in the module docstring):

    - One poll cycle reads PIA (04, 18 registers, as serialbattery and
      links/modbus.py), PIB (04), PIC (01) and SPA (04). SPA is read every
      cycle, not once: its cell count is what keeps a cell that reads 0 mV in
      ``cells_v`` (without it the count is inferred from the first 0 mV cell,
      and a dead cell would vanish from the list). Seplos V3 has no identity
      block in the reference (VIA 0x1700 is unmapped), so ``identity`` adds
      no request.
    - A reply is matched to the read request before it; a reply without one
      is recognised by function and byte count (all five block sizes differ).
      Reads that do not start at a block (SFA, SCA, VIA, EMS, history) are
      checked (CRC, length) and ignored; a read at a block start with a count
      other than the block's is a DecodeError (bmslink decodes whole blocks).
    - Without PIA, the other blocks still decode (``decode`` is given a zero
      PIA and every key PIA carries is dropped), so a capture of PIB alone
      yields its cells. ``cell_min_v`` / ``cell_max_v`` come from PIA
      (0x100A/0x100B) and, when PIA lacks them, from the cells.
    - Addresses 0x00-0x7F (the reference; serialbattery talks to a single pack
      at 0, its default). Replies are accepted from the polled slave only; an
      exception reply (Seplos adds 0x81 "no history record") is a DecodeError
      that names it.
    - ``kelvin_offset_raw`` None is the map's :data:`KELVIN_OFFSET_RAW`.
    - The simulated device answers reads of any start and count inside PIA,
      PIB, SPA (04) and PIC (01) from ``encode(state)``; a read outside them
      gets exception 02 (illegal data address), another function exception 01
      (illegal function: the device is read-only), a count outside 1..125 /
      1..2000 exception 03; other slaves, silence.
    """

    name: ClassVar[str] = "seplos-v3"
    title: ClassVar[str] = "Seplos V3 (Modbus RTU)"
    baudrate: ClassVar[int] = 19200
    default_address: ClassVar[int] = 0
    addresses: ClassVar[range] = range(0x00, 0x80)
    keys: ClassVar[frozenset[str]] = frozenset(
        {
            # PIA (SoH, temperatures and cell extremes can read 0 = absent)
            "voltage_v",
            "current_a",
            "remaining_ah",
            "capacity_ah",
            "soc_pct",
            "cycles",
            "discharge_current_a",
            "charge_current_a",
            # PIB with the SPA cell count (1..16)
            "cells_v",
            "cell_min_v",
            "cell_max_v",
            "cell_min_id",
            "cell_max_id",
            # PIC
            "alarms",
            "warnings",
            "charge_enable",
            "discharge_enable",
        }
    )
    CYCLE: ClassVar[tuple[Block, ...]] = (PIA, PIB, PIC, SPA)

    @property
    def kelvin_offset_raw(self) -> float:
        offset = self.options.kelvin_offset_raw
        return KELVIN_OFFSET_RAW if offset is None else offset

    # -- host side -------------------------------------------------------------------------------

    def reply_framer(self) -> Framer:
        return modbus_reply_framer()

    def conversation(self, address: int, *, identity: bool) -> Conversation:
        self.check_address(address)
        prefix = bytes((address,))  # the slave byte: exception replies reach decode
        for block in self.CYCLE:
            data = build_read_request(address, block.function, block.start, block.count)
            what = (
                f"{block.name} (function {block.function:02X}, "
                f"0x{block.start:04X}-0x{block.end - 1:04X}: {block.doc})"
            )
            yield Request(data, what, reply_prefix=prefix)

    def _decode(self, frames: Sequence[bytes]) -> BatteryState:
        found: dict[str, tuple[list[int], int]] = {}  # block name -> (values, frame index)
        pending: _PendingRead | None = None
        for index, raw in enumerate(frames, 1):
            try:
                pending = self._take(bytes(raw), pending, found, index)
            except DecodeError as exc:
                raise DecodeError(f"frame {index}: {exc}") from exc
        return self._state(found)

    @staticmethod
    def _take(
        frame: bytes,
        pending: _PendingRead | None,
        found: dict[str, tuple[list[int], int]],
        index: int,
    ) -> _PendingRead | None:
        """Take one frame; returns the request the next reply answers."""
        if len(frame) < 4:
            raise DecodeError(f"{len(frame)} bytes is too short for a Modbus RTU frame")
        function = frame[1]
        if function & 0x80:
            if len(frame) != 5:
                raise DecodeError(
                    f"exception reply (function byte {function:02X}) is 5 bytes, got {len(frame)}"
                )
            check_crc(frame)
            raise ModbusException(frame[0], function & 0x7F, frame[2], EXCEPTION_NAMES)
        if function not in (READ_COILS, READ_INPUT_REGISTERS):
            raise DecodeError(
                f"function {function:02X} is not a Seplos V3 read "
                "(01 read coils, 04 read input registers)"
            )
        if len(frame) == 8 and frame[2] + 5 != 8:  # a request; a reply is 5 + its byte count
            request = parse_read_request(frame)
            return _PendingRead(request, _request_block(request))
        block: Block | None
        if pending is not None:
            request = pending.request
            if frame[0] != request.slave:
                check_crc(frame)
                raise DecodeError(
                    f"reply from slave {frame[0]} to a request to slave {request.slave}"
                )
            values = _reply_values(frame, request.function, request.count)
            block = pending.block
        else:
            values = _reply_values(frame, function, None)
            block = BLOCK_BY_REPLY_SIZE.get((function, frame[2]))
            if block is None:
                known = ", ".join(
                    f"{b.name} {n}" for (f, n), b in BLOCK_BY_REPLY_SIZE.items() if f == function
                )
                raise DecodeError(
                    f"a reply of {frame[2]} data bytes to function {function:02X} matches no "
                    f"Seplos V3 block ({known}); give the read request before it"
                )
            values = values[: BLOCK_COUNTS[block.name][-1]] if block is PIC else values
        if block is not None:
            found[block.name] = (values, index)
        return None

    def _state(self, found: dict[str, tuple[list[int], int]]) -> BatteryState:
        if not found:
            return BatteryState()

        def block(name: str) -> list[int] | None:
            return found[name][0] if name in found else None

        pia, pic = block(PIA.name), block(PIC.name)
        try:
            state = decode(
                [0] * PIA.count if pia is None else pia,
                block(PIB.name),
                None if pic is None else [bool(bit) for bit in pic],
                block(SPA.name),
                kelvin_offset_raw=self.kelvin_offset_raw,
            )
        except DecodeError as exc:
            for name, (_, index) in found.items():
                if str(exc).startswith(f"{name}:"):
                    raise DecodeError(f"frame {index}: {exc}") from exc
            raise
        values = {k: getattr(state, k) for k in FIELD_NAMES if getattr(state, k) is not None}
        if pia is None:
            values = {k: v for k, v in values.items() if k not in PIA_KEYS}
        for key, value in cell_extremes(state.cells_v or []).items():
            values.setdefault(key, value)
        return BatteryState(**values)

    # -- device side -----------------------------------------------------------------------------

    def request_framer(self) -> Framer:
        return modbus_request_framer()

    def answer(self, request: bytes, source: StateSource) -> list[bytes]:
        request = bytes(request)
        addressed = modbus_addressed(request, self.addresses, source)
        if addressed is None:
            return []
        slave, function, state = addressed
        if function not in (READ_COILS, READ_INPUT_REGISTERS):
            return [build_exception_reply(slave, function, 0x01)]
        try:
            read = parse_read_request(request)
        except DecodeError:
            return [build_exception_reply(slave, function, 0x03)]
        image = encode(state, kelvin_offset_raw=self.kelvin_offset_raw)
        first, last = read.address, read.address + read.count
        if function == READ_COILS:
            if PIC.start <= first and last <= PIC.end:
                bits = image.coils[first - PIC.start : last - PIC.start]
                return [build_bit_reply(slave, function, bits)]
        else:
            for block in REGISTER_BLOCKS:
                registers = image.registers[block.start]
                if block.start <= first and last <= block.start + len(registers):
                    chunk = registers[first - block.start : last - block.start]
                    return [build_register_reply(slave, function, chunk)]
        return [build_exception_reply(slave, function, 0x02)]


def _reply_values(frame: bytes, function: int, count: int | None) -> list[int]:
    """Registers, or coils as 0/1, of a reply whose CRC, length and function are right."""
    if function == READ_COILS:
        return [int(bit) for bit in parse_bit_reply(frame, function, count, EXCEPTION_NAMES).bits]
    return list(parse_register_reply(frame, function, count, EXCEPTION_NAMES).registers)
