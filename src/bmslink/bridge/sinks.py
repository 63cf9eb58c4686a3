"""The bridge's outputs toward inverters: a CAN profile, Pylontech RS485, Seplos V3 Modbus.

Each wraps a battery role that already exists (issues 2-4), so everything a
sink sends passes that role's guards (CVL > 0, hardware clamp, alarms as
limits where a protocol has no alarm bits). ``update(None, reason)`` makes a
sink go silent at once; the next state brings it back.
"""

from __future__ import annotations

import threading

import can

from bmslink.clock import Clock
from bmslink.limits import HardwareLimits
from bmslink.links.serial_port import SerialLink
from bmslink.profiles.base import Profile
from bmslink.roles.battery import BatteryRole
from bmslink.roles.modbus_battery import ModbusBattery
from bmslink.roles.rs485_battery import PylonResponder, PylonSerialServer
from bmslink.state import BatteryState


class CanSink:
    """Broadcasts the bank in ``profile`` on ``bus``; the inverter's frames are its keep-alive."""

    def __init__(
        self,
        bus: can.BusABC,
        profile: Profile,
        clock: Clock,
        hardware: HardwareLimits,
        *,
        name: str | None = None,
        inverter_timeout_s: float = 10.0,
    ) -> None:
        self.name = name or f"can:{profile.name}"
        self.bus = bus
        self.role = BatteryRole(
            bus, profile, clock, hardware=hardware, inverter_timeout_s=inverter_timeout_s
        )

    def update(self, state: BatteryState | None, reason: str) -> None:
        if state is None:
            self.role.stop(reason)
            return
        self.role.update(state)

    def poll(self) -> None:
        self.role.poll()

    @property
    def inverter_online(self) -> bool | None:
        return self.role.inverter_online

    def close(self) -> None:
        self.bus.shutdown()


class _PolledSink:
    """What the two polled sinks share: the state they answer with, and the inverter's polls
    as its keep-alive.

    The state is answered from another thread (the RS485 server) or the pymodbus server, so
    it carries its own expiry: if the bridge stops pushing (its loop stalled), the sink falls
    silent after ``stale_after_s`` instead of answering with old values, as BatteryRole does.
    """

    def __init__(self, clock: Clock, inverter_timeout_s: float, stale_after_s: float) -> None:
        self.clock = clock
        self.inverter_timeout_s = inverter_timeout_s
        self.stale_after_s = stale_after_s
        self._state: BatteryState | None = None
        self._state_at = float("-inf")
        self._lock = threading.Lock()
        self._requests_seen = 0
        self._last_request = float("-inf")

    def update(self, state: BatteryState | None, reason: str) -> None:
        with self._lock:
            self._state, self._state_at = state, self.clock.now()

    def latest(self) -> BatteryState | None:
        """The state to answer with now; None (silence) once it is older than stale_after_s."""
        with self._lock:
            if self.clock.now() - self._state_at > self.stale_after_s:
                return None
            return self._state

    def _requests(self) -> int:
        raise NotImplementedError

    def poll(self) -> None:
        requests = self._requests()
        if requests != self._requests_seen:
            self._requests_seen = requests
            self._last_request = self.clock.now()

    @property
    def inverter_online(self) -> bool:
        return self.clock.now() - self._last_request <= self.inverter_timeout_s


class PylontechRs485Sink(_PolledSink):
    """Answers a Pylontech RS485 inverter's polls with the bank as one battery at ``address``."""

    def __init__(
        self,
        port: str,
        clock: Clock,
        hardware: HardwareLimits,
        *,
        address: int = 2,
        baudrate: int = 9600,
        inverter_timeout_s: float = 10.0,
        stale_after_s: float = 10.0,
    ) -> None:
        super().__init__(clock, inverter_timeout_s, stale_after_s)
        self.name = f"pylontech-rs485:{port}"
        self.responder = PylonResponder(
            [address],
            lambda adr: self.latest() if adr == address else None,
            clock=clock,
            hardware=hardware,
        )
        self.link = SerialLink(port, baudrate, clock=clock)
        self.server = PylonSerialServer(self.link, self.responder)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.link.open()
        self._thread = threading.Thread(
            target=self.server.serve, args=(self._stop.is_set,), name=self.name, daemon=True
        )
        self._thread.start()

    def _requests(self) -> int:
        return self.responder.requests

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.link.close()


class ModbusSink(_PolledSink):
    """Serves the bank as a Seplos V3 pack (Modbus RTU slave ``slave``) to a polling host."""

    def __init__(
        self,
        port: str,
        clock: Clock,
        hardware: HardwareLimits,
        *,
        slave: int = 1,
        baudrate: int = 19200,
        inverter_timeout_s: float = 10.0,
        stale_after_s: float = 10.0,
    ) -> None:
        super().__init__(clock, inverter_timeout_s, stale_after_s)
        self.name = f"modbus:{port}"
        self.battery = ModbusBattery(
            port,
            [slave],
            lambda s: self.latest() if s == slave else None,
            baudrate=baudrate,
            hardware=hardware,
        )

    async def start(self) -> None:
        await self.battery.start()

    def _requests(self) -> int:
        return sum(self.battery.server.stats.requests.values())

    async def stop(self) -> None:
        await self.battery.stop()
