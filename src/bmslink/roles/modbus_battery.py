"""Be a Seplos V3 battery on a Modbus RTU line: serve live states through the guards.

The register map and the pymodbus server live in ``bms.seplos_v3`` and
``links.modbus``; this role adds what every battery role adds: a state passes
the same guard as on CAN (CVL > 0, limits clamped to the hardware, unknown
alarms refused) and, because a host may read the current limits (0x100F,
0x1010) without the alarm coils, every alarm that stops a direction is also a
zero limit. A state that fails the guard, or none at all, is answered with
exception 04 (slave device failure): never stale or partial data.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bmslink.limits import HardwareLimits
from bmslink.links.modbus import SeplosV3Server, StateSource
from bmslink.roles.battery import guard
from bmslink.roles.rs485_battery import RS485_OUTPUT
from bmslink.state import BatteryState


class ModbusBattery:
    """One Seplos V3 pack per slave id on ``port``, answered from ``source``."""

    def __init__(
        self,
        port: str,
        slaves: Sequence[int],
        source: StateSource,
        *,
        baudrate: int = 19200,
        hardware: HardwareLimits | None = None,
        source_keys: Collection[str] | None = None,
    ) -> None:
        self.source = source
        self.hardware = hardware
        self.source_keys = source_keys
        self.server = SeplosV3Server(port, slaves, self.guarded, baudrate=baudrate)

    def guarded(self, slave: int) -> BatteryState | None:
        """The state as it may leave; raises (and the server answers 04) when it may not."""
        state = self.source(slave)
        if state is None:
            return None
        state, _ = guard(state, RS485_OUTPUT, self.hardware, self.source_keys)
        return state

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    def status(self) -> str:
        stats = self.server.stats
        line = (
            f"requests {sum(stats.requests.values())}, served {stats.served}, "
            f"refused {stats.refused}, for other slaves {stats.other_slaves}, "
            f"bad frames {stats.bad_frames}"
        )
        return line + (f" (last refusal: {stats.last_refusal})" if stats.last_refusal else "")
