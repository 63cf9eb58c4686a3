"""State of charge from pack voltage and current, for BMSs that send no SoC of their own.

Why: some BMSs report voltage, current and cell voltages but no SoC, and an inverter (or the
charge controller) still wants one. An LFP cell's OCV is almost flat from ~20 to ~90 %
(reference battery-model-and-control.md §1.1: 10 mV there is ~30 % of SoC), so a voltage
lookup alone is useless on the plateau. This estimator does what shunt monitors and
dbus-serialbattery do (reference §1.7): count coulombs between anchors, anchor at full and at
empty, and let the rested OCV correct the count only where the curve is steep.

Sign convention as in ``BatteryState``: current is + when charging. Internally SoC is in
percent, clamped to 0..100. A value not known is ``None``: there is never a guessed 50 %.

How it works, per ``update`` sample:

* **OCV reading.** Cell OCV ≈ (V − I·R_pack) / cells, inverted through the OCV table of
  ``bmslink.sim.ocv`` (TABLE_SOC / TABLE_V) shifted by a hysteresis offset (§1.2): the charge
  branch is the mean curve + H(SoC), the discharge branch the mean − H(SoC), with H the
  project's one hysteresis shape, ``bmslink.sim.ocv.hysteresis_max`` (H_max on the plateau,
  shrinking to 0 at 0 % and 100 %), scaled to ``hysteresis_v``.
  The branch is chosen by the direction of the last current at or above the rest threshold;
  before any such current the mean curve is used.
* **First estimate** (basis ``"ocv"``): the OCV reading after a rest (|I| < rest current,
  0.02 C, for 30 min), or without a rest where the curve is steep (reading < 15 % or > 95 %)
  provided |I| ≤ 0.1 C for ``steep_confirm_s`` in a row. Until then ``soc_pct`` is ``None``.
* **Coulomb counting** (basis ``"coulomb"`` once a current ≥ the rest current was counted):
  SoC += I·dt / capacity, clamped to 0..100.
* **Full** (basis ``"full"``): highest cell ≥ 3.45 V and 0 ≤ I < tail current (0.04 C) for
  ``full_hold_s`` → 100 %. **Empty** (basis ``"empty"``): lowest cell ≤ 2.90 V while
  discharging (I < 0) for ``empty_hold_s`` → 0 %. Each fires once per episode.
* **OCV correction after a rest**, once per rest: the estimate moves towards the OCV reading
  by the weight w = s² / (s² + s½²), where s is the local slope of the OCV branch at the
  reading in mV per % SoC per cell and s½ = 4 mV/% (the slope at which w = ½). This is the
  Kalman gain for a voltage error σ_V against a coulomb-count error σ_C with σ_V/σ_C = s½
  (e.g. 12 mV against 3 %). With the reference table (mean branch): w ≈ 0.97 from 0 to 5 %,
  0.9 from 5 to 10 % and 95 to 100 %, 0.5 from 10 to 15 % and 90 to 95 %, 0.36 from 15 to
  30 %, 0.02–0.04 on the 40–60 % plateau.
  Then the estimate is clamped into the band of SoCs whose OCV lies within ±``ocv_tolerance_v``
  (20 mV per cell: the whole hysteresis gap plus measurement error) of the reading, so a count
  that contradicts the voltage outright (5 % while the rested cells sit on the plateau) is
  pulled back even where the weight is ~0, and a count that agrees within the tolerance is
  left alone by that clamp.

Choices where the reference is silent or sources disagree:

* Default pack resistance for IR compensation (``pack_resistance_ohm=None``):
  cells × 0.154 Ω·Ah / capacity, i.e. 0.55 mΩ per 280 Ah cell = R0 0.30 + R1 0.15 + busbar
  0.10 mΩ (§1.3 simulator defaults; resistance scales inversely with cell size).
* Hysteresis: the branch is picked by the last current direction instead of following the
  one-state model's gradual drift (§1.2): after a partial cycle the true OCV lies between the
  branches, which the ±``ocv_tolerance_v`` band and the low plateau weight absorb. H_max per
  cell defaults to the simulator's ``HYSTERESIS_PLATEAU_V`` (8 mV, within §1.2's 5–12 mV).
* Empty hold 60 s: dbus-serialbattery's code uses 60 s, its config comment says 300 s (§1.7).
  Full: tail 0.04 C held 180 s (shunt-monitor style, §1.7 names the mechanism, not numbers).
* Without ``cell_max_v`` / ``cell_min_v`` the average cell voltage V / cells stands in: the
  highest cell is at least the average and the lowest at most, so "average ≥ 3.45 V" proves
  "highest ≥ 3.45 V" (and likewise for empty). It fires later, never on an invented value.
* Current is integrated with the rectangle rule on the sample that ends the interval (the BMS
  reports the current of the period just gone). A sample without current is bridged with the
  last measured current if that is at most ``max_gap_s`` old (a hold of a real reading, with
  an error bounded by max_gap_s × the current change). Time-based conditions (rest, full,
  empty, steep) are not advanced on a sample lacking the inputs they need: they pause, and
  reset once the inputs have been missing for longer than ``max_gap_s``.
* A gap between samples longer than ``max_gap_s`` (60 s), time going backwards, or no current
  reading for longer than ``max_gap_s`` drops the estimate to ``None`` (basis ``"none"``) and
  forgets the hysteresis direction: the charge that flowed meanwhile is unknown, and this
  value steers real charge current. The next basis comes from the usual first-estimate rules
  or from a full/empty anchor. Non-finite or non-positive voltages and non-finite currents
  count as missing; a non-finite ``now`` is ignored altogether.
* ``basis`` names what the value rests on: the last event that set or corrected it
  (``"ocv"``, ``"full"``, ``"empty"``) until a current at or above the rest current is
  counted, then ``"coulomb"``.

Feeding it from a pack's readings (``PackSoc``; used by the bridge and by the simulator's
chain). Choices where the reference is silent:

* Mode "auto" counts the BMS as sending a SoC when the state has ``soc_pct``, or both
  ``remaining_ah`` and ``capacity_ah`` (the bank derives a SoC from those, as before).
* The estimator runs in "auto" even while the BMS's SoC is used, so it has a basis at hand
  when that SoC disappears; in "bms" it is never built.
* Where the estimate is the source, ``remaining_ah`` is replaced to match it (None while it
  has none): a distrusted BMS value must not come back through remaining / capacity.
* Capacity: the state's ``capacity_ah``, else ``installed_capacity_ah``, else the configured
  one. The estimator keeps the capacity it was built with; a reported capacity more than
  ``CAPACITY_CHANGE`` (2 %) away restarts it (basis lost: its count was in the wrong unit),
  and a reading without a capacity keeps the one known.
* A failed poll is not fed at all (it is not a zero reading): the estimator's own gap rule
  drops the estimate once readings are missing for longer than ``max_gap_s``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from itertools import pairwise
from typing import Final, Literal

from bmslink.bank import state_capacity_ah
from bmslink.sim.ocv import HYSTERESIS_PLATEAU_V, TABLE_SOC, TABLE_V, hysteresis_max
from bmslink.state import BatteryState

SocBasis = Literal["none", "ocv", "coulomb", "full", "empty"]

#: Cell DC resistance × cell capacity (Ω·Ah): 0.55 mΩ for a 280 Ah cell (reference §1.3).
CELL_RESISTANCE_OHM_AH: Final[float] = 0.55e-3 * 280.0

_FINITE_MAX: Final[float] = math.inf


@dataclass(frozen=True, slots=True)
class SocSettings:
    """Tuning of ``VoltageSocEstimator``; the defaults suit a 16S LFP pack.

    Currents given as ``*_c`` are fractions of the capacity per hour (0.02 C = 2 A at 100 Ah).
    Cell voltages are per cell.
    """

    #: Pack DC resistance for IR compensation; None = cells × CELL_RESISTANCE_OHM_AH / capacity.
    pack_resistance_ohm: float | None = None
    #: Half the charge/discharge OCV gap on the plateau, per cell (reference §1.2: 5–12 mV).
    hysteresis_v: float = HYSTERESIS_PLATEAU_V
    #: Below this |current| the pack rests.
    rest_current_c: float = 0.02
    #: A rest this long makes the OCV reading trustworthy (reference §1.7: tens of minutes).
    rest_time_s: float = 1800.0
    #: An OCV reading below / above these is on a steep part and may serve as first estimate.
    steep_below_pct: float = 15.0
    steep_above_pct: float = 95.0
    #: ... if |current| stays at or below this ...
    steep_max_current_c: float = 0.1
    #: ... for this long in a row.
    steep_confirm_s: float = 30.0
    #: OCV slope (mV per % per cell) at which the after-rest correction weight is one half.
    ocv_half_weight_slope_mv_per_pct: float = 4.0
    #: A rested reading's voltage uncertainty per cell: the estimate is kept within this band.
    ocv_tolerance_v: float = 0.020
    #: Full: highest cell at or above this while 0 ≤ current < tail current for full_hold_s.
    full_cell_v: float = 3.45
    tail_current_c: float = 0.04
    full_hold_s: float = 180.0
    #: Empty: lowest cell at or below this while discharging for empty_hold_s (reference §1.7).
    empty_cell_v: float = 2.90
    empty_hold_s: float = 60.0
    #: Longer without a sample (or without a current reading) drops the estimate to None.
    max_gap_s: float = 60.0

    def __post_init__(self) -> None:
        for name in (
            "hysteresis_v",
            "rest_current_c",
            "rest_time_s",
            "steep_below_pct",
            "steep_above_pct",
            "steep_max_current_c",
            "steep_confirm_s",
            "ocv_half_weight_slope_mv_per_pct",
            "ocv_tolerance_v",
            "full_cell_v",
            "tail_current_c",
            "full_hold_s",
            "empty_cell_v",
            "empty_hold_s",
            "max_gap_s",
        ):
            value = getattr(self, name)
            if not (0.0 <= value < _FINITE_MAX):
                raise ValueError(f"{name} must be finite and >= 0, not {value!r}")
        r = self.pack_resistance_ohm
        if r is not None and not (0.0 <= r < _FINITE_MAX):
            raise ValueError(f"pack_resistance_ohm must be finite and >= 0, not {r!r}")
        for name in ("rest_current_c", "tail_current_c", "max_gap_s"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"{name} must be > 0")
        if not (self.steep_below_pct <= self.steep_above_pct <= 100.0):
            raise ValueError("need 0 <= steep_below_pct <= steep_above_pct <= 100")
        if self.empty_cell_v >= self.full_cell_v:
            raise ValueError("empty_cell_v must be below full_cell_v")


class _Branch:
    """One OCV curve (mean, charge or discharge) prepared for inversion: V → SoC %."""

    __slots__ = ("_base_pct", "_base_v", "_breaks", "_pct_per_v", "_v_max", "_v_min", "_weight")

    def __init__(self, direction: int, plateau_v: float, half_weight_slope: float) -> None:
        volts = [
            v + direction * hysteresis_max(s, plateau_v)
            for s, v in zip(TABLE_SOC, TABLE_V, strict=True)
        ]
        pcts = [100.0 * s for s in TABLE_SOC]
        for a, b in pairwise(volts):
            if not b > a:
                raise ValueError(f"hysteresis_v {plateau_v} V makes the OCV curve non-monotonic")
        self._v_min = volts[0]
        self._v_max = volts[-1]
        self._breaks = volts[1:-1]
        self._base_v = volts[:-1]
        self._base_pct = pcts[:-1]
        self._pct_per_v = [
            (pcts[i + 1] - pcts[i]) / (volts[i + 1] - volts[i]) for i in range(len(volts) - 1)
        ]
        half2 = half_weight_slope * half_weight_slope
        weights: list[float] = []
        for k in self._pct_per_v:
            slope = 1000.0 / k  # mV per %
            weights.append(slope * slope / (slope * slope + half2) if slope > 0.0 else 0.0)
        self._weight = weights

    def soc_pct(self, cell_v: float) -> float:
        """SoC in % (clamped 0..100) whose OCV on this branch is ``cell_v``."""
        if cell_v >= self._v_max:
            return 100.0
        if cell_v <= self._v_min:
            return 0.0
        i = bisect_right(self._breaks, cell_v)
        pct = self._base_pct[i] + (cell_v - self._base_v[i]) * self._pct_per_v[i]
        return 0.0 if pct < 0.0 else 100.0 if pct > 100.0 else pct

    def weight(self, cell_v: float) -> float:
        """After-rest correction weight at the reading ``cell_v`` (see module docstring)."""
        if cell_v >= self._v_max:
            return self._weight[-1]
        if cell_v <= self._v_min:
            return self._weight[0]
        return self._weight[bisect_right(self._breaks, cell_v)]


class VoltageSocEstimator:
    """SoC of a pack from its voltage and current: OCV anchors plus coulomb counting.

    Feed ``update`` every sample (typically once a second) with monotonic time in seconds.
    Cheap: O(1) per call, no allocation on the common path.
    """

    __slots__ = (
        "_basis",
        "_branches",
        "_direction",
        "_empty_done",
        "_empty_hold",
        "_empty_s",
        "_empty_v",
        "_full_done",
        "_full_hold",
        "_full_s",
        "_full_v",
        "_i_last",
        "_i_time",
        "_inv_cells",
        "_last_now",
        "_max_gap",
        "_pct_per_as",
        "_r_pack",
        "_rest_a",
        "_rest_done",
        "_rest_s",
        "_rest_time",
        "_soc",
        "_steep_a",
        "_steep_above",
        "_steep_below",
        "_steep_confirm",
        "_steep_s",
        "_tail_a",
        "_tolerance_v",
        "_v_time",
        "capacity_ah",
        "series_cells",
        "settings",
    )

    def __init__(
        self, capacity_ah: float, series_cells: int = 16, settings: SocSettings | None = None
    ) -> None:
        if not (0.0 < capacity_ah < _FINITE_MAX):
            raise ValueError(f"capacity_ah must be finite and > 0, not {capacity_ah!r}")
        if series_cells < 1:
            raise ValueError(f"series_cells must be >= 1, not {series_cells!r}")
        s = settings if settings is not None else SocSettings()
        self.settings: SocSettings = s
        self.capacity_ah: float = float(capacity_ah)
        self.series_cells: int = series_cells
        r = s.pack_resistance_ohm
        self._r_pack: float = (
            r if r is not None else series_cells * CELL_RESISTANCE_OHM_AH / capacity_ah
        )
        self._inv_cells = 1.0 / series_cells
        self._pct_per_as = 100.0 / (3600.0 * capacity_ah)
        self._rest_a = s.rest_current_c * capacity_ah
        self._tail_a = s.tail_current_c * capacity_ah
        self._steep_a = s.steep_max_current_c * capacity_ah
        self._rest_time = s.rest_time_s
        self._steep_below = s.steep_below_pct
        self._steep_above = s.steep_above_pct
        self._steep_confirm = s.steep_confirm_s
        self._tolerance_v = s.ocv_tolerance_v
        self._full_v = s.full_cell_v
        self._full_hold = s.full_hold_s
        self._empty_v = s.empty_cell_v
        self._empty_hold = s.empty_hold_s
        self._max_gap = s.max_gap_s
        half = s.ocv_half_weight_slope_mv_per_pct
        # indexed by direction + 1: discharge branch below, mean, charge branch above
        self._branches: tuple[_Branch, _Branch, _Branch] = (
            _Branch(-1, s.hysteresis_v, half),
            _Branch(0, s.hysteresis_v, half),
            _Branch(1, s.hysteresis_v, half),
        )
        self._last_now: float | None = None
        self._i_last = 0.0
        self._drop()

    @property
    def soc_pct(self) -> float | None:
        """Estimated SoC in % (0..100), or None while there is no basis for one."""
        return self._soc

    @property
    def basis(self) -> SocBasis:
        """What the estimate rests on: "none", "ocv", "coulomb", "full" or "empty"."""
        return self._basis

    @property
    def pack_resistance_ohm(self) -> float:
        """The resistance used for IR compensation (from settings or the default)."""
        return self._r_pack

    def ocv_soc_pct(self, voltage_v: float, current_a: float) -> float:
        """SoC % that an OCV reading of this sample gives on the branch now in use."""
        cell_v = (voltage_v - current_a * self._r_pack) * self._inv_cells
        return self._branches[self._direction + 1].soc_pct(cell_v)

    def _drop(self) -> None:
        """Forget everything that depends on continuity: the estimate and all timers."""
        self._soc: float | None = None
        self._basis: SocBasis = "none"
        self._direction = 0
        self._i_time: float | None = None
        self._v_time: float | None = None
        self._rest_s = 0.0
        self._rest_done = False
        self._steep_s = 0.0
        self._full_s = 0.0
        self._full_done = False
        self._empty_s = 0.0
        self._empty_done = False

    def update(
        self,
        now: float,
        voltage_v: float | None,
        current_a: float | None,
        cell_min_v: float | None = None,
        cell_max_v: float | None = None,
    ) -> float | None:
        """Take one sample (current + = charging) at time ``now`` (s); return ``soc_pct``."""
        if not (-_FINITE_MAX < now < _FINITE_MAX):
            return self._soc
        last = self._last_now
        self._last_now = now
        dt = 0.0
        if last is not None:
            dt = now - last
            if not (0.0 <= dt <= self._max_gap):
                self._drop()
                dt = 0.0

        v = voltage_v if voltage_v is not None and 0.0 < voltage_v < _FINITE_MAX else None
        i = current_a if current_a is not None and -_FINITE_MAX < current_a < _FINITE_MAX else None
        cmin = cell_min_v if cell_min_v is not None and 0.0 < cell_min_v < _FINITE_MAX else None
        cmax = cell_max_v if cell_max_v is not None and 0.0 < cell_max_v < _FINITE_MAX else None

        # -- current: measured, held for a short dropout, or lost --------------------------
        i_eff: float | None
        if i is not None:
            self._i_last = i
            self._i_time = now
            i_eff = i
        else:
            t = self._i_time
            if t is not None and now - t <= self._max_gap:
                i_eff = self._i_last
            else:
                i_eff = None
                if t is not None:
                    self._drop()

        # -- coulomb counting ---------------------------------------------------------------
        soc = self._soc
        rest_a = self._rest_a
        if soc is not None and i_eff is not None and dt > 0.0:
            soc += i_eff * dt * self._pct_per_as
            soc = 0.0 if soc < 0.0 else 100.0 if soc > 100.0 else soc
            self._soc = soc
            if (i_eff >= rest_a or i_eff <= -rest_a) and self._basis != "coulomb":
                self._basis = "coulomb"

        # -- rest timer and the OCV reading after a rest ------------------------------------
        if i is not None:
            if -rest_a < i < rest_a:
                self._rest_s += dt
                if self._rest_s >= self._rest_time and not self._rest_done and v is not None:
                    self._correct_after_rest(v, i)
            else:
                self._direction = 1 if i > 0.0 else -1
                self._rest_s = 0.0
                self._rest_done = False

        # -- voltage evidence for full / empty / steep --------------------------------------
        inv_cells = self._inv_cells
        vmax = cmax if cmax is not None else (v * inv_cells if v is not None else None)
        vmin = cmin if cmin is not None else (v * inv_cells if v is not None else None)
        if vmax is not None or vmin is not None:
            self._v_time = now
        else:
            tv = self._v_time
            if tv is None or now - tv > self._max_gap:
                self._steep_s = 0.0
                self._full_s = 0.0
                self._empty_s = 0.0

        if self._soc is None and v is not None and i is not None:
            self._first_estimate_if_steep(v, i, dt)

        if i is not None and vmax is not None:
            if 0.0 <= i < self._tail_a and vmax >= self._full_v:
                self._full_s += dt
                if self._full_s >= self._full_hold and not self._full_done:
                    self._full_done = True
                    self._soc = 100.0
                    self._basis = "full"
            else:
                self._full_s = 0.0
                self._full_done = False

        if i is not None and vmin is not None:
            if i < 0.0 and vmin <= self._empty_v:
                self._empty_s += dt
                if self._empty_s >= self._empty_hold and not self._empty_done:
                    self._empty_done = True
                    self._soc = 0.0
                    self._basis = "empty"
            else:
                self._empty_s = 0.0
                self._empty_done = False

        return self._soc

    def _correct_after_rest(self, voltage_v: float, current_a: float) -> None:
        """Once per rest: take the OCV reading as basis, or blend it in (module docstring)."""
        self._rest_done = True
        branch = self._branches[self._direction + 1]
        cell_v = (voltage_v - current_a * self._r_pack) * self._inv_cells
        reading = branch.soc_pct(cell_v)
        soc = self._soc
        if soc is None:
            soc = reading
        else:
            soc += branch.weight(cell_v) * (reading - soc)
            lo = branch.soc_pct(cell_v - self._tolerance_v)
            hi = branch.soc_pct(cell_v + self._tolerance_v)
            soc = lo if soc < lo else hi if soc > hi else soc
        self._soc = soc
        self._basis = "ocv"

    def _first_estimate_if_steep(self, voltage_v: float, current_a: float, dt: float) -> None:
        """Without a basis: take a steep-region OCV reading held for steep_confirm_s."""
        if -self._steep_a <= current_a <= self._steep_a:
            reading = self.ocv_soc_pct(voltage_v, current_a)
            if reading < self._steep_below or reading > self._steep_above:
                self._steep_s += dt
                if self._steep_s >= self._steep_confirm:
                    self._soc = reading
                    self._basis = "ocv"
                return
        self._steep_s = 0.0


# -- the glue between a pack's readings and the estimator --------------------------------------

SocMode = Literal["bms", "estimate", "auto"]
SOC_MODES: Final[tuple[SocMode, ...]] = ("bms", "estimate", "auto")

#: A pack capacity that differs from the estimator's by more than this fraction restarts it.
CAPACITY_CHANGE: Final[float] = 0.02


@dataclass(frozen=True, slots=True)
class PackSocSettings:
    """Where one pack's SoC comes from: ``mode`` and a capacity for coulomb counting."""

    #: "bms": only the BMS's SoC; "estimate": only bmslink's; "auto": the BMS's when it
    #: sends one, else bmslink's.
    mode: SocMode = "auto"
    #: Used when the BMS reports no capacity of its own.
    capacity_ah: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in SOC_MODES:
            raise ValueError(f"soc mode must be one of {', '.join(SOC_MODES)}, not {self.mode!r}")
        c = self.capacity_ah
        if c is not None and not (0.0 < c < _FINITE_MAX):
            raise ValueError(f"capacity_ah must be finite and > 0, not {c!r}")


def _positive(value: float | None) -> float | None:
    return value if value is not None and 0.0 < value < _FINITE_MAX else None


def update_from_state(estimator: VoltageSocEstimator, state: BatteryState, now: float) -> None:
    """Feed one reading; the cell extremes come from ``cells_v`` when not sent separately."""
    cmin, cmax = state.cell_min_v, state.cell_max_v
    cells = state.cells_v
    if cells and all(0.0 < c < _FINITE_MAX for c in cells):
        cmin = min(cells) if cmin is None else cmin
        cmax = max(cells) if cmax is None else cmax
    estimator.update(now, state.voltage_v, state.current_a, cmin, cmax)


def estimate_into(state: BatteryState, estimator: VoltageSocEstimator, now: float) -> BatteryState:
    """Feed ``estimator`` with ``state``; the state with bmslink's SoC in place of the BMS's.

    ``remaining_ah`` follows (estimate × the estimator's capacity), so a BMS value that is
    not trusted cannot come back through remaining / capacity; both are None while the
    estimator has no basis.
    """
    update_from_state(estimator, state, now)
    soc = estimator.soc_pct
    remaining = None if soc is None else round(soc * estimator.capacity_ah / 100.0, 3)
    return state.merged({"soc_pct": soc, "remaining_ah": remaining})


def bms_sends_soc(state: BatteryState) -> bool:
    """Does the state carry the BMS's own SoC (``soc_pct``, or remaining and full capacity,
    from which the bank derives one)?"""
    if state.soc_pct is not None:
        return True
    return state.remaining_ah is not None and _positive(state.capacity_ah) is not None


class PackSoc:
    """One pack's SoC source, per its ``PackSocSettings``: the BMS's value or the estimate.

    ``apply`` every reading (never for a failed poll: an absent reading is not a zero one).
    ``source`` names what the last state's SoC came from: ``"bms"``, ``"estimate:BASIS"``
    (BASIS as ``VoltageSocEstimator.basis``), or why there is none: ``"none:bms"`` (the BMS
    sends none and mode is "bms"), ``"none:no-capacity"``, ``"none:no-basis"``.
    """

    __slots__ = ("estimator", "series_cells", "settings", "soc_settings", "source")

    def __init__(
        self,
        settings: PackSocSettings | None = None,
        series_cells: int = 16,
        soc_settings: SocSettings | None = None,
    ) -> None:
        self.settings = settings if settings is not None else PackSocSettings()
        self.series_cells = series_cells
        self.soc_settings = soc_settings if soc_settings is not None else SocSettings()
        self.estimator: VoltageSocEstimator | None = None
        self.source = "none:no-basis"

    @property
    def kind(self) -> str:
        """``source`` without the basis: what a change worth telling the user is about."""
        return "estimate" if self.source.startswith("estimate:") else self.source

    def apply(self, state: BatteryState, now: float) -> BatteryState:
        """Feed the estimator (unless mode is "bms"); the state with the SoC ``source`` names."""
        mode = self.settings.mode
        if mode == "bms":
            self.source = "bms" if bms_sends_soc(state) else "none:bms"
            return state
        estimator = self._estimator_for(state)
        if mode == "auto" and bms_sends_soc(state):
            if estimator is not None:  # kept running: a basis ready when the BMS's SoC stops
                update_from_state(estimator, state, now)
            self.source = "bms"
            return state
        if estimator is None:
            self.source = "none:no-capacity"
            return state.merged({"soc_pct": None, "remaining_ah": None})
        out = estimate_into(state, estimator, now)
        basis = estimator.basis
        self.source = "none:no-basis" if basis == "none" else f"estimate:{basis}"
        return out

    def _estimator_for(self, state: BatteryState) -> VoltageSocEstimator | None:
        """The estimator, built on the first known capacity (the state's, else the configured
        one) and rebuilt when the state reports a different one; a reading without a capacity
        does not make the known one wrong."""
        reported = state_capacity_ah(state)
        est = self.estimator
        if reported is None:
            configured = self.settings.capacity_ah
            if est is None and configured is not None:
                est = self.estimator = VoltageSocEstimator(
                    configured, self.series_cells, self.soc_settings
                )
            return est
        if est is None or abs(reported - est.capacity_ah) > CAPACITY_CHANGE * est.capacity_ah:
            est = self.estimator = VoltageSocEstimator(
                reported, self.series_cells, self.soc_settings
            )
        return est

    def describe(self) -> str:
        """The current source in words, for a user reading the bridge's events."""
        source = self.source
        if source == "bms":
            return "soc from the BMS"
        if source.startswith("estimate:"):
            return f"soc from voltage estimate (basis {source.removeprefix('estimate:')})"
        if source == "none:bms":
            return 'no soc: the BMS sends none (soc = "bms" never estimates)'
        if source == "none:no-capacity":
            return (
                "no soc: the voltage estimate needs the pack's capacity and the BMS reports "
                "none; set capacity_ah for this pack"
            )
        s = self.soc_settings
        return (
            "no soc yet: the voltage estimate has no basis (it needs a rest of "
            f"{s.rest_time_s / 60:g} min, a full charge, or a voltage near full or empty)"
        )
