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

import math
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bmslink.errors import DecodeError, EncodeError
from bmslink.state import ALARM_NAMES, STATE_KEYS, BatteryState

ByteOrder = Literal["little", "big"]
Sender = Literal["battery", "inverter"]

_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h", (4, False): "I"}
_INT_CODES[(4, True)] = "i"


def _decimal_places(value: float) -> int:
    """Decimal places of a decimal number (0.1 -> 1, 0.25 -> 2, 273.15 -> 2, 5 -> 0)."""
    for places in range(10):
        scaled = abs(value) * 10**places
        if abs(scaled - round(scaled)) < 1e-9 * max(1.0, scaled):
            return places
    return 10


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
    rounding: Literal["nearest", "down", "up"] = "nearest"
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
        return _decimal_places(self.scale)


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


_EXTENDED = 1 << 31  # marks 29-bit ids in lookup keys (above any CAN id)


def _frame_key(can_id: int, extended: bool) -> int:
    return can_id | _EXTENDED if extended else can_id


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


def _struct_format(nums: Iterable[Num], length: int, order: ByteOrder) -> str:
    """One struct format covering fields in start order, padding the gaps."""
    parts: list[str] = []
    pos = 0
    for f in sorted(nums, key=lambda n: n.start):
        if f.start < pos:
            raise ValueError(f"{f.key}: overlaps the previous field")
        if f.start > pos:
            parts.append(f"{f.start - pos}x")
        parts.append(_INT_CODES[(f.size, f.signed)])
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
    divisor = _integer_divisor(f.scale)
    if divisor is not None:
        expr = var if divisor == 1 else f"{var} / {divisor}"
    else:
        expr = f"round({var} * {f.scale!r}, {f.decimals})"
    if f.offset:
        # round to the resolution: 2213 / 10 - 100 is 21.299999999999997 otherwise
        places = max(f.decimals, _decimal_places(f.offset))
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


def _encode_text(value: str | None, size: int, pad: bytes, where: str) -> bytes:
    if value is None:
        raise EncodeError(f"{where} is missing")
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        raise EncodeError(f"{where} is not ASCII: {value!r}") from None
    return raw[:size].ljust(size, pad)


class CompiledFrame:
    """A FrameSpec turned into generated decode functions, one per payload length.

    The table is the only description of the layout; the generated function is
    what makes decoding several times faster than interpreting the table per frame.
    """

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
        env: dict[str, Any] = {"DecodeError": DecodeError, "_union": _union}
        lines = ["def decode(data):"]
        items: list[str] = []
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
                    if f.magnitude:
                        lines.append(f"    if {var} < 0: {var} = -{var}")
                    elif f.non_negative and f.signed:
                        message = f"{spec.label} {spec.name}: {f.key} is negative (raw {{}})"
                        lines.append(
                            f"    if {var} < 0: raise DecodeError({message!r}.format({var}))"
                        )
            for f in fitting:
                items.append(f"{f.key!r}: {_value_expr(f, f'v{self.nums.index(f)}')}")
            for flag in self.flags:
                if flag.byte < n:
                    items.append(f"{flag.key!r}: bool(data[{flag.byte}] & {1 << flag.bit})")
            targets: dict[str, list[str]] = {}
            for i, a in enumerate(self.alarm_bytes):
                if a.byte < n:
                    env[f"alarm_table_{i}"] = tuple(_names_for_byte(a.bits, v) for v in range(256))
                    targets.setdefault(a.target, []).append(f"alarm_table_{i}[data[{a.byte}]]")
            for t_index, (target, lookups) in enumerate(targets.items()):
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
                        f"{t.key!r}: data[{t.start}:{min(t.end, n)}]"
                        ".decode('latin-1').rstrip('\\x00 ')"
                    )
            for c in self.consts:
                if c.start < n:
                    items.append(f"{c.key!r}: data[{c.start}:{min(c.end, n)}].decode('latin-1')")
        lines.append("    out = {" + ", ".join(items) + "}")
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
            "floor": math.floor,
            "ceil": math.ceil,
        }
        lines = ["def encode(state):"]

        def require(var: str, key: str) -> str:
            message = f"{where}: {key} is missing"
            return f"    if {var} is None: raise EncodeError({message!r})"

        packed: dict[ByteOrder, list[tuple[Num, str]]] = {"little": [], "big": []}
        for i, f in enumerate(self.nums):
            if f.key not in STATE_KEYS:
                raise ValueError(f"{where}: {f.key} is not a BatteryState key")
            var = f"r{i}"
            lines.append(f"    v = state.{f.key}")
            lines.append(require("v", f.key))
            if f.magnitude or f.non_negative:
                message = f"{where}: {f.key} is negative ({{}})"
                lines.append(f"    if v < 0: raise EncodeError({message!r}.format(v))")
            base = f"(v - {f.offset!r})" if f.offset else "v"
            divisor = _integer_divisor(f.scale)
            if divisor is not None:
                scaled = base if divisor == 1 else f"{base} * {divisor}"
            else:
                scaled = f"{base} / {f.scale!r}"
            # 1e-6 of a step absorbs float error: 53.2 * 10 is 531.9999999999999
            if f.rounding == "down":
                lines.append(f"    {var} = floor({scaled} + 1e-6)")
            elif f.rounding == "up":
                lines.append(f"    {var} = ceil({scaled} - 1e-6)")
            else:
                lines.append(f"    {var} = round({scaled})")
            lo = round(f.raw_min * f.scale + f.offset, f.decimals)
            hi = round(f.raw_max * f.scale + f.offset, f.decimals)
            message = f"{where}: {f.key}={{}} outside {lo:g}..{hi:g} {f.unit}".rstrip()
            lines.append(
                f"    if not {f.raw_min} <= {var} <= {f.raw_max}: "
                f"raise EncodeError({message!r}.format(v))"
            )
            packed[f.byteorder or spec.byteorder].append((f, var))
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
        for flag in self.flags:
            if not flag.write:
                continue
            key = flag.into or flag.key
            lines.append(f"    v = state.{key}")
            if flag.absent_is_false:
                lines.append(f"    if v: buf[{flag.byte}] |= {1 << flag.bit}")
            else:
                lines.append(require("v", key))
                lines.append(f"    if v: buf[{flag.byte}] |= {1 << flag.bit}")
        for i, alarm in enumerate(self.alarm_bytes):
            env[f"write_{i}"] = dict(alarm.write)
            lines.append(f"    names = state.{alarm.target}")
            lines.append(require("names", alarm.target))
            lines.append("    for name in names:")
            lines.append(f"        bit = write_{i}.get(name)")
            lines.append(f"        if bit is not None: buf[{alarm.byte}] |= 1 << bit")
        for t in self.texts:
            lines.append(
                f"    buf[{t.start}:{t.end}] = _text(state.{t.key}, {t.size}, {t.pad!r}, "
                f"{where + ': ' + t.key!r})"
            )
        for c in self.consts:
            lines.append(f"    buf[{c.start}:{c.end}] = {c.value!r}")
        lines.append("    return bytes(buf)")
        source = "\n".join(lines)
        exec(compile(source, f"<bmslink encode {where}>", "exec"), env)
        fn: Callable[[BatteryState], bytes] = env["encode"]
        return fn


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
        self._compiled: dict[int, CompiledFrame] = {}
        for spec in self.frames:
            key = _frame_key(spec.id, spec.extended)
            if key in self._compiled:
                raise ValueError(f"{self.name}: duplicate frame {spec.label}")
            self._compiled[key] = CompiledFrame(spec)
        unknown = [k for k in self.identity if k not in STATE_KEYS]
        if unknown:
            raise ValueError(f"{self.name}: identity keys {unknown} are not BatteryState keys")

    def frames_from(self, sender: Sender) -> tuple[FrameSpec, ...]:
        return tuple(s for s in self.frames if s.sender == sender)

    def spec(self, can_id: int, extended: bool = False) -> FrameSpec | None:
        compiled = self._compiled.get(_frame_key(can_id, extended))
        return compiled.spec if compiled else None

    def decode(self, can_id: int, data: bytes | bytearray, extended: bool = False) -> DecodedFrame:
        """Decode one frame; raises DecodeError for an unknown id or a bad payload."""
        compiled = self._compiled.get(can_id | _EXTENDED if extended else can_id)
        if compiled is None:
            kind = "29-bit" if extended else "11-bit"
            raise DecodeError(
                f"unknown {kind} id {format_id(can_id, extended)} for profile {self.name}"
            )
        if type(data) is not bytes:
            data = bytes(data)
        fn = compiled.decoders.get(len(data))
        if fn is None:
            fn = compiled.decoder_for(len(data))
        return DecodedFrame(compiled.spec, fn(data))

    def encode_frame(self, spec: FrameSpec, state: BatteryState) -> bytes:
        return self._compiled[_frame_key(spec.id, spec.extended)].encode(state)

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
