"""Open and watch a live CAN bus through python-can: sniff and doctor read the bus here.

Nothing here transmits a data frame. The adapter still acknowledges frames on
the wire unless it is opened listen-only (:func:`listen_only_options`), which
python-can supports for a few interfaces only; on a bus where the battery is
the only other node, something must ACK (the inverter, or a non-silent adapter),
or the battery repeats its first frame and goes error-passive.

Choices made where the issue is silent:

- Error frames are counted, never returned as data. A socketcan error frame's
  class bits (``linux/can/error.h``) also count as status flags, so a socketcan
  user sees ``bus_off`` or ``error_passive`` as an slcan user does.
- Adapter status is polled every ``status_interval_s`` of the injected clock:
  Lawicel ``F`` on slcan (bits 2, 3, 5, 7), and ``bus.state`` on interfaces that
  override python-can's default (which always says ACTIVE, so it says nothing).
- Remote frames and CAN FD frames longer than 8 bytes are counted as skipped:
  no battery profile uses them.
- ``scan_bitrates`` changes an slcan adapter's rate on the open port (``C``,
  ``Sn``, ``O``) instead of reopening it, which would cost python-can's 2 s wait;
  before each rate it reads an ``F`` answer as a barrier, so frames (and status
  flags) from the previous rate are not counted at the new one.
- ``--bus-option`` values are typed the obvious way (int, float, true/false,
  else text); ``interface``, ``channel`` and ``bitrate`` are refused there,
  since they have their own options.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import can

from bmslink.capture import FrameBatch
from bmslink.clock import Clock, MonotonicClock
from bmslink.errors import BmslinkError

SCAN_BITRATES = (500_000, 250_000, 125_000, 1_000_000)
#: What an adapter that needs a rate is opened at when none is given: the battery profiles' rate.
DEFAULT_BITRATE = 500_000

#: Interfaces whose bit rate python-can sets when it opens them, so bmslink can
#: scan rates by reopening. socketcan is not one: its rate belongs to the kernel
#: link (``ip link set can0 type can bitrate N``, as root).
REOPENABLE_INTERFACES: frozenset[str] = frozenset(
    {
        "slcan",
        "gs_usb",
        "pcan",
        "kvaser",
        "ixxat",
        "vector",
        "canalystii",
        "usb2can",
        "seeedstudio",
        "robotell",
        "virtual",
    }
)

#: python-can keyword arguments that open an interface without ACKing or sending.
#: virtual has nothing to silence. Others (socketcan, gs_usb, ...) cannot do it
#: through python-can: socketcan does it on the link (``listen-only on``).
LISTEN_ONLY_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "slcan": {"listen_only": True},
    "vector": {"listen_only": True},
    "nixnet": {"listen_only": True},
    "cantact": {"monitor": True},
    "pcan": {"state": can.BusState.PASSIVE},
    "systec": {"state": can.BusState.PASSIVE},
    "kvaser": {"driver_mode": False},  # python-can's DRIVER_MODE_SILENT
    "seeedstudio": {"operation_mode": "silent"},
    "virtual": {},
}

#: What to try when an interface does not open, by interface.
OPEN_HINTS: Mapping[str, str] = {
    "socketcan": "bring the link up first: "
    "sudo ip link set {channel} up type can bitrate {bitrate}",
    "slcan": "give the adapter's serial port, e.g. -c /dev/ttyACM0, /dev/ttyUSB0 or COM5, "
    "and check you may open it (Linux: the dialout group)",
    "gs_usb": "is the adapter (candleLight firmware) plugged in, pyusb and libusb installed, "
    "and the USB device readable (udev rule)?",
    "pcan": "install PEAK's PCAN-Basic driver; channels are named like PCAN_USBBUS1",
    "kvaser": "install Kvaser CANlib; the channel is a number, e.g. -c 0",
    "vector": "install the Vector XL driver library and assign the channel "
    "in Vector Hardware Config",
    "ixxat": "install the IXXAT VCI driver; the channel is a number, e.g. -c 0",
}
DEFAULT_HINT = "check the adapter is connected and that the interface and channel are right"

#: Lawicel ``F`` status bits bmslink reports.
SLCAN_STATUS_BITS: Mapping[int, str] = {
    2: "error_warning",
    3: "overrun",
    5: "error_passive",
    7: "bus_error",
}

# linux/can/error.h: error class in the id, controller status in data[1]
_ERR_CLASS_FLAGS = {0x08: "bus_error", 0x20: "bus_error", 0x40: "bus_off", 0x80: "bus_error"}
_ERR_CRTL = 0x04
_ERR_CRTL_FLAGS = {
    0x01: "overrun",
    0x02: "overrun",
    0x04: "error_warning",
    0x08: "error_warning",
    0x10: "error_passive",
    0x20: "error_passive",
}

#: An slcan adapter that leaves this many ``F`` polls in a row unanswered is not asked again.
UNANSWERED_POLLS = 3
#: Longest single wait inside observe(), so the clock is looked at often.
RECV_SLICE_S = 0.05
_OPTION_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_OPTIONS = {
    "interface": "--interface",
    "channel": "--channel",
    "bitrate": "--bitrate",
    "bustype": "--interface",
}


class LiveBusError(BmslinkError):
    """A bus that cannot be opened, read or reconfigured; the message names which and why."""


class RecordError(BmslinkError):
    """A --record file that cannot be written (unknown suffix, missing directory...)."""


def parse_bus_options(items: Sequence[str]) -> dict[str, Any]:
    """``["tty_baudrate=115200", "rtscts=true"]`` -> python-can keyword arguments."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _OPTION_KEY.match(key):
            raise LiveBusError(f"bus option {item!r}: expected key=value, e.g. tty_baudrate=115200")
        if key in _RESERVED_OPTIONS:
            raise LiveBusError(f"bus option {item!r}: use {_RESERVED_OPTIONS[key]} for {key}")
        if key in options:
            raise LiveBusError(f"bus option {key!r} given twice")
        options[key] = _option_value(raw.strip())
    return options


def _option_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    with contextlib.suppress(ValueError):
        return int(raw, 16) if lowered.startswith("0x") else int(raw)
    with contextlib.suppress(ValueError):
        return float(raw)
    return raw


def listen_only_options(interface: str) -> dict[str, Any]:
    """python-can kwargs that keep the adapter silent; LiveBusError where python-can cannot."""
    options = LISTEN_ONLY_OPTIONS.get(interface)
    if options is None:
        how = (
            "set it on the link instead: sudo ip link set CHANNEL up type can bitrate N "
            "listen-only on, and run without --listen-only"
            if interface == "socketcan"
            else "python-can has no listen-only mode for it"
        )
        supported = ", ".join(sorted(k for k in LISTEN_ONLY_OPTIONS if k != "virtual"))
        raise LiveBusError(
            f"{interface}: cannot open listen-only ({how}); listen-only works on {supported}"
        )
    return dict(options)


@dataclass(frozen=True)
class BusSpec:
    """How to open one bus: python-can interface, channel, bit rate and extra kwargs."""

    interface: str
    channel: str | None = None
    bitrate: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # extra python-can kwargs

    @property
    def reopenable(self) -> bool:
        """Whether bmslink can set the bit rate (and so scan rates) through python-can."""
        return self.interface in REOPENABLE_INTERFACES

    def describe(self, bitrate: int | None = None) -> str:
        rate = self.bitrate if bitrate is None else bitrate
        where = self.channel if self.channel else "(no channel given)"
        at = f" at {rate} bit/s" if rate is not None else ""
        return f"{self.interface} {where}{at}"

    def open(self, bitrate: int | None = None) -> can.BusABC:
        """The open bus; ``bitrate`` overrides the spec's. Any failure is a LiveBusError."""
        rate = self.bitrate if bitrate is None else bitrate
        if self.interface not in can.interfaces.VALID_INTERFACES:
            known = ", ".join(sorted(can.interfaces.VALID_INTERFACES))
            raise LiveBusError(f"unknown interface {self.interface!r}; python-can knows: {known}")
        kwargs = dict(self.options)
        if rate is not None:
            kwargs["bitrate"] = rate
        try:
            return can.Bus(interface=self.interface, channel=self.channel, **kwargs)
        except Exception as exc:  # drivers raise anything (OSError, ctypes, usb); all mean "no bus"
            raise LiveBusError(self._failure(rate, exc)) from None

    def _failure(self, rate: int | None, exc: Exception) -> str:
        cause = str(exc).strip() or type(exc).__name__
        hint = OPEN_HINTS.get(self.interface, DEFAULT_HINT).format(
            channel=self.channel or "can0", bitrate=rate or DEFAULT_BITRATE
        )
        return f"cannot open {self.describe(rate)}: {cause}; {hint}"


@dataclass
class Observation:
    """What one stretch of listening saw; frame times come from the watcher's clock."""

    bitrate: int | None
    started: float
    ended: float
    frames: list[tuple[float, int, bool, bytes]]  # data frames
    error_frames: int
    status: Counter[str]  # adapter status flags seen (once per poll or error frame)
    bus_states: Counter[str]  # python-can BusState names seen (where the interface has one)

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def batch(self) -> FrameBatch:
        return FrameBatch.from_frames(self.frames)


MessageHook = Callable[[can.Message], None]
StatusHook = Callable[[frozenset[str], str | None], None]


def error_flags(msg: can.Message) -> frozenset[str]:
    """Status flags an error frame carries (socketcan's classes); empty when it says nothing."""
    flags = {name for bit, name in _ERR_CLASS_FLAGS.items() if msg.arbitration_id & bit}
    if msg.arbitration_id & _ERR_CRTL and len(msg.data) > 1:
        flags |= {name for bit, name in _ERR_CRTL_FLAGS.items() if msg.data[1] & bit}
    return frozenset(flags)


def _reports_state(bus: can.BusABC) -> bool:
    """python-can's default ``state`` always says ACTIVE: only an override reports anything."""
    return type(bus).state is not can.BusABC.state


class BusWatcher:
    """Reads an open bus; counts error frames and polls adapter status (slcan: Lawicel 'F').

    ``on_message`` sees every message read (data, error and remote frames), for
    recording; ``on_status`` is called after each status poll with the flags set
    and the bus state (None where the interface reports none).
    """

    def __init__(
        self,
        bus: can.BusABC,
        clock: Clock | None = None,
        status_interval_s: float = 0.5,
        *,
        on_message: MessageHook | None = None,
        on_status: StatusHook | None = None,
    ) -> None:
        self.bus = bus
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.status_interval_s = status_interval_s
        self.on_message = on_message
        self.on_status = on_status
        self.frames = 0
        self.error_frames = 0
        self.skipped_frames = 0  # remote and long CAN FD frames
        self.status: Counter[str] = Counter()
        self.bus_states: Counter[str] = Counter()
        self.flags: frozenset[str] = frozenset()  # as of the last status poll
        self.bus_state: str | None = None
        self._slcan = _is_slcan(bus)
        self._unanswered = 0
        self._state = _reports_state(bus)
        self._next_poll = float("-inf")

    def recv(self, timeout: float) -> can.Message | None:
        """The next data frame within ``timeout`` seconds, or None; error frames are counted."""
        deadline = time.monotonic() + timeout
        while True:
            self._poll_status()
            left = max(0.0, deadline - time.monotonic())
            try:
                msg = self.bus.recv(left)
            except can.CanError as exc:
                raise LiveBusError(f"reading {self.bus.channel_info}: {exc}") from None
            if msg is None:
                return None
            if self.on_message is not None:
                self.on_message(msg)
            if msg.is_error_frame:
                self.error_frames += 1
                self.status.update(error_flags(msg))
            elif msg.is_remote_frame or len(msg.data) > 8:
                self.skipped_frames += 1
            else:
                self.frames += 1
                return msg
            if time.monotonic() >= deadline:
                return None

    def poll_status(self) -> None:
        """Ask the adapter for its status now (normally done every ``status_interval_s``)."""
        flags: set[str] = set()
        if self._slcan:
            bits = slcan_status(self.bus)
            if bits is not None:
                self._unanswered = 0
                flags = {name for bit, name in SLCAN_STATUS_BITS.items() if bits >> bit & 1}
            else:
                self._unanswered += 1
                if self._unanswered >= UNANSWERED_POLLS:
                    self._slcan = False  # an adapter without F: stop waiting on it
        state: str | None = None
        if self._state:
            with contextlib.suppress(Exception):  # a driver that cannot tell is not an error
                state = self.bus.state.name
        self.flags = frozenset(flags)
        self.status.update(flags)
        self.bus_state = state
        if state is not None:
            self.bus_states[state] += 1
        if self.on_status is not None:
            self.on_status(self.flags, state)

    def _poll_status(self) -> None:
        if not (self._slcan or self._state):
            return
        now = self.clock.now()
        if now >= self._next_poll:
            self._next_poll = now + self.status_interval_s
            self.poll_status()

    def observe(
        self, seconds: float, max_frames: int | None = None, bitrate: int | None = None
    ) -> Observation:
        """Listen ``seconds`` of the clock (or until ``max_frames``); counts are this stretch's."""
        errors, status, states = self.error_frames, self.status.copy(), self.bus_states.copy()
        started = self.clock.now()
        frames: list[tuple[float, int, bool, bytes]] = []
        while max_frames is None or len(frames) < max_frames:
            left = started + seconds - self.clock.now()
            if left <= 0:
                break
            msg = self.recv(min(left, RECV_SLICE_S))
            if msg is not None:
                frames.append(
                    (self.clock.now(), msg.arbitration_id, msg.is_extended_id, bytes(msg.data))
                )
        if self._slcan or self._state:
            self.poll_status()  # what the stretch left behind, however short it was
        return Observation(
            bitrate=bitrate,
            started=started,
            ended=self.clock.now(),
            frames=frames,
            error_frames=self.error_frames - errors,
            status=self.status - status,
            bus_states=self.bus_states - states,
        )


def close_quietly(bus: can.BusABC) -> None:
    """Shut a bus down even when its device is gone (an unplugged adapter cannot say goodbye)."""
    with contextlib.suppress(can.CanError, OSError):
        bus.shutdown()


def _is_slcan(bus: can.BusABC) -> bool:
    from can.interfaces.slcan import slcanBus

    return isinstance(bus, slcanBus)


def slcan_status(bus: can.BusABC, timeout: float = 0.2) -> int | None:
    """The Lawicel status byte (``F``) of an slcan adapter; None if not slcan or no answer.

    Frame lines read while waiting go back into python-can's queue, as its own
    ``get_version`` does, so no frame is lost. A BEL is not taken as the answer:
    python-can itself leaves one behind (it sends ``O`` twice when it opens with
    a bit rate), so an adapter that does not know ``F`` simply times out.
    """
    return _slcan_command_f(bus, timeout, barrier=False)


def _slcan_command_f(bus: can.BusABC, timeout: float, *, barrier: bool) -> int | None:
    """Send ``F`` and wait for its answer; a barrier drops every line before it instead of
    re-queueing frames."""
    if not _is_slcan(bus):
        return None
    slcan: Any = bus  # python-can's private helpers, used as SlcanBus.get_version uses them
    deadline = time.monotonic() + timeout
    try:
        slcan._write("F")
        while True:
            line = slcan._read(max(0.0, deadline - time.monotonic()))
            if line:
                if line[0] == "F" and len(line) >= 3:
                    try:
                        return int(line[1:3], 16)
                    except ValueError:
                        return None
                if not barrier and line not in ("\a", "\r"):  # bare answers carry nothing
                    slcan._queue.put_nowait(line)
            if time.monotonic() >= deadline:
                return None
    except can.CanError as exc:
        raise LiveBusError(f"slcan status on {bus.channel_info}: {exc}") from None


def _slcan_settle(bus: can.BusABC, timeout: float = 0.5) -> None:
    """Drop everything heard before now: queued lines, and lines up to an ``F`` answer."""
    slcan: Any = bus
    while not slcan._queue.empty():
        slcan._queue.get_nowait()
    _slcan_command_f(bus, timeout, barrier=True)


def scan_bitrates(
    spec: BusSpec,
    rates: Sequence[int] = SCAN_BITRATES,
    seconds: float = 1.0,
    clock: Clock | None = None,
    bus: can.BusABC | None = None,
) -> dict[int, Observation]:
    """Listen ``seconds`` at each rate; the caller reads where traffic (or errors) appeared.

    slcan: the rate is changed on the open port (``bus`` if given, left open and
    set back to ``spec.bitrate`` when there is one). Other interfaces are
    reopened at each rate; a ``bus`` passed for them is shut down first, since
    the same adapter cannot be opened twice.
    """
    if not spec.reopenable:
        how = (
            "its rate is the kernel link's: sudo ip link set CHANNEL down, then "
            "sudo ip link set CHANNEL up type can bitrate N, once per rate"
            if spec.interface == "socketcan"
            else "python-can does not set its bit rate"
        )
        raise LiveBusError(f"cannot scan bit rates on {spec.interface}: {how}")
    clock = clock if clock is not None else MonotonicClock()
    results: dict[int, Observation] = {}
    if spec.interface == "slcan":
        owned = bus is None
        slcan = spec.open() if bus is None else bus
        try:
            for rate in rates:
                _set_slcan_rate(slcan, rate, spec)
                results[rate] = BusWatcher(slcan, clock).observe(seconds, bitrate=rate)
            if not owned and spec.bitrate is not None:
                _set_slcan_rate(slcan, spec.bitrate, spec)
        finally:
            if owned:
                slcan.shutdown()
        return results
    if bus is not None:
        bus.shutdown()
    for rate in rates:
        opened = spec.open(rate)
        try:
            results[rate] = BusWatcher(opened, clock).observe(seconds, bitrate=rate)
        finally:
            opened.shutdown()
    return results


def _set_slcan_rate(bus: can.BusABC, rate: int, spec: BusSpec) -> None:
    slcan: Any = bus
    try:
        slcan.set_bitrate(rate)
    except ValueError as exc:
        raise LiveBusError(f"{spec.describe(rate)}: {exc}") from None
    except can.CanError as exc:
        raise LiveBusError(f"cannot set {spec.describe(rate)}: {exc}") from None
    _slcan_settle(bus)


# -- recording -------------------------------------------------------------------------------------


def record_suffixes() -> list[str]:
    """File suffixes python-can's Logger writes (.log is candump -L)."""
    from can.io.logger import MESSAGE_WRITERS

    return sorted(MESSAGE_WRITERS)


class LogRecorder:
    """Every message read, written by python-can's Logger to a partial file.

    :meth:`finish` renames it to the target, so a complete file appears at once
    (a hard kill leaves the partial ``.NAME.partial.SUFFIX`` beside it).
    """

    def __init__(self, path: str) -> None:
        target = Path(path)
        suffix = target.suffix.lower()
        known = record_suffixes()
        if suffix not in known:
            raise RecordError(
                f"--record {path}: unknown suffix {suffix or '(none)'!r}; "
                f"python-can writes {', '.join(known)}"
            )
        parent = target.resolve().parent
        if not parent.is_dir():
            raise RecordError(f"--record {path}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise RecordError(f"--record {path}: directory {parent} is not writable")
        self.target = target
        self.partial = target.with_name(f".{target.stem}.partial{target.suffix}")
        try:
            self._logger = can.Logger(str(self.partial))
        except Exception as exc:  # a writer missing its library (.mf4: asammdf), a full disk
            self.partial.unlink(missing_ok=True)
            raise RecordError(f"--record {path}: {exc}") from None
        self.count = 0
        self._closed = False

    def write(self, msg: can.Message) -> None:
        channel = msg.channel
        if isinstance(channel, str) and re.search(r"\s", channel):
            msg.channel = re.sub(r"\s+", "_", channel)  # a space would split a candump line
        self._logger.on_message_received(msg)
        self.count += 1

    def finish(self) -> Path:
        """Close and move into place; returns the target."""
        if not self._closed:
            self._closed = True
            self._logger.stop()
            self.partial.replace(self.target)
        return self.target

    def discard(self) -> None:
        """Close and delete: nothing was recorded worth keeping (the bus never opened)."""
        if not self._closed:
            self._closed = True
            self._logger.stop()
            self.partial.unlink(missing_ok=True)
