"""Be the inverter: read a battery's frames into a BatteryState and send keep-alives.

Every frame's values expire ``lost_timeout_s`` after that frame was last seen,
so a limit frame that stops arriving makes its limits absent instead of stale;
when no battery frame at all arrived within the timeout the battery is lost
and :meth:`InverterRole.state` returns None.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import can

from bmslink.clock import Clock
from bmslink.errors import DecodeError
from bmslink.profiles.base import Profile
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
        keepalive_period_s: float = 1.0,
        lost_timeout_s: float = 10.0,
    ) -> None:
        self.bus = bus
        self.profile = profile
        self.clock = clock
        self.keepalive_period_s = keepalive_period_s
        self.lost_timeout_s = lost_timeout_s
        self._keepalives = [
            can.Message(
                arbitration_id=spec.id,
                data=profile.encode_frame(spec, BatteryState()),
                is_extended_id=spec.extended,
            )
            for spec in profile.frames_from("inverter")
        ]
        self._latest: dict[str, tuple[float, dict[str, Any]]] = {}  # by frame label
        self._last_frame: float | None = None
        self._online = False
        self.battery_lost_count = 0  # counted here: the event history is bounded
        self._next_keepalive = float("-inf")
        self.events: deque[RoleEvent] = deque(maxlen=EVENT_HISTORY)
        self.frames_received = 0
        self.decode_errors = 0
        self.last_error: str | None = None
        self.keepalives_sent = 0

    def poll(self) -> None:
        """Read what arrived, update battery liveness, send a keep-alive if due."""
        now = self.clock.now()
        for msg in drain(self.bus):
            spec = self.profile.spec(msg.arbitration_id, msg.is_extended_id)
            if spec is None or spec.sender != "battery":
                continue
            try:
                decoded = self.profile.decode(msg.arbitration_id, msg.data, msg.is_extended_id)
            except DecodeError as exc:
                self.decode_errors += 1
                self.last_error = str(exc)
                continue
            self._latest[spec.label] = (now, decoded.fields)
            self._last_frame = now
            self.frames_received += 1
        self._check_battery(now)
        if self._keepalives and now >= self._next_keepalive:
            for msg in self._keepalives:
                msg.timestamp = now
                self.bus.send(msg)
            self.keepalives_sent += 1
            self._next_keepalive = now + self.keepalive_period_s

    def _check_battery(self, now: float) -> None:
        online = self._last_frame is not None and now - self._last_frame <= self.lost_timeout_s
        if online != self._online:
            self._online = online
            self.battery_lost_count += not online
            self.events.append(RoleEvent(now, "battery_online" if online else "battery_lost"))

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
        values: dict[str, Any] = {}
        for seen, fields in self._latest.values():
            if now - seen <= self.lost_timeout_s:
                values.update(fields)
        # fresh lists: a consumer editing its alarms must not change what we hold
        fresh: dict[str, Any] = {
            k: list(v) if isinstance(v, list) else v for k, v in values.items() if k in STATE_KEYS
        }
        return BatteryState(**fresh)

    async def run(
        self, stop: asyncio.Event | None = None, tick_s: float = 0.02, sleep: Sleep = asyncio.sleep
    ) -> None:
        await run_polling(self, stop, tick_s, sleep)
