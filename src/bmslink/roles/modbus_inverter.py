"""Poll Seplos V3 packs over Modbus RTU, with the same retry rules as the Pylontech poller.

A read that gets no answer (or a garbled one) is retried after a growing pause;
a Modbus exception is an answer (the device is there and refused) and is not
retried. After ``max_silent`` cycles in a row in which a slave answered nothing,
``SilentBatteryError`` names it with the usual causes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from bmslink.links.modbus import ModbusLinkError, SeplosV3Client
from bmslink.roles.rs485_inverter import SilentBatteryError, backoff_delay, silent_message
from bmslink.state import BatteryState

AsyncSleep = Callable[[float], Awaitable[None]]


class ModbusPoller:
    """``await cycle()`` reads every slave once: a state, or None with ``last_problem`` set."""

    def __init__(
        self,
        client: SeplosV3Client,
        slaves: Sequence[int],
        *,
        retries: int = 2,
        backoff_s: float = 0.1,
        backoff_max_s: float = 2.0,
        max_silent: int = 5,
        sleep: AsyncSleep = asyncio.sleep,
        where: str = "",
    ) -> None:
        if not slaves:
            raise ValueError("poll at least one slave")
        self.client = client
        self.slaves = list(slaves)
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_silent = max_silent
        self.sleep = sleep
        self.where = where
        self.reads = 0
        self.answers = 0
        self.retried = 0
        self.failures: Counter[str] = Counter()
        self.silent_cycles: dict[int, int] = dict.fromkeys(self.slaves, 0)
        self.last_problem: dict[int, str] = {}

    async def cycle(self) -> dict[int, BatteryState | None]:
        return {slave: await self.poll_slave(slave) for slave in self.slaves}

    async def poll_slave(self, slave: int) -> BatteryState | None:
        answered = False
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                await self.sleep(backoff_delay(attempt, self.backoff_s, self.backoff_max_s))
            self.reads += 1
            try:
                state = await self.client.read(slave)
            except ModbusLinkError as exc:
                self.last_problem[slave] = str(exc)
                if exc.exception_code is not None:
                    self.failures[f"exception {exc.exception_code:02X}"] += 1
                    answered = True
                    break
                self.failures["no valid answer"] += 1
                continue
            self.answers += 1
            self.silent_cycles[slave] = 0
            return state
        if answered:
            self.silent_cycles[slave] = 0
            return None
        self.silent_cycles[slave] += 1
        if self.silent_cycles[slave] >= self.max_silent:
            raise SilentBatteryError(self._silence_message(slave))
        return None

    def _silence_message(self, slave: int) -> str:
        return silent_message(
            f"Modbus slave {slave}",
            self.where,
            self.max_silent,
            self.last_problem.get(slave, "no answer"),
            "RS485 A/B not swapped; 19200 baud 8N1 (Seplos V3); the slave id (the pack's "
            "address DIP switches); no other Modbus master on the line (in a Seplos bank the "
            "first pack is the master).",
        )
