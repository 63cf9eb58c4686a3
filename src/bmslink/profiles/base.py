"""Profile machinery: a CAN battery profile is a table of frames and fields.

One table drives decode, encode, DBC export, detection and conformance checks, so
the byte layout of a protocol is written down exactly once. Field kinds:

- :class:`Num`: an integer of 1, 2 or 4 bytes with scale/offset (most fields);
- :class:`Flag`: one bit that is a boolean (enable and request flags);
- :class:`Coded`: one byte whose values mean something (``0xAA`` = forbidden);
- :class:`Bits`: a few bits holding a small status code (charging/idle);
- :class:`AlarmBits`: one byte whose bits map to the contract's alarm names;
- :class:`AlarmPairs`: one byte of SMA/Victron 2-bit pairs (1 = active, 2 = OK,
  0 = not supported: absent alarms go out that way, and decode back as absent);
- :class:`Text`: ASCII bytes (names), possibly one part of a text spread over frames;
- :class:`Cells`: a run of cell voltages, possibly one part of the cell list;
- :class:`Version`: two bytes printed as a version ("1.17");
- :class:`Const`: fixed bytes a frame carries (Pylontech's "PN" marker).

A field whose key is a BatteryState key is decoded into the state and encoded
from it. Any other key is diagnostic: it shows in ``bmslink decode`` but never
enters the state, and when bmslink sends the frame it writes the field's
documented ``send`` value (or what ``derive`` computes from the state).

Decoding never raises anything but :class:`~bmslink.errors.DecodeError`;
encoding raises :class:`~bmslink.errors.EncodeError` for a missing or
unrepresentable value rather than sending something plausible.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from bmslink.errors import DecodeError, EncodeError
from bmslink.scaling import STEP_TOLERANCE, Rounding, decimal_places
from bmslink.state import ALARM_NAMES, STATE_KEYS, BatteryState

ByteOrder = Literal["little", "big"]
Sender = Literal["battery", "inverter"]
Derive = Callable[[BatteryState], Any]

INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h", (4, False): "I"}
INT_CODES[(4, True)] = "i"


def part_key(key: str, part: int) -> str:
    """Decoded key of one part of a multi-frame value: ``serial``, ``serial_part2``, ..."""
    return key if part == 0 else f"{key}_part{part + 1}"


@dataclass(frozen=True)
class Num:
    """An integer field: physical = raw * scale + offset."""

    key: str
    start: int
    size: int = 2
    signed: bool = False
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    byteorder: ByteOrder | None = None  # None: the frame's byte order
    magnitude: bool = False  # decode |raw|; encode a non-negative value (e.g. DCL sent negative)
    non_negative: bool = False  # a negative value on the wire is a decode error
    integer: bool = False  # the state value is an int (module counts, cycles)
    #: Encoding: "nearest" for measurements; limits round toward safety, "down" for
    #: CVL/CCL/DCL and "up" for DVL, so a limit never leaves above what was allowed.
    rounding: Rounding = "nearest"
    #: Raw wire value (as unsigned, e.g. 0x8000) meaning "not sent": decodes to absent.
    invalid: int | None = None
    #: Encode an absent value as ``invalid`` (SMA: unsent fields must be marked invalid).
    absent_as_invalid: bool = False
    #: A cell/module number sent as an integer but kept as text in the state (cell ids);
    #: raw 0 means "unknown" both ways.
    as_text: bool = False
    send: float | None = None  # non-state key: the value bmslink sends
    derive: Derive | None = None  # the value to send, computed from the state
    doc: str = ""

    def __post_init__(self) -> None:
        if (self.size, self.signed) not in INT_CODES:
            raise ValueError(f"{self.key}: unsupported width {self.size} bytes")
        if self.absent_as_invalid and self.invalid is None:
            raise ValueError(f"{self.key}: absent_as_invalid needs an invalid marker")

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def raw_min(self) -> int:
        return -(1 << (8 * self.size - 1)) if self.signed else 0

    @property
    def raw_max(self) -> int:
        return (1 << (8 * self.size - (1 if self.signed else 0))) - 1

    @property
    def decimals(self) -> int:
        """Decimal places the scale resolves (0.1 -> 1, 0.01 -> 2, 1 -> 0)."""
        return decimal_places(self.scale)

    @property
    def physical_range(self) -> tuple[float, float]:
        """Smallest and largest value the field can carry (a negative scale swaps the ends)."""
        low, high = sorted(
            round(raw * self.scale + self.offset, self.decimals)
            for raw in (self.raw_min, self.raw_max)
        )
        return low, high

    @property
    def invalid_raw(self) -> int | None:
        """The invalid marker as the (signed) integer struct packs and unpacks."""
        if self.invalid is None:
            return None
        width = 8 * self.size
        if self.signed and self.invalid >= 1 << (width - 1):
            return self.invalid - (1 << width)
        return self.invalid


@dataclass(frozen=True)
class Flag:
    """One bit as a boolean; ``into`` ORs several bits into one state key."""

    key: str
    byte: int
    bit: int
    into: str | None = None  # state key this bit also feeds (force charge I/II -> force_charge)
    write: bool = True  # encode sets this bit from the state
    absent_is_false: bool = False  # encode: a missing request flag means "not requested"
    doc: str = ""

    @property
    def end(self) -> int:
        return self.byte + 1


@dataclass(frozen=True)
class Coded:
    """A whole byte whose listed values mean something: ``{0x00: True, 0xAA: False}``.

    ``otherwise`` is what any other byte decodes to; None makes it a decode error.
    Encoding writes the first raw value listed for the state's value.
    """

    key: str
    byte: int
    values: Mapping[int, bool | int]
    otherwise: bool | int | None = None
    send: bool | int | None = None  # non-state key: the value bmslink sends
    doc: str = ""

    @property
    def end(self) -> int:
        return self.byte + 1

    @property
    def write(self) -> dict[bool | int, int]:
        out: dict[bool | int, int] = {}
        for raw, value in self.values.items():
            out.setdefault(value, raw)
        return out


@dataclass(frozen=True)
class Bits:
    """``width`` bits from bit ``lsb`` of one byte: a small status code, not a state value."""

    key: str
    byte: int
    lsb: int
    width: int
    send: int | None = None
    derive: Derive | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if not (self.lsb >= 0 and self.width >= 1 and self.lsb + self.width <= 8):
            raise ValueError(f"{self.key}: bits {self.lsb}+{self.width} do not fit a byte")

    @property
    def end(self) -> int:
        return self.byte + 1


@dataclass(frozen=True)
class AlarmBits:
    """A byte of alarm (or warning) bits in the contract's vocabulary.

    ``bits`` maps bit number to the name a set bit decodes to (several bits may
    decode to one name). ``write`` maps every name the encoder must be able to
    send to its bit (or bits): a name a protocol lacks goes to the nearest bit,
    so no alarm is ever dropped on the way out.
    """

    target: Literal["alarms", "warnings"]
    byte: int
    bits: Mapping[int, str]
    write: Mapping[str, int | tuple[int, ...]]
    doc: str = ""

    @property
    def end(self) -> int:
        return self.byte + 1


@dataclass(frozen=True)
class AlarmPairs:
    """A byte of four 2-bit "arrive/leave" pairs (SMA, Victron 0x35A).

    Pair ``i`` is bits 2i (low) and 2i+1: value 1 = active, 2 = OK, 0 = not
    supported, 3 = reserved. ``pairs`` names the supported pairs; the encoder
    writes OK into each of them and "active" where the state has the alarm. A
    state without alarm data is sent as "not supported" throughout (never as
    OK), and a byte in which no pair reports decodes as absent.
    """

    target: Literal["alarms", "warnings"]
    byte: int
    pairs: Mapping[int, str]
    write: Mapping[str, int]
    doc: str = ""

    @property
    def end(self) -> int:
        return self.byte + 1


@dataclass(frozen=True)
class Text:
    """ASCII text; padded with ``pad`` on encode, trailing NULs/spaces stripped on decode.

    ``part`` > 0 makes this frame carry characters ``part * size`` onwards of a
    longer text (a serial number over two frames); it decodes as ``<key>_partN``
    and the parts are joined when frames are merged into a state.
    """

    key: str
    start: int
    size: int
    pad: bytes = b" "
    part: int = 0
    source: str | None = None  # encode from this state key instead (a non-state key's text)
    send: bytes | None = None  # non-state key: the text bmslink sends
    doc: str = ""

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def decoded_key(self) -> str:
        return part_key(self.key, self.part)


@dataclass(frozen=True)
class Cells:
    """``count`` cell voltages; ``part`` k carries cells k*count+1 onwards.

    A raw 0 is "no such cell": trailing zeros are dropped on decode and cells the
    pack does not have are sent as 0.
    """

    key: str
    start: int
    count: int
    size: int = 2
    scale: float = 0.001
    part: int = 0
    unit: str = "V"
    doc: str = ""

    @property
    def end(self) -> int:
        return self.start + self.size * self.count

    @property
    def decoded_key(self) -> str:
        return part_key(self.key, self.part)


@dataclass(frozen=True)
class Version:
    """Major and minor bytes printed as ``major.minor`` in ``base`` (BYD/Victron print hex).

    0.0 means "unknown" both ways; a version text that is not two such numbers is
    sent as 0.0 rather than refused, since it is informational only.
    """

    key: str
    start: int
    base: Literal[10, 16] = 16
    send: str | None = None
    doc: str = ""

    @property
    def end(self) -> int:
        return self.start + 2


@dataclass(frozen=True)
class Const:
    """Bytes a frame always carries; decoded as text under ``key`` for diagnostics."""

    key: str
    start: int
    value: bytes
    doc: str = ""

    @property
    def end(self) -> int:
        return self.start + len(self.value)


Field = Num | Flag | Coded | Bits | AlarmBits | AlarmPairs | Text | Cells | Version | Const


@dataclass(frozen=True)
class FrameSpec:
    """One CAN frame of a profile: id, who sends it, its length and fields."""

    id: int
    name: str
    length: int
    sender: Sender
    fields: tuple[Field, ...] = ()
    min_length: int | None = None  # shortest accepted on decode (older firmware)
    extended: bool = False
    byteorder: ByteOrder = "little"
    #: Seconds between transmissions; None = only in answer to a request.
    period_s: float | None = 1.0
    accept_any_payload: bool = False  # keep-alives: content carries no meaning
    #: A required frame that cannot be encoded stops the whole broadcast (it would
    #: be a partial picture); an optional one (names, counters) is just left out.
    required: bool = True
    emit: bool = True  # False: bmslink decodes it but never sends it (quick stop)
    #: Multiplexed frames share an id and differ in one byte: (byte index, value).
    mux: tuple[int, int] | None = None
    alt_ids: tuple[int, ...] = ()  # other ids decoded the same way (Pylon HV send group 1)
    doc: str = ""

    @property
    def accepted_min(self) -> int:
        return self.length if self.min_length is None else self.min_length

    @cached_property
    def label(self) -> str:
        return format_id(self.id, self.extended)

    @property
    def wire_ids(self) -> tuple[int, ...]:
        """Every id this frame is seen with: its own and the alternates."""
        return (self.id, *self.alt_ids)

    @cached_property
    def parts(self) -> dict[str, tuple[str, int, int, str]]:
        """Decoded key -> (state key, part index, part size, kind) for multi-frame values."""
        out: dict[str, tuple[str, int, int, str]] = {}
        for f in self.fields:
            if isinstance(f, Text) and f.key in STATE_KEYS:
                out[f.decoded_key] = (f.key, f.part, f.size, "text")
            elif isinstance(f, Cells):
                out[f.decoded_key] = (f.key, f.part, f.count, "cells")
        return out


@dataclass(frozen=True)
class Response:
    """Request/response profiles: an inverter frame that makes the battery answer.

    ``match`` lists (byte index, value) pairs the request must carry; ``frames``
    are the battery frame ids sent in answer, in order.
    """

    request: int
    frames: tuple[int, ...]
    match: tuple[tuple[int, int], ...] = ()
    extended: bool = False
    doc: str = ""

    def matches(self, can_id: int, extended: bool, data: bytes | bytearray) -> bool:
        if can_id != self.request or extended != self.extended:
            return False
        return all(i < len(data) and data[i] == v for i, v in self.match)


_EXTENDED = 1 << 31  # marks 29-bit ids in lookup keys (above any CAN id)


def current_limit(key: str, start: int, doc: str = "") -> Num:
    """A charge or discharge current limit: S16 of 0.1 A, never negative, rounded down.

    Rounding down keeps every limit at or below what the BMS allows.
    """
    return Num(
        key,
        start,
        2,
        signed=True,
        scale=0.1,
        unit="A",
        non_negative=True,
        rounding="down",
        doc=doc,
    )


#: Currents within this band of zero count as "idle" in the status codes some profiles send.
IDLE_BAND_A = 0.5


def status_from_current(charging: int, discharging: int, idle: int) -> Derive:
    """A derive sending one of three codes from the current's sign (Growatt, Pylon HV)."""

    def status(state: BatteryState) -> int | None:
        current = state.current_a
        if current is None:
            return None
        if current > IDLE_BAND_A:
            return charging
        return discharging if current < -IDLE_BAND_A else idle

    return status


def cell_count(state: BatteryState) -> int:
    """Cells in ``cells_v``; 0, the usual "unknown", without a cell list."""
    return len(state.cells_v) if state.cells_v else 0


def _state_keys(specs: Iterable[FrameSpec]) -> frozenset[str]:
    keys: set[str] = set()
    for spec in specs:
        for f in spec.fields:
            if isinstance(f, AlarmBits | AlarmPairs):
                keys.add(f.target)
            elif isinstance(f, Flag):
                keys.add(f.into or f.key)
            elif f.key in STATE_KEYS:
                keys.add(f.key)
    return frozenset(keys)


def _frame_key(can_id: int, extended: bool) -> int:
    return can_id | _EXTENDED if extended else can_id


def format_id(can_id: int, extended: bool = False) -> str:
    return f"0x{can_id:08X}" if extended and can_id > 0xFFFF else f"0x{can_id:03X}"


@dataclass(slots=True)
class DecodedFrame:
    """What one frame said: its spec and the fields, keyed by BatteryState keys where they match."""

    spec: FrameSpec
    fields: dict[str, Any]
    can_id: int | None = None  # the id on the wire when it was one of the spec's alt_ids

    @property
    def label(self) -> str:
        if self.can_id is None:
            return self.spec.label
        return format_id(self.can_id, self.spec.extended)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.label, "name": self.spec.name, "fields": self.fields}


# -- compiled codecs -------------------------------------------------------------------------------


def _struct_format(nums: Iterable[Num], length: int, order: ByteOrder) -> str:
    """One struct format covering fields in start order, padding the gaps."""
    parts: list[str] = []
    pos = 0
    for f in sorted(nums, key=lambda n: n.start):
        if f.start < pos:
            raise ValueError(f"{f.key}: overlaps the previous field")
        if f.start > pos:
            parts.append(f"{f.start - pos}x")
        parts.append(INT_CODES[(f.size, f.signed)])
        pos = f.end
    if pos < length:
        parts.append(f"{length - pos}x")
    return ("<" if order == "little" else ">") + "".join(parts)


def _integer_divisor(scale: float) -> int | None:
    """10 for a scale of 0.1, 1 for 1.0; None when 1/scale is not a whole number.

    Dividing by an exact integer gives the double nearest the decimal value:
    4866 / 100 is 48.66, where 4866 * 0.01 would be 48.660000000000004.
    """
    inverse = 1.0 / scale
    whole = round(inverse)
    return whole if whole >= 1 and abs(inverse - whole) < 1e-9 else None


def _value_expr(f: Num, var: str) -> str:
    """Python source turning raw integer ``var`` into the field's physical value."""
    if f.as_text:
        return f"str({var})"
    divisor = _integer_divisor(f.scale)
    if divisor is not None:
        expr = var if divisor == 1 else f"{var} / {divisor}"
    else:
        expr = f"round({var} * {f.scale!r}, {f.decimals})"
    if f.offset:
        # round to the resolution: 2213 / 10 - 100 is 21.299999999999997 otherwise
        places = max(f.decimals, decimal_places(f.offset))
        expr = f"round({expr} + {f.offset!r}, {places})"
    if f.integer:
        return f"int({expr})"
    return expr if "/" in expr or "round" in expr else f"float({expr})"


def _union(*groups: tuple[str, ...]) -> list[str]:
    merged = set().union(*groups)
    return [n for n in ALARM_NAMES if n in merged]


def _names_for_byte(bits: Mapping[int, str], value: int) -> tuple[str, ...]:
    names = {name for bit, name in bits.items() if value >> bit & 1}
    return tuple(n for n in ALARM_NAMES if n in names)


def _names_for_pairs(pairs: Mapping[int, str], value: int) -> tuple[str, ...] | None:
    """Active names; None when no pair reports at all (every one "not supported")."""
    states = [value >> (2 * pair) & 3 for pair in pairs]
    if not any(state in (1, 2) for state in states):
        return None
    names = {name for pair, name in pairs.items() if value >> (2 * pair) & 3 == 1}
    return tuple(n for n in ALARM_NAMES if n in names)


def _reported_union(*groups: tuple[str, ...] | None) -> list[str] | None:
    """Alarm names from bytes that report; None if none of them does."""
    reported = [g for g in groups if g is not None]
    return _union(*reported) if reported else None


def _cells(raws: Sequence[int], divisor: int) -> list[float]:
    """Cell voltages from raw counts; trailing zeros are cells the pack does not have."""
    end = len(raws)
    while end and raws[end - 1] == 0:
        end -= 1
    return [r / divisor for r in raws[:end]]


def _version(major: int, minor: int, base: int) -> str | None:
    if major == 0 and minor == 0:
        return None
    return f"{major:x}.{minor:x}" if base == 16 else f"{major}.{minor}"


def _parse_version(text: str | None, base: int) -> tuple[int, int]:
    """(major, minor) of "1.17"; (0, 0), meaning unknown, for anything else."""
    if text:
        head, _, tail = text.strip().lstrip("vV").partition(".")
        try:
            major, minor = int(head, base), int(tail.split(".")[0], base)
        except ValueError:
            return 0, 0
        if 0 <= major <= 0xFF and 0 <= minor <= 0xFF:
            return major, minor
    return 0, 0


def _cell_number(text: str | None, raw_max: int) -> int:
    """A cell id the state holds as text ("12") as its number; 0 (unknown) if it is not one."""
    if text is None or not text.strip().isdigit():
        return 0
    number = int(text)
    return number if number <= raw_max else 0


def _encode_text(value: str | None, size: int, pad: bytes, where: str, part: int = 0) -> bytes:
    if value is None:
        raise EncodeError(f"{where} is missing")
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        raise EncodeError(f"{where} is not ASCII: {value!r}") from None
    return raw[part * size : (part + 1) * size].ljust(size, pad)


class CompiledFrame:
    """A FrameSpec turned into generated decode functions, one per payload length.

    The table is the only description of the layout; the generated function is
    what makes decoding several times faster than interpreting the table per frame.
    """

    def __init__(self, spec: FrameSpec) -> None:
        self.spec = spec
        self.nums = tuple(f for f in spec.fields if isinstance(f, Num))
        self.flags = tuple(f for f in spec.fields if isinstance(f, Flag))
        self.alarm_bytes = tuple(f for f in spec.fields if isinstance(f, AlarmBits | AlarmPairs))
        self.texts = tuple(f for f in spec.fields if isinstance(f, Text))
        self.consts = tuple(f for f in spec.fields if isinstance(f, Const))
        self.others = tuple(f for f in spec.fields if isinstance(f, Coded | Bits | Cells | Version))
        where = f"{spec.label} {spec.name}"
        for f in spec.fields:
            if f.end > spec.length:
                raise ValueError(f"{where} {f}: ends at byte {f.end} > length {spec.length}")
            if (
                spec.mux is not None
                and isinstance(f, Num | Text | Cells | Version | Const)
                and f.start <= spec.mux[0] < f.end
            ):
                raise ValueError(f"{where}: {f} overlaps the multiplexer byte")
            if spec.emit and not isinstance(f, AlarmBits | AlarmPairs | Const | Cells):
                sendable = (
                    f.key in STATE_KEYS
                    or getattr(f, "send", None) is not None
                    or getattr(f, "derive", None) is not None
                    or getattr(f, "source", None) is not None
                    or getattr(f, "into", None) is not None
                )
                if not sendable:
                    raise ValueError(f"{where}: {f.key} is not a BatteryState key and has no send")
        self._encoder: Callable[[BatteryState], bytes] | None = None
        #: generated decode functions by payload length, filled on first use
        self.decoders: dict[int, Callable[[bytes], dict[str, Any]]] = {}

    def decoder_for(self, n: int) -> Callable[[bytes], dict[str, Any]]:
        """The decode function for an ``n``-byte payload; DecodeError for a wrong length."""
        fn = self.decoders.get(n)
        if fn is None:
            spec = self.spec
            if n < spec.accepted_min or n > 8:
                want = "8" if spec.accepted_min == 8 else f"{spec.accepted_min}..8"
                raise DecodeError(
                    f"{spec.label} {spec.name}: wrong length {n}, expected {want} bytes"
                )
            fn = self.decoders[n] = self._generate(n)
        return fn

    def _generate(self, n: int) -> Callable[[bytes], dict[str, Any]]:
        spec = self.spec
        where = f"{spec.label} {spec.name}"
        env: dict[str, Any] = {
            "DecodeError": DecodeError,
            "_union": _union,
            "_reported_union": _reported_union,
            "_cells": _cells,
            "_version": _version,
        }
        lines = ["def decode(data):"]
        items: list[str] = []
        later: list[str] = []  # conditional assignments, after the literal
        if not spec.accept_any_payload:
            fitting = [f for f in self.nums if f.end <= n]
            for order in ("little", "big"):
                group = sorted(
                    (f for f in fitting if (f.byteorder or spec.byteorder) == order),
                    key=lambda f: f.start,
                )
                if not group:
                    continue
                env[f"unpack_{order}"] = struct.Struct(_struct_format(group, n, order)).unpack
                names = [f"v{self.nums.index(f)}" for f in group]
                lines.append(
                    f"    {', '.join(names)}{',' if len(names) == 1 else ''} = unpack_{order}(data)"
                )
                for f, var in zip(group, names, strict=True):
                    invalid = f.invalid_raw
                    guard = f"{var} != {invalid} and " if invalid is not None else ""
                    if f.magnitude:
                        lines.append(f"    if {guard}{var} < 0: {var} = -{var}")
                    elif f.non_negative and f.signed:
                        message = f"{where}: {f.key} is negative (raw {{}})"
                        lines.append(
                            f"    if {guard}{var} < 0: raise DecodeError({message!r}.format({var}))"
                        )
            for f in fitting:
                var = f"v{self.nums.index(f)}"
                value = _value_expr(f, var)
                if f.invalid is not None:
                    later.append(f"    if {var} != {f.invalid_raw}: out[{f.key!r}] = {value}")
                elif f.as_text:
                    later.append(f"    if {var}: out[{f.key!r}] = {value}")
                else:
                    items.append(f"{f.key!r}: {value}")
            for flag in self.flags:
                if flag.byte < n:
                    items.append(f"{flag.key!r}: bool(data[{flag.byte}] & {1 << flag.bit})")
            targets: dict[str, list[str]] = {}
            reporting_targets = {
                a.target for a in self.alarm_bytes if isinstance(a, AlarmPairs) and a.byte < n
            }
            for i, a in enumerate(self.alarm_bytes):
                if a.byte < n:
                    if isinstance(a, AlarmBits):
                        env[f"alarm_table_{i}"] = tuple(
                            _names_for_byte(a.bits, v) for v in range(256)
                        )
                    else:
                        env[f"alarm_table_{i}"] = tuple(
                            _names_for_pairs(a.pairs, v) for v in range(256)
                        )
                    targets.setdefault(a.target, []).append(f"alarm_table_{i}[data[{a.byte}]]")
            for t_index, (target, lookups) in enumerate(targets.items()):
                if target in reporting_targets:  # pairs can say "not supported": may be None
                    items.append(f"{target!r}: _reported_union({', '.join(lookups)})")
                    continue
                if len(lookups) == 1:
                    items.append(f"{target!r}: list({lookups[0]})")
                    continue
                # the usual case is no alarm at all: only sort when two bytes have names
                names = [f"a{t_index}_{j}" for j in range(len(lookups))]
                for name, lookup in zip(names, lookups, strict=True):
                    lines.append(f"    {name} = {lookup}")
                merged = " + ".join(names)
                items.append(
                    f"{target!r}: _union({', '.join(names)}) "
                    f"if {' + '.join(f'bool({x})' for x in names)} > 1 else list({merged})"
                )
            for t in self.texts:
                if t.start < n:
                    items.append(
                        f"{t.decoded_key!r}: data[{t.start}:{min(t.end, n)}]"
                        ".decode('latin-1').rstrip('\\x00 ')"
                    )
            for i, o in enumerate(self.others):
                if o.end > n:
                    continue
                if isinstance(o, Coded):
                    table_name = f"coded_{i}"
                    env[table_name] = dict(o.values)
                    if o.otherwise is None:
                        message = f"{where}: byte {o.byte} = 0x{{:02X}} is not a known {o.key} code"
                        lines.append(f"    c{i} = {table_name}.get(data[{o.byte}])")
                        lines.append(
                            f"    if c{i} is None: "
                            f"raise DecodeError({message!r}.format(data[{o.byte}]))"
                        )
                        items.append(f"{o.key!r}: c{i}")
                    else:
                        items.append(
                            f"{o.key!r}: {table_name}.get(data[{o.byte}], {o.otherwise!r})"
                        )
                elif isinstance(o, Bits):
                    items.append(f"{o.key!r}: data[{o.byte}] >> {o.lsb} & {(1 << o.width) - 1}")
                elif isinstance(o, Cells):
                    code = INT_CODES[(o.size, False)]
                    prefix = "<" if spec.byteorder == "little" else ">"
                    env[f"cells_{i}"] = struct.Struct(f"{prefix}{o.count}{code}").unpack_from
                    divisor = _integer_divisor(o.scale)
                    if divisor is None:
                        raise ValueError(f"{where}: cell scale {o.scale} is not 1/integer")
                    items.append(
                        f"{o.decoded_key!r}: _cells(cells_{i}(data, {o.start}), {divisor})"
                    )
                else:
                    lines.append(
                        f"    ver{i} = _version(data[{o.start}], data[{o.start + 1}], {o.base})"
                    )
                    later.append(f"    if ver{i} is not None: out[{o.key!r}] = ver{i}")
            for c in self.consts:
                if c.start < n:
                    items.append(f"{c.key!r}: data[{c.start}:{min(c.end, n)}].decode('latin-1')")
        lines.append("    out = {" + ", ".join(items) + "}")
        lines.extend(later)
        into = sorted({f.into for f in self.flags if f.into and f.byte < n})
        for key in into:
            sources = [f.key for f in self.flags if f.into == key and f.byte < n]
            lines.append(f"    out[{key!r}] = " + " or ".join(f"out[{k!r}]" for k in sources))
        lines.append("    return out")
        source = "\n".join(lines)
        exec(compile(source, f"<bmslink {spec.label} {spec.name} len {n}>", "exec"), env)
        fn: Callable[[bytes], dict[str, Any]] = env["decode"]
        return fn

    def encode(self, state: BatteryState) -> bytes:
        if not self.spec.emit:
            raise EncodeError(f"{self.spec.label} {self.spec.name} is decoded, never sent")
        fn = self._encoder
        if fn is None:
            fn = self._encoder = self._generate_encoder()
        return fn(state)

    def _generate_encoder(self) -> Callable[[BatteryState], bytes]:
        """Generate ``encode(state)`` from the table: checks, one struct.pack, then bits."""
        spec = self.spec
        where = f"{spec.label} {spec.name}"
        env: dict[str, Any] = {
            "EncodeError": EncodeError,
            "_text": _encode_text,
            "_parse_version": _parse_version,
            "_cell_number": _cell_number,
            "floor": math.floor,
            "ceil": math.ceil,
        }
        lines = ["def encode(state):"]

        def require(var: str, key: str) -> str:
            message = f"{where}: {key} is missing"
            return f"    if {var} is None: raise EncodeError({message!r})"

        def source_of(f: Num | Bits | Coded, index: str) -> str:
            """Expression for the value a field sends."""
            derive = getattr(f, "derive", None)
            if derive is not None:
                env[f"derive_{index}"] = derive
                return f"derive_{index}(state)"
            if f.key in STATE_KEYS:
                return f"state.{f.key}"
            return repr(f.send)

        packed: dict[ByteOrder, list[tuple[Num, str]]] = {"little": [], "big": []}
        for i, f in enumerate(self.nums):
            var = f"r{i}"
            packed[f.byteorder or spec.byteorder].append((f, var))
            lines.append(f"    v = {source_of(f, f'n{i}')}")
            if f.as_text:
                lines.append(f"    {var} = _cell_number(v, {f.raw_max})")
                continue
            if f.absent_as_invalid:
                lines.append(f"    if v is None: {var} = {f.invalid_raw}")
                lines.append("    else:")
                indent = "        "
            else:
                lines.append(require("v", f.key))
                indent = "    "
            body: list[str] = []
            if f.magnitude or f.non_negative:
                message = f"{where}: {f.key} is negative ({{}})"
                body.append(f"if v < 0: raise EncodeError({message!r}.format(v))")
            base = f"(v - {f.offset!r})" if f.offset else "v"
            divisor = _integer_divisor(f.scale)
            if divisor is not None:
                scaled = base if divisor == 1 else f"{base} * {divisor}"
            else:
                scaled = f"{base} / {f.scale!r}"
            # Directed rounding is about the physical value: with a negative scale
            # (Pylon HV DCL) a smaller raw count is a *larger* current, so the
            # raw direction flips. STEP_TOLERANCE of a step absorbs float error:
            # 53.2 * 10 is 531.9999999999999.
            raw_down = (f.rounding == "down") == (f.scale > 0)
            if f.rounding != "nearest" and raw_down:
                body.append(f"{var} = floor({scaled} + {STEP_TOLERANCE!r})")
            elif f.rounding != "nearest":
                body.append(f"{var} = ceil({scaled} - {STEP_TOLERANCE!r})")
            else:
                body.append(f"{var} = round({scaled})")
            ends = f.physical_range
            message = f"{where}: {f.key}={{}} outside {ends[0]:g}..{ends[1]:g} {f.unit}".rstrip()
            body.append(
                f"if not {f.raw_min} <= {var} <= {f.raw_max}: "
                f"raise EncodeError({message!r}.format(v))"
            )
            if f.invalid is not None:
                message = f"{where}: {f.key}={{}} would be sent as the invalid marker"
                body.append(
                    f"if {var} == {f.invalid_raw}: raise EncodeError({message!r}.format(v))"
                )
            lines.extend(indent + line for line in body)
        groups = [(order, fields) for order, fields in packed.items() if fields]
        if len(groups) == 1:
            order, fields = groups[0]
            env["pack"] = struct.Struct(
                _struct_format([f for f, _ in fields], spec.length, order)
            ).pack
            ordered = sorted(fields, key=lambda item: item[0].start)
            lines.append(f"    buf = bytearray(pack({', '.join(v for _, v in ordered)}))")
        else:
            lines.append(f"    buf = bytearray({spec.length})")
            for f, var in ((f, v) for _, fields in groups for f, v in fields):
                order = f.byteorder or spec.byteorder
                lines.append(
                    f"    buf[{f.start}:{f.end}] = {var}.to_bytes({f.size}, {order!r}, "
                    f"signed={f.signed})"
                )
        if spec.mux is not None:
            lines.append(f"    buf[{spec.mux[0]}] = {spec.mux[1]}")
        for flag in self.flags:
            if not flag.write:
                continue
            key = flag.into or flag.key
            lines.append(f"    v = state.{key}")
            if not flag.absent_is_false:
                lines.append(require("v", key))
            lines.append(f"    if v: buf[{flag.byte}] |= {1 << flag.bit}")
        for i, alarm in enumerate(self.alarm_bytes):
            lines.append(f"    names = state.{alarm.target}")
            if not isinstance(alarm, AlarmPairs):
                lines.append(require("names", alarm.target))
            if isinstance(alarm, AlarmBits):
                masks = {
                    name: sum(1 << b for b in ((bits,) if isinstance(bits, int) else bits))
                    for name, bits in alarm.write.items()
                }
                env[f"write_{i}"] = masks
                lines.append("    for name in names:")
                lines.append(f"        mask = write_{i}.get(name)")
                lines.append(f"        if mask is not None: buf[{alarm.byte}] |= mask")
            else:
                ok = sum(2 << (2 * pair) for pair in alarm.pairs)
                env[f"write_{i}"] = {name: pair for name, pair in alarm.write.items()}
                lines.append(f"    byte = {ok}")
                # unknown alarms go as "not supported" pairs, never as "OK"
                lines.append("    if names is None: names, byte = (), 0")
                lines.append("    for name in names:")
                lines.append(f"        pair = write_{i}.get(name)")
                lines.append(
                    "        if pair is not None: byte = byte & ~(3 << 2 * pair) | 1 << 2 * pair"
                )
                lines.append(f"    buf[{alarm.byte}] = byte")
        for t in self.texts:
            label = f"{where}: {t.key}"
            if t.send is not None and t.key not in STATE_KEYS and t.source is None:
                value = repr(t.send.decode("ascii"))
            else:
                value = f"state.{t.source or t.key}"
            lines.append(
                f"    buf[{t.start}:{t.end}] = _text({value}, {t.size}, {t.pad!r}, "
                f"{label!r}, {t.part})"
            )
        for i, o in enumerate(self.others):
            if isinstance(o, Coded):
                env[f"coded_write_{i}"] = o.write
                lines.append(f"    v = {source_of(o, f'c{i}')}")
                lines.append(require("v", o.key))
                message = f"{where}: {o.key}={{!r}} has no code"
                lines.append(f"    raw = coded_write_{i}.get(v)")
                lines.append(f"    if raw is None: raise EncodeError({message!r}.format(v))")
                lines.append(f"    buf[{o.byte}] = raw")
            elif isinstance(o, Bits):
                mask = (1 << o.width) - 1
                lines.append(f"    v = {source_of(o, f'b{i}')}")
                lines.append(require("v", o.key))
                message = f"{where}: {o.key}={{}} outside 0..{mask}"
                check = f"if not 0 <= v <= {mask}: raise EncodeError({message!r}.format(v))"
                lines.append(f"    {check}")
                lines.append(f"    buf[{o.byte}] |= v << {o.lsb}")
            elif isinstance(o, Cells):
                code = INT_CODES[(o.size, False)]
                prefix = "<" if spec.byteorder == "little" else ">"
                env[f"pack_cells_{i}"] = struct.Struct(f"{prefix}{o.count}{code}").pack_into
                divisor = _integer_divisor(o.scale)
                first = o.part * o.count
                raw_max = (1 << (8 * o.size)) - 1
                message = f"{where}: a cell voltage {{}} is outside 0..{raw_max * o.scale:g} V"
                lines.append(f"    cells = state.{o.key}")
                lines.append(require("cells", o.key))
                lines.append(
                    f"    raws = [round(c * {divisor}) for c in cells[{first}:{first + o.count}]]"
                )
                lines.append(f"    raws += [0] * ({o.count} - len(raws))")
                lines.append(
                    f"    if not all(0 <= r <= {raw_max} for r in raws): "
                    f"raise EncodeError({message!r}.format(raws))"
                )
                lines.append(f"    pack_cells_{i}(buf, {o.start}, *raws)")
            else:
                value = f"state.{o.key}" if o.key in STATE_KEYS else repr(o.send)
                lines.append(
                    f"    buf[{o.start}:{o.start + 2}] = bytes(_parse_version({value}, {o.base}))"
                )
        for c in self.consts:
            lines.append(f"    buf[{c.start}:{c.end}] = {c.value!r}")
        lines.append("    return bytes(buf)")
        source = "\n".join(lines)
        exec(compile(source, f"<bmslink encode {where}>", "exec"), env)
        fn: Callable[[BatteryState], bytes] = env["encode"]
        return fn


# -- profile ---------------------------------------------------------------------------------------


class _MuxGroup:
    """Frames sharing one id, told apart by one byte (BYD's four product-name frames)."""

    def __init__(self, byte: int) -> None:
        self.byte = byte
        self.by_value: dict[int, CompiledFrame] = {}

    def pick(self, data: bytes, label: str) -> CompiledFrame:
        if len(data) <= self.byte:
            raise DecodeError(f"{label}: too short for its index byte {self.byte}")
        compiled = self.by_value.get(data[self.byte])
        if compiled is None:
            known = ", ".join(str(v) for v in sorted(self.by_value))
            raise DecodeError(
                f"{label}: index byte {self.byte} = {data[self.byte]} is not one of {known}"
            )
        return compiled


@dataclass
class EncodedRound:
    """One side's frames for one state, and the optional frames left out (and why)."""

    frames: list[tuple[FrameSpec, bytes]]
    skipped: list[tuple[FrameSpec, str]]


@dataclass
class Profile:
    """A named protocol: its frames, bit rate, timing and the identity it presents."""

    name: str
    title: str
    frames: tuple[FrameSpec, ...]
    bitrate: int = 500_000
    identity: Mapping[str, str] = field(default_factory=dict)  # e.g. manufacturer "PYLON"
    #: Request/response profiles: what the battery sends when the inverter asks.
    responses: tuple[Response, ...] = ()
    #: The battery stays silent until it has heard the inverter (BYD HVS).
    battery_waits_for_inverter: bool = False
    #: Inverter side: no battery frame for this long means the battery is lost.
    lost_timeout_s: float = 10.0
    #: Inverter side: the frames whose absence means "battery lost" (SMA: 0x355); empty = any.
    liveness_ids: tuple[int, ...] = ()
    #: Shortest allowed gap between two transmissions of one frame (SMA: 0.2 s).
    min_frame_interval_s: float = 0.0
    bitrates: tuple[int, ...] = ()  # every bit rate the protocol is used at (Victron: 500k, 250k)
    alias_of: str | None = None  # same frames as another profile (GivEnergy -> pylontech)
    voltage_class: Literal["lv", "hv"] = "lv"
    doc: str = ""

    def __post_init__(self) -> None:
        # Plain and multiplexed ids in two tables: decode looks up the plain one and
        # needs no per-frame type check (the mux table is consulted only on a miss).
        self._compiled: dict[int, CompiledFrame] = {}
        self._mux: dict[int, _MuxGroup] = {}
        self._by_spec: dict[int, CompiledFrame] = {}
        self._from: dict[str, tuple[FrameSpec, ...]] = {
            sender: tuple(s for s in self.frames if s.sender == sender)
            for sender in ("battery", "inverter")
        }
        for spec in self.frames:
            compiled = CompiledFrame(spec)
            self._by_spec[id(spec)] = compiled
            for can_id in spec.wire_ids:
                key = _frame_key(can_id, spec.extended)
                if key in (self._mux if spec.mux is None else self._compiled):
                    raise ValueError(
                        f"{self.name}: {spec.label} mixes multiplexed and plain frames"
                    )
                if spec.mux is None:
                    if key in self._compiled:
                        raise ValueError(f"{self.name}: duplicate frame {spec.label}")
                    self._compiled[key] = compiled
                    continue
                existing = self._mux.setdefault(key, _MuxGroup(spec.mux[0]))
                if existing.byte != spec.mux[0]:
                    raise ValueError(
                        f"{self.name}: {spec.label} mixes multiplexed and plain frames"
                    )
                if spec.mux[1] in existing.by_value:
                    raise ValueError(f"{self.name}: duplicate {spec.label} index {spec.mux[1]}")
                existing.by_value[spec.mux[1]] = compiled
        unknown = [k for k in self.identity if k not in STATE_KEYS]
        if unknown:
            raise ValueError(f"{self.name}: identity keys {unknown} are not BatteryState keys")
        battery_ids = {(s.id, s.extended) for s in self.frames if s.sender == "battery"}
        for response in self.responses:
            missing = [
                format_id(i, response.extended)
                for i in response.frames
                if (i, response.extended) not in battery_ids
            ]
            if missing:
                raise ValueError(f"{self.name}: response to {response.request:#x} names {missing}")
        if not self.bitrates:
            self.bitrates = (self.bitrate,)

    def frames_from(self, sender: Sender) -> tuple[FrameSpec, ...]:
        return self._from[sender]

    @cached_property
    def battery_keys(self) -> frozenset[str]:
        """BatteryState keys the battery's frames carry: all an inverter of this profile learns.

        A key outside this set (Growatt's DVL, Victron's enable flags) is not part of
        the protocol; one inside it that was not received is missing.
        """
        return _state_keys(s for s in self.frames_from("battery") if s.emit)

    @cached_property
    def required_keys(self) -> frozenset[str]:
        """The keys of the battery's required frames: what a conforming battery always sends."""
        return _state_keys(s for s in self.frames_from("battery") if s.emit and s.required)

    def spec(self, can_id: int, extended: bool = False) -> FrameSpec | None:
        """The frame with this id (the first of a multiplexed group), or None."""
        specs = self.specs_with_id(can_id, extended)
        return specs[0] if specs else None

    def specs_with_id(self, can_id: int, extended: bool = False) -> tuple[FrameSpec, ...]:
        """Every frame sent with this id (several for a multiplexed id)."""
        key = _frame_key(can_id, extended)
        compiled = self._compiled.get(key)
        if compiled is not None:
            return (compiled.spec,)
        group = self._mux.get(key)
        return () if group is None else tuple(c.spec for c in group.by_value.values())

    def answer_specs(self, can_id: int, extended: bool, data: bytes) -> list[FrameSpec]:
        """The battery frames an inverter request asks for, in order (none for other frames)."""
        return [
            spec
            for response in self.responses
            if response.matches(can_id, extended, data)
            for answer_id in response.frames
            for spec in self.specs_with_id(answer_id, response.extended)
            if spec.emit
        ]

    @cached_property
    def carries_alarms(self) -> bool:
        """Whether an alarm can reach the inverter as an alarm (else only through limits)."""
        return any(
            isinstance(f, AlarmBits | AlarmPairs) and f.target == "alarms"
            for s in self.frames_from("battery")
            for f in s.fields
        )

    @cached_property
    def request_response(self) -> bool:
        """True when the battery only answers requests (Pylontech HV)."""
        return bool(self.responses) and all(
            s.period_s is None for s in self.frames_from("battery") if s.emit
        )

    def decode(self, can_id: int, data: bytes | bytearray, extended: bool = False) -> DecodedFrame:
        """Decode one frame; raises DecodeError for an unknown id or a bad payload."""
        key = can_id | _EXTENDED if extended else can_id
        if type(data) is not bytes:
            data = bytes(data)
        compiled = self._compiled.get(key)
        if compiled is None:
            group = self._mux.get(key)
            if group is None:
                kind = "29-bit" if extended else "11-bit"
                raise DecodeError(
                    f"unknown {kind} id {format_id(can_id, extended)} for profile {self.name}"
                )
            compiled = group.pick(data, format_id(can_id, extended))
        fn = compiled.decoders.get(len(data))
        if fn is None:
            fn = compiled.decoder_for(len(data))
        spec = compiled.spec
        return DecodedFrame(spec, fn(data), None if can_id == spec.id else can_id)

    def encode_frame(self, spec: FrameSpec, state: BatteryState) -> bytes:
        compiled = self._by_spec.get(id(spec))
        if compiled is None:
            raise EncodeError(f"{spec.label} {spec.name} is not a frame of {self.name}")
        return compiled.encode(state)

    def encode(
        self, state: BatteryState, sender: Sender = "battery"
    ) -> list[tuple[FrameSpec, bytes]]:
        """Every frame one side sends; raises EncodeError naming the first missing value."""
        return [(s, self.encode_frame(s, state)) for s in self.frames_from(sender) if s.emit]

    def encode_round(self, state: BatteryState, sender: Sender = "battery") -> EncodedRound:
        """Every frame one side sends, leaving out optional frames that cannot be encoded.

        A required frame that cannot be encoded raises EncodeError: the caller must
        then send nothing rather than a partial picture.
        """
        frames: list[tuple[FrameSpec, bytes]] = []
        skipped: list[tuple[FrameSpec, str]] = []
        for spec in self.frames_from(sender):
            if not spec.emit:
                continue
            try:
                frames.append((spec, self.encode_frame(spec, state)))
            except EncodeError as exc:
                if spec.required:
                    raise
                skipped.append((spec, str(exc)))
        return EncodedRound(frames, skipped)


def _join_parts(kind: str, size: int, pieces: dict[int, Any]) -> Any:
    """Join parts 0, 1, ... of a multi-frame value; stops at the first missing part."""
    if kind == "text":
        out = ""
        for index in range(len(pieces)):
            if index not in pieces:
                break
            out = out.ljust(index * size) + pieces[index]
        return out.rstrip()
    cells: list[float] = []
    for index in range(len(pieces)):
        if index not in pieces or len(cells) < index * size:
            break  # a missing part, or an earlier part that ended early: no gaps
        cells.extend(pieces[index])
    return cells


def assemble(frames: Iterable[tuple[FrameSpec, Mapping[str, Any]]]) -> dict[str, Any]:
    """BatteryState values from decoded frames in order: later frames win, parts are joined.

    Keys that are not BatteryState keys (diagnostic fields) are dropped. A
    multi-frame value needs its first part; later parts extend it.
    """
    values: dict[str, Any] = {}
    parts: dict[str, tuple[str, int, dict[int, Any]]] = {}
    for spec, fields in frames:
        spec_parts = spec.parts
        for key, value in fields.items():
            info = spec_parts.get(key)
            if info is not None:
                base, index, size, kind = info
                entry = parts.setdefault(base, (kind, size, {}))
                entry[2][index] = value
                continue
            if key in STATE_KEYS:
                values[key] = value
    for base, (kind, size, pieces) in parts.items():
        if 0 in pieces:
            values[base] = _join_parts(kind, size, pieces)
    return values


def merge_fields(state: BatteryState, decoded: Iterable[DecodedFrame]) -> BatteryState:
    """Fold decoded frames into a state, later frames winning; non-contract keys are dropped."""
    values = state.to_dict()
    values.pop("packs", None)
    values.update(assemble((frame.spec, frame.fields) for frame in decoded))
    result = BatteryState.from_dict(values)
    result.packs = state.packs
    return result
