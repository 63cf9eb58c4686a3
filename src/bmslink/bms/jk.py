"""JK BMS "4E 57" protocol (the UART / RS485 "GPS" port of older JK boards): read-all, command 06.

One request reads everything: the host sends the 21-byte read-all frame and
the BMS answers with one frame of tag records (a tag byte, then a value of a
size fixed per tag; only the cell block 0x79 carries its own length). Frames
are ``4E 57``, a 16-bit length counting everything but the two start bytes, a
4-byte terminal number, command, frame source, frame type, data, a 4-byte
record number, the end marker ``68`` and a 4-byte checksum field whose lower
two bytes are the 16-bit sum of every byte from ``4E`` through ``68``.
115200 8N1, one BMS per port (terminal number 0). Facts:
shared/reference/bms-protocols.md §1a and §6.

Choices where the sources are silent or disagree:

- Records are parsed one after another by the sizes in :data:`REPLY_TAGS`. A
  tag not in that table makes the rest of the frame unreadable (its size is
  unknown), so it is a DecodeError naming the tag and its byte, never a guess.
- Current (0x84): ``jk_current`` "auto" follows tag 0xC0 of the same frame:
  1 = bit 15 set means charging, bits 14..0 are 10 mA; 0 or no 0xC0 = the
  offset rule, current = (10000 - raw) x 10 mA. Any other version is a
  DecodeError (the encoding is unknown; choose "sign-bit" or "offset").
  esphome only implements version 1 and serialbattery always uses it; this
  follows the spec text. The simulated device serves version 1 with the
  sign-bit rule, or version 0 with the offset rule when ``jk_current`` is
  "offset".
- Temperatures (0x80-0x82) follow the spec: raw 0..100 is that many °C, raw
  101..140 is -(raw - 100) °C (esphome and serialbattery differ from it by one
  degree around the boundary). A raw value above 140 is a DecodeError.
- ``temperatures_c`` is [MOSFET 0x80, T1 0x81 (battery box), T2 0x82
  (battery)], the tag order. The battery sensors T1 and T2 give
  ``cell_temp_min_c`` / ``cell_temp_max_c`` and, as their mean,
  ``temperature_c``; the MOSFET sensor is the BMS's own. Tag 0x86 (sensor
  count) is parsed but not used: what an unused sensor reads is not known.
- Alarms: :data:`WARNING_BITS` is the table. Bit 0 (low capacity, SoC under
  the 0xB1 threshold) is the only warning-level bit; it is reported as the
  warning ``low_voltage``, the nearest name for "battery nearly empty". Every
  other bit is a protection (``alarms``). The MOSFET over-temperature bit is
  ``high_temperature``, not ``bms_internal``: it is a temperature protection
  that releases when the board cools, not a fault. The cell voltage
  difference bit is the alarm ``cell_imbalance``: JK trips it from a
  protection setting (0x96). 309_A and 309_B are ``general``; the reserved
  bits 14-15 are ignored. A warning whose alarm is also active is listed
  only as the alarm.
- The simulated device: an alarm name with a bit is sent on the bit in
  :data:`ALARM_ENCODING` (cell-level bits for the voltages, the charge-side
  temperature names on the battery temperature bits); ``short_circuit``,
  ``contactor`` and ``bms_internal`` have no bit and are refused, so a served
  state never hides or relabels them. JK has no warning level besides low
  capacity, so a state's other warnings are dropped (a real JK has none to
  send), and ``low_voltage`` sets bit 0.
- Status 0x8C: bit 0 charge FET and bit 1 discharge FET are
  ``charge_enable`` / ``discharge_enable``; the balancer bit and bit 3
  ("battery dropped") are no state keys. The spec calls bit 3 "1 = normal",
  yet all three real captures read 0 there; the simulated device sends 0,
  like them.
- Capacities: 0xAA (capacity setting) is ``installed_capacity_ah``; 0xB9
  (actual capacity, firmware >= 10.10) is ``capacity_ah`` when non-zero, else
  ``capacity_ah`` is the setting too. 0 in either means "not set": absent.
- Text: 0xBA (manufacturer id) is ``manufacturer``; 0xB7 (software version)
  is ``firmware`` as a whole: it holds hardware and software version in
  formats that vary ("H6.X__S6.1.3S__", "10.XW_S10.07___"), so it is not
  split. 0xB4 (device id, which the spec builds from voltage class, chemistry
  and a production serial number) is ``serial``; 8 characters cannot hold a
  product name (the simulator's "SIM-16S280"), so ``product`` is not carried.
  Text is cut at the first NUL, trailing spaces and 0xFF filler are stripped,
  non-ASCII bytes become U+FFFD (a name must not make the battery
  unreadable), and an empty text is absent.
- Cell entries carry their 1-based index; indices out of sequence are a
  DecodeError (a cell placed on the wrong index would misname the weakest
  cell). The 0x8A cell count must equal the 0x79 block's count.
- Frames of the other commands (01 activate, 02 write, 05 password) are
  accepted and carry no state; replies to 03 (read register; one real capture
  also echoes 03 for a read-all) and 06 are parsed as tag records. Requests
  (frame type 00) give no context: a reply names its own tags.
- The reply framer keeps only frames a BMS sends (type 01 reply, 02 upload),
  so an adapter's echo of the request is dropped (counted in ``bad_frames``)
  instead of being taken for the answer; the request framer keeps only type
  00.
- The simulated device answers only a read-all (command 06, register 00)
  for terminal number 0, with the tags of a real reply in the real order
  (JK-02). Settings it cannot know are served as fixed LFP values, the
  simulator's protection defaults where it has them (:data:`REPLY_TAGS`,
  ``fixed``): cell OVP 3.65 V / release 3.40 V, UVP 2.50 V / release 2.90 V,
  pack OVP / UVP 3.65 / 2.50 V per cell, charge 0..45 °C (release 2 °C
  inside), discharge -20..60 °C, OCP 150 A both ways, balancing from 3.40 V
  at 10 mV, battery type 0 (LiFePO4), sensor count 2. Counters bmslink does
  not keep (total cycle capacity, working time) are 0; the password and
  production date are NULs and "0000". A state with exactly three sensors is
  served in JK order; any other count (the simulator has four cell sensors)
  is served as MOSFET = ``temperature_c`` (else the hottest), T1 = the
  coldest and T2 = the hottest cell sensor, so the cell temperature extremes
  survive. Cell count 3..32 (the 0xA9 setting's range).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from bmslink.bank import cell_extremes
from bmslink.bms.base import (
    BmsProtocol,
    Conversation,
    Framer,
    Request,
    StateSource,
    merge,
)
from bmslink.bms.framing import HuntingFramer
from bmslink.errors import DecodeError, EncodeError
from bmslink.scaling import round_raw
from bmslink.state import ALARM_NAMES, BatteryState

START = b"\x4e\x57"
HEADER_SIZE = 11  # start (2), length (2), terminal number (4), command, source, type
TRAILER_SIZE = 9  # record number (4), end marker (1), checksum field (4)
MIN_FRAME = HEADER_SIZE + TRAILER_SIZE  # a frame without data
#: Longest frame accepted: a 32-cell read-all reply is 339 bytes.
MAX_FRAME = 512
END_MARKER = 0x68
COMMAND_BYTE, SOURCE_BYTE, TYPE_BYTE = 8, 9, 10

READ_REGISTER = 0x03
READ_ALL = 0x06
COMMANDS: dict[int, str] = {
    0x01: "activate",
    0x02: "write register",
    READ_REGISTER: "read register",
    0x05: "password",
    READ_ALL: "read all",
}
#: Replies of these commands carry tag records (03 is also echoed by one firmware for 06).
TAG_COMMANDS = frozenset({READ_REGISTER, READ_ALL})
SOURCE_BMS, SOURCE_PC = 0x00, 0x03
SOURCES: dict[int, str] = {0x00: "BMS", 0x01: "Bluetooth", 0x02: "GPS", SOURCE_PC: "PC"}
TYPE_REQUEST, TYPE_REPLY, TYPE_UPLOAD = 0x00, 0x01, 0x02
FRAME_TYPES: dict[int, str] = {
    TYPE_REQUEST: "read request",
    TYPE_REPLY: "reply",
    TYPE_UPLOAD: "active upload",
}
#: Register id of a read-all request (00 = all).
ALL_REGISTERS = b"\x00"

CELLS_TAG = 0x79
MIN_CELLS, MAX_CELLS = 3, 32
TEMPERATURE_MAX_RAW = 140  # -40 °C

CurrentRule = Literal["sign-bit", "offset"]
#: Tag 0xC0 (protocol version) -> the current encoding it implies.
VERSION_RULES: dict[int, CurrentRule] = {0x00: "offset", 0x01: "sign-bit"}
RULE_VERSIONS: dict[CurrentRule, int] = {rule: v for v, rule in VERSION_RULES.items()}
#: Offset-rule raw value of 0 A.
CURRENT_OFFSET_RAW = 10000
Level = Literal["alarm", "warning"]


@dataclass(frozen=True)
class Tag:
    """One tag record: the tag byte, then ``size`` value bytes, big-endian.

    ``fixed`` is what the simulated device sends for a setting the state has no
    key for (raw; per cell when ``per_cell``); None marks a tag fed from the state.
    """

    tag: int
    size: int
    name: str
    fixed: int | bytes | None = None
    signed: bool = False
    per_cell: bool = False


def _setting(tag: int, name: str, fixed: int, size: int = 2, signed: bool = False) -> Tag:
    return Tag(tag, size, name, fixed, signed)


#: The records after the cell block 0x79, in the order a real read-all reply sends them.
REPLY_TAGS: tuple[Tag, ...] = (
    Tag(0x80, 2, "MOSFET temperature"),
    Tag(0x81, 2, "temperature sensor 1 (battery box)"),
    Tag(0x82, 2, "temperature sensor 2 (battery)"),
    Tag(0x83, 2, "total voltage"),
    Tag(0x84, 2, "current"),
    Tag(0x85, 1, "SoC"),
    _setting(0x86, "temperature sensor count", 2, size=1),
    Tag(0x87, 2, "cycle count"),
    _setting(0x89, "total cycle capacity", 0, size=4),
    Tag(0x8A, 2, "cell count"),
    Tag(0x8B, 2, "warning bitmask"),
    Tag(0x8C, 2, "status bitmask"),
    Tag(0x8E, 2, "pack over-voltage protection (10 mV)", 365, per_cell=True),
    Tag(0x8F, 2, "pack under-voltage protection (10 mV)", 250, per_cell=True),
    _setting(0x90, "cell over-voltage protection (mV)", 3650),
    _setting(0x91, "cell over-voltage recovery (mV)", 3400),
    _setting(0x92, "cell over-voltage delay (s)", 5),
    _setting(0x93, "cell under-voltage protection (mV)", 2500),
    _setting(0x94, "cell under-voltage recovery (mV)", 2900),
    _setting(0x95, "cell under-voltage delay (s)", 5),
    _setting(0x96, "cell voltage difference protection (mV)", 300),
    _setting(0x97, "discharge over-current protection (A)", 150),
    _setting(0x98, "discharge over-current delay (s)", 3),
    _setting(0x99, "charge over-current protection (A)", 150),
    _setting(0x9A, "charge over-current delay (s)", 3),
    _setting(0x9B, "balance start voltage (mV)", 3400),
    _setting(0x9C, "balance trigger difference (mV)", 10),
    _setting(0x9D, "active balancer switch", 1, size=1),
    _setting(0x9E, "MOSFET over-temperature protection (°C)", 90),
    _setting(0x9F, "MOSFET over-temperature recovery (°C)", 70),
    _setting(0xA0, "battery box over-temperature protection (°C)", 70),
    _setting(0xA1, "battery box over-temperature recovery (°C)", 60),
    _setting(0xA2, "battery temperature difference protection (°C)", 20),
    _setting(0xA3, "charge high temperature protection (°C)", 45),
    _setting(0xA4, "discharge high temperature protection (°C)", 60),
    _setting(0xA5, "charge low temperature protection (°C)", 0, signed=True),
    _setting(0xA6, "charge low temperature recovery (°C)", 2, signed=True),
    _setting(0xA7, "discharge low temperature protection (°C)", -20, signed=True),
    _setting(0xA8, "discharge low temperature recovery (°C)", -18, signed=True),
    Tag(0xA9, 1, "cell count setting"),
    Tag(0xAA, 4, "capacity setting (Ah)"),
    _setting(0xAB, "charge MOSFET switch", 1, size=1),
    _setting(0xAC, "discharge MOSFET switch", 1, size=1),
    _setting(0xAD, "current calibration (mA)", 1000),
    _setting(0xAE, "board address", 1, size=1),
    _setting(0xAF, "battery type (0 LiFePO4)", 0, size=1),
    _setting(0xB0, "sleep wait time (s)", 10),
    _setting(0xB1, "low capacity alarm threshold (%)", 20, size=1),
    Tag(0xB2, 10, "parameter password", bytes(10)),
    _setting(0xB3, "dedicated charger switch", 0, size=1),
    Tag(0xB4, 8, "device id"),
    Tag(0xB5, 4, "production date (YYMM)", b"0000"),
    _setting(0xB6, "working time (min)", 0, size=4),
    Tag(0xB7, 15, "software version"),
    _setting(0xB8, "start current calibration", 0, size=1),
    Tag(0xB9, 4, "actual capacity (Ah)"),
    Tag(0xBA, 24, "manufacturer id"),
    Tag(0xC0, 1, "protocol version"),
)
TAGS: dict[int, Tag] = {t.tag: t for t in REPLY_TAGS}

#: Temperature tags in ``temperatures_c`` order, and the two that are battery sensors.
TEMPERATURE_TAGS = (0x80, 0x81, 0x82)
BATTERY_SENSOR_TAGS = (0x81, 0x82)
CURRENT_TAG, CELL_COUNT_TAG, ALARM_TAG, STATUS_TAG = 0x84, 0x8A, 0x8B, 0x8C
CELL_COUNT_SETTING_TAG, VERSION_TAG = 0xA9, 0xC0


@dataclass(frozen=True)
class Number:
    """An unsigned number tag: physical = raw / divisor; raw 0 absent when ``zero_is_absent``."""

    tag: int
    key: str
    divisor: int = 1
    raw_max: int = 0xFFFF
    unit: str = ""
    integer: bool = False
    zero_is_absent: bool = False
    #: The key sent when the state lacks ``key`` (0xAA: the capacity when no setting is known).
    fallback: str | None = None


NUMBERS: tuple[Number, ...] = (
    Number(0x83, "voltage_v", 100, unit=" V"),
    Number(0x85, "soc_pct", raw_max=100, unit=" %"),
    Number(0x87, "cycles", integer=True),
    Number(
        0xAA,
        "installed_capacity_ah",
        raw_max=0xFFFFFFFF,
        unit=" Ah",
        zero_is_absent=True,
        fallback="capacity_ah",
    ),
    Number(0xB9, "capacity_ah", raw_max=0xFFFFFFFF, unit=" Ah", zero_is_absent=True),
)

#: Text tags and their state keys (sizes in :data:`REPLY_TAGS`).
TEXTS: dict[int, str] = {0xB4: "serial", 0xB7: "firmware", 0xBA: "manufacturer"}


@dataclass(frozen=True)
class WarningBit:
    """A bit of the 0x8B warning bitmask and the contract name it reports at its level."""

    bit: int
    name: str
    level: Level
    doc: str


WARNING_BITS: tuple[WarningBit, ...] = (
    WarningBit(0, "low_voltage", "warning", "low capacity (SoC under the 0xB1 threshold)"),
    WarningBit(1, "high_temperature", "alarm", "MOSFET over-temperature"),
    WarningBit(2, "high_voltage", "alarm", "charge over-voltage (pack)"),
    WarningBit(3, "low_voltage", "alarm", "discharge under-voltage (pack)"),
    WarningBit(4, "high_temperature", "alarm", "battery over-temperature"),
    WarningBit(5, "high_charge_current", "alarm", "charge over-current"),
    WarningBit(6, "high_discharge_current", "alarm", "discharge over-current"),
    WarningBit(7, "cell_imbalance", "alarm", "cell voltage difference"),
    WarningBit(8, "high_temperature", "alarm", "battery box over-temperature"),
    WarningBit(9, "low_temperature", "alarm", "battery low temperature"),
    WarningBit(10, "high_voltage", "alarm", "cell over-voltage"),
    WarningBit(11, "low_voltage", "alarm", "cell under-voltage"),
    WarningBit(12, "general", "alarm", "309_A protection"),
    WarningBit(13, "general", "alarm", "309_B protection"),
)
#: The bit the simulated device sets for each alarm name it can send.
ALARM_ENCODING: dict[str, int] = {
    "high_voltage": 10,
    "low_voltage": 11,
    "high_temperature": 4,
    "high_temperature_charge": 4,
    "low_temperature": 9,
    "low_temperature_charge": 9,
    "high_charge_current": 5,
    "high_discharge_current": 6,
    "cell_imbalance": 7,
    "general": 12,
}
#: The bit for each warning name; other warnings have no bit and are not sent.
WARNING_ENCODING: dict[str, int] = {"low_voltage": 0}
#: Status 0x8C bits that are state keys.
STATUS_BITS: tuple[tuple[int, str], ...] = ((0, "charge_enable"), (1, "discharge_enable"))

#: Keys the simulated device cannot serve without (each is a field with no "unknown" value).
REQUIRED_KEYS: tuple[tuple[str, str], ...] = (
    ("cells_v", "tag 0x79 and the cell counts 0x8A, 0xA9"),
    ("voltage_v", "tag 0x83"),
    ("current_a", "tag 0x84"),
    ("soc_pct", "tag 0x85"),
    ("cycles", "tag 0x87"),
    ("capacity_ah", "tags 0xAA and 0xB9"),
    ("charge_enable", "status 0x8C bit 0"),
    ("discharge_enable", "status 0x8C bit 1"),
    ("alarms", "bitmask 0x8B: an unknown alarm state is not served as 'no alarm'"),
)


# -- frames ---------------------------------------------------------------------------------------


def checksum(body: bytes) -> int:
    """16-bit sum of every byte from ``4E`` through the ``68`` end marker."""
    return sum(body) & 0xFFFF


def build_frame(
    command: int, frame_type: int, data: bytes, *, source: int, terminal: int = 0
) -> bytes:
    """A complete frame: header, ``data``, record number 0, end marker, checksum."""
    length = len(data) + MIN_FRAME - len(START)
    body = (
        START
        + length.to_bytes(2, "big")
        + terminal.to_bytes(4, "big")
        + bytes((command, source, frame_type))
        + data
        + bytes(4)
        + bytes((END_MARKER,))
    )
    return body + checksum(body).to_bytes(4, "big")


def read_all_request(terminal: int = 0, source: int = SOURCE_PC) -> bytes:
    """The 21-byte read-all request (JK-01 for terminal 0 from a PC)."""
    return build_frame(READ_ALL, TYPE_REQUEST, ALL_REGISTERS, source=source, terminal=terminal)


def frame_problem(frame: bytes) -> str | None:
    """What is wrong with ``frame`` as a 4E 57 frame (start, length, checksum, end), or None."""
    if len(frame) < MIN_FRAME:
        return f"{len(frame)} bytes, shorter than the {MIN_FRAME} of a frame without data"
    if frame[:2] != START:
        return f"starts with {frame[:2].hex(' ').upper()}, expected 4E 57"
    length = int.from_bytes(frame[2:4], "big")
    if length + len(START) != len(frame):
        return (
            f"wrong length: length field 0x{length:04X} (bytes 2-3) says {length + len(START)} "
            f"bytes, the frame has {len(frame)}"
        )
    expected = checksum(frame[:-4])
    got = int.from_bytes(frame[-4:], "big")
    if got != expected:
        return f"checksum mismatch: expected {expected:08X}, got {got:08X}"
    if frame[-5] != END_MARKER:
        return f"end marker at byte {len(frame) - 5} is {frame[-5]:02X}, expected {END_MARKER:02X}"
    return None


def _frame_length(head: bytes) -> int | None:
    if len(head) < 4:
        return None
    total = int.from_bytes(head[2:4], "big") + len(START)
    return total if total >= MIN_FRAME else 0


def _framer(want_requests: bool) -> HuntingFramer:
    def check(frame: bytes) -> bool:
        is_request = len(frame) > TYPE_BYTE and frame[TYPE_BYTE] == TYPE_REQUEST
        return frame_problem(frame) is None and is_request == want_requests

    return HuntingFramer(START, _frame_length, check, max_length=MAX_FRAME)


@dataclass(frozen=True)
class JkFrame:
    """A checked frame's header fields and its data (between header and trailer)."""

    terminal: int
    command: int
    source: int
    frame_type: int
    data: bytes

    @property
    def is_request(self) -> bool:
        return self.frame_type == TYPE_REQUEST


def _known(value: int, names: dict[int, str], what: str, byte: int, index: int) -> None:
    if value not in names:
        known = ", ".join(f"{k:02X} {v}" for k, v in names.items())
        raise DecodeError(
            f"frame {index}: unknown {what} 0x{value:02X} at byte {byte} (known: {known})"
        )


def parse_frame(frame: bytes, index: int = 1) -> JkFrame:
    """The header of a checked frame; DecodeError names the frame, byte and problem."""
    problem = frame_problem(frame)
    if problem is not None:
        raise DecodeError(f"frame {index}: {problem}")
    command, source, frame_type = frame[COMMAND_BYTE], frame[SOURCE_BYTE], frame[TYPE_BYTE]
    _known(command, COMMANDS, "command", COMMAND_BYTE, index)
    _known(source, SOURCES, "frame source", SOURCE_BYTE, index)
    _known(frame_type, FRAME_TYPES, "frame type", TYPE_BYTE, index)
    terminal = int.from_bytes(frame[4:8], "big")
    return JkFrame(terminal, command, source, frame_type, frame[HEADER_SIZE:-TRAILER_SIZE])


# -- tag records ----------------------------------------------------------------------------------


@dataclass
class Records:
    """The tag records of one reply: cell voltages and the other values by tag."""

    cells: list[float] | None = None
    #: tag -> (byte offset of the tag in the frame, value bytes)
    values: dict[int, tuple[int, bytes]] = field(default_factory=dict)


def _tag_name(tag: int) -> str:
    return "cell voltages" if tag == CELLS_TAG else TAGS[tag].name


def parse_records(frame: bytes, index: int = 1) -> Records:
    """Walk the records of a checked frame from byte 11 to the trailer, by their sizes."""
    records = Records()
    pos, end = HEADER_SIZE, len(frame) - TRAILER_SIZE
    while pos < end:
        tag = frame[pos]
        if tag == CELLS_TAG:
            records.cells = _parse_cells(frame, pos, end, index)
            pos += 2 + frame[pos + 1]
            continue
        spec = TAGS.get(tag)
        if spec is None:
            raise DecodeError(
                f"frame {index}: unknown tag 0x{tag:02X} at byte {pos}: its size is not known, "
                "so the records after it cannot be located"
            )
        if pos + 1 + spec.size > end:
            raise DecodeError(
                f"frame {index}: tag 0x{tag:02X} ({spec.name}) at byte {pos} needs "
                f"{spec.size} value bytes, only {end - pos - 1} left before the trailer"
            )
        records.values[tag] = (pos, frame[pos + 1 : pos + 1 + spec.size])
        pos += 1 + spec.size
    return records


def _parse_cells(frame: bytes, pos: int, end: int, index: int) -> list[float]:
    where = f"frame {index}: tag 0x79 (cell voltages) at byte {pos}"
    if pos + 1 >= end:
        raise DecodeError(f"{where}: the length byte is missing")
    size = frame[pos + 1]
    if size % 3:
        raise DecodeError(f"{where}: length {size} is not a multiple of 3 (index + mV per cell)")
    if pos + 2 + size > end:
        raise DecodeError(
            f"{where}: length {size} needs bytes {pos + 2}..{pos + 1 + size}, "
            f"the records end at byte {end - 1}"
        )
    cells = []
    for number, at in enumerate(range(pos + 2, pos + 2 + size, 3), 1):
        if frame[at] != number:
            raise DecodeError(
                f"{where}: cell entry at byte {at} has index {frame[at]}, expected {number}"
            )
        cells.append(int.from_bytes(frame[at + 1 : at + 3], "big") / 1000)
    return cells


def celsius_from_raw(raw: int) -> int:
    """Spec rule: 0..100 is °C, above 100 is below zero (101 = -1 °C)."""
    return raw if raw <= 100 else 100 - raw


def raw_from_celsius(celsius: float, what: str) -> int:
    if not math.isfinite(celsius):
        raise EncodeError(f"{what} = {celsius} is not a number")
    whole = round_raw(celsius, "nearest")
    if not -40 <= whole <= 100:
        raise EncodeError(f"{what} = {celsius:g} °C is outside -40..100 °C")
    return whole if whole >= 0 else 100 - whole


def current_from_raw(raw: int, rule: CurrentRule) -> float:
    """Amps, + = charging, from the 0x84 raw value under ``rule``."""
    if rule == "sign-bit":
        amps = (raw & 0x7FFF) / 100
        return amps if raw & 0x8000 else -amps or 0.0
    return (CURRENT_OFFSET_RAW - raw) / 100 or 0.0


def raw_from_current(amps: float, rule: CurrentRule) -> int:
    what = f"current_a (tag 0x84, {rule} encoding)"
    if not math.isfinite(amps):
        raise EncodeError(f"{what} = {amps} is not a number")
    steps = round_raw(amps * 100, "nearest")
    if rule == "sign-bit":
        if abs(steps) > 0x7FFF:
            raise EncodeError(f"{what} = {amps:g} A is outside -327.67..327.67 A")
        return 0x8000 | steps if steps > 0 else -steps
    raw = CURRENT_OFFSET_RAW - steps
    if not 0 <= raw <= 0xFFFF:
        raise EncodeError(f"{what} = {amps:g} A is outside -555.35..100 A")
    return raw


def decode_text(raw: bytes) -> str | None:
    """Text up to the first NUL, trailing spaces and 0xFF stripped; empty = absent."""
    text = raw.split(b"\x00", 1)[0].rstrip(b" \xff").decode("ascii", errors="replace")
    return text or None


def alarms_from_word(word: int) -> tuple[list[str], list[str]]:
    """(alarms, warnings) in contract order from the 0x8B bitmask."""
    seen: dict[Level, set[str]] = {"alarm": set(), "warning": set()}
    for bit in WARNING_BITS:
        if word >> bit.bit & 1:
            seen[bit.level].add(bit.name)
    alarms = [n for n in ALARM_NAMES if n in seen["alarm"]]
    warnings = [n for n in ALARM_NAMES if n in seen["warning"] and n not in seen["alarm"]]
    return alarms, warnings


# -- decode ---------------------------------------------------------------------------------------


def decode_records(records: Records, index: int, jk_current: str) -> BatteryState:
    """The state one reply's records carry; DecodeError names the tag and its byte."""
    values: dict[str, Any] = {}
    raw = {tag: int.from_bytes(value, "big") for tag, (_, value) in records.values.items()}

    def where(tag: int) -> str:
        return f"frame {index}: tag 0x{tag:02X} ({_tag_name(tag)}) at byte {records.values[tag][0]}"

    cells = records.cells
    if cells:
        values["cells_v"] = cells
        values.update(cell_extremes(cells))
    if cells is not None and CELL_COUNT_TAG in raw and raw[CELL_COUNT_TAG] != len(cells):
        raise DecodeError(
            f"{where(CELL_COUNT_TAG)}: says {raw[CELL_COUNT_TAG]} cells, "
            f"tag 0x79 carries {len(cells)}"
        )

    temps: dict[int, float] = {}
    for tag in TEMPERATURE_TAGS:
        if tag in raw:
            if raw[tag] > TEMPERATURE_MAX_RAW:
                raise DecodeError(
                    f"{where(tag)}: raw {raw[tag]} is outside 0..{TEMPERATURE_MAX_RAW} "
                    "(100..-40 °C)"
                )
            temps[tag] = float(celsius_from_raw(raw[tag]))
    if temps:
        values["temperatures_c"] = [temps[tag] for tag in TEMPERATURE_TAGS if tag in temps]
    battery = [temps[tag] for tag in BATTERY_SENSOR_TAGS if tag in temps]
    if battery:
        values["cell_temp_min_c"] = min(battery)
        values["cell_temp_max_c"] = max(battery)
        values["temperature_c"] = sum(battery) / len(battery)

    for number in NUMBERS:
        if number.tag not in raw:
            continue
        value = raw[number.tag]
        if value == 0 and number.zero_is_absent:
            continue
        if value > number.raw_max:
            raise DecodeError(f"{where(number.tag)}: {value} is outside 0..{number.raw_max}")
        values[number.key] = value if number.integer else value / number.divisor
    if "capacity_ah" not in values and "installed_capacity_ah" in values:
        values["capacity_ah"] = values["installed_capacity_ah"]

    if CURRENT_TAG in raw:
        rule = _current_rule(jk_current, raw.get(VERSION_TAG), lambda: where(VERSION_TAG))
        values["current_a"] = current_from_raw(raw[CURRENT_TAG], rule)

    if ALARM_TAG in raw:
        values["alarms"], values["warnings"] = alarms_from_word(raw[ALARM_TAG])
    if STATUS_TAG in raw:
        for bit, key in STATUS_BITS:
            values[key] = bool(raw[STATUS_TAG] >> bit & 1)
    for tag, key in TEXTS.items():
        if tag in records.values:
            text = decode_text(records.values[tag][1])
            if text is not None:
                values[key] = text
    return BatteryState(**values)


def _current_rule(jk_current: str, version: int | None, where: Callable[[], str]) -> CurrentRule:
    """The 0x84 encoding: forced by ``jk_current``, else by the protocol version 0xC0."""
    if jk_current == "sign-bit":
        return "sign-bit"
    if jk_current == "offset":
        return "offset"
    if version is None:
        return "offset"
    rule = VERSION_RULES.get(version)
    if rule is None:
        raise DecodeError(
            f"{where()}: protocol version 0x{version:02X} is unknown, so the current's "
            "encoding is too (set jk_current to sign-bit or offset)"
        )
    return rule


# -- encode (the simulated device) ----------------------------------------------------------------


def _require(state: BatteryState) -> None:
    for key, why in REQUIRED_KEYS:
        if getattr(state, key) is None:
            raise EncodeError(f"missing {key}: the JK read-all reply needs it ({why})")


def _number_raw(number: Number, value: float) -> int:
    what = f"{number.key} (tag 0x{number.tag:02X} {_tag_name(number.tag)})"
    if isinstance(value, bool) or not math.isfinite(value):
        raise EncodeError(f"{what} = {value!r} is not a number")
    raw = round_raw(value * number.divisor, "nearest")
    low = 1 if number.zero_is_absent else 0
    if not low <= raw <= number.raw_max:
        raise EncodeError(
            f"{what} = {value:g}{number.unit} is outside "
            f"{low / number.divisor:g}..{number.raw_max / number.divisor:g}{number.unit}"
        )
    return raw


def _text_raw(tag: int, key: str, text: str | None) -> bytes:
    size = TAGS[tag].size
    if text is None:
        return bytes(size)
    what = f"{key} (tag 0x{tag:02X} {TAGS[tag].name})"
    if not all(" " <= ch <= "~" for ch in text):
        raise EncodeError(f"{what} {text!r} is not printable ASCII")
    if len(text) > size:
        raise EncodeError(f"{what} {text!r} is longer than {size} characters")
    return text.encode("ascii").ljust(size, b"\x00")


def _sensor_temperatures(state: BatteryState) -> tuple[float, float, float]:
    """(MOSFET, T1, T2) for a state: three sensors in JK order, else from the extremes."""
    temps = state.temperatures_c
    if temps is not None and len(temps) == len(TEMPERATURE_TAGS):
        return temps[0], temps[1], temps[2]
    low = state.cell_temp_min_c if state.cell_temp_min_c is not None else min(temps or [math.nan])
    high = state.cell_temp_max_c if state.cell_temp_max_c is not None else max(temps or [math.nan])
    if math.isnan(low) or math.isnan(high):
        raise EncodeError(
            "missing temperatures_c: the JK reply carries MOSFET, T1 and T2 (tags 0x80-0x82); "
            "give three sensors in that order, or cell sensors / cell_temp_min_c and _max_c"
        )
    mosfet = state.temperature_c if state.temperature_c is not None else high
    return mosfet, low, high


def _alarm_word(state: BatteryState) -> int:
    word = 0
    for name in state.alarms or []:
        bit = ALARM_ENCODING.get(name)
        if bit is None:
            can = ", ".join(n for n in ALARM_NAMES if n in ALARM_ENCODING)
            raise EncodeError(
                f"alarm {name!r} has no bit in the JK warning bitmask 0x8B; refusing to serve "
                f"a state that would hide it (alarms it can carry: {can})"
            )
        word |= 1 << bit
    for name in state.warnings or []:
        bit = WARNING_ENCODING.get(name)
        if bit is not None:
            word |= 1 << bit
    return word


def encode_reply(state: BatteryState, rule: CurrentRule = "sign-bit") -> bytes:
    """The read-all reply a JK BMS sends for ``state`` (current encoded by ``rule``).

    EncodeError names a missing key, or a value outside its tag's range.
    """
    _require(state)
    cells = list(state.cells_v or [])
    if not MIN_CELLS <= len(cells) <= MAX_CELLS:
        raise EncodeError(
            f"cells_v: the JK read-all reply carries {MIN_CELLS}..{MAX_CELLS} cells, "
            f"got {len(cells)}"
        )
    data = bytearray((CELLS_TAG, 3 * len(cells)))
    for i, volts in enumerate(cells):
        cell = Number(CELLS_TAG, f"cells_v[{i}]", 1000, unit=" V", zero_is_absent=True)
        data += bytes((i + 1,)) + _number_raw(cell, volts).to_bytes(2, "big")

    raws: dict[int, int | bytes] = {}
    for tag, celsius in zip(TEMPERATURE_TAGS, _sensor_temperatures(state), strict=True):
        raws[tag] = raw_from_celsius(celsius, f"temperature (tag 0x{tag:02X} {TAGS[tag].name})")
    for number in NUMBERS:
        value = getattr(state, number.key)
        if value is None and number.fallback is not None:
            value = getattr(state, number.fallback)
        if value is None:
            raise EncodeError(f"missing {number.key}: the JK read-all reply needs it")
        raws[number.tag] = _number_raw(number, value)
    if state.current_a is None:
        raise EncodeError("missing current_a: the JK read-all reply needs it (tag 0x84)")
    raws[CURRENT_TAG] = raw_from_current(state.current_a, rule)
    raws[CELL_COUNT_TAG] = raws[CELL_COUNT_SETTING_TAG] = len(cells)
    raws[ALARM_TAG] = _alarm_word(state)
    raws[STATUS_TAG] = sum(1 << bit for bit, key in STATUS_BITS if getattr(state, key))
    for tag, key in TEXTS.items():
        raws[tag] = _text_raw(tag, key, getattr(state, key))
    raws[VERSION_TAG] = RULE_VERSIONS[rule]

    for spec in REPLY_TAGS:
        value = raws.get(spec.tag, spec.fixed)
        if isinstance(value, int):
            value *= len(cells) if spec.per_cell else 1
            value = value.to_bytes(spec.size, "big", signed=spec.signed)
        if value is None or len(value) != spec.size:
            raise EncodeError(f"tag 0x{spec.tag:02X} ({spec.name}) has no value to send")
        data += bytes((spec.tag,)) + value
    return build_frame(READ_ALL, TYPE_REPLY, bytes(data), source=SOURCE_BMS)


# -- the protocol ---------------------------------------------------------------------------------


class JkProtocol(BmsProtocol):
    """JK BMS over its "4E 57" UART / RS485 port: one read-all request per poll."""

    name: ClassVar[str] = "jk"
    title: ClassVar[str] = 'JK BMS ("4E 57" UART/RS485 protocol)'
    baudrate: ClassVar[int] = 115200
    default_address: ClassVar[int] = 0
    addresses: ClassVar[range] = range(0, 1)
    keys: ClassVar[frozenset[str]] = frozenset(
        {
            "cells_v",
            "cell_min_v",
            "cell_max_v",
            "cell_min_id",
            "cell_max_id",
            "temperatures_c",
            "cell_temp_min_c",
            "cell_temp_max_c",
            "temperature_c",
            "voltage_v",
            "current_a",
            "soc_pct",
            "cycles",
            "capacity_ah",
            "installed_capacity_ah",
            "charge_enable",
            "discharge_enable",
            "alarms",
            "warnings",
        }
    )

    # -- host side -------------------------------------------------------------------------------

    def reply_framer(self) -> Framer:
        """Frames a BMS sends (reply or upload); an echoed request is dropped."""
        return _framer(want_requests=False)

    def conversation(self, address: int, *, identity: bool) -> Conversation:
        """One read-all; it carries the names too, so ``identity`` adds nothing."""
        self.check_address(address)
        yield Request(read_all_request(address), "06 read all", reply_prefix=START)

    def _decode(self, frames: Sequence[bytes]) -> BatteryState:
        states = []
        for index, raw in enumerate(frames, 1):
            frame = parse_frame(raw, index)
            if frame.is_request or frame.command not in TAG_COMMANDS:
                continue
            records = parse_records(raw, index)
            states.append(decode_records(records, index, self.options.jk_current))
        return merge(states)

    # -- device side -----------------------------------------------------------------------------

    def request_framer(self) -> Framer:
        return _framer(want_requests=True)

    def answer(self, request: bytes, source: StateSource) -> list[bytes]:
        """The read-all reply for terminal 0; silence for anything else (writes included)."""
        try:
            frame = parse_frame(request)
        except DecodeError:
            return []
        if not frame.is_request or frame.command != READ_ALL or frame.data != ALL_REGISTERS:
            return []
        if frame.terminal not in self.addresses:
            return []
        state = source(frame.terminal)
        if state is None:
            return []
        rule: CurrentRule = "offset" if self.options.jk_current == "offset" else "sign-bit"
        return [encode_reply(state, rule)]
