"""Parallel-pack aggregation: the rules as properties over random banks, plus the named cases."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.bridge.aggregate import BankSettings, PackReading, aggregate, pack_limit
from strategies import lost, pack

BANK = BankSettings(series_cells=16, max_voltage_difference_v=1.0)


pack_states = st.fixed_dictionaries(
    {
        "voltage_v": st.floats(52.0, 52.9),
        "current_a": st.floats(-100, 100),
        "soc_pct": st.floats(0, 100),
        "capacity_ah": st.floats(50, 300),
        "charge_current_a": st.none() | st.floats(0, 200),
        "discharge_current_a": st.none() | st.floats(0, 200),
        "charge_enable": st.booleans(),
        "discharge_enable": st.booleans(),
        "alarms": st.lists(
            st.sampled_from(["high_voltage", "low_voltage", "cell_imbalance"]), unique=True
        ),
    }
)


@st.composite
def banks(draw: st.DrawFn) -> list[PackReading]:
    n = draw(st.integers(1, 5))
    out = []
    for i in range(n):
        if draw(st.booleans()) and draw(st.booleans()):
            out.append(lost(f"p{i}"))
        else:
            values = draw(pack_states)
            values["remaining_ah"] = values["capacity_ah"] * values["soc_pct"] / 100
            out.append(pack(f"p{i}", **values))
    return out


@settings(max_examples=300, deadline=None)
@given(banks())
def test_limits_are_sums_over_healthy_packs_and_never_count_missing_ones(
    readings: list[PackReading],
) -> None:
    bank = aggregate(readings, BANK)
    healthy = [r for r in readings if r.state is not None]
    if not healthy:
        assert bank.state is None
        return
    assert bank.state is not None
    assert math.isclose(
        bank.state.charge_current_a or 0, round(sum(pack_limit(r, "charge") for r in healthy), 1)
    )
    assert math.isclose(
        bank.state.discharge_current_a or 0,
        round(sum(pack_limit(r, "discharge") for r in healthy), 1),
    )
    # never more than the healthy packs' configured maxima together
    assert (bank.state.charge_current_a or 0) <= 100.0 * len(healthy) + 1e-9
    assert bank.state.modules == len(healthy)
    assert bank.state.modules_offline == len(readings) - len(healthy)
    # alarms merged
    assert set(bank.state.alarms or ()) == {a for r in healthy for a in r.state.alarms or ()}  # type: ignore[union-attr]
    # a pack blocking or missing raises the general warning
    degraded = len(healthy) < len(readings) or bank.blocking_charge or bank.blocking_discharge
    assert (
        "general" in (bank.state.warnings or []) or "general" in (bank.state.alarms or [])
    ) == bool(degraded)
    # current and capacity add up, SoC is capacity-weighted
    assert math.isclose(
        bank.state.current_a or 0, round(sum(r.state.current_a for r in healthy), 3), abs_tol=1e-6
    )  # type: ignore[misc, union-attr]
    caps = [r.state.capacity_ah for r in healthy]  # type: ignore[union-attr]
    socs = [r.state.soc_pct for r in healthy]  # type: ignore[union-attr]
    expected = sum(s * c for s, c in zip(socs, caps, strict=True)) / sum(caps)  # type: ignore[misc, operator, arg-type]
    assert abs((bank.state.soc_pct or 0) - expected) <= 0.051


@settings(max_examples=200, deadline=None)
@given(banks(), st.integers(0, 4))
def test_a_pack_that_drops_out_never_raises_the_bank_limits(
    readings: list[PackReading], index: int
) -> None:
    before = aggregate(readings, BANK)
    index %= len(readings)
    after_readings = list(readings)
    after_readings[index] = lost(readings[index].settings.name)
    after = aggregate(after_readings, BANK)
    if before.state is None:
        assert after.state is None
        return
    for key in ("charge_current_a", "discharge_current_a"):
        was = getattr(before.state, key)
        now = 0.0 if after.state is None else getattr(after.state, key)
        assert now <= was + 1e-9


def test_a_pack_that_blocks_charging_derates_at_once_and_is_named() -> None:
    bank = aggregate([pack("a"), pack("b", charge_enable=False)], BANK)
    assert bank.state is not None
    assert bank.state.charge_current_a == 100.0  # one pack's 100 A, not 200 and not 0
    assert bank.state.discharge_current_a == 240.0
    assert bank.state.modules_blocking_charge == 1
    assert "general" in (bank.state.warnings or [])
    assert any("b blocks charging" in n for n in bank.notes)


def test_bms_limits_win_over_configured_maxima_when_lower_never_when_higher() -> None:
    lower = aggregate([pack("a", charge_current_a=40.0, discharge_current_a=300.0)], BANK).state
    assert lower is not None
    assert lower.charge_current_a == 40.0
    assert lower.discharge_current_a == 120.0  # configured per-pack maximum caps the BMS's 300


def test_an_alarm_that_stops_charging_blocks_that_pack_and_is_merged() -> None:
    bank = aggregate([pack("a"), pack("b", alarms=["high_voltage"])], BANK)
    assert bank.state is not None
    assert bank.state.alarms == ["high_voltage"]
    assert bank.blocking_charge == ["b"]
    assert bank.state.charge_enable is False  # the merged alarm stops the bank's charging


def test_packs_whose_voltages_disagree_are_not_combined() -> None:
    bank = aggregate(
        [pack("a", voltage_v=53.0), pack("b", voltage_v=53.2), pack("c", voltage_v=50.0)], BANK
    )
    assert bank.combined == ["a", "b"]
    assert any("c left out: 50.00 V differs" in n for n in bank.notes)
    tie = aggregate([pack("a", voltage_v=53.0), pack("b", voltage_v=50.0)], BANK)
    assert tie.state is None and tie.combined == []
    assert any("disagree" in n for n in tie.notes)


def test_a_pack_with_the_wrong_cell_count_is_left_out() -> None:
    bank = aggregate([pack("a"), pack("b", cells_v=[3.3] * 15)], BANK)
    assert bank.combined == ["a"]
    assert any("15 cells" in n for n in bank.notes)


def test_cell_extremes_name_their_pack_and_one_pack_keeps_its_own_ids() -> None:
    two = aggregate([pack("a", cell_min_v=3.20, cell_max_v=3.40), pack("b")], BANK).state
    assert two is not None
    assert (two.cell_min_v, two.cell_min_id) == (3.20, "m1 c3")
    assert (two.cell_max_v, two.cell_max_id) == (3.40, "m1 c7")
    one = aggregate([pack("a")], BANK).state
    assert one is not None and one.cell_min_id == "3"


def test_soh_is_the_configured_value_only_when_no_pack_sends_one() -> None:
    assert aggregate([pack("a")], BANK).state.soh_pct == 100.0  # type: ignore[union-attr]
    assert aggregate([pack("a", soh_pct=93.0), pack("b", soh_pct=97.0)], BANK).state.soh_pct == 93.0  # type: ignore[union-attr]
    none = BankSettings(soh_pct_if_unknown=None)
    assert aggregate([pack("a")], none).state.soh_pct is None  # type: ignore[union-attr]
