"""Modbus RTU frames of the read functions, built and parsed without any I/O.

The links use pymodbus on the wire; this codec is for what pymodbus does not
offer: decoding hex captures (``bmslink bms decode --type seplos-v3``) and
tests. A capture may be truncated, corrupted or answer another request, so
every error names what is wrong: the CRC (as its two bytes on the wire, low
byte first), the byte count against the frame length, the function code.

Frame: slave address (1 byte), function code (1), data, CRC-16/MODBUS (2,
low byte first). A reply to a read carries a byte count and then the data;
an exception reply is the function code with bit 7 set and one exception code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from bmslink.errors import DecodeError, EncodeError


class ReadFunction(NamedTuple):
    name: str
    bits: bool  # the reply packs bits (coils, discrete inputs), not 16-bit registers
    max_count: int  # most items one request may ask for (Modbus application protocol)


#: The read functions this codec knows; Seplos V3 uses 01 (coils) and 04 (input registers).
READ_FUNCTIONS: dict[int, ReadFunction] = {
    0x01: ReadFunction("read coils", True, 2000),
    0x02: ReadFunction("read discrete inputs", True, 2000),
    0x03: ReadFunction("read holding registers", False, 125),
    0x04: ReadFunction("read input registers", False, 125),
}

#: Exception codes of the Modbus application protocol and their names.
EXCEPTION_NAMES: dict[int, str] = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "slave device failure",
    0x05: "acknowledge",
    0x06: "slave device busy",
    0x07: "negative acknowledge",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}

REQUEST_LENGTH = 8  # slave, function, address (2), count (2), CRC (2)
EXCEPTION_LENGTH = 5  # slave, function | 0x80, code, CRC (2)


def exception_name(code: int, names: Mapping[int, str] = EXCEPTION_NAMES) -> str:
    return names.get(code, "unknown exception code")


class ModbusException(DecodeError):
    """The device answered with an exception reply instead of data."""

    def __init__(
        self, slave: int, function: int, code: int, names: Mapping[int, str] = EXCEPTION_NAMES
    ) -> None:
        self.slave = slave
        self.function = function
        self.code = code
        self.name = exception_name(code, names)
        super().__init__(
            f"slave {slave} answered function {function:02X} "
            f"with exception {code:02X} ({self.name})"
        )


class ReadRequest(NamedTuple):
    slave: int
    function: int
    address: int
    count: int  # type: ignore[assignment]  # shadows tuple.count, as the Modbus field is named


class RegisterReply(NamedTuple):
    slave: int
    registers: list[int]


class BitReply(NamedTuple):
    slave: int
    bits: list[bool]


# -- CRC ------------------------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_modbus(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS of ``data`` (init 0xFFFF, reflected 0x8005); sent low byte first."""
    crc = 0xFFFF
    for byte in bytes(data):
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    """``body`` followed by its CRC as it goes on the wire (low byte first)."""
    return body + crc16_modbus(body).to_bytes(2, "little")


def check_crc(frame: bytes) -> None:
    """Raise DecodeError naming both CRCs, as wire bytes, when the last two bytes are wrong."""
    expected = crc16_modbus(frame[:-2]).to_bytes(2, "little")
    got = frame[-2:]
    if got != expected:
        raise DecodeError(
            f"CRC mismatch: expected {expected.hex().upper()}, got {got.hex().upper()}"
        )


_HEX_SEPARATORS = re.compile(r"[\s.:,\-]+")


def frame_from_hex(text: str) -> bytes:
    """Bytes of a hex capture; spaces, dots, colons, commas and dashes may separate bytes."""
    digits = _HEX_SEPARATORS.sub("", text.strip())
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    bad = re.search(r"[^0-9a-fA-F]", digits)
    if bad:
        raise DecodeError(f"not hex: {bad.group()!r} in {text.strip()!r}")
    if len(digits) % 2:
        raise DecodeError(f"odd number of hex digits ({len(digits)}) in {text.strip()!r}")
    return bytes.fromhex(digits)


# -- building -------------------------------------------------------------------------------------


def _check_slave(slave: int) -> None:
    if not 0 <= slave <= 0xFF:
        raise EncodeError(f"slave address {slave} is outside 0..255")


def _read_function(function: int, error: type[DecodeError] | type[EncodeError]) -> ReadFunction:
    spec = READ_FUNCTIONS.get(function)
    if spec is None:
        known = ", ".join(f"{f:02X}" for f in READ_FUNCTIONS)
        raise error(f"function {function:02X} is not a read function ({known})")
    return spec


def build_read_request(slave: int, function: int, address: int, count: int) -> bytes:
    """A read request for ``count`` registers (or bits) from ``address``."""
    _check_slave(slave)
    spec = _read_function(function, EncodeError)
    if not 0 <= address <= 0xFFFF:
        raise EncodeError(f"address {address} is outside 0..65535")
    if not 1 <= count <= spec.max_count:
        raise EncodeError(f"count {count} is outside 1..{spec.max_count} for {spec.name}")
    if address + count > 0x10000:
        raise EncodeError(f"address {address:04X} + count {count} runs past FFFF")
    return with_crc(
        bytes((slave, function)) + address.to_bytes(2, "big") + count.to_bytes(2, "big")
    )


def build_register_reply(slave: int, function: int, registers: Sequence[int]) -> bytes:
    """A reply to a register read (function 03 or 04)."""
    _check_slave(slave)
    spec = _read_function(function, EncodeError)
    if spec.bits:
        raise EncodeError(f"function {function:02X} ({spec.name}) answers bits, not registers")
    if not 1 <= len(registers) <= spec.max_count:
        raise EncodeError(f"{len(registers)} registers is outside 1..{spec.max_count}")
    data = bytearray()
    for index, value in enumerate(registers):
        if not 0 <= value <= 0xFFFF:
            raise EncodeError(f"register {index} value {value} is outside 0..65535")
        data += value.to_bytes(2, "big")
    return with_crc(bytes((slave, function, len(data))) + data)


def build_bit_reply(slave: int, function: int, bits: Sequence[bool]) -> bytes:
    """A reply to a bit read (function 01 or 02): bit i is bit i % 8 of byte i // 8."""
    _check_slave(slave)
    spec = _read_function(function, EncodeError)
    if not spec.bits:
        raise EncodeError(f"function {function:02X} ({spec.name}) answers registers, not bits")
    if not 1 <= len(bits) <= spec.max_count:
        raise EncodeError(f"{len(bits)} bits is outside 1..{spec.max_count}")
    data = bytearray((len(bits) + 7) // 8)
    for index, bit in enumerate(bits):
        if bit:
            data[index // 8] |= 1 << (index % 8)
    return with_crc(bytes((slave, function, len(data))) + data)


def build_exception_reply(slave: int, function: int, code: int) -> bytes:
    _check_slave(slave)
    if not 1 <= function <= 0x7F:
        raise EncodeError(f"function {function:02X} is outside 01..7F")
    if not 0 <= code <= 0xFF:
        raise EncodeError(f"exception code {code} is outside 0..255")
    return with_crc(bytes((slave, function | 0x80, code)))


# -- parsing --------------------------------------------------------------------------------------


def parse_read_request(frame: bytes | bytearray) -> ReadRequest:
    """Slave, function, address and count of a read request; DecodeError names the fault."""
    frame = bytes(frame)
    if len(frame) != REQUEST_LENGTH:
        raise DecodeError(f"a read request is {REQUEST_LENGTH} bytes, got {len(frame)}")
    check_crc(frame)
    slave, function = frame[0], frame[1]
    spec = _read_function(function, DecodeError)
    address = int.from_bytes(frame[2:4], "big")
    count = int.from_bytes(frame[4:6], "big")
    if not 1 <= count <= spec.max_count:
        raise DecodeError(f"count {count} is outside 1..{spec.max_count} for {spec.name}")
    if address + count > 0x10000:
        raise DecodeError(f"address {address:04X} + count {count} runs past FFFF")
    return ReadRequest(slave, function, address, count)


def _reply_data(frame: bytes, function: int, names: Mapping[int, str]) -> tuple[int, bytes]:
    """Slave and data bytes of a read reply whose length, CRC and function are right."""
    size = len(frame)
    if size < EXCEPTION_LENGTH:
        raise DecodeError(f"frame too short: {size} bytes, a Modbus RTU reply has at least 5")
    slave, got = frame[0], frame[1]
    if got & 0x80:
        if size != EXCEPTION_LENGTH:
            raise DecodeError(
                f"exception reply (function byte {got:02X}) is {EXCEPTION_LENGTH} bytes, got {size}"
            )
        check_crc(frame)
        if got & 0x7F != function:
            raise DecodeError(
                f"exception reply to function {got & 0x7F:02X}, expected a reply to {function:02X}"
            )
        raise ModbusException(slave, function, frame[2], names)
    if got != function:
        check_crc(frame)  # a corrupted function byte is a CRC error, not another function
        raise DecodeError(f"function mismatch: expected {function:02X}, got {got:02X}")
    byte_count = frame[2]
    if size != byte_count + 5:
        raise DecodeError(
            f"length mismatch: byte count {byte_count} needs a {byte_count + 5}-byte frame, "
            f"got {size} bytes"
        )
    check_crc(frame)
    if byte_count == 0:
        raise DecodeError("byte count 0: a read reply carries at least one byte of data")
    return slave, frame[3:-2]


def parse_register_reply(
    frame: bytes | bytearray,
    function: int = 0x04,
    count: int | None = None,
    names: Mapping[int, str] = EXCEPTION_NAMES,
) -> RegisterReply:
    """Registers of a reply to function 03/04; an exception reply raises ModbusException.

    ``count``, when known from the request, must match the byte count.
    """
    spec = _read_function(function, DecodeError)
    if spec.bits:
        raise DecodeError(f"function {function:02X} ({spec.name}) answers bits, not registers")
    slave, data = _reply_data(bytes(frame), function, names)
    if len(data) % 2:
        raise DecodeError(f"byte count {len(data)} is odd: registers are 2 bytes each")
    if count is not None and len(data) != 2 * count:
        raise DecodeError(f"byte count {len(data)} is {len(data) // 2} registers, expected {count}")
    registers = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return RegisterReply(slave, registers)


def parse_bit_reply(
    frame: bytes | bytearray,
    function: int = 0x01,
    count: int | None = None,
    names: Mapping[int, str] = EXCEPTION_NAMES,
) -> BitReply:
    """Bits of a reply to function 01/02, bit 0 of the first data byte first.

    Without ``count`` every bit of the data bytes is returned (a multiple of 8,
    the padding included); with it, the byte count must be the bytes ``count``
    bits need and the padding bits are dropped.
    """
    spec = _read_function(function, DecodeError)
    if not spec.bits:
        raise DecodeError(f"function {function:02X} ({spec.name}) answers registers, not bits")
    slave, data = _reply_data(bytes(frame), function, names)
    if count is not None and len(data) != (count + 7) // 8:
        raise DecodeError(
            f"byte count {len(data)} does not fit {count} bits ({(count + 7) // 8} bytes)"
        )
    bits = [bool(byte >> i & 1) for byte in data for i in range(8)]
    return BitReply(slave, bits if count is None else bits[:count])


def parse_read_reply(
    frame: bytes | bytearray,
    function: int,
    count: int | None = None,
    names: Mapping[int, str] = EXCEPTION_NAMES,
) -> RegisterReply | BitReply:
    """A reply to any read function: registers for 03/04, bits for 01/02."""
    if _read_function(function, DecodeError).bits:
        return parse_bit_reply(frame, function, count, names)
    return parse_register_reply(frame, function, count, names)
