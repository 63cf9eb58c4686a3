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
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from bmslink.sim.ocv import SOC_MIN, ocv_many

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

    State lives in plain lists (one entry per cell) because ``apply`` and
    ``cell_voltages`` run tens of thousands of times per simulated day.
    """

    __slots__ = (
        "_bus",
        "_cached_cells",
        "_cached_current",
        "_cached_version",
        "_cap_as",
        "_decay_dt",
        "_decays",
        "_heat_capacity_j_per_k",
        "_knee",
        "_r0",
        "_r0_eff",
        "_r1",
        "_r1_eff",
        "_r_total",
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
    ) -> None:
        if not cells:
            raise ValueError("a pack needs at least one cell")
        for c in cells:
            if c.capacity_ah <= 0.0 or c.tau_s <= 0.0:
                raise ValueError(f"cell capacity and tau must be positive: {c}")
        n = len(cells)
        #: The parameters the pack was built from (SoC here is the *initial* SoC).
        self.cells: tuple[CellParams, ...] = tuple(cells)
        self._soc: list[float] = [min(SOC_CEILING, max(SOC_MIN, c.soc)) for c in cells]
        self._cap_as: list[float] = [c.capacity_ah * 3600.0 for c in cells]
        self._r0: list[float] = [c.r0_ohm for c in cells]
        self._r1: list[float] = [c.r1_ohm for c in cells]
        self._bus: list[float] = [c.busbar_ohm for c in cells]
        self._tau: list[float] = [c.tau_s for c in cells]
        self._knee: list[float] = [KNEE_OHM_280AH * 280.0 / c.capacity_ah for c in cells]
        self._vrc: list[float] = [0.0] * n
        self._decay_dt = -1.0
        self._decays: list[float] = [0.0] * n
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
    ) -> Pack:
        """``series`` LFP cells of ``capacity_ah`` with a reproducible, seeded spread.

        Spreads are relative σ (capacity, resistance) or absolute σ in SoC fraction,
        each draw clipped to ±3σ. Defaults follow reference §1.3/§1.5: R0 0.30 mΩ DC,
        0.1 mΩ busbar, R1 0.15 mΩ, τ 45 s, all at 25 °C; τ has no spread.
        """
        rng = random.Random(seed)
        r0 = 0.30e-3 * 280.0 / capacity_ah  # resistance scales inversely with cell size
        r1 = 0.15e-3 * 280.0 / capacity_ah
        if series < 1:
            raise ValueError(f"a pack needs at least one cell, not {series}")
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
        return cls(cells)

    # -- state ----------------------------------------------------------------

    @property
    def n_cells(self) -> int:
        return len(self._soc)

    @property
    def cell_socs(self) -> list[float]:
        """Each cell's true SoC as a fraction (a copy)."""
        return list(self._soc)

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

    def cell_voltages(self, current_a: float) -> list[float]:
        """Terminal voltage of each cell at ``current_a`` (+ = charging), in volts."""
        if self._cached_version == self._version and self._cached_current == current_a:
            return list(self._cached_cells)
        out = ocv_many(self._soc)
        for i, (r, v) in enumerate(zip(self._r0_eff, self._vrc, strict=True)):
            out[i] += current_a * r + v
        if current_a != 0.0:
            charging = current_a > 0.0
            socs = self._soc
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
        model's domain), RC states by the exact exponential solution for this ``dt_s``
        (held constant current), temperature by one explicit Euler step.
        """
        if dt_s <= 0.0:
            return
        if dt_s != self._decay_dt:
            self._decays = [math.exp(-dt_s / tau) for tau in self._tau]
            self._decay_dt = dt_s
        charge = current_a * dt_s
        lo, hi = SOC_MIN, SOC_CEILING
        soc = self._soc
        for i, c in enumerate(self._cap_as):
            s = soc[i] + charge / c
            soc[i] = lo if s < lo else hi if s > hi else s
        vrc = self._vrc
        for i, (d, r1) in enumerate(zip(self._decays, self._r1_eff, strict=True)):
            target = current_a * r1
            vrc[i] = target + (vrc[i] - target) * d
        # Thermal step with the resistances of the step just taken.
        t = self._temp_c
        heat_w = current_a * current_a * self._r_total
        t += dt_s * (heat_w - self._ua_w_per_k * (t - ambient_c)) / self._heat_capacity_j_per_k
        self._temp_c = t
        self._refresh_resistance(_RESISTANCE_REFRESH_K)
        self._version += 1
