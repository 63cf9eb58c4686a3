"""Safety properties of the controller, over random states and random sequences of them.

What must hold whatever a BMS sends, in whatever order and at whatever pace:
no charge current at or above cell OVP or outside the charge window, no
discharge current at or below cell UVP or outside the discharge window, limits
within the configured and hardware maxima, a CVL that is never 0, the safe
output for stale input, derating that never gives more current closer to
a limit, and cell holds that never delay a cut nor let a limit above the table
at any cell of their window.

The "effective" temperatures below restate the documented input rule
(cell_temp_min_c / cell_temp_max_c, else the temperatures_c list, else
temperature_c) independently of the controller's code.
"""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.clock import ManualClock
from bmslink.control import Controller, ControlSettings
from bmslink.limits import HardwareLimits
from bmslink.state import ALARM_NAMES, BatteryState

N = 16
EXAMPLES = 500

SETTINGS = [
    ControlSettings(),
    ControlSettings(table_mode="step"),
    ControlSettings(
        max_charge_current_a=250,
        max_discharge_current_a=30,
        charge_soc_table=[[85, 1.0], [90, 0.5], [95, 0.2], [98, 0.1]],
        discharge_soc_table=[[20, 1.0], [15, 0.5], [10, 0.2], [5, 0.1]],
        charge_temp_min_c=5,
        charge_temp_max_c=45,
        discharge_temp_min_c=-20,
        discharge_temp_max_c=60,
        temp_hysteresis_k=3,
        current_recovery_hold_s=0,
        current_recovery_a_per_s=1000,
        cvl_recovery_hold_s=0,
        absorption_time_s=5,
        charge_cell_hold_s=45,
        discharge_cell_hold_s=120,
    ),
    # permissive tables: only the hard rules stand between the cells and current
    ControlSettings(
        charge_cell_voltage_table=[[3.0, 1.0], [4.0, 0.9]],
        discharge_cell_voltage_table=[[3.0, 1.0], [2.0, 0.9]],
        charge_temperature_table=[[-40, 1.0], [80, 1.0]],
        discharge_temperature_table=[[-40, 1.0], [80, 1.0]],
        current_recovery_hold_s=0,
        current_recovery_a_per_s=1000,
        cell_ovp_control=False,
    ),
]

ODD = st.sampled_from([math.nan, math.inf, -math.inf])
EDGES_V = [2.0, 2.5, 2.8, 2.9, 3.0, 3.1, 3.19, 3.375, 3.4, 3.45, 3.5, 3.6, 3.65, 3.7]
# integers mapped to values: far cheaper to draw than bounded floats
CELL_V = st.one_of(
    st.integers(1500, 4200).map(lambda mv: mv / 1000),
    st.sampled_from([v + d for v in EDGES_V for d in (-0.0001, 0.0, 0.0001)]),
)
EDGES_T = [-20.0, -10.0, -8.0, 0.0, 2.0, 3.0, 5.0, 10.0, 40.0, 45.0, 53.0, 55.0, 60.0]
TEMP = st.one_of(
    st.integers(-400, 900).map(lambda dc: dc / 10),
    st.sampled_from([t + d for t in EDGES_T for d in (-0.01, 0.0, 0.01)]),
)


# Whole random states are built from one drawn seed: drawing ~20 fields through
# hypothesis costs ~10 ms a state, a seeded Random ~20 µs, and a failure still
# prints the state and replays from the seed.
ODD_VALUES = (math.nan, math.inf, -math.inf)
V_EDGE_VALUES = [v + d for v in EDGES_V for d in (-0.0001, 0.0, 0.0001)]
T_EDGE_VALUES = [t + d for t in EDGES_T for d in (-0.01, 0.0, 0.01)]


def _cell_v(rng: random.Random) -> float:
    return rng.choice(V_EDGE_VALUES) if rng.random() < 0.4 else round(rng.uniform(1.5, 4.2), 3)


def _temp(rng: random.Random) -> float:
    return rng.choice(T_EDGE_VALUES) if rng.random() < 0.4 else round(rng.uniform(-40, 90), 1)


def _maybe(rng: random.Random, make, odd: bool = True) -> float | None:
    r = rng.random()
    if r < 0.15:
        return None
    if odd and r < 0.20:
        return rng.choice(ODD_VALUES)
    return make()


def _cells(rng: random.Random) -> list[float] | None:
    """Mostly the configured count: one voltage with a few cells apart, sometimes unreadable."""
    if rng.random() < 0.15:
        return None
    count = rng.choice([N, N, N, N, N, 0, 1, 15, 17])
    cells = [_cell_v(rng)] * count
    for _ in range(rng.randint(0, 3) if count else 0):
        cells[rng.randrange(count)] = (
            rng.choice(ODD_VALUES) if rng.random() < 0.05 else _cell_v(rng)
        )
    return cells


def wild_state(rng: random.Random) -> BatteryState:
    """Anything a broken or odd BMS might send: fields absent, contradictory, not numbers."""
    temps = None
    if rng.random() < 0.5:
        temps = [_maybe(rng, lambda: _temp(rng)) or 20.0 for _ in range(rng.randint(0, 5))]
    return BatteryState(
        voltage_v=_maybe(rng, lambda: rng.uniform(30, 65)),
        current_a=_maybe(rng, lambda: rng.uniform(-200, 200), odd=False),
        soc_pct=_maybe(rng, lambda: rng.uniform(-5, 110)),
        cells_v=_cells(rng),
        cell_max_v=_maybe(rng, lambda: _cell_v(rng)),
        cell_min_v=_maybe(rng, lambda: _cell_v(rng)),
        cell_temp_min_c=_maybe(rng, lambda: _temp(rng)),
        cell_temp_max_c=_maybe(rng, lambda: _temp(rng)),
        temperatures_c=temps,
        temperature_c=_maybe(rng, lambda: _temp(rng)),
        charge_current_a=_maybe(rng, lambda: rng.uniform(-10, 400)),
        discharge_current_a=_maybe(rng, lambda: rng.uniform(-10, 400)),
        charge_voltage_v=_maybe(rng, lambda: rng.uniform(-5, 70)),
        charge_enable=rng.choice([None, True, True, False]),
        discharge_enable=rng.choice([None, True, True, False]),
        alarms=None if rng.random() < 0.3 else [a for a in ALARM_NAMES if rng.random() < 0.07],
    )


def healthy_state(rng: random.Random) -> BatteryState:
    """A working BMS near one limit or another, so the limits really rise to the ceilings."""
    base = rng.uniform(2.4, 3.7) if rng.random() < 0.3 else rng.uniform(3.1, 3.38)
    cells = [round(base + rng.uniform(-0.02, 0.02), 3) for _ in range(N)]
    if rng.random() < 0.3:
        cells[rng.randrange(N)] = _cell_v(rng)
    cold = _temp(rng) if rng.random() < 0.3 else rng.uniform(10, 35)
    warm = max(cold, _temp(rng) if rng.random() < 0.3 else rng.uniform(cold, 40))
    return BatteryState(
        voltage_v=sum(cells),
        soc_pct=rng.uniform(0, 100),
        cells_v=cells,
        cell_max_v=max(cells),
        cell_min_v=min(cells),
        cell_temp_min_c=cold,
        cell_temp_max_c=warm,
        charge_current_a=rng.choice([None, 400.0, rng.uniform(0, 300)]),
        discharge_current_a=rng.choice([None, 400.0, rng.uniform(0, 300)]),
        charge_enable=True,
        discharge_enable=True,
        alarms=[],
    )


def random_state(seed: int) -> BatteryState:
    rng = random.Random(seed)
    return healthy_state(rng) if rng.random() < 0.5 else wild_state(rng)


def states() -> st.SearchStrategy[BatteryState]:
    return st.integers(0, 2**32 - 1).map(random_state)


# just below the settings' ceilings too, where a clamp that is off by a little shows
AMPS = st.floats(1, 300) | st.sampled_from([29.5, 99.5, 99.99, 249.5])


@st.composite
def hardware(draw) -> HardwareLimits:
    return HardwareLimits.for_cells(
        N,
        max_charge_current_a=draw(AMPS),
        max_discharge_current_a=draw(AMPS),
        max_cell_v=draw(st.floats(3.40, 3.80)),
        min_cell_v=draw(st.floats(2.0, 3.0)),
    )


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def cell_extremes(state: BatteryState) -> tuple[float | None, float | None]:
    """Highest and lowest of every finite cell value sent (list and extremes)."""
    values = [v for v in (state.cell_max_v, state.cell_min_v) if _finite(v)]
    values += [v for v in state.cells_v or () if _finite(v)]
    return (max(values), min(values)) if values else (None, None)


def effective_temperatures(state: BatteryState) -> tuple[float | None, float | None]:
    """The documented rule: cell sensors, else the list, else the single value."""
    lo = state.cell_temp_min_c if _finite(state.cell_temp_min_c) else None
    hi = state.cell_temp_max_c if _finite(state.cell_temp_max_c) else None
    listed = state.temperatures_c
    if listed and all(_finite(t) for t in listed):
        lo = min(listed) if lo is None else lo
        hi = max(listed) if hi is None else hi
    single = state.temperature_c if _finite(state.temperature_c) else None
    lo = single if lo is None else lo
    hi = single if hi is None else hi
    if lo is None or hi is None:
        return None, None
    return min(lo, hi), max(lo, hi)


def check(out, state: BatteryState | None, s: ControlSettings, hw: HardwareLimits) -> None:
    # limits within both the configured and the hardware maxima, never negative
    assert 0.0 <= out.charge_current_a <= min(s.max_charge_current_a, hw.max_charge_current_a)
    assert (
        0.0 <= out.discharge_current_a <= min(s.max_discharge_current_a, hw.max_discharge_current_a)
    )
    assert out.charge_enable is (out.charge_current_a > 0)
    assert out.discharge_enable is (out.discharge_current_a > 0)
    assert not out.force_charge or out.charge_enable
    # CVL: a number, never 0, within hardware, above the DVL
    assert math.isfinite(out.charge_voltage_v)
    assert 0.0 < out.charge_voltage_v <= hw.max_charge_voltage_v
    assert out.discharge_voltage_v >= hw.min_discharge_voltage_v
    assert out.charge_voltage_v > out.discharge_voltage_v
    assert out.soc_pct is None or 0.0 <= out.soc_pct <= 100.0
    if state is None:
        return
    high, low = cell_extremes(state)
    t_lo, t_hi = effective_temperatures(state)
    charge_window = t_lo is not None and t_hi is not None
    charge_window = charge_window and s.charge_temp_min_c < t_lo and t_hi < s.charge_temp_max_c
    discharge_window = t_lo is not None and t_hi is not None
    discharge_window = (
        discharge_window and s.discharge_temp_min_c < t_lo and t_hi < s.discharge_temp_max_c
    )
    if high is None or high >= s.cell_over_voltage_v or not charge_window:
        assert out.charge_current_a == 0.0 and not out.charge_enable
    if low is None or low <= s.cell_under_voltage_v or not discharge_window:
        assert out.discharge_current_a == 0.0 and not out.discharge_enable


def assert_safe(out) -> None:
    assert out.mode == "safe"
    assert out.charge_current_a == 0.0 and out.discharge_current_a == 0.0
    assert not (out.charge_enable or out.discharge_enable or out.force_charge)
    assert (out.cvl_reason, out.ccl_reason, out.dcl_reason) == ("stale",) * 3


@settings(max_examples=EXAMPLES, deadline=None)
@given(states(), st.sampled_from(SETTINGS), hardware(), st.integers(0, 120))
def test_one_state_held_for_a_while(state, s, hw, seconds):
    clock = ManualClock()
    ctl = Controller(s, hw, clock)
    out = ctl.step(state, clock.now())
    check(out, state, s, hw)
    for _ in range(0, seconds, 7):  # let ramps come up: the properties must hold after them
        clock.advance(7)
        out = ctl.step(state, clock.now())
        check(out, state, s, hw)


NEAR = (-0.01, -0.001, -0.0001, 0.0, 0.0001, 0.001, 0.01)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.sampled_from(SETTINGS),
    hardware(),
    st.sampled_from([3.65 + d for d in NEAR] + [2.5 + d for d in NEAR] + [3.3]),
    st.integers(0, N - 1),
    st.sampled_from([t + d for t in EDGES_T for d in (-0.01, 0.0, 0.01)] + [25.0]),
    st.booleans(),
)
def test_hard_rules_hold_right_at_their_edges(s, hw, cell, index, temp, cold_side):
    """A healthy pack with one cell or one sensor at a threshold, limits allowed to rise."""
    cells = [3.30] * N
    cells[index] = cell
    cold, warm = (temp, 25.0) if cold_side else (25.0, temp)
    state = BatteryState(
        voltage_v=sum(cells),
        soc_pct=50.0,
        cells_v=cells,
        cell_temp_min_c=min(cold, warm),
        cell_temp_max_c=max(cold, warm),
        charge_enable=True,
        discharge_enable=True,
        alarms=[],
    )
    clock = ManualClock()
    ctl = Controller(s, hw, clock)
    for _ in range(8):
        clock.advance(10)
        check(ctl.step(state, clock.now()), state, s, hw)


STEP = st.tuples(
    st.floats(0, 120),  # seconds since the previous step
    st.one_of(st.none(), states()),
    st.floats(0, 30),  # age of the reading
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=15), st.sampled_from(SETTINGS), hardware())
def test_random_sequences_through_one_controller(steps, s, hw):
    clock = ManualClock()
    ctl = Controller(s, hw, clock)
    for dt, state, age in steps:
        clock.advance(dt)
        out = ctl.step(state, clock.now() - age)
        if state is None or age > s.stale_after_s:
            assert_safe(out)
            check(out, None, s, hw)
        else:
            assert out.mode in ("bulk", "absorption", "float")
            check(out, state, s, hw)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 60), states()), min_size=1, max_size=4),
    st.sampled_from(SETTINGS),
    hardware(),
    st.floats(0, 1000),
)
def test_stale_input_is_safe_whatever_came_before(history, s, hw, extra_age):
    clock = ManualClock()
    ctl = Controller(s, hw, clock)
    last_cvl = None
    for dt, state in history:
        clock.advance(dt)
        last_cvl = ctl.step(state, clock.now()).charge_voltage_v
    read_at = clock.now()
    clock.advance(s.stale_after_s + 0.001 + extra_age)
    out = ctl.step(history[-1][1], read_at)
    assert_safe(out)
    assert out.charge_voltage_v == last_cvl  # no jump in the voltage target
    check(out, None, s, hw)
    again = ctl.step(None)
    assert_safe(again)
    assert again.charge_voltage_v == last_cvl


# -- derating is monotone --------------------------------------------------------------


@st.composite
def plain_states(draw) -> dict[str, object]:
    """Inputs besides the one varied: sane values, a few rules active at random."""
    return {
        "soc_pct": draw(st.none() | st.integers(0, 1000).map(lambda x: x / 10)),
        "charge_current_a": draw(st.none() | st.integers(0, 400)),
        "discharge_current_a": draw(st.none() | st.integers(0, 400)),
        "charge_enable": draw(st.none() | st.booleans()),
        "discharge_enable": draw(st.none() | st.booleans()),
        "alarms": draw(st.none() | st.lists(st.sampled_from(ALARM_NAMES), max_size=2)),
        "voltage_v": 52.0,
    }


def sweep(lo: float, hi: float, step: float, offset: float, edges: list[float]) -> list[float]:
    """A grid from lo to hi shifted by ``offset``, plus every edge value and its neighbours."""
    count = int((hi - lo) / step)
    values = {lo + offset + i * step for i in range(count + 1)}
    values |= {e + d for e in edges for d in (-0.0001, 0.0, 0.0001)}
    return sorted(v for v in values if lo <= v <= hi)


OFFSET = st.integers(0, 99).map(lambda k: k / 100)  # fraction of a grid step


@settings(max_examples=EXAMPLES, deadline=None)
@given(plain_states(), st.sampled_from(SETTINGS), OFFSET, st.sampled_from([2.6, 3.0, 3.3]), TEMP)
def test_charge_limit_never_rises_as_the_highest_cell_rises(base, s, offset, low, temp):
    ctl = Controller(s, HardwareLimits.for_cells(N, 300, 300), ManualClock())
    state = BatteryState(cell_min_v=low, cell_temp_min_c=temp, cell_temp_max_c=temp).merged(base)
    limits = [
        ctl.targets(state.merged({"cell_max_v": high}))[0]
        for high in sweep(low, 4.0, 0.02, offset * 0.02, EDGES_V)
    ]
    assert limits == sorted(limits, reverse=True)


@settings(max_examples=EXAMPLES, deadline=None)
@given(plain_states(), st.sampled_from(SETTINGS), OFFSET, st.sampled_from([3.3, 3.4, 3.5]), TEMP)
def test_discharge_limit_never_rises_as_the_lowest_cell_falls(base, s, offset, high, temp):
    ctl = Controller(s, HardwareLimits.for_cells(N, 300, 300), ManualClock())
    state = BatteryState(cell_max_v=high, cell_temp_min_c=temp, cell_temp_max_c=temp).merged(base)
    limits = [
        ctl.targets(state.merged({"cell_min_v": low}))[2]
        for low in reversed(sweep(1.5, high, 0.02, offset * 0.02, EDGES_V))
    ]
    assert limits == sorted(limits, reverse=True)


@settings(max_examples=EXAMPLES, deadline=None)
@given(plain_states(), st.sampled_from(SETTINGS), OFFSET, st.sampled_from([3.2, 3.3, 3.38, 3.42]))
def test_limits_never_rise_towards_either_temperature_edge(base, s, offset, cell):
    ctl = Controller(s, HardwareLimits.for_cells(N, 300, 300), ManualClock())
    state = BatteryState(cell_max_v=cell, cell_min_v=cell).merged(base)
    cold_path = [  # the coldest sensor falling from 25 °C
        ctl.targets(state.merged({"cell_temp_min_c": t, "cell_temp_max_c": 25.0}))
        for t in reversed(sweep(-40.0, 25.0, 0.5, offset * 0.5, EDGES_T))
    ]
    hot_path = [  # the warmest sensor rising from 25 °C
        ctl.targets(state.merged({"cell_temp_min_c": 25.0, "cell_temp_max_c": t}))
        for t in sweep(25.0, 90.0, 0.5, offset * 0.5, EDGES_T)
    ]
    for path in (cold_path, hot_path):
        for index in (0, 2):
            limits = [t[index] for t in path]
            assert limits == sorted(limits, reverse=True)


# -- the cell-voltage tables read the extreme of their hold window ------------------------

# No ramp and no ramp hold in two of them: nothing else keeps a limit from rising at once,
# so only the cell hold stands between a relaxed cell and the current that spiked it.
HOLD_SETTINGS = [
    ControlSettings(),
    ControlSettings(
        charge_cell_hold_s=60,
        discharge_cell_hold_s=90,
        current_recovery_hold_s=0,
        current_recovery_a_per_s=1000,
        table_mode="step",
    ),
    ControlSettings(
        charge_cell_hold_s=300,
        discharge_cell_hold_s=300,
        current_recovery_hold_s=0,
        current_recovery_a_per_s=1000,
    ),
]
HOLD_STEP = st.tuples(
    st.one_of(st.integers(0, 60), st.integers(0, 700)),  # seconds since the previous step
    st.integers(3300, 3520),  # highest cell, mV: across the charge table's taper
    st.integers(2850, 3250),  # lowest cell, mV: across the discharge table's taper
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(HOLD_STEP, min_size=1, max_size=30), st.sampled_from(HOLD_SETTINGS))
def test_cell_holds_never_delay_a_cut_nor_allow_more_than_their_window(steps, s):
    """CCL ≤ the charge table at every highest cell read in the last charge_cell_hold_s, and
    ≤ what the live reading alone allows (a cut is never delayed); DCL alike."""
    clock = ManualClock()
    ctl = Controller(s, HardwareLimits.for_cells(N, 300, 300), clock)
    charge_table = s.table("charge_cell_voltage_table")
    discharge_table = s.table("discharge_cell_voltage_table")
    assert charge_table is not None and discharge_table is not None
    seen: list[tuple[float, float, float]] = []
    for dt, high_mv, low_mv in steps:
        clock.advance(dt)
        now = clock.now()
        high, low = high_mv / 1000, low_mv / 1000
        cells = [low] + [3.30] * (N - 2) + [high]
        state = BatteryState(
            voltage_v=sum(cells),
            soc_pct=50.0,
            cells_v=cells,
            cell_temp_min_c=25.0,
            cell_temp_max_c=25.0,
            charge_enable=True,
            discharge_enable=True,
            alarms=[],
        )
        out = ctl.step(state, now)
        seen.append((now, high, low))
        live_ccl, _, live_dcl, _ = ctl.targets(state)
        assert out.charge_current_a <= live_ccl
        assert out.discharge_current_a <= live_dcl
        for at, was_high, was_low in seen:
            if at > now - s.charge_cell_hold_s:
                assert out.charge_current_a <= s.max_charge_current_a * charge_table(was_high)
            if at > now - s.discharge_cell_hold_s:
                assert out.discharge_current_a <= s.max_discharge_current_a * discharge_table(
                    was_low
                )
