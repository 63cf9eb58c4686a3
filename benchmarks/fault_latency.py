#!/usr/bin/env python3
"""Fault to wire: from the read of a BMS reply carrying a protection to CCL = 0 on the CAN bus.

What runs is a user's bridge, not a shortcut: ``BridgeRunner`` built from a
validated ``BridgeConfig`` (one ``jk`` BMS, one ``pylontech`` CAN inverter on a
python-can ``virtual`` bus), run by its own ``run()`` (the driver's
``run(on_result)`` polling in a worker thread, each result handed to
``Bridge.on_reading`` on the event loop, ``bridge.tick()`` every 20 ms). The
only difference from ``bmslink bridge`` is the BMS: a ``SimulatedBmsDevice``
speaking the JK "4E 57" protocol on the other end of a ``NullModem`` PTY pair,
serving a state this script controls (``SimBms(...).state()`` of a 16S pack as
the healthy state; for the fault the same state with ``alarms=["high_voltage"]``,
``charge_enable=False`` and cell 5 at 3.66 V). The driver cannot tell it from a
JK on ``/dev/ttyUSB0``; the script checks that the JK encoding carries the
fault and that the driver decodes ``alarms == ["high_voltage"]``.

Each event: healthy readings reach the bridge (the bridge pushes every reading,
so the role's last state is healthy and the fault is a fresh escalation), then
the device answers the next poll with the fault, then healthy again. ``t_read``
is ``PollResult.read_at`` of the first reply carrying the fault (the driver's
clock when the reply frame was complete, before decoding), taken in
``on_result`` before the bridge sees it. ``t_wire`` is when a listener bus on
the same virtual channel receives the first 0x351 whose CCL bytes (2-3) are 0
after ``t_read``. The virtual bus stamps messages with ``time.time()`` (wall
clock), not the monotonic clock the driver uses, so the listener (a thread
blocked in ``recv``) stamps each frame with ``time.monotonic()`` as soon as
``recv`` returns: the figure includes that thread's wake-up, which a real
inverter does not wait for. For scale, the virtual bus's own stamp (taken in
``send``), moved onto the monotonic clock by the offset between the two
clocks, is printed beside it. Driver, bridge and listener all read
``time.monotonic`` (``bmslink.clock.MonotonicClock``), so the stamps compare.

The role rate-limits rounds to one per ``min_gap_s`` (50 ms for Pylontech):
a fault read within 50 ms after the previous round goes out at the first tick
after the gap. Faults are rare in service, so the device answers with the
fault only once a healthy reading has been pushed after the previous fault's
CCL = 0 frame was received and at least ``min_gap_s`` has passed since the
last 0x351 on the bus; an event whose round was deferred anyway is left out
of the percentiles and counted. In service a fault that lands within 50 ms
after a scheduled 1 s round (about 5 % of them) waits up to 50 ms more plus a
20 ms tick. The first 10 events (imports, first encodes) are not counted.

The BMS is polled every 25.5 ms here (a second is usual) so that 1,000 events
(two polls each) take under a minute; the poll interval is not on the path
measured.

Peers: dbus-serialbattery and the ESPHome BMS-to-CAN configurations put a new
limit on the bus at their next periodic broadcast (about 1 s), so their figure
is bounded below by up to one period after the reading. There is no peer
library to run in this process, so no ratio is printed.

Last line: ``fault-to-wire: p50=X ms p99=Y ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import threading
import time
from dataclasses import dataclass, field

import can

from bmslink.bms.driver import PollResult
from bmslink.bms.registry import get_bms
from bmslink.bridge.config import BridgeConfig, validate
from bmslink.bridge.runner import BridgeRunner, _Source
from bmslink.bridge.sinks import CanSink
from bmslink.clock import Clock, MonotonicClock
from bmslink.sim.bms import SimBms
from bmslink.sim.bms_device import SimulatedBmsDevice
from bmslink.sim.nullmodem import NullModem
from bmslink.sim.pack import Pack
from bmslink.state import BatteryState

POLL_INTERVAL_S = 0.0255
WARMUP_EVENTS = 10
LIMITS_ID = 0x351
FAULT_CELL = 4  # 0-based: cell 5
FAULT_CELL_V = 3.66


def states() -> tuple[BatteryState, BatteryState]:
    """(healthy, fault): a simulated 16S pack's state, and the same with a cell over-voltage."""
    healthy = SimBms(Pack.lfp(16, 280.0, soc=0.6)).state()
    assert healthy.alarms == [] and healthy.charge_enable, "the healthy state is not healthy"
    cells = list(healthy.cells_v or [])
    cells[FAULT_CELL] = FAULT_CELL_V
    fault = healthy.merged(
        {
            "alarms": ["high_voltage"],
            "charge_enable": False,
            "cells_v": cells,
            "cell_max_v": FAULT_CELL_V,
            "cell_max_id": str(FAULT_CELL + 1),
            "voltage_v": round(sum(cells), 3),
        }
    )
    return healthy, fault


def check_encoding(fault: BatteryState) -> None:
    """The JK reply built from ``fault`` decodes to the fault (else the benchmark means nothing)."""
    jk = get_bms("jk")
    request = next(jk.conversation(0, identity=True))
    replies = jk.answer(request.data, lambda address: fault)
    decoded = jk.decode([request.data, *replies])
    assert decoded.alarms == ["high_voltage"], decoded.alarms
    assert decoded.charge_enable is False
    assert decoded.cell_max_v == FAULT_CELL_V, decoded.cell_max_v


@dataclass
class Event:
    t_read: float
    #: The round went out inside on_reading (not deferred to a tick by the rate limit).
    immediate: bool = False


@dataclass
class Wire:
    """0x351 frames seen by the listener: receipt time (monotonic), bus stamp (wall), CCL = 0."""

    frames: list[tuple[float, float, bool]] = field(default_factory=list)
    #: Receipt of the latest 0x351 (any round: the rate limit counts them all).
    last_at: float = float("-inf")
    last_zero_at: float = float("-inf")


class Listener(threading.Thread):
    """Receives on the virtual channel and stamps each 0x351 with time.monotonic() at once."""

    def __init__(self, channel: str, wire: Wire) -> None:
        super().__init__(name="listener", daemon=True)
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.wire = wire
        self.stop = threading.Event()

    def run(self) -> None:
        recv, now, wire = self.bus.recv, time.monotonic, self.wire
        while not self.stop.is_set():
            msg = recv(0.1)
            t = now()
            if msg is None or msg.arbitration_id != LIMITS_ID:
                continue
            zero = msg.data[2] == 0 and msg.data[3] == 0
            wire.frames.append((t, msg.timestamp, zero))
            wire.last_at = t
            if zero:
                wire.last_zero_at = t


class FaultRunner(BridgeRunner):
    """The bridge as ``bmslink bridge`` runs it; on_result also drives and records the events."""

    def __init__(self, config: BridgeConfig, clock: Clock) -> None:
        super().__init__(config, clock=clock)
        self.healthy, self.fault = states()
        self.wire = Wire()
        self.events: list[Event] = []
        self.wanted = 0  # events whose round went out at once, after the warm-up
        self.measured = 0
        self.done = asyncio.Event()
        sink = self.sinks[0]
        assert isinstance(sink, CanSink)
        self.role = sink.role
        #: A healthy reading was pushed after the last fault went out: the next may be a fault.
        self.armed = False
        #: The device answers with the fault until the bridge has seen it.
        self.faulted = False
        self.unexpected: list[str] = []

    def answer(self, address: int) -> BatteryState:
        """The simulated device's source (its thread): the fault once armed and past the gap."""
        if not self.faulted and self.armed:
            # a fault read < min_gap_s after the previous round would wait for the rate limit
            self.faulted = time.monotonic() - self.wire.last_at >= self.role.min_gap_s
        return self.fault if self.faulted else self.healthy

    def on_result(self, source: _Source, result: PollResult) -> None:
        state = result.state
        if state is None:
            self.unexpected.append(f"poll failed: {result.error}")
            super().on_result(source, result)
            return
        if not state.alarms:
            super().on_result(source, result)
            wire = self.wire
            answered = not self.events or wire.last_zero_at > self.events[-1].t_read
            # before the bridge's first round the gap cannot be judged: wait for it
            self.armed = answered and self.bridge.output.phase == "normal" and bool(wire.frames)
            return
        if state.alarms != ["high_voltage"] or state.charge_enable is not False:
            self.unexpected.append(f"fault decoded as {state.alarms}, {state.charge_enable}")
        self.events.append(Event(result.read_at))
        rounds = self.role.immediate_rounds
        super().on_result(source, result)
        immediate = self.events[-1].immediate = self.role.immediate_rounds > rounds
        self.faulted = self.armed = False
        self.measured += immediate and len(self.events) > WARMUP_EVENTS
        if self.measured >= self.wanted:
            self.done.set()


def build(channel: str, port: str) -> FaultRunner:
    config = validate(
        {
            "hardware": {"max_charge_current_a": 100.0, "max_discharge_current_a": 100.0},
            "bms": [
                {
                    "name": "pack1",
                    "type": "jk",
                    "port": port,
                    "poll_interval_s": POLL_INTERVAL_S,
                    "max_charge_current_a": 100.0,
                    "max_discharge_current_a": 100.0,
                }
            ],
            "inverter": [
                {"kind": "can", "profile": "pylontech", "interface": "virtual", "channel": channel}
            ],
        },
        "fault_latency.py",
    )
    return FaultRunner(config, MonotonicClock())


async def measure(runner: FaultRunner, events: int) -> None:
    runner.wanted = events
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop, tick_s=0.02))
    try:
        await asyncio.wait_for(runner.done.wait(), timeout=events * 0.5 + 30)
    finally:
        stop.set()
        await task


def clock_offset() -> tuple[float, float]:
    """(time.monotonic(), time.time() - time.monotonic()) from the tightest of paired reads."""
    best = (float("inf"), 0.0, 0.0)
    for _ in range(200):
        a = time.monotonic()
        w = time.time()
        b = time.monotonic()
        best = min(best, (b - a, (a + b) / 2, w - (a + b) / 2))
    return best[1], best[2]


def match(
    events: list[Event], wire: Wire, offsets: tuple[tuple[float, float], tuple[float, float]]
) -> tuple[list[float], list[float]]:
    """Per event (ms): receipt - t_read, and the bus's send stamp - t_read.

    ``offsets``: (monotonic time, wall - monotonic) at the start and the end; the
    offset between them is interpolated (NTP may slew the wall clock meanwhile).
    """
    (t0, off0), (t1, off1) = offsets
    slope = (off1 - off0) / (t1 - t0)
    zeros = [(t, stamp) for t, stamp, zero in wire.frames if zero]
    received, sent = [], []
    i = 0
    for event in events:
        while i < len(zeros) and zeros[i][0] <= event.t_read:
            i += 1
        if i == len(zeros):
            raise SystemExit(f"no CCL = 0 frame after the fault read at {event.t_read:.4f}")
        t, stamp = zeros[i]
        received.append((t - event.t_read) * 1000)
        offset = off0 + slope * (t - t0)
        sent.append((stamp - offset - event.t_read) * 1000)
        i += 1
    return received, sent


def pct(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted samples."""
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="faults measured (default 1000)")
    args = parser.parse_args()
    if args.events < 1:
        parser.error("--events must be at least 1")
    check_encoding(states()[1])
    channel = f"bench-fault-{os.getpid()}"
    jk = get_bms("jk")
    start = time.perf_counter()
    with NullModem() as modem:
        runner = build(channel, modem.b_path)
        device = SimulatedBmsDevice(jk, modem.a_path, runner.answer)
        listener = Listener(channel, runner.wire)
        device.start()
        listener.start()
        try:
            before = clock_offset()
            asyncio.run(measure(runner, args.events))
            time.sleep(0.1)  # the last round's frames reach the listener
            after = clock_offset()
        finally:
            listener.stop.set()
            listener.join(5)
            listener.bus.shutdown()
            device.stop()
            runner.close()
    wall = time.perf_counter() - start
    if device.stats.encode_errors or runner.unexpected:
        sys.exit(f"unexpected: {device.stats.last_encode_error} {runner.unexpected[:3]}")

    received_all, sent_all = match(runner.events, runner.wire, (before, after))
    measured = list(zip(runner.events, received_all, sent_all, strict=True))[WARMUP_EVENTS:]
    received = [r for e, r, _ in measured if e.immediate]
    sent = [s for e, _, s in measured if e.immediate]
    deferred = [r for e, r, _ in measured if not e.immediate]
    ordered = sorted(received)
    p50, p90, p99 = (pct(ordered, q) for q in (0.5, 0.9, 0.99))
    s50, s99 = pct(sorted(sent), 0.5), pct(sorted(sent), 0.99)
    print(
        f"{len(received)} faults (+{WARMUP_EVENTS} warm-up), JK sim on a PTY polled every "
        f"{POLL_INTERVAL_S * 1000:g} ms, pylontech on a virtual CAN bus; {wall:.1f} s; "
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs "
        f"(load average {os.getloadavg()[0]:.2f})"
    )
    print(
        f"  reply read -> 0x351 CCL=0 received: p50 {p50:.2f} ms, p90 {p90:.2f} ms, "
        f"p99 {p99:.2f} ms, max {ordered[-1]:.2f} ms, count {len(ordered)}"
    )
    print(
        f"  reply read -> 0x351 handed to the bus (its send stamp): "
        f"p50 {s50:.2f} ms, p99 {s99:.2f} ms"
    )
    if deferred:
        print(
            f"  left out: {len(deferred)} faults read < 50 ms after the previous round (this "
            f"script's pace), sent at the next tick: max {max(deferred):.2f} ms"
        )
    else:
        print("  no fault was deferred by the 50 ms rate limit")
    print("  peers (dbus-serialbattery, esphome): next periodic broadcast, up to ~1000 ms")
    print(f"fault-to-wire: p50={p50:.2f} ms p99={p99:.2f} ms")


if __name__ == "__main__":
    main()
