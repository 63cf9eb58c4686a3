"""The pack model: seeded spread, coulomb counting, R0 + RC voltage, thermal node,
OCV hysteresis, a weak cell, and the balancer's bleed."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.sim.ocv import HYSTERESIS_PLATEAU_V, SOC_MIN, hysteresis_max, ocv
from bmslink.sim.pack import (
    HYSTERESIS_DECAY_FRACTION,
    SOC_CEILING,
    CellParams,
    Pack,
    knee_resistance,
    resistance_factor,
)


def uniform_pack(
    n: int = 16,
    soc: float = 0.5,
    ambient_c: float = 25.0,
    hysteresis_v: float = HYSTERESIS_PLATEAU_V,
    h: float | list[float] = 0.0,
) -> Pack:
    """Identical cells: 280 Ah, R0 0.3 mΩ + 0.1 mΩ busbar, R1 0.15 mΩ, tau 45 s."""
    hs = h if isinstance(h, list) else [h] * n
    cells = [
        CellParams(280.0, soc, 0.30e-3, 0.15e-3, 45.0, busbar_ohm=0.1e-3, hysteresis=hs[i])
        for i in range(n)
    ]
    return Pack(cells, ambient_c=ambient_c, hysteresis_v=hysteresis_v)


#: The documented default decay charge of h for a 280 Ah cell, in coulombs.
DECAY_AS_280 = HYSTERESIS_DECAY_FRACTION * 280.0 * 3600.0


def rest(p: Pack, hours: float = 1.0) -> None:
    """Let the RC polarisation die away (τ = 45 s) without moving any charge."""
    p.apply(0.0, hours * 3600.0, p.temperature_c)


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
    # after many tau the RC pair holds I * R1 (minus the tiny OCV movement); meanwhile
    # 60 000 C of charge moved h from 0 towards the charge branch (one-state model)
    soc_before = p.cell_socs[0]
    p.apply(100.0, 600.0, 25.0)
    p.temperature_c = 25.0
    s = p.cell_socs[0]
    h = 1.0 - math.exp(-60_000.0 / DECAY_AS_280)
    expected = (
        ocv(s) + h * hysteresis_max(s) + 100.0 * r0 + 100.0 * 0.15e-3 * (1 - math.exp(-600 / 45))
    )
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


# -- hysteresis ---------------------------------------------------------------------


def test_rested_ocv_sits_above_the_mean_after_charging_and_below_after_discharging() -> None:
    p = uniform_pack(soc=0.4)
    p.apply(50.0, 3600.0, 25.0)  # 50 Ah in: h close to +1
    rest(p)
    s = p.cell_socs[0]
    above = p.cell_voltages(0.0)[0] - ocv(s)
    assert 0.0 < above <= hysteresis_max(s) + 1e-12
    assert above > 0.9 * HYSTERESIS_PLATEAU_V  # 50 Ah is ~6 decay charges: nearly all of it
    assert p.cell_ocvs()[0] == pytest.approx(p.cell_voltages(0.0)[0], abs=1e-9)

    p.apply(-50.0, 3600.0, 25.0)  # and back out
    rest(p)
    s = p.cell_socs[0]
    below = ocv(s) - p.cell_voltages(0.0)[0]
    assert 0.9 * HYSTERESIS_PLATEAU_V < below <= hysteresis_max(s) + 1e-12


def test_h_relaxes_exponentially_in_throughput() -> None:
    """One decay charge closes the gap to the branch by a factor e, whatever the current."""
    for current in (10.0, 100.0):
        p = uniform_pack(soc=0.5)
        p.apply(current, DECAY_AS_280 / current, 25.0)
        assert p.cell_hysteresis == [pytest.approx(1.0 - 1.0 / math.e, abs=1e-12)] * 16
        p.apply(-current, DECAY_AS_280 / current, 25.0)  # gap 2 - 1/e to -1, times 1/e
        expected = -1.0 + (2.0 - 1.0 / math.e) / math.e
        assert p.cell_hysteresis == [pytest.approx(expected, abs=1e-12)] * 16
    assert Pack.lfp(capacity_ah=100.0).hysteresis_decay_ah == pytest.approx(3.0, rel=0.03)


def test_h_reaches_the_branch_and_stays_there() -> None:
    p = uniform_pack(soc=0.1)
    for _ in range(100):
        p.apply(100.0, 60.0, 25.0)  # 167 Ah, ~20 decay charges
    assert p.cell_hysteresis == [pytest.approx(1.0, abs=1e-4)] * 16
    rest(p)
    assert p.cell_hysteresis == [pytest.approx(1.0, abs=1e-4)] * 16  # rest moves nothing
    s = p.cell_socs[0]
    assert p.cell_voltages(0.0)[0] == pytest.approx(ocv(s) + hysteresis_max(s), abs=1e-6)


def test_zero_amplitude_gives_the_old_curve() -> None:
    p = uniform_pack(soc=0.3, hysteresis_v=0.0, h=1.0)
    assert p.hysteresis_v == 0.0
    for current in (80.0, -30.0, 80.0):
        p.apply(current, 1800.0, 25.0)
        rest(p)
        assert p.cell_voltages(0.0) == [pytest.approx(ocv(s), abs=1e-12) for s in p.cell_socs]


@settings(max_examples=60, deadline=None)
@given(
    start=st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4),
    steps=st.lists(
        st.tuples(st.floats(-300.0, 300.0), st.floats(0.1, 7200.0), st.floats(0.0, 5.0)),
        min_size=1,
        max_size=30,
    ),
)
def test_h_stays_within_its_bounds_along_any_history(
    start: list[float], steps: list[tuple[float, float, float]]
) -> None:
    p = uniform_pack(n=4, soc=0.5, h=start)
    for current, dt, bleed_a in steps:
        p.apply(current, dt, 25.0)
        p.bleed([bleed_a, 0.0, 0.0, 0.0], dt)
        h = p.cell_hysteresis
        assert all(-1.0 <= x <= 1.0 for x in h)
        for v, s, x in zip(p.cell_ocvs(), p.cell_socs, h, strict=True):
            assert v == pytest.approx(ocv(s) + x * hysteresis_max(s), abs=1e-9)
            assert abs(v - ocv(s)) <= HYSTERESIS_PLATEAU_V + 1e-12


@settings(max_examples=30, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(-200.0, 200.0), st.floats(1.0, 600.0)), max_size=20))
def test_cells_with_different_h_match_packs_that_share_it(steps: list[tuple[float, float]]) -> None:
    """The pack tracks one shared h when it can and one per cell otherwise: same physics."""
    starts = [-1.0, -0.3, 0.0, 0.5, 1.0]
    mixed = uniform_pack(n=5, soc=0.5, h=starts)
    shared = [uniform_pack(n=5, soc=0.5, h=x) for x in starts]
    for current, dt in steps:
        for p in (mixed, *shared):
            p.apply(current, dt, 25.0)
    got = mixed.cell_voltages(12.0)
    for i, p in enumerate(shared):
        # h within 1e-4 of a branch is snapped onto it: < 1 µV either way
        assert got[i] == pytest.approx(p.cell_voltages(12.0)[i], abs=1e-6)
        assert mixed.cell_hysteresis[i] == pytest.approx(p.cell_hysteresis[i], abs=1e-4)


def test_rejects_bad_hysteresis_settings() -> None:
    with pytest.raises(ValueError):
        uniform_pack(h=1.5)
    with pytest.raises(ValueError):
        uniform_pack(hysteresis_v=-0.001)
    with pytest.raises(ValueError):
        Pack([CellParams(280.0, 0.5, 1e-3, 1e-3, 30.0)], hysteresis_decay_ah=0.0)


# -- weak cell ------------------------------------------------------------------------


def test_weak_cell_has_less_capacity_more_resistance_and_leaves_the_others_alone() -> None:
    plain = Pack.lfp(16, seed=5)
    weak = Pack.lfp(16, seed=5, weak_cell=7)
    for i, (a, b) in enumerate(zip(plain.cells, weak.cells, strict=True)):
        if i == 6:
            assert b.capacity_ah == pytest.approx(0.85 * a.capacity_ah)
            assert b.r0_ohm == pytest.approx(1.5 * a.r0_ohm)
            assert b.r1_ohm == pytest.approx(1.5 * a.r1_ohm)
            assert (b.soc, b.busbar_ohm, b.tau_s) == (a.soc, a.busbar_ohm, a.tau_s)
        else:
            assert a == b
    assert weak.capacity_ah == pytest.approx(weak.cells[6].capacity_ah)
    assert min(c.capacity_ah for c in weak.cells) == weak.cells[6].capacity_ah
    custom = Pack.lfp(16, seed=5, weak_cell=1, weak_capacity_factor=0.5)
    assert custom.cells[0].capacity_ah == pytest.approx(0.5 * plain.cells[0].capacity_ah)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_weak_cell_reaches_each_knee_first(seed: int) -> None:
    """From mid SoC, 15 % less capacity outruns a 1 % σ SoC spread at either end."""
    for current in (50.0, -50.0):
        p = Pack.lfp(16, seed=seed, soc=0.5, weak_cell=11)
        first = None
        for _ in range(3 * 3600):
            p.apply(current, 1.0, 25.0)
            cells = p.cell_voltages(current)
            # past the top knee's 3.45 V, or under the bottom one's 3.00 V
            crossed = [i for i, v in enumerate(cells) if (v >= 3.45 if current > 0 else v <= 3.0)]
            if crossed:
                first = crossed
                break
        assert first == [10]


@pytest.mark.parametrize("bad", [0, 17, -1])
def test_weak_cell_number_is_checked(bad: int) -> None:
    with pytest.raises(ValueError):
        Pack.lfp(16, weak_cell=bad)
    with pytest.raises(ValueError):
        Pack.lfp(16, weak_cell=1, weak_capacity_factor=0.0)


# -- bleed (the balancer's side of the pack) ----------------------------------------


def test_bleed_takes_charge_out_of_the_chosen_cells_only() -> None:
    p = uniform_pack(n=4, soc=0.9)
    before = p.cell_socs
    t0 = p.temperature_c
    p.bleed([0.0, 0.2, 0.0, 1.0], 3600.0)
    after = p.cell_socs
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1] == pytest.approx(before[1] - 0.2 / 280.0, abs=1e-12)
    assert after[3] == pytest.approx(before[3] - 1.0 / 280.0, abs=1e-12)
    assert p.bled_ah == [0.0, pytest.approx(0.2), 0.0, pytest.approx(1.0)]
    # 1.2 Ah at ~3.3 V is ~14 kJ of heat into 4 × 5.4 kg × 1050 J/(kg·K)
    assert p.temperature_c - t0 == pytest.approx(1.2 * 3600 * 3.32 / (4 * 5.4 * 1050), rel=0.02)


def test_bleed_never_takes_more_than_the_cell_holds() -> None:
    p = uniform_pack(n=2, soc=0.0)
    p.bleed([10.0, 0.0], 3600.0)  # 10 Ah asked, 1 % of 280 Ah = 2.8 Ah left above the floor
    assert p.cell_socs[0] == SOC_MIN
    assert p.bled_ah[0] == pytest.approx(2.8)
    p.bleed([10.0, 0.0], 3600.0)
    assert p.bled_ah[0] == pytest.approx(2.8)


@pytest.mark.parametrize(
    "currents", [[-0.1, 0.0], [math.nan, 0.0], [0.0, math.inf], [0.2], [0.2, 0.2, 0.2]]
)
def test_bleed_refuses_nonsense(currents: list[float]) -> None:
    p = uniform_pack(n=2)
    before = p.cell_socs
    with pytest.raises(ValueError):
        p.bleed(currents, 1.0)
    assert p.cell_socs == before and p.bled_ah == [0.0, 0.0]


@settings(max_examples=50, deadline=None)
@given(
    steps=st.lists(  # at most 83 Ah either way: no cell reaches a clamp from 50 %
        st.tuples(
            st.floats(-50.0, 50.0),
            st.floats(1.0, 300.0),
            st.lists(st.floats(0.0, 2.0), min_size=3, max_size=3),
        ),
        max_size=20,
    )
)
def test_bleed_and_current_account_for_every_coulomb(
    steps: list[tuple[float, float, list[float]]],
) -> None:
    p = Pack.lfp(3, soc=0.5, seed=9)
    start = p.cell_socs
    through = 0.0
    for current, dt, bleeds in steps:
        p.apply(current, dt, 25.0)
        p.bleed(bleeds, dt)
        through += current * dt
    for s0, s1, cell, bled in zip(start, p.cell_socs, p.cells, p.bled_ah, strict=True):
        cap_as = cell.capacity_ah * 3600.0
        assert s1 * cap_as == pytest.approx(s0 * cap_as + through - bled * 3600.0, abs=1e-6)
