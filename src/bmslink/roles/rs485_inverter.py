"""Be the inverter on an RS485 line: poll Pylontech batteries and merge their answers.

Each cycle asks every address for analog values (0x42), alarms (0x44) and the
charge/discharge limits (0x92), the way a hybrid inverter does, and merges the
answers into one BatteryState per address. A state holds only what was
answered in that cycle: a command that went unanswered leaves its keys absent
rather than carrying the last value forward.

A request that gets no valid answer (silence, a bad checksum, a truncated
frame) is retried after a growing pause (``backoff_s`` doubling up to
``backoff_max_s``); an error code from the battery is not retried (it did
answer). After ``max_silent`` cycles in a row in which an address answered
nothing at all, ``SilentBatteryError`` says so with the usual causes, instead
of polling into the void forever.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from bmslink.clock import Clock, MonotonicClock
from bmslink.errors import BmslinkError, DecodeError
from bmslink.links.serial_port import SerialLink
from bmslink.rs485.frame import AsciiFramer, FrameError, parse_frame
from bmslink.rs485.pylontech import (
    CID1_BATTERY,
    Command,
    ResponseError,
    decode_response,
    request,
)
from bmslink.state import FIELD_NAMES, BatteryState

#: What an inverter polls every cycle, in this order (later answers win on shared keys:
#: 0x92's enable flags are the battery's request, 0x44's only the MOSFET state).
CYCLE_COMMANDS: tuple[Command, ...] = (Command.ANALOG, Command.ALARM, Command.MANAGEMENT)
#: Asked once per address, on its first answered cycle: who it is.
IDENTITY_COMMANDS: tuple[Command, ...] = (Command.MANUFACTURER_INFO, Command.SERIAL_NUMBER)


def _present(state: BatteryState) -> dict[str, object]:
    """The keys a state carries (objects as they are, unlike ``to_dict``'s JSON form)."""
    return {k: v for k in FIELD_NAMES if (v := getattr(state, k)) is not None}


class SilentBatteryError(BmslinkError):
    """An address answered nothing for too many cycles in a row."""


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Pause before retry ``attempt`` (1, 2, ...): ``base_s`` doubling, at most ``cap_s``."""
    return float(min(base_s * 2 ** (attempt - 1), cap_s))


def silent_message(who: str, where: str, polls: int, last: str, checks: str) -> str:
    """What a poller says when a device answered nothing for ``polls`` cycles."""
    on = f" on {where}" if where else ""
    return f"{who}{on} answered nothing in {polls} polls (last: {last}). Check: {checks}"


class Transport(Protocol):
    """One request, its first complete frame back (or None after ``timeout_s``)."""

    def exchange(self, request: bytes, timeout_s: float) -> bytes | None: ...


class SerialTransport:
    """Request/answer over a ``SerialLink``: stale input is dropped before each request."""

    def __init__(self, link: SerialLink, clock: Clock | None = None) -> None:
        self.link = link
        self.clock = clock or MonotonicClock()
        self.framer = AsciiFramer()
        self.stale_bytes = 0

    def exchange(self, request: bytes, timeout_s: float) -> bytes | None:
        self.stale_bytes += self.link.discard_input()
        self.framer.reset()
        if not self.link.write(request):
            return None
        deadline = self.clock.now() + timeout_s
        while self.clock.now() < deadline:
            frames = self.framer.feed(self.link.read())
            if frames:
                return frames[0]
        return None


class PylonPoller:
    """Polls ``addresses`` over ``transport``; ``cycle()`` returns a state per address."""

    def __init__(
        self,
        transport: Transport,
        addresses: Sequence[int],
        *,
        commands: Sequence[Command] = CYCLE_COMMANDS,
        identity_commands: Sequence[Command] = IDENTITY_COMMANDS,
        timeout_s: float = 1.0,
        retries: int = 2,
        backoff_s: float = 0.1,
        backoff_max_s: float = 2.0,
        max_silent: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        where: str = "",
    ) -> None:
        if not addresses:
            raise ValueError("poll at least one address")
        self.transport = transport
        self.addresses = list(addresses)
        self.commands = list(commands)
        self.identity_commands = list(identity_commands)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_silent = max_silent
        self.sleep = sleep
        self.where = where  # "/dev/ttyUSB0 at 9600 baud", for error messages
        self.requests = 0
        self.answers = 0
        self.timeouts = 0
        self.retried = 0
        self.bad_frames: Counter[str] = Counter()
        self.error_answers: Counter[int] = Counter()
        self.silent_cycles: dict[int, int] = dict.fromkeys(self.addresses, 0)
        self.last_problem: dict[int, str] = {}
        self._identity: dict[int, BatteryState] = {}

    def cycle(self) -> dict[int, BatteryState | None]:
        """Poll every address once; None for one that answered nothing this cycle."""
        return {adr: self.poll_address(adr) for adr in self.addresses}

    def poll_address(self, adr: int) -> BatteryState | None:
        state = self._ask_all(adr, self.commands)
        if state is None:
            self.silent_cycles[adr] += 1
            if self.silent_cycles[adr] >= self.max_silent:
                raise SilentBatteryError(self._silence_message(adr))
            return None
        self.silent_cycles[adr] = 0
        if adr not in self._identity:
            self._identity[adr] = self._ask_all(adr, self.identity_commands) or BatteryState()
        identity = _present(self._identity[adr])
        return state.merged({k: v for k, v in identity.items() if getattr(state, k) is None})

    def _ask_all(self, adr: int, commands: Sequence[Command]) -> BatteryState | None:
        """The answers to ``commands`` merged in order; None when none was answered."""
        state: BatteryState | None = None
        for command in commands:
            result = self._ask(adr, command)
            if result is not None:
                state = state or BatteryState()
                if isinstance(result, BatteryState):
                    state = state.merged(_present(result))
        return state

    def _ask(self, adr: int, command: Command) -> BatteryState | dict[str, object] | None:
        raw_request = request(command, adr).encode()
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                self.sleep(backoff_delay(attempt, self.backoff_s, self.backoff_max_s))
            self.requests += 1
            raw = self.transport.exchange(raw_request, self.timeout_s)
            if raw is None:
                self.timeouts += 1
                self.last_problem[adr] = f"no answer to 0x{command:02X} within {self.timeout_s} s"
                continue
            try:
                frame = parse_frame(raw)
                if frame.adr != adr or frame.cid1 != CID1_BATTERY:
                    raise FrameError(
                        f"answer from address {frame.adr:02X} CID1 {frame.cid1:02X}, "
                        f"expected {adr:02X} 46"
                    )
                decoded = decode_response(frame, command)
            except ResponseError as exc:
                self.error_answers[exc.rtn] += 1
                self.last_problem[adr] = str(exc)
                return None
            except DecodeError as exc:
                self.bad_frames[str(exc).split(":")[0]] += 1
                self.last_problem[adr] = f"0x{command:02X}: {exc}"
                continue
            self.answers += 1
            return decoded
        return None

    def _silence_message(self, adr: int) -> str:
        return silent_message(
            f"battery at address {adr:02X}",
            self.where,
            self.max_silent,
            self.last_problem.get(adr, "no answer"),
            "RS485 A/B not swapped and on the right RJ45 pins; the baud rate (Pylontech: "
            "115200, or 9600 with DIP 1 set, after a restart); the address (the master pack "
            "is 02); the pack is switched on.",
        )
