"""The simulated inverters.

``SimInverter`` obeys received limits, a missing limit forbids, CV loop, books.
``VoltageOnlyInverter`` has no BMS link: it ignores the state, charges bulk → absorption →
float on voltages, cuts discharge off on voltage, and reads its SoC off the terminal voltage.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.sim.bms import BmsSettings, SimBms
from bmslink.sim.inverter import (
    LIMIT_NAMES,
    PHASES,
    VOLTAGE_SOC_TABLE_16S,
    SimInverter,
    VoltageOnlyInverter,
    VoltageOnlySettings,
    soc_from_voltage,
)
from bmslink.sim.ocv import ocv
from bmslink.sim.pack import CellParams, Pack
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


def charge_into_cvl(pack: Pack, dt_s: float, hours: float = 3.0) -> tuple[list[float], list[float]]:
    """Close the loop pack → BMS → ``SimInverter`` at 6 kW PV: (voltages, commands) per step."""
    pack.temperature_c = 25.0
    bms = SimBms(pack)
    inv = SimInverter()
    current = 0.0
    volts: list[float] = []
    commands: list[float] = []
    for _ in range(int(hours * 3600 / dt_s)):
        state = bms.state()
        v = pack.voltage(current)
        command = inv.decide(state, 6000.0, 0.0, v, dt_s)
        current = bms.gate(command)
        pack.apply(current, dt_s, 25.0)
        bms.update(current, dt_s)
        volts.append(pack.voltage(current))
        commands.append(command)
    assert bms.cutoffs == 0
    return volts, commands


def cv_overshoot_bound_v(dt_s: float) -> float:
    """One overshoot, growing with the step (the knee moves ~50 mV/s at 100 A)."""
    return 0.15 + 0.06 * dt_s


@pytest.mark.parametrize("dt_s", [1.0, 2.0, 5.0, 10.0])
def test_cv_loop_converges_on_the_sim_pack(dt_s: float) -> None:
    """Full closed loop into the top knee: bounded overshoot, no ringing, tail to 0 A.

    The default cell model, OCV hysteresis included (its voltage drifts while the current
    is held), but without the default spreads: with them the runner cell takes the BMS's
    CCL taper to 0 at 3.55 V while the pack is still ~0.5 V below CVL, so charging ends on
    CCL and the CV loop is never what limits (that is the BMS's job, tested elsewhere).
    """
    pack = Pack.lfp(16, soc=0.97, capacity_spread=0, soc_spread=0, r_spread=0)
    assert pack.hysteresis_v > 0.0
    volts, commands = charge_into_cvl(pack, dt_s)
    cvl = 55.2
    assert max(volts) - cvl <= cv_overshoot_bound_v(dt_s)
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


@pytest.mark.parametrize("hysteresis", [-1.0, 0.0, 1.0])
@pytest.mark.parametrize("soc", [0.95, 0.98])
def test_cv_overshoot_at_10_s_steps_is_bounded_from_any_hysteresis_state(
    soc: float, hysteresis: float
) -> None:
    """From the discharge branch (a morning after a night's load), the charge branch or
    between them: hysteresis creeps the voltage up while the current holds. Read as
    resistance (old ΔV/ΔI of two steps) that collapsed the loop's gain and let the pack
    run ~1.25 V over CVL from 98 % with h = 0."""
    base = Pack.lfp(16, soc=soc, capacity_spread=0, soc_spread=0, r_spread=0)
    pack = Pack([dataclasses.replace(c, hysteresis=hysteresis) for c in base.cells])
    dt_s = 10.0
    volts, commands = charge_into_cvl(pack, dt_s)
    cvl = 55.2
    assert max(volts) - cvl <= cv_overshoot_bound_v(dt_s)
    last = int(1800 / dt_s)
    assert max(commands[-last:]) < 1.0
    assert abs(volts[-1] - cvl) < 0.01


def test_a_drifting_voltage_is_not_read_as_resistance() -> None:
    """V = E + R·I with E creeping up 5 mV/s at a held current, as hysteresis makes it. The
    current wiggles by tens of mA meanwhile (the BMS's CCL moving); a two-point ΔV/ΔI would
    read ohms and leave the loop nearly deaf. When the voltage then stands 0.1 V over CVL,
    the loop must cut by at least its full gain's worth (40 A/V × 0.1 V)."""
    r_ohm, drift_v_per_s, dt_s = 0.010, 0.005, 10.0
    inv = SimInverter()
    elapsed = 0.0
    current = 0.0
    for ccl in (50.0, 50.02, 49.99, 50.03, 50.0, 49.98, 50.01, 50.03, 49.99, 50.02):
        volts = 52.0 + drift_v_per_s * elapsed + r_ohm * current
        current = inv.decide(
            seen(charge_current_a=ccl, charge_voltage_v=58.0), 6000.0, 0.0, volts, dt_s
        )
        assert current == ccl  # CCL-limited: the CV loop had nothing to do yet
        elapsed += dt_s
    volts = 52.0 + drift_v_per_s * elapsed + r_ohm * current
    over_cvl = seen(charge_current_a=60.0, charge_voltage_v=volts - 0.1)
    command = inv.decide(over_cvl, 6000.0, 0.0, volts, dt_s)
    assert inv.last_limit == "cvl"
    assert current - command >= 40.0 * 0.1
    # and not wildly more: the integrator's step plus the 50 mV the drift adds next step
    assert current - command <= 40.0 * 0.1 + drift_v_per_s * dt_s / r_ohm + 0.5


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


# == voltage-only: an inverter without BMS communication =====================================

#: What a voltage-only inverter's last_limit can be: no link, so nothing link-related.
VOLTAGE_ONLY_LIMITS = {"none", "ccl", "cvl", "dcl", "dvl", "rating"}

#: A state that forbids everything: an inverter that listened would drive 0 A.
FORBIDDING = BatteryState(
    voltage_v=52.0,
    charge_voltage_v=0.0,
    charge_current_a=0.0,
    discharge_current_a=0.0,
    discharge_voltage_v=60.0,
    charge_enable=False,
    discharge_enable=False,
)

#: 0.5 C on the 100 Ah test pack, charge and discharge alike.
HALF_C = VoltageOnlySettings(max_charge_current_a=50.0, max_discharge_current_a=50.0)


@dataclass
class Step:
    """One physics step as the chain runs it: the inverter decides on the measured voltage."""

    volts: float
    command_a: float
    actual_a: float
    phase: str
    limit: str
    soc_estimate_pct: float | None
    true_soc_pct: float
    discharge_stopped: bool


@dataclass
class Rig:
    """A 16S 100 Ah pack, its BMS and a voltage-only inverter, stepped like ``sim/chain.py``."""

    pack: Pack
    inverter: VoltageOnlyInverter
    bms: SimBms = field(init=False)
    temperature_c: float = 25.0
    seen: BatteryState | None = None
    actual_a: float = 0.0

    def __post_init__(self) -> None:
        self.pack.temperature_c = self.temperature_c
        self.bms = SimBms(
            self.pack,
            BmsSettings(
                capacity_ah=100.0, max_charge_current_a=100.0, max_discharge_current_a=100.0
            ),
        )

    def run(self, pv_w: float, load_w: float, seconds: float, dt_s: float = 5.0) -> list[Step]:
        out: list[Step] = []
        inv, pack, bms = self.inverter, self.pack, self.bms
        for _ in range(round(seconds / dt_s)):
            volts = pack.voltage(self.actual_a)
            command = inv.decide(self.seen, pv_w, load_w, volts, dt_s)
            self.actual_a = bms.gate(command)
            pack.apply(self.actual_a, dt_s, self.temperature_c)
            bms.update(self.actual_a, dt_s)
            inv.account(self.actual_a, volts, pv_w, load_w, dt_s)
            out.append(
                Step(
                    volts,
                    command,
                    self.actual_a,
                    inv.phase,
                    inv.last_limit,
                    inv.soc_pct,
                    pack.soc_pct,
                    inv.discharge_stopped,
                )
            )
        return out


def ideal_pack(soc: float) -> Pack:
    """16S 100 Ah without spread: every cell the same, so the inverter's behaviour is isolated."""
    return Pack.lfp(16, capacity_ah=100.0, soc=soc, capacity_spread=0, soc_spread=0, r_spread=0)


def rig(
    soc: float,
    inv_settings: VoltageOnlySettings = HALF_C,
    temperature_c: float = 25.0,
    seen: BatteryState | None = None,
) -> Rig:
    return Rig(ideal_pack(soc), VoltageOnlyInverter(inv_settings), temperature_c, seen)


def estimate(step: Step) -> float:
    """The inverter's SoC at that step; it always has one once it has read a voltage."""
    assert step.soc_estimate_pct is not None
    return step.soc_estimate_pct


def soc_at_ocv(cell_v: float) -> float:
    """Inverse of the pack model's rested OCV curve (percent), by bisection."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if ocv(mid) < cell_v:
            lo = mid
        else:
            hi = mid
    return 100.0 * hi


# -- it has no link ----------------------------------------------------------------------------


def test_it_ignores_the_state_it_is_handed_on_a_real_pack() -> None:
    """The same day with no state and with a state forbidding everything: same commands."""
    deaf = rig(0.5)
    forbidden = rig(0.5, seen=FORBIDDING)
    day = [(6000.0, 300.0, 3 * 3600), (0.0, 2500.0, 3 * 3600), (3000.0, 0.0, 3600)]
    for pv, load, seconds in day:
        a = deaf.run(pv, load, seconds)
        b = forbidden.run(pv, load, seconds)
        assert [(x.command_a, x.limit) for x in a] == [(y.command_a, y.limit) for y in b]
    # and the forbidding state did not stop anything: current flowed both ways
    assert forbidden.inverter.energy_in_kwh > 1.0
    assert forbidden.inverter.energy_out_kwh > 1.0


voltage_only_calls = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=12000.0),  # pv
        st.floats(min_value=0.0, max_value=12000.0),  # load
        st.floats(min_value=40.0, max_value=60.0),  # battery voltage
        st.floats(min_value=1.0, max_value=10.0),  # dt
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(sequence=voltage_only_calls, states=st.lists(st.one_of(st.none(), seen_states), min_size=1))
def test_what_it_is_handed_never_changes_a_command(
    sequence: list[tuple[float, float, float, float]], states: list[BatteryState | None]
) -> None:
    deaf, told = VoltageOnlyInverter(), VoltageOnlyInverter()
    for (pv, load, volts, dt), state in zip(sequence, itertools.cycle(states), strict=False):
        assert deaf.decide(None, pv, load, volts, dt) == told.decide(state, pv, load, volts, dt)
        assert deaf.last_limit == told.last_limit
        assert deaf.last_limit != "battery_lost"
        assert deaf.soc_pct == told.soc_pct


# -- charging: bulk, absorption, float ---------------------------------------------------------


def test_it_charges_to_the_absorption_voltage_and_tapers_there() -> None:
    r = rig(0.6)
    s = r.inverter.settings
    steps = r.run(6000.0, 0.0, 2 * 3600)
    first_abs = next(i for i, x in enumerate(steps) if x.phase == "absorption")
    bulk, absorption = steps[:first_abs], [x for x in steps[first_abs:] if x.phase == "absorption"]
    # bulk: after the CV loop's first-step start-up, its own maximum, never more, until
    # the CV loop takes over for the last step or two: on the knee the voltage climbs
    # ~0.1 V per step at a held current, and the loop lowers the current ahead of it
    assert all(x.command_a <= s.max_charge_current_a for x in steps)
    limits = [x.limit for x in bulk[2:]]
    taper = limits.index("cvl") if "cvl" in limits else len(limits)
    assert limits == ["ccl"] * taper + ["cvl"] * (len(limits) - taper)
    assert len(limits) - taper <= 3
    assert all(x.volts >= s.absorption_v - 0.25 for x in bulk[2:][taper:])
    assert all(x.volts < s.absorption_v for x in bulk)
    # absorption is entered at the absorption voltage and held there by the CV loop ...
    assert steps[first_abs].volts >= s.absorption_v - s.absorption_entry_band_v
    assert all(x.limit == "cvl" for x in absorption[1:])
    # ... while the current tapers: the cells fill and their knee resistance rises, so the
    # same voltage drives ever less current
    quarter = len(absorption) // 4
    assert max(x.command_a for x in absorption[-quarter:]) < 0.25 * min(
        x.command_a for x in bulk[2:]
    )
    tail = absorption[-quarter:]
    assert sum(x.volts for x in tail) / len(tail) == pytest.approx(s.absorption_v, abs=0.1)
    # an ideal pack never makes its BMS cut off at 3.525 V per cell
    assert r.bms.cutoffs == 0


def test_float_follows_after_the_absorption_time() -> None:
    r = rig(0.9)
    s = r.inverter.settings
    steps = r.run(6000.0, 0.0, 2 * 3600)
    in_abs = [i for i, x in enumerate(steps) if x.phase == "absorption"]
    first_float = next(i for i, x in enumerate(steps) if x.phase == "float")
    assert first_float == in_abs[-1] + 1  # no gaps: absorption, then float
    assert len(in_abs) * 5.0 == pytest.approx(s.absorption_time_s, abs=5.0)
    assert all(x.phase == "float" for x in steps[first_float:])
    # at float the pack (which rests at ~54.4 V when full) is above float_v: no charge flows
    assert all(x.actual_a == 0.0 for x in steps[first_float + 12 :])
    assert all(x.limit == "cvl" for x in steps[first_float:])


def test_float_charges_only_to_the_float_voltage_after_a_light_discharge() -> None:
    r = rig(0.9)
    s = r.inverter.settings
    r.run(6000.0, 0.0, 2 * 3600)
    assert r.inverter.phase == "float"
    # ~5 Ah out at ~10 A: the pack stays on the upper plateau, above rebulk_v
    evening = r.run(0.0, 500.0, 3600)
    assert min(x.volts for x in evening) >= s.rebulk_v
    assert all(x.phase == "float" for x in evening)
    morning = r.run(3000.0, 0.0, 3 * 3600)
    assert all(x.phase == "float" for x in morning)
    assert r.inverter.energy_in_kwh > 0.0
    # the target is float_v, well below absorption_v: after the loop settles it holds there
    settled = morning[len(morning) // 2 :]
    assert max(x.volts for x in settled) <= s.float_v + 0.05
    # float_v is below the voltage a full pack rests at, so float never fills the pack
    assert r.pack.soc_pct < 99.9


def test_voltage_below_rebulk_restarts_bulk_and_the_absorption_target() -> None:
    s = VoltageOnlySettings(absorption_time_s=60.0)
    inv = VoltageOnlyInverter(s)
    assert inv.phase == "bulk"
    inv.decide(None, 3000.0, 0.0, s.absorption_v, 10.0)
    assert inv.phase == "absorption"
    for _ in range(6):
        inv.decide(None, 3000.0, 0.0, s.absorption_v, 10.0)
    assert inv.phase == "float"
    # in float a voltage between float_v and absorption_v is too high: the loop backs off
    for _ in range(20):
        inv.decide(None, 3000.0, 0.0, s.float_v + 1.0, 10.0)
    assert inv.last_command_a == 0.0
    assert inv.last_limit == "cvl"
    inv.decide(None, 0.0, 3000.0, s.rebulk_v, 10.0)  # at, not below: still float
    assert inv.phase == "float"
    inv.decide(None, 0.0, 3000.0, s.rebulk_v - 0.01, 10.0)
    assert inv.phase == "bulk"
    # back in bulk the same voltage is below the (absorption) target: charging resumes
    for _ in range(20):
        inv.decide(None, 3000.0, 0.0, s.float_v + 1.0, 10.0)
    assert inv.last_command_a > 0.0


# -- discharging: low-voltage cut-off and restart -----------------------------------------------


def test_it_stops_discharging_at_the_cut_off_and_restarts_only_at_restart_v() -> None:
    r = rig(0.10)
    s = r.inverter.settings
    night = r.run(0.0, 2500.0, 2 * 3600)
    stop = next(i for i, x in enumerate(night) if x.discharge_stopped)
    assert all(x.volts > s.low_voltage_cutoff_v and x.command_a < 0 for x in night[:stop])
    assert night[stop].volts <= s.low_voltage_cutoff_v
    assert night[stop].command_a == 0.0 and night[stop].limit == "dvl"
    # the cut-off is on the voltage under load: terminal = OCV − I·R, so the cells' OCV is
    # still above the cut-off (the rested 0 %) and the pack is not empty
    assert night[stop].true_soc_pct > 0.0
    assert r.bms.cutoffs == 0  # the inverter stopped before the BMS had to
    after = night[stop + 1 :]
    assert after and all(x.command_a == 0.0 and x.limit == "dvl" for x in after)
    # the load is still there and the voltage has rebounded above the cut-off: only the
    # restart hysteresis keeps it off
    assert all(s.low_voltage_cutoff_v < x.volts < s.restart_v for x in after[-10:])
    # a little PV lifts the voltage; discharge is allowed again only once it reaches restart_v
    sun = r.run(1000.0, 0.0, 3600)
    release = next(i for i, x in enumerate(sun) if not x.discharge_stopped)
    assert sun[release].volts >= s.restart_v
    assert all(x.volts < s.restart_v for x in sun[:release])
    assert all(x.command_a > 0.0 for x in sun)  # charging was never blocked by the cut-off
    evening = r.run(0.0, 2500.0, 60)
    assert evening[0].command_a < 0.0


# -- a BMS cut-off is invisible to it -----------------------------------------------------------


def test_a_bms_cut_off_is_seen_only_as_a_voltage() -> None:
    """One cell 8 % ahead reaches OVP while the rest sit on the plateau: the BMS opens the
    charge FET, the pack voltage never gets near absorption, and the inverter keeps asking."""
    cells = [
        CellParams(capacity_ah=100.0, soc=0.6, r0_ohm=0.84e-3, r1_ohm=0.42e-3, tau_s=45.0)
        for _ in range(16)
    ]
    cells[6] = dataclasses.replace(cells[6], soc=0.68)
    r = Rig(Pack(cells), VoltageOnlyInverter(HALF_C))
    steps = r.run(6000.0, 0.0, 2 * 3600)
    assert r.bms.cutoffs >= 1
    assert "cell_over_voltage" in r.bms.latched
    blocked = [x for x in steps if x.actual_a == 0.0]
    assert blocked
    assert all(x.command_a == HALF_C.max_charge_current_a for x in blocked[-10:])
    assert all(x.limit == "ccl" for x in blocked[-10:])
    # it never saw its absorption voltage, so it is still in bulk, waiting
    assert all(x.phase == "bulk" for x in steps)
    assert max(x.volts for x in steps) < HALF_C.absorption_v - HALF_C.absorption_entry_band_v


# -- its SoC, read off the terminal voltage -----------------------------------------------------


def test_soc_estimate_moves_with_the_current_not_the_charge() -> None:
    """On the plateau V = OCV + I·R: a current step moves the voltage, and a flat curve turns
    that into tens of percent, while the charge in the cells hardly changes."""
    r = rig(0.5)
    # each reading is taken at the start of a step, on the current of the step before
    rest = r.run(0.0, 0.0, 600)[-1]
    charging = r.run(2600.0, 0.0, 10)[-1]
    r.run(0.0, 0.0, 1800)
    rested = r.run(0.0, 0.0, 5)[-1]
    discharging = r.run(0.0, 2600.0, 10)[-1]
    readings = (rest, charging, rested, discharging)
    est_rest, est_charging, est_rested, est_discharging = (estimate(x) for x in readings)
    assert charging.actual_a > 0.0 > discharging.actual_a
    # the truth barely moved (two 5 s steps at 0.5 C: well under 0.5 %) ...
    true_spread = max(x.true_soc_pct for x in readings) - min(x.true_soc_pct for x in readings)
    assert true_spread < 0.5
    # ... the estimate jumped up with the charge current and down with the load
    assert est_charging > est_rest + 10 * true_spread
    assert est_discharging < est_rested - 10 * true_spread
    assert est_charging > charging.true_soc_pct
    assert est_discharging < discharging.true_soc_pct


@pytest.mark.parametrize("temperature_c", [25.0, 5.0])
def test_soc_estimate_reads_full_at_absorption_long_before_the_pack_is(
    temperature_c: float,
) -> None:
    """Absorption voltage is above the table's top (the rested full voltage), so it reads
    100 % the moment it gets there. The cells are then below OCV = V − I·R0: the colder the
    pack, the larger R0 (×2 per 18 K), the earlier that comes and the emptier the cells."""
    s = VoltageOnlySettings(max_charge_current_a=100.0)  # 1 C into the 100 Ah pack
    r = rig(0.3, s, temperature_c=temperature_c)
    steps = r.run(6000.0, 0.0, 3 * 3600)
    i = next(i for i, x in enumerate(steps) if x.phase == "absorption")
    entry, before = steps[i], steps[i - 1]
    assert entry.soc_estimate_pct == 100.0
    # physical bound on the truth: every cell's OCV ≤ (V − I·R0_pack) / n at the entry
    cell_ocv_bound = (entry.volts - before.actual_a * r.pack.resistance_ohm) / r.pack.n_cells
    assert entry.true_soc_pct <= soc_at_ocv(cell_ocv_bound)
    assert entry.true_soc_pct < 100.0
    first_float = next(x for x in steps if x.phase == "float")
    assert first_float.soc_estimate_pct is not None and first_float.soc_estimate_pct >= 99.0
    if temperature_c < 25.0:
        warm = rig(0.3, s).run(6000.0, 0.0, 3 * 3600)
        warm_entry = next(x for x in warm if x.phase == "absorption")
        warm_float = next(x for x in warm if x.phase == "float")
        assert entry.true_soc_pct < warm_entry.true_soc_pct
        # and after the same absorption time it goes to float with the cells emptier
        assert first_float.true_soc_pct < warm_float.true_soc_pct


def test_soc_estimate_is_absent_until_it_has_a_voltage() -> None:
    inv = VoltageOnlyInverter()
    assert inv.soc_pct is None
    inv.decide(None, 0.0, 0.0, 52.3, 1.0)
    assert inv.soc_pct is not None
    for bad in (0.0, -1.0, math.nan, math.inf):
        assert inv.decide(None, 6000.0, 0.0, bad, 1.0) == 0.0
        assert inv.soc_pct is None
        assert inv.decide(None, 0.0, 6000.0, bad, 1.0) == 0.0


def test_the_lookup_table() -> None:
    table = VOLTAGE_SOC_TABLE_16S
    for v, pct in table:
        assert soc_from_voltage(v, table) == pytest.approx(pct)
    assert soc_from_voltage(40.0, table) == 0.0
    assert soc_from_voltage(58.0, table) == 100.0
    (v0, p0), (v1, p1) = table[2], table[3]
    assert soc_from_voltage((v0 + v1) / 2, table) == pytest.approx((p0 + p1) / 2)
    # its ends are the reference's rested range for 16S LFP: 3.00 V and 3.40 V per cell
    assert table[0] == (48.0, 0.0) and table[-1] == (54.4, 100.0)


@given(a=st.floats(min_value=30.0, max_value=70.0), b=st.floats(min_value=30.0, max_value=70.0))
def test_the_lookup_is_monotonic_and_bounded(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert (
        0.0
        <= soc_from_voltage(lo, VOLTAGE_SOC_TABLE_16S)
        <= soc_from_voltage(hi, VOLTAGE_SOC_TABLE_16S)
        <= 100.0
    )


# -- settings -----------------------------------------------------------------------------------


def test_defaults_are_per_cell_what_the_reference_describes() -> None:
    s = VoltageOnlySettings()
    assert s.absorption_v / 16 == pytest.approx(3.525)
    assert s.float_v / 16 == pytest.approx(3.375)  # §2.1 float default
    assert s.low_voltage_cutoff_v / 16 == pytest.approx(3.00)  # §1.7 empty at rest
    assert s.low_voltage_cutoff_v < s.restart_v
    assert s.rebulk_v < s.float_v < s.absorption_v


def test_for_series_scales_every_voltage() -> None:
    base, hv = VoltageOnlySettings(), VoltageOnlySettings.for_series(96)
    for name in ("absorption_v", "float_v", "rebulk_v", "low_voltage_cutoff_v", "restart_v"):
        assert getattr(hv, name) == pytest.approx(6 * getattr(base, name))
    assert hv.soc_table[-1][0] == pytest.approx(6 * 54.4)
    assert hv.max_charge_current_a == base.max_charge_current_a
    assert VoltageOnlySettings.for_series(16) == base
    with pytest.raises(ValueError):
        VoltageOnlySettings.for_series(0)


@pytest.mark.parametrize(
    "bad",
    [
        {"rating_w": 0.0},
        {"max_charge_current_a": -1.0},
        {"max_discharge_current_a": 0.0},
        {"cv_gain_a_per_v": 0.0},
        {"absorption_time_s": -1.0},
        {"absorption_entry_band_v": -0.1},
        {"restart_v": 47.0},  # below the cut-off
        {"low_voltage_cutoff_v": 0.0},
        {"rebulk_v": 54.5},  # above float
        {"float_v": 57.0},  # above absorption
        {"absorption_v": math.nan},
        {"soc_table": ((48.0, 0.0),)},
        {"soc_table": ((48.0, 0.0), (47.0, 100.0))},
        {"soc_table": ((48.0, 50.0), (54.0, 10.0))},
        {"soc_table": ((48.0, 0.0), (54.0, 120.0))},
    ],
)
def test_nonsense_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        VoltageOnlySettings(**bad)  # type: ignore[arg-type]


# -- property: its commands stay within what it was configured for ------------------------------


@st.composite
def voltage_only_settings(draw: st.DrawFn) -> VoltageOnlySettings:
    cutoff = draw(st.floats(min_value=40.0, max_value=50.0))
    rebulk = draw(st.floats(min_value=45.0, max_value=54.0))
    float_v = rebulk + draw(st.floats(min_value=0.1, max_value=3.0))
    return VoltageOnlySettings(
        rating_w=draw(st.floats(min_value=500.0, max_value=15000.0)),
        max_charge_current_a=draw(st.floats(min_value=1.0, max_value=300.0)),
        max_discharge_current_a=draw(st.floats(min_value=1.0, max_value=300.0)),
        low_voltage_cutoff_v=cutoff,
        restart_v=cutoff + draw(st.floats(min_value=0.1, max_value=5.0)),
        rebulk_v=rebulk,
        float_v=float_v,
        absorption_v=float_v + draw(st.floats(min_value=0.0, max_value=3.0)),
        absorption_time_s=draw(st.floats(min_value=0.0, max_value=60.0)),
    )


@settings(max_examples=200, deadline=None)
@given(s=voltage_only_settings(), sequence=voltage_only_calls)
def test_commands_never_exceed_the_configured_maxima_or_the_rating(
    s: VoltageOnlySettings, sequence: list[tuple[float, float, float, float]]
) -> None:
    inv = VoltageOnlyInverter(s)
    elapsed = 0.0
    for pv, load, volts, dt in sequence:
        cmd = inv.decide(FORBIDDING, pv, load, volts, dt)
        assert inv.last_limit in VOLTAGE_ONLY_LIMITS
        assert inv.phase in PHASES
        assert -s.max_discharge_current_a <= cmd <= s.max_charge_current_a
        assert abs(cmd) * volts <= s.rating_w * (1 + 1e-9)
        assert abs(cmd) * volts <= abs(pv - load) * (1 + 1e-9)
        if cmd > 0.0:
            assert pv > load
        if cmd < 0.0:
            assert load > pv
            assert volts > s.low_voltage_cutoff_v
        inv.account(cmd, volts, pv, load, dt)
        elapsed += dt
    assert sum(inv.seconds_at_limit.values()) == pytest.approx(elapsed)
