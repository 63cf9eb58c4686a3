"""Rested open-circuit voltage of one LFP cell as a function of state of charge.

The core is the 21-point 25 °C table from the reference (battery-model-and-control.md
§1.1, "Recommended simulator table"): 0 % → 3.000 V … 100 % → 3.400 V, a synthesis of
the A123 slow-discharge data and the commonly quoted 3.00–3.40 V resting range. It is
the *mean* of the charge and discharge branches.

Below 0 % the table goes on down a cliff, −0.5 % → 2.80 V and −1 % → 2.50 V: the
reference says only ~1 % of capacity is left under 3.00 V (A123 shows 2.90 V at 1 %),
and a deeply discharged cell really does *rest* that low.

The top knee is different: a full cell rests near 3.40 V, and the 3.45 → 3.65 V rise
"in seconds" happens only while current flows. That is charge-acceptance
polarisation, modelled in ``pack.knee_resistance``, not equilibrium voltage, so the
table stops at 100 %.

Hysteresis (reference §1.2, one-state model): a rested cell sits ``h · H_max(soc)``
above the mean curve, with ``h`` in [−1, +1] kept by ``pack.Pack`` (+1 after charging,
−1 after discharging). The reference gives a 5–25 mV total gap, largest on the
plateau, and suggests H_max ≈ 5–12 mV "shrinking towards 0 at the ends" without a
shape; **our assumption**: 8 mV (``HYSTERESIS_PLATEAU_V``) from 10 % to 90 %, linear
to half of that at 5 % / 95 % and to 0 at 0 % / 100 % and beyond (table
``HYSTERESIS_SOC`` / ``HYSTERESIS_FRACTION``). Zero at 100 % keeps a full cell's rest
at 3.40 V whatever its history. The shape's breakpoints are breakpoints of the OCV
table, so OCV + h·H_max stays piecewise linear on the same segments (one lookup for
both). It is also monotone in SoC for any fixed h while the plateau value is below
40 mV: the shape only slopes (by 10 per unit SoC) where the OCV slope is ≥ 0.4 V per unit.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import NamedTuple

#: Table state of charge, as fractions (1.0 = 100 %).
TABLE_SOC: tuple[float, ...] = (
    -0.010,
    -0.005,
    *(i / 20 for i in range(21)),
)

#: Table cell OCV in volts, same order as TABLE_SOC.
TABLE_V: tuple[float, ...] = (
    2.500,
    2.800,
    3.000,
    3.120,
    3.180,
    3.200,
    3.215,
    3.230,
    3.245,
    3.255,
    3.263,
    3.267,
    3.271,
    3.274,
    3.277,
    3.282,
    3.290,
    3.300,
    3.306,
    3.312,
    3.320,
    3.340,
    3.400,
)

#: The model's SoC domain: a cell's SoC is clamped to these (fractions).
SOC_MIN: float = TABLE_SOC[0]
SOC_MAX: float = TABLE_SOC[-1]

#: H_max on the plateau (V): half the charge/discharge gap, reference §1.2 (assumption 8 mV).
HYSTERESIS_PLATEAU_V: float = 0.008
#: SoC points (fractions) of the hysteresis shape; each must be a TABLE_SOC point.
HYSTERESIS_SOC: tuple[float, ...] = (0.0, 0.05, 0.10, 0.90, 0.95, 1.0)
#: H_max at those points as a fraction of the plateau value; flat (0) beyond the ends.
HYSTERESIS_FRACTION: tuple[float, ...] = (0.0, 0.5, 1.0, 1.0, 0.5, 0.0)
#: The SoC range (fractions, inclusive) over which H_max is the whole plateau value.
HYSTERESIS_FULL_RANGE: tuple[float, float] = (
    min(x for x, f in zip(HYSTERESIS_SOC, HYSTERESIS_FRACTION, strict=True) if f == 1.0),
    max(x for x, f in zip(HYSTERESIS_SOC, HYSTERESIS_FRACTION, strict=True) if f == 1.0),
)


def _interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Linear interpolation through (xs, ys), flat beyond the ends (table build only)."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect_right(xs, x) - 1
    return ys[i] + (x - xs[i]) * (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])


def _check_tables() -> None:
    if len(HYSTERESIS_SOC) != len(HYSTERESIS_FRACTION):
        raise ValueError("hysteresis table columns differ in length")
    missing = [s for s in HYSTERESIS_SOC if s not in TABLE_SOC]
    if missing:
        raise ValueError(f"hysteresis breakpoints not in the OCV table: {missing}")
    if HYSTERESIS_FRACTION[0] != 0.0 or HYSTERESIS_FRACTION[-1] != 0.0:
        raise ValueError("hysteresis must vanish at the table's ends")
    lo, hi = HYSTERESIS_FULL_RANGE
    inside = [f for x, f in zip(HYSTERESIS_SOC, HYSTERESIS_FRACTION, strict=True) if lo <= x <= hi]
    if any(f != 1.0 for f in inside) or max(HYSTERESIS_FRACTION) != 1.0:
        raise ValueError("the full-hysteresis points must be one contiguous run at 1.0")


_check_tables()

_H_AT: list[float] = [_interpolate(HYSTERESIS_SOC, HYSTERESIS_FRACTION, s) for s in TABLE_SOC]


class Segments(NamedTuple):
    """A piecewise-linear curve of SoC as lookup lists, flat beyond the table's ends.

    For ``i = bisect_right(breaks, soc)`` the value is
    ``base_y[i] + (soc - base_x[i]) * slope[i]``; segment 0 (below the table) and the
    last one (at or above 100 %) have slope 0. All curves here share ``breaks`` and
    ``base_x``, so one index serves several of them.
    """

    breaks: list[float]
    base_x: list[float]
    base_y: list[float]
    slope: list[float]


def _segments(ys: Sequence[float]) -> Segments:
    """The Segments of the curve through (TABLE_SOC, ys)."""
    xs = TABLE_SOC
    inner = range(len(xs) - 1)
    return Segments(
        breaks=list(xs),
        base_x=[xs[0], *xs[:-1], xs[-1]],
        base_y=[ys[0], *ys[:-1], ys[-1]],
        slope=[0.0, *((ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]) for i in inner), 0.0],
    )


def ocv_segments(h: float = 0.0, plateau_v: float = HYSTERESIS_PLATEAU_V) -> Segments:
    """The rested OCV curve of a cell whose hysteresis state is ``h``, as Segments.

    ``h = 0`` is the mean curve (``ocv``); ``h = ±1`` the charge / discharge branch.
    """
    return _segments([v + h * plateau_v * f for v, f in zip(TABLE_V, _H_AT, strict=True)])


def hysteresis_segments(plateau_v: float = HYSTERESIS_PLATEAU_V) -> Segments:
    """H_max(soc) in volts (``hysteresis_max``) as Segments on the OCV table's breakpoints."""
    return _segments([plateau_v * f for f in _H_AT])


#: The mean curve and the hysteresis shape (fraction of the plateau amplitude) as Segments:
#: one ``bisect_right`` and a multiply-add per lookup, flat beyond the table's ends.
_MEAN: Segments = _segments(TABLE_V)
_SHAPE: Segments = _segments(_H_AT)


def ocv(soc: float) -> float:
    """Rested cell OCV (V) on the mean curve for ``soc`` as a fraction; clamped at the ends."""
    breaks, base_x, base_y, slope = _MEAN
    i = bisect_right(breaks, soc)
    return base_y[i] + (soc - base_x[i]) * slope[i]


def hysteresis_max(soc: float, plateau_v: float = HYSTERESIS_PLATEAU_V) -> float:
    """H_max (V) at ``soc``: ``plateau_v`` times the shape table; 0 at and beyond the ends."""
    breaks, base_x, base_y, slope = _SHAPE
    i = bisect_right(breaks, soc)
    return plateau_v * (base_y[i] + (soc - base_x[i]) * slope[i])


def ocv_many(socs: list[float]) -> list[float]:
    """OCV for each SoC in ``socs``; the same as ``[ocv(s) for s in socs]``, only faster."""
    breaks, base_x, base_y, slope = _MEAN
    out: list[float] = []
    append = out.append
    for s in socs:
        i = bisect_right(breaks, s)
        append(base_y[i] + (s - base_x[i]) * slope[i])
    return out


def ocv_many_hysteresis(socs: list[float], hs: list[float], plateau_v: float) -> list[float]:
    """``ocv(s) + h * hysteresis_max(s, plateau_v)`` for each pair, in one lookup per cell."""
    breaks, base_x, base_y, slope = _MEAN
    h_y, h_slope = _SHAPE.base_y, _SHAPE.slope
    out: list[float] = []
    append = out.append
    for s, h in zip(socs, hs, strict=True):
        i = bisect_right(breaks, s)
        d = s - base_x[i]
        append(base_y[i] + d * slope[i] + h * plateau_v * (h_y[i] + d * h_slope[i]))
    return out
