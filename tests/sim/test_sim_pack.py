"""The pack model: seeded spread, coulomb counting, R0 + RC voltage, thermal node."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.sim.ocv import SOC_MIN, ocv
from bmslink.sim.pack import SOC_CEILING, CellParams, Pack, knee_resistance, resistance_factor


def uniform_pack(n: int = 16, soc: float = 0.5, ambient_c: float = 25.0) -> Pack:
    """Identical cells: 280 Ah, R0 0.3 mΩ + 0.1 mΩ busbar, R1 0.15 mΩ, tau 45 s."""
    cells = [CellParams(280.0, soc, 0.30e-3, 0.15e-3, 45.0, busbar_ohm=0.1e-3) for _ in range(n)]
    return Pack(cells, ambient_c=ambient_c)


# -- construction -------------------------------------------------------------


def test_lfp_16s_is_reproducible_for_a_seed() -> None:
    a, b = Pack.lfp(16, seed=7), Pack.lfp(16, seed=7)
    assert a.cells == b.cells
    assert a.cells != Pack.lfp(16, seed=8).cells
    assert a.n_cells == 16


def test_lfp_16s_spread_is_clipped_to_three_sigma() -> None:
    for seed in range(30):
        p = Pack.lfp(16, seed=seed, capacity_spread=0.02, soc_spread=0.01, r_spread=0.05)
        for c in p.cells:
            assert 280.0 * 0.94 - 1e-9 <= c.capacity_ah <= 280.0 * 1.06 + 1e-9
            assert 0.47 - 1e-12 <= c.soc <= 0.53 + 1e-12
            assert 0.30e-3 * 0.85 - 1e-12 <= c.r0_ohm <= 0.30e-3 * 1.15 + 1e-12
            assert c.busbar_ohm == pytest.approx(0.1e-3)
            assert c.tau_s == 45.0


def test_lfp_16s_without_spread_is_uniform() -> None:
    p = Pack.lfp(16, capacity_spread=0, soc_spread=0, r_spread=0)
    assert len({(c.capacity_ah, c.soc, c.r0_ohm, c.r1_ohm) for c in p.cells}) == 1
    assert p.cells[0].r0_ohm == pytest.approx(0.30e-3)
    assert p.cells[0].r1_ohm == pytest.approx(0.15e-3)


def test_capacity_is_the_smallest_cell_and_soc_is_capacity_weighted() -> None:
    cells = [
        CellParams(100.0, 0.2, 1e-3, 1e-3, 30.0),
        CellParams(300.0, 0.6, 1e-3, 1e-3, 30.0),
    ]
    p = Pack(cells)
    assert p.capacity_ah == pytest.approx(100.0)
    assert p.soc_pct == pytest.approx(100 * (0.2 * 100 + 0.6 * 300) / 400)


def test_soc_pct_is_clamped_to_0_100() -> None:
    assert uniform_pack(soc=1.01).soc_pct == 100.0
    assert uniform_pack(soc=-0.01).soc_pct == 0.0


def test_rejects_empty_and_nonsense() -> None:
    with pytest.raises(ValueError):
        Pack([])
    with pytest.raises(ValueError):
        Pack([CellParams(0.0, 0.5, 1e-3, 1e-3, 30.0)])


# -- charge -------------------------------------------------------------------


@settings(max_examples=100)
@given(
    current=st.floats(min_value=-120.0, max_value=120.0),  # never reaches a clamp
    seconds=st.floats(min_value=1.0, max_value=3600.0),
    dt=st.floats(min_value=0.5, max_value=10.0),
    seed=st.integers(0, 1000),
)
def test_coulomb_counting_conserves_charge(
    current: float, seconds: float, dt: float, seed: int
) -> None:
    p = Pack.lfp(16, seed=seed, soc=0.5)
    start = p.cell_socs
    steps = max(1, round(seconds / dt))
    for _ in range(steps):
        p.apply(current, dt, 25.0)
    moved = p.cell_socs
    for _ in range(steps):
        p.apply(-current, dt, 25.0)
    for s0, s1 in zip(start, p.cell_socs, strict=True):
        assert s1 == pytest.approx(s0, abs=1e-9)
    # and the excursion was what coulomb counting says, per cell capacity
    for s0, s1, c in zip(start, moved, p.cells, strict=True):
        assert s1 - s0 == pytest.approx(current * dt * steps / (3600 * c.capacity_ah), abs=1e-9)


def test_cell_soc_is_clamped_to_the_model_domain() -> None:
    p = uniform_pack(soc=0.99)
    p.apply(1000.0, 3600.0, 25.0)
    assert p.cell_socs == [SOC_CEILING] * 16
    p.apply(-1000.0, 3 * 3600.0, 25.0)
    assert p.cell_socs == [SOC_MIN] * 16


# -- voltage ------------------------------------------------------------------


def test_rested_voltage_is_ocv() -> None:
    p = uniform_pack(soc=0.5)
    assert p.cell_voltages(0.0) == [pytest.approx(ocv(0.5))] * 16
    assert p.voltage(0.0) == pytest.approx(16 * 3.271)


def test_current_step_shows_r0_then_rc_builds_up() -> None:
    p = uniform_pack(soc=0.5, ambient_c=25.0)
    r0 = 0.30e-3 + 0.1e-3
    # instantaneous: only R0 (+ busbar); charging raises, discharging lowers
    assert p.voltage(100.0) - p.voltage(0.0) == pytest.approx(16 * 100.0 * r0)
    assert p.voltage(-100.0) - p.voltage(0.0) == pytest.approx(-16 * 100.0 * r0)
    # after many tau the RC pair holds I * R1 (minus the tiny OCV movement)
    soc_before = p.cell_socs[0]
    p.apply(100.0, 600.0, 25.0)
    p.temperature_c = 25.0
    expected = ocv(p.cell_socs[0]) + 100.0 * r0 + 100.0 * 0.15e-3 * (1 - math.exp(-600 / 45))
    assert p.cell_voltages(100.0)[0] == pytest.approx(expected, abs=1e-9)
    assert p.cell_socs[0] > soc_before


@given(steps=st.integers(1, 20), current=st.floats(-150.0, 150.0))
def test_rc_update_is_exact_for_any_dt(steps: int, current: float) -> None:
    """One step of n·dt equals n steps of dt: nothing depends on the step size."""
    fine, coarse = uniform_pack(), uniform_pack()
    for _ in range(steps):
        fine.apply(current, 1.0, 25.0)
    coarse.apply(current, float(steps), 25.0)
    # same heat model is only Euler, so compare at a forced common temperature
    fine.temperature_c = coarse.temperature_c = 25.0
    for a, b in zip(fine.cell_voltages(current), coarse.cell_voltages(current), strict=True):
        assert a == pytest.approx(b, abs=1e-9)


def test_varying_dt_between_calls() -> None:
    p, q = uniform_pack(), uniform_pack()
    for dt in (1.0, 3.0, 10.0, 2.5, 1.0, 7.5):
        p.apply(50.0, dt, 25.0)
    q.apply(50.0, 25.0, 25.0)
    p.temperature_c = q.temperature_c = 25.0
    assert p.voltage(50.0) == pytest.approx(q.voltage(50.0), abs=1e-9)


def test_cell_voltages_returns_a_fresh_list() -> None:
    p = uniform_pack()
    v = p.cell_voltages(10.0)
    v[0] = 99.0
    assert p.cell_voltages(10.0)[0] != 99.0


# -- temperature ----------------------------------------------------------------


def test_resistance_doubles_per_18_k_of_cooling() -> None:
    assert resistance_factor(25.0) == pytest.approx(1.0)
    assert resistance_factor(7.0) == pytest.approx(2.0)
    assert resistance_factor(-11.0) == pytest.approx(4.0)
    assert resistance_factor(43.0) == pytest.approx(0.5)
    assert resistance_factor(-200.0) == 32.0
    p = uniform_pack(ambient_c=25.0)
    warm = p.voltage(100.0) - p.voltage(0.0)
    p.temperature_c = 7.0
    cold = p.voltage(100.0) - p.voltage(0.0)
    # busbar is not temperature dependent: 0.3 mΩ doubles, 0.1 mΩ stays
    assert cold / warm == pytest.approx((0.6 + 0.1) / (0.3 + 0.1))


def test_joule_heat_warms_and_ambient_cools() -> None:
    p = uniform_pack(ambient_c=20.0)
    assert p.temperature_c == 20.0
    for _ in range(360):
        p.apply(140.0, 10.0, 20.0)  # one hour at 0.5 C
        p.apply(-140.0, 10.0, 20.0)
    hot = p.temperature_c
    # I²R ≈ 140² · 16 · (R0 + bus + R1) ≈ 160 W into 90.7 kJ/K with UA 24 W/K
    assert 21.0 < hot < 28.0
    for _ in range(8 * 360):
        p.apply(0.0, 10.0, 20.0)
    assert p.temperature_c == pytest.approx(20.0, abs=0.1)


def test_follows_ambient_with_an_hour_scale_time_constant() -> None:
    p = uniform_pack(ambient_c=20.0)
    tau = 16 * 5.4 * 1050 / (16 * 1.5)
    for _ in range(int(tau)):
        p.apply(0.0, 1.0, 30.0)
    assert p.temperature_c == pytest.approx(30.0 - 10.0 / math.e, abs=0.05)


# -- knees are overpotential --------------------------------------------------


def test_full_cell_climbs_under_charge_and_relaxes_at_rest() -> None:
    """The 3.45 -> 3.65 V rise exists only while current flows (reference §1.1/§1.7)."""
    p = uniform_pack(soc=1.0)
    at_rest = max(p.cell_voltages(0.0))
    charging = max(p.cell_voltages(100.0))
    assert at_rest == pytest.approx(3.40, abs=1e-9)
    assert charging > 3.65
    half_full = uniform_pack(soc=0.5)
    assert max(half_full.cell_voltages(100.0)) < 3.32  # plateau: only IR


def test_knee_resistance_grows_towards_and_past_the_ends() -> None:
    r = [knee_resistance(s, True, 1.0) for s in (0.93, 0.97, 0.99, 1.0, 1.002, 1.005)]
    assert r[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(r))
    assert knee_resistance(0.5, True, 1.0) == knee_resistance(0.5, False, 1.0) == 0.0
    assert knee_resistance(0.01, False, 1.0) > knee_resistance(0.03, False, 1.0) > 0.0
    assert knee_resistance(0.01, True, 1.0) == 0.0  # charging an empty cell: no knee


def test_tail_current_decays_at_a_held_charge_voltage() -> None:
    """Held at 3.45 V per cell, a full cell's current falls towards zero, as on real LFP."""
    p = uniform_pack(soc=0.995)
    current = 10.0
    for _ in range(3600):
        # the current that puts the highest cell at 3.45 V: bisection on the model
        lo, hi = 0.0, 200.0
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if max(p.cell_voltages(mid)) < 3.45 else (lo, mid)
        current = lo
        p.apply(current, 2.0, 25.0)
    assert current < 0.5
