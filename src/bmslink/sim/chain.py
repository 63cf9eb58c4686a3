"""The whole chain, closed: pack + BMS -> controller -> battery role -> CAN -> inverter -> pack.

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

Choices the brief and the reference leave open:

- **Controller** (``control=True``, the default): the BMS's state goes through
  ``bmslink.control.Controller.step`` and ``ControlOutput.apply`` before the battery
  role sees it, as the bridge does; the controller's ceilings are the BMS's own maxima,
  the hardware clamp is the same ``HardwareLimits`` the role applies.
- **A silent BMS** (``bms_silent``, clock times in seconds since midnight of day 0, the
  day profile's time base): the state source returns nothing new. The controller is
  still stepped with the last reading and its read time, so its stale rule sends the
  safe state (CCL = DCL = 0); after ``SAFE_HOLD_S`` more (the bridge's default hold)
  the chain stops updating the role, whose own staleness then silences the broadcast
  and the inverter declares the battery lost. This is the bridge's sequence on a
  silent BMS: zero limits, then silence. ``link_up`` is different: it drops frames on
  the wire (the inverter side of the link).
- **Voltage-only inverter** (``inverter_mode="voltage-only"``): everything else stays
  the same, including the CAN traffic, but the inverter decides from the terminal
  voltage alone; what it "reports" is its own voltage-based SoC.
- **Metrics** (``RunMetrics``) are taken on the true pack at every physics sub-step,
  at the end of the sub-step under the current that flowed in it (the highest cell
  voltage of that interval while charging: the conservative reading). The coldest
  sensor is the pack temperature plus the most negative sensor offset, unrounded.
- **``link="in-process"``** (for the speed benchmark): the same roles, the same
  profile encoding and decoding, but the frames go through a plain in-memory queue
  instead of python-can's ``virtual`` interface, which deep-copies every frame and
  passes it through a thread-safe queue. Nothing else changes.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import can

from bmslink.bridge.core import LinkLossSettings
from bmslink.clock import ManualClock
from bmslink.control import Controller, ControlOutput, ControlSettings
from bmslink.control.soc import SOC_MODES, PackSoc, PackSocSettings, SocMode
from bmslink.limits import HardwareLimits
from bmslink.profiles import get_profile
from bmslink.roles import BatteryRole, InverterRole
from bmslink.roles.common import drain
from bmslink.sim.bms import BmsSettings, SimBms
from bmslink.sim.day import DayProfile
from bmslink.sim.inverter import SimInverter, VoltageOnlyInverter, VoltageOnlySettings
from bmslink.sim.pack import Pack
from bmslink.state import BatteryState

_channel_numbers = itertools.count()

InverterMode = Literal["comms", "voltage-only"]
LinkKind = Literal["can", "in-process"]
INVERTER_MODES: tuple[str, ...] = ("comms", "voltage-only")
LINK_KINDS: tuple[str, ...] = ("can", "in-process")

#: After the controller went safe on a silent BMS, the safe state is sent this long before
#: the chain stops updating the role: the bridge's default hold.
SAFE_HOLD_S = LinkLossSettings().safe_hold_s

#: The cell voltage ``seconds_cell_above_3v60`` counts time above (V).
CELL_HIGH_V = 3.60

#: The per-run metrics, in the order they are reported (``RunMetrics.to_dict``).
METRIC_KEYS: tuple[str, ...] = (
    "soc_error_mean_pct",
    "soc_error_max_pct",
    "bms_cutoffs",
    "seconds_cell_above_3v60",
    "seconds_charging_over_voltage",
    "seconds_charging_below_0c",
    "energy_in_kwh",
    "energy_out_kwh",
)


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
    #: Added to the day's outdoor temperature curve (°C); a winter day is about −18.
    ambient_offset_c: float = 0.0
    inverter_rating_w: float = 6000.0
    broadcast_period_s: float | None = None
    lost_timeout_s: float | None = None
    seed: int = 1
    #: Keep every frame on the link (both directions) in ``Chain.recorded``.
    record: bool = False
    #: A BMS type ("jk", "daly", ...): the pack's BMS answers that protocol on a PTY and
    #: the bridge reads it with the real driver, instead of handing its state over directly.
    bms: str | None = None
    #: Run the BMS's state through ``bmslink.control.Controller`` before the battery role.
    control: bool = True
    #: "comms": the inverter obeys what it receives; "voltage-only": it ignores it.
    inverter_mode: InverterMode = "comms"
    #: How frames travel between the roles (see the module docstring).
    link: LinkKind = "can"
    #: Pack spread: σ of cell capacity (relative) and of the starting cell SoC (fraction).
    capacity_spread: float = 0.01
    soc_spread: float = 0.01
    #: A weak cell (1-based): less capacity, more resistance (``Pack.lfp``'s defaults).
    weak_cell: int | None = None
    #: (start, end) clock times in s (since midnight of day 0) while the BMS is silent.
    bms_silent: tuple[tuple[float, float], ...] = ()
    #: Where the SoC the controller and the inverter get comes from, as a bridge's ``soc``:
    #: "auto"/"bms" the BMS's own (it always sends one), "estimate" bmslink's voltage-based
    #: estimate (``bmslink.control.soc.PackSoc``), fed with every reading.
    soc: SocMode = "auto"

    def __post_init__(self) -> None:
        if self.step_s <= 0 or self.hours <= 0 or self.physics_dt_s <= 0:
            raise ValueError("step_s, physics_dt_s and hours must be positive")
        if not 0 <= self.start_soc_pct <= 100:
            raise ValueError(f"start_soc_pct {self.start_soc_pct} outside 0..100")
        if self.series_cells is not None and self.series_cells < 1:
            raise ValueError(f"series_cells {self.series_cells} must be at least 1")
        if self.capacity_ah is not None and self.capacity_ah <= 0:
            raise ValueError(f"capacity_ah {self.capacity_ah} must be positive")
        if self.inverter_mode not in INVERTER_MODES:
            raise ValueError(
                f"inverter_mode {self.inverter_mode!r}; known: {', '.join(INVERTER_MODES)}"
            )
        if self.link not in LINK_KINDS:
            raise ValueError(f"link {self.link!r}; known: {', '.join(LINK_KINDS)}")
        if self.soc not in SOC_MODES:
            raise ValueError(f"soc {self.soc!r}; known: {', '.join(SOC_MODES)}")
        if self.capacity_spread < 0 or self.soc_spread < 0:
            raise ValueError("capacity_spread and soc_spread must not be negative")
        for start, end in self.bms_silent:
            if not 0 <= start < end:
                raise ValueError(f"bms_silent interval ({start}, {end}) must have 0 <= start < end")
        if self.bms is not None:
            from bmslink.bms.registry import BMS_TYPES

            if self.bms not in BMS_TYPES:
                raise ValueError(f"unknown BMS type {self.bms!r}; known: {', '.join(BMS_TYPES)}")
            if self.bms_silent:
                # the serial path would wait out the driver's timeouts on every silent step
                raise ValueError("bms_silent is simulated on the direct path only (no --bms)")


#: The simulated pack per voltage class: (cells in series, capacity in Ah).
PACK_FOR_CLASS = {"lv": (16, 280.0), "hv": (96, 50.0)}


@dataclass
class Sample:
    """One instant of the chain, for live views, plots and tests."""

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
    #: The SoC the inverter shows: received over CAN, or its own estimate (voltage-only).
    reported_soc_pct: float | None
    #: Limits the inverter acts on (received over CAN); None when not received.
    ccl_a: float | None
    dcl_a: float | None
    cvl_v: float | None
    #: The BMS's own limits, before the controller.
    bms_ccl_a: float
    bms_dcl_a: float
    ambient_c: float
    #: The controller's mode and reasons (None without a controller or before its first step).
    mode: str | None
    cvl_reason: str | None
    ccl_reason: str | None
    dcl_reason: str | None
    #: True while the BMS is silent (``bms_silent``).
    bms_silent: bool


@dataclass
class RunMetrics:
    """Accumulators of the per-run metrics, on the true pack at physics sub-step resolution."""

    soc_error_pct_s: float = 0.0
    soc_error_time_s: float = 0.0
    soc_error_max_pct: float = 0.0
    seconds_cell_above_3v60: float = 0.0
    seconds_charging_over_voltage: float = 0.0
    seconds_charging_below_0c: float = 0.0
    energy_in_j: float = 0.0
    energy_out_j: float = 0.0
    #: Sub-step seconds with PV above the load, by what kept the charge current down.
    charge_limited_s: dict[str, float] = field(default_factory=dict)

    def charge_limited_ranked(self) -> dict[str, float]:
        """``charge_limited_s`` longest first, to 0.1 s: what the summaries show."""
        ranked = sorted(self.charge_limited_s.items(), key=lambda kv: -kv[1])
        return {k: round(v, 1) for k, v in ranked}

    def to_dict(self, bms_cutoffs: int) -> dict[str, float | int | None]:
        """The METRIC_KEYS; the SoC error is None when the inverter never showed a SoC."""
        seen = self.soc_error_time_s > 0.0
        return {
            "soc_error_mean_pct": (
                round(self.soc_error_pct_s / self.soc_error_time_s, 3) if seen else None
            ),
            "soc_error_max_pct": round(self.soc_error_max_pct, 3) if seen else None,
            "bms_cutoffs": bms_cutoffs,
            "seconds_cell_above_3v60": round(self.seconds_cell_above_3v60, 3),
            "seconds_charging_over_voltage": round(self.seconds_charging_over_voltage, 3),
            "seconds_charging_below_0c": round(self.seconds_charging_below_0c, 3),
            "energy_in_kwh": round(self.energy_in_j / 3.6e6, 4),
            "energy_out_kwh": round(self.energy_out_j / 3.6e6, 4),
        }


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
    #: Seconds with PV above the load, by what held the charge current down, longest first:
    #: the inverter's limit and, for "ccl"/"cvl", the controller's rule (``"ccl:cell_voltage"``).
    charge_limited_s: dict[str, float]
    frames_sent: int
    frames_received: int
    decode_errors: int
    immediate_rounds: int
    battery_lost_events: int
    broadcast_halts: int
    last_halt_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class InProcessBus(can.BusABC):
    """A CAN bus in plain memory: what one end sends, every other end receives, in order.

    No copies and no locks: the chain is single-threaded and each receiver drains its
    queue within the step the frames were sent in.
    """

    def __init__(self, peers: list[InProcessBus]) -> None:
        super().__init__(channel="in-process")
        self._inbox: deque[can.Message] = deque()
        self._peers = peers
        peers.append(self)

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        for peer in self._peers:
            if peer is not self:
                peer._inbox.append(msg)

    def recv(self, timeout: float | None = None) -> can.Message | None:
        inbox = self._inbox
        return inbox.popleft() if inbox else None

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        return self.recv(timeout), False

    def shutdown(self) -> None:
        if self in self._peers:
            self._peers.remove(self)
        super().shutdown()


class Chain:
    """Builds and steps the closed loop; ``close()`` releases the buses."""

    def __init__(self, config: ChainConfig | None = None) -> None:
        self.config = cfg = config or ChainConfig()
        self.profile = get_profile(cfg.profile)
        self.clock = ManualClock(cfg.start_hour * 3600.0)
        self.day = DayProfile(
            seed=cfg.seed,
            pv_peak_w=cfg.pv_peak_w,
            base_load_w=cfg.base_load_w,
            cloudiness=cfg.cloudiness,
            ambient_offset_c=cfg.ambient_offset_c,
        )
        series, capacity = PACK_FOR_CLASS[self.profile.voltage_class]
        self.series_cells = cfg.series_cells or series
        self.capacity_ah = cfg.capacity_ah or capacity
        self.pack = Pack.lfp(
            self.series_cells,
            capacity_ah=self.capacity_ah,
            soc=cfg.start_soc_pct / 100.0,
            seed=cfg.seed,
            capacity_spread=cfg.capacity_spread,
            soc_spread=cfg.soc_spread,
            weak_cell=cfg.weak_cell,
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
        self.inverter = self._make_inverter()
        if cfg.link == "in-process":
            peers: list[InProcessBus] = []
            self._battery_bus: can.BusABC = InProcessBus(peers)
            self._inverter_bus: can.BusABC = InProcessBus(peers)
            self._recorder: can.BusABC | None = InProcessBus(peers) if cfg.record else None
        else:
            channel = f"bmslink-chain-{next(_channel_numbers)}"

            def virtual() -> can.BusABC:
                return can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)

            self._battery_bus = virtual()
            self._inverter_bus = virtual()
            self._recorder = virtual() if cfg.record else None
        #: (timestamp, id, extended, data) of every frame on the link when ``record`` is set.
        self.recorded: list[tuple[float, int, bool, bytes]] = []
        bms = self.bms.settings
        self.hardware = HardwareLimits.for_cells(
            self.pack.n_cells, bms.max_charge_current_a, bms.max_discharge_current_a
        )
        self.battery_role = BatteryRole(
            self._battery_bus,
            self.profile,
            self.clock,
            period_s=cfg.broadcast_period_s,
            stale_after_s=max(10.0, 3 * cfg.step_s),
            hardware=self.hardware,
        )
        self.inverter_role = InverterRole(
            self._inverter_bus,
            self.profile,
            self.clock,
            lost_timeout_s=max(cfg.lost_timeout_s or self.profile.lost_timeout_s, 3 * cfg.step_s),
            frame_expiry_s=max(10.0, 3 * cfg.step_s),  # one CAN round per step
        )
        self.controller: Controller | None = self._make_controller() if cfg.control else None
        #: The pack's SoC source, as the bridge keeps one per pack (direct path only; the
        #: serial path's bridge has its own).
        self.pack_soc = PackSoc(PackSocSettings(cfg.soc), self.series_cells)
        #: The controller's latest output (None without a controller or before the first step).
        self.control_output: ControlOutput | None = None
        self.serial: SerialPath | None = None
        if cfg.bms is not None:
            self.serial = SerialPath(cfg.bms, self)
        #: Fault injection: while False the battery's frames never reach the inverter.
        self.link_up = True
        #: True while the BMS is silent (``config.bms_silent``).
        self.bms_is_silent = False
        self._last_reading: tuple[BatteryState, float] | None = None
        self._current_a = 0.0
        self._seen: BatteryState | None = None
        self._true_soc = [self.pack.soc_pct, self.pack.soc_pct]
        self._seen_soc: list[float] = []  # [min, max] once anything was seen
        self._soc_error_max = 0.0
        self._pv_w = 0.0
        self._load_w = 0.0
        self._ambient_c = self.pack.temperature_c
        self.metrics = RunMetrics()
        self._cold_offset_c = min(bms.temp_sensor_offsets_c)

    def _make_inverter(self) -> SimInverter:
        cfg = self.config
        if cfg.inverter_mode == "voltage-only":
            settings = replace(
                VoltageOnlySettings.for_series(self.series_cells), rating_w=cfg.inverter_rating_w
            )
            return VoltageOnlyInverter(settings)
        return SimInverter(
            rating_w=cfg.inverter_rating_w,
            carried=self.profile.battery_keys,
            series_cells=self.series_cells,
        )

    def _make_controller(self) -> Controller:
        bms = self.bms.settings
        settings = ControlSettings(
            series_cells=self.series_cells,
            max_charge_current_a=bms.max_charge_current_a,
            max_discharge_current_a=bms.max_discharge_current_a,
        )
        return Controller(settings, self.hardware, self.clock)

    # -- stepping ---------------------------------------------------------------------------------

    def _silent_at(self, t_s: float) -> bool:
        return any(start <= t_s < end for start, end in self.config.bms_silent)

    def _feed_role(self, now: float) -> None:
        """Read the BMS (directly or over the serial path), run the controller, update the role."""
        role = self.battery_role
        controller = self.controller
        if self.serial is not None:
            # the bridge runs the controller, as on a real installation
            state, reason = self.serial.read()
            self.control_output = self.serial.bridge.control
            if state is None:
                role.stop(reason)
            else:
                role.update(state)
            return
        self.bms_is_silent = self._silent_at(now)
        if not self.bms_is_silent:
            state, read_at = self.pack_soc.apply(self.bms.state(), now), now
            self._last_reading = (state, now)
        elif self._last_reading is None:
            return  # silent from the start: nothing was ever read, nothing to send
        else:
            state, read_at = self._last_reading
            if controller is None:
                return  # no new state: the role's staleness silences the broadcast
        if controller is None:
            role.update(state)
            return
        out = self.control_output = controller.step(state, read_at)
        if out.mode == "safe" and now - read_at > controller.settings.stale_after_s + SAFE_HOLD_S:
            return  # zero limits were sent long enough: let the role fall silent
        role.update(out.apply(state))

    def step(self) -> None:
        """Advance the whole chain by one step of ``config.step_s`` simulated seconds."""
        step_s = self.config.step_s
        now = self.clock.now()
        self._feed_role(now)
        if self.link_up:
            self.battery_role.poll()
        self.inverter_role.poll()
        if self._recorder is not None:
            self._record(self._recorder)
        seen = self._seen = self.inverter_role.state()
        day = self.day
        pv, load, ambient = day.pv_w(now), day.load_w(now), day.ambient_c(now)
        self._pv_w, self._load_w, self._ambient_c = pv, load, ambient
        substeps = max(1, round(step_s / self.config.physics_dt_s))
        dt = step_s / substeps
        pack, bms, inverter, m = self.pack, self.bms, self.inverter, self.metrics
        own_soc = inverter if isinstance(inverter, VoltageOnlyInverter) else None
        seen_soc = None if seen is None else seen.soc_pct
        ovp_v = bms.settings.cell_ovp_v
        cold_offset = self._cold_offset_c
        wants_charge = pv > load
        limit_label = self._limit_labeller() if wants_charge else None
        actual = self._current_a
        for _ in range(substeps):
            measured_v = pack.voltage(actual)
            command = inverter.decide(seen, pv, load, measured_v, dt)
            actual = bms.gate(command)
            pack.apply(actual, dt, ambient)
            bms.update(actual, dt)
            inverter.account(actual, measured_v, pv, load, dt)
            # metrics, on the true pack, under the current that flowed in this sub-step
            cells = pack.cell_voltages(actual)
            vmax = max(cells)
            if vmax > CELL_HIGH_V:
                m.seconds_cell_above_3v60 += dt
            if actual > 0.0:
                m.energy_in_j += actual * sum(cells) * dt
                if vmax >= ovp_v:
                    m.seconds_charging_over_voltage += dt
                if pack.temperature_c + cold_offset < 0.0:
                    m.seconds_charging_below_0c += dt
            elif actual < 0.0:
                m.energy_out_j -= actual * sum(cells) * dt
            reported = seen_soc if own_soc is None else own_soc.soc_pct
            if reported is not None:
                error = abs(reported - pack.soc_pct)
                m.soc_error_pct_s += error * dt
                m.soc_error_time_s += dt
                if error > m.soc_error_max_pct:
                    m.soc_error_max_pct = error
            if limit_label is not None:
                label = limit_label(command, actual)
                m.charge_limited_s[label] = m.charge_limited_s.get(label, 0.0) + dt
        self._current_a = actual
        self._track(seen)
        self.clock.advance(step_s)

    def _limit_labeller(self) -> Callable[[float, float], str]:
        """Names what held the charge current down in a sub-step where PV exceeded the load."""
        inverter = self.inverter
        # a voltage-only inverter's "ccl"/"cvl" are its own settings, not the controller's
        out = None if isinstance(inverter, VoltageOnlyInverter) else self.control_output

        def label(command: float, actual: float) -> str:
            if command > 0.0 and actual == 0.0:
                return "bms_fet_off"
            limit = inverter.last_limit
            if out is not None and limit in ("ccl", "charge_disabled"):
                return f"{limit}:{out.ccl_reason}"
            if out is not None and limit == "cvl":
                return f"cvl:{out.cvl_reason}"
            return limit

        return label

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

    @property
    def reported_soc_pct(self) -> float | None:
        """The SoC the inverter shows: received over CAN, or its own estimate (voltage-only)."""
        if isinstance(self.inverter, VoltageOnlyInverter):
            return self.inverter.soc_pct
        seen = self._seen
        return None if seen is None else seen.soc_pct

    def metrics_dict(self) -> dict[str, float | int | None]:
        """The run's metrics so far, keyed by METRIC_KEYS."""
        return self.metrics.to_dict(self.bms.cutoffs)

    def sample(self) -> Sample:
        cells = self.pack.cell_voltages(self._current_a)
        seen = self._seen
        out = self.control_output
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
            reported_soc_pct=self.reported_soc_pct,
            ccl_a=None if seen is None else seen.charge_current_a,
            dcl_a=None if seen is None else seen.discharge_current_a,
            cvl_v=None if seen is None else seen.charge_voltage_v,
            bms_ccl_a=self.bms.charge_current_limit_a,
            bms_dcl_a=self.bms.discharge_current_limit_a,
            ambient_c=self._ambient_c,
            mode=None if out is None else out.mode,
            cvl_reason=None if out is None else out.cvl_reason,
            ccl_reason=None if out is None else out.ccl_reason,
            dcl_reason=None if out is None else out.dcl_reason,
            bms_silent=self.bms_is_silent,
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
            charge_limited_s=self.metrics.charge_limited_ranked(),
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
            controller=chain.controller,
            soc={bms_type: PackSocSettings(chain.config.soc)},
        )
        self.polls_failed = 0

    def read(self) -> tuple[BatteryState | None, str]:
        """Poll the BMS once; the bridge's output: a state, or None (silence) and why."""
        result = self.driver.poll(self.driver.addresses[0])
        self.polls_failed += result.state is None
        self.bridge.on_reading(self.bridge.packs[0].name, result.state, result.error)
        out = self.bridge.output
        return out.state, out.reason

    def close(self) -> None:
        self.link.close()
        self.sim.close()
