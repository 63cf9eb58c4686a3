"""Be the inverter: read a battery's frames into a BatteryState and keep the link alive.

Every frame's values expire on their own, ``frame_expiry_s`` (10 s, or 2.5
periods for slow frames such as BYD's 60 s alarms) after that frame was last
seen, so a limit frame that stops arriving makes its limits absent instead of
stale. The battery is lost when none of the profile's liveness frames (any
battery frame, or SMA's 0x355) arrived within ``lost_timeout_s`` (the profile's:
SMA waits 60 s); :meth:`InverterRole.state` then returns None. The two are
apart on purpose: a Sunny Island tolerates 60 s without 0x355, but limits
that stopped arriving are not kept for 60 s.

The role sends the profile's inverter frames on their periods: keep-alives,
and for request/response profiles the requests (Pylontech HV's 0x4200,
Growatt's 0x301). Frames that carry values (the Sunny Island's 0x305 echoes the
battery's voltage and SoC) are encoded from what the battery last said; a frame
whose values are not known yet is left out rather than filled with guesses.
Inverter frames without a period (BYD's "identify yourself") go out once at start.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import can

from bmslink.clock import Clock
from bmslink.errors import DecodeError, EncodeError
from bmslink.profiles.base import AlarmBits, AlarmPairs, FrameSpec, Profile
from bmslink.profiles.expiry import FRAME_EXPIRY_S, frame_expiry, frame_key, fresh_state
from bmslink.roles.common import EVENT_HISTORY, RoleEvent, Sleep, drain, run_polling
from bmslink.state import STATE_KEYS, BatteryState


class InverterRole:
    """Consumes ``profile`` frames from ``bus`` and keeps the battery's link alive."""

    def __init__(
        self,
        bus: can.BusABC,
        profile: Profile,
        clock: Clock,
        *,
        keepalive_period_s: float | None = None,
        lost_timeout_s: float | None = None,
        frame_expiry_s: float = FRAME_EXPIRY_S,
    ) -> None:
        self.bus = bus
        self.profile = profile
        self.clock = clock
        #: None: each inverter frame on its table period; a number overrides them all.
        self.keepalive_period_s = keepalive_period_s
        self.lost_timeout_s = profile.lost_timeout_s if lost_timeout_s is None else lost_timeout_s
        self.frame_expiry_s = frame_expiry_s
        self._outgoing = [s for s in profile.frames_from("inverter") if s.emit]
        # Keep-alives and polls carry nothing from the state: encoded once, not per send.
        self._fixed = {
            id(s): profile.encode_frame(s, BatteryState())
            for s in self._outgoing
            if not _reads_state(s)
        }
        self._next_send: dict[int, float] = {id(s): float("-inf") for s in self._outgoing}
        self._sent_once: set[int] = set()
        self._liveness = set(profile.liveness_ids)
        self._latest: dict[str, tuple[float, FrameSpec, dict[str, Any]]] = {}  # by frame label
        self._expired: set[str] = set()
        self._last_frame: float | None = None
        self._online = False
        self.battery_lost_count = 0  # counted here: the event history is bounded
        self.events: deque[RoleEvent] = deque(maxlen=EVENT_HISTORY)
        self.frames_received = 0
        self.decode_errors = 0
        self.unknown_frames = 0
        self.last_error: str | None = None
        self.keepalives_sent = 0
        self.frames_sent = 0
        self.frames_left_out = 0

    def poll(self) -> None:
        """Read what arrived, update battery liveness, send inverter frames that are due."""
        now = self.clock.now()
        profile = self.profile
        for msg in drain(self.bus):
            spec = profile.spec(msg.arbitration_id, msg.is_extended_id)
            if spec is None:
                self.unknown_frames += 1
                continue
            if spec.sender != "battery":
                continue
            try:
                decoded = profile.decode(msg.arbitration_id, msg.data, msg.is_extended_id)
            except DecodeError as exc:
                self.decode_errors += 1
                self.last_error = str(exc)
                continue
            key = frame_key(decoded.spec)
            self._latest[key] = (now, decoded.spec, decoded.fields)
            self._expired.discard(key)
            if not self._liveness or decoded.spec.id in self._liveness:
                self._last_frame = now
            self.frames_received += 1
        self._check_battery(now)
        self._send_due(now)

    def _send_due(self, now: float) -> None:
        sent_round = False
        echo: BatteryState | None = None
        for spec in self._outgoing:
            if spec.period_s is None:
                if id(spec) in self._sent_once:
                    continue
                self._sent_once.add(id(spec))
            elif now < self._next_send[id(spec)]:
                continue
            else:
                period = self.keepalive_period_s or spec.period_s
                self._next_send[id(spec)] = now + period
            data = self._fixed.get(id(spec))
            if data is None:
                if echo is None:
                    echo = self.state() or BatteryState()
                try:
                    data = self.profile.encode_frame(spec, echo)
                except EncodeError:
                    self.frames_left_out += 1
                    continue
            self.bus.send(
                can.Message(
                    arbitration_id=spec.id,
                    data=data,
                    is_extended_id=spec.extended,
                    timestamp=now,
                )
            )
            self.frames_sent += 1
            sent_round = True
        self.keepalives_sent += sent_round

    def _check_battery(self, now: float) -> None:
        online = self._last_frame is not None and now - self._last_frame <= self.lost_timeout_s
        if online != self._online:
            self._online = online
            self.battery_lost_count += not online
            self.events.append(RoleEvent(now, "battery_online" if online else "battery_lost"))
        for key, (seen, spec, _) in self._latest.items():
            if key not in self._expired and now - seen > frame_expiry(spec, self.frame_expiry_s):
                self._expired.add(key)
                if online:
                    self.events.append(RoleEvent(now, "frame_lost", f"{key} {spec.name}"))

    @property
    def battery_online(self) -> bool:
        self._check_battery(self.clock.now())
        return self._online

    def state(self) -> BatteryState | None:
        """The battery as last heard, from fresh frames only; None when the battery is lost."""
        now = self.clock.now()
        self._check_battery(now)
        if not self._online:
            return None
        state = fresh_state(self._latest, now, self.frame_expiry_s)
        return state if state is not None else BatteryState()

    async def run(
        self, stop: asyncio.Event | None = None, tick_s: float = 0.02, sleep: Sleep = asyncio.sleep
    ) -> None:
        await run_polling(self, stop, tick_s, sleep)


def _reads_state(spec: FrameSpec) -> bool:
    """Whether a frame's payload depends on the state (the SI's echo frames do)."""
    return any(
        getattr(f, "key", None) in STATE_KEYS
        or getattr(f, "into", None) is not None
        or getattr(f, "derive", None) is not None
        or getattr(f, "source", None) is not None
        or isinstance(f, AlarmBits | AlarmPairs)
        for f in spec.fields
    )
