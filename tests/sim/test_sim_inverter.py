"""The simulated inverter: obeys received limits, a missing limit forbids, CV loop, books."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.sim.bms import SimBms
from bmslink.sim.inverter import LIMIT_NAMES, SimInverter
from bmslink.sim.pack import Pack
from bmslink.state import BatteryState


def seen(**overrides: object) -> BatteryState:
    """A healthy 16S battery as the inverter would receive it."""
    values: dict[str, object] = {
        "voltage_v": 52.0,
        "charge_voltage_v": 55.2,
        "charge_current_a": 100.0,
        "discharge_current_a": 120.0,
        "discharge_voltage_v": 46.4,
        "charge_enable": True,
        "discharge_enable": True,
    }
    values.update(overrides)
    return BatteryState(**values)  # type: ignore[arg-type]


def test_link_lost_means_zero() -> None:
    inv = SimInverter()
    assert inv.decide(None, 5000.0, 0.0, 52.0, 1.0) == 0.0
    assert inv.last_limit == "battery_lost"
    assert inv.decide(None, 0.0, 5000.0, 52.0, 1.0) == 0.0


def test_self_consumption_without_limits_hit() -> None:
    inv = SimInverter()
    assert inv.decide(seen(), 2000.0, 960.0, 52.0, 1.0) == pytest.approx(20.0)
    assert inv.last_limit == "none"
    assert inv.decide(seen(), 0.0, 1040.0, 52.0, 1.0) == pytest.approx(-20.0)
    assert inv.last_limit == "none"
    assert inv.decide(seen(), 500.0, 500.0, 52.0, 1.0) == 0.0


def test_rating_limits_battery_power() -> None:
    inv = SimInverter(rating_w=3000.0)
    assert inv.decide(seen(discharge_current_a=140.0), 0.0, 9000.0, 50.0, 1.0) == -60.0
    assert inv.last_limit == "rating"


def test_ccl_and_dcl() -> None:
    inv = SimInverter()
    assert inv.decide(seen(charge_current_a=30.0), 6000.0, 0.0, 52.0, 1.0) == 30.0
    assert inv.last_limit == "ccl"
    assert inv.decide(seen(discharge_current_a=25.0), 0.0, 6000.0, 52.0, 1.0) == -25.0
    assert inv.last_limit == "dcl"


@pytest.mark.parametrize(
    "override",
    [
        {"charge_enable": False},
        {"charge_enable": None},
        {"charge_current_a": None},
        {"charge_voltage_v": None},
        {"charge_current_a": 0.0},
    ],
)
def test_charge_needs_every_charge_field(override: dict[str, object]) -> None:
    inv = SimInverter()
    assert inv.decide(seen(**override), 6000.0, 0.0, 52.0, 1.0) == 0.0
    assert inv.last_limit == "charge_disabled"
    assert inv.decide(seen(**override), 0.0, 1000.0, 52.0, 1.0) < 0.0  # discharge unaffected


@pytest.mark.parametrize(
    "override",
    [
        {"discharge_enable": False},
        {"discharge_enable": None},
        {"discharge_current_a": None},
        {"discharge_voltage_v": None},
        {"discharge_current_a": 0.0},
    ],
)
def test_discharge_needs_every_discharge_field(override: dict[str, object]) -> None:
    inv = SimInverter()
    assert inv.decide(seen(**override), 0.0, 3000.0, 52.0, 1.0) == 0.0
    assert inv.last_limit == "discharge_disabled"
    assert inv.decide(seen(**override), 3000.0, 0.0, 52.0, 1.0) > 0.0  # charge unaffected


def test_dvl_stops_discharge_with_restart_hysteresis() -> None:
    inv = SimInverter()
    assert inv.dvl_restart_margin_v == pytest.approx(2.0)  # 0.125 V per cell on 16S
    margin = inv.dvl_restart_margin_v
    s = seen()
    assert inv.decide(s, 0.0, 1000.0, 46.3, 1.0) == 0.0
    assert inv.last_limit == "dvl"
    # the voltage recovers once the load is gone, but not enough to restart
    assert inv.decide(s, 0.0, 1000.0, 46.4 + margin - 0.1, 1.0) == 0.0
    assert inv.last_limit == "dvl"
    # charging is still allowed while discharge is stopped
    assert inv.decide(s, 2000.0, 0.0, 47.0, 1.0) > 0.0
    assert inv.decide(s, 0.0, 1000.0, 46.4 + margin, 1.0) < 0.0
    assert inv.last_limit == "none"


# -- CV loop ---------------------------------------------------------------------


@pytest.mark.parametrize("resistance_ohm", [0.002, 0.008, 0.015, 0.024])
def test_cv_loop_converges_monotonically_on_a_resistive_battery(resistance_ohm: float) -> None:
    """V = E + R·I with E fixed: the command must settle where V = CVL, from one side."""
    inv = SimInverter()
    emf = 55.2 - 60.0 * resistance_ohm  # CV holds 60 A
    s = seen(charge_current_a=140.0)
    current = 0.0
    commands = []
    for _ in range(200):
        current = inv.decide(s, 6000.0, 0.0, emf + resistance_ohm * current, 1.0)
        commands.append(current)
    assert commands[-1] == pytest.approx(60.0, abs=0.01)
    diffs = [b - a for a, b in itertools.pairwise(commands)]
    assert all(d >= -1e-9 for d in diffs) or all(d <= 1e-9 for d in diffs)
    assert inv.last_limit == "cvl"


@pytest.mark.parametrize("dt_s", [1.0, 2.0, 5.0, 10.0])
def test_cv_loop_converges_on_the_sim_pack(dt_s: float) -> None:
    """Full closed loop into the top knee: bounded overshoot, no ringing, tail to 0 A."""
    pack = Pack.lfp(16, soc=0.97, capacity_spread=0, soc_spread=0, r_spread=0)
    pack.temperature_c = 25.0
    bms = SimBms(pack)
    inv = SimInverter()
    current = 0.0
    volts: list[float] = []
    commands: list[float] = []
    for _ in range(int(3 * 3600 / dt_s)):
        state = bms.state()
        v = pack.voltage(current)
        command = inv.decide(state, 6000.0, 0.0, v, dt_s)
        current = bms.gate(command)
        pack.apply(current, dt_s, 25.0)
        bms.update(current, dt_s)
        volts.append(pack.voltage(current))
        commands.append(command)
    assert bms.cutoffs == 0
    cvl = 55.2
    # one overshoot, growing with the step (the knee moves ~50 mV/s at 100 A)
    assert max(volts) - cvl <= 0.15 + 0.06 * dt_s
    # no sustained ringing: after the peak command, few direction changes (>1 A)
    peak = commands.index(max(commands))
    moves = [b - a for a, b in zip(commands[peak:], commands[peak + 1 :], strict=False)]
    signs = [1 if m > 0 else -1 for m in moves if abs(m) > 1.0]
    reversals = sum(1 for a, b in itertools.pairwise(signs) if a != b)
    # a few corrections while the knee steepens under it, then settled (below)
    assert reversals <= 8
    # settled: tail current ~0, voltage steady
    last = int(1800 / dt_s)
    assert max(commands[-last:]) < 1.0
    assert max(volts[-last:]) - min(volts[-last:]) < 0.01
    assert volts[-1] >= cvl - 0.01


# -- properties ----------------------------------------------------------------

maybe_bool = st.one_of(st.none(), st.booleans())
maybe_amps = st.one_of(st.none(), st.floats(min_value=0.0, max_value=300.0))
maybe_volts = st.one_of(st.none(), st.floats(min_value=40.0, max_value=60.0))
seen_states = st.builds(
    BatteryState,
    charge_enable=maybe_bool,
    discharge_enable=maybe_bool,
    charge_current_a=maybe_amps,
    discharge_current_a=maybe_amps,
    charge_voltage_v=maybe_volts,
    discharge_voltage_v=maybe_volts,
)
calls = st.lists(
    st.tuples(
        st.one_of(st.none(), seen_states),
        st.floats(min_value=0.0, max_value=12000.0),  # pv
        st.floats(min_value=0.0, max_value=12000.0),  # load
        st.floats(min_value=40.0, max_value=60.0),  # battery voltage
        st.floats(min_value=1.0, max_value=10.0),  # dt
    ),
    min_size=1,
    max_size=30,
)


@given(rating=st.floats(min_value=500.0, max_value=15000.0), sequence=calls)
def test_inverter_never_exceeds_what_it_was_told(
    rating: float, sequence: list[tuple[BatteryState | None, float, float, float, float]]
) -> None:
    inv = SimInverter(rating_w=rating)
    for s, pv, load, volts, dt in sequence:
        cmd = inv.decide(s, pv, load, volts, dt)
        assert inv.last_limit in LIMIT_NAMES
        if s is None:
            assert cmd == 0.0
            continue
        if cmd > 0.0:
            assert s.charge_enable is True
            assert s.charge_current_a is not None and s.charge_voltage_v is not None
            assert cmd <= s.charge_current_a
            assert pv > load
        if cmd < 0.0:
            assert s.discharge_enable is True
            assert s.discharge_current_a is not None and s.discharge_voltage_v is not None
            assert -cmd <= s.discharge_current_a
            assert volts >= s.discharge_voltage_v
            assert load > pv
        assert abs(cmd) * volts <= rating * (1 + 1e-9)
        assert abs(cmd) * volts <= abs(pv - load) * (1 + 1e-9)
        inv.account(cmd, volts, pv, load, dt)


@given(sequence=calls)
def test_accounting_balances(
    sequence: list[tuple[BatteryState | None, float, float, float, float]],
) -> None:
    inv = SimInverter()
    elapsed = 0.0
    for s, pv, load, volts, dt in sequence:
        cmd = inv.decide(s, pv, load, volts, dt)
        inv.account(cmd, volts, pv, load, dt)
        elapsed += dt
    supply = inv.pv_kwh + inv.grid_import_kwh + inv.energy_out_kwh
    demand = inv.load_kwh + inv.grid_export_kwh + inv.energy_in_kwh
    assert supply == pytest.approx(demand, rel=1e-9, abs=1e-9)
    assert sum(inv.seconds_at_limit.values()) == pytest.approx(elapsed)
    assert set(inv.seconds_at_limit) == set(LIMIT_NAMES)
    assert (
        min(inv.energy_in_kwh, inv.energy_out_kwh, inv.grid_import_kwh, inv.grid_export_kwh) >= 0.0
    )


def test_rejects_nonsense_configuration() -> None:
    with pytest.raises(ValueError):
        SimInverter(rating_w=0.0)
    with pytest.raises(ValueError):
        SimInverter(cv_gain_a_per_v=-1.0)


# -- what the protocol does not carry ----------------------------------------------------


def test_a_flag_the_protocol_lacks_is_replaced_by_the_limit() -> None:
    """Victron has no enable flags: a zero limit stops, a positive one allows."""
    victron = SimInverter(
        carried={
            "charge_current_a",
            "discharge_current_a",
            "charge_voltage_v",
            "discharge_voltage_v",
        }
    )
    no_flags = seen(charge_enable=None, discharge_enable=None)
    assert victron.decide(no_flags, 3000.0, 0.0, 52.0, 1.0) > 0.0
    assert victron.decide(no_flags.merged({"charge_current_a": 0.0}), 3000.0, 0.0, 52.0, 1.0) == 0
    assert victron.last_limit == "charge_disabled"
    # where the protocol has the flag, not receiving it is a prohibition
    assert SimInverter().decide(no_flags, 3000.0, 0.0, 52.0, 1.0) == 0.0


def test_no_dvl_in_the_protocol_leaves_the_cut_off_to_the_bms() -> None:
    growatt = SimInverter(
        carried={
            "charge_enable",
            "discharge_enable",
            "charge_current_a",
            "discharge_current_a",
            "charge_voltage_v",
        }
    )
    no_dvl = seen(discharge_voltage_v=None)
    assert growatt.decide(no_dvl, 0.0, 1000.0, 46.0, 1.0) < 0.0
    assert SimInverter().decide(no_dvl, 0.0, 1000.0, 46.0, 1.0) == 0.0
