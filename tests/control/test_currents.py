"""CCL / DCL: each rule in turn, the recovery hold and ramp, the cell holds, the windows."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from bmslink.clock import ManualClock
from bmslink.control import Controller, ControlSettings
from bmslink.control.currents import CellHold, RampedLimit
from bmslink.limits import HardwareLimits
from bmslink.state import BatteryState

N = 16


def reading(
    cells: list[float] | None = None,
    t_min: float | None = 25.0,
    t_max: float | None = 25.0,
    **extra: object,
) -> BatteryState:
    values: dict[str, object] = {
        "cells_v": [3.30] * N if cells is None else cells,
        "voltage_v": 52.8,
        "soc_pct": 50.0,
        "cell_temp_min_c": t_min,
        "cell_temp_max_c": t_max,
        "charge_current_a": 200.0,
        "discharge_current_a": 200.0,
        "charge_enable": True,
        "discharge_enable": True,
        "alarms": [],
    }
    values.update(extra)
    return BatteryState().merged(values)


def one_cell(v: float) -> list[float]:
    return [3.30] * (N - 1) + [v]


def make(
    hardware: HardwareLimits | None = None, **overrides: object
) -> tuple[Controller, ManualClock]:
    clock = ManualClock()
    hw = hardware or HardwareLimits.for_cells(N, 200, 200, max_cell_v=3.65)
    return Controller(ControlSettings(**overrides), hw, clock), clock


def settled(ctl: Controller, clock: ManualClock, state: BatteryState, seconds: float = 60):
    out = ctl.step(state, clock.now())
    for _ in range(int(seconds)):
        clock.advance(1)
        out = ctl.step(state, clock.now())
    return out


# -- each rule limiting in turn ---------------------------------------------------


def test_nothing_limiting_gives_the_ceiling():
    ctl, _ = make()
    assert ctl.targets(reading()) == (100.0, "max", 100.0, "max")


@pytest.mark.parametrize(
    ("extra", "ccl", "ccl_reason", "dcl", "dcl_reason"),
    [
        ({"charge_current_a": 60.0}, 60.0, "bms", 100.0, "max"),
        ({"discharge_current_a": 70.0}, 100.0, "max", 70.0, "bms"),
        ({"charge_current_a": -5.0}, 0.0, "bms", 100.0, "max"),
        ({"charge_current_a": math.nan}, 0.0, "bms", 100.0, "max"),
        ({"charge_current_a": 100.0}, 100.0, "max", 100.0, "max"),  # a tie reads as "max"
        ({"charge_current_a": None}, 100.0, "max", 100.0, "max"),  # not sent: no rule
        ({"cells_v": one_cell(3.41)}, 17.0, "cell_voltage", 100.0, "max"),
        ({"cells_v": [3.145] + [3.30] * 15}, 100.0, "max", 62.5, "cell_voltage"),
        # 3 °C: charge 0.25 → 0.5 over 2..5 °C; discharge 0.25 → 0.5 over 0..5 °C
        ({"cell_temp_min_c": 3.0}, 100 / 3, "temperature", 40.0, "temperature"),
        ({"cell_temp_max_c": 47.5}, 37.5, "temperature", 37.5, "temperature"),
        ({"charge_enable": False}, 0.0, "fet_off", 100.0, "max"),
        ({"discharge_enable": False}, 100.0, "max", 0.0, "fet_off"),
        ({"charge_enable": None, "discharge_enable": None}, 100.0, "max", 100.0, "max"),
        ({"alarms": ["high_voltage"]}, 0.0, "alarm", 100.0, "max"),
        ({"alarms": ["low_temperature_charge"]}, 0.0, "alarm", 100.0, "max"),
        ({"alarms": ["low_voltage"]}, 100.0, "max", 0.0, "alarm"),
        ({"alarms": ["short_circuit"]}, 0.0, "alarm", 0.0, "alarm"),
        ({"alarms": ["high_temperature"]}, 0.0, "alarm", 0.0, "alarm"),
        ({"alarms": ["cell_imbalance"]}, 100.0, "max", 100.0, "max"),
        ({"warnings": ["high_voltage", "general"]}, 100.0, "max", 100.0, "max"),
        ({"alarms": ["high_voltage"], "charge_enable": False}, 0.0, "alarm", 100.0, "max"),
    ],
)
def test_each_rule_limits_with_its_name(extra, ccl, ccl_reason, dcl, dcl_reason):
    ctl, _ = make()
    got = ctl.targets(reading(**extra))
    assert got == (pytest.approx(ccl), ccl_reason, pytest.approx(dcl), dcl_reason)


def test_soc_tables_limit_when_set():
    ctl, _ = make(
        charge_soc_table=[[85, 1.0], [90, 0.5], [95, 0.2], [98, 0.1]],
        discharge_soc_table=[[20, 1.0], [15, 0.5], [10, 0.2], [5, 0.1]],
    )
    # 92 %: 0.5 → 0.2 over 90..95 %, 40 % of the way
    assert ctl.targets(reading(soc_pct=92.0))[:2] == (pytest.approx(38.0), "soc")
    # 12 %: 0.2 (10 %) → 0.5 (15 %), 40 % of the way
    assert ctl.targets(reading(soc_pct=12.0))[2:] == (pytest.approx(32.0), "soc")
    assert ctl.targets(reading(soc_pct=None)) == (0.0, "missing:soc_pct", 0.0, "missing:soc_pct")


def test_soc_tables_are_off_by_default():
    ctl, _ = make()
    assert ctl.targets(reading(soc_pct=99.0)) == (100.0, "max", 100.0, "max")
    assert ctl.targets(reading(soc_pct=None)) == (100.0, "max", 100.0, "max")


def test_step_mode_applies_to_the_current_tables():
    ctl, _ = make(table_mode="step")
    assert ctl.targets(reading(cells=one_cell(3.41)))[:2] == (25.0, "cell_voltage")


@pytest.mark.parametrize(
    ("extra", "ccl_reason", "dcl_reason"),
    [
        ({"cells_v": None}, "missing:cell_max_v", "missing:cell_min_v"),
        ({"cells_v": one_cell(math.nan)}, "missing:cell_max_v", "missing:cell_min_v"),
        ({"cells_v": []}, "missing:cell_max_v", "missing:cell_min_v"),
        (
            {"cell_temp_min_c": None, "cell_temp_max_c": None},
            "missing:cell_temp_min_c",
            "missing:cell_temp_min_c",
        ),
        ({"cell_temp_max_c": None}, "missing:cell_temp_max_c", "missing:cell_temp_max_c"),
        ({"cell_temp_min_c": math.inf}, "missing:cell_temp_min_c", "missing:cell_temp_min_c"),
    ],
)
def test_a_missing_input_refuses_that_direction(extra, ccl_reason, dcl_reason):
    ctl, _ = make()
    assert ctl.targets(reading(**extra)) == (0.0, ccl_reason, 0.0, dcl_reason)


def test_only_the_direction_that_needs_a_missing_input_refuses():
    ctl, _ = make()
    state = BatteryState(cell_max_v=3.30, cell_temp_min_c=25, cell_temp_max_c=25)
    assert ctl.targets(state) == (100.0, "max", 0.0, "missing:cell_min_v")


def test_temperature_falls_back_to_the_list_then_the_single_value():
    ctl, _ = make()
    listed = reading(t_min=None, t_max=None, temperatures_c=[25.0, 3.0, 30.0])
    assert ctl.targets(listed)[:2] == (pytest.approx(100 / 3), "temperature")
    single = reading(t_min=None, t_max=None, temperature_c=47.5)
    assert ctl.targets(single)[:2] == (pytest.approx(37.5), "temperature")
    # cell sensors win over a hot MOSFET in the list
    cells_known = reading(temperatures_c=[25.0, 70.0])
    assert ctl.targets(cells_known)[:2] == (100.0, "max")


def test_the_cell_list_and_the_extremes_are_both_believed():
    ctl, _ = make()
    # cell_max_v claims 3.30 but a listed cell is at 3.41: the higher one counts
    assert ctl.targets(reading(cells=one_cell(3.41), cell_max_v=3.30))[:2] == (
        pytest.approx(17.0),
        "cell_voltage",
    )
    # and a reported extreme beyond the list counts as well
    assert ctl.targets(reading(cell_max_v=3.41))[:2] == (pytest.approx(17.0), "cell_voltage")
    assert ctl.targets(reading(cell_max_v=math.nan))[:2] == (100.0, "max")


def test_hard_over_and_under_voltage_beat_a_permissive_table():
    ctl, _ = make(
        charge_cell_voltage_table=[[3.0, 1.0], [3.7, 0.5]],
        discharge_cell_voltage_table=[[3.3, 1.0], [2.0, 0.5]],
    )
    assert ctl.targets(reading(cells=one_cell(3.649)))[:2][1] == "cell_voltage"
    assert ctl.targets(reading(cells=one_cell(3.65)))[:2] == (0.0, "over_voltage")
    assert ctl.targets(reading(cells=[2.51] + [3.3] * 15))[3] == "cell_voltage"
    assert ctl.targets(reading(cells=[2.50] + [3.3] * 15))[2:] == (0.0, "under_voltage")


def test_outside_a_window_the_targets_are_zero_even_where_the_table_allows():
    ctl, _ = make(charge_temp_min_c=5.0, discharge_temp_max_c=45.0)
    assert ctl.targets(reading(t_min=4.0))[:2] == (0.0, "temperature")
    assert ctl.targets(reading(t_min=5.0))[:2] == (0.0, "temperature")  # at the limit
    assert ctl.targets(reading(t_min=5.1))[:2] == (pytest.approx(51.0), "temperature")
    assert ctl.targets(reading(t_max=45.0))[2:] == (0.0, "temperature")


# -- recovery: cuts at once, rises after a hold, at a rate ------------------------------


def test_the_first_reading_is_taken_as_it_is():
    ctl, clock = make()
    out = ctl.step(reading(), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (100.0, "max")
    assert (out.discharge_current_a, out.dcl_reason) == (100.0, "max")


def test_a_first_reading_at_zero_then_recovers_through_the_hold():
    ctl, clock = make()
    seen = {}
    for t in range(0, 61):
        clock.set(float(t))
        state = reading(charge_enable=False) if t == 0 else reading()
        out = ctl.step(state, clock.now())
        seen[t] = (out.charge_current_a, out.ccl_reason)
    assert seen[0] == (0.0, "fet_off")
    assert seen[1] == (0.0, "recovering")
    assert seen[30] == (0.0, "recovering")  # 30 s hold
    assert seen[31] == (pytest.approx(5.0), "recovering")  # then 5 A/s
    assert seen[49] == (pytest.approx(95.0), "recovering")
    assert seen[50] == (100.0, "max")
    assert seen[60] == (100.0, "max")


def test_a_cut_applies_at_once_and_the_rise_waits_for_the_hold():
    ctl, clock = make(charge_cell_hold_s=0)  # the live cell: the ramp alone
    assert settled(ctl, clock, reading()).charge_current_a == 100.0
    clock.advance(1)
    out = ctl.step(reading(cells=one_cell(3.41)), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (pytest.approx(17.0), "cell_voltage")
    cut_at = clock.now()
    for t in range(1, 31):
        clock.set(cut_at + t)
        out = ctl.step(reading(), clock.now())
        assert (out.charge_current_a, out.ccl_reason) == (pytest.approx(17.0), "recovering")
    clock.set(cut_at + 32)
    out = ctl.step(reading(), clock.now())
    assert out.charge_current_a == pytest.approx(27.0)  # 2 s of 5 A/s
    clock.set(cut_at + 30 + 16.5)  # 17 + 5 × 16.5 = 99.5 A
    assert ctl.step(reading(), clock.now()).charge_current_a == pytest.approx(99.5)
    clock.set(cut_at + 30 + 17)
    out = ctl.step(reading(), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (100.0, "max")


def test_a_cut_during_the_ramp_holds_again():
    ctl, clock = make()
    settled(ctl, clock, reading())
    clock.advance(1)
    ctl.step(reading(charge_current_a=0.0), clock.now())
    clock.advance(40)  # 30 s hold + 10 s ramp
    assert ctl.step(reading(), clock.now()).charge_current_a == pytest.approx(50.0)
    clock.advance(1)
    out = ctl.step(reading(charge_current_a=20.0), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (20.0, "bms")
    clock.advance(30)
    assert ctl.step(reading(), clock.now()).charge_current_a == 20.0
    clock.advance(2)
    assert ctl.step(reading(), clock.now()).charge_current_a == pytest.approx(30.0)


def test_a_target_below_the_threshold_does_not_leave_zero():
    ctl, clock = make()
    settled(ctl, clock, reading())
    clock.advance(1)
    ctl.step(reading(charge_current_a=0.0), clock.now())
    for _ in range(120):  # 1 A < 1.5 % of 100 A, for two minutes
        clock.advance(1)
        out = ctl.step(reading(charge_current_a=1.0), clock.now())
        assert (out.charge_current_a, out.ccl_reason) == (0.0, "recovering")
    # the hold counts from the last reading whose target was at or below the threshold
    clock.advance(1)
    assert ctl.step(reading(charge_current_a=1.6), clock.now()).charge_current_a == 0.0
    clock.advance(29)
    assert ctl.step(reading(charge_current_a=1.6), clock.now()).charge_current_a == 0.0
    clock.advance(1)
    out = ctl.step(reading(charge_current_a=1.6), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (pytest.approx(1.6), "bms")


def test_a_steady_limit_rises_without_a_new_hold():
    ctl, clock = make()
    settled(ctl, clock, reading())
    settled(ctl, clock, reading(charge_current_a=50.0), seconds=60)
    clock.advance(1)
    out = ctl.step(reading(), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (pytest.approx(55.0), "recovering")


def test_discharge_recovers_the_same_way():
    ctl, clock = make()
    settled(ctl, clock, reading())
    clock.advance(1)
    out = ctl.step(reading(cells=[2.90] + [3.3] * 15), clock.now())
    assert (out.discharge_current_a, out.dcl_reason) == (pytest.approx(0.5), "cell_voltage")
    clock.advance(30)
    assert ctl.step(reading(), clock.now()).discharge_current_a == pytest.approx(0.5)
    clock.advance(10)
    assert ctl.step(reading(), clock.now()).discharge_current_a == pytest.approx(50.5)


def test_ramped_limit_unit():
    limit = RampedLimit(threshold_a=1.5, hold_s=10, rate_a_per_s=2)
    assert limit.update(0, 0, "alarm") == (0, "alarm")  # the first target as it is
    assert limit.update(10, 50, "max") == (0.0, "recovering")
    assert limit.update(15, 50, "max") == (10.0, "recovering")
    assert limit.update(16, 8, "bms") == (8, "bms")
    limit.cut(20)
    assert limit.update(25, 50, "max") == (0.0, "recovering")


# -- the cell-voltage tables read a held cell ---------------------------------------------


def test_cell_hold_unit():
    hold = CellHold(hold_s=10, highest=True)
    assert hold.update(0, 3.40) == 3.40
    assert hold.update(4, 3.35) == 3.40  # held
    assert hold.update(6, 3.38) == 3.40
    assert hold.update(9.5, None) is None  # nothing read: nothing to say, the window stays
    assert hold.update(9.9, 3.30) == 3.40
    assert hold.update(10, 3.30) == 3.38  # 3.40 is 10 s old: the next highest of the window
    assert hold.update(16, 3.30) == 3.30  # 3.38 (read at 6) is 10 s old too
    assert hold.update(17, 3.45) == 3.45  # a rise shows at once
    lowest = CellHold(hold_s=10, highest=False)
    assert [lowest.update(t, v) for t, v in [(0, 3.0), (5, 3.2), (9, 3.1), (10, 3.2)]] == [
        3.0,
        3.0,
        3.0,
        3.1,
    ]
    assert lowest.update(11, 2.9) == 2.9
    live = CellHold(hold_s=0, highest=True)
    assert [live.update(t, v) for t, v in [(0, 3.5), (1, 3.3)]] == [3.5, 3.3]
    tiny = CellHold(hold_s=1e-9, highest=True)  # now - hold_s == now in floats
    assert [tiny.update(1e9, v) for v in (3.5, 3.3)] == [3.5, 3.3]


def test_cell_hold_keeps_only_what_can_still_be_the_answer():
    hold = CellHold(hold_s=1e9, highest=True)
    for t in range(1000):  # rising: each reading makes every older one irrelevant
        hold.update(float(t), 3.0 + t / 10000)
    assert len(hold._readings) == 1


def test_the_charge_table_reads_the_highest_cell_of_the_hold_window():
    ctl, clock = make()  # charge_cell_hold_s = 600
    settled(ctl, clock, reading())
    clock.advance(1)
    cut_at = clock.now()
    out = ctl.step(reading(cells=one_cell(3.41)), cut_at)
    assert (out.charge_current_a, out.ccl_reason) == (pytest.approx(17.0), "cell_voltage")
    # the cell relaxes at once; the table keeps reading 3.41 V for the whole window
    for t in range(1, 600):
        clock.set(cut_at + t)
        out = ctl.step(reading(), clock.now())
        assert (out.charge_current_a, out.ccl_reason) == (pytest.approx(17.0), "cell_voltage")
    # what the state alone asks for is unchanged: the hold is the controller's memory
    assert ctl.targets(reading())[:2] == (100.0, "max")
    clock.set(cut_at + 600)  # the 3.41 V reading is 600 s old: the ramp (its hold long over)
    out = ctl.step(reading(), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (pytest.approx(22.0), "recovering")
    out = settled(ctl, clock, reading(), seconds=20)
    assert (out.charge_current_a, out.ccl_reason) == (100.0, "max")


def test_a_cut_is_not_delayed_by_the_hold():
    ctl, clock = make()
    settled(ctl, clock, reading(cells=one_cell(3.40)))  # 25 A
    for cell, amps in [(3.41, 17.0), (3.42, 9.0), (3.45, 0.5)]:
        clock.advance(1)
        out = ctl.step(reading(cells=one_cell(cell)), clock.now())
        assert (out.charge_current_a, out.ccl_reason) == (pytest.approx(amps), "cell_voltage")
    # and the hard rule reads the live cell, whatever is held
    clock.advance(1)
    out = ctl.step(reading(cells=one_cell(3.65)), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (0.0, "over_voltage")
    clock.advance(1)
    out = ctl.step(reading(cells=one_cell(3.30)), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (0.0, "cell_voltage")  # the table at 3.65


def test_a_reading_without_cells_refuses_and_the_window_survives_it_and_stale_input():
    ctl, clock = make(charge_cell_hold_s=120)
    settled(ctl, clock, reading())
    clock.advance(1)
    spike_at = clock.now()
    out = ctl.step(reading(cells=one_cell(3.41)), clock.now())
    assert out.charge_current_a == pytest.approx(17.0)
    clock.advance(1)
    out = ctl.step(reading(cells_v=None, cell_min_v=3.3), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (0.0, "missing:cell_max_v")
    clock.advance(30)
    assert ctl.step(reading(), spike_at).mode == "safe"  # stale: both limits 0
    clock.set(spike_at + 119)  # the restart's hold is over; 3.41 V still counts
    out = ctl.step(reading(), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (pytest.approx(17.0), "cell_voltage")
    clock.set(spike_at + 200)
    out = settled(ctl, clock, reading(), seconds=60)
    assert (out.charge_current_a, out.ccl_reason) == (100.0, "max")


def test_the_discharge_hold_is_off_by_default_and_works_when_set():
    dip = reading(cells=[2.90] + [3.3] * 15)
    ctl, clock = make()
    settled(ctl, clock, reading())
    clock.advance(1)
    assert ctl.step(dip, clock.now()).discharge_current_a == pytest.approx(0.5)
    out = settled(ctl, clock, reading(), seconds=40)
    assert (out.discharge_current_a, out.dcl_reason) == (pytest.approx(50.5), "recovering")

    ctl, clock = make(discharge_cell_hold_s=120)
    settled(ctl, clock, reading())
    clock.advance(1)
    dip_at = clock.now()
    assert ctl.step(dip, clock.now()).discharge_current_a == pytest.approx(0.5)
    out = settled(ctl, clock, reading(), seconds=119)
    assert (out.discharge_current_a, out.dcl_reason) == (pytest.approx(0.5), "cell_voltage")
    # 0.5 A is below the recovery threshold, so the ramp's own hold counts from the
    # window's last second: 30 s more, then 5 A/s
    clock.set(dip_at + 120)
    out = ctl.step(reading(), clock.now())
    assert (out.discharge_current_a, out.dcl_reason) == (pytest.approx(0.5), "recovering")
    clock.set(dip_at + 150)
    assert ctl.step(reading(), clock.now()).discharge_current_a == pytest.approx(5.5)


@pytest.mark.parametrize("key", ["charge_cell_hold_s", "discharge_cell_hold_s"])
@pytest.mark.parametrize("value", [-1.0, 3601.0, math.nan])
def test_hold_settings_are_validated(key, value):
    with pytest.raises(ValidationError, match=key):
        ControlSettings(**{key: value})


# -- temperature windows with hysteresis ----------------------------------------------


def test_charging_below_the_window_stays_blocked_until_back_inside_by_the_hysteresis():
    ctl, clock = make()
    settled(ctl, clock, reading())
    steps = [(-1.0, 0.0), (1.0, 0.0), (1.99, 0.0)]
    for temp, expected in steps:
        clock.advance(1)
        out = ctl.step(reading(t_min=temp), clock.now())
        assert (out.charge_current_a, out.ccl_reason, out.charge_enable) == (
            expected,
            "temperature",
            False,
        )
    # the table alone would allow 12.5 A at 1 °C: the latch is what holds it at 0
    assert ctl.targets(reading(t_min=1.0))[:2] == (pytest.approx(12.5), "temperature")
    clock.advance(1)
    out = ctl.step(reading(t_min=2.0), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (0.0, "recovering")  # free, then the hold
    out = settled(ctl, clock, reading(t_min=2.0), seconds=40)
    assert (out.charge_current_a, out.ccl_reason) == (pytest.approx(25.0), "temperature")
    # discharging was allowed all along (its window starts at −10 °C)
    assert out.discharge_current_a > 0


def test_charging_above_the_window_releases_two_kelvin_inside():
    ctl, clock = make()
    settled(ctl, clock, reading())
    for temp, blocked in [(55.0, True), (54.0, True), (53.01, True), (53.0, False)]:
        clock.advance(1)
        out = ctl.step(reading(t_max=temp), clock.now())
        if blocked:
            assert (out.charge_current_a, out.ccl_reason) == (0.0, "temperature")
        else:  # free again; the recovery hold decides when current flows
            assert (out.charge_current_a, out.ccl_reason) == (0.0, "recovering")
    out = settled(ctl, clock, reading(t_max=53.0), seconds=40)
    assert (out.charge_current_a, out.ccl_reason) == (pytest.approx(10.0), "temperature")


def test_discharge_window_has_its_own_limits():
    ctl, clock = make()
    settled(ctl, clock, reading())
    clock.advance(1)
    out = ctl.step(reading(t_min=-10.0), clock.now())
    assert (out.discharge_current_a, out.dcl_reason, out.discharge_enable) == (
        0.0,
        "temperature",
        False,
    )
    clock.advance(1)
    assert ctl.step(reading(t_min=-8.5), clock.now()).dcl_reason == "temperature"
    clock.advance(1)
    assert ctl.step(reading(t_min=-8.0), clock.now()).dcl_reason == "recovering"


def test_unknown_temperatures_leave_the_latch_as_it_was():
    ctl, clock = make()
    settled(ctl, clock, reading())
    clock.advance(1)
    ctl.step(reading(t_min=-1.0), clock.now())
    clock.advance(1)
    out = ctl.step(reading(t_min=None, t_max=None), clock.now())
    assert out.ccl_reason == "missing:cell_temp_min_c"
    clock.advance(1)
    assert ctl.step(reading(t_min=1.0), clock.now()).ccl_reason == "temperature"


# -- hardware clamp ------------------------------------------------------------------------


def test_hardware_limits_clamp_last():
    hw = HardwareLimits.for_cells(N, max_charge_current_a=50, max_discharge_current_a=40)
    ctl, clock = make(hardware=hw)
    out = settled(ctl, clock, reading())
    assert (out.charge_current_a, out.ccl_reason) == (50, "hardware")
    assert (out.discharge_current_a, out.dcl_reason) == (40, "hardware")
    out = settled(ctl, clock, reading(charge_current_a=30.0))
    assert (out.charge_current_a, out.ccl_reason) == (30.0, "bms")


def test_a_self_contradicting_state_is_read_on_the_safe_side():
    ctl, _ = make()
    # a "lowest cell" above every listed cell: the highest is at least that
    state = reading(cell_min_v=3.41)
    assert ctl.targets(state)[:2] == (pytest.approx(17.0), "cell_voltage")
    # a "highest cell" below every listed cell: the lowest is at most that
    state = reading(cell_max_v=3.145)
    assert ctl.targets(state)[2:] == (pytest.approx(62.5), "cell_voltage")
    # coldest above warmest: swapped, so 3 °C derates both directions
    state = reading(t_min=25.0, t_max=3.0)
    assert ctl.targets(state) == (
        pytest.approx(100 / 3),
        "temperature",
        pytest.approx(40.0),
        "temperature",
    )


def test_one_extreme_alone_says_nothing_about_the_other():
    ctl, _ = make()
    only_max = BatteryState(cell_max_v=3.30, cell_temp_min_c=25, cell_temp_max_c=25)
    assert ctl.targets(only_max) == (100.0, "max", 0.0, "missing:cell_min_v")
    only_min = BatteryState(cell_min_v=3.30, cell_temp_min_c=25, cell_temp_max_c=25)
    assert ctl.targets(only_min) == (0.0, "missing:cell_max_v", 100.0, "max")


def test_an_unreadable_cell_list_discards_the_extremes_sent_beside_it():
    ctl, _ = make()
    state = reading(cells=one_cell(float("nan")), cell_max_v=3.3, cell_min_v=3.3)
    assert ctl.targets(state) == (0.0, "missing:cell_max_v", 0.0, "missing:cell_min_v")


def test_a_rise_after_a_first_reading_that_was_not_a_cut_only_ramps():
    ctl, clock = make()
    ctl.step(reading(charge_current_a=60.0), clock.now())
    clock.advance(2)
    out = ctl.step(reading(), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (pytest.approx(70.0), "recovering")
