"""Daly "Smart BMS" over UART/RS485: the classic A5 protocol (Daly doc V1.2) as data.

Every frame, in both directions, is 13 bytes: ``A5``, an address, a data id, ``08``,
eight data bytes (B0-B7, frame bytes 4-11) and the low byte of the sum of bytes
0-11. The host asks for one data id at a time (9600 8N1, ~20 ms between requests)
and the BMS answers with one frame, or with several numbered frames for the cell
voltages (0x95, three cells each) and temperatures (0x96, seven sensors each).
Facts: shared/reference/bms-protocols.md §3 and §6.

Addresses: a request carries its *sender's* address (0x40 upper computer / UART
/ RS485, 0x80 Bluetooth app, 0x20 GPRS), a reply the BMS's, 0x01. bmslink's
``address`` is that BMS board number: only board 1 exists in the vendor document
(``addresses`` is range(1, 2)), and bmslink always sends as the upper computer,
0x40. (serialbattery addresses board n as sender 0x3F + n and expects replies
from n; the vendor document does not describe that, so bmslink does not do it.)
A frame's direction is told by its address byte, so ``decode`` takes captures
with both requests and replies; the replies name their data id and need no
context from the requests.

Poll cycle: 0x90, 0x91, 0x92, 0x93, 0x94, then 0x95 with ceil(cells / 3)
replies and 0x96 with ceil(sensors / 7) replies (both counts from the 0x94 reply
just received), then 0x98. 0x97 (balancing) carries no contract key and is not
asked. ``identity`` adds nothing: the vendor document has no name or version
command. 0x50 (rated capacity) and 0x57 (battery code) are serialbattery
extras whose byte layout the reference does not pin down; they would fit as
optional requests (base.Request.optional) once a capture shows it.

Choices where the sources are silent or disagree:

- Current is (raw - 30000) x 0.1 A with raw above 30000 = charging, as the
  vendor example (raw 30113 = +11.3 A), esphome and mpp-solar read it.
  serialbattery negates it by default because several firmwares report the
  other direction; ``BmsOptions(invert_current=True)`` (applied by the base
  class) is the switch for those packs.
- 0x95 frame numbers start at 1 on real BMSs and at 0 in the vendor document:
  both are accepted (0 present among the frames = numbering from 0) and cells
  are placed by frame number. With a 0x94 among the frames, its cell count
  decides how many cells there are (padding and frames beyond it are dropped,
  a frame inside it that is missing is an error). Without 0x94 the frames must
  run without a gap from the first number, and the trailing 0 mV slots of the
  last frame are dropped as padding: a 0 mV reading there cannot be told from
  padding without the count. 0x96 works the same way (raw 0 = -40 °C is the
  padding value), with the sensor count of 0x94. The simulated device numbers
  from 1 and pads with 0x00.
- 0x91's and 0x92's extremes are the BMS's own; when the frames also carry the
  full cell list (0x95) or sensor list (0x96), the list wins: ``cell_min_v`` /
  ``cell_max_v`` and their ids (and the cell temperature extremes) are taken
  from the list, so they always agree with ``cells_v`` / ``temperatures_c``.
  Both are read within one cycle, ~100 ms apart.
- Every Daly temperature sensor is a cell sensor: ``cell_temp_min_c`` /
  ``cell_temp_max_c`` come from 0x92 (or the 0x96 list) and ``temperature_c``
  is the mean of the 0x96 sensors, or of 0x92's two extremes without 0x96,
  rounded to 0.1 °C. A state's ``temperature_c`` is not served (no field).
- Cycles: 0x93 B3 ("BMS life", a u8) wraps at 255 and its meaning is unclear;
  ``cycles`` is read from 0x94 B5-6 as a u16, as serialbattery and mpp-solar do
  (the vendor document calls those bytes reserved). The simulated device sends
  the state's cycles in 0x94 and 0 in 0x93 B3.
- The 0x93 charge / discharge MOS bytes are ``charge_enable`` /
  ``discharge_enable`` (any non-zero value is "on"). B0 (stationary / charging /
  discharging) is not decoded: ``current_a`` says it; it is served from the
  current's sign.
- 0x98: level-1 bits are ``warnings``, level-2 bits and the un-levelled faults
  of B4-B6 are ``alarms``, nearest contract name (table :data:`FAILURE_FLAGS`).
  The SoC high / low bits are not mapped: the SoC itself travels in ``soc_pct``
  and a SoC estimate reaching a user's threshold is no battery fault. A stuck
  ("adhesion") or open MOS and a precharge failure are the switching device
  failing, the nearest being ``contactor``; MOS over-temperature and sensor
  errors, AFE, EEPROM, RTC and communication faults are ``bms_internal`` (the
  MOS temperature is the board's, not the cells'). "Low-voltage charge
  forbidden" is the cells being too low to charge: ``low_voltage``. The fault
  code in B7 has no documented meaning and is not decoded (served as 0). Both
  lists are in the contract's name order; a name at both levels is in both.
- Serving, an alarm or warning name without a bit at its level (``short_circuit``,
  ``contactor`` or ``bms_internal`` as warnings) is refused, so a served state
  never hides one. Each name is sent with one chosen bit (``send`` in the table).
- 0x50 (rated capacity, u32 mAh -> ``capacity_ah``) and 0x57 (battery code, 5
  numbered frames of 7 ASCII bytes -> ``serial``, the nearest key) are decoded
  from captures and served, but not polled (see above). The second u32 of 0x50
  (nominal cell voltage, unit undocumented) is not decoded and served as 0. A
  battery code is decoded with inner NULs as spaces and bytes outside ASCII as
  U+FFFD: an odd code must not stop a bridge.
- Served as neutral 0 because bmslink has no value for them: 0x90 "gathered"
  voltage, 0x94 charger / load present and DI/DO bits, 0x91 B6-7, 0x94 B7,
  0x95 B7, the 0x92 sensor number of an extreme not found in
  ``temperatures_c``, a cell number that cannot be found. 0x53 and 0x97 are
  known but not served (silence), like any other unknown data id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

from bmslink.bank import cell_extremes
from bmslink.bms.base import (
    BmsProtocol,
    Conversation,
    Request,
    StateSource,
)
from bmslink.bms.framing import HuntingFramer
from bmslink.errors import DecodeError, EncodeError
from bmslink.scaling import decimal_places, round_raw
from bmslink.state import ALARM_NAMES, STATE_KEYS, BatteryState

START = 0xA5
FRAME_LENGTH = 13
DATA_LENGTH = 8
#: The address bmslink sends as (the "upper computer": PC, UART, RS485).
HOST_ADDRESS = 0x40
#: Sender addresses a request may carry; a BMS answers each with its own address.
SENDER_ADDRESSES: dict[int, str] = {0x40: "upper computer", 0x80: "Bluetooth app", 0x20: "GPRS"}
#: The address every reply carries (BMS board 1).
BMS_ADDRESS = 0x01
#: Data ids bmslink knows; ids marked "ignored" are accepted in captures but carry no key.
DATA_IDS: dict[int, str] = {
    0x21: "set SoC and clock (ignored)",
    0x50: "rated capacity",
    0x53: "battery type and production date (ignored)",
    0x57: "battery code",
    0x90: "voltage, current, SoC",
    0x91: "cell voltage extremes",
    0x92: "temperature extremes",
    0x93: "MOS state and remaining capacity",
    0x94: "status: cell and sensor counts, cycles",
    0x95: "cell voltages",
    0x96: "temperatures",
    0x97: "cell balancing (ignored)",
    0x98: "failure flags",
    0xD9: "discharge MOS switch (ignored)",
    0xDA: "charge MOS switch (ignored)",
}
#: The requests of one poll cycle before the counted ones (0x95, 0x96) and 0x98.
POLL_IDS = (0x90, 0x91, 0x92, 0x93, 0x94)


def checksum(frame: bytes) -> int:
    """Low byte of the sum of bytes 0-11."""
    return sum(frame[:12]) & 0xFF


def build_frame(address: int, data_id: int, data: bytes = bytes(DATA_LENGTH)) -> bytes:
    """A 13-byte frame with its checksum."""
    if len(data) != DATA_LENGTH:
        raise EncodeError(f"0x{data_id:02X}: data must be {DATA_LENGTH} bytes, got {len(data)}")
    body = bytes((START, address, data_id, DATA_LENGTH)) + data
    return body + bytes((checksum(body),))


def build_request(data_id: int, sender: int = HOST_ADDRESS) -> bytes:
    """A read request as the upper computer sends it (data bytes 0x00)."""
    return build_frame(sender, data_id)


def reply_prefix(data_id: int) -> bytes:
    """The first four bytes of the BMS's reply to ``data_id``."""
    return bytes((START, BMS_ADDRESS, data_id, DATA_LENGTH))


def _frame_length(head: bytes) -> int | None:
    if len(head) < 4:
        return None
    return FRAME_LENGTH if head[3] == DATA_LENGTH else 0


def _checksum_ok(frame: bytes) -> bool:
    return len(frame) == FRAME_LENGTH and checksum(frame) == frame[12]


def daly_framer() -> HuntingFramer:
    """13-byte A5 frames (requests and replies alike) whose checksum is right."""
    return HuntingFramer(bytes((START,)), _frame_length, _checksum_ok, max_length=FRAME_LENGTH)


# -- single-frame fields --------------------------------------------------------------------------

Kind = Literal["number", "integer", "flag", "id"]


@dataclass(frozen=True)
class Field:
    """One big-endian unsigned number in a reply: physical = (raw - zero) * scale.

    ``key`` is a BatteryState key (decoded), or a name of a value the state has
    no key for (served from a derived or neutral value, never decoded).
    """

    byte: int  # B0..B7: frame byte 4 + byte
    size: int  # 1, 2 or 4 bytes
    key: str
    scale: float = 1.0
    zero: int = 0  # raw value of physical 0: 30000 for current, 40 for temperatures
    kind: Kind = "number"
    unit: str = ""
    high: float | None = None  # a physical bound tighter than the raw range
    doc: str = ""

    @property
    def raw_max(self) -> int:
        return (1 << (8 * self.size)) - 1

    def decode(self, data: bytes) -> float | int | bool | str:
        raw = int.from_bytes(data[self.byte : self.byte + self.size], "big")
        if self.kind == "flag":
            return raw != 0
        if self.kind == "id":
            return str(raw)
        if self.kind == "integer":
            return raw
        return round((raw - self.zero) * self.scale, decimal_places(self.scale))

    def encode(self, value: float | int | bool, data_id: int, where: str = "") -> int:
        """The raw value; EncodeError naming the key, the range and the byte."""
        where = where or f"0x{data_id:02X} byte {4 + self.byte}"
        if self.kind == "flag":
            return int(bool(value))
        if isinstance(value, bool) or not math.isfinite(value):
            raise EncodeError(f"{self.key} = {value!r} is not a number ({where})")
        if self.kind in ("integer", "id"):
            raw = int(value)
            if raw != value or not 0 <= raw <= self.raw_max:
                raise EncodeError(f"{self.key} = {value!r} is outside 0..{self.raw_max} ({where})")
            return raw
        raw = round_raw(value / self.scale, "nearest") + self.zero
        low = round(-self.zero * self.scale, decimal_places(self.scale))
        high = round((self.raw_max - self.zero) * self.scale, decimal_places(self.scale))
        if self.high is not None:
            high = min(high, self.high)
        above = self.high is not None and value > self.high
        if above or not 0 <= raw <= self.raw_max:
            raise EncodeError(
                f"{self.key} = {value:g}{self.unit} is outside {low:g}..{high:g}{self.unit} "
                f"({where})"
            )
        return raw


#: The replies of one frame each, field by field.
FIELDS: dict[int, tuple[Field, ...]] = {
    0x50: (
        Field(0, 4, "capacity_ah", 0.001, unit=" Ah", doc="rated capacity, mAh"),
        Field(4, 4, "nominal_cell_voltage", kind="integer", doc="unit undocumented: sent as 0"),
    ),
    0x90: (
        Field(0, 2, "voltage_v", 0.1, unit=" V", doc="cumulative total voltage"),
        Field(2, 2, "gathered_voltage", kind="integer", doc="'gathered' voltage, often 0"),
        Field(4, 2, "current_a", 0.1, zero=30000, unit=" A", doc="above 30000 = charging"),
        Field(6, 2, "soc_pct", 0.1, unit=" %", high=100.0),
    ),
    0x91: (
        Field(0, 2, "cell_max_v", 0.001, unit=" V"),
        Field(2, 1, "cell_max_id", kind="id", doc="cell number, 1 = first"),
        Field(3, 2, "cell_min_v", 0.001, unit=" V"),
        Field(5, 1, "cell_min_id", kind="id"),
    ),
    0x92: (
        Field(0, 1, "cell_temp_max_c", zero=40, unit=" °C"),
        Field(1, 1, "cell_temp_max_sensor", kind="integer", doc="sensor number"),
        Field(2, 1, "cell_temp_min_c", zero=40, unit=" °C"),
        Field(3, 1, "cell_temp_min_sensor", kind="integer"),
    ),
    0x93: (
        Field(0, 1, "charge_state", kind="integer", doc="0 stationary, 1 charging, 2 discharging"),
        Field(1, 1, "charge_enable", kind="flag", doc="charge MOS on"),
        Field(2, 1, "discharge_enable", kind="flag", doc="discharge MOS on"),
        Field(3, 1, "bms_life", kind="integer", doc="'BMS life' 0-255: sent as 0"),
        Field(4, 4, "remaining_ah", 0.001, unit=" Ah", doc="remaining capacity, mAh"),
    ),
    0x94: (
        Field(0, 1, "cell_count", kind="integer"),
        Field(1, 1, "sensor_count", kind="integer"),
        Field(2, 1, "charger_present", kind="integer", doc="sent as 0"),
        Field(3, 1, "load_present", kind="integer", doc="sent as 0"),
        Field(4, 1, "digital_io", kind="integer", doc="DI1-4 bits 0-3, DO1-4 bits 4-7: sent as 0"),
        Field(5, 2, "cycles", kind="integer", doc="u16 as serialbattery and mpp-solar read it"),
    ),
}


# -- multi-frame replies --------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """A reply of numbered frames: B0 the frame number, then ``per_frame`` values."""

    data_id: int
    what: str
    item: str
    per_frame: int
    size: int  # bytes per value
    max_frames: int
    fixed_count: int | None = None  # values the reply always has (else 0x94 counts them)

    def values(self, data: bytes) -> list[int]:
        width = self.size
        return [
            int.from_bytes(data[1 + i * width : 1 + (i + 1) * width], "big")
            for i in range(self.per_frame)
        ]


CELLS = Series(0x95, "cell voltages", "cell", 3, 2, 16)
TEMPERATURES = Series(0x96, "temperatures", "sensor", 7, 1, 3)
BATTERY_CODE = Series(0x57, "battery code", "character", 7, 1, 5, fixed_count=35)
SERIES: dict[int, Series] = {s.data_id: s for s in (CELLS, TEMPERATURES, BATTERY_CODE)}
MAX_CELLS = CELLS.per_frame * CELLS.max_frames
MAX_SENSORS = TEMPERATURES.per_frame * TEMPERATURES.max_frames
TEMPERATURE_ZERO = 40  # raw value of 0 °C


# -- failure flags (0x98) -------------------------------------------------------------------------

Level = Literal["alarm", "warning"]


@dataclass(frozen=True)
class FailureFlag:
    """One 0x98 bit: Daly's text, the contract name it decodes to (None: not mapped)."""

    byte: int  # B0..B7
    bit: int
    text: str
    name: str | None
    level: Level
    send: bool = False  # the bit the simulated device sets for (name, level)


def _levels(byte: int, bit: int, text: str, name: str | None) -> tuple[FailureFlag, FailureFlag]:
    """A level-1 (warning) bit and the level-2 (alarm) bit above it; level 1 and 2 are sent."""
    return (
        FailureFlag(byte, bit, f"{text} level 1", name, "warning"),
        FailureFlag(byte, bit + 1, f"{text} level 2", name, "alarm"),
    )


def _sent(flags: tuple[FailureFlag, ...]) -> tuple[FailureFlag, ...]:
    return tuple(
        FailureFlag(f.byte, f.bit, f.text, f.name, f.level, send=f.name is not None) for f in flags
    )


FAILURE_FLAGS: tuple[FailureFlag, ...] = (
    *_sent(_levels(0, 0, "cell voltage high", "high_voltage")),
    *_sent(_levels(0, 2, "cell voltage low", "low_voltage")),
    *_levels(0, 4, "total voltage high", "high_voltage"),
    *_levels(0, 6, "total voltage low", "low_voltage"),
    *_sent(_levels(1, 0, "charge temperature high", "high_temperature_charge")),
    *_sent(_levels(1, 2, "charge temperature low", "low_temperature_charge")),
    *_sent(_levels(1, 4, "discharge temperature high", "high_temperature")),
    *_sent(_levels(1, 6, "discharge temperature low", "low_temperature")),
    *_sent(_levels(2, 0, "charge over-current", "high_charge_current")),
    *_sent(_levels(2, 2, "discharge over-current", "high_discharge_current")),
    *_levels(2, 4, "SoC high", None),
    *_levels(2, 6, "SoC low", None),
    *_sent(_levels(3, 0, "cell voltage difference", "cell_imbalance")),
    *_sent(_levels(3, 2, "temperature difference", "general")),
    FailureFlag(4, 0, "charge MOS over-temperature", "bms_internal", "alarm"),
    FailureFlag(4, 1, "discharge MOS over-temperature", "bms_internal", "alarm"),
    FailureFlag(4, 2, "charge MOS temperature sensor error", "bms_internal", "alarm"),
    FailureFlag(4, 3, "discharge MOS temperature sensor error", "bms_internal", "alarm"),
    FailureFlag(4, 4, "charge MOS adhesion (stuck on) error", "contactor", "alarm", send=True),
    FailureFlag(4, 5, "discharge MOS adhesion (stuck on) error", "contactor", "alarm"),
    FailureFlag(4, 6, "charge MOS open-circuit error", "contactor", "alarm"),
    FailureFlag(4, 7, "discharge MOS open-circuit error", "contactor", "alarm"),
    FailureFlag(5, 0, "AFE chip error", "bms_internal", "alarm", send=True),
    FailureFlag(5, 1, "voltage collection dropped", "bms_internal", "alarm"),
    FailureFlag(5, 2, "cell temperature sensor error", "bms_internal", "alarm"),
    FailureFlag(5, 3, "EEPROM error", "bms_internal", "alarm"),
    FailureFlag(5, 4, "RTC error", "bms_internal", "alarm"),
    FailureFlag(5, 5, "precharge failure", "contactor", "alarm"),
    FailureFlag(5, 6, "communication failure", "bms_internal", "alarm"),
    FailureFlag(5, 7, "internal communication failure", "bms_internal", "alarm"),
    FailureFlag(6, 0, "current module fault", "bms_internal", "alarm"),
    FailureFlag(6, 1, "total voltage detection fault", "bms_internal", "alarm"),
    FailureFlag(6, 2, "short-circuit protection", "short_circuit", "alarm", send=True),
    FailureFlag(6, 3, "low-voltage charge forbidden", "low_voltage", "alarm"),
)

#: (name, level) -> (byte, bit) the simulated device sets.
SEND_BITS: dict[tuple[str, Level], tuple[int, int]] = {
    (f.name, f.level): (f.byte, f.bit) for f in FAILURE_FLAGS if f.send and f.name is not None
}
#: Names each level can carry, in contract order.
EXPRESSIBLE: dict[Level, tuple[str, ...]] = {
    level: tuple(n for n in ALARM_NAMES if (n, level) in SEND_BITS)
    for level in ("alarm", "warning")
}


def encode_failures(alarms: Sequence[str], warnings: Sequence[str]) -> bytes:
    """The eight 0x98 data bytes; EncodeError for a name without a bit at its level."""
    data = bytearray(DATA_LENGTH)
    levels: tuple[tuple[Level, Sequence[str]], ...] = (("alarm", alarms), ("warning", warnings))
    for level, names in levels:
        for name in names:
            at = SEND_BITS.get((name, level))
            if at is None:
                can = ", ".join(EXPRESSIBLE[level])
                raise EncodeError(
                    f"{level} {name!r} has no Daly 0x98 bit; refusing to serve a state that "
                    f"would hide it ({level}s it can carry: {can})"
                )
            data[at[0]] |= 1 << at[1]
    return bytes(data)


def decode_failures(data: bytes) -> tuple[list[str], list[str]]:
    """(alarms, warnings) of 0x98 data, each in contract order."""
    seen: dict[Level, set[str]] = {"alarm": set(), "warning": set()}
    for flag in FAILURE_FLAGS:
        if flag.name is not None and data[flag.byte] >> flag.bit & 1:
            seen[flag.level].add(flag.name)
    return (
        [n for n in ALARM_NAMES if n in seen["alarm"]],
        [n for n in ALARM_NAMES if n in seen["warning"]],
    )


# -- decode ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """A checked frame: who sent it, which data id, the eight data bytes."""

    index: int  # 1-based position among the frames decoded
    address: int
    data_id: int
    data: bytes

    @property
    def is_request(self) -> bool:
        return self.address in SENDER_ADDRESSES


def check_frame(frame: bytes, index: int) -> Frame:
    """Length, checksum, start byte, data length, address and data id; DecodeError names them."""
    where = f"frame {index}"
    if len(frame) != FRAME_LENGTH:
        raise DecodeError(f"{where}: wrong length: expected {FRAME_LENGTH} bytes, got {len(frame)}")
    if checksum(frame) != frame[12]:
        raise DecodeError(
            f"{where}: checksum mismatch: expected {checksum(frame):02X}, got {frame[12]:02X}"
        )
    if frame[0] != START:
        raise DecodeError(f"{where}: byte 0 (start) is 0x{frame[0]:02X}, expected 0x{START:02X}")
    if frame[3] != DATA_LENGTH:
        raise DecodeError(f"{where}: byte 3 (data length) is {frame[3]}, expected {DATA_LENGTH}")
    address = frame[1]
    if address != BMS_ADDRESS and address not in SENDER_ADDRESSES:
        hosts = ", ".join(f"0x{a:02X}" for a in SENDER_ADDRESSES)
        raise DecodeError(
            f"{where}: byte 1 (address) is 0x{address:02X}, neither the BMS "
            f"(0x{BMS_ADDRESS:02X}) nor a host ({hosts})"
        )
    if frame[2] not in DATA_IDS:
        raise DecodeError(f"{where}: byte 2: unknown data id 0x{frame[2]:02X}")
    return Frame(index, address, frame[2], bytes(frame[4:12]))


def status_counts(frame: Frame) -> tuple[int, int]:
    """(cells, temperature sensors) of a 0x94 reply, each within what 0x95 / 0x96 can carry."""
    cells, sensors = frame.data[0], frame.data[1]
    for count, byte, what, most, series in (
        (cells, 4, "cell count", MAX_CELLS, CELLS),
        (sensors, 5, "temperature sensor count", MAX_SENSORS, TEMPERATURES),
    ):
        if count > most:
            raise DecodeError(
                f"frame {frame.index}: 0x94 byte {byte} ({what}) is {count}, at most {most} "
                f"({series.max_frames} frames of {series.per_frame})"
            )
    return cells, sensors


def _series_values(series: Series, frames: dict[int, Frame], count: int | None) -> list[int]:
    """The values of a numbered reply in order, placed by frame number (from 0 or 1)."""
    base = 0 if 0 in frames else 1
    for number, frame in frames.items():
        if number - base >= series.max_frames:
            raise DecodeError(
                f"frame {frame.index}: 0x{series.data_id:02X} byte 4 (frame number) is {number}, "
                f"beyond the {series.max_frames} frames of {series.what} (numbered from {base})"
            )
    per = series.per_frame
    needed = math.ceil(count / per) if count is not None else max(frames) - base + 1
    values: list[int] = []
    for k in range(needed):
        got = frames.get(base + k)
        if got is None:
            last = (k + 1) * per if count is None else min((k + 1) * per, count)
            of = f" of {count}" if count is not None else ""
            raise DecodeError(
                f"0x{series.data_id:02X} {series.what}: frame number {base + k} missing "
                f"({series.item}s {k * per + 1}-{last}{of})"
            )
        values += series.values(got.data)
    if count is not None:
        return values[:count]
    keep = len(values)
    while keep > (needed - 1) * per and values[keep - 1] == 0:
        keep -= 1  # the unused slots of the last frame
    return values[:keep]


def _battery_code(raw: list[int]) -> str:
    text = bytes(raw).replace(b"\x00", b" ").decode("ascii", errors="replace")
    return text.rstrip(" ")


def decode_frames(frames: Sequence[bytes]) -> BatteryState:
    """One state from Daly frames (requests are checked and skipped); later frames win."""
    values: dict[str, Any] = {}
    numbered: dict[int, dict[int, Frame]] = {}
    counts: dict[int, int] = {}  # data id of a series -> its count from 0x94
    for index, wire in enumerate(frames, 1):
        frame = check_frame(wire, index)
        if frame.is_request:
            continue
        data_id = frame.data_id
        if data_id in FIELDS:
            for f in FIELDS[data_id]:
                if f.key in STATE_KEYS:
                    values[f.key] = f.decode(frame.data)
            if data_id == 0x94:
                counts[CELLS.data_id], counts[TEMPERATURES.data_id] = status_counts(frame)
        elif data_id in SERIES:
            numbered.setdefault(data_id, {})[frame.data[0]] = frame
        elif data_id == 0x98:
            values["alarms"], values["warnings"] = decode_failures(frame.data)

    pair = [values.get("cell_temp_max_c"), values.get("cell_temp_min_c")]
    temperatures = [t for t in pair if t is not None]
    for data_id, group in numbered.items():
        series = SERIES[data_id]
        count = series.fixed_count if series.fixed_count is not None else counts.get(data_id)
        raw = _series_values(series, group, count)
        if series is CELLS and raw:
            cells = [mv / 1000 for mv in raw]
            values["cells_v"] = cells
            values.update(cell_extremes(cells))
        elif series is TEMPERATURES and raw:
            temperatures = [float(r - TEMPERATURE_ZERO) for r in raw]
            values["temperatures_c"] = temperatures
            values["cell_temp_min_c"] = min(temperatures)
            values["cell_temp_max_c"] = max(temperatures)
        elif series is BATTERY_CODE:
            code = _battery_code(raw)
            if code:
                values["serial"] = code
    if temperatures:
        values["temperature_c"] = round(sum(temperatures) / len(temperatures), 1)
    return BatteryState(**values)


# -- encode (the simulated device) ----------------------------------------------------------------

#: Keys each reply needs from the state (cell and temperature extremes are derived from the
#: lists when the state lacks them).
REQUIRED: dict[int, tuple[str, ...]] = {
    0x50: ("capacity_ah",),
    0x90: ("voltage_v", "current_a", "soc_pct"),
    0x93: ("current_a", "charge_enable", "discharge_enable", "remaining_ah"),
    0x94: ("cells_v", "temperatures_c", "cycles"),
    0x95: ("cells_v",),
    0x96: ("temperatures_c",),
    0x98: ("alarms",),
}


def _require(state: BatteryState, data_id: int) -> None:
    for key in REQUIRED.get(data_id, ()):
        if getattr(state, key) is None:
            raise EncodeError(
                f"missing {key}: the Daly 0x{data_id:02X} reply ({DATA_IDS[data_id]}) carries it"
            )


def _extreme(given: float | None, values: Sequence[float], pick: Callable[..., float]) -> float:
    return given if given is not None else pick(values)


def _number_of(
    given: str | None,
    values: Sequence[float],
    value: float,
    step: float,
    field: Field,
    data_id: int,
) -> int:
    """The 1-based cell / sensor number of an extreme: the state's own id when it is a
    number, else the first list entry that reads the same on the wire (``step`` per
    unit), else 0."""
    if given is not None and given.isascii() and given.isdigit():
        return field.encode(int(given), data_id)
    for i, v in enumerate(values):
        if round(v * step) == round(value * step):
            return i + 1
    return 0


def _ordered(low_key: str, low: float, high_key: str, high: float, unit: str) -> None:
    if low > high:
        raise EncodeError(f"{low_key} = {low:g}{unit} is above {high_key} = {high:g}{unit}")


def _values_0x91(state: BatteryState) -> dict[str, Any]:
    cells = state.cells_v or []
    if not cells and (state.cell_max_v is None or state.cell_min_v is None):
        key = "cell_max_v" if state.cell_max_v is None else "cell_min_v"
        raise EncodeError(f"missing {key}: the Daly 0x91 reply carries it (no cells_v either)")
    high = _extreme(state.cell_max_v, cells, max)
    low = _extreme(state.cell_min_v, cells, min)
    _ordered("cell_min_v", low, "cell_max_v", high, " V")
    max_id, min_id = FIELDS[0x91][1], FIELDS[0x91][3]
    return {
        "cell_max_v": high,
        "cell_min_v": low,
        "cell_max_id": _number_of(state.cell_max_id, cells, high, 1000, max_id, 0x91),
        "cell_min_id": _number_of(state.cell_min_id, cells, low, 1000, min_id, 0x91),
    }


def _values_0x92(state: BatteryState) -> dict[str, Any]:
    temps = state.temperatures_c or []
    if not temps and (state.cell_temp_max_c is None or state.cell_temp_min_c is None):
        key = "cell_temp_max_c" if state.cell_temp_max_c is None else "cell_temp_min_c"
        raise EncodeError(
            f"missing {key}: the Daly 0x92 reply carries it (no temperatures_c either)"
        )
    high = _extreme(state.cell_temp_max_c, temps, max)
    low = _extreme(state.cell_temp_min_c, temps, min)
    _ordered("cell_temp_min_c", low, "cell_temp_max_c", high, " °C")
    max_no, min_no = FIELDS[0x92][1], FIELDS[0x92][3]
    return {
        "cell_temp_max_c": high,
        "cell_temp_min_c": low,
        "cell_temp_max_sensor": _number_of(None, temps, high, 1, max_no, 0x92),
        "cell_temp_min_sensor": _number_of(None, temps, low, 1, min_no, 0x92),
    }


def _values_0x93(state: BatteryState) -> dict[str, Any]:
    assert state.current_a is not None  # _require
    raw = FIELDS[0x90][2].encode(state.current_a, 0x90)
    charge_state = 0 if raw == 30000 else 1 if raw > 30000 else 2
    return {
        "charge_state": charge_state,
        "bms_life": 0,
        "charge_enable": state.charge_enable,
        "discharge_enable": state.discharge_enable,
        "remaining_ah": state.remaining_ah,
    }


def _values_0x94(state: BatteryState) -> dict[str, Any]:
    cells, temps = state.cells_v or [], state.temperatures_c or []
    if len(cells) > MAX_CELLS:
        raise EncodeError(f"cells_v: Daly carries at most {MAX_CELLS} cells, got {len(cells)}")
    if len(temps) > MAX_SENSORS:
        raise EncodeError(
            f"temperatures_c: Daly carries at most {MAX_SENSORS} sensors, got {len(temps)}"
        )
    return {
        "cell_count": len(cells),
        "sensor_count": len(temps),
        "charger_present": 0,
        "load_present": 0,
        "digital_io": 0,
        "cycles": state.cycles,
    }


#: The values of a single-frame reply's fields: the state's own, then derived or neutral ones.
DERIVED: dict[int, Callable[[BatteryState], dict[str, Any]]] = {
    0x50: lambda s: {"nominal_cell_voltage": 0},
    0x90: lambda s: {"gathered_voltage": 0},
    0x91: _values_0x91,
    0x92: _values_0x92,
    0x93: _values_0x93,
    0x94: _values_0x94,
}


def encode_fields(data_id: int, state: BatteryState) -> bytes:
    """The eight data bytes of a single-frame reply (0x50, 0x90-0x94)."""
    _require(state, data_id)
    values = {f.key: getattr(state, f.key) for f in FIELDS[data_id] if f.key in STATE_KEYS}
    values.update(DERIVED[data_id](state))
    data = bytearray(DATA_LENGTH)
    for f in FIELDS[data_id]:
        raw = f.encode(values[f.key], data_id)
        data[f.byte : f.byte + f.size] = raw.to_bytes(f.size, "big")
    return bytes(data)


def encode_series(series: Series, raw: Sequence[int]) -> list[bytes]:
    """Numbered frames' data (from 1), unused slots of the last frame 0x00."""
    out = []
    per = series.per_frame
    for k in range(math.ceil(len(raw) / per)):
        chunk = list(raw[k * per : (k + 1) * per])
        chunk += [0] * (per - len(chunk))
        body = bytes((k + 1,)) + b"".join(v.to_bytes(series.size, "big") for v in chunk)
        out.append(body.ljust(DATA_LENGTH, b"\x00"))
    return out


def _raw_list(values: Sequence[float], field: Field, data_id: int) -> list[int]:
    """Raw values of a list, each range-checked under its own name (``cells_v[3]``)."""
    return [
        replace(field, key=f"{field.key}[{i}]").encode(v, data_id, where=f"0x{data_id:02X}")
        for i, v in enumerate(values)
    ]


#: Value layout of one cell voltage and one temperature in the numbered replies.
CELL_FIELD = Field(1, 2, "cells_v", 0.001, unit=" V")
TEMPERATURE_FIELD = Field(1, 1, "temperatures_c", zero=TEMPERATURE_ZERO, unit=" °C")


def encode_reply(data_id: int, state: BatteryState) -> list[bytes]:
    """The data bytes of every frame the BMS sends for ``data_id``."""
    if data_id in FIELDS:
        return [encode_fields(data_id, state)]
    _require(state, data_id)
    if data_id == 0x98:
        return [encode_failures(state.alarms or [], state.warnings or [])]
    if data_id == 0x95:
        _values_0x94(state)  # the count limits
        return encode_series(CELLS, _raw_list(state.cells_v or [], CELL_FIELD, 0x95))
    if data_id == 0x96:
        _values_0x94(state)
        temps = state.temperatures_c or []
        return encode_series(TEMPERATURES, _raw_list(temps, TEMPERATURE_FIELD, 0x96))
    # 0x57: the battery code, NUL padded; no serial = an empty code
    code = state.serial or ""
    try:
        raw = code.encode("ascii")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"serial {code!r} is not ASCII (Daly 0x57 battery code)") from exc
    size = BATTERY_CODE.fixed_count or 0
    if len(raw) > size:
        raise EncodeError(f"serial {code!r} is longer than the {size} characters of Daly 0x57")
    return encode_series(BATTERY_CODE, list(raw.ljust(size, b"\x00")))


#: Data ids the simulated device answers.
SERVED = (0x50, 0x57, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x98)


# -- the protocol ---------------------------------------------------------------------------------


class DalyProtocol(BmsProtocol):
    """Daly Smart BMS, classic A5 frames over UART / RS485."""

    name: ClassVar[str] = "daly"
    title: ClassVar[str] = "Daly Smart BMS (A5 UART/RS485 protocol)"
    baudrate: ClassVar[int] = 9600
    default_address: ClassVar[int] = 1
    addresses: ClassVar[range] = range(1, 2)
    keys: ClassVar[frozenset[str]] = frozenset(
        {
            "voltage_v",
            "current_a",
            "soc_pct",
            "cell_max_v",
            "cell_min_v",
            "cell_max_id",
            "cell_min_id",
            "cell_temp_max_c",
            "cell_temp_min_c",
            "temperature_c",
            "charge_enable",
            "discharge_enable",
            "remaining_ah",
            "cycles",
            "alarms",
            "warnings",
        }
    )
    request_gap_s: ClassVar[float] = 0.02

    def reply_framer(self) -> HuntingFramer:
        return daly_framer()

    def request_framer(self) -> HuntingFramer:
        return daly_framer()

    @staticmethod
    def request(data_id: int, replies: int = 1) -> Request:
        return Request(
            build_request(data_id),
            f"0x{data_id:02X} {DATA_IDS[data_id]}",
            replies=replies,
            reply_prefix=reply_prefix(data_id),
        )

    def conversation(self, address: int, *, identity: bool) -> Conversation:
        """0x90-0x94, then 0x95 / 0x96 as many frames as 0x94 counts, then 0x98.

        ``identity`` adds nothing (module docstring). A 0x94 that counts no cells
        (no sensors) skips 0x95 (0x96): there is nothing to ask for.
        """
        self.check_address(address)
        for data_id in POLL_IDS[:-1]:
            yield self.request(data_id)
        status = yield self.request(0x94)
        cells, sensors = self._counts(status)
        if cells:
            yield self.request(CELLS.data_id, math.ceil(cells / CELLS.per_frame))
        if sensors:
            yield self.request(TEMPERATURES.data_id, math.ceil(sensors / TEMPERATURES.per_frame))
        yield self.request(0x98)

    @staticmethod
    def _counts(replies: Sequence[bytes]) -> tuple[int, int]:
        prefix = reply_prefix(0x94)
        for index, raw in enumerate(replies, 1):
            if raw.startswith(prefix):
                return status_counts(check_frame(raw, index))
        raise DecodeError("0x94 status: no reply among the frames received, cell count unknown")

    def _decode(self, frames: Sequence[bytes]) -> BatteryState:
        return decode_frames(frames)

    def answer(self, request: bytes, source: StateSource) -> list[bytes]:
        """The BMS's frames for a read request from any sender; silence for anything else."""
        if len(request) != FRAME_LENGTH or not _checksum_ok(request):
            return []
        if request[0] != START or request[3] != DATA_LENGTH:
            return []
        if request[1] not in SENDER_ADDRESSES or request[2] not in SERVED:
            return []
        state = source(self.default_address)
        if state is None:
            return []
        data_id = request[2]
        return [build_frame(BMS_ADDRESS, data_id, data) for data in encode_reply(data_id, state)]
