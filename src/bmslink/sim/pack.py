"""A series string of LFP cells: OCV + R0 + one RC pair per cell, one thermal node.

Why this shape: it is the smallest model that still shows what matters for
BMS/inverter interplay — the flat plateau, the knees at both ends (see ``ocv``),
the instant IR step and the slower polarisation when the current changes, the
spread between cells that makes the fullest cell hit protection first, and a
pack temperature that moves with ambient and Joule heat.

Model per cell i (current ``I`` is + when charging)::

    v_i = OCV(soc_i) + I * (R0_i * f(T) + Rbus_i + Rknee_i) + v_rc_i
    d soc_i / dt = I / (3600 * C_i)
    d v_rc_i / dt = (I * R1_i * f(T) - v_rc_i) / tau_i      (solved exactly per step)

Knees (an assumption shaped to reference §1.1/§1.7: "from 3.45 to 3.6+ V can take
seconds", and the cliff under 3.0 V): ``Rknee`` is a charge-acceptance resistance that
grows exponentially over the last ~1 % of SoC while charging, and over the first ~1 %
while discharging (``knee_resistance``). Being a resistance, it vanishes at rest, so a
cell that was pushed to 3.6 V relaxes back to its ~3.40 V OCV as soon as the current
stops, as real cells do. At 100 A into a full 280 Ah cell it adds ~0.35 V.

Temperature scaling (an assumption, reference §1.3: DC resistance "roughly doubles per
~15–20 K of cooling"): ``f(T) = 2 ** ((25 - T) / 18)``, applied to R0 and R1 on both
sides of 25 °C and clamped to 0.5…32 so that extreme inputs stay finite. Busbar
resistance is copper and is not scaled; tau is kept constant (so the RC capacitance
scales inversely with R1).

Thermal node (reference §1.4): heat = I² · ΣR (all cells' R0, busbar and R1 at the
present temperature), heat capacity n · 5.4 kg · 1050 J/(kg·K), exchange
UA = n · 1.5 W/K towards ambient, explicit Euler (time constant ≈ 1 h ≫ dt).

OCV hysteresis (reference §1.2, one-state model): each cell carries ``h`` in [−1, +1]
and rests at ``OCV(soc) + h · H_max(soc)`` (table and its assumptions in ``ocv``). While
current flows, ``h`` relaxes towards +1 (charging) or −1 (discharging) exponentially in
Ah throughput: by a factor e per ``hysteresis_decay_ah`` (assumption: 3 % of the mean
cell capacity; the reference only says "exponential in Ah throughput"). The update is
exact for any step size. All cells see the same current, so cells that start with the
same ``h`` keep sharing it: the pack then tracks one number, and once it is within 1e-4
of a branch (< 1 µV) it is snapped there, the branch's curve is used as a plain table and
the work is skipped until the current reverses (on the plateau, where H_max is flat, a
shared h is just a constant offset on the mean table). ``hysteresis_v=0`` disables it
(the mean curve, as before; ``h`` is then frozen).

Weak cell (reference §1.5): ``Pack.lfp(weak_cell=k)`` gives cell k (1-based) 0.85 × the
capacity and 1.5 × the resistance (R0 and R1; busbar unchanged) after the seeded spread
is drawn, so the other cells are the same as without it. From a mid SoC it is the first
to reach either knee.

Balancing (driven by ``bms.SimBms``): ``bleed`` takes charge out of chosen cells, as a
passive balancer's resistor does. It is counted per cell (``bled_ah``) and its energy
(charge × the cell's last computed terminal voltage, its OCV if none yet) heats the
pack's thermal node, the resistors being on a board inside the pack. Assumptions, all
for bleed currents of ~0.2 A against a main current of tens of amps: the bleed's IR
drop and RC polarisation are ignored (< 0.1 mV), and so is its effect on ``h`` —
balancing only runs near full, where H_max falls to 0, so it could not show anyway.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import repeat

from bmslink.sim.ocv import (
    HYSTERESIS_FULL_RANGE,
    HYSTERESIS_PLATEAU_V,
    SOC_MIN,
    Segments,
    hysteresis_segments,
    ocv_many_hysteresis,
    ocv_segments,
)

#: Reference temperature of the resistance values (°C).
R_REF_TEMP_C = 25.0
#: Cooling by this many kelvin doubles the cell resistance.
R_DOUBLING_K = 18.0
_R_FACTOR_MIN = 0.5
_R_FACTOR_MAX = 32.0
_RESISTANCE_REFRESH_K = 0.05

#: Per-cell thermal mass and exchange (reference §1.4, 280 Ah prismatic cell).
CELL_MASS_KG = 5.4
CELL_CP_J_PER_KG_K = 1050.0
CELL_UA_W_PER_K = 1.5

#: Default hysteresis decay charge, as a fraction of the mean cell capacity (assumption).
HYSTERESIS_DECAY_FRACTION = 0.03
#: h closer than this to its branch is snapped onto it (worth < 1 µV at 8 mV).
_H_SNAP = 1e-4


@dataclass
class CellParams:
    """One cell's parameters; resistances are the 25 °C values."""

    capacity_ah: float
    soc: float  # fraction, 1.0 = 100 %
    r0_ohm: float
    r1_ohm: float
    tau_s: float
    #: Interconnect resistance in series with the cell; not temperature dependent.
    busbar_ohm: float = 0.0
    #: Initial hysteresis state h in [−1, +1]: +1 = charge branch, −1 = discharge branch.
    hysteresis: float = 0.0


#: Knee resistance at exactly 100 % (charging) or 0 % (discharging), 280 Ah cell, 25 °C.
KNEE_OHM_280AH = 3.5e-3
#: SoC width (fraction) over which the knee resistance falls by a factor e.
KNEE_WIDTH = 0.008
_KNEE_PAST_END_WIDTH = 0.001
#: Outside this distance from the ends the knee term is negligible and skipped.
_KNEE_RANGE = 0.06


#: A cell can hold this much beyond 100 % (fraction); the knee keeps rising there.
SOC_CEILING = 1.01


def knee_resistance(soc: float, charging: bool, scale_ohm: float) -> float:
    """Extra resistance near full (charging) or empty (discharging); 0 on the plateau.

    Past the table's ends (a cell pushed beyond 100 %, or below 0 %) it keeps
    growing, so charge is conserved and the voltage climbs until something stops it.
    """
    distance = 1.0 - soc if charging else soc
    if distance > _KNEE_RANGE:
        return 0.0
    if distance >= 0.0:
        return scale_ohm * math.exp(-distance / KNEE_WIDTH)
    # Past the end the cell accepts (or gives) almost nothing more: ×e per 0.1 % of
    # capacity, so a held charge voltage sees its tail current decay towards zero.
    return scale_ohm * math.exp(min(-distance / _KNEE_PAST_END_WIDTH, 60.0))


def resistance_factor(temperature_c: float) -> float:
    """Multiplier on the 25 °C cell resistance: ×2 per 18 K colder, clamped 0.5…32."""
    f = math.pow(2.0, (R_REF_TEMP_C - temperature_c) / R_DOUBLING_K)
    if f < _R_FACTOR_MIN:
        return _R_FACTOR_MIN
    if f > _R_FACTOR_MAX:
        return _R_FACTOR_MAX
    return f


def _clipped_normal(rng: random.Random, sigma: float) -> float:
    """A N(0, sigma) draw clipped to ±3 sigma, so a seed never produces an absurd cell."""
    if sigma <= 0.0:
        return 0.0
    x = rng.gauss(0.0, sigma)
    limit = 3.0 * sigma
    return max(-limit, min(limit, x))


class Pack:
    """A series string of cells sharing one current and one temperature.

    ``hysteresis_v`` is H_max on the plateau (0 turns hysteresis off) and
    ``hysteresis_decay_ah`` the throughput per factor e of h's approach to its branch
    (None: 3 % of the mean cell capacity); see the module docstring.

    State lives in plain lists (one entry per cell) because ``apply`` and
    ``cell_voltages`` run tens of thousands of times per simulated day.
    """

    __slots__ = (
        "_bled_as",
        "_bus",
        "_cached_cells",
        "_cached_current",
        "_cached_version",
        "_cap_as",
        "_curves",
        "_decay_dt",
        "_decays",
        "_h",
        "_h_common",
        "_h_on",
        "_h_plateau_v",
        "_h_rate",
        "_h_seg",
        "_heat_capacity_j_per_k",
        "_inv_cap_as",
        "_knee",
        "_mean_seg",
        "_r0",
        "_r0_eff",
        "_r1",
        "_r1_eff",
        "_r_total",
        "_rc_gains",
        "_rf_factor",
        "_rf_temp",
        "_soc",
        "_tau",
        "_temp_c",
        "_ua_w_per_k",
        "_version",
        "_vrc",
        "cells",
    )

    def __init__(
        self,
        cells: list[CellParams],
        ambient_c: float = 20.0,
        heat_capacity_j_per_k: float | None = None,
        ua_w_per_k: float | None = None,
        hysteresis_v: float = HYSTERESIS_PLATEAU_V,
        hysteresis_decay_ah: float | None = None,
    ) -> None:
        if not cells:
            raise ValueError("a pack needs at least one cell")
        for c in cells:
            if c.capacity_ah <= 0.0 or c.tau_s <= 0.0:
                raise ValueError(f"cell capacity and tau must be positive: {c}")
            if not -1.0 <= c.hysteresis <= 1.0:
                raise ValueError(f"cell hysteresis state must be within [-1, 1]: {c}")
        if not hysteresis_v >= 0.0:
            raise ValueError(f"hysteresis amplitude must be >= 0 V, not {hysteresis_v}")
        n = len(cells)
        if hysteresis_decay_ah is None:
            hysteresis_decay_ah = HYSTERESIS_DECAY_FRACTION * sum(c.capacity_ah for c in cells) / n
        if not hysteresis_decay_ah > 0.0:
            raise ValueError(f"hysteresis decay charge must be > 0 Ah, not {hysteresis_decay_ah}")
        #: The parameters the pack was built from (SoC here is the *initial* SoC).
        self.cells: tuple[CellParams, ...] = tuple(cells)
        self._soc: list[float] = [min(SOC_CEILING, max(SOC_MIN, c.soc)) for c in cells]
        self._cap_as: list[float] = [c.capacity_ah * 3600.0 for c in cells]
        self._inv_cap_as: list[float] = [1.0 / c for c in self._cap_as]
        self._r0: list[float] = [c.r0_ohm for c in cells]
        self._r1: list[float] = [c.r1_ohm for c in cells]
        self._bus: list[float] = [c.busbar_ohm for c in cells]
        self._tau: list[float] = [c.tau_s for c in cells]
        self._knee: list[float] = [KNEE_OHM_280AH * 280.0 / c.capacity_ah for c in cells]
        self._vrc: list[float] = [0.0] * n
        self._bled_as: list[float] = [0.0] * n
        self._decay_dt = -1.0
        self._decays: list[float] = [0.0] * n
        self._rc_gains: list[float] = [0.0] * n  # R1_eff * (1 - decay) for _decay_dt
        # Hysteresis: one shared h while all cells agree (_h_common), else per cell (_h).
        self._h_on = hysteresis_v > 0.0
        self._h_plateau_v = float(hysteresis_v)
        self._h_rate = 1.0 / (hysteresis_decay_ah * 3600.0)
        self._h: list[float] = [float(c.hysteresis) for c in cells]
        self._h_common: float | None = self._h[0] if len(set(self._h)) == 1 else None
        self._mean_seg = ocv_segments(0.0, hysteresis_v)
        self._h_seg = hysteresis_segments(hysteresis_v)
        #: Ready-made curves for a shared h on a branch (or 0: the mean curve).
        self._curves: dict[float, Segments] = {
            0.0: self._mean_seg,
            1.0: ocv_segments(1.0, hysteresis_v),
            -1.0: ocv_segments(-1.0, hysteresis_v),
        }
        self._heat_capacity_j_per_k = (
            heat_capacity_j_per_k
            if heat_capacity_j_per_k is not None
            else n * CELL_MASS_KG * CELL_CP_J_PER_KG_K
        )
        self._ua_w_per_k = ua_w_per_k if ua_w_per_k is not None else n * CELL_UA_W_PER_K
        self._temp_c = float(ambient_c)
        self._rf_temp = math.nan
        self._rf_factor = 1.0
        self._r0_eff: list[float] = [0.0] * n
        self._r1_eff: list[float] = [0.0] * n
        self._r_total = 0.0
        self._refresh_resistance()
        self._version = 0
        self._cached_version = -1
        self._cached_current = math.nan
        self._cached_cells: list[float] = []

    @classmethod
    def lfp(
        cls,
        series: int = 16,
        capacity_ah: float = 280.0,
        soc: float = 0.5,
        seed: int = 1,
        capacity_spread: float = 0.01,
        soc_spread: float = 0.01,
        r_spread: float = 0.05,
        weak_cell: int | None = None,
        weak_capacity_factor: float = 0.85,
        weak_resistance_factor: float = 1.5,
        hysteresis_v: float = HYSTERESIS_PLATEAU_V,
        hysteresis_decay_ah: float | None = None,
    ) -> Pack:
        """``series`` LFP cells of ``capacity_ah`` with a reproducible, seeded spread.

        Spreads are relative σ (capacity, resistance) or absolute σ in SoC fraction,
        each draw clipped to ±3σ. Defaults follow reference §1.3/§1.5: R0 0.30 mΩ DC,
        0.1 mΩ busbar, R1 0.15 mΩ, τ 45 s, all at 25 °C; τ has no spread. ``weak_cell``
        (1-based) then gets its capacity and resistance (R0, R1) multiplied by the
        weak factors; every other cell stays as the seed made it. Hysteresis: see
        ``Pack`` (``hysteresis_v=0`` turns it off).
        """
        if series < 1:
            raise ValueError(f"a pack needs at least one cell, not {series}")
        if weak_cell is not None:
            if not 1 <= weak_cell <= series:
                raise ValueError(f"weak cell must be 1..{series}, not {weak_cell}")
            if not (weak_capacity_factor > 0.0 and weak_resistance_factor > 0.0):
                raise ValueError("weak cell factors must be positive")
        rng = random.Random(seed)
        r0 = 0.30e-3 * 280.0 / capacity_ah  # resistance scales inversely with cell size
        r1 = 0.15e-3 * 280.0 / capacity_ah
        cells: list[CellParams] = []
        for _ in range(series):
            cap = capacity_ah * (1.0 + _clipped_normal(rng, capacity_spread))
            s = soc + _clipped_normal(rng, soc_spread)
            rf = 1.0 + _clipped_normal(rng, r_spread)
            cells.append(
                CellParams(
                    capacity_ah=cap,
                    soc=s,
                    r0_ohm=r0 * rf,
                    r1_ohm=r1 * rf,
                    tau_s=45.0,
                    busbar_ohm=0.1e-3,
                )
            )
        if weak_cell is not None:
            weak = cells[weak_cell - 1]
            cells[weak_cell - 1] = replace(
                weak,
                capacity_ah=weak.capacity_ah * weak_capacity_factor,
                r0_ohm=weak.r0_ohm * weak_resistance_factor,
                r1_ohm=weak.r1_ohm * weak_resistance_factor,
            )
        return cls(cells, hysteresis_v=hysteresis_v, hysteresis_decay_ah=hysteresis_decay_ah)

    # -- state ----------------------------------------------------------------

    @property
    def n_cells(self) -> int:
        return len(self._soc)

    @property
    def cell_socs(self) -> list[float]:
        """Each cell's true SoC as a fraction (a copy)."""
        return list(self._soc)

    @property
    def cell_hysteresis(self) -> list[float]:
        """Each cell's hysteresis state h in [−1, +1] (a copy); frozen while disabled."""
        common = self._h_common
        return [common] * len(self._soc) if common is not None else list(self._h)

    @property
    def hysteresis_v(self) -> float:
        """H_max on the plateau (V); 0 means hysteresis is off."""
        return self._h_plateau_v

    @property
    def hysteresis_decay_ah(self) -> float:
        """Throughput (Ah) over which h closes a factor e of its gap to the branch."""
        return 1.0 / (self._h_rate * 3600.0)

    @property
    def bled_ah(self) -> list[float]:
        """Charge ``bleed`` has taken out of each cell since construction (Ah, a copy)."""
        return [q / 3600.0 for q in self._bled_as]

    @property
    def soc_pct(self) -> float:
        """True pack SoC: capacity-weighted mean of the cells, percent, clamped 0..100.

        Charge a cell holds beyond 100 % (up to SOC_CEILING) still reads as 100 %.
        """
        total = 0.0
        for s, c in zip(self._soc, self._cap_as, strict=True):
            total += s * c
        pct = 100.0 * total / sum(self._cap_as)
        return min(100.0, max(0.0, pct))

    @property
    def capacity_ah(self) -> float:
        """The smallest cell's capacity: a series string is as big as its smallest cell."""
        return min(self._cap_as) / 3600.0

    @property
    def temperature_c(self) -> float:
        """Lumped pack temperature (°C)."""
        return self._temp_c

    @temperature_c.setter
    def temperature_c(self, value: float) -> None:
        """Force the temperature (tests, fault injection); resistances follow at once."""
        self._temp_c = float(value)
        self._refresh_resistance()
        self._version += 1

    @property
    def resistance_ohm(self) -> float:
        """Total instantaneous (R0 + busbar) series resistance at the present temperature."""
        return sum(self._r0_eff)

    # -- model ----------------------------------------------------------------

    def _refresh_resistance(self, tolerance_k: float = 0.0) -> None:
        """Recompute the temperature-scaled resistances when T moved more than ``tolerance_k``.

        ``apply`` passes 0.05 K (0.2 % in resistance) so that the slow thermal drift
        does not cost a recomputation on every step.
        """
        t = self._temp_c
        if abs(t - self._rf_temp) <= tolerance_k:
            return
        self._rf_temp = t
        f = self._rf_factor = resistance_factor(t)
        self._r0_eff = [r * f + b for r, b in zip(self._r0, self._bus, strict=True)]
        self._r1_eff = [r * f for r in self._r1]
        self._r_total = sum(self._r0_eff) + sum(self._r1_eff)
        self._decay_dt = -1.0  # the RC gains depend on R1: recompute on the next step

    def cell_ocvs(self) -> list[float]:
        """Each cell's open-circuit voltage now (V): the mean curve plus its hysteresis."""
        return ocv_many_hysteresis(self._soc, self.cell_hysteresis, self._h_plateau_v)

    def cell_voltages(self, current_a: float) -> list[float]:
        """Terminal voltage of each cell at ``current_a`` (+ = charging), in volts."""
        if self._cached_version == self._version and self._cached_current == current_a:
            return list(self._cached_cells)
        socs = self._soc
        out: list[float] = []
        append = out.append
        common = self._h_common
        curve = self._curves.get(common) if common is not None else None
        offset = 0.0
        if curve is None and common is not None:
            lo, hi = HYSTERESIS_FULL_RANGE
            if lo <= min(socs) and max(socs) <= hi:
                # one shared h and every cell where H_max is flat: a constant offset
                curve, offset = self._mean_seg, common * self._h_plateau_v
        if curve is not None or not self._h_on:
            # one table lookup per cell: every cell on the same branch (or no hysteresis)
            breaks, base_x, base_y, slope = curve if curve is not None else self._mean_seg
            for s, r, v in zip(socs, self._r0_eff, self._vrc, strict=True):
                i = bisect_right(breaks, s)
                append(base_y[i] + (s - base_x[i]) * slope[i] + current_a * r + v + offset)
        else:
            breaks, base_x, base_y, slope = self._mean_seg
            h_y, h_slope = self._h_seg.base_y, self._h_seg.slope
            hs = self._h if common is None else repeat(common)
            for s, h, r, v in zip(socs, hs, self._r0_eff, self._vrc, strict=False):
                i = bisect_right(breaks, s)
                d = s - base_x[i]
                append(base_y[i] + d * slope[i] + h * (h_y[i] + d * h_slope[i]) + current_a * r + v)
        if current_a != 0.0:
            charging = current_a > 0.0
            # most of the time every cell is on the plateau: one min/max decides that
            near_end = max(socs) >= 1.0 - _KNEE_RANGE if charging else min(socs) <= _KNEE_RANGE
            if near_end:
                f = self._rf_factor
                for i, s in enumerate(socs):
                    if (1.0 - s if charging else s) <= _KNEE_RANGE:
                        out[i] += current_a * knee_resistance(s, charging, self._knee[i] * f)
        self._cached_version = self._version
        self._cached_current = current_a
        self._cached_cells = out
        return list(out)

    def voltage(self, current_a: float) -> float:
        """Pack terminal voltage at ``current_a``: the sum of the cell voltages."""
        if self._cached_version == self._version and self._cached_current == current_a:
            return sum(self._cached_cells)
        return sum(self.cell_voltages(current_a))

    def apply(self, current_a: float, dt_s: float, ambient_c: float) -> None:
        """Let ``current_a`` flow for ``dt_s`` seconds with the pack in ``ambient_c`` air.

        SoC by coulomb counting against each cell's own capacity (clamped to the OCV
        model's domain), hysteresis by its exact exponential in throughput, RC states by
        the exact exponential solution for this ``dt_s`` (held constant current),
        temperature by one explicit Euler step.
        """
        if dt_s <= 0.0:
            return
        if dt_s != self._decay_dt:
            self._decays = [math.exp(-dt_s / tau) for tau in self._tau]
            self._rc_gains = [
                r * (1.0 - d) for r, d in zip(self._r1_eff, self._decays, strict=True)
            ]
            self._decay_dt = dt_s
        charge = current_a * dt_s
        lo, hi = SOC_MIN, SOC_CEILING
        soc = self._soc
        for i, inv in enumerate(self._inv_cap_as):
            s = soc[i] + charge * inv
            soc[i] = lo if s < lo else hi if s > hi else s
        if charge != 0.0 and self._h_on:
            self._drift_hysteresis(charge)
        # RC pair, exact for a held current: v' = v·e^(−dt/τ) + I·R1·(1 − e^(−dt/τ))
        self._vrc = [
            v * d + current_a * g
            for v, d, g in zip(self._vrc, self._decays, self._rc_gains, strict=True)
        ]
        # Thermal step with the resistances of the step just taken.
        t = self._temp_c
        heat_w = current_a * current_a * self._r_total
        t += dt_s * (heat_w - self._ua_w_per_k * (t - ambient_c)) / self._heat_capacity_j_per_k
        self._temp_c = t
        self._refresh_resistance(_RESISTANCE_REFRESH_K)
        self._version += 1

    def _drift_hysteresis(self, charge_as: float) -> None:
        """Move h towards +1 (charge > 0) or −1 for ``charge_as`` coulombs of throughput."""
        branch = 1.0 if charge_as > 0.0 else -1.0
        common = self._h_common
        if common == branch:
            return  # settled on this branch: nothing moves
        k = math.exp(-abs(charge_as) * self._h_rate)
        if common is not None:
            d = (common - branch) * k
            self._h_common = branch if -_H_SNAP < d < _H_SNAP else branch + d
            return
        h = self._h = [branch + (x - branch) * k for x in self._h]
        if max(h) - branch < _H_SNAP and branch - min(h) < _H_SNAP:
            self._h_common = branch

    def bleed(self, currents_a: Sequence[float], dt_s: float) -> None:
        """Take ``currents_a[i]`` amps (≥ 0) out of cell i alone for ``dt_s`` seconds.

        What a balancer's bleed resistor does: the cell's SoC falls (never below the
        model's floor; only what really left is counted in ``bled_ah``) and the energy
        heats the pack.
        """
        soc = self._soc
        if len(currents_a) != len(soc):
            raise ValueError(f"need {len(soc)} bleed currents, got {len(currents_a)}")
        if not (min(currents_a, default=0.0) >= 0.0 and math.isfinite(sum(currents_a))):
            raise ValueError(f"bleed currents must be finite and >= 0 A: {list(currents_a)}")
        if dt_s <= 0.0:
            return
        volts = self._cached_cells or ocv_many_hysteresis(
            soc, self.cell_hysteresis, self._h_plateau_v
        )
        inv_cap = self._inv_cap_as
        bled = self._bled_as
        heat_j = 0.0
        for i, c in enumerate(currents_a):
            if c:
                q = c * dt_s
                s = soc[i] - q * inv_cap[i]
                if s < SOC_MIN:  # only what the cell still holds can leave
                    q -= (SOC_MIN - s) * self._cap_as[i]
                    s = SOC_MIN
                    if q <= 0.0:
                        continue
                soc[i] = s
                bled[i] += q
                heat_j += q * volts[i]
        if heat_j > 0.0:
            self._temp_c += heat_j / self._heat_capacity_j_per_k
            self._refresh_resistance(_RESISTANCE_REFRESH_K)
        self._version += 1
