"""Parse CAN frames written as text: candump -L, candump's default output, bare id#data.

    (1700000000.000000) can0 351#1402740E740ECC01      candump -L / python-can .log
    can0  351   [8]  14 02 74 0E 74 0E CC 01           candump (optionally "(ts)" first)
    351#1402740E740ECC01                               bare

Three hex digits are an 11-bit id, eight a 29-bit id (as candump writes them).
Every problem raises DecodeError naming what is wrong with the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from bmslink.errors import DecodeError


@dataclass(frozen=True, slots=True)
class CanFrame:
    """One classic CAN frame read from text."""

    can_id: int
    data: bytes
    extended: bool = False
    timestamp: float | None = None
    channel: str | None = None


#: Linux SocketCAN marks an error frame with this bit of the 32-bit id.
CAN_ERR_FLAG = 0x20000000
_HEX = frozenset("0123456789abcdefABCDEF")
_DEFAULT_RE = re.compile(
    r"^(?:\((?P<ts>[^)]*)\)\s+)?(?P<ch>\S+)\s+(?P<id>[0-9A-Fa-f]+)\s+\[(?P<dlc>\d+)\]\s*(?P<data>.*)$"
)


def _parse_id(text: str) -> tuple[int, bool]:
    if not text or not set(text) <= _HEX:
        raise DecodeError(f"bad CAN id {text!r}: not hex")
    if len(text) <= 3:
        can_id, extended = int(text, 16), False
        if can_id > 0x7FF:
            raise DecodeError(f"bad CAN id {text!r}: above 0x7FF for an 11-bit id")
    elif len(text) == 8:
        can_id, extended = int(text, 16), True
        if can_id & CAN_ERR_FLAG:
            raise DecodeError(f"error frame {text} (CAN_ERR_FLAG set), not a data frame")
        if can_id > 0x1FFFFFFF:
            raise DecodeError(f"bad CAN id {text!r}: above 0x1FFFFFFF for a 29-bit id")
    else:
        raise DecodeError(f"bad CAN id {text!r}: use 3 hex digits (11-bit) or 8 (29-bit)")
    return can_id, extended


def _parse_hex_payload(text: str) -> bytes:
    if len(text) % 2:
        raise DecodeError(f"odd number of hex digits in data {text!r}")
    if not set(text) <= _HEX:
        bad = next(c for c in text if c not in _HEX)
        raise DecodeError(f"non-hex character {bad!r} in data {text!r}")
    data = bytes.fromhex(text)
    if len(data) > 8:
        raise DecodeError(f"{len(data)} data bytes; classic CAN carries at most 8")
    return data


def _parse_timestamp(text: str) -> float:
    """Seconds: candump -L writes epoch seconds, ``candump -ta`` a local date and time."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise DecodeError(f"bad timestamp ({text})") from None


def _parse_compact(token: str, timestamp: float | None, channel: str | None) -> CanFrame:
    ident, sep, rest = token.partition("#")
    if not sep:
        raise DecodeError(f"expected id#data, got {token!r}")
    if rest.startswith("#"):
        raise DecodeError(f"CAN FD frame {token!r} is not supported")
    if rest[:1] in ("R", "r"):
        raise DecodeError(f"remote frame {token!r} carries no data")
    can_id, extended = _parse_id(ident)
    return CanFrame(can_id, _parse_hex_payload(rest), extended, timestamp, channel)


def parse_line(line: str) -> CanFrame | None:
    """One frame, or None for a blank or comment line."""
    text = line.strip()
    if not text or text.startswith(("#", "//")):
        return None
    if "#" in text:
        parts = text.split()
        timestamp: float | None = None
        channel: str | None = None
        if parts[0].startswith("("):
            if not parts[0].endswith(")"):
                raise DecodeError(f"bad timestamp {parts[0]!r}")
            timestamp = _parse_timestamp(parts[0][1:-1])
            parts = parts[1:]
        if len(parts) >= 2 and "#" not in parts[0]:
            channel, parts = parts[0], parts[1:]
        # python-can's writer may append a direction flag (R = rx, T = tx)
        if len(parts) == 2 and parts[1] in ("R", "T"):
            parts = parts[:1]
        if len(parts) != 1:
            raise DecodeError(f"cannot parse {text!r} as candump -L or id#data")
        return _parse_compact(parts[0], timestamp, channel)
    match = _DEFAULT_RE.match(text)
    if match is None:
        raise DecodeError(f"cannot parse {text!r} as a CAN frame")
    if match["data"].strip().lower().startswith("remote"):
        raise DecodeError(f"remote frame {text!r} carries no data")
    can_id, extended = _parse_id(match["id"])
    dlc = int(match["dlc"])
    payload = _parse_hex_payload("".join(match["data"].split()))
    if dlc != len(payload):
        raise DecodeError(f"DLC [{dlc}] but {len(payload)} data bytes")
    ts = _parse_timestamp(match["ts"]) if match["ts"] is not None else None
    return CanFrame(can_id, payload, extended, ts, match["ch"])
