"""The controller as a whole: stale input, the output and apply, flags, SoC, docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bmslink.clock import ManualClock
from bmslink.control import (
    CURRENT_REASONS,
    CVL_REASONS,
    MISSING_KEYS,
    OUTPUT_MODES,
    Controller,
    ControlOutput,
    ControlSettings,
)
from bmslink.limits import HardwareLimits
from bmslink.state import BatteryState

N = 16
DOCS = Path(__file__).resolve().parents[2] / "docs" / "control.md"


def reading(soc: float | None = 50.0, cells: list[float] | None = None, **extra: object):
    values: dict[str, object] = {
        "cells_v": [3.30] * N if cells is None else cells,
        "voltage_v": 52.8,
        "soc_pct": soc,
        "cell_temp_min_c": 25.0,
        "cell_temp_max_c": 25.0,
    }
    values.update(extra)
    return BatteryState().merged(values)


def make(hardware: HardwareLimits | None = None, **overrides: object):
    clock = ManualClock()
    hw = hardware or HardwareLimits.for_cells(N, 200, 200, max_cell_v=3.65)
    return Controller(ControlSettings(**overrides), hw, clock), clock


def settle(ctl: Controller, clock: ManualClock, state: BatteryState, seconds: int = 60):
    out = ctl.step(state, clock.now())
    for _ in range(seconds):
        clock.advance(1)
        out = ctl.step(state, clock.now())
    return out


def assert_safe(out: ControlOutput) -> None:
    assert (out.charge_current_a, out.discharge_current_a) == (0.0, 0.0)
    assert (out.charge_enable, out.discharge_enable, out.force_charge) == (False, False, False)
    assert out.mode == "safe"
    assert (out.cvl_reason, out.ccl_reason, out.dcl_reason) == ("stale", "stale", "stale")
    assert out.charge_voltage_v > 0


# -- stale input -------------------------------------------------------------------


def test_no_reading_at_start_is_safe_with_the_float_voltage():
    ctl, _ = make()
    out = ctl.step(None)
    assert_safe(out)
    assert out.charge_voltage_v == pytest.approx(3.375 * N)
    assert out.discharge_voltage_v == pytest.approx(2.90 * N)
    assert out.soc_pct is None


def test_a_stale_reading_keeps_the_last_cvl_sent():
    ctl, clock = make()
    high = reading(cells=[3.40] * 15 + [3.50])
    out = settle(ctl, clock, high)
    assert out.charge_voltage_v == pytest.approx(54.45)  # cut by the high cell
    read_at = clock.now()
    clock.advance(10)
    assert ctl.step(high, read_at).mode == "bulk"  # exactly stale_after_s: still fresh
    clock.advance(0.5)
    out = ctl.step(high, read_at)
    assert_safe(out)
    assert out.charge_voltage_v == pytest.approx(54.45)
    assert out.soc_pct == 50.0  # the last presented SoC


def test_a_read_time_that_is_not_a_number_counts_as_stale():
    ctl, _ = make()
    assert_safe(ctl.step(reading(), float("nan")))


def test_after_stale_input_the_currents_come_back_through_the_hold():
    ctl, clock = make()
    settle(ctl, clock, reading())
    clock.advance(1)
    assert_safe(ctl.step(None))
    clock.advance(5)
    out = ctl.step(reading(), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (0.0, "recovering")
    clock.advance(30)
    assert ctl.step(reading(), clock.now()).charge_current_a == pytest.approx(25.0)


def test_stale_input_restarts_the_absorption_timer():
    ctl, clock = make()
    full = reading(cells=[3.449] * N)
    ctl.step(full, clock.now())
    clock.advance(800)
    ctl.step(None)
    clock.advance(100)
    assert ctl.step(full, clock.now()).mode == "absorption"  # 900 s, but not all verified
    clock.advance(899)
    assert ctl.step(full, clock.now()).mode == "absorption"
    clock.advance(1)
    assert ctl.step(full, clock.now()).mode == "float"


# -- the output ----------------------------------------------------------------------


def test_apply_merges_limits_flags_and_soc():
    ctl, clock = make()
    state = reading(soc=3.0, current_a=-12.0)
    out = settle(ctl, clock, state)
    merged = out.apply(state)
    assert merged is not state
    assert merged.charge_voltage_v == out.charge_voltage_v
    assert merged.charge_current_a == out.charge_current_a == 100.0
    assert merged.discharge_current_a == out.discharge_current_a == 100.0
    assert merged.discharge_voltage_v == out.discharge_voltage_v
    assert merged.charge_enable is True and merged.discharge_enable is True
    assert merged.force_charge is True
    assert merged.soc_pct == 3.0
    assert merged.current_a == -12.0  # everything else is the state's own
    assert merged.cells_v == state.cells_v
    assert state.charge_current_a is None  # the input is not touched


def test_apply_keeps_the_states_soc_when_none_is_presented():
    ctl, _ = make()
    merged = ctl.step(None).apply(reading(soc=42.0))
    assert merged.soc_pct == 42.0
    assert merged.charge_current_a == 0.0 and merged.charge_enable is False


def test_output_is_frozen():
    ctl, _ = make()
    out = ctl.step(None)
    with pytest.raises(AttributeError):
        out.charge_current_a = 5.0  # type: ignore[misc]


def test_discharge_voltage_is_min_cell_times_cells_but_not_below_hardware():
    ctl, clock = make()
    assert ctl.step(reading(), clock.now()).discharge_voltage_v == pytest.approx(46.4)
    hw = HardwareLimits(100, 100, max_charge_voltage_v=56.8, min_discharge_voltage_v=48.0)
    ctl, clock = make(hardware=hw)
    assert ctl.step(reading(), clock.now()).discharge_voltage_v == 48.0
    assert ctl.step(None).discharge_voltage_v == 48.0


def test_hardware_that_leaves_no_room_above_the_dvl_is_refused():
    hw = HardwareLimits(100, 100, max_charge_voltage_v=46.0, min_discharge_voltage_v=40.0)
    with pytest.raises(ValueError, match="max_charge_voltage_v 46 V must be above"):
        Controller(ControlSettings(), hw, ManualClock())


# -- force charge ---------------------------------------------------------------------


def test_force_charge_has_hysteresis():
    ctl, clock = make()
    settle(ctl, clock, reading(soc=50.0))
    seen = []
    for soc in (6.0, 5.0, 7.0, 9.9, 10.0, 7.0, 4.0, None, 4.0):
        clock.advance(1)
        seen.append(ctl.step(reading(soc=soc), clock.now()).force_charge)
    assert seen == [False, True, True, True, False, False, True, False, True]


def test_force_charge_is_not_asked_while_charging_is_refused():
    ctl, clock = make()
    out = settle(ctl, clock, reading(soc=2.0, charge_enable=False))
    assert out.charge_current_a == 0.0 and out.force_charge is False


# -- presented SoC --------------------------------------------------------------------


@pytest.mark.parametrize(("soc", "shown"), [(104.0, 100.0), (-2.0, 0.0), (55.5, 55.5)])
def test_presented_soc_is_clamped_to_0_100(soc, shown):
    ctl, clock = make()
    assert ctl.step(reading(soc=soc), clock.now()).soc_pct == shown


def test_soc_cap_waits_for_a_full_charge():
    ctl, clock = make(soc_cap_until_full=True)
    full = reading(soc=100.0, cells=[3.449] * N)
    assert ctl.step(full, clock.now()).soc_pct == 99.0
    clock.advance(899)
    assert ctl.step(full, clock.now()).soc_pct == 99.0
    clock.advance(1)
    out = ctl.step(full, clock.now())
    assert (out.mode, out.soc_pct) == ("float", 100.0)
    clock.advance(1)
    assert ctl.step(reading(soc=96.0), clock.now()).soc_pct == 96.0
    clock.advance(1)
    assert ctl.step(reading(soc=100.0), clock.now()).soc_pct == 100.0  # still the same full
    clock.advance(1)
    assert ctl.step(reading(soc=94.9), clock.now()).soc_pct == 94.9  # re-armed
    clock.advance(1)
    assert ctl.step(reading(soc=100.0), clock.now()).soc_pct == 99.0


def test_soc_cap_is_off_by_default():
    ctl, clock = make()
    assert ctl.step(reading(soc=100.0), clock.now()).soc_pct == 100.0


def test_no_soc_presents_none():
    ctl, clock = make()
    assert ctl.step(reading(soc=None), clock.now()).soc_pct is None


# -- odd inputs ---------------------------------------------------------------------------


def test_an_empty_state_refuses_both_directions_and_still_sends_a_cvl():
    ctl, clock = make()
    out = ctl.step(BatteryState(), clock.now())
    assert (out.charge_current_a, out.discharge_current_a) == (0.0, 0.0)
    assert (out.ccl_reason, out.dcl_reason) == ("missing:cell_max_v", "missing:cell_min_v")
    assert out.charge_voltage_v == pytest.approx(3.375 * N)
    assert out.mode == "bulk"


def test_targets_has_no_side_effects():
    ctl, clock = make()
    settle(ctl, clock, reading())
    ctl.targets(reading(charge_current_a=0.0, cell_temp_min_c=-5.0))
    clock.advance(1)
    out = ctl.step(reading(), clock.now())
    assert (out.charge_current_a, out.ccl_reason) == (100.0, "max")


# -- docs stay true ---------------------------------------------------------------------


def test_every_setting_is_documented_with_its_default():
    text = DOCS.read_text(encoding="utf-8")
    for name, info in ControlSettings.model_fields.items():
        row = re.search(rf"^\| `{name}` \| ([^|]+) \|", text, re.MULTILINE)
        assert row, f"{name} has no row in docs/control.md"
        if isinstance(info.default, bool | int | float) and not isinstance(info.default, tuple):
            assert row.group(1).strip() == f"`{info.default:g}`" or row.group(1).strip() == (
                f"`{str(info.default).lower()}`"
            ), name


def test_every_reason_and_mode_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    names = {*CURRENT_REASONS, *CVL_REASONS, *OUTPUT_MODES}
    names |= {f"missing:{key}" for key in MISSING_KEYS}
    for name in sorted(names):
        assert f"`{name}`" in text, name


def test_soc_cap_sees_a_full_charge_that_happened_without_a_soc():
    ctl, clock = make(soc_cap_until_full=True)
    full = reading(soc=None, cells=[3.449] * N)
    ctl.step(full, clock.now())
    clock.advance(900)
    assert ctl.step(full, clock.now()).mode == "float"
    clock.advance(1)
    assert ctl.step(reading(soc=100.0), clock.now()).soc_pct == 100.0
