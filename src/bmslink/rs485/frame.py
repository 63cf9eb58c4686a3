"""The ASCII frame of Pylontech's RS485 protocol (YD/T 1363.3 style; Seplos V2 and Pace use it too).

``~ VER ADR CID1 CID2 LENGTH INFO CHKSUM \\r``: everything between the ``~`` and
the ``\\r`` is hex text. LENGTH is LCHKSUM (4 bits) over LENID (12 bits, the
number of INFO *characters*); LCHKSUM is the two's complement of the nibble sum
of LENID, masked to 4 bits, so a nibble sum that is a multiple of 16 gives 0
(LENID 0x0F1 -> ``00F1``; two well-known implementations get this case wrong).
CHKSUM is the two's complement of the sum of the ASCII codes from VER to the end
of INFO. Every frame is verified; the worked examples printed in the protocol
documents that do not verify (``~1203400456ABCEFEFC72``) are rejected as printed.

A parse error carries the response code a battery would answer with (RTN 02 for
a bad CHKSUM, 03 for a bad LCHKSUM) and, when the header could be read, the
address the frame was meant for, so that a responder answers only frames
addressed to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from bmslink.errors import DecodeError

SOI = 0x7E  # "~"
EOI = 0x0D  # "\r"
MAX_LENID = 0xFFF
#: ``~`` + 12 header characters + INFO + 4 checksum characters + ``\r``.
MAX_FRAME_BYTES = 1 + 12 + MAX_LENID + 4 + 1
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")


class Rtn(IntEnum):
    """Response codes: the CID2 of an answer."""

    NORMAL = 0x00
    VER_ERROR = 0x01
    CHKSUM_ERROR = 0x02
    LCHKSUM_ERROR = 0x03
    CID2_INVALID = 0x04
    COMMAND_FORMAT_ERROR = 0x05
    INVALID_DATA = 0x06
    ADR_ERROR = 0x90
    INTERNAL_COMMUNICATION_ERROR = 0x91


RTN_TEXT = {
    Rtn.NORMAL: "normal",
    Rtn.VER_ERROR: "VER error",
    Rtn.CHKSUM_ERROR: "CHKSUM error",
    Rtn.LCHKSUM_ERROR: "LCHKSUM error",
    Rtn.CID2_INVALID: "CID2 invalid",
    Rtn.COMMAND_FORMAT_ERROR: "command format error",
    Rtn.INVALID_DATA: "invalid data",
    Rtn.ADR_ERROR: "ADR error",
    Rtn.INTERNAL_COMMUNICATION_ERROR: "internal communication error",
}


def rtn_text(code: int) -> str:
    """``RTN 02 (CHKSUM error)``, or the bare code for one the protocol does not define."""
    try:
        return f"RTN {code:02X} ({RTN_TEXT[Rtn(code)]})"
    except ValueError:
        return f"RTN {code:02X} (not a defined code)"


class FrameError(DecodeError):
    """A frame that failed to parse; ``rtn`` is what a battery answers, ``adr`` its target."""

    def __init__(self, message: str, rtn: Rtn = Rtn.COMMAND_FORMAT_ERROR, adr: int | None = None):
        super().__init__(message)
        self.rtn = rtn
        self.adr = adr


def lchksum(lenid: int) -> int:
    """The 4-bit check of LENID: two's complement of its nibble sum, masked."""
    nibbles = (lenid >> 8 & 0xF) + (lenid >> 4 & 0xF) + (lenid & 0xF)
    return -nibbles & 0xF


def length_field(lenid: int) -> int:
    """LENGTH as sent: LCHKSUM in the top 4 bits, LENID (INFO characters) below."""
    if not 0 <= lenid <= MAX_LENID:
        raise ValueError(f"LENID {lenid} does not fit in 12 bits (INFO too long)")
    return lchksum(lenid) << 12 | lenid


def chksum(text: bytes) -> int:
    """CHKSUM of the characters from VER to the end of INFO."""
    return -sum(text) & 0xFFFF


@dataclass(frozen=True, slots=True)
class AsciiFrame:
    """One frame; in a response ``cid2`` is the return code (RTN)."""

    ver: int
    adr: int
    cid1: int
    cid2: int
    info: bytes = b""

    def encode(self) -> bytes:
        """The bytes on the wire, ``~`` to ``\\r``."""
        info = self.info.hex().upper().encode("ascii")
        body = b"%02X%02X%02X%02X%04X" % (
            self.ver,
            self.adr,
            self.cid1,
            self.cid2,
            length_field(len(info)),
        )
        body += info
        return b"~" + body + b"%04X\r" % chksum(body)


def _hex_byte(text: bytes, at: int) -> int:
    return int(text[at : at + 2], 16)


def parse_frame(raw: bytes | str) -> AsciiFrame:
    """Parse and verify one frame (the trailing ``\\r`` is optional); FrameError names the fault.

    Hex digits of either case are accepted (the checksum is over the characters
    as received); the order of checks is the order a battery applies: framing,
    CHKSUM (RTN 02), LCHKSUM (RTN 03), then LENID against the INFO length (RTN 05).
    """
    data = raw.encode("latin-1") if isinstance(raw, str) else bytes(raw)
    if data.endswith(b"\r"):
        data = data[:-1]
    if not data.startswith(b"~"):
        shown = data[:1].hex().upper() or "nothing"
        raise FrameError(f"frame must start with '~' (7E), got {shown}")
    text = data[1:]
    for i, ch in enumerate(text):
        if ch not in _HEX_DIGITS:
            raise FrameError(
                f"byte {i + 1} of the frame (0-based) is {bytes([ch])!r}, not a hex digit",
            )
    if len(text) < 16:
        raise FrameError(
            f"frame too short: {len(text)} characters after '~', "
            "a frame needs at least 16 (header 12, CHKSUM 4)"
        )
    adr = _hex_byte(text, 2)
    body, sent = text[:-4], int(text[-4:], 16)
    expected = chksum(body)
    if sent != expected:
        raise FrameError(
            f"checksum mismatch: expected {expected:04X}, got {sent:04X}", Rtn.CHKSUM_ERROR, adr
        )
    length = int(body[8:12], 16)
    lenid, lcheck = length & MAX_LENID, length >> 12
    if lcheck != lchksum(lenid):
        raise FrameError(
            f"LCHKSUM mismatch in LENGTH {length:04X}: expected {lchksum(lenid):X}, got {lcheck:X}",
            Rtn.LCHKSUM_ERROR,
            adr,
        )
    info = body[12:]
    if lenid != len(info):
        raise FrameError(
            f"LENID says {lenid} INFO characters, the frame has {len(info)}",
            Rtn.COMMAND_FORMAT_ERROR,
            adr,
        )
    if lenid % 2:
        raise FrameError(
            f"LENID {lenid} is odd: INFO must be whole bytes", Rtn.COMMAND_FORMAT_ERROR, adr
        )
    return AsciiFrame(
        ver=_hex_byte(text, 0),
        adr=adr,
        cid1=_hex_byte(text, 4),
        cid2=_hex_byte(text, 6),
        info=bytes.fromhex(info.decode("ascii")),
    )


class AsciiFramer:
    """Cuts a byte stream into candidate frames (``~`` ... ``\\r``), skipping what lies between.

    Noise between frames is counted and dropped; a ``~`` that arrives before the
    ``\\r`` of a started frame drops the unfinished one (a truncated frame) and
    starts over; a frame longer than the protocol allows is dropped. Candidates
    are *not* verified here: ``parse_frame`` does that, so that a bad checksum
    can still be answered with RTN 02.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False
        self.noise_bytes = 0
        self.truncated_frames = 0
        self.oversized_frames = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Frames completed by ``data``, each from ``~`` to ``\\r`` inclusive."""
        out: list[bytes] = []
        buf = self._buf
        start = 0
        n = len(data)
        while start < n:
            if not self._in_frame:
                soi = data.find(b"~", start)
                if soi < 0:
                    self.noise_bytes += n - start
                    return out
                self.noise_bytes += soi - start
                self._in_frame = True
                buf.clear()
                buf.append(SOI)
                start = soi + 1
                continue
            eoi = data.find(b"\r", start)
            soi = data.find(b"~", start)
            if soi >= 0 and (eoi < 0 or soi < eoi):
                self.truncated_frames += 1  # a new frame began before this one ended
                buf.clear()
                buf.append(SOI)
                start = soi + 1
                continue
            end = n if eoi < 0 else eoi + 1
            buf += data[start:end]
            start = end
            if len(buf) > MAX_FRAME_BYTES:
                self.oversized_frames += 1
                self._in_frame = False
                buf.clear()
                continue
            if eoi >= 0:
                out.append(bytes(buf))
                buf.clear()
                self._in_frame = False
        return out

    def reset(self) -> None:
        """Forget an unfinished frame (the line went idle in the middle of one)."""
        if self._in_frame:
            self.truncated_frames += 1
        self._in_frame = False
        self._buf.clear()

    @property
    def pending(self) -> bool:
        """True while a frame has started and not ended."""
        return self._in_frame
