"""A simulated slcan (Lawicel ASCII) USB-CAN adapter on a PTY, attached to a simulated CAN bus.

python-can's real ``slcan`` driver opens :attr:`SimSlcanAdapter.path` (a ``/dev/pts/N``) as it
opens a CANable's ``/dev/ttyACM0``, so diagnostics (sniff, bit-rate scan, doctor) are tested
end to end against the faults a real bench shows: wrong bit rate, missing termination, a silent
bus, a battery that stops talking.

Choices made where the issue is silent:

- One thread per adapter serves the PTY master, like :class:`~bmslink.sim.nullmodem.NullModem`;
  the slave end is held open by the adapter so a host closing and reopening the port does not
  hang up the PTY.
- Bus time starts at the first ``O``/``L`` and keeps running across ``C``/``O``: the wire does
  not stop because an adapter closed. Frames whose time comes while the channel is closed are
  gone. The injected ``clock`` is polled at least every 50 ms, so a manual clock works too.
- ``loop_s``: the frames with ``t < loop_s`` form one cycle replayed at ``t + k * loop_s``; the
  iterable is not read past the first frame at or after ``loop_s``. Traffic times must not go
  backwards; a bad frame (time, id range, more than 8 bytes) ends the traffic and is raised
  from :meth:`SimSlcanAdapter.close` (and kept in ``.error``).
- ``silent`` and ``battery_stops_after_s`` withhold frames (nothing on the wire, no errors) but
  time still passes through them, so a long generator is consumed at the pace of the bus.
  ``battery_stops_after_s`` withholds every later frame: the simulated traffic does not say
  which node sent a frame. Faults are read live, so a test may change them mid-session.
- Errors follow the CAN receive error counter (ISO 11898-1, simplified): each frame the adapter
  cannot read (wrong rate, or destroyed on an unterminated bus) adds 8 and sets bus error (F bit
  7); a good frame takes 1 off (an error-passive counter drops to 127). At 96 the error
  warning bit (2) is set, at 128 error passive (5): after 12 and 16 unreadable frames. So a
  missing terminator shows bit 7 on each lost frame and bit 2 only once errors outpace good
  frames. Flags latch until ``F`` reads them. ``O``/``L`` re-initialise the controller:
  counters and flags start from zero (a bit-rate scan does not inherit the last rate's errors).
- ``S7`` is 800 kbit/s as in the Lawicel document (python-can maps 750k to ``S7``); ``S9``
  (83.3k on some adapters) is refused. ``sXXYY`` sets a rate that never matches the bus.
  ``O``/``L`` before any rate was set are refused (BEL), as is ``O`` while already open; ``C``
  is always OK. An empty line (python-can's "no data rate" after ``S``) is OK. ``Yn``/``yn``
  (CAN FD data rate) are accepted while closed and ignored: this adapter is classic CAN.
- Host transmit (``t``/``T``) answers ``z``/``Z`` when open and not listen-only. At the wrong
  rate the frame is queued but nobody acknowledges it: bus error, error warning and error
  passive are set (transmit error counter 128), it never reaches ``transmitted``; bus-off is
  not modelled. On an unterminated bus a transmit can be hit by an error (flag set) and is then
  retransmitted and lands. Remote (``r``/``R``) and FD (``d``/``D``/``b``/``B``) frames are
  refused: the simulated wire carries classic data frames only. The bus's nodes always ACK.
- Frames the host does not read pile up to 32 KiB; beyond that new frames are dropped with rx
  FIFO full (bit 0) and data overrun (bit 3), counted in ``overruns``.
- ``Z1`` is accepted but no timestamps are appended (python-can does not parse them).
"""

from __future__ import annotations

import contextlib
import math
import os
import pty
import random
import select
import threading
import time
import tty
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from bmslink.sim.traffic import Frame

__all__ = [
    "BITRATE_COMMANDS",
    "BusFaults",
    "Fate",
    "Flag",
    "Frame",
    "SimCanBus",
    "SimSlcanAdapter",
    "frame_line",
    "parse_transmit",
]

#: ``S<n>`` codes (Lawicel).
BITRATE_COMMANDS: dict[str, int] = {
    "0": 10_000,
    "1": 20_000,
    "2": 50_000,
    "3": 100_000,
    "4": 125_000,
    "5": 250_000,
    "6": 500_000,
    "7": 800_000,
    "8": 1_000_000,
}


class Flag:
    """Lawicel ``F`` status bits."""

    RX_FIFO_FULL = 0x01
    TX_FIFO_FULL = 0x02
    ERROR_WARNING = 0x04
    DATA_OVERRUN = 0x08
    ERROR_PASSIVE = 0x20
    ARBITRATION_LOST = 0x40
    BUS_ERROR = 0x80


OK = b"\r"
BEL = b"\a"
WARNING_LIMIT = 96
PASSIVE_LIMIT = 128
ERROR_STEP = 8
MAX_WAIT_S = 0.05  # how often an injected clock is looked at when nothing is due
OUT_LIMIT = 32 * 1024  # bytes of unread frames the adapter holds before dropping
LINE_LIMIT = 64  # longest command line; longer garbage is dropped with BEL


@dataclass
class BusFaults:
    """What is wrong with the wire; read live, so a test can change it mid-session."""

    termination: bool = True  # False: intermittent bus errors, a share of frames lost
    error_rate: float = 0.25  # share of frames destroyed when termination is missing
    silent: bool = False  # no node transmits
    battery_stops_after_s: float | None = None  # traffic after this time is not sent


class Fate(Enum):
    """What happened to one traffic frame on the wire."""

    SENT = "sent"
    DESTROYED = "destroyed"  # error frame: nobody receives it
    WITHHELD = "withheld"  # its node did not send it (silent, battery stopped)


class SimCanBus:
    """The wire: its bit rate, the traffic its nodes send, its faults.

    Traffic is ``(t, id, extended, data)`` with ``t`` in seconds of bus time, read lazily;
    one adapter per bus (the traffic may be a one-shot generator).
    """

    def __init__(
        self,
        traffic: Iterable[Frame] = (),
        *,
        bitrate: int = 500_000,
        faults: BusFaults | None = None,
        time_scale: float = 1.0,
        seed: int = 0,
        loop_s: float | None = None,
    ) -> None:
        if bitrate <= 0:
            raise ValueError(f"bitrate must be positive, got {bitrate}")
        if not time_scale > 0 or math.isinf(time_scale):
            raise ValueError(f"time_scale must be a positive number, got {time_scale}")
        if loop_s is not None and not (loop_s > 0 and math.isfinite(loop_s)):
            raise ValueError(f"loop_s must be a positive number of seconds, got {loop_s}")
        self.faults = faults if faults is not None else BusFaults()
        _check_faults(self.faults)
        self.bitrate = bitrate
        self.time_scale = time_scale
        self.loop_s = loop_s
        self._traffic = traffic
        self._rng = random.Random(seed)  # frames destroyed on the wire
        self._tx_rng = random.Random(seed + 1)  # host transmits hit by errors
        self._attached = False

    def wire(self) -> Iterator[tuple[Frame, Fate]]:
        """Every traffic frame in time order with what happened to it; single use."""
        if self._attached:
            raise RuntimeError("this SimCanBus already feeds an adapter (its traffic is read once)")
        self._attached = True
        return ((frame, self._fate(frame[0])) for frame in self._frames())

    def transmit_hit(self) -> bool:
        """Whether a host transmit meets an error first (unterminated bus)."""
        _check_faults(self.faults)
        return not self.faults.termination and self._tx_rng.random() < self.faults.error_rate

    def _fate(self, t: float) -> Fate:
        faults = self.faults
        _check_faults(faults)
        if faults.silent or (
            faults.battery_stops_after_s is not None and t > faults.battery_stops_after_s
        ):
            return Fate.WITHHELD
        if not faults.termination and self._rng.random() < faults.error_rate:
            return Fate.DESTROYED
        return Fate.SENT

    def _frames(self) -> Iterator[Frame]:
        checked = _checked(self._traffic)
        if self.loop_s is None:
            yield from checked
            return
        cycle: list[Frame] = []
        for frame in checked:
            if frame[0] >= self.loop_s:
                break
            cycle.append(frame)
            yield frame
        if not cycle:
            return
        k = 1
        while True:
            offset = k * self.loop_s
            for t, can_id, extended, data in cycle:
                yield (t + offset, can_id, extended, data)
            k += 1


def _check_faults(faults: BusFaults) -> None:
    if not 0.0 <= faults.error_rate <= 1.0:
        raise ValueError(f"BusFaults.error_rate must be within 0..1, got {faults.error_rate}")
    stop = faults.battery_stops_after_s
    if stop is not None and not (stop >= 0 and math.isfinite(stop)):
        raise ValueError(f"BusFaults.battery_stops_after_s must be >= 0 seconds, got {stop}")


def _checked(traffic: Iterable[Frame]) -> Iterator[Frame]:
    """The traffic, refusing what a wire cannot carry, naming the frame."""
    last = 0.0
    for n, (t, can_id, extended, data) in enumerate(traffic):
        where = f"traffic frame {n} (t={t!r}, id={can_id!r})"
        if not (math.isfinite(t) and t >= 0):
            raise ValueError(f"{where}: time must be >= 0 seconds from bus start")
        if t < last:
            raise ValueError(f"{where}: time goes backwards (previous frame at {last} s)")
        limit = 0x1FFFFFFF if extended else 0x7FF
        if not 0 <= can_id <= limit:
            bits = 29 if extended else 11
            raise ValueError(f"{where}: id out of range for {bits}-bit identifiers")
        if len(data) > 8:
            raise ValueError(f"{where}: {len(data)} data bytes, classic CAN carries at most 8")
        last = t
        yield (t, can_id, bool(extended), bytes(data))


def frame_line(can_id: int, extended: bool, data: bytes) -> bytes:
    """A received frame as the adapter sends it to the host."""
    head = f"T{can_id:08X}" if extended else f"t{can_id:03X}"
    return f"{head}{len(data)}{data.hex().upper()}\r".encode()


def parse_transmit(line: str) -> tuple[int, bool, bytes] | None:
    """``tIIIL<data>`` / ``TIIIIIIIIL<data>`` -> (id, extended, data); None if malformed."""
    extended = line[0] == "T"
    width = 8 if extended else 3
    head, rest = line[1 : 1 + width], line[1 + width :]
    if not _is_hex(head, width) or not rest or rest[0] not in "012345678":
        return None
    length = int(rest[0])
    if len(rest) != 1 + 2 * length or (length and not _is_hex(rest[1:], 2 * length)):
        return None
    can_id = int(head, 16)
    if can_id > (0x1FFFFFFF if extended else 0x7FF):
        return None
    return can_id, extended, bytes.fromhex(rest[1:])


class SimSlcanAdapter:
    """Context manager; ``.path`` is what python-can opens. Thread-backed, like NullModem."""

    def __init__(self, bus: SimCanBus, clock: Callable[[], float] = time.monotonic) -> None:
        self.bus = bus
        self.clock = clock
        #: Frames the host sent onto the bus (acknowledged), stamped with bus time.
        self.transmitted: list[Frame] = []
        #: Every command line received, without its CR.
        self.commands: list[str] = []
        #: Frames passed to the host.
        self.delivered = 0
        #: Frames destroyed by bus errors while the adapter listened at the right rate.
        self.lost_to_errors = 0
        #: Frames on the wire while the adapter listened at another rate.
        self.frames_seen_at_wrong_rate = 0
        #: Frames dropped because the host did not read.
        self.overruns = 0
        #: Traffic frames whose time has come, whatever became of them.
        self.elapsed_frames = 0
        #: Receive and transmit error counters of the simulated controller.
        self.rx_errors = 0
        self.tx_errors = 0
        self.flags = 0
        #: A bad traffic frame or an internal failure; raised again by close().
        self.error: BaseException | None = None
        self.is_open = False
        self.listen_only = False
        self._rate: int | None = None  # None: unset, or custom BTR ("unknown")
        self._rate_set = False
        self._t0: float | None = None
        self._wire: Iterator[tuple[Frame, Fate]] | None = bus.wire()
        self._next: tuple[Frame, Fate] | None = None
        self._in = bytearray()
        self._out = bytearray()
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="sim-slcan", daemon=True)
        self._thread.start()

    @property
    def bitrate(self) -> int | None:
        """The adapter's CAN bit rate; None when unset or set by BTR registers."""
        return self._rate

    def bus_time(self) -> float | None:
        """Seconds of bus time since the first open; None before it."""
        if self._t0 is None:
            return None
        return (self.clock() - self._t0) * self.bus.time_scale

    def close(self) -> None:
        """Stop the thread and release the PTY; raise a traffic error met on the way."""
        self._shutdown()
        if self.error is not None:
            raise self.error

    def __enter__(self) -> SimSlcanAdapter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._shutdown()  # do not hide the exception already on its way

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- thread ----------------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._stop:
                writable = [self._master] if self._out else []
                ready, _, _ = select.select(
                    [self._master, self._wake_r], writable, [], self._wait_s()
                )
                if self._wake_r in ready:
                    os.read(self._wake_r, 64)
                if self._master in ready:
                    self._read_commands()
                self._pump()
                self._flush()
        except Exception as exc:  # pragma: no cover - surfaced by close()
            self.error = exc

    def _wait_s(self) -> float:
        now = self.bus_time()
        upcoming = self._peek() if now is not None else None
        if now is None or upcoming is None:
            return MAX_WAIT_S
        due = (upcoming[0][0] - now) / self.bus.time_scale
        return min(max(due, 0.0), MAX_WAIT_S)

    def _peek(self) -> tuple[Frame, Fate] | None:
        if self._next is None and self._wire is not None:
            try:
                self._next = next(self._wire)
            except StopIteration:
                self._wire = None
            except ValueError as exc:  # a bad traffic frame: the traffic ends there
                self.error = exc
                self._wire = None
        return self._next

    def _pump(self) -> None:
        """Play every traffic frame whose time has come."""
        now = self.bus_time()
        if now is None:
            return
        while (upcoming := self._peek()) is not None and upcoming[0][0] <= now:
            self._next = None
            self.elapsed_frames += 1
            self._on_wire(*upcoming)

    def _on_wire(self, frame: Frame, fate: Fate) -> None:
        if fate is Fate.WITHHELD or not self.is_open:
            return  # nothing on the wire, or the controller is in reset
        if not self._rate_matches():
            self.frames_seen_at_wrong_rate += 1
            self._rx_error()
        elif fate is Fate.DESTROYED:
            self.lost_to_errors += 1
            self._rx_error()
        else:
            self.rx_errors = 127 if self.rx_errors >= PASSIVE_LIMIT else max(0, self.rx_errors - 1)
            _, can_id, extended, data = frame
            line = frame_line(can_id, extended, data)
            if len(self._out) + len(line) > OUT_LIMIT:
                self.overruns += 1
                self.flags |= Flag.RX_FIFO_FULL | Flag.DATA_OVERRUN
                return
            self._out += line
            self.delivered += 1

    def _rate_matches(self) -> bool:
        return self._rate is not None and self._rate == self.bus.bitrate

    def _rx_error(self) -> None:
        self.rx_errors = min(self.rx_errors + ERROR_STEP, 255)
        self.flags |= Flag.BUS_ERROR | self._state_flags(self.rx_errors)

    @staticmethod
    def _state_flags(counter: int) -> int:
        flags = Flag.ERROR_WARNING if counter >= WARNING_LIMIT else 0
        return flags | (Flag.ERROR_PASSIVE if counter >= PASSIVE_LIMIT else 0)

    def _flush(self) -> None:
        if not self._out:
            return
        try:
            written = os.write(self._master, self._out)
        except (BlockingIOError, InterruptedError):
            return
        del self._out[:written]

    def _read_commands(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        self._in += data.replace(b"\n", b"")
        while (end := self._in.find(b"\r")) >= 0:
            raw = bytes(self._in[:end])
            del self._in[: end + 1]
            try:
                line = raw.decode("ascii")
            except UnicodeDecodeError:
                self.commands.append(raw.decode("ascii", "replace"))
                self._out += BEL
                continue
            self.commands.append(line)
            self._out += self._command(line)
        if len(self._in) > LINE_LIMIT:  # no CR in sight: line noise, not a command
            self._in.clear()
            self._out += BEL

    # -- commands --------------------------------------------------------------------------------

    def _command(self, line: str) -> bytes:
        if not line:
            return OK
        handler = COMMANDS.get(line[0])
        return BEL if handler is None else handler(self, line)

    def _set_rate(self, line: str) -> bytes:
        rate = BITRATE_COMMANDS.get(line[1:])
        if self.is_open or rate is None:
            return BEL
        self._rate, self._rate_set = rate, True
        return OK

    def _set_btr(self, line: str) -> bytes:
        if self.is_open or not _is_hex(line[1:], 4):
            return BEL
        self._rate, self._rate_set = None, True
        return OK

    def _set_data_rate(self, line: str) -> bytes:
        arg = line[1:]
        return BEL if self.is_open or len(arg) != 1 or not arg.isdigit() else OK

    def _open(self, line: str) -> bytes:
        if line[1:] or self.is_open or not self._rate_set:
            return BEL
        if self._t0 is None:
            self._t0 = self.clock()
        self.is_open, self.listen_only = True, line[0] == "L"
        self.rx_errors = self.tx_errors = self.flags = 0
        return OK

    def _close(self, line: str) -> bytes:
        if line[1:]:
            return BEL
        self.is_open = self.listen_only = False
        return OK

    def _version(self, line: str) -> bytes:
        return BEL if line[1:] else f"{line[0]}1013\r".encode()

    def _serial(self, line: str) -> bytes:
        return BEL if line[1:] else b"NSIM1\r"

    def _timestamps(self, line: str) -> bytes:
        return OK if line[1:] in ("0", "1") else BEL

    def _status(self, line: str) -> bytes:
        if line[1:] or not self.is_open:
            return BEL
        flags, self.flags = self.flags, 0
        return f"F{flags:02X}\r".encode()

    def _transmit(self, line: str) -> bytes:
        parsed = parse_transmit(line)
        if parsed is None or not self.is_open or self.listen_only:
            return BEL
        can_id, extended, data = parsed
        if not self._rate_matches():
            # Queued, but nobody on the wire can acknowledge it: the controller retries until
            # error passive.
            self.tx_errors = max(self.tx_errors, PASSIVE_LIMIT)
            self.flags |= Flag.BUS_ERROR | self._state_flags(self.tx_errors)
        else:
            if self.bus.transmit_hit():
                self.tx_errors = min(self.tx_errors + ERROR_STEP, 255)
                self.flags |= Flag.BUS_ERROR | self._state_flags(self.tx_errors)
            self.tx_errors = max(0, self.tx_errors - 1)  # the retransmission succeeds
            now = self.bus_time()
            self.transmitted.append((now or 0.0, can_id, extended, data))
        return b"Z\r" if extended else b"z\r"


def _is_hex(text: str, width: int) -> bool:
    return len(text) == width and all(c in "0123456789abcdefABCDEF" for c in text)


#: Command letter -> handler; anything else answers BEL.
COMMANDS: dict[str, Callable[[SimSlcanAdapter, str], bytes]] = {
    "S": SimSlcanAdapter._set_rate,
    "s": SimSlcanAdapter._set_btr,
    "Y": SimSlcanAdapter._set_data_rate,
    "y": SimSlcanAdapter._set_data_rate,
    "O": SimSlcanAdapter._open,
    "L": SimSlcanAdapter._open,
    "C": SimSlcanAdapter._close,
    "V": SimSlcanAdapter._version,
    "v": SimSlcanAdapter._version,
    "N": SimSlcanAdapter._serial,
    "Z": SimSlcanAdapter._timestamps,
    "F": SimSlcanAdapter._status,
    "t": SimSlcanAdapter._transmit,
    "T": SimSlcanAdapter._transmit,
}
