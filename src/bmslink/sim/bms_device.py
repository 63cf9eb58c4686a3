"""A simulated BMS that answers its real byte protocol on a serial port.

Tests, the demo and the bridge's ``sim`` sources talk to it exactly as they
would to a JK, JBD or Daly on ``/dev/ttyUSB0``: the device sits on one end of
a ``NullModem`` (a PTY pair), the real driver opens the other. The replies are
the protocol module's own ``answer()``, built from whatever state ``source``
gives for the addressed pack (normally a simulated pack's BMS).

Faults a real installation has can be switched on while it runs: the device
goes silent (asleep, unplugged), sends line noise before its replies, or
corrupts the checksum of the next few replies.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from bmslink.bms.base import BmsProtocol, StateSource
from bmslink.bms.registry import get_bms
from bmslink.errors import EncodeError
from bmslink.links.serial_port import SerialLink
from bmslink.sim.nullmodem import NullModem


@dataclass
class DeviceFaults:
    """What is wrong with the device right now; change the fields while it runs."""

    #: Read requests but never answer (a sleeping BMS, a cut A/B wire).
    silent: bool = False
    #: Bytes sent before every reply (line noise, a wake-up byte).
    garbage: bytes = b""
    #: Corrupt the last-but-one byte (inside every protocol's checksum) of this many replies.
    corrupt_replies: int = 0
    #: Requests answered with these frames instead, [] = never answered: a firmware that
    #: does not know a command (JK-PB >= 15.36 ignores the about read) or refuses it.
    overrides: dict[bytes, list[bytes]] = field(default_factory=dict)


@dataclass
class DeviceStats:
    requests: int = 0
    answered: int = 0
    ignored: int = 0
    encode_errors: int = 0
    last_encode_error: str | None = None


class SimulatedBmsDevice:
    """Answers ``protocol`` requests arriving on ``port`` from ``source(address)``."""

    def __init__(
        self,
        protocol: BmsProtocol,
        port: str,
        source: StateSource,
        *,
        baudrate: int | None = None,
        faults: DeviceFaults | None = None,
    ) -> None:
        self.protocol = protocol
        self.source = source
        self.faults = faults or DeviceFaults()
        self.stats = DeviceStats()
        # A read returns as soon as a byte arrives; the timeout only paces an idle loop
        # (and how long stop() waits), so it can be long without delaying any answer.
        self.link = SerialLink(port, baudrate or protocol.baudrate, read_timeout_s=0.1)
        self._framer = protocol.request_framer()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SimulatedBmsDevice:
        """Open the port and answer in a background thread."""
        self.link.open()
        self._thread = threading.Thread(
            target=self._serve, name=f"sim-{self.protocol.name}", daemon=True
        )
        self._thread.start()
        return self

    def serve_once(self) -> int:
        """Answer whatever requests arrived (one read); returns requests seen."""
        data = self.link.read()
        if data:
            requests = self._framer.feed(data)
        elif self._framer.pending:  # a read that returns nothing waited read_timeout_s (100 ms)
            requests = self._framer.idle()
        else:
            return 0
        for request in requests:
            self._answer(request)
        return len(requests)

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.serve_once()

    def _answer(self, request: bytes) -> None:
        self.stats.requests += 1
        try:
            override = self.faults.overrides.get(bytes(request))
            frames = self.protocol.answer(request, self.source) if override is None else override
        except EncodeError as exc:
            self.stats.encode_errors += 1
            self.stats.last_encode_error = str(exc)
            return
        faults = self.faults
        if not frames or faults.silent:
            self.stats.ignored += 1
            return
        out = bytearray(faults.garbage)
        for frame in frames:
            if faults.corrupt_replies > 0:
                faults.corrupt_replies -= 1
                broken = bytearray(frame)
                broken[-2] ^= 0x01
                frame = bytes(broken)
            out += frame
        self.link.write(bytes(out))
        self.stats.answered += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.link.close()

    def __enter__(self) -> SimulatedBmsDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SimulatedPort:
    """A simulated BMS of ``bms_type`` on a fresh PTY pair; ``path`` is the end a driver opens.

    What ``bms read --port sim``, a bridge's ``port = "sim"`` and ``demo --bms`` stand in for
    a BMS on ``/dev/ttyUSB0`` with.
    """

    def __init__(self, bms_type: str, source: StateSource) -> None:
        self.modem = NullModem()
        try:
            self.device = SimulatedBmsDevice(get_bms(bms_type), self.modem.a_path, source).start()
        except BaseException:
            self.modem.close()
            raise

    @property
    def path(self) -> str:
        return self.modem.b_path

    def close(self) -> None:
        self.device.stop()
        self.modem.close()

    def __enter__(self) -> SimulatedPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
