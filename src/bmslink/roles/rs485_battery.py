"""Be the battery on an RS485 line: answer an inverter's Pylontech polls from live states.

``PylonResponder`` is the pure part (request bytes in, answer bytes or silence
out) and ``PylonSerialServer`` runs it on a serial port. What it answers:

- a frame for an address it does not serve: silence (another pack on the bus owns it);
- a frame for its address with a bad CHKSUM / LCHKSUM: RTN 02 / 03;
- an unknown command: RTN 04; a malformed INFO: RTN 05; a module it does not have: RTN 90;
- no fresh state for the module (source stale or absent), or a state that cannot be
  put on the wire (a missing limit, CVL of 0): silence, counted with the reason. An
  inverter reads silence as "battery lost", which is safe; an error code or a
  made-up value might not be read that way.

VER is not checked: inverters send 20, 25 and 28 and real packs answer them all.
Before encoding, each state passes the same guard as the CAN battery role (CVL
> 0, limits clamped to the hardware, unknown alarms refused); so does the bank
the V3.5 system commands answer with, and 0x47's current limits are clamped too. Because an inverter
may poll only 0x42 and 0x92 and never see 0x44, every alarm that stops a
direction is also expressed as a zero current limit in 0x92/0x63.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

from bmslink.bank import bank_of
from bmslink.clock import Clock, MonotonicClock
from bmslink.errors import EncodeError
from bmslink.limits import HardwareLimits, LimitError
from bmslink.links.serial_port import SerialLink
from bmslink.roles.battery import guard
from bmslink.roles.common import EVENT_HISTORY, RoleEvent
from bmslink.rs485.frame import AsciiFramer, FrameError, Rtn, parse_frame
from bmslink.rs485.pylontech import (
    ALL_MODULES,
    CID1_BATTERY,
    COMMANDS,
    Answerer,
    Command,
    Identity,
    SystemParameters,
    answer_frame,
    error_frame,
)
from bmslink.state import BatteryState

#: address -> the state to answer with now; None: no fresh data for it
StateSource = Callable[[int], BatteryState | None]
#: Commands that describe the whole system (V3.5): answered from the bank of all modules.
SYSTEM_COMMANDS = frozenset(
    {Command.SYSTEM_BASIC, Command.SYSTEM_ANALOG, Command.SYSTEM_ALARM, Command.SYSTEM_MANAGEMENT}
)


@dataclass(frozen=True)
class _Rs485Output:
    """An RS485 protocol as ``guard`` sees it: alarms also go out as zero limits."""

    carries_alarms: bool = False


#: An inverter may poll the limits without the alarms, so alarms always become limits too.
RS485_OUTPUT = _Rs485Output()


def system_state(modules: Sequence[BatteryState]) -> BatteryState:
    """The whole system as one state: the bank's measurements, its most careful limits.

    Current limits add up over the modules (parallel packs); CVL is the lowest and
    DVL the highest any module asks for; a direction is enabled only when every
    module enables it; alarms and warnings are merged.
    """
    if len(modules) == 1:
        return modules[0]
    out: dict[str, object] = {}

    def numbers(key: str) -> list[float] | None:
        values = [getattr(m, key) for m in modules]
        return None if any(v is None for v in values) else values

    def flags(key: str) -> list[bool] | None:
        values = [getattr(m, key) for m in modules]
        return None if any(v is None for v in values) else values

    combine: dict[str, Callable[[list[float]], float]] = {
        "charge_current_a": sum,
        "discharge_current_a": sum,
        "charge_voltage_v": min,
        "discharge_voltage_v": max,
        "soh_pct": min,
    }
    for key, pick in combine.items():
        values = numbers(key)
        if values is not None:
            out[key] = pick(values)
    for key, every in (
        ("charge_enable", True),
        ("discharge_enable", True),
        ("force_charge", False),
        ("full_charge_request", False),
    ):
        bits = flags(key)
        if bits is not None:
            out[key] = all(bits) if every else any(bits)
    for key in ("alarms", "warnings"):
        lists: list[list[str] | None] = [getattr(m, key) for m in modules]
        if all(names is not None for names in lists):
            out[key] = sorted({name for names in lists for name in names or ()})
    return bank_of(modules).merged(out)


class PylonResponder:
    """Answers Pylontech RS485 requests for ``addresses`` from ``source``."""

    def __init__(
        self,
        addresses: Sequence[int],
        source: StateSource,
        *,
        clock: Clock | None = None,
        identity: Identity | None = None,
        parameters: SystemParameters | None = None,
        hardware: HardwareLimits | None = None,
        source_keys: Collection[str] | None = None,
        serial_prefix: str = "BMSLINK",
    ) -> None:
        if not addresses:
            raise ValueError("serve at least one address")
        for adr in addresses:
            if not 1 <= adr <= 0xFE:
                raise ValueError(f"address {adr} is outside 1..254 (0 and 255 are reserved)")
        self.addresses = sorted(set(addresses))
        self.source = source
        self.clock = clock or MonotonicClock()
        self.identity = identity or Identity()
        if parameters is not None and hardware is not None:
            # 0x47's current limits leave bmslink too: never above the ratings
            parameters = replace(
                parameters,
                charge_current_a=min(parameters.charge_current_a, hardware.max_charge_current_a),
                discharge_current_a=min(
                    parameters.discharge_current_a, hardware.max_discharge_current_a
                ),
            )
        self.answerer = Answerer(self.identity, parameters)
        self.hardware = hardware
        self.source_keys = source_keys
        self.serial_prefix = serial_prefix
        self.requests = 0
        self.answered = 0
        self.not_ours = 0
        self.silent: Counter[str] = Counter()  # why a request of ours got no answer
        self.errors: Counter[int] = Counter()  # RTN codes sent
        self.by_command: Counter[int] = Counter()
        self.last_silence: str | None = None
        self.events: deque[RoleEvent] = deque(maxlen=EVENT_HISTORY)

    # -- the request path ------------------------------------------------------------------------

    def handle(self, raw: bytes) -> bytes | None:
        """The answer to one candidate frame (``~`` ... ``\\r``), or None for silence."""
        try:
            frame = parse_frame(raw)
        except FrameError as exc:
            if exc.adr in self.addresses:
                self.requests += 1
                return self._error(exc.adr, exc.rtn, str(exc))
            self.not_ours += 1
            return None
        if frame.adr not in self.addresses:
            self.not_ours += 1
            return None
        self.requests += 1
        if frame.cid1 != CID1_BATTERY:
            return self._error(frame.adr, Rtn.CID2_INVALID, f"CID1 {frame.cid1:02X} is not 46")
        spec = COMMANDS.get(frame.cid2)
        if spec is None:
            return self._error(frame.adr, Rtn.CID2_INVALID, f"unknown command {frame.cid2:02X}")
        command = spec.command
        self.by_command[command] += 1
        if spec.request_info == "none" or not frame.info:
            value = frame.adr
        elif len(frame.info) == 1:
            value = frame.info[0]
        else:
            return self._error(
                frame.adr,
                Rtn.COMMAND_FORMAT_ERROR,
                f"command {command:02X} takes one INFO byte, got {len(frame.info)}",
            )
        group = [a for a in self.addresses if a >> 4 == frame.adr >> 4]
        if command in SYSTEM_COMMANDS:
            wanted = group
        elif value == ALL_MODULES:
            if not spec.all_modules or frame.adr & 0x0F != 2:
                return self._error(
                    frame.adr,
                    Rtn.COMMAND_FORMAT_ERROR,
                    f"command {command:02X} for all modules (FF) at address {frame.adr:02X}",
                )
            wanted = group
        elif value in group:
            wanted = [value]
        else:
            return self._error(frame.adr, Rtn.ADR_ERROR, f"no module {value:02X} here")
        states = self._states(wanted)
        if states is None:
            return None
        if command in SYSTEM_COMMANDS and command != Command.SYSTEM_BASIC and len(states) > 1:
            try:  # the merged alarms stop the whole bank (issue 5 refines the aggregation)
                bank, _ = guard(system_state(states), RS485_OUTPUT, self.hardware)
            except (EncodeError, LimitError) as exc:
                self._silence(f"0x{command:02X}: {exc}")
                return None
            states = [bank]
        answer_value = len(states) if value == ALL_MODULES else value
        try:
            info = self.answerer.info(command, answer_value, states)
        except EncodeError as exc:
            self._silence(f"0x{command:02X}: {exc}")
            return None
        self.answered += 1
        return answer_frame(frame, info, self.identity).encode()

    def _states(self, addresses: Sequence[int]) -> list[BatteryState] | None:
        out: list[BatteryState] = []
        for adr in addresses:
            state = self.source(adr)
            if state is None:
                self._silence(f"no fresh state for address {adr:02X}")
                return None
            if state.serial is None:
                state = state.merged({"serial": f"{self.serial_prefix}{adr:03d}"})
            try:
                state, _ = guard(state, RS485_OUTPUT, self.hardware, self.source_keys)
            except (EncodeError, LimitError) as exc:
                self._silence(f"address {adr:02X}: {exc}")
                return None
            out.append(state)
        return out

    def _error(self, adr: int, rtn: Rtn, why: str) -> bytes:
        self.errors[rtn] += 1
        self._event("error_answer", f"{rtn.name} to {adr:02X}: {why}")
        return error_frame(adr, rtn, self.identity).encode()

    def _silence(self, why: str) -> None:
        kind = why.split(":")[0] if ":" in why else why
        self.silent[kind] += 1
        if why != self.last_silence:
            self._event("silent", why)
        self.last_silence = why

    def _event(self, kind: str, detail: str) -> None:
        self.events.append(RoleEvent(self.clock.now(), kind, detail))


class PylonSerialServer:
    """Runs a responder on a serial port: read, cut frames, answer.

    A frame that stays unfinished for ``idle_reset_s`` (a sender that stopped in
    the middle) is dropped, so that the next good frame is read.
    """

    def __init__(
        self, link: SerialLink, responder: PylonResponder, *, idle_reset_s: float = 0.5
    ) -> None:
        self.link = link
        self.responder = responder
        self.framer = AsciiFramer()
        self.idle_reset_s = idle_reset_s
        self._last_byte = float("-inf")
        self.failed_writes = 0

    def serve_once(self) -> int:
        """Handle what arrived within the link's read timeout; returns answers sent."""
        data = self.link.read()
        now = self.link.clock.now()
        if not data:
            if self.framer.pending and now - self._last_byte > self.idle_reset_s:
                self.framer.reset()
            return 0
        self._last_byte = now
        sent = 0
        for raw in self.framer.feed(data):
            answer = self.responder.handle(raw)
            if answer is None:
                continue
            if self.link.write(answer):
                sent += 1
            else:
                self.failed_writes += 1
        return sent

    def serve(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            self.serve_once()
