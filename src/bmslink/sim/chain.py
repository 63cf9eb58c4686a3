"""The whole chain, closed: pack + BMS -> battery role -> CAN -> inverter role -> inverter -> pack.

Everything between the BMS and the inverter goes over a real python-can bus
(the in-process ``virtual`` interface) as encoded frames, so the demo exercises
exactly the code a real battery or inverter would meet. Time is a ManualClock
advanced in steps of ``step_s`` simulated seconds. When a step is longer than
the broadcast period, each step carries one broadcast round (the role does not
burst to catch up), and the inverter's battery-lost timeout is stretched to at
least three steps so that coarse steps are not mistaken for a lost link.

Inside a step, the pack, the BMS and the inverter's own voltage regulation run in
sub-steps of ``physics_dt_s`` (default 5 s): a BMS samples its cells often and an
inverter regulates its charge voltage continuously, whatever the CAN period. What
crosses the bus (limits, enable flags, alarms) changes only once per step.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import can

from bmslink.clock import ManualClock
from bmslink.limits import HardwareLimits
from bmslink.profiles import get_profile
from bmslink.roles import BatteryRole, InverterRole
from bmslink.roles.common import drain
from bmslink.sim.bms import BmsSettings, SimBms
from bmslink.sim.day import DayProfile
from bmslink.sim.inverter import SimInverter
from bmslink.sim.pack import Pack
from bmslink.state import BatteryState

_channel_numbers = itertools.count()


@dataclass
class ChainConfig:
    """What to simulate; the defaults are a 16S 280 Ah (14.3 kWh) pack on a 6 kW inverter.

    Left as None, the pack follows the profile's voltage class (16S 280 Ah for a
    48 V profile, 96S 50 Ah, 15.4 kWh, for a high-voltage one), each frame goes
    on its table period, and the inverter declares the battery lost after the
    profile's own timeout (60 s on SMA).
    """

    profile: str = "pylontech"
    hours: float = 24.0
    step_s: float = 10.0
    physics_dt_s: float = 5.0
    start_soc_pct: float = 40.0
    start_hour: float = 0.0
    capacity_ah: float | None = None
    series_cells: int | None = None
    pv_peak_w: float = 7000.0
    base_load_w: float = 350.0
    cloudiness: float = 0.0
    inverter_rating_w: float = 6000.0
    broadcast_period_s: float | None = None
    lost_timeout_s: float | None = None
    seed: int = 1
    #: Keep every frame on the link (both directions) in ``Chain.recorded``.
    record: bool = False
    #: A BMS type ("jk", "daly", ...): the pack's BMS answers that protocol on a PTY and
    #: the bridge reads it with the real driver, instead of handing its state over directly.
    bms: str | None = None

    def __post_init__(self) -> None:
        if self.step_s <= 0 or self.hours <= 0 or self.physics_dt_s <= 0:
            raise ValueError("step_s, physics_dt_s and hours must be positive")
        if not 0 <= self.start_soc_pct <= 100:
            raise ValueError(f"start_soc_pct {self.start_soc_pct} outside 0..100")
        if self.series_cells is not None and self.series_cells < 1:
            raise ValueError(f"series_cells {self.series_cells} must be at least 1")
        if self.capacity_ah is not None and self.capacity_ah <= 0:
            raise ValueError(f"capacity_ah {self.capacity_ah} must be positive")
        if self.bms is not None:
            from bmslink.bms.registry import BMS_TYPES

            if self.bms not in BMS_TYPES:
                raise ValueError(f"unknown BMS type {self.bms!r}; known: {', '.join(BMS_TYPES)}")


#: The simulated pack per voltage class: (cells in series, capacity in Ah).
PACK_FOR_CLASS = {"lv": (16, 280.0), "hv": (96, 50.0)}


@dataclass
class Sample:
    """One instant of the chain, for live views and tests."""

    t_s: float
    true_soc_pct: float
    bms_soc_pct: float | None
    seen_soc_pct: float | None  # what the inverter received over CAN
    sent: BatteryState | None  # what the battery role was given this step
    voltage_v: float
    current_a: float
    pv_w: float
    load_w: float
    temperature_c: float
    cell_min_v: float
    cell_max_v: float
    seen: BatteryState | None
    limit: str
    battery_online: bool
    inverter_online: bool
    frames_sent: int
    cutoffs: int


@dataclass
class Summary:
    """The end-of-run report."""

    profile: str
    simulated_hours: float
    step_s: float
    energy_in_kwh: float
    energy_out_kwh: float
    pv_kwh: float
    load_kwh: float
    grid_import_kwh: float
    grid_export_kwh: float
    true_soc_min_pct: float
    true_soc_max_pct: float
    seen_soc_min_pct: float | None
    seen_soc_max_pct: float | None
    soc_error_max_pct: float
    bms_cutoffs: int
    cutoff_events: list[str]
    seconds_at_limit: dict[str, float]
    frames_sent: int
    frames_received: int
    decode_errors: int
    immediate_rounds: int
    battery_lost_events: int
    broadcast_halts: int
    last_halt_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Chain:
    """Builds and steps the closed loop; ``close()`` releases the virtual buses."""

    def __init__(self, config: ChainConfig | None = None) -> None:
        self.config = cfg = config or ChainConfig()
        self.profile = get_profile(cfg.profile)
        self.clock = ManualClock(cfg.start_hour * 3600.0)
        self.day = DayProfile(
            seed=cfg.seed,
            pv_peak_w=cfg.pv_peak_w,
            base_load_w=cfg.base_load_w,
            cloudiness=cfg.cloudiness,
        )
        series, capacity = PACK_FOR_CLASS[self.profile.voltage_class]
        self.series_cells = cfg.series_cells or series
        self.capacity_ah = cfg.capacity_ah or capacity
        self.pack = Pack.lfp(
            self.series_cells,
            capacity_ah=self.capacity_ah,
            soc=cfg.start_soc_pct / 100.0,
            seed=cfg.seed,
        )
        self.pack.temperature_c = self.day.ambient_c(self.clock.now())
        max_current = min(140.0, 0.5 * self.capacity_ah)  # 0.5 C, the usual LFP rating
        self.bms = SimBms(
            self.pack,
            BmsSettings(
                capacity_ah=self.capacity_ah,
                max_charge_current_a=max_current,
                max_discharge_current_a=max_current,
            ),
        )
        self.inverter = SimInverter(
            rating_w=cfg.inverter_rating_w,
            carried=self.profile.battery_keys,
            series_cells=self.series_cells,
        )
        channel = f"bmslink-chain-{next(_channel_numbers)}"
        self._battery_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
        self._inverter_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
        self._recorder = (
            can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
            if cfg.record
            else None
        )
        #: (timestamp, id, extended, data) of every frame on the link when ``record`` is set.
        self.recorded: list[tuple[float, int, bool, bytes]] = []
        bms = self.bms.settings
        self.battery_role = BatteryRole(
            self._battery_bus,
            self.profile,
            self.clock,
            period_s=cfg.broadcast_period_s,
            stale_after_s=max(10.0, 3 * cfg.step_s),
            hardware=HardwareLimits.for_cells(
                self.pack.n_cells, bms.max_charge_current_a, bms.max_discharge_current_a
            ),
        )
        self.inverter_role = InverterRole(
            self._inverter_bus,
            self.profile,
            self.clock,
            lost_timeout_s=max(cfg.lost_timeout_s or self.profile.lost_timeout_s, 3 * cfg.step_s),
            frame_expiry_s=max(10.0, 3 * cfg.step_s),  # one CAN round per step
        )
        self.serial: SerialPath | None = None
        if cfg.bms is not None:
            self.serial = SerialPath(cfg.bms, self)
        #: Fault injection: while False the battery's frames never reach the inverter.
        self.link_up = True
        self._current_a = 0.0
        self._seen: BatteryState | None = None
        self._true_soc = [self.pack.soc_pct, self.pack.soc_pct]
        self._seen_soc: list[float] = []  # [min, max] once anything was seen
        self._soc_error_max = 0.0
        self._pv_w = 0.0
        self._load_w = 0.0

    # -- stepping ---------------------------------------------------------------------------------

    def step(self) -> None:
        """Advance the whole chain by one step of ``config.step_s`` simulated seconds."""
        step_s = self.config.step_s
        now = self.clock.now()
        if self.serial is None:
            self.battery_role.update(self.bms.state())
        else:
            self.serial.step()
        if self.link_up:
            self.battery_role.poll()
        self.inverter_role.poll()
        if self._recorder is not None:
            self._record(self._recorder)
        seen = self._seen = self.inverter_role.state()
        pv, load, ambient = self.day.pv_w(now), self.day.load_w(now), self.day.ambient_c(now)
        self._pv_w, self._load_w = pv, load
        substeps = max(1, round(step_s / self.config.physics_dt_s))
        dt = step_s / substeps
        pack, bms, inverter = self.pack, self.bms, self.inverter
        actual = self._current_a
        for _ in range(substeps):
            measured_v = pack.voltage(actual)
            actual = bms.gate(inverter.decide(seen, pv, load, measured_v, dt))
            pack.apply(actual, dt, ambient)
            bms.update(actual, dt)
            inverter.account(actual, measured_v, pv, load, dt)
        self._current_a = actual
        self._track(seen)
        self.clock.advance(step_s)

    def _record(self, bus: can.BusABC) -> None:
        self.recorded += (
            (msg.timestamp, msg.arbitration_id, msg.is_extended_id, bytes(msg.data))
            for msg in drain(bus)
        )

    def _track(self, seen: BatteryState | None) -> None:
        true_soc = self.pack.soc_pct
        lo, hi = self._true_soc
        self._true_soc = [min(lo, true_soc), max(hi, true_soc)]
        if seen is not None and seen.soc_pct is not None:
            soc = seen.soc_pct
            lo_hi = self._seen_soc
            self._seen_soc = [min(lo_hi[0], soc), max(lo_hi[1], soc)] if lo_hi else [soc, soc]
            self._soc_error_max = max(self._soc_error_max, abs(seen.soc_pct - true_soc))

    def run(self, on_step: Callable[[Chain], None] | None = None) -> Summary:
        """Run for ``config.hours``; ``on_step`` is called after every step (views, pacing)."""
        steps = round(self.config.hours * 3600.0 / self.config.step_s)
        for _ in range(steps):
            self.step()
            if on_step is not None:
                on_step(self)
        return self.summary()

    # -- read-outs --------------------------------------------------------------------------------

    @property
    def elapsed_s(self) -> float:
        return self.clock.now() - self.config.start_hour * 3600.0

    def sample(self) -> Sample:
        cells = self.pack.cell_voltages(self._current_a)
        seen = self._seen
        return Sample(
            t_s=self.clock.now(),
            true_soc_pct=self.pack.soc_pct,
            bms_soc_pct=self.bms.soc_pct,
            seen_soc_pct=None if seen is None else seen.soc_pct,
            sent=self.battery_role.state,
            voltage_v=sum(cells),
            current_a=self._current_a,
            pv_w=self._pv_w,
            load_w=self._load_w,
            temperature_c=self.pack.temperature_c,
            cell_min_v=min(cells),
            cell_max_v=max(cells),
            seen=seen,
            limit=self.inverter.last_limit,
            battery_online=self.inverter_role.battery_online,
            inverter_online=self.battery_role.inverter_online,
            frames_sent=self.battery_role.frames_sent,
            cutoffs=self.bms.cutoffs,
        )

    def summary(self) -> Summary:
        inv = self.inverter
        return Summary(
            profile=self.profile.name,
            simulated_hours=round(self.elapsed_s / 3600.0, 4),
            step_s=self.config.step_s,
            energy_in_kwh=round(inv.energy_in_kwh, 3),
            energy_out_kwh=round(inv.energy_out_kwh, 3),
            pv_kwh=round(inv.pv_kwh, 3),
            load_kwh=round(inv.load_kwh, 3),
            grid_import_kwh=round(inv.grid_import_kwh, 3),
            grid_export_kwh=round(inv.grid_export_kwh, 3),
            true_soc_min_pct=round(self._true_soc[0], 2),
            true_soc_max_pct=round(self._true_soc[1], 2),
            seen_soc_min_pct=self._seen_soc[0] if self._seen_soc else None,
            seen_soc_max_pct=self._seen_soc[1] if self._seen_soc else None,
            soc_error_max_pct=round(self._soc_error_max, 2),
            bms_cutoffs=self.bms.cutoffs,
            cutoff_events=[f"{kind} ({where})" for kind, where in self.bms.events],
            seconds_at_limit={k: v for k, v in inv.seconds_at_limit.items() if v > 0},
            frames_sent=self.battery_role.frames_sent,
            frames_received=self.inverter_role.frames_received,
            decode_errors=self.inverter_role.decode_errors,
            immediate_rounds=self.battery_role.immediate_rounds,
            battery_lost_events=self.inverter_role.battery_lost_count,
            broadcast_halts=self.battery_role.halts,
            last_halt_reason=self.battery_role.last_halt_reason,
        )

    def close(self) -> None:
        if self.serial is not None:
            self.serial.close()
        self._battery_bus.shutdown()
        self._inverter_bus.shutdown()
        if self._recorder is not None:
            self._recorder.shutdown()

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialPath:
    """Sim BMS -> its real protocol on a PTY -> the driver -> the bridge -> the battery role.

    The device answers from the simulated BMS's state; the bridge has no limits
    from protocols that carry none (JK, JBD, Daly, Seplos V2, Pace), so it uses
    the pack's configured maxima, as a real installation would.
    """

    def __init__(self, bms_type: str, chain: Chain) -> None:
        from bmslink.bms.driver import BmsDriver
        from bmslink.bms.registry import get_bms
        from bmslink.bridge.aggregate import BankSettings, PackSettings
        from bmslink.bridge.core import Bridge
        from bmslink.links.serial_port import SerialLink
        from bmslink.sim.bms_device import SimulatedPort

        self.chain = chain
        protocol = get_bms(bms_type)
        address = protocol.default_address
        # The device answers in its own thread while this one waits in the driver's poll,
        # so the simulated BMS is never read while the physics moves it.
        self.sim = SimulatedPort(
            bms_type, lambda adr: chain.bms.state() if adr == address else None
        )
        self.link = SerialLink(self.sim.path, protocol.baudrate)
        self.link.open()
        self.driver = BmsDriver(protocol, self.link, [address], timeout_s=0.5, retries=2)
        bms = chain.bms.settings
        hardware = chain.battery_role.hardware
        assert hardware is not None
        self.bridge = Bridge(
            [PackSettings(bms_type, bms.max_charge_current_a, bms.max_discharge_current_a)],
            BankSettings(
                series_cells=chain.series_cells,
                charge_voltage_v=round(chain.series_cells * bms.charge_voltage_per_cell_v, 2),
                discharge_voltage_v=round(chain.series_cells * bms.discharge_voltage_per_cell_v, 2),
            ),
            hardware,
            chain.clock,
        )
        self.polls_failed = 0

    def step(self) -> None:
        role = self.chain.battery_role
        result = self.driver.poll(self.driver.addresses[0])
        self.polls_failed += result.state is None
        self.bridge.on_reading(self.bridge.packs[0].name, result.state, result.error)
        out = self.bridge.output
        if out.state is None:
            role.stop(out.reason)
        else:
            role.update(out.state)

    def close(self) -> None:
        self.link.close()
        self.sim.close()
