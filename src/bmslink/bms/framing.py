"""Cutting a serial byte stream into checked frames: one hunting loop for every binary protocol.

A UART carries whatever it carries: a wake-up byte, half a frame from before
the port was opened, a reply with a flipped bit. The framer finds a frame
start, asks the protocol how long the frame is, waits for that many bytes and
keeps the frame only when its checksum is right. On a bad checksum or an
impossible length it moves one byte on and hunts again, so a real frame that
begins inside the broken one is still found. A candidate can also look longer
than it is (a noise byte, then bytes that read as a long Modbus header): it
would wait for bytes that never come and hide the real reply behind it. So
when the line goes quiet, ``idle()`` drops an unfinished candidate and hunts on
through what is buffered, as Modbus RTU itself ends a frame with silence.

Each protocol gives three facts (data, not code): the start bytes, how to read
the length from a header, and the checksum test. The ASCII protocols (Seplos
V2, Pace) use ``AsciiReplyFramer`` over the Pylontech-style ``~ ... \\r`` framing.
"""

from __future__ import annotations

from collections.abc import Callable

from bmslink.bms.modbus_rtu import crc16_modbus
from bmslink.errors import DecodeError
from bmslink.rs485.frame import AsciiFramer, parse_frame

#: ``length(head)`` -> total frame length, None when ``head`` is too short to tell,
#: or 0 when the header is impossible (not a frame start after all).
LengthOf = Callable[[bytes], int | None]
Check = Callable[[bytes], bool]


class HuntingFramer:
    """Frames that start with ``sync``, are ``length(head)`` long and pass ``check``."""

    def __init__(self, sync: bytes, length: LengthOf, check: Check, max_length: int) -> None:
        self.sync = sync
        self.length = length
        self.check = check
        self.max_length = max_length
        self._buf = bytearray()
        self.noise_bytes = 0
        self.bad_frames = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Frames completed by ``data``, in order."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            if self.sync:
                at = buf.find(self.sync)
                if at < 0:
                    # keep a tail that may be the beginning of the sync bytes
                    keep = len(self.sync) - 1
                    drop = len(buf) - keep if keep else len(buf)
                    while drop < len(buf) and not self.sync.startswith(bytes(buf[drop:])):
                        drop += 1
                    self.noise_bytes += drop
                    del buf[:drop]
                    return out
                if at:
                    self.noise_bytes += at
                    del buf[:at]
            size = self.length(bytes(buf[: min(len(buf), 8)]))
            if size is None:
                return out
            if size <= 0 or size > self.max_length:
                self._skip()
                continue
            if len(buf) < size:
                return out
            frame = bytes(buf[:size])
            if self.check(frame):
                del buf[:size]
                out.append(frame)
            else:
                self.bad_frames += 1
                self._skip()
        return out

    def idle(self) -> list[bytes]:
        """The line went quiet: nothing buffered is a frame in progress any more.

        Frames that start later in the buffer are returned; unfinished candidates
        are dropped (counted as noise).
        """
        out: list[bytes] = []
        while self._buf:
            out += self.feed(b"")
            if self._buf:
                self._skip()
        return out

    @property
    def pending(self) -> int:
        """Bytes held for an unfinished frame."""
        return len(self._buf)

    def _skip(self) -> None:
        self.noise_bytes += 1
        del self._buf[:1]

    def reset(self) -> None:
        """Forget a partial frame (before a new request: a late half-answer is not the reply)."""
        self._buf.clear()


class AsciiFraming:
    """What the ASCII framers of both directions share: a ``~`` starts a new frame whatever
    came before it, so silence on the line changes nothing."""

    def __init__(self) -> None:
        self._framer = AsciiFramer()

    def idle(self) -> list[bytes]:
        return []

    @property
    def pending(self) -> int:
        return 0

    def reset(self) -> None:
        self._framer.reset()


class AsciiReplyFramer(AsciiFraming):
    """``~ ... \\r`` frames whose CHKSUM and LENGTH are right (Seplos V2, Pace)."""

    def __init__(self) -> None:
        super().__init__()
        self.bad_frames = 0

    @property
    def noise_bytes(self) -> int:
        f = self._framer
        return f.noise_bytes + f.truncated_frames + f.oversized_frames

    def feed(self, data: bytes) -> list[bytes]:
        out = []
        for frame in self._framer.feed(data):
            try:
                parse_frame(frame)
            except DecodeError:
                self.bad_frames += 1
                continue
            out.append(frame)
        return out


def modbus_rtu_length(head: bytes) -> int | None:
    """Length of a Modbus RTU frame from its first bytes (replies and the requests bmslink sends).

    Read replies (01-04) carry a byte count; exceptions are 5 bytes; single writes
    and the write-multiple acknowledgement are 8.
    """
    if len(head) < 2:
        return None
    function = head[1]
    if function & 0x80:
        return 5
    if function in (0x01, 0x02, 0x03, 0x04):
        if len(head) < 3:
            return None
        return 3 + head[2] + 2
    if function in (0x05, 0x06, 0x0F, 0x10):
        return 8
    return 0


def modbus_request_length(head: bytes) -> int | None:
    """Length of a Modbus RTU request: reads and single writes are 8, write-multiple counts."""
    if len(head) < 2:
        return None
    function = head[1]
    if function in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06):
        return 8
    if function in (0x0F, 0x10):
        if len(head) < 7:
            return None
        return 7 + head[6] + 2
    return 0


def modbus_crc_ok(frame: bytes) -> bool:
    """The CRC-16/MODBUS in the last two bytes (low byte first) matches the rest."""
    return len(frame) >= 4 and crc16_modbus(frame[:-2]) == int.from_bytes(frame[-2:], "little")


def modbus_reply_framer() -> HuntingFramer:
    """Modbus RTU replies; no sync byte (any slave), the CRC decides."""
    return HuntingFramer(b"", modbus_rtu_length, modbus_crc_ok, max_length=256)


def modbus_request_framer() -> HuntingFramer:
    """Modbus RTU requests as a host sends them."""
    return HuntingFramer(b"", modbus_request_length, modbus_crc_ok, max_length=256)
