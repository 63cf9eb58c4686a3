"""End to end: simulated JK and Daly on PTYs -> drivers -> bridge -> Pylontech CAN -> inverter role.

Everything is the code a user runs (``bmslink bridge``'s runner); only the BMSs
are simulated, on PTY pairs, and the CAN bus is python-can's virtual one. Real
time passes here (serial I/O), so the checks wait for conditions with generous
bounds; the link-loss *timing* is tested with an injected clock in test_link_loss.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import can
import pytest

from bmslink.bridge.config import validate
from bmslink.bridge.runner import BridgeRunner
from bmslink.profiles import get_profile
from bmslink.roles import InverterRole

_channels = itertools.count()


def config(channel: str) -> dict[str, object]:
    return {
        "bank": {"series_cells": 16},
        "hardware": {"max_charge_current_a": 150, "max_discharge_current_a": 150},
        "link_loss": {"silent_after_s": 1.0, "safe_hold_s": 1.0, "pack_stale_s": 1.0},
        # rises reach the sinks at once: recovery timing is tests/control's, not this test's
        "control": {"current_recovery_hold_s": 0, "current_recovery_a_per_s": 1000},
        "bms": [
            {
                "name": "jk",
                "type": "jk",
                "port": "sim",
                "poll_interval_s": 0.1,
                "timeout_s": 0.1,
                "retries": 1,
                "max_charge_current_a": 60,
                "max_discharge_current_a": 70,
            },
            {
                "name": "daly",
                "type": "daly",
                "port": "sim",
                "poll_interval_s": 0.1,
                "timeout_s": 0.1,
                "retries": 1,
                "max_charge_current_a": 60,
                "max_discharge_current_a": 70,
            },
        ],
        "inverter": [
            {"kind": "can", "profile": "pylontech", "interface": "virtual", "channel": channel}
        ],
    }


async def wait_for(
    condition: Callable[[], bool],
    runner: BridgeRunner,
    inverter: InverterRole,
    limit_s: float = 10.0,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(
                f"timed out; phase {runner.bridge.output.phase}, notes {runner.bridge.bank.notes}"
            )
        await asyncio.sleep(0.02)
        inverter.poll()


@pytest.mark.asyncio
async def test_two_simulated_bmss_in_parallel_reach_the_inverter_and_fail_safe() -> None:
    channel = f"e2e-{next(_channels)}"
    cfg = validate(config(channel), "test")
    runner = BridgeRunner(cfg, sim_speed=0.0)
    inverter_bus = can.Bus(interface="virtual", channel=channel)
    inverter = InverterRole(inverter_bus, get_profile("pylontech"), runner.clock)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        # both packs combined: limits are the two packs' configured maxima summed
        def both() -> bool:
            seen = inverter.state()
            return (
                seen is not None
                and seen.charge_current_a == 120.0
                and seen.discharge_current_a == 140.0
            )

        await wait_for(both, runner, inverter)
        bank = runner.bridge.output.state
        assert bank is not None and bank.modules == 2 and bank.packs is not None
        live = runner.live
        assert live is not None
        truth = [live.state(0), live.state(1)]
        assert bank.voltage_v == pytest.approx(sum(t.voltage_v or 0 for t in truth) / 2, abs=0.15)
        assert bank.cell_max_id is not None and bank.cell_max_id.startswith("m")

        # Daly stops answering: the bank is derated to the JK pack alone and warns
        runner.devices[1].faults.silent = True

        def derated() -> bool:
            seen = inverter.state()
            return seen is not None and seen.charge_current_a == 60.0

        await wait_for(derated, runner, inverter)
        assert runner.bridge.output.phase == "normal"
        assert any("daly lost" in note for note in runner.bridge.bank.notes)

        # both silent: zero limits at once, then the alarm, then the broadcast stops
        runner.devices[0].faults.silent = True
        await wait_for(lambda: runner.bridge.output.phase == "derated", runner, inverter)
        seen = inverter.state()
        await wait_for(lambda: (inverter.state() or seen).charge_current_a == 0, runner, inverter)  # type: ignore[union-attr]
        await wait_for(lambda: runner.bridge.output.phase == "safe", runner, inverter)
        await wait_for(lambda: runner.bridge.output.phase == "lost", runner, inverter)
        sent = runner.sinks[0].role.frames_sent  # type: ignore[attr-defined]
        await asyncio.sleep(0.3)
        assert runner.sinks[0].role.frames_sent == sent  # type: ignore[attr-defined]

        # the BMSs answer again: back without a restart
        runner.devices[0].faults.silent = False
        runner.devices[1].faults.silent = False
        await wait_for(
            lambda: (
                runner.bridge.output.phase == "normal" and len(runner.bridge.bank.combined) == 2
            ),
            runner,
            inverter,
        )
        await wait_for(both, runner, inverter)
    finally:
        stop.set()
        await task
        runner.close()
        inverter_bus.shutdown()


@pytest.mark.asyncio
async def test_a_bms_that_ignores_its_identity_request_is_bridged_and_noted() -> None:
    """JK-PB >= 15.36 never answers the about read: the pack is bridged, the event log says why
    it has no names."""
    from bmslink.bms.jbd import HARDWARE, read_request

    channel = f"e2e-{next(_channels)}"
    data = config(channel)
    data["bms"] = [{**data["bms"][0], "name": "pack1", "type": "jbd"}]  # type: ignore[index]
    runner = BridgeRunner(validate(data, "test"), sim_speed=0.0)
    runner.devices[0].faults.overrides[read_request(HARDWARE)] = []
    inverter_bus = can.Bus(interface="virtual", channel=channel)
    inverter = InverterRole(inverter_bus, get_profile("pylontech"), runner.clock)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await wait_for(lambda: inverter.state() is not None, runner, inverter)
        assert runner.bridge.output.phase == "normal"
        notes = [e.detail for e in runner.bridge.events if e.kind == "pack_note"]
        assert any(n.startswith("pack1: no answer to 0x05") for n in notes), notes
    finally:
        stop.set()
        await task
        runner.close()
        inverter_bus.shutdown()
