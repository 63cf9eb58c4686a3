"""Shared pieces of the roles: events, and the asyncio loop that drives poll()."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import can

#: Events kept per role: a gateway runs for months, its history must not grow forever.
EVENT_HISTORY = 1000


@dataclass(frozen=True, slots=True)
class RoleEvent:
    """Something a user should see in a log: a link came up, went down, was halted."""

    time: float
    kind: str
    detail: str = ""


class Pollable(Protocol):
    def poll(self) -> object: ...


Sleep = Callable[[float], Awaitable[None]]


async def run_polling(
    role: Pollable,
    stop: asyncio.Event | None = None,
    tick_s: float = 0.02,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Drive a role on a real bus: poll, then yield for ``tick_s`` (sleep is injectable)."""
    while stop is None or not stop.is_set():
        role.poll()
        await sleep(tick_s)


def drain(bus: can.BusABC, limit: int = 10_000) -> list[can.Message]:
    """Everything waiting on the bus, without blocking."""
    out: list[can.Message] = []
    while len(out) < limit:
        msg = bus.recv(timeout=0)
        if msg is None:
            break
        out.append(msg)
    return out
