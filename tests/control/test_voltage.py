"""The CVL machine: bulk → absorption → float, re-bulk, and the per-cell over-voltage cut."""

from __future__ import annotations

import pytest

from bmslink.clock import ManualClock
from bmslink.control import Controller, ControlSettings
from bmslink.control.voltage import ChargeVoltage
from bmslink.limits import HardwareLimits
from bmslink.state import BatteryState

N = 16
BULK = 3.45 * N  # 55.2 V
FLOAT = 3.375 * N  # 54.0 V
FLOOR = 3.20 * N  # 51.2 V


def reading(cells: list[float], soc: float = 95.0, **extra: object) -> BatteryState:
    values: dict[str, object] = {
        "cells_v": cells,
        "voltage_v": sum(cells),
        "soc_pct": soc,
        "cell_temp_min_c": 25.0,
        "cell_temp_max_c": 25.0,
    }
    values.update(extra)
    return BatteryState().merged(values)


def even(v: float) -> list[float]:
    return [v] * N


def one_high(high: float, rest: float = 3.40) -> list[float]:
    return [rest] * (N - 1) + [high]


def make(**overrides: object) -> tuple[Controller, ManualClock]:
    clock = ManualClock()
    hardware = HardwareLimits.for_cells(N, 200, 200, max_cell_v=3.65)
    return Controller(ControlSettings(**overrides), hardware, clock), clock


def run(ctl: Controller, clock: ManualClock, state: BatteryState, seconds: float, dt: float = 1.0):
    out = None
    end = clock.now() + seconds
    while clock.now() < end - 1e-9:
        clock.advance(dt)
        out = ctl.step(state, clock.now())
    assert out is not None
    return out


def to_absorption(ctl: Controller, clock: ManualClock) -> None:
    out = ctl.step(reading(even(3.449)), clock.now())
    assert out.mode == "absorption"


def to_float(ctl: Controller, clock: ManualClock) -> None:
    to_absorption(ctl, clock)
    clock.advance(900)
    assert ctl.step(reading(even(3.449)), clock.now()).mode == "float"


# -- bulk → absorption -----------------------------------------------------------


def test_bulk_holds_the_bulk_target_until_it_is_reached():
    ctl, clock = make()
    out = ctl.step(reading(even(3.40)), clock.now())
    assert (out.mode, out.charge_voltage_v, out.cvl_reason) == ("bulk", pytest.approx(BULK), "max")
    # 3.446 V × 16 = 55.136 V: more than 3 mV per cell short of the target
    assert ctl.step(reading(even(3.446)), clock.now()).mode == "bulk"


def test_absorption_starts_at_the_target_with_a_balanced_pack():
    ctl, clock = make()
    out = ctl.step(reading(even(3.448)), clock.now())  # 55.168 V: within 16 × 3 mV
    assert (out.mode, out.charge_voltage_v, out.cvl_reason) == (
        "absorption",
        pytest.approx(BULK),
        "absorption",
    )


def test_absorption_waits_for_balance():
    ctl, clock = make()
    cells = [3.45] * 15 + [3.435]  # 55.185 V is at the target, but 15 mV apart
    assert ctl.step(reading(cells), clock.now()).mode == "bulk"


def test_a_zero_margin_needs_the_exact_target():
    ctl, clock = make(absorption_start_margin_cell_v=0.0)
    assert ctl.step(reading(even(3.449)), clock.now()).mode == "bulk"
    assert ctl.step(reading(even(3.45)), clock.now()).mode == "absorption"


# -- absorption → float ------------------------------------------------------------


def test_float_after_the_absorption_time():
    ctl, clock = make()
    to_absorption(ctl, clock)
    out = run(ctl, clock, reading(even(3.449)), 899)
    assert out.mode == "absorption"
    out = run(ctl, clock, reading(even(3.449)), 1)
    assert (out.mode, out.cvl_reason) == ("float", "float")


def test_float_ramps_down_at_the_pack_rate_then_holds():
    ctl, clock = make()
    to_float(ctl, clock)
    state = reading(even(3.40))
    out = run(ctl, clock, state, 100)
    assert out.charge_voltage_v == pytest.approx(BULK - 0.1)  # 1 mV/s on the pack's CVL
    out = run(ctl, clock, state, 1100)
    assert out.charge_voltage_v == pytest.approx(FLOAT)
    out = run(ctl, clock, state, 500)
    assert (out.mode, out.charge_voltage_v, out.cvl_reason) == (
        "float",
        pytest.approx(FLOAT),
        "float",
    )


def test_float_ramp_rate_is_a_setting():
    ctl, clock = make(float_ramp_v_per_s=0.01)
    to_float(ctl, clock)
    out = run(ctl, clock, reading(even(3.40)), 60)
    assert out.charge_voltage_v == pytest.approx(BULK - 0.6)


def test_spread_above_the_hysteresis_restarts_the_timer():
    ctl, clock = make()
    to_absorption(ctl, clock)
    run(ctl, clock, reading(even(3.449)), 500)
    wide = reading([3.449] * 15 + [3.435])  # 14 mV > 10 + 3 mV: timer cleared
    assert run(ctl, clock, wide, 10).mode == "absorption"
    middle = reading([3.449] * 15 + [3.437])  # 12 mV: not balanced enough to start again
    run(ctl, clock, middle, 100)
    # the timer starts again at the first balanced reading (1 s later); only that counts
    out = run(ctl, clock, reading(even(3.449)), 900)
    assert out.mode == "absorption"
    assert run(ctl, clock, reading(even(3.449)), 1).mode == "float"


def test_spread_within_the_hysteresis_keeps_the_timer_running():
    ctl, clock = make()
    to_absorption(ctl, clock)
    middle = reading([3.449] * 15 + [3.437])  # 12 mV, within 10 + 3 mV
    out = run(ctl, clock, middle, 899)
    assert out.mode == "absorption"
    assert run(ctl, clock, middle, 1).mode == "float"


def test_a_pack_voltage_falling_well_below_target_is_back_to_bulk():
    ctl, clock = make()
    to_absorption(ctl, clock)
    # 3.419 × 16 = 54.70 V < 55.2 − 16 × 0.03 = 54.72 V
    assert run(ctl, clock, reading(even(3.419)), 1).mode == "bulk"


def test_a_small_sag_stays_in_absorption():
    ctl, clock = make()
    to_absorption(ctl, clock)
    assert run(ctl, clock, reading(even(3.425)), 30).mode == "absorption"


# -- re-bulk -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "soc", "mode"),
    [
        (even(3.35), 80.0, "float"),
        (even(3.35), 79.9, "bulk"),
        ([3.35] * 15 + [3.271], 95.0, "float"),  # 79 mV
        ([3.35] * 15 + [3.27], 95.0, "bulk"),  # 80 mV
    ],
)
def test_rebulk_by_soc_or_spread(cells, soc, mode):
    ctl, clock = make()
    to_float(ctl, clock)
    out = run(ctl, clock, reading(cells, soc=soc), 1)
    assert out.mode == mode
    if mode == "bulk":
        assert out.charge_voltage_v == pytest.approx(BULK)


def test_full_edge_fires_once():
    machine = ChargeVoltage(ControlSettings())
    edges = []
    for t in range(0, 2000, 10):
        machine.update(t, N, 3.449 * N, 3.449, 3.449, 0.0, 95.0, None)
        edges.append(machine.full_edge)
    assert edges.count(True) == 1
    assert edges.index(True) == 90  # absorption from t=0, float at t=900


# -- per-cell over-voltage cut --------------------------------------------------------


def test_a_high_cell_cuts_cvl_by_its_excess():
    ctl, clock = make()
    out = ctl.step(reading(one_high(3.50)), clock.now())
    # Σ = 15 × 3.40 + 3.50 = 54.5 V; excess 0.05 V → 54.45 V
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(54.45), "cell_ovp")


def test_every_cells_excess_counts():
    ctl, clock = make()
    cells = [3.40] * 14 + [3.47, 3.48]  # Σ 54.55 V, excesses 0.02 + 0.03
    out = ctl.step(reading(cells), clock.now())
    assert out.charge_voltage_v == pytest.approx(54.50)


def test_the_cut_holds_then_ramps_back_to_the_target():
    ctl, clock = make()
    ctl.step(reading(one_high(3.50)), clock.now())
    calm = reading(one_high(3.44))
    out = run(ctl, clock, calm, 60)
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(54.45), "recovering")
    out = run(ctl, clock, calm, 100)
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(54.55), "recovering")
    # 55.2 − 54.45 = 0.75 V at 1 mV/s: back at the target after 750 s of ramp
    out = run(ctl, clock, calm, 649)
    assert out.cvl_reason == "recovering"
    out = run(ctl, clock, calm, 2)
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(BULK), "max")


def test_a_new_cut_during_the_ramp_holds_again():
    ctl, clock = make()
    ctl.step(reading(one_high(3.50)), clock.now())
    run(ctl, clock, reading(one_high(3.44)), 100)  # ramped 40 s: 54.49 V
    out = run(ctl, clock, reading(one_high(3.48)), 1)  # Σ 54.48 − 0.03 = 54.45
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(54.45), "cell_ovp")
    out = run(ctl, clock, reading(one_high(3.44)), 60)
    assert out.charge_voltage_v == pytest.approx(54.45)
    out = run(ctl, clock, reading(one_high(3.44)), 10)
    assert out.charge_voltage_v == pytest.approx(54.46)


def test_the_ramp_never_rises_above_the_live_p_value():
    ctl, clock = make(cvl_recovery_hold_s=0, cvl_recovery_v_per_s=1.0)
    ctl.step(reading(one_high(3.50)), clock.now())  # 54.45 V
    out = run(ctl, clock, reading(one_high(3.47)), 1)  # P value 54.47 − 0.02 = 54.45
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(54.45), "cell_ovp")


def test_without_a_cell_list_the_highest_cell_and_pack_voltage_are_used():
    ctl, clock = make()
    state = BatteryState(
        voltage_v=54.5, cell_max_v=3.50, cell_min_v=3.40, cell_temp_min_c=25, cell_temp_max_c=25
    )
    assert ctl.step(state, clock.now()).charge_voltage_v == pytest.approx(54.45)


def test_an_excess_without_any_voltage_sum_goes_to_the_floor():
    ctl, clock = make()
    state = BatteryState(cell_max_v=3.50, cell_min_v=3.40, cell_temp_min_c=25, cell_temp_max_c=25)
    out = ctl.step(state, clock.now())
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(FLOOR), "cell_ovp")


def test_the_cut_also_works_in_float():
    # with the default re-bulk spread (80 mV) a cut cannot bind below float; allow 200 mV
    ctl, clock = make(rebulk_spread_v=0.2)
    to_float(ctl, clock)
    run(ctl, clock, reading(even(3.40)), 1300)
    out = run(ctl, clock, reading(one_high(3.50, rest=3.36)), 1)  # Σ 53.9 − 0.05
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(53.85), "cell_ovp")
    assert out.mode == "float"


def test_the_cut_can_be_switched_off():
    ctl, clock = make(cell_ovp_control=False)
    out = ctl.step(reading(one_high(3.50)), clock.now())
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(BULK), "max")


# -- bounds: never 0 ---------------------------------------------------------------


def test_a_deep_cut_stops_at_the_floor():
    ctl, clock = make()
    cells = [3.0] * 12 + [3.64] * 4  # Σ 50.56 − 4 × 0.19 = 49.8 V < 51.2 V
    out = ctl.step(reading(cells), clock.now())
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(FLOOR), "floor")


@pytest.mark.parametrize(
    ("bms_cvl", "expected", "reason"),
    [
        (0.0, BULK, "max"),  # a BMS's 0 is not a limit: ignored, never sent
        (-3.0, BULK, "max"),
        (float("nan"), BULK, "max"),
        (30.0, FLOOR, "floor"),
        (54.6, 54.6, "bms"),
        (57.0, BULK, "max"),
    ],
)
def test_the_bmss_own_cvl_is_a_ceiling_within_bounds(bms_cvl, expected, reason):
    ctl, clock = make()
    out = ctl.step(reading(even(3.35), charge_voltage_v=bms_cvl), clock.now())
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(expected), reason)


def test_missing_highest_cell_holds_at_most_float():
    ctl, clock = make()
    out = ctl.step(BatteryState(voltage_v=53.0, soc_pct=50.0), clock.now())
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(FLOAT), "missing:cell_max_v")


def test_hardware_caps_cvl():
    clock = ManualClock()
    hardware = HardwareLimits(100, 100, max_charge_voltage_v=54.4, min_discharge_voltage_v=44.8)
    ctl = Controller(ControlSettings(), hardware, clock)
    out = ctl.step(reading(even(3.35)), clock.now())
    assert (out.charge_voltage_v, out.cvl_reason) == (54.4, "hardware")


def test_a_cell_list_of_another_length_is_refused():
    ctl, clock = make()
    out = ctl.step(reading([3.35] * 15), clock.now())
    assert (out.charge_current_a, out.discharge_current_a) == (0.0, 0.0)
    assert (out.ccl_reason, out.dcl_reason, out.cvl_reason) == ("cell_count",) * 3
    # the configured count still sets the voltages: 16 cells, at most float
    assert out.charge_voltage_v == pytest.approx(FLOAT)
    assert out.discharge_voltage_v == pytest.approx(2.90 * N)


def test_series_cells_sets_the_voltages():
    clock = ManualClock()
    hardware = HardwareLimits.for_cells(15, 200, 200, max_cell_v=3.65, min_cell_v=2.5)
    ctl = Controller(ControlSettings(series_cells=15), hardware, clock)
    out = ctl.step(reading([3.35] * 15), clock.now())
    assert (out.charge_voltage_v, out.cvl_reason) == (pytest.approx(3.45 * 15), "max")
    assert out.discharge_voltage_v == pytest.approx(2.90 * 15)
