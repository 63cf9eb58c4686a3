"""The scenario table: names, lengths, how runs are built, and the cold morning."""

from __future__ import annotations

import pytest

from bmslink.sim.chain import Chain, ChainConfig
from bmslink.sim.day import DAY_S, DayProfile
from bmslink.sim.scenarios import SCENARIOS, UnknownScenarioError, get_scenario

BRIEF_NAMES = {
    "sunny-day",
    "cloudy-week",
    "winter-cold",
    "weak-cell",
    "imbalanced-pack",
    "bms-link-drop",
    "voltage-only-vs-comms",
}
#: Beyond the brief: bmslink's own SoC estimate against the BMS's.
EXTRA_NAMES = {"soc-estimate"}


def test_the_scenarios_are_the_ones_promised() -> None:
    assert set(SCENARIOS) == BRIEF_NAMES | EXTRA_NAMES
    assert SCENARIOS["cloudy-week"].days == 7
    for name, scenario in SCENARIOS.items():
        assert scenario.name == name and scenario.days >= 1 and scenario.description


@pytest.mark.parametrize("name", sorted(BRIEF_NAMES | EXTRA_NAMES))
def test_every_run_is_a_valid_config_of_the_asked_length(name: str) -> None:
    scenario = SCENARIOS[name]
    default = scenario.configs()
    assert default and all(c.hours == 24.0 * scenario.days for c in default.values())
    short = scenario.configs(days=1, step_s=60.0)
    assert list(short) == list(default)
    assert all(c.hours == 24.0 and c.step_s == 60.0 for c in short.values())
    assert all(c.start_hour == 0.0 for c in short.values())  # the silence hours are clock times


def test_days_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SCENARIOS["sunny-day"].configs(days=0)


def test_link_drop_repeats_its_silence_every_day() -> None:
    (config,) = SCENARIOS["bms-link-drop"].configs(days=3).values()
    hours = SCENARIOS["bms-link-drop"].silent_hours
    assert len(config.bms_silent) == 3 * len(hours)
    for day in range(3):
        for start, end in hours:
            assert (day * DAY_S + start * 3600.0, day * DAY_S + end * 3600.0) in config.bms_silent


def test_voltage_only_vs_comms_differs_only_in_the_inverter() -> None:
    runs = SCENARIOS["voltage-only-vs-comms"].configs()
    assert set(runs) == {"comms", "voltage-only"}
    comms, voltage_only = runs["comms"], runs["voltage-only"]
    assert comms.inverter_mode == "comms" and voltage_only.inverter_mode == "voltage-only"
    assert ChainConfig(**{**vars(voltage_only), "inverter_mode": "comms"}) == comms


def test_winter_is_below_freezing_for_a_good_part_of_the_day() -> None:
    (config,) = SCENARIOS["winter-cold"].configs().values()
    day = DayProfile(seed=config.seed, ambient_offset_c=config.ambient_offset_c)
    minutes = [day.ambient_c(k * 60.0) for k in range(1440)]
    assert sum(t < 0.0 for t in minutes) / len(minutes) >= 1 / 3


def test_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(UnknownScenarioError) as err:
        get_scenario("monsoon")
    message = str(err.value)
    assert "monsoon" in message and all(name in message for name in BRIEF_NAMES)


def test_winter_morning_charging_is_refused_by_the_controller_below_0c() -> None:
    """Sun from 06:00, cells below 0 °C until mid-morning: whatever the PV, every state the
    role sent while its coldest sensor read below 0 °C carries CCL 0 and charging disabled,
    and no current flowed into the cells while one was below 0 °C."""
    (config,) = SCENARIOS["winter-cold"].configs(days=1, step_s=30.0).values()
    config.hours = 13.0
    cold_with_sun = 0
    charging_warm = 0
    with Chain(config) as chain:

        def check(c: Chain) -> None:
            nonlocal cold_with_sun, charging_warm
            sent, out = c.battery_role.state, c.control_output
            assert sent is not None and out is not None
            assert sent.cell_temp_min_c is not None
            if sent.cell_temp_min_c < 0.0:
                assert out.charge_current_a == 0.0 and not out.charge_enable
                assert sent.charge_current_a == 0.0 and not sent.charge_enable
                assert c.sample().current_a <= 0.0
                cold_with_sun += c.sample().pv_w > c.sample().load_w + 500.0
            elif c.sample().current_a > 1.0:
                charging_warm += 1

        chain.run(check)
        metrics = chain.metrics_dict()
    assert cold_with_sun > 20  # the refusal mattered: there was sun to charge from
    assert charging_warm > 0  # and charging started once the cells were warm enough
    assert metrics["seconds_charging_below_0c"] == 0.0
