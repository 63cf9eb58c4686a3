"""Profile machinery: a CAN battery profile is a table of frames and fields.

One table drives decode, encode, DBC export and (later) conformance checks, so
the byte layout of a protocol is written down exactly once. Field kinds:

- :class:`Num`: an integer of 1, 2 or 4 bytes with scale/offset (most fields);
- :class:`Flag`: one bit that is a boolean (enable and request flags);
- :class:`AlarmBits`: one byte whose bits map to the contract's alarm names;
- :class:`Text`: ASCII bytes (names), trailing NULs and spaces stripped;
- :class:`Const`: fixed bytes a frame carries (Pylontech's "PN" marker).

Decoding never raises anything but :class:`~bmslink.errors.DecodeError`;
encoding raises :class:`~bmslink.errors.EncodeError` for a missing or
unrepresentable value rather than sending something plausible.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from bmslink.errors import DecodeError, EncodeError
from bmslink.state import ALARM_NAMES, STATE_KEYS, BatteryState

ByteOrder = Literal["little", "big"]
Sender = Literal["battery", "inverter"]

_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h", (4, False): "I"}
_INT_CODES[(4, True)] = "i"


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
    doc: str = ""

    def __post_init__(self) -> None:
        if (self.size, self.signed) not in _INT_CODES:
            raise ValueError(f"{self.key}: unsupported width {self.size} bytes")

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
        denominator = Fraction(self.scale).limit_denominator(1_000_000).denominator
        places = 0
        while denominator % 10 == 0:
            denominator //= 10
            places += 1
        return places


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
class AlarmBits:
    """A byte of alarm (or warning) bits in the contract's vocabulary.

    ``bits`` maps bit number to the name a set bit decodes to (several bits may
    decode to one name). ``write`` maps every name the encoder must be able to
    send to its bit: a name a protocol lacks goes to the nearest bit, so no
    alarm is ever dropped on the way out.
    """

    target: Literal["alarms", "warnings"]
    byte: int
    bits: Mapping[int, str]
    write: Mapping[str, int]
    doc: str = ""

    @property
    def end(self) -> int:
        return self.byte + 1


@dataclass(frozen=True)
class Text:
    """ASCII text; padded with ``pad`` on encode, trailing NULs/spaces stripped on decode."""

    key: str
    start: int
    size: int
    pad: bytes = b" "
    doc: str = ""

    @property
    def end(self) -> int:
        return self.start + self.size


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


Field = Num | Flag | AlarmBits | Text | Const


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
    period_s: float = 1.0
    accept_any_payload: bool = False  # keep-alives: content carries no meaning
    doc: str = ""

    @property
    def accepted_min(self) -> int:
        return self.length if self.min_length is None else self.min_length

    @property
    def label(self) -> str:
        return format_id(self.id, self.extended)


def format_id(can_id: int, extended: bool = False) -> str:
    return f"0x{can_id:08X}" if extended and can_id > 0xFFFF else f"0x{can_id:03X}"


@dataclass(slots=True)
class DecodedFrame:
    """What one frame said: its spec and the fields, keyed by BatteryState keys where they match."""

    spec: FrameSpec
    fields: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.spec.label, "name": self.spec.name, "fields": self.fields}


# -- compiled codecs -------------------------------------------------------------------------------

_NUM_PLAIN, _NUM_MAGNITUDE, _NUM_NON_NEGATIVE = 0, 1, 2


@dataclass(slots=True)
class _NumPlan:
    """A precompiled struct for the numeric fields that fit in a given payload length."""

    unpack: Callable[[bytes], tuple[Any, ...]]
    items: tuple[tuple[str, float, float, float, int, int, bool], ...]
    # per field: key, divisor, multiplier, offset, mode, decimals, integer


def _struct_format(nums: Iterable[Num], length: int, default_order: ByteOrder) -> str:
    """One struct format covering fields in start order, padding the gaps."""
    parts: list[str] = []
    pos = 0
    order = None
    for f in sorted(nums, key=lambda n: n.start):
        fo = f.byteorder or default_order
        if order is None:
            order = fo
        elif order != fo:
            raise ValueError("mixed byte orders are compiled per order group")
        if f.start < pos:
            raise ValueError(f"{f.key}: overlaps the previous field")
        if f.start > pos:
            parts.append(f"{f.start - pos}x")
        parts.append(_INT_CODES[(f.size, f.signed)])
        pos = f.end
    if pos < length:
        parts.append(f"{length - pos}x")
    prefix = "<" if (order or default_order) == "little" else ">"
    return prefix + "".join(parts)


def _scale_parts(f: Num) -> tuple[float, float]:
    """(divisor, multiplier): divide by 10**k where the scale is a decimal fraction.

    Division by an exact integer gives the nearest double to the decimal value
    (4866 / 100 == 48.66), where multiplying by 0.01 would give 48.660000000000004.
    """
    inverse = 1.0 / f.scale
    if abs(inverse - round(inverse)) < 1e-9 and round(inverse) >= 1:
        return float(round(inverse)), 1.0
    return 1.0, f.scale


class CompiledFrame:
    """A FrameSpec turned into fast decode/encode closures."""

    def __init__(self, spec: FrameSpec) -> None:
        self.spec = spec
        self.nums = tuple(f for f in spec.fields if isinstance(f, Num))
        self.flags = tuple(f for f in spec.fields if isinstance(f, Flag))
        self.alarm_bytes = tuple(f for f in spec.fields if isinstance(f, AlarmBits))
        self.texts = tuple(f for f in spec.fields if isinstance(f, Text))
        self.consts = tuple(f for f in spec.fields if isinstance(f, Const))
        for f in spec.fields:
            if f.end > spec.length:
                raise ValueError(f"{spec.label} {f}: ends at byte {f.end} > length {spec.length}")
        self._plans: dict[int, list[_NumPlan]] = {}
        # alarm byte -> precomputed tuple of names for each of the 256 values
        self._alarm_tables = tuple(
            (a.target, a.byte, tuple(_names_for_byte(a.bits, v) for v in range(256)))
            for a in self.alarm_bytes
        )

    def _plan(self, n: int) -> list[_NumPlan]:
        plans = self._plans.get(n)
        if plans is None:
            plans = []
            fitting = [f for f in self.nums if f.end <= n]
            for order in ("little", "big"):
                group = [f for f in fitting if (f.byteorder or self.spec.byteorder) == order]
                if not group:
                    continue
                group.sort(key=lambda f: f.start)
                fmt = _struct_format(group, n, self.spec.byteorder)
                items = []
                for f in group:
                    div, mul = _scale_parts(f)
                    mode = (
                        _NUM_MAGNITUDE
                        if f.magnitude
                        else _NUM_NON_NEGATIVE
                        if f.non_negative
                        else _NUM_PLAIN
                    )
                    items.append((f.key, div, mul, f.offset, mode, f.decimals, f.integer))
                plans.append(_NumPlan(struct.Struct(fmt).unpack, tuple(items)))
            self._plans[n] = plans
        return plans

    def decode(self, data: bytes) -> dict[str, Any]:
        spec = self.spec
        n = len(data)
        if n < spec.accepted_min or n > 8:
            want = "8" if spec.accepted_min == 8 else f"{spec.accepted_min}..8"
            raise DecodeError(f"{spec.label} {spec.name}: wrong length {n}, expected {want} bytes")
        if spec.accept_any_payload:
            return {}
        out: dict[str, Any] = {}
        for plan in self._plan(n):
            for (key, div, mul, off, mode, places, integer), raw in zip(
                plan.items, plan.unpack(data), strict=True
            ):
                if mode == _NUM_MAGNITUDE:
                    raw = -raw if raw < 0 else raw
                elif mode == _NUM_NON_NEGATIVE and raw < 0:
                    raise DecodeError(f"{spec.label} {spec.name}: {key} is negative (raw {raw})")
                if integer:
                    out[key] = int(raw * mul + off) if div == 1.0 else int(raw / div + off)
                elif div != 1.0:
                    out[key] = raw / div + off if off else raw / div
                else:
                    value = raw * mul + off
                    out[key] = round(value, places) if places else value
        for flag in self.flags:
            if flag.byte < n:
                bit = bool(data[flag.byte] >> flag.bit & 1)
                out[flag.key] = bit
                if flag.into is not None:
                    out[flag.into] = out.get(flag.into, False) or bit
        for target, byte, table in self._alarm_tables:
            if byte < n:
                names = table[data[byte]]
                previous = out.get(target)
                out[target] = list(names) if previous is None else _union(previous, names)
        for text in self.texts:
            if text.start < n:
                raw_text = data[text.start : min(text.end, n)]
                out[text.key] = raw_text.decode("latin-1").rstrip("\x00 ")
        for const in self.consts:
            if const.start < n:
                out[const.key] = data[const.start : min(const.end, n)].decode("latin-1")
        return out

    def encode(self, state: BatteryState) -> bytes:
        spec = self.spec
        buf = bytearray(spec.length)
        for f in self.nums:
            value = getattr(state, f.key, None) if f.key in STATE_KEYS else None
            if value is None:
                raise EncodeError(f"{spec.label} {spec.name}: {f.key} is missing")
            if (f.magnitude or f.non_negative) and value < 0:
                raise EncodeError(f"{spec.label} {spec.name}: {f.key} is negative ({value})")
            raw = round((value - f.offset) / f.scale)
            if not f.raw_min <= raw <= f.raw_max:
                lo = f.raw_min * f.scale + f.offset
                hi = f.raw_max * f.scale + f.offset
                raise EncodeError(
                    f"{spec.label} {spec.name}: {f.key}={value} outside {lo:g}..{hi:g} {f.unit}"
                )
            order = f.byteorder or spec.byteorder
            buf[f.start : f.end] = int(raw).to_bytes(f.size, order, signed=f.signed)
        for flag in self.flags:
            if not flag.write:
                continue
            key = flag.into or flag.key
            value = getattr(state, key, None) if key in STATE_KEYS else None
            if value is None:
                if not flag.absent_is_false:
                    raise EncodeError(f"{spec.label} {spec.name}: {key} is missing")
                value = False
            if value:
                buf[flag.byte] |= 1 << flag.bit
        for alarm in self.alarm_bytes:
            names = getattr(state, alarm.target)
            if names is None:
                raise EncodeError(f"{spec.label} {spec.name}: {alarm.target} is missing")
            for name in names:
                bit = alarm.write.get(name)
                if bit is not None:
                    buf[alarm.byte] |= 1 << bit
        for text in self.texts:
            value = getattr(state, text.key, None) if text.key in STATE_KEYS else None
            if value is None:
                raise EncodeError(f"{spec.label} {spec.name}: {text.key} is missing")
            try:
                raw_text = value.encode("ascii")
            except UnicodeEncodeError as exc:
                raise EncodeError(f"{spec.label} {spec.name}: {text.key} is not ASCII") from exc
            if len(raw_text) > text.size:
                raw_text = raw_text[: text.size]
            buf[text.start : text.end] = raw_text.ljust(text.size, text.pad)
        for const in self.consts:
            buf[const.start : const.end] = const.value
        return bytes(buf)


def _names_for_byte(bits: Mapping[int, str], value: int) -> tuple[str, ...]:
    names = {name for bit, name in bits.items() if value >> bit & 1}
    return tuple(n for n in ALARM_NAMES if n in names)


def _union(previous: list[str], names: tuple[str, ...]) -> list[str]:
    merged = set(previous).union(names)
    return [n for n in ALARM_NAMES if n in merged]


# -- profile ---------------------------------------------------------------------------------------


@dataclass
class Profile:
    """A named protocol: its frames, bit rate and the identity it presents."""

    name: str
    title: str
    frames: tuple[FrameSpec, ...]
    bitrate: int = 500_000
    identity: Mapping[str, str] = field(default_factory=dict)  # e.g. manufacturer "PYLON"
    doc: str = ""

    def __post_init__(self) -> None:
        self._compiled: dict[tuple[int, bool], CompiledFrame] = {}
        for spec in self.frames:
            key = (spec.id, spec.extended)
            if key in self._compiled:
                raise ValueError(f"{self.name}: duplicate frame {spec.label}")
            self._compiled[key] = CompiledFrame(spec)
        unknown = [k for k in self.identity if k not in STATE_KEYS]
        if unknown:
            raise ValueError(f"{self.name}: identity keys {unknown} are not BatteryState keys")

    def frames_from(self, sender: Sender) -> tuple[FrameSpec, ...]:
        return tuple(s for s in self.frames if s.sender == sender)

    def spec(self, can_id: int, extended: bool = False) -> FrameSpec | None:
        compiled = self._compiled.get((can_id, extended))
        return compiled.spec if compiled else None

    def decode(self, can_id: int, data: bytes | bytearray, extended: bool = False) -> DecodedFrame:
        """Decode one frame; raises DecodeError for an unknown id or a bad payload."""
        compiled = self._compiled.get((can_id, extended))
        if compiled is None:
            kind = "29-bit" if extended else "11-bit"
            raise DecodeError(
                f"unknown {kind} id {format_id(can_id, extended)} for profile {self.name}"
            )
        return DecodedFrame(compiled.spec, compiled.decode(bytes(data)))

    def encode_frame(self, spec: FrameSpec, state: BatteryState) -> bytes:
        return self._compiled[(spec.id, spec.extended)].encode(state)

    def encode(
        self, state: BatteryState, sender: Sender = "battery"
    ) -> list[tuple[FrameSpec, bytes]]:
        """All frames of one side; raises EncodeError naming the first missing value."""
        return [(s, self.encode_frame(s, state)) for s in self.frames_from(sender)]


def merge_fields(state: BatteryState, decoded: Iterable[DecodedFrame]) -> BatteryState:
    """Fold decoded frames into a state, later frames winning; non-contract keys are dropped."""
    values = state.to_dict()
    values.pop("packs", None)
    for frame in decoded:
        for key, value in frame.fields.items():
            if key in STATE_KEYS:
                values[key] = value
    result = BatteryState.from_dict(values)
    result.packs = state.packs
    return result
