"""Runs a bridge from its config: drivers polling BMSs, the core, the sinks, on one event loop.

Each BMS port is polled by its own driver in a worker thread; every poll result
is handed to the core on the event loop at once, so a BMS that raises a
protection reaches the inverter in the same tick (the role's immediate round),
not at the next broadcast period. A ``port = "sim"`` BMS gets a simulated
device of its type on a PTY pair, fed by simulated packs: the driver cannot
tell it from hardware.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import can

from bmslink.bms.driver import BmsDriver, PollResult
from bmslink.bms.registry import get_bms
from bmslink.bridge.config import (
    BmsConfig,
    BridgeConfig,
    CanInverter,
    ModbusInverter,
    PylontechRs485Inverter,
)
from bmslink.bridge.core import Bridge, Sink
from bmslink.bridge.sinks import CanSink, ModbusSink, PylontechRs485Sink
from bmslink.clock import Clock, MonotonicClock
from bmslink.control import Controller
from bmslink.links.serial_port import SerialLink
from bmslink.profiles import get_profile
from bmslink.sim.bms_device import SimulatedBmsDevice, SimulatedPort
from bmslink.sim.live import LivePacks
from bmslink.state import BatteryState


@dataclass
class _Source:
    config: BmsConfig
    driver: BmsDriver
    names: dict[int, str]  # address -> pack name


class BridgeRunner:
    """Builds everything from ``config``; ``run()`` until stopped, then ``close()``."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        clock: Clock | None = None,
        sim_speed: float = 60.0,
        can_bus_factory: Callable[[CanInverter], can.BusABC] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or MonotonicClock()
        self._bus_factory = can_bus_factory or _open_bus
        self.hardware = config.hardware_limits()
        self.sinks: list[Sink] = []
        self._closers: list[Callable[[], None]] = []
        self._modbus: list[ModbusSink] = []
        self.sim_ports: list[SimulatedPort] = []
        self.sources: list[_Source] = []
        self.live: LivePacks | None = None
        try:
            self._build_sources(sim_speed)
            self._build_sinks()
        except BaseException:
            self.close()
            raise
        packs = [p for b in config.bms for p in b.pack_settings()]
        self.bridge = Bridge(
            packs,
            config.bank.settings(),
            self.hardware,
            self.clock,
            link_loss=config.link_loss_settings(),
            sinks=self.sinks,
            controller=Controller(config.control_settings(), self.hardware, self.clock),
            soc=config.pack_soc_settings(),
        )

    @property
    def devices(self) -> list[SimulatedBmsDevice]:
        """The simulated BMSs of ``port = "sim"`` sources, in config order (faults are set here)."""
        return [sim.device for sim in self.sim_ports]

    # -- building --------------------------------------------------------------------------------

    def _build_sources(self, sim_speed: float) -> None:
        sims = [b for b in self.config.bms if b.port == "sim"]
        sim_packs = sum(len(b.pack_names()) for b in sims)
        if sim_packs:
            self.live = LivePacks(
                sim_packs,
                self.clock,
                series_cells=self.config.bank.series_cells,
                speed=sim_speed,
            )
        next_sim = 0
        for b in self.config.bms:
            protocol = get_bms(b.type, b.options())
            names = dict(b.pack_names())
            port = b.port
            if port == "sim":
                indexes = {adr: next_sim + i for i, adr in enumerate(names)}
                next_sim += len(names)
                live = self.live
                assert live is not None

                def source(
                    adr: int, idx: dict[int, int] = indexes, packs: LivePacks = live
                ) -> BatteryState | None:
                    return packs.state(idx[adr]) if adr in idx else None

                sim = SimulatedPort(b.type, source)
                self.sim_ports.append(sim)
                port = sim.path
            # The drivers wait on real serial I/O, so their timeouts run on the real clock
            # whatever clock the bridge's own timing is given (a ManualClock in tests).
            link = SerialLink(port, b.baudrate or protocol.baudrate)
            link.open()
            self._closers.append(link.close)
            driver = BmsDriver(
                protocol, link, list(names), timeout_s=b.timeout_s, retries=b.retries
            )
            self.sources.append(_Source(b, driver, names))

    def _build_sinks(self) -> None:
        for inv in self.config.inverter:
            if isinstance(inv, CanInverter):
                bus = self._bus_factory(inv)
                sink: Sink = CanSink(
                    bus,
                    get_profile(inv.profile),
                    self.clock,
                    self.hardware,
                    name=f"{inv.profile} on {inv.interface}:{inv.channel}",
                    inverter_timeout_s=inv.keepalive_timeout_s,
                )
                self._closers.append(bus.shutdown)
            elif isinstance(inv, PylontechRs485Inverter):
                rs485 = PylontechRs485Sink(
                    inv.port,
                    self.clock,
                    self.hardware,
                    address=inv.address,
                    baudrate=inv.baudrate,
                    inverter_timeout_s=inv.keepalive_timeout_s,
                )
                rs485.start()
                self._closers.append(rs485.close)
                sink = rs485
            else:
                assert isinstance(inv, ModbusInverter)
                modbus = ModbusSink(
                    inv.port,
                    self.clock,
                    self.hardware,
                    slave=inv.slave,
                    baudrate=inv.baudrate,
                    inverter_timeout_s=inv.keepalive_timeout_s,
                )
                self._modbus.append(modbus)
                sink = modbus
            self.sinks.append(sink)

    # -- running ---------------------------------------------------------------------------------

    def on_result(self, source: _Source, result: PollResult) -> None:
        pack = source.names[result.address]
        for note in result.notes:
            self.bridge.on_note(pack, note)
        self.bridge.on_reading(pack, result.state, result.error)

    async def run(
        self,
        stop: asyncio.Event,
        *,
        tick_s: float = 0.1,
        on_tick: Callable[[BridgeRunner], None] | None = None,
    ) -> None:
        """Poll, bridge and broadcast until ``stop`` is set.

        A poll result is pushed to the sinks as it arrives (an alarm goes out at once);
        the tick only paces the periodic broadcast, staleness and keep-alive checks.
        """
        for m in self._modbus:
            await m.start()
        tasks = [
            asyncio.create_task(
                s.driver.run(
                    lambda r, s=s: self.on_result(s, r),  # type: ignore[misc]
                    s.config.poll_interval_s,
                    stop,
                )
            )
            for s in self.sources
        ]
        try:
            while not stop.is_set():
                self.bridge.tick()
                if on_tick is not None:
                    on_tick(self)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick_s)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for m in self._modbus:
                await m.stop()

    def close(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer()
        for sim in self.sim_ports:
            sim.close()


def _open_bus(inv: CanInverter) -> can.BusABC:
    if inv.interface == "virtual":
        return can.Bus(interface="virtual", channel=inv.channel)
    return can.Bus(interface=inv.interface, channel=inv.channel, bitrate=inv.bitrate)
