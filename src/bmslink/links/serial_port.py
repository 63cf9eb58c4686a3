"""A serial port (RS485 adapter, UART) through pyserial, reopened after an unplug.

USB-RS485 adapters vanish when unplugged and come back, often under the same
name. ``SerialLink`` turns that into a counted, reported gap instead of a crash:
a read or write on a lost port closes it, and the next use tries to reopen it
no more often than ``reopen_interval_s``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import serial

from bmslink.clock import Clock, MonotonicClock
from bmslink.errors import BmslinkError

Opener = Callable[..., Any]


class LinkError(BmslinkError):
    """A port could not be opened or was lost; the message names the port and the cause."""


def bytes_on_wire_s(n_bytes: int, baudrate: int, bits_per_byte: int = 10) -> float:
    """Time ``n_bytes`` take on a real line (8N1: start + 8 data + stop = 10 bits)."""
    return n_bytes * bits_per_byte / baudrate


class SerialLink:
    """One port, 8N1, non-blocking-ish reads of whatever arrived within ``read_timeout_s``."""

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        *,
        read_timeout_s: float = 0.02,
        reopen_interval_s: float = 1.0,
        clock: Clock | None = None,
        opener: Opener = serial.Serial,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.read_timeout_s = read_timeout_s
        self.reopen_interval_s = reopen_interval_s
        self.clock = clock or MonotonicClock()
        self._opener = opener
        self._sleep = sleep
        self._serial: Any = None
        self._next_open = float("-inf")
        self.opens = 0
        self.losses = 0
        self.last_error: str | None = None

    def open(self) -> None:
        """Open now; LinkError naming the port when that fails (first open: fail fast)."""
        try:
            self._serial = self._opener(
                self.port,
                self.baudrate,
                bytesize=8,
                parity="N",
                stopbits=1,
                timeout=self.read_timeout_s,
                write_timeout=2.0,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self._serial = None
            self._next_open = self.clock.now() + self.reopen_interval_s
            self.last_error = f"cannot open {self.port} at {self.baudrate} baud: {exc}"
            raise LinkError(self.last_error) from exc
        self.opens += 1

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def ensure_open(self) -> bool:
        """Reopen a lost port now if its reopen interval has passed; True when it is open."""
        return self._ensure()

    def _ensure(self) -> bool:
        if self._serial is not None:
            return True
        if self.clock.now() < self._next_open:
            return False
        try:
            self.open()
        except LinkError:
            return False
        return True

    def _lost(self, exc: Exception) -> None:
        self.losses += 1
        self.last_error = f"{self.port} lost: {exc}"
        self.close()
        self._next_open = self.clock.now() + self.reopen_interval_s

    def read(self) -> bytes:
        """What arrived within ``read_timeout_s`` (b"" when nothing, or while the port is gone).

        A read always takes up to ``read_timeout_s``, also while the port is gone, so
        that a loop of reads (a server, a poller waiting for an answer) is paced by
        the line and never spins a core while an adapter is unplugged.
        """
        if not self._ensure():
            self._sleep(self.read_timeout_s)
            return b""
        try:
            waiting = self._serial.in_waiting
            return bytes(self._serial.read(waiting or 1))
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)
            self._sleep(self.read_timeout_s)
            return b""

    def write(self, data: bytes) -> bool:
        """Send ``data``; False when the port is gone (the caller counts a failed send)."""
        if not self._ensure():
            return False
        try:
            self._serial.write(data)
            self._serial.flush()
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)
            return False
        return True

    def discard_input(self) -> int:
        """Drop whatever is waiting (late answers, noise) before a new request; bytes dropped."""
        if not self._ensure():
            return 0
        try:
            waiting = int(self._serial.in_waiting)
            if waiting:
                self._serial.read(waiting)
            return waiting
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)
            return 0

    def close(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):  # already gone
                self._serial.close()
            self._serial = None

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
