"""The simulated BMS: latching protections, gating, limits, SoC estimate, reported state,
balancing."""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.sim.bms import PROTECTIONS, BmsSettings, SimBms
from bmslink.sim.ocv import SOC_MIN, ocv
from bmslink.sim.pack import SOC_CEILING, CellParams, Pack
from bmslink.state import ALARM_NAMES, BatteryState

C = 280.0  # 1 C in amps
NOT_REPORTED = {"serial", "firmware", "hardware", "packs"}
REPORTED = [f.name for f in fields(BatteryState) if f.name not in NOT_REPORTED]
CHARGE_BLOCKING = {kind for kind, charge, _ in PROTECTIONS if charge}
DISCHARGE_BLOCKING = {kind for kind, charge, _ in PROTECTIONS if not charge}


def uniform_pack(soc: float, ambient_c: float = 25.0, socs: dict[int, float] | None = None) -> Pack:
    """16 identical cells at ``soc``, except cell i (0-based) at ``socs[i]``."""
    socs = socs or {}
    cells = [
        CellParams(280.0, socs.get(i, soc), 0.30e-3, 0.15e-3, 45.0, busbar_ohm=0.1e-3)
        for i in range(16)
    ]
    return Pack(cells, ambient_c=ambient_c)


def step(pack: Pack, bms: SimBms, request_a: float, dt_s: float = 5.0) -> float:
    """One closed-loop step as the simulator wires it: gate, pack (in 25 °C air), BMS."""
    current = bms.gate(request_a)
    pack.apply(current, dt_s, 25.0)
    bms.update(current, dt_s)
    return current


# -- voltage protection -------------------------------------------------------------


def test_over_voltage_latches_blocks_charge_and_releases_below_3v40() -> None:
    pack = Pack.lfp(16, soc=0.9, seed=3)
    bms = SimBms(pack)
    for _ in range(2000):
        step(pack, bms, 0.3 * C)
        if bms.cutoffs:
            break
    state = bms.state()
    assert bms.cutoffs == 1
    assert bms.events[0][0] == "cell_over_voltage"
    assert bms.events[0][1] == f"cell{state.cell_max_id}"
    assert state.cell_max_v is not None and state.cell_max_v >= 3.65
    assert state.alarms == ["high_voltage"]
    assert state.charge_enable is False and state.charge_current_a == 0.0
    assert state.modules_blocking_charge == 1
    assert state.discharge_enable is True
    assert bms.gate(0.3 * C) == 0.0
    assert bms.gate(-10.0) == -10.0

    # At rest the knee's overpotential vanishes and the runner cell relaxes: the latch
    # holds while any cell reads 3.40 V or more and releases once all are below.
    released_at = None
    for _ in range(720):
        step(pack, bms, 0.0)
        if bms.charge_fet:
            released_at = bms.state().cell_max_v
            break
        reading = bms.state().cell_max_v
        assert reading is not None and reading >= 3.40
    assert released_at is not None and released_at < 3.40
    assert bms.cutoffs == 1
    assert bms.state().alarms == []

    # a charger that ignores the limits trips it again: this is what BMS cut-offs
    # in voltage-only mode look like
    for _ in range(200):
        step(pack, bms, 0.3 * C)
        if bms.cutoffs == 2:
            break
    assert bms.cutoffs == 2 and not bms.charge_fet


def test_under_voltage_latches_blocks_discharge_and_releases_above_2v90() -> None:
    pack = Pack.lfp(16, soc=0.1, seed=4)
    bms = SimBms(pack)
    for _ in range(2000):
        step(pack, bms, -0.3 * C)
        if bms.cutoffs:
            break
    state = bms.state()
    assert bms.cutoffs == 1
    assert bms.events[0] == ("cell_under_voltage", f"cell{state.cell_min_id}")
    assert state.cell_min_v is not None and state.cell_min_v <= 2.50
    assert state.alarms == ["low_voltage"]
    assert state.discharge_enable is False and state.discharge_current_a == 0.0
    assert state.modules_blocking_discharge == 1
    assert bms.gate(-0.3 * C) == 0.0
    assert bms.gate(20.0) == 20.0
    assert state.soc_pct == 0.0

    for _ in range(2000):
        step(pack, bms, 0.05 * C)
        after = bms.state().cell_min_v
        assert after is not None
        if bms.discharge_fet:
            assert after > 2.90
            break
        assert after <= 2.90
    assert bms.discharge_fet
    assert bms.cutoffs == 1


# -- temperature protection --------------------------------------------------------


def set_temperature(pack: Pack, bms: SimBms, temperature_c: float) -> BatteryState:
    pack.temperature_c = temperature_c
    bms.update(0.0, 1.0)
    return bms.state()


def test_charge_blocked_below_0c_with_2k_release_hysteresis() -> None:
    pack = uniform_pack(0.5)
    bms = SimBms(pack)
    state = set_temperature(pack, bms, -5.0)
    assert bms.events == [("charge_under_temperature", "T1")]
    assert state.alarms == ["low_temperature_charge"]
    assert state.charge_current_a == 0.0 and state.charge_enable is False
    assert bms.gate(10.0) == 0.0
    assert bms.gate(-10.0) == -10.0  # discharge is fine down to -20 °C
    assert state.discharge_enable is True

    # the coldest sensor reads 0.6 K below the pack; it must reach +2 °C to release
    state = set_temperature(pack, bms, 1.5)
    assert "charge_under_temperature" in bms.latched
    assert state.charge_current_a == 0.0
    state = set_temperature(pack, bms, 2.7)
    assert not bms.latched
    # a limit that was cut is held 30 s, then ramps at 1 A/s (never jumps back)
    assert state.charge_current_a == 0.0
    for _ in range(28):
        bms.update(0.0, 1.0)
    assert bms.state().charge_current_a == 0.0
    for _ in range(12):
        bms.update(0.0, 1.0)
    state = bms.state()
    assert state.charge_enable is True
    assert state.charge_current_a is not None and 5.0 <= state.charge_current_a <= 12.0
    assert bms.cutoffs == 1


def test_charge_blocked_above_45c_discharge_above_60c() -> None:
    pack = uniform_pack(0.5)
    bms = SimBms(pack)
    state = set_temperature(pack, bms, 46.0)
    assert bms.latched == ("charge_over_temperature",)
    assert state.alarms == ["high_temperature_charge"]
    assert bms.gate(5.0) == 0.0 and bms.gate(-5.0) == -5.0
    set_temperature(pack, bms, 43.0)  # hottest sensor 43.7 > 43.0: still latched
    assert bms.latched == ("charge_over_temperature",)
    set_temperature(pack, bms, 42.0)
    assert not bms.latched

    state = set_temperature(pack, bms, 62.0)
    assert set(bms.latched) == {"charge_over_temperature", "discharge_over_temperature"}
    assert state.alarms == ["high_temperature", "high_temperature_charge"]
    assert bms.gate(5.0) == 0.0 and bms.gate(-5.0) == 0.0
    assert state.discharge_current_a == 0.0


def test_discharge_blocked_below_minus_20c() -> None:
    pack = uniform_pack(0.5)
    bms = SimBms(pack)
    state = set_temperature(pack, bms, -25.0)
    assert set(bms.latched) == {"charge_under_temperature", "discharge_under_temperature"}
    assert state.alarms == ["low_temperature", "low_temperature_charge"]
    assert bms.gate(-5.0) == 0.0
    assert state.discharge_enable is False


@pytest.mark.parametrize(
    ("kind", "limit", "release", "outward", "blocks_charge"),
    [
        # (kind, trips beyond, releases at, direction out of the window, blocks charge?)
        ("charge_over_temperature", 45.0, 43.0, +1, True),
        ("charge_under_temperature", 0.0, 2.0, -1, True),
        ("discharge_over_temperature", 60.0, 58.0, +1, False),
        ("discharge_under_temperature", -20.0, -18.0, -1, False),
    ],
)
def test_temperature_protection_trip_and_release_thresholds(
    kind: str, limit: float, release: float, outward: int, blocks_charge: bool
) -> None:
    """Module docstring table: trips strictly past the limit, releases 2 K back inside."""
    pack = uniform_pack(0.5)
    bms = SimBms(pack, BmsSettings(temp_sensor_offsets_c=(0.0,)))  # sensor = pack
    direction = 1.0 if blocks_charge else -1.0
    set_temperature(pack, bms, limit)
    assert kind not in bms.latched
    set_temperature(pack, bms, limit + 0.1 * outward)
    assert kind in bms.latched and bms.events[-1] == (kind, "T1")
    assert bms.gate(direction * 5.0) == 0.0
    set_temperature(pack, bms, release + 0.1 * outward)  # inside the window, not far enough
    assert kind in bms.latched
    set_temperature(pack, bms, release)
    assert kind not in bms.latched
    assert bms.gate(direction * 5.0) == direction * 5.0
    assert bms.cutoffs == len(bms.events)


@pytest.mark.parametrize(
    ("kind", "sign"), [("charge_over_current", 1), ("discharge_over_current", -1)]
)
def test_over_current_trip_threshold_and_release_after_recovery_time(kind: str, sign: int) -> None:
    bms = SimBms(uniform_pack(0.5))
    bms.update(sign * 154.0, 1.0)  # exactly 1.1 × 140 A: not over
    assert not bms.latched
    bms.update(sign * 154.2, 1.0)
    assert bms.latched == (kind,)
    assert bms.gate(sign * 1.0) == 0.0 and bms.gate(-sign * 1.0) == -sign * 1.0
    for _ in range(59):
        bms.update(0.0, 1.0)
    assert bms.latched == (kind,)
    bms.update(0.0, 1.0)
    assert not bms.latched
    assert bms.gate(sign * 1.0) == sign * 1.0


# -- over-current -------------------------------------------------------------------


def test_over_current_latches_then_recovers_after_60_s() -> None:
    pack = uniform_pack(0.5)
    bms = SimBms(pack)
    bms.update(150.0, 1.0)  # below 1.1 × 140 A: only a warning
    assert not bms.latched
    assert "high_charge_current" in (bms.state().warnings or [])
    bms.update(160.0, 1.0)
    assert bms.events == [("charge_over_current", "current")]
    assert bms.state().alarms == ["high_charge_current"]
    assert bms.gate(1.0) == 0.0 and bms.gate(-1.0) == -1.0
    for _ in range(59):
        bms.update(0.0, 1.0)
    assert bms.latched == ("charge_over_current",)
    bms.update(0.0, 1.0)
    assert not bms.latched
    bms.update(-160.0, 1.0)
    assert bms.latched == ("discharge_over_current",)
    assert bms.state().alarms == ["high_discharge_current"]
    assert bms.cutoffs == 2


# -- weak cell --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_a", "kind"), [(0.3 * C, "cell_over_voltage"), (-0.3 * C, "cell_under_voltage")]
)
def test_the_weak_cell_trips_first(request_a: float, kind: str) -> None:
    pack = Pack.lfp(16, soc=0.5, seed=2, weak_cell=9)
    bms = SimBms(pack)
    for _ in range(3000):
        step(pack, bms, request_a, dt_s=5.0)
        if bms.cutoffs:
            break
    assert bms.events == [(kind, "cell9")]


# -- limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vmax", "ccl"),
    [
        (3.30, 140.0),  # plateau: full
        (3.40, 140.0),  # taper start
        (3.475, 70.0),  # halfway down a linear taper to 0 at 3.55 V
        (3.52, 28.0),
        (3.55, 0.0),  # 0 from 3.55 V: 0.1 V below OVP
        (3.60, 0.0),
    ],
)
def test_charge_current_taper_on_the_highest_cell(vmax: float, ccl: float) -> None:
    bms = SimBms(uniform_pack(0.5))
    assert bms.target_limits(3.25, vmax)[0] == pytest.approx(ccl, abs=0.1)


def test_a_cut_limit_recovers_only_with_headroom() -> None:
    """Near full the voltage depends steeply on the current: never raise CCL on a low reading."""
    pack = uniform_pack(1.0)
    bms = SimBms(pack)
    for _ in range(60):  # a charge pushes the cells into the knee: CCL is cut
        step(pack, bms, min(50.0, bms.state().charge_current_a or 0.0), dt_s=1.0)
    cut = bms.state().charge_current_a
    assert cut is not None and cut < 140.0
    for _ in range(600):  # at rest the cells read 3.40 V: no headroom, no recovery
        step(pack, bms, 0.0, dt_s=1.0)
        assert bms.state().charge_current_a == cut
    for _ in range(400):  # some discharge gives headroom: it recovers after the hold
        step(pack, bms, -20.0, dt_s=1.0)
    assert bms.state().charge_current_a == pytest.approx(140.0)


@pytest.mark.parametrize(
    ("soc", "dcl"),
    [
        (0.5, 140.0),
        (0.0, 77.0),  # 3.000 V: halfway between 3.10 and 2.90 V
        (-0.0026, 14.0),  # 2.896 V: 10 %
        (-0.0049, 14.0),  # 2.804 V: 10 % until 2.80 V
        (-0.0051, 0.0),  # 2.794 V: 0
    ],
)
def test_discharge_current_taper_on_the_lowest_cell(soc: float, dcl: float) -> None:
    bms = SimBms(uniform_pack(soc))
    assert bms.state().discharge_current_a == pytest.approx(dcl, abs=0.1)
    assert bms.state().discharge_enable is (dcl > 0)


def test_cold_derates_charge_current() -> None:
    pack = uniform_pack(0.5)
    bms = SimBms(pack)
    state = set_temperature(pack, bms, 5.0)  # coldest sensor 4.4 °C
    assert state.charge_current_a == pytest.approx(140.0 * (0.1 + 0.9 * 0.44), abs=0.1)
    assert state.discharge_current_a == 140.0
    assert "low_temperature_charge" not in (state.warnings or [])
    state = set_temperature(pack, bms, 3.0)
    assert "low_temperature_charge" in (state.warnings or [])


def test_voltage_limits_are_constant() -> None:
    for soc in (0.0, 0.5, 1.005):
        state = SimBms(uniform_pack(soc)).state()
        assert state.charge_voltage_v == 55.2
        assert state.discharge_voltage_v == 46.4


# -- SoC estimate, counters ---------------------------------------------------------


def test_soc_estimate_counts_with_a_gain_error() -> None:
    pack = Pack.lfp(16, soc=0.5, capacity_spread=0, soc_spread=0, r_spread=0)
    bms = SimBms(pack)
    assert bms.state().soc_pct == 50.0
    for _ in range(360):
        step(pack, bms, -100.0, 10.0)
    assert pack.soc_pct == pytest.approx(50.0 - 100 / 2.8, abs=1e-6)
    assert bms.soc_pct == pytest.approx(50.0 - 100 / 2.8 * 1.005, abs=1e-6)
    state = bms.state()
    assert state.remaining_ah == pytest.approx(bms.soc_pct * 2.8, abs=0.05)


def test_soc_resets_to_100_at_the_top_with_tail_current() -> None:
    pack = Pack.lfp(16, soc=0.95, capacity_spread=0, soc_spread=0, r_spread=0)
    bms = SimBms(pack, BmsSettings(current_gain_error=-0.05))  # under-counts on purpose
    while bms.state().cell_max_v < 3.45:  # type: ignore[operator]
        step(pack, bms, 0.04 * C, 10.0)
    assert bms.soc_pct == 100.0


def test_soc_does_not_reset_at_the_top_under_high_current() -> None:
    pack = Pack.lfp(16, soc=0.97, capacity_spread=0, soc_spread=0, r_spread=0)
    bms = SimBms(pack, BmsSettings(current_gain_error=-0.05))
    while bms.state().cell_max_v < 3.45:  # type: ignore[operator]
        step(pack, bms, 0.3 * C, 5.0)
    assert bms.soc_pct < 100.0


def test_soc_resets_to_0_at_the_bottom() -> None:
    pack = Pack.lfp(16, soc=0.05, capacity_spread=0, soc_spread=0, r_spread=0)
    bms = SimBms(pack, BmsSettings(current_gain_error=-0.05))
    while bms.state().cell_min_v > 2.90:  # type: ignore[operator]
        step(pack, bms, -0.1 * C, 10.0)
    assert bms.soc_pct == 0.0
    assert bms.state().force_charge is True


def test_force_charge_hysteresis() -> None:
    pack = Pack.lfp(16, soc=0.04, capacity_spread=0, soc_spread=0, r_spread=0)
    bms = SimBms(pack)
    assert bms.state().force_charge is True
    while bms.soc_pct < 9.5:
        step(pack, bms, 0.1 * C, 10.0)
    assert bms.state().force_charge is True
    while bms.soc_pct <= 10.0:
        step(pack, bms, 0.1 * C, 10.0)
    assert bms.state().force_charge is False
    while bms.soc_pct > 6.0:
        step(pack, bms, -0.1 * C, 10.0)
    assert bms.state().force_charge is False


def test_cycles_and_energy_counters() -> None:
    pack = Pack.lfp(16, soc=0.8, capacity_spread=0, soc_spread=0, r_spread=0)
    bms = SimBms(pack)
    for _ in range(4):
        for _ in range(60):
            step(pack, bms, -140.0, 60.0)
        for _ in range(60):
            step(pack, bms, 140.0, 60.0)
    state = bms.state()
    assert state.cycles == 2  # 4 × 140 Ah × 1.005 = 562.8 Ah over 280 Ah
    assert state.discharged_kwh is not None and 27.0 < state.discharged_kwh < 30.5
    assert state.charged_kwh is not None and state.charged_kwh > state.discharged_kwh


# -- reported state ---------------------------------------------------------------


def test_state_fills_every_reported_field() -> None:
    pack = Pack.lfp(16, soc=0.6)
    bms = SimBms(pack, manufacturer="ACME")
    step(pack, bms, -30.0)
    state = bms.state()
    for name in REPORTED:
        assert getattr(state, name) is not None, name
    assert state.manufacturer == "ACME" and state.product == "SIM-16S280"  # n cells, Ah
    assert state.current_a == -30.0
    assert state.cells_v is not None and len(state.cells_v) == 16
    assert all(round(v, 3) == v for v in state.cells_v)
    assert state.cell_max_v == max(state.cells_v) and state.cell_min_v == min(state.cells_v)
    assert state.cells_v[int(state.cell_max_id or "0") - 1] == state.cell_max_v
    assert state.cells_v[int(state.cell_min_id or "0") - 1] == state.cell_min_v
    assert state.voltage_v == pytest.approx(sum(state.cells_v), abs=1e-6)
    assert state.temperatures_c is not None and len(state.temperatures_c) == 4
    assert state.cell_temp_min_c == min(state.temperatures_c)
    assert state.temperature_c == pytest.approx(pack.temperature_c, abs=0.05)
    assert (state.modules, state.modules_offline, state.soh_pct) == (1, 0, 100.0)
    assert state.capacity_ah == state.installed_capacity_ah == 280.0
    assert state.full_charge_request is False
    assert state.alarms == [] and state.warnings == []
    BatteryState.from_dict(state.to_dict())  # valid by the contract


def test_cell_imbalance_warning() -> None:
    cells = [CellParams(280.0, 0.5, 0.3e-3, 0.15e-3, 45.0) for _ in range(15)]
    cells.append(CellParams(280.0, 0.02, 0.3e-3, 0.15e-3, 45.0))
    state = SimBms(Pack(cells)).state()
    assert state.warnings == ["cell_imbalance"]


def test_state_returns_independent_lists() -> None:
    bms = SimBms(Pack.lfp())
    a = bms.state()
    assert a.cells_v is not None
    a.cells_v[0] = 0.0
    assert (bms.state().cells_v or [0.0])[0] != 0.0


# -- properties ---------------------------------------------------------------------

steps_strategy = st.lists(
    st.tuples(
        st.floats(min_value=-250.0, max_value=250.0),  # requested current
        st.floats(min_value=1.0, max_value=10.0),  # dt
        st.one_of(st.none(), st.floats(min_value=-35.0, max_value=75.0)),  # forced temp
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150)
@given(
    soc=st.one_of(st.sampled_from([-0.005, 0.0, 0.01, 0.99, 1.0, 1.004]), st.floats(0.0, 1.0)),
    seed=st.integers(0, 50),
    steps=steps_strategy,
)
def test_invariants_hold_along_any_trajectory(
    soc: float, seed: int, steps: list[tuple[float, float, float | None]]
) -> None:
    pack = Pack.lfp(16, soc=soc, seed=seed, soc_spread=0.003)
    bms = SimBms(pack)
    for request, dt, temperature in steps:
        if temperature is not None:
            pack.temperature_c = temperature
        latched = set(bms.latched)
        flowed = bms.gate(request)
        assert flowed in (0.0, request)
        if latched & CHARGE_BLOCKING:
            assert bms.gate(abs(request) + 1.0) == 0.0
            assert flowed <= 0.0
        if latched & DISCHARGE_BLOCKING:
            assert bms.gate(-abs(request) - 1.0) == 0.0
            assert flowed >= 0.0
        pack.apply(flowed, dt, pack.temperature_c)
        bms.update(flowed, dt)
        s = bms.state()

        for name in REPORTED:
            assert getattr(s, name) is not None, name
        assert isinstance(s.alarms, list) and isinstance(s.warnings, list)
        assert set(s.alarms) <= set(ALARM_NAMES) and set(s.warnings) <= set(ALARM_NAMES)
        assert s.cell_max_v is not None and s.cell_min_v is not None
        assert s.cell_temp_min_c is not None and s.cell_temp_max_c is not None
        assert s.charge_current_a is not None and s.discharge_current_a is not None
        assert 0.0 <= s.charge_current_a <= 140.0
        assert 0.0 <= s.discharge_current_a <= 140.0
        if s.cell_max_v >= 3.60 or s.cell_temp_min_c < 0.0 or s.cell_temp_max_c > 45.0:
            assert s.charge_current_a == 0.0
            assert s.charge_enable is False
        if s.cell_min_v <= 2.80 or s.cell_temp_min_c < -20.0 or s.cell_temp_max_c > 60.0:
            assert s.discharge_current_a == 0.0
            assert s.discharge_enable is False
        if not bms.charge_fet:
            assert s.charge_enable is False and s.charge_current_a == 0.0
        if not bms.discharge_fet:
            assert s.discharge_enable is False and s.discharge_current_a == 0.0
        assert s.soc_pct is not None and 0.0 <= s.soc_pct <= 100.0
        assert s.modules_blocking_charge == (0 if s.charge_enable else 1)
        assert len(s.alarms) == len(bms.latched)
    assert bms.cutoffs == len(bms.events)


# -- balancing --------------------------------------------------------------------------

#: 15 cells at 96 % and, at 0-based index HIGH, one whose OCV is 30 mV higher.
HIGH = 5
LOW_SOC = 0.96
HIGH_SOC = next(x / 10_000 for x in range(9600, 10_000) if ocv(x / 10_000) >= ocv(0.96) + 0.030)


def cv_request(pack: Pack, bms: SimBms, volts: float, max_a: float) -> float:
    """A charger holding ``volts`` at the terminals, within max_a and the BMS's CCL."""
    limit = min(max_a, bms.charge_current_limit_a)
    if pack.voltage(limit) <= volts:
        return limit
    lo, hi = 0.0, limit
    for _ in range(25):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if pack.voltage(mid) < volts else (lo, mid)
    return lo


def test_balancing_shrinks_the_spread_over_hours_of_float_and_rest() -> None:
    """One cell 30 mV high, a 3.45 V/cell charger for 12 h: the balancer bleeds that cell."""
    pack = uniform_pack(LOW_SOC, socs={HIGH: HIGH_SOC})
    bms = SimBms(pack)
    s = bms.settings
    start = pack.cell_socs
    spread0 = max(start) - min(start)
    through_as = 0.0
    balanced_s = 0.0
    dt = 10.0
    for _ in range(12 * 360):
        current = bms.gate(cv_request(pack, bms, 16 * 3.45, 28.0))
        pack.apply(current, dt, 25.0)
        bms.update(current, dt)
        through_as += current * dt
        cells = bms.state().cells_v or []
        for n in bms.balancing_cells:  # never below the start voltage or the trigger
            assert cells[n - 1] >= s.balance_start_v
            assert cells[n - 1] - min(cells) > s.balance_trigger_v
        if bms.balancing_cells:
            assert bms.balancing_cells == (HIGH + 1,)
            balanced_s += dt
    socs = pack.cell_socs
    assert bms.cutoffs == 0
    assert balanced_s > 6 * 3600  # most of the time
    # the high cell lost what was bled from it relative to the others: 0.2 A per hour
    assert pack.bled_ah[HIGH] == pytest.approx(0.2 * balanced_s / 3600, rel=0.01)
    assert sum(pack.bled_ah) == pack.bled_ah[HIGH]
    spread = max(socs) - min(socs)
    assert spread < spread0 - 0.9 * pack.bled_ah[HIGH] / 280.0
    # charge conservation: every coulomb is the charger's or the balancer's
    assert max(socs) < SOC_CEILING and min(socs) > SOC_MIN  # no clamp hid anything
    for s0, s1, bled in zip(start, socs, pack.bled_ah, strict=True):
        assert s1 * 280.0 * 3600 == pytest.approx(
            s0 * 280.0 * 3600 + through_as - bled * 3600, abs=1e-6
        )


def balancing_bms(**settings: float) -> SimBms:
    """A resting pack at the top; the high cell is 0.5 % past full and reads 3.400 V."""
    pack = uniform_pack(0.985, socs={HIGH: 1.005})
    return SimBms(pack, BmsSettings(**settings))  # type: ignore[arg-type]


def test_balancing_thresholds_are_start_voltage_and_trigger_delta() -> None:
    probe = balancing_bms()
    probe.update(0.0, 1.0)
    cells = probe.state().cells_v or []
    top, bottom = cells[HIGH], min(cells)
    assert top == 3.400 and top - bottom > 0.015
    assert probe.balancing_cells == (HIGH + 1,)

    for overrides, balances in (
        ({"balance_start_v": top}, True),  # at the start voltage counts
        ({"balance_start_v": top + 0.001}, False),
        ({"balance_trigger_v": round(top - bottom, 3)}, False),  # must be *more* than
        ({"balance_trigger_v": round(top - bottom - 0.001, 3)}, True),
        ({"balance_current_a": 0.0}, False),  # 0 A: balancing off
    ):
        bms = balancing_bms(**overrides)
        bms.update(0.0, 1.0)
        assert bool(bms.balancing_cells) is balances, overrides


def test_balancing_bleeds_at_rest_stops_while_discharging_and_counts_nothing_in_soc() -> None:
    bms = balancing_bms(balance_current_a=1.0)
    pack = bms.pack
    bms.update(0.0, 1.0)
    assert bms.balancing_cells == (HIGH + 1,)
    soc_estimate = bms.soc_pct
    for _ in range(10):
        step(pack, bms, 0.0, dt_s=60.0)
    assert pack.bled_ah[HIGH] == pytest.approx(1.0 * 600 / 3600)
    assert bms.soc_pct == soc_estimate  # the shunt does not see the balancer
    bled = pack.bled_ah[HIGH]
    step(pack, bms, -10.0, dt_s=60.0)
    assert not bms.balancing_cells
    assert pack.bled_ah[HIGH] == bled
    step(pack, bms, -10.0, dt_s=60.0)
    assert pack.bled_ah[HIGH] == bled

    # At rest again it bleeds until the cell reads below 3.40 V, and then stops: the
    # top of the OCV curve rises 60 mV per 5 %, so that is within 0.1 % below full.
    for _ in range(6 * 60):
        step(pack, bms, 0.0, dt_s=60.0)
    assert not bms.balancing_cells
    assert 1.0 - 0.001 < pack.cell_socs[HIGH] < 1.0
    bled = pack.bled_ah[HIGH]
    step(pack, bms, 0.0, dt_s=3600.0)
    assert pack.bled_ah[HIGH] == bled
