"""Be the battery: broadcast a profile's frame set and watch the inverter's keep-alive.

The payloads are encoded once per state update, not once per round. A state
update that makes things *less* safe (an alarm raised, an enable flag cleared, a
limit cut by more than 10 %) is put on the wire at once instead of waiting for
the next periodic round. If any frame of a state cannot be encoded (a missing
limit, a value out of range), nothing is broadcast for that state: the inverter
then sees the battery go silent, which is safe, rather than a partial picture.
The same happens when no new state arrives for ``stale_after_s``: the role never
keeps repeating old values. With ``hardware`` set, every outgoing limit is first
clamped to the configured ratings.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping

import can

from bmslink.clock import Clock
from bmslink.errors import EncodeError
from bmslink.limits import HardwareLimits, LimitError
from bmslink.profiles.base import Profile
from bmslink.roles.common import EVENT_HISTORY, RoleEvent, Sleep, drain, run_polling
from bmslink.state import BatteryState

#: Relative cut of CVL/CCL/DCL (or rise of DVL) that triggers an immediate round.
LIMIT_CUT_FRACTION = 0.10


def safety_escalation(old: BatteryState | None, new: BatteryState) -> str | None:
    """Why ``new`` is less safe than ``old`` (a reason string), or None."""
    if old is None:
        return None
    raised = set(new.alarms or ()) - set(old.alarms or ())
    if raised:
        return "alarm raised: " + ", ".join(sorted(raised))
    for flag in ("charge_enable", "discharge_enable"):
        if getattr(old, flag) and not getattr(new, flag):
            return f"{flag} cleared"
    for key in ("charge_voltage_v", "charge_current_a", "discharge_current_a"):
        before, after = getattr(old, key), getattr(new, key)
        if before is None or after is None:
            if before is not None and after is None:
                return f"{key} lost"
            continue
        if after < before * (1 - LIMIT_CUT_FRACTION) or (after == 0 < before):
            return f"{key} cut {before:g} -> {after:g}"
    before, after = old.discharge_voltage_v, new.discharge_voltage_v
    if before is not None and after is not None and after > before * (1 + LIMIT_CUT_FRACTION):
        return f"discharge_voltage_v raised {before:g} -> {after:g}"
    return None


class BatteryRole:
    """Broadcasts ``profile`` on ``bus`` from the latest BatteryState."""

    def __init__(
        self,
        bus: can.BusABC,
        profile: Profile,
        clock: Clock,
        *,
        period_s: float = 1.0,
        inverter_timeout_s: float = 10.0,
        min_gap_s: float = 0.05,
        identity: Mapping[str, str] | None = None,
        stale_after_s: float = 10.0,
        hardware: HardwareLimits | None = None,
    ) -> None:
        self.bus = bus
        self.profile = profile
        self.clock = clock
        self.period_s = period_s
        self.inverter_timeout_s = inverter_timeout_s
        self.min_gap_s = min_gap_s
        self.identity = dict(profile.identity if identity is None else identity)
        self.stale_after_s = stale_after_s
        self.hardware = hardware
        self._last_update = float("-inf")
        self.clamped_updates = 0
        self._specs = profile.frames_from("battery")
        self.state: BatteryState | None = None
        self._messages: list[can.Message] = []
        self._next_due = float("-inf")
        self._last_round = float("-inf")
        self._pending_reason: str | None = None
        self._last_keepalive: float | None = None
        self._inverter_online = False
        self.halted_reason: str | None = None
        self.halts = 0  # counted here: the event history is bounded
        self.last_halt_reason: str | None = None  # kept after the broadcast resumes
        self.events: deque[RoleEvent] = deque(maxlen=EVENT_HISTORY)
        self.frames_sent = 0
        self.rounds = 0
        self.immediate_rounds = 0
        self.keepalives = 0

    # -- state in --------------------------------------------------------------------------------

    def update(self, state: BatteryState) -> None:
        """Take a new state; a safety escalation goes out at once (rate-limited by min_gap_s)."""
        self._last_update = self.clock.now()
        if self.identity:
            state = state.merged(self.identity)
        try:
            if self.hardware is not None:
                state, clamped = self.hardware.clamp(state)
                self.clamped_updates += bool(clamped)
            payloads = [(spec, self.profile.encode_frame(spec, state)) for spec in self._specs]
        except (EncodeError, LimitError) as exc:
            self.state = state
            self._halt(str(exc))
            return
        reason = safety_escalation(self.state, state)
        self.state = state
        if self.halted_reason is not None:
            self.halted_reason = None
            self._event("broadcast_resumed")
        if len(self._messages) != len(payloads):
            self._messages = [
                can.Message(arbitration_id=spec.id, is_extended_id=spec.extended, dlc=len(data))
                for spec, data in payloads
            ]
        # Immutable payloads: interfaces that copy a message on send (the virtual bus
        # deep-copies) then share the bytes instead of copying a bytearray per frame.
        for msg, (_, data) in zip(self._messages, payloads, strict=True):
            msg.data = data  # type: ignore[assignment]
        if reason is not None:
            self._pending_reason = reason
            self.poll()

    # -- wire ------------------------------------------------------------------------------------

    def poll(self) -> int:
        """Read keep-alives, send a round if one is due; returns frames sent."""
        now = self.clock.now()
        self._read(now)
        self._check_inverter(now)
        if self._messages and now - self._last_update > self.stale_after_s:
            self._halt(f"state stale: no update for {now - self._last_update:.1f} s")
        if not self._messages:
            return 0
        if now >= self._next_due:
            # keep a drift-free cadence; when far behind (coarse sim steps) restart it from now
            self._next_due += self.period_s
            if self._next_due <= now:
                self._next_due = now + self.period_s
            self._pending_reason = None
            return self._send_round(now)
        if self._pending_reason is not None and now - self._last_round >= self.min_gap_s:
            self._event("immediate_round", self._pending_reason)
            self._pending_reason = None
            self.immediate_rounds += 1
            return self._send_round(now)
        return 0

    def _halt(self, reason: str) -> None:
        """Stop broadcasting: the inverter sees the battery go silent, which is safe."""
        self._messages = []
        self._pending_reason = None
        if self.halted_reason != reason:
            self.halted_reason = reason
            self.halts += 1
            self.last_halt_reason = reason
            self._event("broadcast_halted", reason)

    def _send_round(self, now: float) -> int:
        for msg in self._messages:
            msg.timestamp = now
            self.bus.send(msg)
        self._last_round = now
        self.rounds += 1
        self.frames_sent += len(self._messages)
        return len(self._messages)

    def _read(self, now: float) -> None:
        for msg in drain(self.bus):
            spec = self.profile.spec(msg.arbitration_id, msg.is_extended_id)
            if spec is not None and spec.sender == "inverter":
                self._last_keepalive = now
                self.keepalives += 1

    def _check_inverter(self, now: float) -> None:
        online = (
            self._last_keepalive is not None
            and now - self._last_keepalive <= self.inverter_timeout_s
        )
        if online != self._inverter_online:
            self._inverter_online = online
            self._event("inverter_online" if online else "inverter_offline")

    @property
    def inverter_online(self) -> bool:
        """True while the inverter's keep-alive arrived within inverter_timeout_s."""
        self._check_inverter(self.clock.now())
        return self._inverter_online

    def _event(self, kind: str, detail: str = "") -> None:
        self.events.append(RoleEvent(self.clock.now(), kind, detail))

    async def run(
        self, stop: asyncio.Event | None = None, tick_s: float = 0.02, sleep: Sleep = asyncio.sleep
    ) -> None:
        await run_polling(self, stop, tick_s, sleep)
