"""Simulated packs that live on a clock: a source of BatteryStates for servers.

``bmslink rs485 serve --source sim`` answers an inverter's polls from these
until a real BMS is configured. Each pack has its own cell spread (its own
seed) and the same day of sun and load, shared between the packs; time runs
``speed`` times faster than the clock so that a user watching a poller sees SoC
and current move. The physics advances lazily, when a state is asked for.
"""

from __future__ import annotations

from bmslink.clock import Clock
from bmslink.limits import HardwareLimits
from bmslink.sim.bms import BmsSettings, SimBms
from bmslink.sim.day import DayProfile
from bmslink.sim.pack import Pack
from bmslink.state import BatteryState

#: Longest physics step (simulated seconds): a BMS samples its cells about this often.
PHYSICS_DT_S = 5.0


class LivePacks:
    """``count`` parallel packs of ``series_cells`` x ``capacity_ah``, sharing a day."""

    def __init__(
        self,
        count: int,
        clock: Clock,
        *,
        series_cells: int = 16,
        capacity_ah: float = 100.0,
        start_soc_pct: float = 50.0,
        start_hour: float = 10.0,
        speed: float = 60.0,
        seed: int = 1,
    ) -> None:
        if count < 1:
            raise ValueError("at least one pack")
        self.clock = clock
        self.speed = speed
        self.day = DayProfile(seed=seed, pv_peak_w=3000.0 * count, base_load_w=400.0 * count)
        max_current = round(0.5 * capacity_ah, 1)
        self.settings = BmsSettings(
            capacity_ah=capacity_ah,
            max_charge_current_a=max_current,
            max_discharge_current_a=max_current,
        )
        self.bmss = [
            SimBms(
                Pack.lfp(
                    series_cells,
                    capacity_ah=capacity_ah,
                    soc=start_soc_pct / 100.0,
                    seed=seed + i,
                ),
                self.settings,
            )
            for i in range(count)
        ]
        self.series_cells = series_cells
        self._start = clock.now()
        self._sim_t = start_hour * 3600.0
        self._wall_done = 0.0

    @property
    def hardware(self) -> HardwareLimits:
        """The installation's ratings, the clamp on what a server sends: all packs together
        (each pack's own BMS keeps its current within its share)."""
        s = self.settings
        n = len(self.bmss)
        return HardwareLimits.for_cells(
            self.series_cells, n * s.max_charge_current_a, n * s.max_discharge_current_a
        )

    def state(self, index: int) -> BatteryState:
        """Pack ``index`` now (0-based)."""
        self.advance()
        return self.bmss[index].state()

    def advance(self) -> None:
        """Run the physics up to the clock."""
        wall = self.clock.now() - self._start
        todo = (wall - self._wall_done) * self.speed
        self._wall_done = wall
        while todo > 1e-9:
            dt = min(PHYSICS_DT_S, todo)
            self._step(dt)
            todo -= dt

    def _step(self, dt: float) -> None:
        t = self._sim_t
        net_w = self.day.pv_w(t) - self.day.load_w(t)
        ambient = self.day.ambient_c(t)
        share_w = net_w / len(self.bmss)
        for bms in self.bmss:
            volts = bms.pack.voltage(0.0)
            wanted = share_w / volts
            wanted = min(wanted, bms.charge_current_limit_a) if wanted > 0 else wanted
            wanted = max(wanted, -bms.discharge_current_limit_a) if wanted < 0 else wanted
            actual = bms.gate(wanted)
            bms.pack.apply(actual, dt, ambient)
            bms.update(actual, dt)
        self._sim_t += dt
