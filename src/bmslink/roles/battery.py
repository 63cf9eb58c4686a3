"""Be the battery: send a profile's frames and watch the inverter's side of the link.

The payloads are encoded once per state update, not once per transmission. A
state update that makes things *less* safe (an alarm raised, an enable flag
cleared, a limit cut by more than 10 %) is put on the wire at once instead of
waiting for the next period. If a required frame of a state cannot be encoded
(a missing limit, a value out of range), nothing is sent for that state: the
inverter then sees the battery go silent, which is safe, rather than a partial
picture. Optional frames (names, counters) the state has no data for are left
out. The same silence follows when no new state arrives for ``stale_after_s``:
the role never keeps repeating old values.

Before encoding, every state passes three guards: a CVL of 0 or below is
refused (Victron discharges at full power on it), limits are clamped to the
configured ``hardware`` ratings, and on profiles without alarm bits (BYD HVS)
an alarm is expressed as a zero current limit so it still stops the inverter.
Given ``source_keys`` (what the source always sends), enable flags its protocol
lacks follow the current limits, and a battery that does not count its modules
is presented as one; a key the source always sends but did not stays missing.

Profiles differ in when frames go out, and the role follows the table: each
frame on its own period (BYD: 2, 10 and 60 s), only in answer to an inverter
request (Pylontech HV, Growatt), or not before the inverter has been heard (BYD).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Collection, Mapping
from typing import Protocol

import can

from bmslink.clock import Clock
from bmslink.errors import EncodeError
from bmslink.limits import HardwareLimits, LimitError, limits_for_alarms, refuse_zero_cvl
from bmslink.profiles.base import FrameSpec, Profile
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


def presented_defaults(state: BatteryState, source_keys: Collection[str] | None) -> BatteryState:
    """Fill what a target profile needs but the source's protocol has no place for.

    Victron- and SMA-style batteries have no enable flags: a zero current limit
    is how they stop the inverter, so a flag their protocol lacks follows its
    limit (never true without a limit above 0). A battery whose protocol does
    not count modules is presented as one module: the count is bmslink's own
    identity as the emulated battery, not a measurement. ``source_keys`` are the
    keys the source always sends (a profile's ``required_keys``): one of those
    that did not arrive (a frame that stopped) is never filled; it stays
    missing and the round is refused. None means the source is unknown:
    nothing is filled.
    """
    if source_keys is None:
        return state
    fill: dict[str, object] = {}
    for flag, limit in (
        ("charge_enable", "charge_current_a"),
        ("discharge_enable", "discharge_current_a"),
    ):
        amps = getattr(state, limit)
        if flag not in source_keys and getattr(state, flag) is None and amps is not None:
            fill[flag] = amps > 0
    if "modules" not in source_keys and state.modules is None:
        fill["modules"] = 1
    return state.merged(fill) if fill else state


class AlarmCarrier(Protocol):
    """What ``guard`` needs to know of the protocol a state leaves on."""

    @property
    def carries_alarms(self) -> bool: ...


def guard(
    state: BatteryState,
    profile: AlarmCarrier,
    hardware: HardwareLimits | None,
    source_keys: Collection[str] | None = None,
) -> tuple[BatteryState, list[str]]:
    """The state as it may leave: CVL > 0, clamped to hardware, alarms as limits.

    Returns the guarded state and the keys changed; raises LimitError for a
    CVL of 0 or below. ``source_keys``: what the source always sends (see
    ``presented_defaults``).
    """
    refuse_zero_cvl(state)
    if state.alarms is None and (source_keys is None or "alarms" in source_keys):
        # Unknown alarms would go out as "none" (limits left open on BYD, "not supported"
        # on SMA/Victron); that is only true of a source whose protocol has no alarms.
        raise EncodeError("alarms are missing: the source sends them, but none arrived")
    changed: list[str] = []
    if hardware is not None:
        state, clamped = hardware.clamp(state)
        changed += clamped
    if not profile.carries_alarms:
        state, zeroed = limits_for_alarms(state)
        changed += zeroed
    state = presented_defaults(state, source_keys)  # after the limits are final
    return state, changed


class BatteryRole:
    """Sends ``profile`` on ``bus`` from the latest BatteryState."""

    def __init__(
        self,
        bus: can.BusABC,
        profile: Profile,
        clock: Clock,
        *,
        period_s: float | None = None,
        inverter_timeout_s: float = 10.0,
        min_gap_s: float = 0.05,
        identity: Mapping[str, str] | None = None,
        stale_after_s: float = 10.0,
        hardware: HardwareLimits | None = None,
        source_keys: Collection[str] | None = None,
    ) -> None:
        self.bus = bus
        self.profile = profile
        self.clock = clock
        #: None: every frame on its own period from the table; a number overrides them all.
        self.period_s = period_s
        self.inverter_timeout_s = inverter_timeout_s
        self.min_gap_s = max(min_gap_s, profile.min_frame_interval_s)
        self.identity = dict(profile.identity if identity is None else identity)
        self.stale_after_s = stale_after_s
        self.hardware = hardware
        #: What the source always sends (e.g. another profile's ``required_keys``);
        #: None: a full BatteryState source, nothing is filled in.
        self.source_keys = None if source_keys is None else frozenset(source_keys)
        self._last_update = float("-inf")
        self.clamped_updates = 0
        self.guarded_keys: list[str] = []  # what the guards changed in the latest state
        self.state: BatteryState | None = None
        self._messages: dict[int, can.Message] = {}  # by id(spec), frames of the current state
        self._specs = [s for s in profile.frames_from("battery") if s.emit]
        self._periodic = [s for s in self._specs if s.period_s is not None]
        self._next_due: dict[int, float] = {id(s): float("-inf") for s in self._periodic}
        self._last_round = float("-inf")
        #: An escalation waiting for min_gap_s: why, and the frames of the state that raised it.
        self._held: tuple[str, dict[int, can.Message]] | None = None
        self._answers: list[FrameSpec] = []
        self._last_keepalive: float | None = None
        self._inverter_online = False
        self.halted_reason: str | None = None
        self.halts = 0  # counted here: the event history is bounded
        self.last_halt_reason: str | None = None  # kept after the broadcast resumes
        self.skipped: dict[str, str] = {}  # optional frames left out: label -> why
        self.events: deque[RoleEvent] = deque(maxlen=EVENT_HISTORY)
        self.frames_sent = 0
        self.rounds = 0
        self.immediate_rounds = 0
        self.answers_sent = 0
        self.keepalives = 0

    # -- state in --------------------------------------------------------------------------------

    def update(self, state: BatteryState) -> None:
        """Take a new state; a safety escalation goes out at once (rate-limited by min_gap_s)."""
        self._last_update = self.clock.now()
        if self.identity:
            state = state.merged(self.identity)
        try:
            state, changed = guard(state, self.profile, self.hardware, self.source_keys)
            self.clamped_updates += bool(changed)
            self.guarded_keys = changed
            encoded = self.profile.encode_round(state)
        except (EncodeError, LimitError) as exc:
            self.state = state
            self._halt(str(exc))
            return
        reason = safety_escalation(self.state, state)
        self.state = state
        if self.halted_reason is not None:
            self.halted_reason = None
            self._event("broadcast_resumed")
        skipped = {spec.label: why for spec, why in encoded.skipped}
        if skipped.keys() != self.skipped.keys():
            left_out = ", ".join(sorted(skipped)) or "none"
            self._event("optional_frames_left_out", left_out)
        self.skipped = skipped
        messages: dict[int, can.Message] = {}
        for spec, data in encoded.frames:
            msg = self._messages.get(id(spec))
            if msg is None:
                msg = can.Message(
                    arbitration_id=spec.id, is_extended_id=spec.extended, dlc=len(data)
                )
            # Immutable payloads: interfaces that copy a message on send (the virtual bus
            # deep-copies) then share the bytes instead of copying a bytearray per frame.
            msg.data = data  # type: ignore[assignment]
            msg.dlc = len(data)
            messages[id(spec)] = msg
        self._messages = messages
        if reason is not None and self._periodic:  # request/response profiles have none
            # Own copies: the next update rewrites self._messages' payloads in place, and the
            # held round must send the state that escalated, even if a calmer one came since.
            held = {
                key: can.Message(
                    arbitration_id=m.arbitration_id,
                    is_extended_id=m.is_extended_id,
                    dlc=m.dlc,
                    data=m.data,
                )
                for key, m in messages.items()
            }
            self._held = (reason, held)
            self.poll()

    # -- wire ------------------------------------------------------------------------------------

    def poll(self) -> int:
        """Read the inverter, answer requests, send frames that are due; returns frames sent."""
        now = self.clock.now()
        self._read(now)
        self._check_inverter(now)
        if self._messages and now - self._last_update > self.stale_after_s:
            self._halt(f"state stale: no update for {now - self._last_update:.1f} s")
        if not self._messages:
            self._answers.clear()
            return 0
        sent = 0
        if self._answers:
            sent += self._send([s for s in self._answers if id(s) in self._messages], now)
            self.answers_sent += bool(sent)
            self._answers.clear()
        if self.profile.battery_waits_for_inverter and not self._inverter_online:
            return sent
        if self._held is not None:
            if now - self._last_round < self.min_gap_s:
                return sent  # the held round goes first, within min_gap_s; due frames wait for it
            reason, held = self._held
            self._held = None
            self._event("immediate_round", reason)
            self.immediate_rounds += 1
            for spec in self._periodic:
                self._next_due[id(spec)] = now + self._period(spec)
            return sent + self._round(self._periodic, now, held)
        due = [s for s in self._periodic if now >= self._next_due[id(s)]]
        if due:
            for spec in due:
                # a drift-free cadence; when far behind (coarse sim steps) restart it from now
                next_due = self._next_due[id(spec)] + self._period(spec)
                self._next_due[id(spec)] = next_due if next_due > now else now + self._period(spec)
            sent += self._round(due, now)
        return sent

    def _period(self, spec: FrameSpec) -> float:
        if self.period_s is not None:
            return self.period_s
        assert spec.period_s is not None
        return spec.period_s

    def stop(self, reason: str) -> None:
        """Go silent now (the bridge's link loss): no frame goes out until the next update."""
        self._halt(reason)

    def _halt(self, reason: str) -> None:
        """Stop sending: the inverter sees the battery go silent, which is safe."""
        self._messages = {}
        self._held = None
        if self.halted_reason != reason:
            self.halted_reason = reason
            self.halts += 1
            self.last_halt_reason = reason
            self._event("broadcast_halted", reason)

    def _round(
        self, specs: list[FrameSpec], now: float, messages: dict[int, can.Message] | None = None
    ) -> int:
        sent = self._send(specs, now, messages)
        if sent:
            self._last_round = now
            self.rounds += 1
        return sent

    def _send(
        self, specs: list[FrameSpec], now: float, messages: dict[int, can.Message] | None = None
    ) -> int:
        """Send ``specs`` from ``messages`` (default: the current state's frames)."""
        messages = self._messages if messages is None else messages
        sent = 0
        for spec in specs:
            msg = messages.get(id(spec))
            if msg is None:
                continue  # an optional frame this state has no data for
            msg.timestamp = now
            self.bus.send(msg)
            sent += 1
        self.frames_sent += sent
        return sent

    def _read(self, now: float) -> None:
        profile = self.profile
        for msg in drain(self.bus):
            spec = profile.spec(msg.arbitration_id, msg.is_extended_id)
            if spec is None or spec.sender != "inverter":
                continue
            self._last_keepalive = now
            self.keepalives += 1
            self._answers += profile.answer_specs(
                msg.arbitration_id, msg.is_extended_id, bytes(msg.data)
            )

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
        """True while an inverter frame arrived within inverter_timeout_s."""
        self._check_inverter(self.clock.now())
        return self._inverter_online

    def _event(self, kind: str, detail: str = "") -> None:
        self.events.append(RoleEvent(self.clock.now(), kind, detail))

    async def run(
        self, stop: asyncio.Event | None = None, tick_s: float = 0.02, sleep: Sleep = asyncio.sleep
    ) -> None:
        await run_polling(self, stop, tick_s, sleep)
