"""Rested open-circuit voltage of one LFP cell as a function of state of charge.

The core is the 21-point 25 °C table from the reference (battery-model-and-control.md
§1.1, "Recommended simulator table"): 0 % → 3.000 V … 100 % → 3.400 V, a synthesis of
the A123 slow-discharge data and the commonly quoted 3.00–3.40 V resting range.

Below 0 % the table goes on down a cliff, −0.5 % → 2.80 V and −1 % → 2.50 V: the
reference says only ~1 % of capacity is left under 3.00 V (A123 shows 2.90 V at 1 %),
and a deeply discharged cell really does *rest* that low.

The top knee is different: a full cell rests near 3.40 V, and the 3.45 → 3.65 V rise
"in seconds" happens only while current flows. That is charge-acceptance
polarisation, modelled in ``pack.knee_resistance``, not equilibrium voltage, so the
table stops at 100 %. Hysteresis is not modelled: the curve is the mean of the
charge and discharge branches.
"""

from __future__ import annotations

from bisect import bisect_right

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

# Precomputed segment data so that one lookup is a bisect plus one multiply-add:
# voltage = _BASE_V[i] + (soc - _BASE_SOC[i]) * _SLOPE[i] for segment i.
_BASE_SOC: list[float] = list(TABLE_SOC[:-1])
_BASE_V: list[float] = list(TABLE_V[:-1])
_SLOPE: list[float] = [
    (TABLE_V[i + 1] - TABLE_V[i]) / (TABLE_SOC[i + 1] - TABLE_SOC[i])
    for i in range(len(TABLE_SOC) - 1)
]
# Interior breakpoints: bisect_right over these gives the segment index directly.
_BREAKS: list[float] = list(TABLE_SOC[1:-1])
_V_MIN: float = TABLE_V[0]
_V_MAX: float = TABLE_V[-1]


def ocv(soc: float) -> float:
    """Rested cell OCV (V) for ``soc`` as a fraction; clamped to the table's ends."""
    if soc <= SOC_MIN:
        return _V_MIN
    if soc >= SOC_MAX:
        return _V_MAX
    i = bisect_right(_BREAKS, soc)
    return _BASE_V[i] + (soc - _BASE_SOC[i]) * _SLOPE[i]


def ocv_many(socs: list[float]) -> list[float]:
    """OCV for each SoC in ``socs``; the same as ``[ocv(s) for s in socs]``, only faster."""
    breaks, base_soc, base_v, slope = _BREAKS, _BASE_SOC, _BASE_V, _SLOPE
    lo, hi, v_lo, v_hi = SOC_MIN, SOC_MAX, _V_MIN, _V_MAX
    out: list[float] = []
    append = out.append
    for s in socs:
        if s <= lo:
            append(v_lo)
        elif s >= hi:
            append(v_hi)
        else:
            i = bisect_right(breaks, s)
            append(base_v[i] + (s - base_soc[i]) * slope[i])
    return out
