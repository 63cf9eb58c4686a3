"""JK-PB inverter BMS over Modbus RTU: the live block read as a byte image, one field table.

The JK-PB ("inverter BMS", RJ45 RS485, 115200 8N1, DIP address 1-15) answers
function 03 reads whose register addresses are *byte offsets* into its
internal structures: register address = block base + byte offset, a read of
``count`` registers returns ``2 * count`` bytes packed back to back from that
offset. bmslink therefore reads the live block (base 0x1200) as a byte image
in two requests (0x1200 and 0x1280, 64 registers each: bytes 0..255, up to
battery temperature 5 at offset 252) and decodes every field from the image
by its offset. The same structure also travels as the BLE-style 300-byte
``55 AA EB 90`` frame (type 0x02) that an FC16 trigger makes the BMS send:
little-endian, at offset + 6, with an 8-bit sum at byte 299. One table,
:data:`LIVE_FIELDS`, serves both forms and both directions. Facts:
shared/reference/bms-protocols.md §1b, §1c and §6.

Choices where the sources are silent or disagree:

- Byte order: in the Modbus image every multi-byte value is big-endian, 32-bit
  values high word first (esphome's ``U_DWORD``, after its fix of the
  word-swapped reading); in the 55AA frame everything is little-endian. A u8
  sits at its own byte offset in both forms: of the two u8 in one register the
  one at the lower (even) offset is the high byte, e.g. 0x12A6 = balancing
  state (166) / SoC (167).
- A reply's byte count must be ``2 * count`` of the request before it (the
  "packed" replies the esphome notes describe are exactly this image); a
  reply carries no address, so a register reply without its request is an
  error. Replies to reads outside the blocks bmslink maps (settings, 0x1500
  ...) are checked (CRC, length) and ignored; so are FC16 triggers and their
  acknowledgements, and the settings frame (type 0x01).
- The cell count is the cell-present bitmask (0x1240): a cell whose bit is
  clear is not in ``cells_v``. Cell ids are the cell numbers. The BMS's own
  max/min cell numbers (0x1248, firmware-dependent) are sent, never decoded.
- Temperatures: ``temperatures_c`` lists the battery sensors T1..T5 and then
  the MOSFET sensor (battery sensors first, the power stage last, as the
  Seplos V3 map does). T1/T2 are at 156/158 and T3/T4/T5 at 248/250/252 as
  the vendor table reads; serialbattery reads "T3/T4" one slot later (250/252)
  and esphome's BLE decoder swaps those two, so T3..T5 placement is the least
  certain part of the map. The byte at 0x12D0 (208) is named "sensor absent"
  in the vendor table, but a set bit means the sensor is *fitted*: a real
  PB2A16S15P frame (mpp-solar capture) has 0xFF there with six plausible
  readings, and serialbattery shows a sensor only when its bit is set. Bit 0
  MOSFET, bits 1-5 T1-T5; a sensor whose bit is clear is left out (when the
  byte was not read, every sensor read is listed). ``cell_temp_min_c`` /
  ``cell_temp_max_c`` cover T1..T5 only; ``temperature_c`` is the mean of
  T1..T5 (in raw 0.1 °C steps, half up), absent with no battery sensor: the
  MOSFET temperature is not the battery's.
- Limits: none. The settings block (0x1000) holds charge/discharge
  over-current *protection* currents (0x102C/0x1038; serialbattery uses them as
  max currents, esphome calls them "continued" currents) and the request
  charge/float voltages per cell (RCV/RFV). A trip threshold is not a
  continuous limit: an inverter told to charge at it runs on the edge of the
  BMS cutting off. RCV x cells would be a static charge voltage that stays
  wrong while the BMS is in float (the float switch-over is not in the live
  block). bmslink's own limit logic sets CCL/DCL/CVL instead, so the settings
  block is not read (nor served) at all.
- Identity (``identity=True``): the about block (0x1400, 46 registers, bytes
  0..91) read once per connection. Layout = about frame offsets - 6: vendor
  id (0, 16 bytes) is the model ("JK_PB2A16S15P") and becomes ``product``;
  hardware version (16, 8) ``hardware``; software version (24, 8)
  ``firmware``; serial number (80, 11) ``serial``. The reference (after
  serialbattery) puts the serial at 40 (frame 46); in the real mpp-solar about
  frame that field holds the user-set device name ("ATR BMS") while 80 (frame
  86) holds the digits of the serial, which is also esphome's layout, so
  bmslink takes 80. ``manufacturer`` is not carried. An exception reply to the
  about read is tolerated (identity is optional), any other is an error.
- Alarms: the 0x12A0 bitmask, table :data:`ALARM_BITS`. Protection events are
  alarms; wire resistance, GPS heartbeat, "modify password" and the battery
  over-temperature *alarm* (bit 21, below the protection) are warnings. A set
  bit the table does not know is reported as a ``general`` alarm rather than
  hidden. A name present as an alarm is not repeated as a warning.
- The simulated device (``answer``) serves FC03 reads of any start/count
  inside the live block (bytes 0..255) and the about block (bytes 0..91), and
  the FC16 trigger 0x1620 (cell-info frame + acknowledgement) and 0x161C
  (about frame + acknowledgement); other reads get exception 02 (illegal data
  address), other writes and functions exception 01, requests for another
  slave silence. It needs ``voltage_v``, ``current_a``, ``soc_pct`` (whole
  %), ``remaining_ah``, ``capacity_ah``, ``cycles``, ``cells_v`` (1..32) and
  ``alarms``; the FET bytes come from ``charge_enable`` / ``discharge_enable``
  or, without them, from whether the matching current limit is above 0.
  ``temperatures_c`` (0..6 values, the last one the MOSFET) sets the
  sensor-fitted byte. Absent SoH is sent as 0 (and raw 0 decodes as absent).
  An alarm the bitmask cannot carry (``low_temperature``, ``cell_imbalance``,
  ``general``) is refused; warnings it cannot carry are dropped, as a real
  JK-PB has no such warning to send. Everything else is sent as 0 (wire
  resistances, balancing, runtime, recovery timers, heater): bmslink keeps no
  such value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from bmslink.bms.framing import (
    HuntingFramer,
    modbus_crc_ok,
    modbus_request_framer,
    modbus_rtu_length,
)
from bmslink.bms.modbus_rtu import (
    ModbusException,
    ReadRequest,
    build_exception_reply,
    build_read_request,
    build_register_reply,
    check_crc,
    parse_read_request,
    parse_register_reply,
    with_crc,
)
from bmslink.errors import DecodeError, EncodeError
from bmslink.scaling import decimal_places, round_raw
from bmslink.state import ALARM_NAMES, BatteryState

READ = 0x03  # read holding registers: every JK-PB read
WRITE_MULTIPLE = 0x10  # the frame triggers
MAX_CELLS = 32

#: The BLE-style frame: sync, type, counter, structure at offset + 6, sum8 at 299.
SYNC = b"\x55\xaa\xeb\x90"
FRAME_LENGTH = 300
FRAME_HEADER = 6
FRAME_CHECKSUM_AT = 299

Kind = Literal["u8", "u16", "s16", "u32", "s32", "text"]
ByteOrder = Literal["big", "little"]
#: width in bytes and signedness of each number kind
FORMATS: dict[str, tuple[int, bool]] = {
    "u8": (1, False),
    "u16": (2, False),
    "s16": (2, True),
    "u32": (4, False),
    "s32": (4, True),
}


@dataclass(frozen=True)
class Field:
    """One value at a byte offset of a block: physical = raw * scale.

    ``key`` is the BatteryState key the value decodes to directly; fields
    without one (cells, temperatures, bitmasks) are read by name and put
    together in :meth:`JkPbProtocol._decode`, or are sent only.
    """

    offset: int
    kind: Kind
    name: str
    scale: float = 1.0
    key: str | None = None
    integer: bool = False
    #: Raw 0 is no reading: an absent value is sent as 0 and 0 decodes as absent.
    zero_is_absent: bool = False
    high: float | None = None  # physical upper bound tighter than the raw range
    #: A second copy of ``key``: decoded only when no other field gave it.
    fallback: bool = False
    size: int = 0  # text fields: bytes
    decoded: bool = True  # False: sent by the simulated device, never decoded
    doc: str = ""

    @property
    def width(self) -> int:
        return self.size if self.kind == "text" else FORMATS[self.kind][0]

    def raw_range(self) -> tuple[int, int]:
        width, signed = FORMATS[self.kind]
        bits = 8 * width
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        return (max(low, 1) if self.zero_is_absent else low), high

    def read(self, data: bytes | bytearray, start: int, order: ByteOrder) -> int | bytes:
        at = start + self.offset
        chunk = bytes(data[at : at + self.width])
        if self.kind == "text":
            return chunk
        return int.from_bytes(chunk, order, signed=FORMATS[self.kind][1])

    def write(self, buf: bytearray, start: int, order: ByteOrder, raw: int | bytes) -> None:
        at = start + self.offset
        if isinstance(raw, bytes):
            buf[at : at + self.width] = raw.ljust(self.width, b"\x00")
        else:
            buf[at : at + self.width] = raw.to_bytes(
                self.width, order, signed=FORMATS[self.kind][1]
            )

    def physical(self, raw: int) -> float | int | None:
        if self.zero_is_absent and raw == 0:
            return None
        if self.integer:
            return raw
        return round(raw * self.scale, decimal_places(self.scale))

    def to_raw(self, value: float, label: str, where: str) -> int:
        """The raw value for ``value``; EncodeError naming ``label``, the range and the place."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EncodeError(f"{label} = {value!r} is not a number ({where})")
        if not math.isfinite(value):
            raise EncodeError(f"{label} = {value} is not a number ({where})")
        raw = round_raw(value / self.scale, "nearest")
        low, high = self.raw_range()
        if (self.high is not None and value > self.high) or not low <= raw <= high:
            top = high * self.scale if self.high is None else min(high * self.scale, self.high)
            places = decimal_places(self.scale)
            raise EncodeError(
                f"{label} = {value:.12g} is outside {round(low * self.scale, places):.12g}"
                f"..{round(top, places):.12g} ({where})"
            )
        return raw


@dataclass(frozen=True)
class Block:
    """A register block: its base address, the addresses it spans, what bmslink maps in it."""

    name: str
    base: int
    span: int  # bytes (= register addresses) the block spans
    served: int  # bytes 0..served-1 the simulated device answers
    fields: tuple[Field, ...]
    frame_type: int  # the 55AA frame type that carries the same structure

    def where(self, offset: int) -> str:
        return f"offset {offset}, register 0x{self.base + offset:04X}"


def _cell_fields() -> tuple[Field, ...]:
    return tuple(
        Field(2 * i, "u16", f"cell{i + 1}", 0.001, doc=f"cell {i + 1} voltage, mV")
        for i in range(MAX_CELLS)
    )


#: The live block (base 0x1200) as far as bmslink maps it; bytes not listed are sent as 0.
LIVE_FIELDS: tuple[Field, ...] = (
    *_cell_fields(),
    Field(64, "u32", "cell_mask", doc="cell-present bitmask, bit i = cell i + 1"),
    Field(68, "u16", "cell_average", 0.001, decoded=False, doc="mean cell voltage, mV"),
    Field(70, "u16", "cell_delta", 0.001, decoded=False, doc="max - min cell voltage, mV"),
    Field(72, "u8", "cell_max_index", decoded=False, doc="0-based; firmware-dependent"),
    Field(73, "u8", "cell_min_index", decoded=False, doc="0-based; firmware-dependent"),
    Field(138, "s16", "t_mos", 0.1, doc="MOSFET temperature, 0.1 °C"),
    Field(144, "u32", "voltage", 0.001, key="voltage_v", doc="pack voltage, mV"),
    Field(148, "u32", "power", 0.001, decoded=False, doc="pack power |V x I|, mW"),
    Field(152, "s32", "current", 0.001, key="current_a", doc="mA, + = charging"),
    Field(156, "s16", "t1", 0.1, doc="battery temperature 1, 0.1 °C"),
    Field(158, "s16", "t2", 0.1, doc="battery temperature 2, 0.1 °C"),
    Field(160, "u32", "alarm_bits", doc="alarm bitmask, table ALARM_BITS"),
    Field(167, "u8", "soc", key="soc_pct", high=100, doc="SoC %, low byte of 0x12A6"),
    Field(168, "s32", "remaining", 0.001, key="remaining_ah", doc="remaining capacity, mAh"),
    Field(172, "u32", "full_capacity", 0.001, key="capacity_ah", doc="full-charge capacity"),
    Field(176, "u32", "cycles", key="cycles", integer=True, doc="cycle count"),
    Field(184, "u8", "soh", key="soh_pct", high=100, zero_is_absent=True, doc="SoH %"),
    Field(192, "u8", "charge_fet", doc="charge MOSFET, 1 = on"),
    Field(193, "u8", "discharge_fet", doc="discharge MOSFET, 1 = on"),
    Field(208, "u8", "sensors_fitted", doc="bit set = sensor fitted (see module doc)"),
    Field(228, "u16", "voltage_10mv", 0.01, key="voltage_v", fallback=True, doc="10 mV copy"),
    Field(248, "s16", "t3", 0.1, doc="battery temperature 3, 0.1 °C"),
    Field(250, "s16", "t4", 0.1, doc="battery temperature 4, 0.1 °C"),
    Field(252, "s16", "t5", 0.1, doc="battery temperature 5, 0.1 °C"),
)

#: The about block (base 0x1400): about-frame offsets - 6.
ABOUT_FIELDS: tuple[Field, ...] = (
    Field(0, "text", "vendor", key="product", size=16, doc="vendor id, the model"),
    Field(16, "text", "hardware_version", key="hardware", size=8),
    Field(24, "text", "software_version", key="firmware", size=8),
    Field(80, "text", "serial_number", key="serial", size=11, doc="frame offset 86"),
)

SETTINGS = Block("settings", 0x1000, 0x200, 0, (), 0x01)
LIVE = Block("live", 0x1200, 0x100, 0x100, LIVE_FIELDS, 0x02)
ABOUT = Block("about", 0x1400, 0x100, 92, ABOUT_FIELDS, 0x03)
BLOCKS: tuple[Block, ...] = (SETTINGS, LIVE, ABOUT)
BLOCK_BY_FRAME_TYPE: dict[int, Block] = {b.frame_type: b for b in BLOCKS}

#: One poll cycle: (block, byte offset, register count, what).
LIVE_READS: tuple[tuple[Block, int, int, str], ...] = (
    (LIVE, 0x00, 64, "live block 0x1200-0x127F (cells, cell bitmask, MOSFET temperature)"),
    (LIVE, 0x80, 64, "live block 0x1280-0x12FF (pack values, alarms, FETs, T1-T5)"),
)
ABOUT_READ: tuple[Block, int, int, str] = (
    ABOUT,
    0,
    46,
    "about block 0x1400-0x145B (model, versions, serial)",
)

#: FC16 bodies (after the slave byte, before the CRC) that make the BMS send a frame.
TRIGGERS: dict[bytes, Block] = {
    bytes.fromhex("10 16 20 00 01 02 00 00"): LIVE,
    bytes.fromhex("10 16 1C 00 01 02 00 00"): ABOUT,
}


@dataclass(frozen=True)
class Sensor:
    """A temperature field, its bit in the sensor-fitted byte, and whether it is a battery one."""

    name: str
    bit: int
    battery: bool


#: ``temperatures_c`` order: battery sensors T1..T5, then the MOSFET.
TEMPERATURE_SENSORS: tuple[Sensor, ...] = (
    Sensor("t1", 1, True),
    Sensor("t2", 2, True),
    Sensor("t3", 3, True),
    Sensor("t4", 4, True),
    Sensor("t5", 5, True),
    Sensor("t_mos", 0, False),
)

Level = Literal["alarm", "warning"]


@dataclass(frozen=True)
class AlarmBit:
    """A bit of the 0x12A0 alarm bitmask as one contract name at one level.

    ``send``: the simulated device sets this bit for the name (the first such
    bit per name and level); False for bits that would misname the cause.
    """

    bit: int
    name: str
    level: Level
    doc: str
    send: bool = True


ALARM_BITS: tuple[AlarmBit, ...] = (
    AlarmBit(0, "general", "warning", "balance-lead (wire) resistance"),
    AlarmBit(1, "bms_internal", "alarm", "MOSFET over-temperature protection", send=False),
    AlarmBit(2, "bms_internal", "alarm", "cell quantity does not match", send=False),
    AlarmBit(3, "bms_internal", "alarm", "current sensor error"),
    AlarmBit(4, "high_voltage", "alarm", "cell over-voltage protection"),
    AlarmBit(5, "high_voltage", "alarm", "battery over-voltage protection"),
    AlarmBit(6, "high_charge_current", "alarm", "charge over-current protection"),
    AlarmBit(7, "short_circuit", "alarm", "charge short-circuit protection", send=False),
    AlarmBit(8, "high_temperature_charge", "alarm", "charge over-temperature protection"),
    AlarmBit(9, "low_temperature_charge", "alarm", "charge under-temperature protection"),
    AlarmBit(10, "bms_internal", "alarm", "CPU / aux communication error"),
    AlarmBit(11, "low_voltage", "alarm", "cell under-voltage protection"),
    AlarmBit(12, "low_voltage", "alarm", "battery under-voltage protection"),
    AlarmBit(13, "high_discharge_current", "alarm", "discharge over-current protection"),
    AlarmBit(14, "short_circuit", "alarm", "discharge short-circuit protection"),
    AlarmBit(15, "high_temperature", "alarm", "discharge over-temperature protection"),
    AlarmBit(16, "contactor", "alarm", "charge MOSFET fault"),
    AlarmBit(17, "contactor", "alarm", "discharge MOSFET fault"),
    AlarmBit(18, "general", "warning", "GPS disconnected", send=False),
    AlarmBit(19, "general", "warning", "modify password in time", send=False),
    AlarmBit(20, "contactor", "alarm", "discharge on failed", send=False),
    AlarmBit(21, "high_temperature", "warning", "battery over-temperature alarm"),
)
_ALARM_BY_BIT: dict[int, AlarmBit] = {a.bit: a for a in ALARM_BITS}
_BIT_FOR: dict[tuple[str, Level], int] = {}
for _a in ALARM_BITS:
    if _a.send:
        _BIT_FOR.setdefault((_a.name, _a.level), _a.bit)
#: Names the simulated device can send, per level, in contract order.
EXPRESSIBLE: dict[Level, tuple[str, ...]] = {
    level: tuple(n for n in ALARM_NAMES if (n, level) in _BIT_FOR) for level in ("alarm", "warning")
}

REQUIRED_KEYS: tuple[tuple[str, str], ...] = (
    ("voltage_v", "pack voltage, offset 144"),
    ("current_a", "pack current, offset 152"),
    ("soc_pct", "SoC, offset 167"),
    ("remaining_ah", "remaining capacity, offset 168"),
    ("capacity_ah", "full-charge capacity, offset 172"),
    ("cycles", "cycle count, offset 176 has no 'unknown' value"),
    ("cells_v", "cell voltages and the cell-present bitmask"),
    ("alarms", "alarm bitmask: an unknown alarm state is not served as 'no alarm'"),
)

#: FET byte, its state key and the limit that stands in for it when the state lacks the key.
FETS: tuple[tuple[str, str, str], ...] = (
    ("charge_fet", "charge_enable", "charge_current_a"),
    ("discharge_fet", "discharge_enable", "discharge_current_a"),
)


# -- framing --------------------------------------------------------------------------------------


def sum8(data: bytes | bytearray) -> int:
    return sum(data) & 0xFF


def _reply_length(head: bytes) -> int | None:
    """Length of a 55AA frame (300) or of a Modbus RTU reply."""
    if head[:1] == SYNC[:1] and SYNC.startswith(head[:4]):
        return None if len(head) < len(SYNC) else FRAME_LENGTH
    return modbus_rtu_length(head)


def _reply_ok(frame: bytes) -> bool:
    if frame.startswith(SYNC):
        return len(frame) == FRAME_LENGTH and sum8(frame[:FRAME_CHECKSUM_AT]) == frame[-1]
    return modbus_crc_ok(frame)


def _is_read_request(frame: bytes) -> bool:
    """An 8-byte FC03 frame is a request; a read reply is odd-sized (5 + an even byte count)."""
    return len(frame) == 8 and frame[2] + 5 != 8


def _registers(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _block_at(address: int) -> Block | None:
    for block in BLOCKS:
        if block.base <= address < block.base + block.span:
            return block
    return None


# -- decoding -------------------------------------------------------------------------------------


@dataclass
class _Reading:
    """Raw field values gathered over the frames; later frames win, field by field."""

    #: field name -> (raw value, 1-based frame index)
    raws: dict[str, tuple[int | bytes, int]] = field(default_factory=dict)
    #: Modbus byte images (big-endian) and which of their bytes were read, per block name
    images: dict[str, tuple[bytearray, bytearray]] = field(default_factory=dict)

    def modbus(self, block: Block, start: int, data: bytes, index: int) -> None:
        image, known = self.images.setdefault(
            block.name, (bytearray(block.span), bytearray(block.span))
        )
        end = min(start + len(data), block.span)
        image[start:end] = data[: end - start]
        known[start:end] = b"\x01" * (end - start)
        for f in block.fields:
            low, high = f.offset, f.offset + f.width
            if low < end and high > start and all(known[low:high]):
                self.raws[f.name] = (f.read(image, 0, "big"), index)

    def frame(self, block: Block, frame: bytes, index: int) -> None:
        for f in block.fields:
            self.raws[f.name] = (f.read(frame, FRAME_HEADER, "little"), index)

    def number(self, name: str) -> int | None:
        found = self.raws.get(name)
        return None if found is None or isinstance(found[0], bytes) else found[0]


_FIELD_BY_NAME: dict[str, Field] = {f.name: f for b in BLOCKS for f in b.fields}
#: Direct fields, the primary copy of a key before its fallback.
_DIRECT: tuple[Field, ...] = tuple(
    sorted((f for b in BLOCKS for f in b.fields if f.key and f.decoded), key=lambda f: f.fallback)
)


def _text(raw: bytes) -> str:
    """A NUL-terminated text field, trailing spaces stripped (bytes after the NUL are junk)."""
    return raw.split(b"\x00", 1)[0].decode("latin-1").strip()


def _celsius(raw: int) -> float:
    """A 0.1 °C temperature field (every JK-PB temperature has this scale)."""
    return round(raw / 10, 1)


def _mean_celsius(raws: Sequence[int]) -> float:
    """The mean in raw 0.1 °C steps, half up: at the sensors' own resolution."""
    return math.floor(sum(raws) / len(raws) + 0.5) / 10


def _assemble(reading: _Reading) -> BatteryState:
    values: dict[str, Any] = {}
    for f in _DIRECT:
        found = reading.raws.get(f.name)
        if found is None or f.key is None or (f.fallback and f.key in values):
            continue
        raw = found[0]
        if isinstance(raw, bytes):
            text = _text(raw)
            if text:
                values[f.key] = text
        else:
            value = f.physical(raw)
            if value is not None:
                values[f.key] = value
    values.update(_cells(reading))
    values.update(_temperatures(reading))
    bits = reading.number("alarm_bits")
    if bits is not None:
        values.update(_alarms(bits))
    for name, key, _ in FETS:
        fet = reading.number(name)
        if fet is not None:
            values[key] = fet != 0
    return BatteryState(**values)


def _cells(reading: _Reading) -> dict[str, Any]:
    found = reading.raws.get("cell_mask")
    if found is None or isinstance(found[0], bytes):
        return {}
    mask, index = found[0], found[1]
    if mask == 0:
        raise DecodeError(
            f"frame {index}: cell-present bitmask ({LIVE.where(64)}) is 0: no cell is present"
        )
    numbers = [i + 1 for i in range(MAX_CELLS) if mask >> i & 1]
    raws = [reading.number(f"cell{n}") for n in numbers]
    if any(raw is None for raw in raws):
        return {}  # a present cell's voltage was not read: no honest cell list
    cells = [round((raw or 0) / 1000, 3) for raw in raws]
    out: dict[str, Any] = {"cells_v": cells, **cell_extremes(cells)}
    for key in ("cell_min_id", "cell_max_id"):
        out[key] = str(numbers[int(out[key]) - 1])  # the cell's number, not its list position
    return out


def _temperatures(reading: _Reading) -> dict[str, Any]:
    fitted = reading.number("sensors_fitted")
    temps: list[float] = []
    battery_raws: list[int] = []
    for sensor in TEMPERATURE_SENSORS:
        raw = reading.number(sensor.name)
        if raw is None or (fitted is not None and not fitted >> sensor.bit & 1):
            continue
        temps.append(_celsius(raw))
        if sensor.battery:
            battery_raws.append(raw)
    out: dict[str, Any] = {}
    if temps:
        out["temperatures_c"] = temps
    if battery_raws:
        out["cell_temp_min_c"] = _celsius(min(battery_raws))
        out["cell_temp_max_c"] = _celsius(max(battery_raws))
        out["temperature_c"] = _mean_celsius(battery_raws)
    return out


def _alarms(bits: int) -> dict[str, list[str]]:
    seen: dict[Level, set[str]] = {"alarm": set(), "warning": set()}
    for bit in range(32):
        if bits >> bit & 1:
            known = _ALARM_BY_BIT.get(bit)
            if known is None:
                seen["alarm"].add("general")  # reserved bit: reported, not hidden
            else:
                seen[known.level].add(known.name)
    return {
        "alarms": [n for n in ALARM_NAMES if n in seen["alarm"]],
        "warnings": [n for n in ALARM_NAMES if n in seen["warning"] - seen["alarm"]],
    }


# -- encoding -------------------------------------------------------------------------------------


def _required(state: BatteryState) -> None:
    for key, why in REQUIRED_KEYS:
        if getattr(state, key) is None:
            raise EncodeError(f"missing {key}: JK-PB needs it ({why})")


def _number_raw(f: Field, value: float, label: str | None = None) -> int:
    return f.to_raw(value, label or f.key or f.name, LIVE.where(f.offset))


def _split_temperatures(state: BatteryState) -> list[tuple[Sensor, float]]:
    """(sensor, °C) pairs of ``temperatures_c``: T1.. in order, the last one the MOSFET."""
    temps = list(state.temperatures_c or [])
    if len(temps) > len(TEMPERATURE_SENSORS):
        raise EncodeError(
            f"temperatures_c: JK-PB has T1-T5 and a MOSFET sensor (0-6 values), got {len(temps)}"
        )
    if not temps:
        return []
    return [
        *zip(TEMPERATURE_SENSORS, temps[:-1], strict=False),
        (TEMPERATURE_SENSORS[-1], temps[-1]),
    ]


def _alarm_raw(state: BatteryState) -> int:
    bits = 0
    levels: dict[Level, list[str]] = {"alarm": state.alarms or [], "warning": state.warnings or []}
    for level, names in levels.items():
        for name in names:
            bit = _BIT_FOR.get((name, level))
            if bit is not None:
                bits |= 1 << bit
            elif level == "alarm":
                can = ", ".join(EXPRESSIBLE["alarm"])
                raise EncodeError(
                    f"alarm {name!r} has no JK-PB alarm bit; refusing to serve a state that "
                    f"would hide it (alarms it can carry: {can})"
                )
            # a warning without a bit is dropped: a real JK-PB has no such warning to send
    return bits


def _fet_raw(state: BatteryState, key: str, limit: str) -> int:
    value = getattr(state, key)
    if value is None:
        stand_in = getattr(state, limit)
        if stand_in is None:
            raise EncodeError(
                f"missing {key}: JK-PB sends the FET state and the state has neither {key} "
                f"nor {limit}"
            )
        value = stand_in > 0
    return 1 if value else 0


def live_raws(state: BatteryState) -> dict[str, int]:
    """Raw values of every live field for ``state``; EncodeError names a missing or bad key."""
    _required(state)
    cells = list(state.cells_v or [])
    if not 1 <= len(cells) <= MAX_CELLS:
        raise EncodeError(f"cells_v: JK-PB carries 1..{MAX_CELLS} cells, got {len(cells)}")
    by_name = _FIELD_BY_NAME
    raws: dict[str, int] = {}
    for index, volts in enumerate(cells):
        name = f"cell{index + 1}"
        raws[name] = _number_raw(by_name[name], volts, f"cells_v[{index}]")
    raws["cell_mask"] = (1 << len(cells)) - 1
    raws["cell_average"] = _number_raw(by_name["cell_average"], sum(cells) / len(cells), "cells_v")
    raws["cell_delta"] = _number_raw(by_name["cell_delta"], max(cells) - min(cells), "cells_v")
    raws["cell_max_index"] = cells.index(max(cells))
    raws["cell_min_index"] = cells.index(min(cells))
    for f in LIVE_FIELDS:
        if f.key is not None:
            value = getattr(state, f.key)
            raws[f.name] = 0 if value is None else _number_raw(f, value)
    voltage, current = state.voltage_v or 0.0, state.current_a or 0.0
    raws["power"] = _number_raw(by_name["power"], voltage * abs(current), "voltage_v x current_a")
    fitted = 0
    for index, (sensor, celsius) in enumerate(_split_temperatures(state)):
        raws[sensor.name] = _number_raw(by_name[sensor.name], celsius, f"temperatures_c[{index}]")
        fitted |= 1 << sensor.bit
    raws["sensors_fitted"] = fitted
    raws["alarm_bits"] = _alarm_raw(state)
    for name, key, limit in FETS:
        raws[name] = _fet_raw(state, key, limit)
    return raws


def about_raws(state: BatteryState) -> dict[str, bytes]:
    """Text fields of the about block; an absent key is sent empty (all NUL)."""
    raws: dict[str, bytes] = {}
    for f in ABOUT_FIELDS:
        text = getattr(state, f.key or "") or ""
        try:
            data = text.encode("ascii")
        except UnicodeEncodeError:
            raise EncodeError(
                f"{f.key} = {text!r} is not ASCII ({ABOUT.where(f.offset)})"
            ) from None
        if len(data) > f.width:
            raise EncodeError(
                f"{f.key} = {text!r} is {len(data)} bytes, the field has {f.width} "
                f"({ABOUT.where(f.offset)})"
            )
        raws[f.name] = data
    return raws


def _block_raws(block: Block, state: BatteryState) -> dict[str, int | bytes]:
    raws: dict[str, int | bytes] = {}
    raws.update(live_raws(state) if block is LIVE else about_raws(state))
    return raws


def block_image(block: Block, state: BatteryState) -> bytes:
    """The block's bytes as Modbus reads return them (big-endian), 0 where bmslink has no value."""
    buf = bytearray(block.span)
    raws = _block_raws(block, state)
    for f in block.fields:
        f.write(buf, 0, "big", raws.get(f.name, b"" if f.kind == "text" else 0))
    return bytes(buf[: block.served])


def block_frame(block: Block, state: BatteryState, counter: int = 0) -> bytes:
    """The 300-byte ``55 AA EB 90`` frame of ``block`` (little-endian, sum8 at byte 299)."""
    buf = bytearray(FRAME_LENGTH)
    buf[: len(SYNC)] = SYNC
    buf[4] = block.frame_type
    buf[5] = counter & 0xFF
    raws = _block_raws(block, state)
    for f in block.fields:
        f.write(buf, FRAME_HEADER, "little", raws.get(f.name, b"" if f.kind == "text" else 0))
    buf[FRAME_CHECKSUM_AT] = sum8(buf[:FRAME_CHECKSUM_AT])
    return bytes(buf)


# -- the protocol ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pending:
    """The read request the next register reply answers."""

    request: ReadRequest
    block: Block | None  # None: outside the blocks bmslink maps


class JkPbProtocol(BmsProtocol):
    """JK-PB inverter BMS: Modbus RTU reads of the live block (and the about block once)."""

    name: ClassVar[str] = "jk-pb"
    title: ClassVar[str] = "JK-PB inverter BMS (Modbus RTU)"
    baudrate: ClassVar[int] = 115200
    default_address: ClassVar[int] = 1
    #: DIP switch 1-15; address 0 is bus-master mode and answers no third-party master.
    addresses: ClassVar[range] = range(1, 16)
    request_gap_s: ClassVar[float] = 0.12
    keys: ClassVar[frozenset[str]] = frozenset(
        {
            "voltage_v",
            "current_a",
            "soc_pct",
            "remaining_ah",
            "capacity_ah",
            "cycles",
            "cells_v",
            "cell_min_v",
            "cell_max_v",
            "cell_min_id",
            "cell_max_id",
            "alarms",
            "warnings",
            "charge_enable",
            "discharge_enable",
        }
    )

    # -- host side -------------------------------------------------------------------------------

    def reply_framer(self) -> Framer:
        """Modbus RTU replies and 55AA frames (after an FC16 trigger)."""
        return HuntingFramer(b"", _reply_length, _reply_ok, max_length=FRAME_LENGTH)

    def conversation(self, address: int, *, identity: bool) -> Conversation:
        self.check_address(address)
        reads = LIVE_READS + ((ABOUT_READ,) if identity else ())
        # the slave byte only: an exception reply must reach decode, which names it
        prefix = bytes((address,))
        for block, offset, count, what in reads:
            data = build_read_request(address, READ, block.base + offset, count)
            yield Request(data, what, reply_prefix=prefix, optional=block is ABOUT)

    def _decode(self, frames: Sequence[bytes]) -> BatteryState:
        reading = _Reading()
        pending: _Pending | None = None
        for index, raw in enumerate(frames, 1):
            try:
                pending = self._take(bytes(raw), index, pending, reading)
            except DecodeError as exc:
                raise DecodeError(f"frame {index}: {exc}") from exc
        return _assemble(reading)

    def _take(
        self, frame: bytes, index: int, pending: _Pending | None, reading: _Reading
    ) -> _Pending | None:
        """Take one frame into ``reading``; returns the request the next reply answers."""
        if frame.startswith(SYNC):
            tail = self._frame(frame, index, reading)
            return self._take(tail, index, None, reading) if tail else None
        if len(frame) < 4:
            raise DecodeError(f"{len(frame)} bytes is too short for a Modbus RTU frame")
        function = frame[1]
        if function & 0x80:
            if len(frame) != 5:
                raise DecodeError(
                    f"exception reply (function byte {function:02X}) is 5 bytes, got {len(frame)}"
                )
            check_crc(frame)
            if pending is not None and pending.block is ABOUT:
                return None  # the identity read is optional
            raise ModbusException(frame[0], function & 0x7F, frame[2])
        if function == READ:
            if _is_read_request(frame):
                request = parse_read_request(frame)
                return _Pending(request, _block_at(request.address))
            self._reply(frame, index, pending, reading)
            return None
        if function == WRITE_MULTIPLE:
            expected = 8 if len(frame) == 8 else 9 + (frame[6] if len(frame) > 6 else 0)
            if len(frame) != expected:
                raise DecodeError(
                    f"function 10 frame is {len(frame)} bytes: an acknowledgement is 8, "
                    f"this request would be {expected}"
                )
            check_crc(frame)
            return None  # a frame trigger or its acknowledgement: nothing to decode
        raise DecodeError(
            f"function {function:02X} is not a JK-PB function "
            "(03 read holding registers, 10 frame trigger)"
        )

    @staticmethod
    def _reply(frame: bytes, index: int, pending: _Pending | None, reading: _Reading) -> None:
        if pending is None:
            raise DecodeError(
                "a JK-PB register reply does not say which registers it holds: "
                "give the read request before it"
            )
        request = pending.request
        if frame[0] != request.slave:
            check_crc(frame)
            raise DecodeError(f"reply from slave {frame[0]} to a request to slave {request.slave}")
        _, registers = parse_register_reply(frame, READ, request.count)
        if pending.block is not None:
            data = b"".join(r.to_bytes(2, "big") for r in registers)
            reading.modbus(pending.block, request.address - pending.block.base, data, index)

    @staticmethod
    def _frame(frame: bytes, index: int, reading: _Reading) -> bytes:
        """Decode a 55AA frame; returns what follows it (an FC16 acknowledgement, padding)."""
        if len(frame) < FRAME_LENGTH:
            raise DecodeError(f"a 55 AA EB 90 frame is {FRAME_LENGTH} bytes, got {len(frame)}")
        body, tail = frame[:FRAME_LENGTH], frame[FRAME_LENGTH:]
        expected = sum8(body[:FRAME_CHECKSUM_AT])
        got = body[FRAME_CHECKSUM_AT]
        if got != expected:
            raise DecodeError(f"checksum mismatch: expected {expected:02X}, got {got:02X}")
        block = BLOCK_BY_FRAME_TYPE.get(body[4])
        if block is None:
            raise DecodeError(
                f"unknown JK frame type 0x{body[4]:02X} (01 settings, 02 cell info, 03 about)"
            )
        reading.frame(block, body, index)
        return tail.lstrip(b"\x00")  # some adapters pad before the acknowledgement

    # -- device side -----------------------------------------------------------------------------

    def request_framer(self) -> Framer:
        return modbus_request_framer()

    def answer(self, request: bytes, source: StateSource) -> list[bytes]:
        request = bytes(request)
        addressed = modbus_addressed(request, self.addresses, source)
        if addressed is None:
            return []
        slave, function, state = addressed
        if function == WRITE_MULTIPLE:
            block = TRIGGERS.get(request[1:-2])
            if block is None:
                return [build_exception_reply(slave, function, 0x01)]  # read-only device
            return [block_frame(block, state), with_crc(request[:6])]
        if function != READ:
            return [build_exception_reply(slave, function, 0x01)]
        try:
            read = parse_read_request(request)
        except DecodeError:
            return [build_exception_reply(slave, function, 0x03)]  # count out of range
        block = _block_at(read.address)
        start = read.address - block.base if block else 0
        if block is None or start + 2 * read.count > block.served:
            return [build_exception_reply(slave, function, 0x02)]
        data = block_image(block, state)[start : start + 2 * read.count]
        return [build_register_reply(slave, function, _registers(data))]
