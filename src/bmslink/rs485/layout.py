"""Fixed-width fields of an RS485 payload as data: a table drives both decode and encode.

Payloads here are big-endian and longer than a CAN frame, with counted arrays
(cells, temperatures) between fixed parts, so they are read with a cursor
(``Reader``) and written with ``Writer``; the fixed parts are tables of ``Word``.
Every error names the field and the byte offset, and encoding refuses a value
the field cannot carry instead of wrapping it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bmslink.errors import DecodeError, EncodeError
from bmslink.scaling import Rounding, decimal_places, round_raw

#: width in bytes and signedness of each field format
FORMATS: dict[str, tuple[int, bool]] = {
    "u8": (1, False),
    "u16": (2, False),
    "s16": (2, True),
    "u24": (3, False),
}


@dataclass(frozen=True)
class Word:
    """One number: physical = raw * scale + offset.

    Limits round toward safety when encoded: ``down`` for CVL, CCL and DCL,
    ``up`` for DVL, so a limit never leaves above what was allowed. ``negate``
    marks a magnitude sent negative (Pylontech's discharge current limit).
    """

    key: str
    fmt: str = "u16"
    scale: float = 1.0
    offset: float = 0.0
    rounding: Rounding = "nearest"
    negate: bool = False
    integer: bool = False  # the decoded value is an int (cycles, counts)
    doc: str = ""

    @property
    def size(self) -> int:
        return FORMATS[self.fmt][0]

    def raw_range(self) -> tuple[int, int]:
        size, signed = FORMATS[self.fmt]
        bits = 8 * size
        return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)

    def to_raw(self, value: float, where: str) -> int:
        finite = isinstance(value, int | float) and not isinstance(value, bool)
        if not finite or not math.isfinite(value):
            raise EncodeError(f"{where}: {self.key} must be a finite number, got {value!r}")
        if self.negate and value < 0:
            raise EncodeError(f"{where}: {self.key} must not be negative, got {value:g}")
        # a magnitude sent negative rounds its magnitude, so work on |value| and negate last
        magnitude = round_raw((value - self.offset) / self.scale, self.rounding)
        raw = -magnitude if self.negate else magnitude
        low, high = self.raw_range()
        if not low <= raw <= high:
            ends = sorted(r * self.scale + self.offset for r in (low, high))
            if self.negate:
                ends = [0.0, -low * self.scale]
            raise EncodeError(f"{where}: {self.key} {value:g} is outside {ends[0]:g}..{ends[1]:g}")
        return raw

    def from_raw(self, raw: int) -> float | int:
        if self.integer:
            return raw
        value = raw * self.scale + self.offset
        value = round(value, decimal_places(self.scale))
        return -value if self.negate else value


class Reader:
    """A cursor over a payload; running past the end names the field and the offset."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, size: int, field: str) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise DecodeError(
                f"{self.what}: INFO ends after {len(self.data)} bytes, reading {field} "
                f"needs bytes {self.pos}..{end - 1}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def number(self, fmt: str, field: str) -> int:
        size, signed = FORMATS[fmt]
        return int.from_bytes(self.take(size, field), "big", signed=signed)

    def u8(self, field: str) -> int:
        return self.number("u8", field)

    def text(self, size: int, field: str) -> str:
        """ASCII text with trailing NULs and spaces stripped (contract)."""
        raw = self.take(size, field)
        try:
            return raw.rstrip(b"\x00 ").decode("ascii")
        except UnicodeDecodeError as exc:
            raise DecodeError(
                f"{self.what}: {field} is not ASCII (byte {self.pos - size + exc.start})"
            ) from exc

    def words(self, layout: Sequence[Word]) -> dict[str, Any]:
        return {w.key: w.from_raw(self.number(w.fmt, w.key)) for w in layout}

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def done(self) -> None:
        if self.pos != len(self.data):
            raise DecodeError(
                f"{self.what}: {len(self.data) - self.pos} unexpected bytes after the last field "
                f"(INFO has {len(self.data)} bytes, the layout ends at {self.pos})"
            )


class Writer:
    """Builds a payload; every value is range-checked against its field."""

    def __init__(self, what: str) -> None:
        self.out = bytearray()
        self.what = what

    def number(self, fmt: str, raw: int, field: str) -> None:
        size, signed = FORMATS[fmt]
        try:
            self.out += raw.to_bytes(size, "big", signed=signed)
        except OverflowError as exc:
            raise EncodeError(f"{self.what}: {field} raw value {raw} does not fit {fmt}") from exc

    def u8(self, raw: int, field: str) -> None:
        self.number("u8", raw, field)

    def word(self, word: Word, value: float) -> None:
        self.number(word.fmt, word.to_raw(value, self.what), word.key)

    def words(self, layout: Sequence[Word], values: Mapping[str, Any]) -> None:
        for w in layout:
            value = values.get(w.key)
            if value is None:
                raise EncodeError(f"{self.what}: {w.key} is missing")
            self.word(w, value)

    def text(self, value: str, size: int, field: str, pad: bytes = b" ") -> None:
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError as exc:
            raise EncodeError(f"{self.what}: {field} {value!r} is not ASCII") from exc
        if len(raw) > size:
            raise EncodeError(f"{self.what}: {field} {value!r} is longer than {size} characters")
        self.out += raw.ljust(size, pad)

    def bytes(self) -> bytes:
        return bytes(self.out)
