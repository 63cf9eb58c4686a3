"""Seplos V2 BMS (10E / 11xx packs) over RS485: the ASCII "YD/T 1363.3" protocol, 9600 8N1.

Frames are the Pylontech-style ``~ VER ADR CID1 CID2 LENGTH INFO CHKSUM \\r``
(``bmslink/rs485/frame.py``), VER 0x20, CID1 0x46. CID2 is the command in a
request and the return code (RTN) in a reply. One poll cycle asks 0x42
(telemetry) and 0x44 (telesignalling) with INFO = the pack address; the
identity asked once per connection adds 0x51 (vendor info, empty INFO).
Facts: shared/reference/bms-protocols.md §4a; vectors SEP2-01, SEP2-02.

The first part of this module is the machinery Seplos V2 and Pace (``pace.py``)
share, because both speak the same ASCII framing with the same shape of
payloads: counted cell and temperature arrays, per-item state bytes, bit
fields mapped to alarm names by tables (:class:`Flag`), a request framer that
lets the device answer a bad checksum, and :class:`AsciiBmsProtocol`, the
protocol class both derive from. The second part is Seplos V2's own tables.

Choices where the sources are silent or disagree:

- A reply does not say which command it answers. In ``decode`` a request
  among the frames gives the next reply its command. Without one, a reply is
  recognised by layout: it must parse exactly (counted arrays, the frame's own
  counts, no byte left over) as exactly one of 0x42, 0x44 and 0x51 (the last
  by its length, 32 bytes); none or several is a DecodeError. A reply to a
  command bmslink knows but does not decode (0x47 parameters, 0x4F protocol
  version, ...) is skipped. A frame whose VER is not 0x20 is refused: a Pace
  frame (VER 0x25) decoded as Seplos would read its 1 mV total voltage as
  10 mV.
- Temperatures are 0.1 K; 0 °C is raw 2731 unless ``kelvin_offset_raw`` says
  otherwise. Raw 0 (0 K) is no reading: it is left out of ``temperatures_c``,
  and the simulated device sends it for a sensor its state lacks.
- ``temperatures_c`` lists the sensors in source order: cell sensors, then
  environment, then power (MOSFET). With any count N the last two are the
  board sensors, the others cell sensors: ``cell_temp_min_c`` /
  ``cell_temp_max_c`` come from those, and ``temperature_c`` is their mean
  (rounded to the sensors' 0.1 °C), as Seplos V3 reports its average cell
  temperature as the pack's.
- The simulated device always sends N = 6, as real packs do: a state's list of
  up to 4 sensors is taken as cell sensors (board sensors sent as raw 0), a
  list of 6 as cells 1-4, environment, power; other lengths are refused.
- 0x42 custom items: Seplos sends 10 (capacity, SoC, rated capacity, cycles,
  SoH, port voltage, 4 reserved). Any count from 5 is accepted (the items after
  SoH are skipped); the port voltage has no contract key of its own and is not
  decoded; the simulated device sends ``voltage_v`` there (the contract's
  terminal voltage) and 0 for the reserved items.
- 0x44 bit fields: the 20 documented bytes; any count from 7 (through the
  on-off state) is accepted. Alarm event bits named "alarm" are warnings,
  "protection" and faults are alarms; the mapping is :data:`FLAGS`. The
  per-item state bytes (cells, sensors, current, total voltage) are the
  warning-level view: 01 below the lower limit, 02 above the upper one; the
  single current byte reads 01 as discharge over-current, 02 as charge
  over-current (the current is signed); F0 or any other code is ``general``.
  A name that is an alarm is not repeated in ``warnings``.
- Sensor, switch and EEPROM faults and the per-cell disconnection (broken sense
  wire) bits are alarms (``bms_internal``, switch faults ``contactor``); RTC
  and "calibration not done" are ``bms_internal`` warnings. The residual
  capacity alarm / protection and "cell low voltage, charging prohibited" are
  ``low_voltage`` (the pack is empty), reverse polarity and output connection
  fault ``general``. Heating, waiting, balancing and system state bits are
  states, not alarms.
- ``discharge_enable`` / ``charge_enable`` are on-off state bits 0 / 1 (bit 0
  is the discharge switch).
- The simulated device sets the first flag listed for a name at its level; it
  refuses (EncodeError) an alarm with no flag (``cell_imbalance``) and does not
  send a warning with no flag (``short_circuit``, ``contactor``,
  ``cell_imbalance``), as a real pack cannot say it; a ``general`` warning is
  sent as F0 on the first item byte still normal (current, total voltage,
  sensors, cells). It also marks the cell / sensor item of
  the highest / lowest cell and hottest / coldest sensor for the voltage and
  temperature names, and the current item for the current names.
- 0x51: the 2-byte software version is "major.minor" in decimal ("2.6");
  00 00 and blank names mean "not set" both ways (decoded as absent; the
  simulated device sends them for a state without ``firmware``, ``product``
  or ``manufacturer``).
- The simulated device echoes the request's INFO byte as the reply's command
  group, answers a request with a bad CHKSUM / LCHKSUM / LENID addressed to a
  pack it serves with RTN 02 / 03 / 05 (the codes the protocol defines for
  them; ``request_framer`` passes such requests on for that), and stays silent
  for other addresses, other VER or CID1, commands it does not serve and a
  malformed INFO.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

from bmslink.bank import cell_extremes
from bmslink.bms.base import (
    BmsProtocol,
    Conversation,
    Framer,
    Request,
    StateSource,
    merge,
)
from bmslink.bms.framing import AsciiFraming, AsciiReplyFramer
from bmslink.errors import DecodeError, EncodeError
from bmslink.rs485.frame import AsciiFrame, FrameError, parse_frame
from bmslink.rs485.layout import Reader, Word, Writer
from bmslink.scaling import decimal_places, round_raw
from bmslink.state import ALARM_NAMES, STATE_KEYS, BatteryState, required

# =================================================================================================
# Shared with pace.py: the ASCII BMS machinery
# =================================================================================================

Level = Literal["alarm", "warning"]
#: CID1 of a LiFePO4 BMS (both vendors).
CID1_LFP = 0x46
RTN_NORMAL = 0x00
#: Cells a pack can have: the balancing / disconnection bit fields cover 16.
MAX_CELLS = 16
#: Cell temperature sensors a pack sends before its two board sensors.
CELL_SENSORS = 4

# -- per-item state bytes ------------------------------------------------------------------------

ITEM_NORMAL, ITEM_LOW, ITEM_HIGH, ITEM_OTHER = 0x00, 0x01, 0x02, 0xF0


@dataclass(frozen=True)
class Item:
    """A 0x44 state byte of one measured item: 01 below its lower limit, 02 above its upper.

    The protection level lives in the bit fields, so a flagged item is a
    warning. A limit side with no name (a charge current below its lower limit)
    and any other non-zero code (F0 "other", Pace's 0x80-0xEF "user defined")
    read as ``general``. ``encode`` False: the simulated device leaves the item
    normal (a cell-level alarm does not flag the pack's total voltage).
    """

    field: str
    low: str | None
    high: str | None
    encode: bool = True

    def name(self, code: int) -> str | None:
        if code == ITEM_NORMAL:
            return None
        if code == ITEM_LOW:
            return self.low or "general"
        if code == ITEM_HIGH:
            return self.high or "general"
        return "general"

    def code(self, names: Iterable[str]) -> int:
        active = set(names)
        if not self.encode:
            return ITEM_NORMAL
        if self.high is not None and self.high in active:
            return ITEM_HIGH
        if self.low is not None and self.low in active:
            return ITEM_LOW
        return ITEM_NORMAL


CELL_ITEM = Item("cell", "low_voltage", "high_voltage")
TEMPERATURE_ITEM = Item("temperature", "low_temperature", "high_temperature")


def item_codes(values: Sequence[float | None], item: Item, names: Iterable[str]) -> list[int]:
    """Codes for a counted item array: the highest value gets 02, the lowest 01 (if active)."""
    active = set(names)
    codes = [ITEM_NORMAL] * len(values)
    present = [(v, i) for i, v in enumerate(values) if v is not None]
    if not present:
        return codes
    if item.high in active:
        codes[max(present, key=lambda p: p[0])[1]] = ITEM_HIGH
    if item.low in active:
        lowest = min(present, key=lambda p: p[0])[1]
        if codes[lowest] == ITEM_NORMAL:
            codes[lowest] = ITEM_LOW
    return codes


def mark_general(groups: Sequence[list[int]]) -> None:
    """Send a ``general`` warning as F0 on the first item still normal (in ``groups`` order).

    When every item is already flagged there is nowhere left to say it, and it is not sent.
    """
    for codes in groups:
        for i, code in enumerate(codes):
            if code == ITEM_NORMAL:
                codes[i] = ITEM_OTHER
                return


def item_warnings(codes: Iterable[int], item: Item) -> set[str]:
    return {name for code in codes if (name := item.name(code)) is not None}


@dataclass(frozen=True)
class ItemHead:
    """How a 0x44 answer opens: data flag, group byte, then counted cell and temperature item
    bytes and the fixed items (current, voltage...). Seplos V2 and Pace differ only in names."""

    group: str  # "command group" / "bus id"
    kind: str  # "alarm" / "warning": what the item bytes are called
    fixed: tuple[Item, ...]

    def read(self, r: Reader) -> set[str]:
        """Read the head; the warnings its item bytes report."""
        r.u8("data flag")
        r.u8(self.group)
        cells = read_counted(r, "cell count", "u8", f"cell {self.kind}")
        temps = read_counted(r, "temperature count", "u8", f"temperature {self.kind}")
        fixed = [r.u8(item.field) for item in self.fixed]
        warnings = item_warnings(cells, CELL_ITEM) | item_warnings(temps, TEMPERATURE_ITEM)
        for item, code in zip(self.fixed, fixed, strict=True):
            warnings |= item_warnings([code], item)
        return warnings

    def codes(
        self,
        cells: Sequence[float],
        temps: Sequence[float | None],
        alarms: Sequence[str],
        warnings: Sequence[str],
    ) -> tuple[list[int], list[int], list[int]]:
        """Cell, temperature and fixed item codes; a ``general`` warning as F0 where it fits."""
        names = {*alarms, *warnings}
        fixed = [item.code(names) for item in self.fixed]
        temp_codes = item_codes(temps, TEMPERATURE_ITEM, names)
        cell_codes = item_codes(cells, CELL_ITEM, names)
        if "general" in warnings:
            mark_general([fixed, temp_codes, cell_codes])
        return cell_codes, temp_codes, fixed

    def write(self, w: Writer, group: int, codes: tuple[list[int], list[int], list[int]]) -> None:
        cell_codes, temp_codes, fixed = codes
        w.u8(0x00, "data flag")
        w.u8(group, self.group)
        w.u8(len(cell_codes), "cell count")
        for code in cell_codes:
            w.u8(code, f"cell {self.kind}")
        w.u8(len(temp_codes), "temperature count")
        for code in temp_codes:
            w.u8(code, f"temperature {self.kind}")
        for item, code in zip(self.fixed, fixed, strict=True):
            w.u8(code, item.field)


# -- bit fields -> alarm names -------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One bit of a status byte and the contract name it reports at one level."""

    field: str
    bit: int
    name: str
    level: Level
    doc: str = ""


def flag_slots(table: Sequence[Flag]) -> dict[tuple[str, Level], Flag]:
    """The flag the simulated device sets for (name, level): the first one listed."""
    slots: dict[tuple[str, Level], Flag] = {}
    for flag in table:
        slots.setdefault((flag.name, flag.level), flag)
    return slots


def expressible(table: Sequence[Flag], level: Level) -> tuple[str, ...]:
    """Names a flag table can carry at ``level``, in contract order."""
    slots = flag_slots(table)
    return tuple(n for n in ALARM_NAMES if (n, level) in slots)


def read_flags(values: Mapping[str, int], table: Sequence[Flag]) -> dict[Level, set[str]]:
    """Active names per level; a status byte missing from ``values`` reads as all clear."""
    seen: dict[Level, set[str]] = {"alarm": set(), "warning": set()}
    for flag in table:
        if values.get(flag.field, 0) >> flag.bit & 1:
            seen[flag.level].add(flag.name)
    return seen


def write_flags(
    alarms: Iterable[str],
    warnings: Iterable[str],
    table: Sequence[Flag],
    what: str,
    protocol: str,
) -> dict[str, int]:
    """Status byte values for the names; an alarm with no flag is refused, never hidden.

    A warning with no flag is not sent (a real device cannot say it either).
    """
    slots = flag_slots(table)
    values: dict[str, int] = {}
    levels: tuple[tuple[Level, Iterable[str]], ...] = (("alarm", alarms), ("warning", warnings))
    for level, names in levels:
        for name in names:
            slot = slots.get((name, level))
            if slot is None:
                if level == "alarm":
                    can = ", ".join(expressible(table, "alarm"))
                    raise EncodeError(
                        f"{what}: alarm {name!r} has no {protocol} flag; refusing to serve a state "
                        f"that would hide it (alarms it can carry: {can})"
                    )
                continue
            values[slot.field] = values.get(slot.field, 0) | 1 << slot.bit
    return values


def alarm_lists(alarms: set[str], warnings: set[str]) -> dict[str, Any]:
    """Contract order; a name that is an alarm is not listed again as a warning."""
    return {
        "alarms": [n for n in ALARM_NAMES if n in alarms],
        "warnings": [n for n in ALARM_NAMES if n in warnings and n not in alarms],
    }


#: ``key -> (status byte, bit)`` of a boolean state key (the FET states).
BitMap = Mapping[str, tuple[str, int]]


def read_bits(values: Mapping[str, int], table: BitMap) -> dict[str, Any]:
    return {key: bool(values.get(name, 0) >> bit & 1) for key, (name, bit) in table.items()}


def write_bits(values: dict[str, int], state: BatteryState, table: BitMap, what: str) -> None:
    for key, (name, bit) in table.items():
        on = getattr(state, key)
        if on is None:
            raise EncodeError(f"{what}: {key} is missing")
        values[name] = values.get(name, 0) | bool(on) << bit


def activity_bits(values: dict[str, int], current: float | None, table: BitMap) -> None:
    """Set the "charging" / "discharging" / "idle" state bits from the current's sign."""
    if current is None:
        return
    which = "charging" if current > 0 else "discharging" if current < 0 else "idle"
    if which in table:
        name, bit = table[which]
        values[name] = values.get(name, 0) | 1 << bit


#: Keys a poll cycle (0x42 and 0x44, both vendors) always yields.
POLL_KEYS: frozenset[str] = frozenset(
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
        "current_a",
        "voltage_v",
        "remaining_ah",
        "capacity_ah",
        "installed_capacity_ah",
        "cycles",
        "soc_pct",
        "soh_pct",
        "alarms",
        "warnings",
        "charge_enable",
        "discharge_enable",
    }
)

# -- payload helpers -----------------------------------------------------------------------------


def read_counted(r: Reader, count_field: str, fmt: str, item: str) -> list[int]:
    """A count byte followed by that many numbers (cells, sensors, their state bytes)."""
    count = r.u8(count_field)
    return [r.number(fmt, f"{item} {n}") for n in range(1, count + 1)]


def read_custom(r: Reader, layout: Sequence[Word], required: int, sent: int) -> dict[str, Any]:
    """The user-defined items of 0x42: a count, then 16-bit items; the first ``layout`` known."""
    count = r.u8("user-defined item count")
    if count < required:
        names = ", ".join(w.key for w in layout[:required])
        raise DecodeError(
            f"{r.what}: user-defined item count is {count} (byte {r.pos - 1}), at least "
            f"{required} needed ({names}); the device sends {sent}"
        )
    known = layout[:count]
    values = r.words(known)
    for n in range(len(known), count):
        r.number("u16", f"user-defined item {n + 1}")
    return values


def contract_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in STATE_KEYS}


def cells_to_write(state: BatteryState, what: str, protocol: str) -> list[float]:
    cells = required(state, "cells_v", what)
    if not 1 <= len(cells) <= MAX_CELLS:
        raise EncodeError(
            f"{what}: cells_v: {protocol} carries 1..{MAX_CELLS} cells, got {len(cells)}"
        )
    return list(cells)


def write_cells(w: Writer, cells: Sequence[float]) -> None:
    w.u8(len(cells), "cell count")
    for i, volts in enumerate(cells):
        w.word(Word(f"cells_v[{i}]", "u16", 0.001), volts)


def check_percent(state: BatteryState, keys: Iterable[str], what: str) -> None:
    for key in keys:
        value = getattr(state, key)
        if isinstance(value, int | float) and math.isfinite(value) and not 0 <= value <= 100:
            raise EncodeError(f"{what}: {key} {value:g} is outside 0..100")


# -- temperatures (0.1 K) ------------------------------------------------------------------------


def temperature_places(offset: float) -> int:
    return max(1, decimal_places(offset / 10))


def celsius(raw: int, offset: float) -> float | None:
    """°C of a 0.1 K raw value; raw 0 (0 K) is no reading."""
    if raw == 0:
        return None
    return round((raw - offset) / 10, temperature_places(offset))


def temperature_keys(raws: Sequence[int], offset: float) -> dict[str, Any]:
    """Sensors in source order; all but the last two (the board sensors) are cell sensors."""
    values = [celsius(raw, offset) for raw in raws]
    present = [v for v in values if v is not None]
    cell = [v for v in values[:-2] if v is not None]
    out: dict[str, Any] = {}
    if present:
        out["temperatures_c"] = present
    if cell:
        out["cell_temp_min_c"] = min(cell)
        out["cell_temp_max_c"] = max(cell)
        out["temperature_c"] = round(sum(cell) / len(cell), temperature_places(offset))
    return out


def kelvin_raw(value: float, offset: float, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EncodeError(f"{where} must be a finite number, got {value!r}")
    raw = round_raw(value * 10 + offset, "nearest")
    if not 1 <= raw <= 0xFFFF:
        places = temperature_places(offset)
        low, high = round((1 - offset) / 10, places), round((0xFFFF - offset) / 10, places)
        raise EncodeError(f"{where} = {value:g} °C is outside {low:g}..{high:g} °C")
    return raw


def temperatures_to_write(
    state: BatteryState, offset: float, what: str, board: str
) -> list[float | None]:
    """The 6 sensors a pack sends: up to 4 cell sensors (the rest absent), then ``board``."""
    temps = required(state, "temperatures_c", what)
    if 1 <= len(temps) <= CELL_SENSORS:
        values: list[float | None] = [*temps, *[None] * (CELL_SENSORS + 2 - len(temps))]
    elif len(temps) == CELL_SENSORS + 2:
        values = list(temps)
    else:
        raise EncodeError(
            f"{what}: temperatures_c has {len(temps)} sensors; sent are 1..{CELL_SENSORS} cell "
            f"sensors, or {CELL_SENSORS} cell sensors then {board} ({CELL_SENSORS + 2})"
        )
    for i, value in enumerate(values):
        if value is not None:
            kelvin_raw(value, offset, f"{what}: temperatures_c[{i}]")
    return values


def write_temperatures(w: Writer, values: Sequence[float | None], offset: float) -> None:
    w.u8(len(values), "temperature count")
    for i, value in enumerate(values):
        raw = 0 if value is None else kelvin_raw(value, offset, f"{w.what}: temperatures_c[{i}]")
        w.number("u16", raw, f"temperatures_c[{i}]")


def analog_state(cells: Sequence[int], temps: Sequence[int], offset: float) -> dict[str, Any]:
    volts = [mv / 1000 for mv in cells]
    out: dict[str, Any] = {**temperature_keys(temps, offset), **cell_extremes(volts)}
    if volts:
        out["cells_v"] = volts
    return out


# -- text fields ---------------------------------------------------------------------------------


def read_text(r: Reader, size: int, field_name: str) -> str | None:
    """ASCII text, trailing NULs and spaces stripped; a blank field is absent."""
    return r.text(size, field_name) or None


# -- the request framer --------------------------------------------------------------------------


class AsciiRequestFramer(AsciiFraming):
    """``~ ... \\r`` requests as a device reads them.

    A frame that verifies is passed on. One that fails with an error the device
    answers (a bad CHKSUM, LCHKSUM or LENID, ``answered``) while its address is
    readable is passed on too, so that ``answer`` can reply with that RTN as the
    protocol defines; it still counts in ``bad_frames``. Anything else is dropped.
    """

    def __init__(self, answered: Iterable[int]) -> None:
        super().__init__()
        self._answered = frozenset(answered)
        self.bad_frames = 0
        self.noise_bytes = 0  # noise, truncated and oversized candidates

    def feed(self, data: bytes) -> list[bytes]:
        out = []
        frames = self._framer.feed(data)
        self._count_noise()
        for frame in frames:
            try:
                parse_frame(frame)
            except FrameError as exc:
                self.bad_frames += 1
                if exc.adr is not None and exc.rtn in self._answered:
                    out.append(frame)
                continue
            out.append(frame)
        return out

    def reset(self) -> None:
        super().reset()
        self._count_noise()

    def _count_noise(self) -> None:
        f = self._framer
        self.noise_bytes = f.noise_bytes + f.truncated_frames + f.oversized_frames


# -- the protocol --------------------------------------------------------------------------------

#: ``decode(info, kelvin_offset_raw)`` of a reply's INFO.
Decoder = Callable[[bytes, float], BatteryState]
#: ``encode(state, group, kelvin_offset_raw)``: a reply's INFO (``group``: the request's INFO).
Encoder = Callable[[BatteryState, int, float], bytes]


@dataclass(frozen=True)
class Command:
    """A command bmslink asks, decodes and serves."""

    cid2: int
    what: str
    decode: Decoder
    encode: Encoder
    #: The request's INFO is the pack address (one byte); otherwise it is empty.
    per_pack: bool = True
    #: Asked once per connection (names, versions), not every poll cycle.
    identity: bool = False
    #: A reply can be told by its layout when no request precedes it.
    recognisable: bool = True


class AsciiBmsProtocol(BmsProtocol):
    """A BMS speaking the YD/T 1363.3 ASCII frames (Seplos V2, Pace)."""

    ver: ClassVar[int]
    cid1: ClassVar[int] = CID1_LFP
    #: CID1 values a frame may carry in ``decode``.
    accepted_cid1: ClassVar[frozenset[int]] = frozenset({CID1_LFP})
    #: Decoded and served commands, in poll order.
    commands: ClassVar[tuple[Command, ...]]
    #: Every CID2 the protocol defines as a command: a frame carrying one is a request.
    command_names: ClassVar[Mapping[int, str]]
    #: Return codes the protocol defines.
    rtn_names: ClassVar[Mapping[int, str]]
    #: RTNs the device answers a broken request with (when the protocol defines them).
    answered_rtns: ClassVar[frozenset[int]]
    default_kelvin_offset_raw: ClassVar[float]

    @property
    def kelvin_offset_raw(self) -> float:
        chosen = self.options.kelvin_offset_raw
        return self.default_kelvin_offset_raw if chosen is None else chosen

    def command(self, cid2: int) -> Command | None:
        return next((c for c in self.commands if c.cid2 == cid2), None)

    def command_text(self, cid2: int) -> str:
        name = self.command_names.get(cid2)
        return f"0x{cid2:02X} {name}" if name else f"0x{cid2:02X}"

    def rtn_text(self, code: int) -> str:
        return f"RTN {code:02X} ({self.rtn_names.get(code, 'undefined')})"

    def reply_prefix(self, address: int) -> bytes:
        return b"~%02X%02X%02X" % (self.ver, address, self.cid1)

    # -- host side -------------------------------------------------------------------------------

    def reply_framer(self) -> Framer:
        # AsciiReplyFramer's noise_bytes is a read-only property, which Framer's plain
        # attribute does not admit for mypy; it is read, never written, by every user.
        return cast(Framer, AsciiReplyFramer())

    def conversation(self, address: int, *, identity: bool) -> Conversation:
        self.check_address(address)
        for command in sorted(self.commands, key=lambda c: c.identity):
            if command.identity and not identity:
                continue
            info = bytes([address]) if command.per_pack else b""
            data = AsciiFrame(self.ver, address, self.cid1, command.cid2, info).encode()
            yield Request(
                data,
                f"{command.what} (address {address})",
                reply_prefix=self.reply_prefix(address),
                optional=command.identity,
            )

    def _decode(self, frames: Sequence[bytes]) -> BatteryState:
        states: list[BatteryState] = []
        pending: int | None = None  # CID2 of the request the next reply answers
        for index, raw in enumerate(frames, 1):
            try:
                frame = parse_frame(raw)
            except DecodeError as exc:
                raise DecodeError(f"frame {index}: {exc}") from exc
            self._check_header(frame, index)
            if frame.cid2 in self.command_names:
                pending = frame.cid2
                continue
            state = self._decode_reply(frame, pending, index)
            pending = None
            if state is not None:
                states.append(state)
        return merge(states)

    def _check_header(self, frame: AsciiFrame, index: int) -> None:
        if frame.ver != self.ver:
            raise DecodeError(
                f"frame {index}: VER {frame.ver:02X}, {self.name} frames carry {self.ver:02X}"
            )
        if frame.cid1 not in self.accepted_cid1:
            expected = " or ".join(f"{c:02X}" for c in sorted(self.accepted_cid1))
            raise DecodeError(f"frame {index}: CID1 {frame.cid1:02X}, {self.name} uses {expected}")

    def _decode_reply(
        self, frame: AsciiFrame, pending: int | None, index: int
    ) -> BatteryState | None:
        asked = "a request" if pending is None else f"command {self.command_text(pending)}"
        if frame.cid2 != RTN_NORMAL:
            if frame.cid2 not in self.rtn_names:
                raise DecodeError(
                    f"frame {index}: CID2 {frame.cid2:02X} is neither a {self.name} command nor "
                    "a return code it defines"
                )
            raise DecodeError(
                f"frame {index}: address {frame.adr:02X} answered {asked} with "
                f"{self.rtn_text(frame.cid2)}"
            )
        offset = self.kelvin_offset_raw
        if pending is not None:
            command = self.command(pending)
            if command is None:
                return None  # a command bmslink knows but does not decode
            try:
                return command.decode(frame.info, offset)
            except DecodeError as exc:
                raise DecodeError(f"frame {index}: {exc}") from exc
        return self._recognise(frame.info, index, offset)

    def _recognise(self, info: bytes, index: int, offset: float) -> BatteryState:
        """A reply without its request: the one command whose layout it fits exactly."""
        fits: list[tuple[Command, BatteryState]] = []
        reasons: list[str] = []
        for command in self.commands:
            if not command.recognisable:
                continue
            try:
                fits.append((command, command.decode(info, offset)))
            except DecodeError as exc:
                reasons.append(str(exc))
        if len(fits) == 1:
            return fits[0][1]
        if fits:
            names = " and ".join(c.what for c, _ in fits)
            raise DecodeError(
                f"frame {index}: a reply without its request fits {names}; "
                "give the request before it"
            )
        unknown = [c.what for c in self.commands if not c.recognisable]
        hint = (
            f" ({' and '.join(unknown)} replies need their request before them)" if unknown else ""
        )
        raise DecodeError(
            f"frame {index}: a reply without its request ({len(info)} INFO bytes) fits no "
            f"{self.name} reply layout{hint}: " + "; ".join(reasons)
        )

    # -- device side -----------------------------------------------------------------------------

    def request_framer(self) -> Framer:
        return AsciiRequestFramer(self.answered_rtns)

    def answer(self, request: bytes, source: StateSource) -> list[bytes]:
        try:
            frame = parse_frame(request)
        except FrameError as exc:
            return self._error_reply(exc, source)
        except DecodeError:
            return []
        if frame.adr not in self.addresses or frame.ver != self.ver or frame.cid1 != self.cid1:
            return []
        command = self.command(frame.cid2)
        if command is None or len(frame.info) != (1 if command.per_pack else 0):
            return []
        state = source(frame.adr)
        if state is None:
            return []
        group = frame.info[0] if command.per_pack else frame.adr
        info = command.encode(state, group, self.kelvin_offset_raw)
        return [AsciiFrame(self.ver, frame.adr, self.cid1, RTN_NORMAL, info).encode()]

    def _error_reply(self, exc: FrameError, source: StateSource) -> list[bytes]:
        adr = exc.adr
        if adr is None or adr not in self.addresses or exc.rtn not in self.answered_rtns:
            return []
        if source(adr) is None:
            return []
        return [AsciiFrame(self.ver, adr, self.cid1, exc.rtn).encode()]


# =================================================================================================
# Seplos V2
# =================================================================================================

VER = 0x20
#: Raw value of 0 °C in the 0.1 K temperature fields (Seplos document, esphome-seplos-bms).
KELVIN_OFFSET_RAW = 2731.0
TELEMETRY, TELESIGNALLING, VENDOR_INFO = 0x42, 0x44, 0x51

COMMAND_NAMES: dict[int, str] = {
    TELEMETRY: "telemetry",
    TELESIGNALLING: "telesignalling",
    0x45: "telecontrol",
    0x47: "read parameters",
    0x49: "set parameters",
    0x4B: "history",
    0x4D: "get time",
    0x4E: "set time",
    0x4F: "protocol version",
    VENDOR_INFO: "vendor info",
}

RTN_NAMES: dict[int, str] = {
    0x00: "normal",
    0x01: "VER error",
    0x02: "CHKSUM error",
    0x03: "LCHKSUM error",
    0x04: "CID2 invalid",
    0x05: "command format error",
    0x06: "invalid data",
    0x07: "no data",
    0xE1: "CID1 invalid",
    0xE2: "execution failure",
    0xE3: "device fault",
    0xE4: "no permission",
}

# -- 0x42 telemetry ------------------------------------------------------------------------------

ANALOG = "0x42 telemetry"
#: After the cell and temperature arrays.
ANALOG_HEAD: tuple[Word, ...] = (
    Word("current_a", "s16", 0.01, doc="10 mA, + = charging"),
    Word("voltage_v", "u16", 0.01, doc="total voltage, 10 mV"),
    Word("remaining_ah", "u16", 0.01, doc="residual capacity, 10 mAh"),
)
#: The custom items after their count byte (Seplos sends 10).
ANALOG_CUSTOM: tuple[Word, ...] = (
    Word("capacity_ah", "u16", 0.01, doc="battery (full) capacity, 10 mAh"),
    Word("soc_pct", "u16", 0.1),
    Word("installed_capacity_ah", "u16", 0.01, doc="rated capacity, 10 mAh"),
    Word("cycles", "u16", integer=True),
    Word("soh_pct", "u16", 0.1),
    Word("port_voltage", "u16", 0.01, doc="no contract key: not decoded, served as voltage_v"),
    *(Word(f"reserved {n}", "u16", integer=True, doc="served as 0") for n in range(1, 5)),
)
#: Items a reply must have: up to SoH.
ANALOG_CUSTOM_REQUIRED = 5


def decode_telemetry(info: bytes, offset: float) -> BatteryState:
    r = Reader(info, ANALOG)
    r.u8("data flag")
    r.u8("command group")
    cells = read_counted(r, "cell count", "u16", "cell voltage")
    temps = read_counted(r, "temperature count", "u16", "temperature")
    values = r.words(ANALOG_HEAD)
    values.update(read_custom(r, ANALOG_CUSTOM, ANALOG_CUSTOM_REQUIRED, len(ANALOG_CUSTOM)))
    r.done()
    return BatteryState(**contract_keys(values), **analog_state(cells, temps, offset))


def encode_telemetry(state: BatteryState, group: int, offset: float) -> bytes:
    cells = cells_to_write(state, ANALOG, "Seplos V2")
    temps = temperatures_to_write(state, offset, ANALOG, "environment and power")
    check_percent(state, ("soc_pct", "soh_pct"), ANALOG)
    w = Writer(ANALOG)
    w.u8(0x00, "data flag")
    w.u8(group, "command group")
    write_cells(w, cells)
    write_temperatures(w, temps, offset)
    w.words(ANALOG_HEAD, {w_.key: getattr(state, w_.key) for w_ in ANALOG_HEAD})
    custom: dict[str, Any] = {
        w_.key: getattr(state, w_.key) for w_ in ANALOG_CUSTOM if w_.key in STATE_KEYS
    }
    custom["port_voltage"] = state.voltage_v
    custom.update({w_.key: 0 for w_ in ANALOG_CUSTOM if w_.key.startswith("reserved")})
    w.u8(len(ANALOG_CUSTOM), "custom item count")
    w.words(ANALOG_CUSTOM, custom)
    return w.bytes()


# -- 0x44 telesignalling -------------------------------------------------------------------------

ALARM = "0x44 telesignalling"
#: The bit-field bytes after their count byte, in order (Seplos sends 20).
BIT_FIELDS: tuple[str, ...] = (
    "alarm event 1",
    "alarm event 2",
    "alarm event 3",
    "alarm event 4",
    "alarm event 5",
    "alarm event 6",
    "on-off state",
    "equilibrium state 1",
    "equilibrium state 2",
    "system state",
    "disconnection state 1",
    "disconnection state 2",
    "alarm event 7",
    "alarm event 8",
    *(f"reserved {n}" for n in range(15, 21)),
)
#: Bytes a reply must have: up to the on-off state.
BIT_FIELDS_REQUIRED = 7

#: The item bytes after the temperature items. One current byte: the current is signed.
FIXED_ITEMS: tuple[Item, ...] = (
    Item("current alarm", "high_discharge_current", "high_charge_current"),
    Item("total voltage alarm", "low_voltage", "high_voltage", encode=False),
)
ALARM_HEAD = ItemHead("command group", "alarm", FIXED_ITEMS)

_E1, _E2, _E3, _E4, _E5, _E6 = (f"alarm event {n}" for n in range(1, 7))

#: Every bit-field bit that is an alarm or a warning. The simulated device sets the first
#: flag listed for a name at its level.
FLAGS: tuple[Flag, ...] = (
    Flag(_E1, 0, "bms_internal", "alarm", "voltage sensor fault"),
    Flag(_E1, 1, "bms_internal", "alarm", "temperature sensor fault"),
    Flag(_E1, 2, "bms_internal", "alarm", "current sensor fault"),
    Flag(_E1, 3, "bms_internal", "alarm", "key switch fault"),
    Flag(_E1, 4, "bms_internal", "alarm", "cell voltage dropout fault"),
    Flag(_E1, 5, "contactor", "alarm", "charge switch fault"),
    Flag(_E1, 6, "contactor", "alarm", "discharge switch fault"),
    Flag(_E1, 7, "contactor", "alarm", "current-limit switch fault"),
    Flag(_E2, 0, "high_voltage", "warning", "cell high voltage alarm"),
    Flag(_E2, 1, "high_voltage", "alarm", "cell over-voltage protection"),
    Flag(_E2, 2, "low_voltage", "warning", "cell low voltage alarm"),
    Flag(_E2, 3, "low_voltage", "alarm", "cell under-voltage protection"),
    Flag(_E2, 4, "high_voltage", "warning", "pack high voltage alarm"),
    Flag(_E2, 5, "high_voltage", "alarm", "pack over-voltage protection"),
    Flag(_E2, 6, "low_voltage", "warning", "pack low voltage alarm"),
    Flag(_E2, 7, "low_voltage", "alarm", "pack under-voltage protection"),
    Flag(_E3, 0, "high_temperature_charge", "warning", "charge high temperature alarm"),
    Flag(_E3, 1, "high_temperature_charge", "alarm", "charge over-temperature protection"),
    Flag(_E3, 2, "low_temperature_charge", "warning", "charge low temperature alarm"),
    Flag(_E3, 3, "low_temperature_charge", "alarm", "charge under-temperature protection"),
    Flag(_E3, 4, "high_temperature", "warning", "discharge high temperature alarm"),
    Flag(_E3, 5, "high_temperature", "alarm", "discharge over-temperature protection"),
    Flag(_E3, 6, "low_temperature", "warning", "discharge low temperature alarm"),
    Flag(_E3, 7, "low_temperature", "alarm", "discharge under-temperature protection"),
    Flag(_E4, 0, "high_temperature", "warning", "environment high temperature alarm"),
    Flag(_E4, 1, "high_temperature", "alarm", "environment over-temperature protection"),
    Flag(_E4, 2, "low_temperature", "warning", "environment low temperature alarm"),
    Flag(_E4, 3, "low_temperature", "alarm", "environment under-temperature protection"),
    Flag(_E4, 4, "high_temperature", "alarm", "power over-temperature protection"),
    Flag(_E4, 5, "high_temperature", "warning", "power high temperature alarm"),
    # bit 6: cell low-temperature heating (a state)
    Flag(_E5, 0, "high_charge_current", "warning", "charge over-current alarm"),
    Flag(_E5, 1, "high_charge_current", "alarm", "charge over-current protection"),
    Flag(_E5, 2, "high_discharge_current", "warning", "discharge over-current alarm"),
    Flag(_E5, 3, "high_discharge_current", "alarm", "discharge over-current protection"),
    Flag(_E5, 4, "high_discharge_current", "alarm", "transient over-current protection"),
    Flag(_E5, 5, "short_circuit", "alarm", "output short-circuit protection"),
    Flag(_E5, 6, "high_discharge_current", "alarm", "transient over-current lockout"),
    Flag(_E5, 7, "short_circuit", "alarm", "output short-circuit lockout"),
    Flag(_E6, 0, "high_voltage", "alarm", "charge high voltage protection"),
    # bit 1: intermittent recharge waiting (a state)
    Flag(_E6, 2, "low_voltage", "warning", "residual capacity alarm: the pack is nearly empty"),
    Flag(_E6, 3, "low_voltage", "alarm", "residual capacity protection"),
    Flag(_E6, 4, "low_voltage", "alarm", "cell low voltage, charging prohibited"),
    Flag(_E6, 6, "general", "alarm", "output connection fault (listed first: sent for general)"),
    Flag(_E6, 5, "general", "alarm", "output reverse polarity protection"),
    *(
        Flag(f"disconnection state {g}", bit, "bms_internal", "alarm", f"cell {8 * g - 7 + bit}")
        for g in (1, 2)
        for bit in range(8)
    ),
    # alarm event 7 bits 4/5: automatic / manual charging waiting (states)
    Flag("alarm event 8", 0, "bms_internal", "alarm", "EEPROM storage fault"),
    Flag("alarm event 8", 1, "bms_internal", "warning", "RTC error"),
    Flag("alarm event 8", 2, "bms_internal", "warning", "voltage calibration not done"),
    Flag("alarm event 8", 3, "bms_internal", "warning", "current calibration not done"),
    Flag("alarm event 8", 4, "bms_internal", "warning", "zero calibration not done"),
)

#: FET states: on-off state bit 0 is the discharge switch, bit 1 the charge switch.
SWITCHES: dict[str, tuple[str, int]] = {
    "discharge_enable": ("on-off state", 0),
    "charge_enable": ("on-off state", 1),
}
#: System state bits the simulated device sets from the current's sign.
ACTIVITY: dict[str, tuple[str, int]] = {
    "discharging": ("system state", 0),
    "charging": ("system state", 1),
    "idle": ("system state", 4),  # standby
}

#: Names 0x44 can carry per level (``general`` warnings ride on an item byte).
EXPRESSIBLE: dict[Level, tuple[str, ...]] = {
    "alarm": expressible(FLAGS, "alarm"),
    "warning": tuple(n for n in ALARM_NAMES if n in {*expressible(FLAGS, "warning"), "general"}),
}


def decode_telesignalling(info: bytes, offset: float) -> BatteryState:
    r = Reader(info, ALARM)
    item_warnings_seen = ALARM_HEAD.read(r)
    count = r.u8("bit-field count")
    if count < BIT_FIELDS_REQUIRED:
        raise DecodeError(
            f"{ALARM}: bit-field count is {count} (byte {r.pos - 1}), at least "
            f"{BIT_FIELDS_REQUIRED} needed (up to the on-off state); Seplos sends {len(BIT_FIELDS)}"
        )
    names = [BIT_FIELDS[k] if k < len(BIT_FIELDS) else f"bit field {k + 1}" for k in range(count)]
    fields = {name: r.u8(name) for name in names}
    r.done()
    seen = read_flags(fields, FLAGS)
    warnings = seen["warning"] | item_warnings_seen
    return BatteryState(**alarm_lists(seen["alarm"], warnings), **read_bits(fields, SWITCHES))


def encode_telesignalling(state: BatteryState, group: int, offset: float) -> bytes:
    alarms = list(required(state, "alarms", ALARM))
    warnings = list(state.warnings or [])
    cells = cells_to_write(state, ALARM, "Seplos V2")
    temps = temperatures_to_write(state, offset, ALARM, "environment and power")
    fields = write_flags(alarms, warnings, FLAGS, ALARM, "Seplos V2 0x44")
    write_bits(fields, state, SWITCHES, ALARM)
    activity_bits(fields, state.current_a, ACTIVITY)
    w = Writer(ALARM)
    ALARM_HEAD.write(w, group, ALARM_HEAD.codes(cells, temps, alarms, warnings))
    w.u8(len(BIT_FIELDS), "bit-field count")
    for name in BIT_FIELDS:
        w.u8(fields.get(name, 0), name)
    return w.bytes()


VENDOR = "0x51 vendor info"
DEVICE_NAME_SIZE = 10
MANUFACTURER_SIZE = 20


def version_text(raw: bytes) -> str | None:
    """ "major.minor" in decimal; 00 00 is "not set"."""
    return None if not any(raw) else ".".join(str(b) for b in raw)


def version_bytes(text: str | None, what: str) -> bytes:
    if text is None:
        return bytes(2)
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() and int(p) <= 255 for p in parts):
        raise EncodeError(f"{what}: firmware {text!r} is not 'major.minor', each 0-255")
    return bytes(int(p) for p in parts)


def decode_vendor(info: bytes, offset: float) -> BatteryState:
    r = Reader(info, VENDOR)
    product = read_text(r, DEVICE_NAME_SIZE, "device name")
    firmware = version_text(r.take(2, "software version"))
    manufacturer = read_text(r, MANUFACTURER_SIZE, "manufacturer name")
    r.done()
    return BatteryState(product=product, firmware=firmware, manufacturer=manufacturer)


def encode_vendor(state: BatteryState, group: int, offset: float) -> bytes:
    w = Writer(VENDOR)
    w.text(state.product or "", DEVICE_NAME_SIZE, "product")
    w.out += version_bytes(state.firmware, VENDOR)
    w.text(state.manufacturer or "", MANUFACTURER_SIZE, "manufacturer")
    return w.bytes()


# -- the protocol class --------------------------------------------------------------------------


class SeplosV2Protocol(AsciiBmsProtocol):
    """Seplos V2 (10E / 11xx) over RS485, ASCII protocol V2.0."""

    name = "seplos"
    title = "Seplos V2 (ASCII YD/T 1363.3, RS485)"
    baudrate = 9600
    default_address = 0
    addresses = range(0, 16)
    keys = POLL_KEYS

    ver = VER
    commands = (
        Command(TELEMETRY, ANALOG, decode_telemetry, encode_telemetry),
        Command(TELESIGNALLING, ALARM, decode_telesignalling, encode_telesignalling),
        Command(VENDOR_INFO, VENDOR, decode_vendor, encode_vendor, per_pack=False, identity=True),
    )
    command_names = COMMAND_NAMES
    rtn_names = RTN_NAMES
    answered_rtns = frozenset({0x02, 0x03, 0x05})
    default_kelvin_offset_raw = KELVIN_OFFSET_RAW
