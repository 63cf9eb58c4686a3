"""JBD / Xiaoxiang / Overkill Solar BMS ("Jiabaida" general protocol V4): DD ... 77 frames.

The same frames run over UART-TTL, RS485, RS232 and BLE, 9600 8N1, with no
address: one BMS per port. The host reads a register with ``DD A5 <reg> 00
<checksum> 77``; the BMS answers ``DD <reg> <status> <n> <n data bytes>
<checksum> 77``. The checksum is 0x10000 minus the byte sum of bytes 2..3+n,
high byte first. It does not cover byte 1 (the register echo), so a reply
whose register byte is corrupted can pass as the reply of another register:
the conversation's ``reply_prefix`` and the cell count cross-check below catch
the cases that matter. Facts: shared/reference/bms-protocols.md §2.

One poll cycle reads 0x03 (basic info) and 0x04 (cell voltages); the identity
read once per connection adds 0x05 (the hardware / model string).

Choices where the sources are silent or disagree:

- 0x05 is decoded into ``hardware``: the vendor calls it the hardware version,
  and the text names the BMS board (e.g. "JBD-SP04S034-L4S-200A-B-U"), not the
  battery product. The simulated device serves ``hardware``, or ``product``
  when the state has no ``hardware`` (the simulator only names a product).
- Temperatures are 0.1 K; 0 °C is raw 2731 unless ``kelvin_offset_raw`` says
  otherwise. JBD does not say which NTC sits where, so every NTC counts as a
  cell sensor: ``temperatures_c`` lists them in NTC order, ``cell_temp_min_c``
  / ``cell_temp_max_c`` are their extremes, and ``temperature_c`` is their mean
  (in raw steps, half up, so at the sensors' 0.1 °C resolution); the extremes
  carry the edges. A state's own ``temperature_c`` is not served: no field.
  NTC count 0 is a valid frame, so ``keys`` promises no temperature key.
- Protection bits are all protection level, so they become ``alarms``; JBD has
  no warning level, so ``warnings`` is ``[]`` whenever a 0x03 reply was read.
  Encoding drops a state's warnings for the same reason (a real JBD has none
  to send). Table: :data:`PROTECTION_BITS`.
- Bit 12, "MOSFET software lock", is no alarm: it is set after a user switched
  FETs off on purpose (register 0xE1) and can leave one FET on (JBD-02 locks
  charge, discharge stays on). The FET status bits already say what is blocked,
  as ``charge_enable`` / ``discharge_enable``; an alarm would make an inverter
  stop both directions. Encoding never sets it.
- Bits 13-15 are reserved in the vendor document (esphome names bit 13 "charge
  timeout close"). A set bit in a protection word is reported as ``general``
  rather than hidden; encoding ``general`` sets bit 13.
- An alarm name with no bit (``contactor``, ``cell_imbalance``) is refused when
  encoding, so a served state never hides an alarm.
- The production date and balance bits are parsed (:class:`BasicInfo`) but are
  no contract keys; the bit order of the balance words (bit 0 of the low word
  = cell 1 per the vendor, reversed in esphome) therefore does not matter to
  the state. The simulated device sends 0 for both (no date set, no cell
  balancing).
- The software version byte is two nibbles: 0x80 -> "8.0", 0x12 -> "1.2".
  The simulated device sends the state's ``firmware`` ("M.m", each 0..15;
  another form is refused), or 0x80 ("8.0", as the real JBD-02 pack) when the
  state has none.
- The simulated device needs ``voltage_v``, ``current_a``, ``remaining_ah``,
  ``capacity_ah``, ``cycles``, ``soc_pct`` (0..100, whole %), the two enables
  (FET bits), ``alarms``, ``cells_v`` (1..32) and ``temperatures_c`` (may be
  empty); the nominal capacity is ``capacity_ah`` (``installed_capacity_ah``
  and ``soh_pct`` have no field).
- Cell voltages are not checked for plausibility: a corrupted register echo
  is caught by ``reply_prefix`` and the cell count cross-check instead.
- Newer firmware sends extra bytes after the NTCs; they are ignored (their
  meaning is not confirmed) and the simulated device sends none.
- The cell count in 0x03 byte 21 must equal the 0x04 cell count of the same
  decode; a mismatch is a DecodeError naming both frames.
- A reply to a register the frames before it requested (a write ack such as
  ``DD E1 00 00 00 00 77`` after a 0xE1 write, an EEPROM read) is accepted and
  ignored; a reply to a register nobody asked for and bmslink does not know is
  an error. The 0xAA error counters carry no contract key and are ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

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
from bmslink.rs485.layout import Reader, Word, Writer
from bmslink.scaling import decimal_places
from bmslink.state import ALARM_NAMES, STATE_KEYS, BatteryState

START = 0xDD
END = 0x77
READ = 0xA5
WRITE = 0x5A
STATUS_OK = 0x00
STATUS_ERROR = 0x80

BASIC_INFO = 0x03
CELL_VOLTAGES = 0x04
HARDWARE = 0x05
ERROR_COUNTERS = 0xAA

#: Raw value of 0 °C in the 0.1 K NTC fields (vendor document).
KELVIN_OFFSET_RAW = 2731.0
#: Software version the simulated device sends when the state has no firmware ("8.0").
DEFAULT_SOFTWARE_VERSION = 0x80

#: DD, register, status, length, checksum (2), 77: a frame without data.
OVERHEAD = 7
MAX_DATA = 0xFF
MAX_FRAME = OVERHEAD + MAX_DATA
#: Cells the balance words can describe (2 x 16 bits); the simulated device serves 1..32.
MAX_CELLS = 32
#: The 0x05 text is at most 31 characters (vendor document).
MAX_HARDWARE_TEXT = 31

REGISTER_NAMES: dict[int, str] = {
    BASIC_INFO: "basic info",
    CELL_VOLTAGES: "cell voltages",
    HARDWARE: "hardware version",
    ERROR_COUNTERS: "error counters",
}


def register_name(register: int) -> str:
    name = REGISTER_NAMES.get(register)
    return f"0x{register:02X} {name}" if name else f"0x{register:02X}"


# -- the 0x03 layout ------------------------------------------------------------------------------

#: The fixed part of 0x03, in order from data byte 0. Keys outside the contract are
#: parsed into BasicInfo and never put into the state.
BASIC_LAYOUT: tuple[Word, ...] = (
    Word("voltage_v", "u16", 0.01, doc="total voltage, 10 mV"),
    Word("current_a", "s16", 0.01, doc="10 mA, + = charging"),
    Word("remaining_ah", "u16", 0.01, doc="remaining capacity, 10 mAh"),
    Word("capacity_ah", "u16", 0.01, doc="nominal (full) capacity, 10 mAh"),
    Word("cycles", "u16", integer=True),
    Word("production_date", "u16", integer=True, doc="day bits 0-4, month 5-8, year-2000 9-15"),
    Word("balance_low", "u16", integer=True, doc="cells 1-16"),
    Word("balance_high", "u16", integer=True, doc="cells 17-32"),
    Word("protection", "u16", integer=True, doc="PROTECTION_BITS"),
    Word("software_version", "u8", integer=True, doc="major nibble, minor nibble"),
    Word("soc_pct", "u8", doc="RSOC, %"),
    Word("fet_status", "u8", integer=True, doc="bit 0 charge FET on, bit 1 discharge FET on"),
    Word("cell_count", "u8", integer=True),
    Word("ntc_count", "u8", integer=True),
)
BASIC_FIXED = sum(w.size for w in BASIC_LAYOUT)  # 23: the NTCs start here
CELL_COUNT_BYTE = 21
#: NTCs that fit one frame after the fixed part.
MAX_NTC = (MAX_DATA - BASIC_FIXED) // 2

FET_CHARGE = 0x01
FET_DISCHARGE = 0x02


@dataclass(frozen=True)
class ProtectionBit:
    """One bit of the 0x03 protection word and the contract alarm it raises (None: none)."""

    bit: int
    alarm: str | None
    doc: str


#: Every bit of the protection word. Encoding sets the first bit listed for a name.
PROTECTION_BITS: tuple[ProtectionBit, ...] = (
    ProtectionBit(0, "high_voltage", "cell over-voltage"),
    ProtectionBit(1, "low_voltage", "cell under-voltage"),
    ProtectionBit(2, "high_voltage", "pack over-voltage"),
    ProtectionBit(3, "low_voltage", "pack under-voltage"),
    ProtectionBit(4, "high_temperature_charge", "charge over-temperature"),
    ProtectionBit(5, "low_temperature_charge", "charge under-temperature"),
    ProtectionBit(6, "high_temperature", "discharge over-temperature"),
    ProtectionBit(7, "low_temperature", "discharge under-temperature"),
    ProtectionBit(8, "high_charge_current", "charge over-current"),
    ProtectionBit(9, "high_discharge_current", "discharge over-current"),
    ProtectionBit(10, "short_circuit", "short circuit"),
    ProtectionBit(11, "bms_internal", "front-end IC error"),
    ProtectionBit(12, None, "MOSFET software lock: the FET bits say what it blocks"),
    ProtectionBit(13, "general", "reserved (esphome: charge timeout close)"),
    ProtectionBit(14, "general", "reserved"),
    ProtectionBit(15, "general", "reserved"),
)

_BIT_FOR: dict[str, int] = {}
for _p in PROTECTION_BITS:
    if _p.alarm is not None:
        _BIT_FOR.setdefault(_p.alarm, _p.bit)
#: Alarm names the protection word can carry, in contract order.
EXPRESSIBLE_ALARMS: tuple[str, ...] = tuple(n for n in ALARM_NAMES if n in _BIT_FOR)


def alarms_from_bits(word: int) -> list[str]:
    """Contract alarm names of a protection word, in contract order, each once."""
    active = {p.alarm for p in PROTECTION_BITS if p.alarm and word >> p.bit & 1}
    return [name for name in ALARM_NAMES if name in active]


@dataclass(frozen=True)
class BasicInfo:
    """Everything in a 0x03 reply, raw where the contract has no key for it."""

    values: dict[str, Any]  # BASIC_LAYOUT keys -> decoded values
    ntc_raw: tuple[int, ...]
    extra: bytes  # bytes after the NTCs (newer firmware), ignored

    @property
    def production_date(self) -> tuple[int, int, int]:
        """(year, month, day); 0 is "not set" (2000-00-00)."""
        raw = int(self.values["production_date"])
        return 2000 + (raw >> 9), raw >> 5 & 0x0F, raw & 0x1F

    @property
    def balance(self) -> int:
        """Balancing cells as one 32-bit word, bit 0 = cell 1 (vendor order)."""
        return int(self.values["balance_high"]) << 16 | int(self.values["balance_low"])

    @property
    def cell_count(self) -> int:
        return int(self.values["cell_count"])


# -- frames ---------------------------------------------------------------------------------------


def checksum(body: bytes) -> int:
    """0x10000 minus the byte sum of ``body`` (bytes 2..3+n of a frame), kept to 16 bits."""
    return (0x10000 - sum(body)) & 0xFFFF


def build_frame(first: int, second: int, data: bytes = b"") -> bytes:
    """``DD first second n data checksum 77``: a request (A5/5A, register) or a reply
    (register, status)."""
    if len(data) > MAX_DATA:
        raise EncodeError(f"JBD frame carries at most {MAX_DATA} data bytes, got {len(data)}")
    body = bytes((second, len(data))) + data
    return bytes((START, first)) + body + checksum(body).to_bytes(2, "big") + bytes((END,))


def read_request(register: int) -> bytes:
    """``DD A5 <reg> 00 <ck hi> <ck lo> 77``."""
    return build_frame(READ, register)


def build_reply(register: int, data: bytes, status: int = STATUS_OK) -> bytes:
    return build_frame(register, status, data)


@dataclass(frozen=True)
class JbdFrame:
    """A checked frame: a request (``command`` A5 or 5A) or a reply (``command`` None)."""

    command: int | None
    register: int
    status: int  # replies only; 0 for requests
    data: bytes

    @property
    def is_request(self) -> bool:
        return self.command is not None


def parse_frame(frame: bytes, index: int = 1) -> JbdFrame:
    """Check start, length, end and checksum; DecodeError names frame ``index`` and the byte."""
    where = f"frame {index}"
    size = len(frame)
    if size < OVERHEAD:
        raise DecodeError(
            f"{where}: wrong length: {size} bytes, a JBD frame has at least {OVERHEAD} "
            "(DD, register, status, length, checksum, 77)"
        )
    if frame[0] != START:
        raise DecodeError(f"{where}: byte 0 is {frame[0]:02X}, expected DD (frame start)")
    n = frame[3]
    if size != OVERHEAD + n:
        raise DecodeError(
            f"{where}: wrong length: byte 3 gives {n} data bytes, so the frame has "
            f"{OVERHEAD + n} bytes, got {size}"
        )
    if frame[-1] != END:
        raise DecodeError(f"{where}: byte {size - 1} is {frame[-1]:02X}, expected 77 (frame end)")
    expected = checksum(frame[2 : 4 + n])
    got = int.from_bytes(frame[4 + n : 6 + n], "big")
    if expected != got:
        raise DecodeError(f"{where}: checksum mismatch: expected {expected:04X}, got {got:04X}")
    data = bytes(frame[4 : 4 + n])
    if frame[1] in (READ, WRITE):
        return JbdFrame(frame[1], frame[2], 0, data)
    return JbdFrame(None, frame[1], frame[2], data)


def _frame_length(head: bytes) -> int | None:
    """7 + n; 0 (no frame start) when byte 1 is no request and byte 2 no reply status,
    so a stray DD in line noise is skipped at once instead of waited on for 262 bytes."""
    if len(head) < 4:
        return None
    if head[1] not in (READ, WRITE) and head[2] not in (STATUS_OK, STATUS_ERROR):
        return 0
    return OVERHEAD + head[3]


def _frame_ok(frame: bytes) -> bool:
    try:
        parse_frame(frame)
    except DecodeError:
        return False
    return True


def jbd_framer() -> HuntingFramer:
    """DD ... 77 frames with a right length, end byte and checksum (either direction)."""
    return HuntingFramer(bytes((START,)), _frame_length, _frame_ok, max_length=MAX_FRAME)


# -- decode ---------------------------------------------------------------------------------------


def _celsius(raw: int, offset: float) -> float:
    return round((raw - offset) / 10, max(1, decimal_places(offset / 10)))


def parse_basic(data: bytes, where: str = "0x03 basic info") -> BasicInfo:
    """The 0x03 payload; DecodeError names the field the data is too short for."""
    if len(data) < BASIC_FIXED:
        raise DecodeError(
            f"{where}: {len(data)} data bytes, the fixed fields need {BASIC_FIXED} "
            f"(through the NTC count at byte {BASIC_FIXED - 1})"
        )
    reader = Reader(data, where)
    values = reader.words(BASIC_LAYOUT)
    ntc = int(values["ntc_count"])
    need = BASIC_FIXED + 2 * ntc
    if len(data) < need:
        raise DecodeError(
            f"{where}: NTC count {ntc} (byte {BASIC_FIXED - 1}) needs {need} data bytes, "
            f"got {len(data)}"
        )
    raw = tuple(reader.number("u16", f"NTC {i + 1}") for i in range(ntc))
    return BasicInfo(values, raw, data[need:])


def _basic_state(info: BasicInfo, offset: float) -> dict[str, Any]:
    values = {k: v for k, v in info.values.items() if k in STATE_KEYS}
    version = int(info.values["software_version"])
    fets = int(info.values["fet_status"])
    values.update(
        firmware=f"{version >> 4}.{version & 0x0F}",
        charge_enable=bool(fets & FET_CHARGE),
        discharge_enable=bool(fets & FET_DISCHARGE),
        alarms=alarms_from_bits(int(info.values["protection"])),
        warnings=[],
    )
    raw = info.ntc_raw
    if raw:
        temps = [_celsius(r, offset) for r in raw]
        # the mean in raw steps, half up: no float tie decides the last digit
        mean_raw = math.floor(sum(raw) / len(raw) + 0.5)
        values.update(
            temperatures_c=temps,
            cell_temp_min_c=min(temps),
            cell_temp_max_c=max(temps),
            temperature_c=_celsius(mean_raw, offset),
        )
    return values


def parse_cells(data: bytes, where: str = "0x04 cell voltages") -> list[float]:
    """Cell voltages in V from the 0x04 payload (u16 mV each)."""
    if not data:
        raise DecodeError(f"{where}: no data bytes, expected 2 per cell")
    if len(data) % 2:
        raise DecodeError(f"{where}: {len(data)} data bytes, expected an even number (2 per cell)")
    return [int.from_bytes(data[i : i + 2], "big") / 1000 for i in range(0, len(data), 2)]


def parse_hardware(data: bytes, where: str = "0x05 hardware version") -> str | None:
    """The model text, trailing NULs and spaces stripped; None when empty."""
    text = Reader(data, where).text(len(data), "hardware")
    for at, char in enumerate(text):
        if not char.isprintable():
            raise DecodeError(f"{where}: hardware text has a control byte {ord(char):02X} at {at}")
    return text or None


# -- encode (the simulated device) ----------------------------------------------------------------

_VERSION = re.compile(r"(\d{1,2})\.(\d{1,2})")


def _require(state: BatteryState, key: str, what: str) -> Any:
    value = getattr(state, key)
    if value is None:
        raise EncodeError(f"missing {key}: JBD {what} carries it")
    return value


def _software_version(firmware: str | None) -> int:
    if firmware is None:
        return DEFAULT_SOFTWARE_VERSION
    match = _VERSION.fullmatch(firmware.strip())
    if match is None or not all(int(part) <= 0x0F for part in match.groups()):
        raise EncodeError(
            f"firmware {firmware!r}: the JBD software version byte carries 'M.m' with M and m 0..15"
        )
    return int(match[1]) << 4 | int(match[2])


def _protection_word(alarms: Sequence[str]) -> int:
    word = 0
    for name in alarms:
        bit = _BIT_FOR.get(name)
        if bit is None:
            can = ", ".join(EXPRESSIBLE_ALARMS)
            raise EncodeError(
                f"alarms: {name!r} has no JBD protection bit; refusing to serve a state that "
                f"would hide it (alarms it can carry: {can})"
            )
        word |= 1 << bit
    return word


def encode_basic(state: BatteryState, kelvin_offset_raw: float = KELVIN_OFFSET_RAW) -> bytes:
    """The 0x03 payload for ``state``; EncodeError names a missing or out-of-range key."""
    what = "0x03 basic info"
    cells = _require(state, "cells_v", what + " (cell count)")
    temps = _require(state, "temperatures_c", what + " (NTCs)")
    if not 1 <= len(cells) <= MAX_CELLS:
        raise EncodeError(f"cells_v: JBD serves 1..{MAX_CELLS} cells, got {len(cells)}")
    if len(temps) > MAX_NTC:
        raise EncodeError(
            f"temperatures_c: one 0x03 frame carries {MAX_NTC} NTCs, got {len(temps)}"
        )
    soc = _require(state, "soc_pct", what)
    if not 0 <= soc <= 100:
        raise EncodeError(f"JBD {what}: soc_pct {soc:g} is outside 0..100")
    fets = (FET_CHARGE if _require(state, "charge_enable", what) else 0) | (
        FET_DISCHARGE if _require(state, "discharge_enable", what) else 0
    )
    values: dict[str, Any] = {
        key: _require(state, key, what)
        for key in ("voltage_v", "current_a", "remaining_ah", "capacity_ah", "cycles")
    }
    values.update(
        production_date=0,
        balance_low=0,
        balance_high=0,
        protection=_protection_word(_require(state, "alarms", what)),
        software_version=_software_version(state.firmware),
        soc_pct=soc,
        fet_status=fets,
        cell_count=len(cells),
        ntc_count=len(temps),
    )
    writer = Writer(f"JBD {what}")
    writer.words(BASIC_LAYOUT, values)
    for i, celsius in enumerate(temps):
        ntc = Word(f"temperatures_c[{i}]", "u16", 0.1, offset=-kelvin_offset_raw / 10)
        writer.word(ntc, celsius)
    return writer.bytes()


def encode_cells(state: BatteryState) -> bytes:
    """The 0x04 payload: each cell in mV, u16."""
    cells = _require(state, "cells_v", "0x04 cell voltages")
    if not 1 <= len(cells) <= MAX_CELLS:
        raise EncodeError(f"cells_v: JBD serves 1..{MAX_CELLS} cells, got {len(cells)}")
    writer = Writer("JBD 0x04 cell voltages")
    for i, volts in enumerate(cells):
        writer.word(Word(f"cells_v[{i}]", "u16", 0.001), volts)
    return writer.bytes()


def encode_hardware(state: BatteryState) -> bytes:
    """The 0x05 payload: ``hardware``, or ``product`` when the state names no hardware."""
    text = state.hardware if state.hardware is not None else state.product
    if text is None:
        raise EncodeError("missing hardware (or product): JBD 0x05 hardware version carries it")
    if not (text.isascii() and text.isprintable()):
        raise EncodeError(f"hardware {text!r}: JBD 0x05 carries printable ASCII only")
    writer = Writer("JBD 0x05 hardware version")
    writer.text(text, MAX_HARDWARE_TEXT, "hardware")  # refuses more than 31 characters
    return writer.bytes().rstrip(b" ")


# -- the protocol ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decoded:
    values: dict[str, Any]
    cell_count: int | None  # what this frame says about the cell count


class JbdProtocol(BmsProtocol):
    """JBD / Xiaoxiang / Overkill Solar over UART, RS485 or RS232 (no addressing)."""

    name: ClassVar[str] = "jbd"
    title: ClassVar[str] = "JBD / Xiaoxiang / Overkill Solar"
    baudrate: ClassVar[int] = 9600
    default_address: ClassVar[int] = 0
    addresses: ClassVar[range] = range(0, 1)
    keys: ClassVar[frozenset[str]] = frozenset(
        {
            # 0x03 (temperatures only when the BMS has NTCs: NTC count 0 is a valid frame)
            "voltage_v",
            "current_a",
            "remaining_ah",
            "capacity_ah",
            "cycles",
            "firmware",
            "soc_pct",
            "charge_enable",
            "discharge_enable",
            "alarms",
            "warnings",
            # 0x04
            "cells_v",
            "cell_min_v",
            "cell_max_v",
            "cell_min_id",
            "cell_max_id",
        }
    )

    #: The registers of one poll cycle, and the identity register read once per connection.
    POLL: ClassVar[tuple[int, ...]] = (BASIC_INFO, CELL_VOLTAGES)
    IDENTITY: ClassVar[tuple[int, ...]] = (HARDWARE,)

    @property
    def kelvin_offset_raw(self) -> float:
        offset = self.options.kelvin_offset_raw
        return KELVIN_OFFSET_RAW if offset is None else offset

    # -- host side -------------------------------------------------------------------------------

    def reply_framer(self) -> Framer:
        return jbd_framer()

    def conversation(self, address: int, *, identity: bool) -> Conversation:
        self.check_address(address)
        registers = (*self.POLL, *self.IDENTITY) if identity else self.POLL
        for register in registers:
            yield Request(
                read_request(register),
                register_name(register),
                reply_prefix=bytes((START, register)),
                optional=register in self.IDENTITY,
            )

    def _decode(self, frames: Sequence[bytes]) -> BatteryState:
        handlers: dict[int, Callable[[bytes, str], _Decoded]] = {
            BASIC_INFO: self._decode_basic,
            CELL_VOLTAGES: _decode_cells,
            HARDWARE: _decode_hardware,
            ERROR_COUNTERS: lambda data, where: _Decoded({}, None),
        }
        states: list[BatteryState] = []
        requested: set[int] = set()
        first_count: tuple[int, str, int] | None = None  # frame, what, cells
        for index, raw in enumerate(frames, 1):
            frame = parse_frame(raw, index)
            if frame.is_request:
                requested.add(frame.register)
                continue
            what = register_name(frame.register)
            if frame.status != STATUS_OK:
                kind = "error" if frame.status == STATUS_ERROR else "unknown status"
                raise DecodeError(
                    f"frame {index}: register {what} reply has status {frame.status:02X} "
                    f"({kind}) at byte 2, expected 00 (OK)"
                )
            handler = handlers.get(frame.register)
            if handler is None:
                if frame.register in requested:
                    continue  # the answer to a request in this capture (a write ack)
                known = ", ".join(register_name(r) for r in handlers)
                raise DecodeError(
                    f"frame {index}: reply for unknown register 0x{frame.register:02X} "
                    f"(byte 1), not requested before it (known: {known})"
                )
            decoded = handler(frame.data, f"frame {index}: {what}")
            if decoded.cell_count is not None:
                source = (
                    f"{what} byte {CELL_COUNT_BYTE}"
                    if frame.register == BASIC_INFO
                    else f"{what}, {len(frame.data)} data bytes"
                )
                if first_count is None:
                    first_count = (index, source, decoded.cell_count)
                elif first_count[2] != decoded.cell_count:
                    raise DecodeError(
                        f"frame {index}: cell count mismatch: {decoded.cell_count} cells "
                        f"here ({source}), {first_count[2]} in frame {first_count[0]} "
                        f"({first_count[1]})"
                    )
            states.append(BatteryState(**decoded.values))
        return merge(states)

    def _decode_basic(self, data: bytes, where: str) -> _Decoded:
        info = parse_basic(data, where)
        return _Decoded(_basic_state(info, self.kelvin_offset_raw), info.cell_count)

    # -- device side -----------------------------------------------------------------------------

    def request_framer(self) -> Framer:
        return jbd_framer()

    def answer(self, request: bytes, source: StateSource) -> list[bytes]:
        """A real JBD's reply to a read of 0x03, 0x04 or 0x05; silence for anything else.

        Writes (``DD 5A ...``) get no answer: the simulated device is read-only.
        """
        try:
            frame = parse_frame(request)
        except DecodeError:
            return []
        if frame.command != READ or frame.data:
            return []
        encoders: dict[int, Callable[[BatteryState], bytes]] = {
            BASIC_INFO: lambda s: encode_basic(s, self.kelvin_offset_raw),
            CELL_VOLTAGES: encode_cells,
            HARDWARE: encode_hardware,
        }
        encoder = encoders.get(frame.register)
        if encoder is None:
            return []
        state = source(self.default_address)
        if state is None:
            return []
        return [build_reply(frame.register, encoder(state))]


def _decode_cells(data: bytes, where: str) -> _Decoded:
    cells = parse_cells(data, where)
    return _Decoded({"cells_v": cells, **cell_extremes(cells)}, len(cells))


def _decode_hardware(data: bytes, where: str) -> _Decoded:
    text = parse_hardware(data, where)
    return _Decoded({"hardware": text} if text is not None else {}, None)
