"""The day profile: pure functions of (seed, t), the stated shapes, daily wrap."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.sim.day import DAY_S, DayProfile

H = 3600.0
times = st.floats(min_value=0.0, max_value=30 * DAY_S)


@given(seed=st.integers(-(2**40), 2**40), ts=st.lists(times, min_size=1, max_size=20))
def test_deterministic_for_a_seed_and_independent_of_sampling_order(
    seed: int, ts: list[float]
) -> None:
    a = DayProfile(seed=seed, cloudiness=0.8)
    b = DayProfile(seed=seed, cloudiness=0.8)
    forward = [(a.pv_w(t), a.load_w(t), a.ambient_c(t)) for t in ts]
    backward = [(b.pv_w(t), b.load_w(t), b.ambient_c(t)) for t in reversed(ts)]
    assert forward == backward[::-1]


def test_seeds_give_different_clouds() -> None:
    a, b = DayProfile(seed=1, cloudiness=0.7), DayProfile(seed=2, cloudiness=0.7)
    noon = [13 * H + k * 60.0 for k in range(60)]
    assert [a.pv_w(t) for t in noon] != [b.pv_w(t) for t in noon]


def test_clear_sky_bell() -> None:
    d = DayProfile(pv_peak_w=7000.0)
    assert d.pv_w(13 * H) == pytest.approx(7000.0)
    for hour in (0.0, 3.0, 5.99, 6.0, 20.0, 22.0, 23.99):
        assert d.pv_w(hour * H) == 0.0
    assert d.pv_w(9 * H) == pytest.approx(d.pv_w(17 * H))  # symmetric about 13:00
    assert 0.0 < d.pv_w(6.5 * H) < d.pv_w(10 * H) < d.pv_w(12 * H)


@given(t=times)
def test_daily_wrap(t: float) -> None:
    d = DayProfile(cloudiness=0.0)
    assert d.pv_w(t) == pytest.approx(d.pv_w(t + DAY_S), abs=1e-6)
    assert d.load_w(t) == pytest.approx(d.load_w(t + DAY_S), abs=1e-6)
    assert d.ambient_c(t) == pytest.approx(d.ambient_c(t + DAY_S), abs=1e-9)


@given(t=times, seed=st.integers(0, 1000), cloudiness=st.floats(0.0, 1.0))
def test_ranges(t: float, seed: int, cloudiness: float) -> None:
    d = DayProfile(seed=seed, pv_peak_w=5000.0, base_load_w=300.0, cloudiness=cloudiness)
    assert 0.0 <= d.pv_w(t) <= 5000.0 + 1e-9
    assert d.pv_w(t) >= (1.0 - cloudiness) * DayProfile(pv_peak_w=5000.0).pv_w(t) - 1e-9
    assert 300.0 <= d.load_w(t) <= 300.0 + 2500.0 + 1e-9
    assert 12.0 - 1e-9 <= d.ambient_c(t) <= 24.0 + 1e-9


def test_clouds_vary_slowly() -> None:
    d = DayProfile(seed=5, cloudiness=1.0)
    noon = [12 * H + k for k in range(3600)]
    pv = [d.pv_w(t) for t in noon]
    assert max(pv) - min(pv) > 500.0  # clouds do something over an hour
    assert max(abs(b - a) for a, b in itertools.pairwise(pv)) < 100.0  # < 100 W/s


def test_load_peaks() -> None:
    d = DayProfile(base_load_w=350.0)
    assert d.load_w(3 * H) == 350.0
    assert d.load_w(8 * H) == pytest.approx(350.0 + 1200.0)
    assert d.load_w(19.75 * H) == pytest.approx(350.0 + 2500.0)
    assert d.load_w(12 * H) == 350.0
    assert d.load_w(7 * H) == pytest.approx(350.0)
    assert d.load_w(22 * H) == pytest.approx(350.0)
    steps = [d.load_w(k * 10.0) for k in range(8640)]
    assert max(abs(b - a) for a, b in itertools.pairwise(steps)) < 20.0  # smooth


def test_ambient_extremes_and_continuity() -> None:
    d = DayProfile()
    assert d.ambient_c(5 * H) == pytest.approx(12.0)
    assert d.ambient_c(15 * H) == pytest.approx(24.0)
    assert d.ambient_c(5 * H + 60) > 12.0 and d.ambient_c(5 * H - 60) > 12.0
    assert d.ambient_c(15 * H + 60) < 24.0 and d.ambient_c(15 * H - 60) < 24.0
    series = [d.ambient_c(k * 60.0) for k in range(2 * 1440 + 1)]
    assert max(abs(b - a) for a, b in itertools.pairwise(series)) < 0.05


def test_cloudiness_must_be_a_fraction() -> None:
    with pytest.raises(ValueError):
        DayProfile(cloudiness=1.5)


@given(t=times, offset=st.floats(-40.0, 40.0), seed=st.integers(0, 1000))
def test_ambient_offset_shifts_the_temperature_and_nothing_else(
    t: float, offset: float, seed: int
) -> None:
    base = DayProfile(seed=seed, cloudiness=0.5)
    shifted = DayProfile(seed=seed, cloudiness=0.5, ambient_offset_c=offset)
    assert shifted.ambient_c(t) == pytest.approx(base.ambient_c(t) + offset, abs=1e-9)
    assert shifted.pv_w(t) == base.pv_w(t)
    assert shifted.load_w(t) == base.load_w(t)


@pytest.mark.parametrize(
    "kwargs",
    [{"ambient_offset_c": float("nan")}, {"pv_peak_w": -1.0}, {"base_load_w": -5.0}],
)
def test_bad_day_knobs_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DayProfile(**kwargs)
