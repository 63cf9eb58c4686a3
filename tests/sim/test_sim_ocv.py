"""The OCV curve: the reference table exactly, steep knees beyond it, monotone, clamped;
the hysteresis band around it (reference §1.2)."""

from __future__ import annotations

import itertools
from bisect import bisect_right

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.sim.ocv import (
    HYSTERESIS_FRACTION,
    HYSTERESIS_PLATEAU_V,
    HYSTERESIS_SOC,
    SOC_MAX,
    SOC_MIN,
    TABLE_SOC,
    TABLE_V,
    Segments,
    hysteresis_max,
    hysteresis_segments,
    ocv,
    ocv_many,
    ocv_many_hysteresis,
    ocv_segments,
)

# battery-model-and-control.md §1.1, "Recommended simulator table" (SoC %, cell V).
REFERENCE = [
    (0, 3.000),
    (5, 3.120),
    (10, 3.180),
    (15, 3.200),
    (20, 3.215),
    (25, 3.230),
    (30, 3.245),
    (35, 3.255),
    (40, 3.263),
    (45, 3.267),
    (50, 3.271),
    (55, 3.274),
    (60, 3.277),
    (65, 3.282),
    (70, 3.290),
    (75, 3.300),
    (80, 3.306),
    (85, 3.312),
    (90, 3.320),
    (95, 3.340),
    (100, 3.400),
]

socs = st.floats(min_value=-0.05, max_value=1.05, allow_nan=False)


@pytest.mark.parametrize(("pct", "volts"), REFERENCE)
def test_matches_reference_table(pct: int, volts: float) -> None:
    assert ocv(pct / 100) == pytest.approx(volts, abs=1e-9)


@pytest.mark.parametrize(("soc", "volts"), [(-0.01, 2.50), (-0.005, 2.80)])
def test_low_cliff_points(soc: float, volts: float) -> None:
    assert ocv(soc) == pytest.approx(volts, abs=1e-9)


def test_clamped_beyond_domain() -> None:
    assert (SOC_MIN, SOC_MAX) == (-0.01, 1.0)
    assert ocv(-1.0) == ocv(SOC_MIN) == 2.50
    # a full cell *rests* at 3.40 V: the 3.45-3.65 V knee is overpotential (pack.py)
    assert ocv(2.0) == ocv(1.005) == ocv(SOC_MAX) == 3.40


def test_table_strictly_increasing() -> None:
    assert all(b > a for a, b in itertools.pairwise(TABLE_SOC))
    assert all(b > a for a, b in itertools.pairwise(TABLE_V))


def test_ends_are_steeper_than_the_plateau() -> None:
    plateau = (ocv(0.8) - ocv(0.2)) / 0.6
    assert (ocv(1.0) - ocv(0.95)) / 0.05 > 5 * plateau
    assert (ocv(0.0) - ocv(-0.01)) / 0.01 > 50 * plateau


@given(socs, socs)
def test_monotone(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert ocv(lo) <= ocv(hi)


@given(st.integers(min_value=0, max_value=len(TABLE_SOC) - 2), st.floats(0.0, 1.0))
def test_linear_between_neighbouring_points(i: int, w: float) -> None:
    s = TABLE_SOC[i] + w * (TABLE_SOC[i + 1] - TABLE_SOC[i])
    expected = TABLE_V[i] + w * (TABLE_V[i + 1] - TABLE_V[i])
    assert ocv(s) == pytest.approx(expected, abs=1e-9)


@given(st.lists(socs, max_size=20))
def test_ocv_many_equals_ocv(values: list[float]) -> None:
    assert ocv_many(values) == [ocv(v) for v in values]


# -- hysteresis (reference §1.2) ------------------------------------------------------

hs = st.floats(min_value=-1.0, max_value=1.0)


def evaluate(seg: Segments, soc: float) -> float:
    """The documented reading of Segments, written out independently of the module."""
    i = bisect_right(seg.breaks, soc)
    return seg.base_y[i] + (soc - seg.base_x[i]) * seg.slope[i]


def test_hysteresis_amplitude_sits_in_the_reference_band() -> None:
    """§1.2: a 5–25 mV charge/discharge gap, largest on the plateau, shrinking at the ends."""
    gap_on_plateau = 2 * HYSTERESIS_PLATEAU_V
    assert 0.005 <= gap_on_plateau <= 0.025
    assert 0.005 <= HYSTERESIS_PLATEAU_V <= 0.012  # the suggested H_max range
    for soc in (0.10, 0.30, 0.50, 0.70, 0.90):
        assert hysteresis_max(soc) == pytest.approx(HYSTERESIS_PLATEAU_V, abs=1e-12)
    for soc in (-0.5, SOC_MIN, 0.0, 1.0, 1.01, 2.0):
        assert hysteresis_max(soc) == 0.0
    assert 0.0 < hysteresis_max(0.02) < hysteresis_max(0.07) < HYSTERESIS_PLATEAU_V
    assert 0.0 < hysteresis_max(0.98) < hysteresis_max(0.93) < HYSTERESIS_PLATEAU_V


def test_hysteresis_table_is_well_formed() -> None:
    assert len(HYSTERESIS_SOC) == len(HYSTERESIS_FRACTION)
    assert all(b > a for a, b in itertools.pairwise(HYSTERESIS_SOC))
    assert set(HYSTERESIS_SOC) <= set(TABLE_SOC)  # one lookup serves both curves
    assert all(0.0 <= f <= 1.0 for f in HYSTERESIS_FRACTION)


@given(socs)
def test_hysteresis_scales_with_the_plateau_value(soc: float) -> None:
    assert 0.0 <= hysteresis_max(soc) <= HYSTERESIS_PLATEAU_V
    assert hysteresis_max(soc, 0.0) == 0.0
    assert hysteresis_max(soc, 0.004) == pytest.approx(hysteresis_max(soc) / 2, abs=1e-15)


@given(socs, hs)
def test_segments_are_ocv_plus_h_times_hmax(soc: float, h: float) -> None:
    assert evaluate(ocv_segments(), soc) == pytest.approx(ocv(soc), abs=1e-12)
    assert evaluate(hysteresis_segments(), soc) == pytest.approx(hysteresis_max(soc), abs=1e-12)
    expected = ocv(soc) + h * hysteresis_max(soc)
    assert evaluate(ocv_segments(h), soc) == pytest.approx(expected, abs=1e-12)
    assert ocv_many_hysteresis([soc], [h], HYSTERESIS_PLATEAU_V) == [
        pytest.approx(expected, abs=1e-12)
    ]


@given(st.lists(socs, max_size=20))
def test_zero_hysteresis_is_the_mean_curve(values: list[float]) -> None:
    zeros = [0.0] * len(values)
    assert ocv_many_hysteresis(values, zeros, HYSTERESIS_PLATEAU_V) == ocv_many(values)
    ones = [1.0] * len(values)
    assert ocv_many_hysteresis(values, ones, 0.0) == ocv_many(values)


@given(socs, socs, hs)
def test_each_branch_is_monotone(a: float, b: float, h: float) -> None:
    lo, hi = sorted((a, b))
    curve = ocv_segments(h)
    assert evaluate(curve, lo) <= evaluate(curve, hi) + 1e-12


def test_charge_branch_above_discharge_branch_by_at_most_twice_hmax() -> None:
    for soc in (0.02, 0.2, 0.5, 0.8, 0.97):
        up, down = evaluate(ocv_segments(1.0), soc), evaluate(ocv_segments(-1.0), soc)
        assert down < ocv(soc) < up
        assert up - down == pytest.approx(2 * hysteresis_max(soc), abs=1e-12)
    full = [evaluate(ocv_segments(h), 1.0) for h in (-1.0, 0.0, 1.0)]
    assert full == [pytest.approx(3.40, abs=1e-12)] * 3  # a full cell rests at 3.40 V
