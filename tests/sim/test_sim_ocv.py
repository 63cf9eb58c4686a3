"""The OCV curve: the reference table exactly, steep knees beyond it, monotone, clamped."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.sim.ocv import SOC_MAX, SOC_MIN, TABLE_SOC, TABLE_V, ocv, ocv_many

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
