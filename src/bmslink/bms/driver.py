"""Poll a BMS on a serial port: one protocol, one port, one or more addresses on it.

The driver owns what the pure protocol modules leave out: the port (through
``SerialLink``, which reopens an unplugged adapter), per-request timeouts and
retries, the bus gap some BMSs need between requests, and remembering the
identity (names, versions) that is read once per connection. Identity requests
are optional: a firmware that ignores or refuses them (JK-PB from 15.36 and
its about block) is read without names, and not asked again until the port
reopens; it is never locked out. A poll that gets
no valid answer after its retries yields no state, with the reason: bmslink
never repeats an old reading as if it were new.

Every BMS type goes through this one driver, Modbus ones included (their RTU
frames come from ``bms/modbus_rtu.py``): JK-PB packs fields back to back in a
way a strict Modbus client rejects, and one code path gives every type the same
timeouts, counters and the exact moment a reply was read (the fault-latency
benchmark measures from it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bmslink.bms.base import IDENTITY_KEYS, BmsProtocol, Request
from bmslink.clock import Clock, MonotonicClock
from bmslink.errors import DecodeError
from bmslink.links.serial_port import SerialLink
from bmslink.state import BatteryState

#: Silence after which bytes held for an unfinished frame are not a frame in progress. Many
#: times a character at 9600 baud, and longer than a USB adapter's 16 ms latency timer.
IDLE_GAP_S = 0.05


@dataclass
class PollResult:
    """One address's poll: a state, or None and why."""

    address: int
    state: BatteryState | None
    error: str | None
    #: Driver clock time when the last reply frame of the cycle was complete.
    read_at: float
    #: What a user should know about a good poll: an optional request left unanswered.
    notes: list[str] = field(default_factory=list)


@dataclass
class DriverStats:
    """Counters a user reads when a link misbehaves."""

    polls: int = 0
    good: int = 0
    failed: int = 0
    timeouts: int = 0
    decode_errors: int = 0
    stray_frames: int = 0
    #: Optional (identity) requests the device did not answer, or answered unreadably.
    optional_unanswered: int = 0
    optional_refused: int = 0
    last_error: str | None = None
    by_address_failed: dict[int, int] = field(default_factory=dict)


class BmsDriver:
    """Polls ``addresses`` on ``link`` with ``protocol``."""

    def __init__(
        self,
        protocol: BmsProtocol,
        link: SerialLink,
        addresses: Sequence[int] | None = None,
        *,
        timeout_s: float = 0.5,
        retries: int = 2,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.protocol = protocol
        self.link = link
        self.addresses = list(addresses) if addresses else [protocol.default_address]
        for address in self.addresses:
            protocol.check_address(address)
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        self.timeout_s = timeout_s
        self.retries = retries
        self.clock = clock or MonotonicClock()
        self._sleep = sleep
        self._framer = protocol.reply_framer()
        self._last_tx = float("-inf")
        #: identity fields per address, and the link's open count when they were read
        self._identity: dict[int, tuple[int, dict[str, object]]] = {}
        self.stats = DriverStats()

    @property
    def noise_bytes(self) -> int:
        return self._framer.noise_bytes

    @property
    def bad_frames(self) -> int:
        return self._framer.bad_frames

    # -- one poll --------------------------------------------------------------------------------

    def poll(self, address: int) -> PollResult:
        """Run one poll cycle for ``address``; blocks for at most the cycle's timeouts."""
        self.stats.polls += 1
        self.link.ensure_open()  # a replugged port is a new connection: ask for the names again
        known = self._identity.get(address)
        ask_identity = known is None or known[0] != self.link.opens
        conversation = self.protocol.conversation(address, identity=ask_identity)
        needed: list[bytes] = []  # requests and replies the measurements come from
        optional: list[bytes] = []  # the same for requests a firmware may ignore (identity)
        notes: list[str] = []
        try:
            request = next(conversation)
            while True:
                replies = self._exchange(request)
                if replies is None:
                    if not request.optional:
                        conversation.close()
                        return self._failed(address, self._silence(request))
                    self.stats.optional_unanswered += 1
                    notes.append(f"no answer to {request.what}: read without it")
                    replies = []
                else:
                    (optional if request.optional else needed).extend([request.data, *replies])
                try:
                    request = conversation.send(replies)
                except StopIteration:
                    break
            read_at = self.clock.now()
            state = self._decode(needed, optional, notes)
        except DecodeError as exc:
            self.stats.decode_errors += 1
            return self._failed(address, f"{self.protocol.name} address {address}: {exc}")
        state = self._with_identity(address, state, ask_identity)
        self.stats.good += 1
        return PollResult(address, state, None, read_at, notes)

    def _decode(self, needed: list[bytes], optional: list[bytes], notes: list[str]) -> BatteryState:
        """The state of one cycle; an optional reply the protocol cannot read (an error
        status, a refusal) costs the names, never the measurements."""
        if not optional:
            return self.protocol.decode(needed)
        try:
            return self.protocol.decode(needed + optional)
        except DecodeError as exc:
            state = self.protocol.decode(needed)
            self.stats.optional_refused += 1
            notes.append(f"names not read ({exc})")
            return state

    def cycle(self) -> list[PollResult]:
        """Poll every address once, in order."""
        return [self.poll(address) for address in self.addresses]

    def _silence(self, request: Request) -> str:
        where = f"{self.protocol.name} on {self.link.port}"
        if not self.link.is_open and self.link.last_error:
            return f"{where}: {self.link.last_error}"
        tries = self.retries + 1
        each = f"{self.timeout_s:g} s each"
        return f"{where}: no valid answer to {request.what} ({tries} tries, {each})"

    def _failed(self, address: int, error: str) -> PollResult:
        self.stats.failed += 1
        self.stats.last_error = error
        failed = self.stats.by_address_failed
        failed[address] = failed.get(address, 0) + 1
        return PollResult(address, None, error, self.clock.now())

    def _with_identity(self, address: int, state: BatteryState, asked: bool) -> BatteryState:
        if asked:
            names = {k: getattr(state, k) for k in IDENTITY_KEYS if getattr(state, k) is not None}
            self._identity[address] = (self.link.opens, names)
            return state
        known = self._identity.get(address)
        if known is None:
            return state
        missing = {k: v for k, v in known[1].items() if getattr(state, k) is None}
        return state.merged(missing) if missing else state

    def _exchange(self, request: Request) -> list[bytes] | None:
        """Send ``request`` and collect its reply frames; None after the retries are spent."""
        for _ in range(self.retries + 1):
            gap = self.protocol.request_gap_s - (self.clock.now() - self._last_tx)
            if gap > 0:
                self._sleep(gap)
            self.link.discard_input()
            self._framer.reset()
            if not self.link.write(request.data):
                self._sleep(self.link.read_timeout_s)  # port gone: SerialLink paces the reopen
                continue
            self._last_tx = self.clock.now()
            got = self._collect(request)
            self._last_tx = self.clock.now()  # the gap is bus silence: it starts after the reply
            if got is not None:
                return got
            self.stats.timeouts += 1
        return None

    def _collect(self, request: Request) -> list[bytes] | None:
        deadline = self.clock.now() + self.timeout_s
        got: list[bytes] = []
        prefix = request.reply_prefix
        heard = self.clock.now()
        while self.clock.now() < deadline:
            data = self.link.read()
            if data:
                heard = self.clock.now()
                frames = self._framer.feed(data)
            elif self._framer.pending and self.clock.now() - heard >= IDLE_GAP_S:
                frames = self._framer.idle()  # a false start must not hide the reply behind it
            else:
                continue
            for frame in frames:
                if frame.startswith(prefix):
                    got.append(frame)
                else:
                    self.stats.stray_frames += 1
            if len(got) >= request.replies:
                return got[: request.replies]
        return None

    # -- on a schedule ---------------------------------------------------------------------------

    async def run(
        self,
        on_result: Callable[[PollResult], None],
        interval_s: float = 1.0,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Poll every ``interval_s`` until ``stop``; each result goes to ``on_result`` at once.

        The blocking serial exchange runs in a worker thread, so several ports are
        polled in parallel and the event loop (the sinks' broadcasts) never waits on a BMS.
        """
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            for address in self.addresses:
                result = await asyncio.to_thread(self.poll, address)
                on_result(result)
                if stop.is_set():
                    return
            wait = interval_s - (loop.time() - started)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
