"""Derating tables and the settings that hold them."""

from __future__ import annotations

import math
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bmslink.control import ControlSettings, Table
from bmslink.control.settings import TABLE_SHAPES

CHARGE_V = ((3.375, 1.0), (3.40, 0.25), (3.425, 0.05), (3.45, 0.005), (3.50, 0.0))
DISCHARGE_V = ((3.19, 1.0), (3.10, 0.25), (3.00, 0.05), (2.90, 0.005), (2.80, 0.0))
CHARGE_T = ((0, 0), (2, 0.25), (5, 0.5), (10, 1), (40, 1), (45, 0.5), (50, 0.25), (55, 0))


# -- linear ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (3.375, 1.0),  # a breakpoint gives its own value
        (3.3875, 0.625),  # half way from 1.0 to 0.25
        (3.41, 0.25 - 0.2 * 0.4),  # 40 % of the way from 0.25 to 0.05
        (3.475, 0.0025),  # half way from 0.005 to 0
        (3.0, 1.0),  # below the first breakpoint: held
        (3.7, 0.0),  # above the last: held
    ],
)
def test_linear_interpolates_and_holds_the_ends(x, expected):
    assert Table(CHARGE_V)(x) == pytest.approx(expected)


def test_a_descending_table_reads_like_the_same_points_ascending():
    down, up = Table(DISCHARGE_V), Table(tuple(reversed(DISCHARGE_V)))
    for x in (2.5, 2.8, 2.85, 2.95, 3.05, 3.1, 3.15, 3.19, 3.3):
        assert down(x) == pytest.approx(up(x))
    assert down(3.145) == pytest.approx(0.625)  # half way from 0.25 (3.10) to 1.0 (3.19)
    assert down(2.0) == 0.0 and down(4.0) == 1.0


def test_temperature_table_has_two_ends():
    t = Table(CHARGE_T)
    assert t(-5) == 0.0 and t(60) == 0.0
    assert t(1) == pytest.approx(0.125)
    assert t(25) == 1.0
    assert t(47.5) == pytest.approx(0.375)


# -- step -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (3.30, 1.0),  # before the first breakpoint: the first value
        (3.375, 1.0),
        (3.39, 1.0),  # 3.40 not yet passed
        (3.40, 0.25),  # reached = passed
        (3.449, 0.05),
        (3.46, 0.005),
        (3.60, 0.0),
    ],
)
def test_step_ascending_takes_the_breakpoint_at_or_below(x, expected):
    assert Table(CHARGE_V, "step")(x) == expected


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (3.30, 1.0),  # before the first written breakpoint (3.19): the first value
        (3.19, 1.0),
        (3.15, 1.0),  # falling: 3.10 not yet passed
        (3.10, 0.25),
        (3.05, 0.25),
        (2.95, 0.05),
        (2.85, 0.005),
        (2.80, 0.0),
        (2.0, 0.0),
    ],
)
def test_step_descending_takes_the_breakpoint_at_or_above(x, expected):
    assert Table(DISCHARGE_V, "step")(x) == expected


def test_step_is_not_linear_between_breakpoints():
    linear, step = Table(CHARGE_V), Table(CHARGE_V, "step")
    assert linear(3.41) != step(3.41)
    assert linear(3.40) == step(3.40)


# -- validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "words"),
    [
        (((3.4, 1.0),), "at least 2 points"),
        (((3.4, 1.0), (3.4, 0.5)), "strictly ascending or descending"),
        (((3.4, 1.0), (3.5, 0.5), (3.45, 0.0)), "strictly ascending or descending"),
        (((3.4, 1.5), (3.5, 0.5)), "outside 0..1"),
        (((3.4, -0.1), (3.5, 0.5)), "outside 0..1"),
        (((math.nan, 1.0), (3.5, 0.5)), "not finite"),
        (((3.4, 1.0, 2.0), (3.5, 0.5)), "must be (x, fraction)"),
    ],
)
def test_bad_points_are_refused_with_the_reason(points, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Table(points)


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="'linear' or 'step'"):
        Table(CHARGE_V, "cubic")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("points", "shape", "expected"),
    [
        (CHARGE_V, "falling", True),
        (CHARGE_V, "rising", False),
        (DISCHARGE_V, "rising", True),
        (DISCHARGE_V, "falling", False),
        (CHARGE_T, "peak", True),
        (((0, 1), (10, 0), (20, 1)), "peak", False),
        (CHARGE_V, "peak", True),  # a monotone table is a (degenerate) peak
    ],
)
def test_monotone_shapes(points, shape, expected):
    assert Table(points).is_monotone(shape) is expected


@st.composite
def tables(draw):
    n = draw(st.integers(2, 8))
    xs = sorted(draw(st.lists(st.floats(-50, 100), min_size=n, max_size=n, unique=True)))
    ys = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    if draw(st.booleans()):
        xs.reverse()
    return tuple(zip(xs, ys, strict=True))


@settings(max_examples=300, deadline=None)
@given(tables(), st.floats(-100, 200), st.sampled_from(["linear", "step"]))
def test_any_table_stays_within_its_fractions(points, x, mode):
    table = Table(points, mode)
    ys = [y for _, y in points]
    value = table(x)
    assert min(ys) - 1e-12 <= value <= max(ys) + 1e-12
    if mode == "step":
        assert value in ys
    for bx, by in points:  # both modes give a breakpoint's own value at it
        assert table(bx) == pytest.approx(by)


# -- settings -------------------------------------------------------------------


def test_default_settings_hold_the_reference_tables():
    s = ControlSettings()
    assert s.charge_cell_voltage_table == CHARGE_V
    assert s.discharge_cell_voltage_table == DISCHARGE_V
    assert s.charge_temperature_table == tuple((float(x), float(y)) for x, y in CHARGE_T)
    assert s.charge_soc_table is None and s.discharge_soc_table is None
    assert s.table("charge_soc_table") is None
    assert s.table("charge_cell_voltage_table")(3.41) == pytest.approx(0.17)


def test_settings_build_tables_in_the_configured_mode():
    s = ControlSettings(table_mode="step")
    assert s.table("charge_cell_voltage_table")(3.41) == 0.25
    with pytest.raises(KeyError, match="no table setting"):
        s.table("bulk_cell_v")


def test_a_toml_control_section_validates():
    text = """
    bulk_cell_v = 3.50
    table_mode = "step"
    charge_soc_table = [[85, 1.0], [90, 0.5], [95, 0.2], [98, 0.1]]
    discharge_soc_table = [[20, 1.0], [15, 0.5], [10, 0.2], [5, 0.1]]
    """
    s = ControlSettings.model_validate(tomllib.loads(text))
    assert s.bulk_cell_v == 3.50
    assert s.table("charge_soc_table")(92) == 0.5
    assert s.table("discharge_soc_table")(12) == 0.5  # falling, 15 passed, 10 not yet


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"charge_cell_voltage_table": [[3.4, 0.1], [3.5, 0.5]]}, "charge_cell_voltage_table"),
        (
            {"discharge_cell_voltage_table": [[3.1, 0.1], [3.0, 0.5]]},
            "discharge_cell_voltage_table",
        ),
        ({"charge_temperature_table": [[0, 1], [20, 0], [40, 1]]}, "charge_temperature_table"),
        ({"discharge_temperature_table": [[0, 1]]}, "discharge_temperature_table"),
        ({"charge_soc_table": [[90, 0.1], [95, 0.5]]}, "charge_soc_table"),
        ({"discharge_soc_table": [[10, 0.2], [5, 0.3]]}, "discharge_soc_table"),
        ({"charge_cell_voltage_table": [[3.4, 1.0], [3.4, 0.0]]}, "charge_cell_voltage_table"),
        ({"bulk_cell_v": 5.0}, "bulk_cell_v"),
        ({"stale_after_s": 0}, "stale_after_s"),
        ({"stale_after_s": math.inf}, "stale_after_s"),
        ({"max_charge_current_a": -1}, "max_charge_current_a"),
        ({"table_mode": "cubic"}, "table_mode"),
        ({"bulk_cell_volts": 3.45}, "bulk_cell_volts"),
    ],
)
def test_field_errors_name_the_key(overrides, key):
    with pytest.raises(ValidationError) as info:
        ControlSettings(**overrides)
    assert key in str(info.value)
    assert info.value.errors()[0]["loc"][0] == key


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"float_cell_v": 3.46}, "float_cell_v (3.46) must be below bulk_cell_v (3.45)"),
        ({"bulk_cell_v": 3.66}, "bulk_cell_v (3.66) must be below cell_over_voltage_v (3.65)"),
        ({"cell_under_voltage_v": 2.95}, "cell_under_voltage_v (2.95) must be below min_cell_v"),
        ({"cvl_floor_cell_v": 2.8}, "min_cell_v (2.9) must be below cvl_floor_cell_v (2.8)"),
        ({"cvl_floor_cell_v": 3.4}, "cvl_floor_cell_v (3.4) must not exceed float_cell_v"),
        ({"force_charge_on_soc_pct": 10}, "force_charge_on_soc_pct (10) must be below"),
        ({"soc_cap_release_pct": 99.5}, "soc_cap_release_pct (99.5) must be below soc_cap_pct"),
        ({"charge_temp_min_c": 52}, "charge_temp_min_c (52) and charge_temp_max_c (55)"),
        ({"discharge_temp_max_c": -7}, "discharge_temp_min_c (-10) and discharge_temp_max_c"),
        ({"rebulk_spread_v": 0.012}, "rebulk_spread_v (0.012) must exceed"),
    ],
)
def test_cross_field_errors_name_both_keys(overrides, words):
    with pytest.raises(ValidationError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ControlSettings(**overrides)


def test_settings_are_frozen():
    s = ControlSettings()
    with pytest.raises(ValidationError):
        s.bulk_cell_v = 3.5  # type: ignore[misc]


def test_every_table_setting_has_a_shape():
    tables = {name for name in ControlSettings.model_fields if name.endswith("_table")}
    assert tables == set(TABLE_SHAPES)


def test_every_setting_has_a_description():
    for name, info in ControlSettings.model_fields.items():
        assert info.description, name
