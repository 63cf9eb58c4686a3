"""Modbus roles: the battery's guards on the Seplos V3 map, and the poller's retry rules."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bmslink.limits import HardwareLimits
from bmslink.links.modbus import ModbusLinkError, SeplosV3Client
from bmslink.roles.modbus_battery import ModbusBattery
from bmslink.roles.modbus_inverter import ModbusPoller
from bmslink.roles.rs485_inverter import SilentBatteryError
from bmslink.sim.nullmodem import NullModem
from bmslink.state import BatteryState

PACK = BatteryState(
    voltage_v=53.2,
    current_a=-10.5,
    remaining_ah=150.0,
    capacity_ah=280.0,
    soc_pct=53.6,
    soh_pct=99.0,
    cycles=42,
    charge_current_a=120.0,
    discharge_current_a=140.0,
    charge_voltage_v=55.2,
    cells_v=[3.325] * 16,
    temperatures_c=[21.0, 21.5, 22.0, 22.5],
    alarms=[],
    warnings=[],
)


@pytest.fixture
def modem() -> Iterator[NullModem]:
    with NullModem() as m:
        yield m


async def serve_and_read(
    modem: NullModem, states: dict[int, BatteryState | None], baud: int = 19200, **kw: object
) -> dict[int, BatteryState | ModbusLinkError]:
    battery = ModbusBattery(modem.a_path, sorted(states), states.get, baudrate=baud, **kw)  # type: ignore[arg-type]
    await battery.start()
    try:
        async with SeplosV3Client(modem.b_path, baudrate=baud, timeout_s=0.3) as client:
            return await client.read_many(sorted(states))
    finally:
        await battery.stop()


@pytest.mark.parametrize("baud", [9600, 115200])
async def test_serve_and_poll_interoperate(modem: NullModem, baud: int) -> None:
    second = PACK.merged({"current_a": 4.25, "soc_pct": 61.0, "remaining_ah": 170.8})
    read = await serve_and_read(modem, {1: PACK, 2: second}, baud)
    for slave, want in ((1, PACK), (2, second)):
        got = read[slave]
        assert isinstance(got, BatteryState), got
        assert (got.voltage_v, got.current_a, got.soc_pct, got.cycles) == (
            want.voltage_v, want.current_a, want.soc_pct, want.cycles,
        )  # fmt: skip
        assert got.cells_v == want.cells_v


async def test_limits_are_clamped_to_the_hardware(modem: NullModem) -> None:
    hw = HardwareLimits(100.0, 90.0, 56.0, 44.0)
    got = (await serve_and_read(modem, {1: PACK}, hardware=hw))[1]
    assert isinstance(got, BatteryState)
    assert (got.charge_current_a, got.discharge_current_a) == (100.0, 90.0)


async def test_an_alarm_is_also_a_zero_limit(modem: NullModem) -> None:
    got = (await serve_and_read(modem, {1: PACK.merged({"alarms": ["high_voltage"]})}))[1]
    assert isinstance(got, BatteryState)
    assert got.alarms == ["high_voltage"]
    assert (got.charge_current_a, got.discharge_current_a) == (0.0, 140.0)


@pytest.mark.parametrize(
    ("change", "why"),
    [({"charge_voltage_v": 0.0}, "never sent"), ({"alarms": None}, "alarms are missing")],
)
async def test_a_state_that_fails_the_guard_is_refused(
    modem: NullModem, change: dict[str, object], why: str
) -> None:
    battery = ModbusBattery(modem.a_path, [1], {1: PACK.merged(change)}.get)
    await battery.start()
    try:
        async with SeplosV3Client(modem.b_path, timeout_s=0.3) as client:
            with pytest.raises(ModbusLinkError, match="slave device failure") as info:
                await client.read(1)
        assert info.value.exception_code == 4
        assert why in battery.status()
    finally:
        await battery.stop()


class ScriptedClient:
    """Stands in for SeplosV3Client: each read pops the next outcome."""

    def __init__(self, outcomes: list[BatteryState | ModbusLinkError]) -> None:
        self.outcomes = outcomes
        self.reads = 0

    async def read(self, slave: int) -> BatteryState:
        self.reads += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, ModbusLinkError):
            raise outcome
        return outcome


TIMEOUT = ModbusLinkError("slave 1 PIA (0x1000): no answer within 0.3 s (timeout)", slave=1)
REFUSED = ModbusLinkError("slave 1 PIA: exception 04 (slave device failure)", exception_code=4)


def poller(
    outcomes: list[BatteryState | ModbusLinkError], sleeps: list[float], **kw: object
) -> tuple[ModbusPoller, ScriptedClient]:
    client = ScriptedClient(outcomes)

    async def sleep(s: float) -> None:
        sleeps.append(s)

    return ModbusPoller(client, [1], sleep=sleep, **kw), client  # type: ignore[arg-type]


async def test_no_answer_is_retried_with_growing_pauses() -> None:
    sleeps: list[float] = []
    p, client = poller([TIMEOUT, TIMEOUT, PACK], sleeps, backoff_s=0.1)
    assert await p.cycle() == {1: PACK}
    assert sleeps == [0.1, 0.2] and client.reads == 3


async def test_an_exception_answer_is_not_retried_nor_silent() -> None:
    p, client = poller([REFUSED] * 3, [], max_silent=1)
    assert await p.cycle() == {1: None}  # no SilentBatteryError: the device answered
    assert client.reads == 1 and "slave device failure" in p.last_problem[1]


async def test_silence_gives_a_clear_error() -> None:
    p, _ = poller([TIMEOUT] * 6, [], retries=1, max_silent=3)
    p.where = "/dev/ttyUSB0 at 19200 baud"
    await p.cycle()
    await p.cycle()
    with pytest.raises(
        SilentBatteryError,
        match="slave 1 on /dev/ttyUSB0 at 19200 baud answered nothing in 3 polls",
    ):
        await p.cycle()


async def test_the_count_resets_when_the_pack_answers() -> None:
    p, _ = poller([TIMEOUT, PACK, TIMEOUT], [], retries=0, max_silent=2)
    assert await p.cycle() == {1: None}
    assert await p.cycle() == {1: PACK}
    assert await p.cycle() == {1: None}
    assert p.silent_cycles[1] == 1


async def test_device_stops_answering_and_comes_back(modem: NullModem) -> None:
    battery = ModbusBattery(modem.a_path, [1], {1: PACK}.get)
    await battery.start()
    try:
        async with SeplosV3Client(modem.b_path, timeout_s=0.2) as client:
            p = ModbusPoller(client, [1], retries=0, max_silent=5)
            assert (await p.cycle())[1] is not None
            modem.muted.add("b")
            assert (await p.cycle())[1] is None
            modem.muted.clear()
            await asyncio.sleep(0)
            assert (await p.cycle())[1] is not None
    finally:
        await battery.stop()
