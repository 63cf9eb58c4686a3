"""Two pseudo-terminals joined like a null-modem cable: a serial path without hardware.

Each end is a real tty path (``/dev/pts/N``) that pyserial and pymodbus open
exactly as they open ``/dev/ttyUSB0``, so tests and benchmarks run the real
drivers on both sides. A relay thread copies bytes between the two PTY masters
and is where a faulty wire is simulated: garbage can be injected towards either
end, a direction can be muted (a device that stops answering), and a
``transform`` can corrupt or truncate what passes.

The slave ends are held open by the relay itself (in raw mode), so a program
closing and reopening its port (an unplug and replug) does not hang up the PTY.
Bytes written towards an end that nobody reads are dropped once the PTY buffer
is full, as on a real wire with nobody listening.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import threading
import tty
from collections.abc import Callable
from typing import Literal

End = Literal["a", "b"]
#: ``transform(to_end, data) -> data``: what reaches ``to_end`` instead of ``data``.
Transform = Callable[[End, bytes], bytes]


class NullModem:
    """``a_path`` and ``b_path`` are the two ends; bytes written to one are read at the other."""

    def __init__(self, transform: Transform | None = None) -> None:
        self.transform = transform
        #: Muted ends receive nothing (the other side "stopped answering").
        self.muted: set[End] = set()
        self.dropped_bytes = 0
        self.relayed_bytes = 0
        self._masters: dict[End, int] = {}
        self._slaves: dict[End, int] = {}
        self.paths: dict[End, str] = {}
        for end in ("a", "b"):
            master, slave = pty.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._masters[end] = master
            self._slaves[end] = slave
            self.paths[end] = os.ttyname(slave)
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._relay, name="nullmodem", daemon=True)
        self._thread.start()

    @property
    def a_path(self) -> str:
        return self.paths["a"]

    @property
    def b_path(self) -> str:
        return self.paths["b"]

    def inject(self, to: End, data: bytes) -> None:
        """Deliver ``data`` to end ``to`` as if the other end had sent it (noise, a stray frame)."""
        with self._lock:
            self._write(to, data)

    def close(self) -> None:
        if self._stop:
            return
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for fd in (*self._masters.values(), *self._slaves.values(), self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> NullModem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- relay thread ----------------------------------------------------------------------------

    def _relay(self) -> None:
        other: dict[End, End] = {"a": "b", "b": "a"}
        by_fd = {fd: end for end, fd in self._masters.items()}
        while not self._stop:
            ready, _, _ = select.select([*by_fd, self._wake_r], [], [], 1.0)
            for fd in ready:
                if fd == self._wake_r:
                    continue
                try:
                    data = os.read(fd, 65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # pragma: no cover - the PTY went away while closing
                    return
                to = other[by_fd[fd]]
                with self._lock:
                    if to in self.muted:
                        self.dropped_bytes += len(data)
                        continue
                    if self.transform is not None:
                        data = self.transform(to, data)
                    self._write(to, data)

    def _write(self, to: End, data: bytes) -> None:
        fd = self._masters[to]
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                self.dropped_bytes += len(view)  # nobody reads that end: the bytes are lost
                return
            self.relayed_bytes += n
            view = view[n:]
