import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.errors import StateError
from bmslink.state import ALARM_NAMES, FIELD_NAMES, BatteryState

CONTRACT_KEYS = """voltage_v current_a temperature_c soc_pct soh_pct charge_voltage_v
charge_current_a discharge_current_a discharge_voltage_v charge_enable discharge_enable
force_charge full_charge_request cells_v cell_min_v cell_max_v cell_min_id cell_max_id
temperatures_c cell_temp_min_c cell_temp_max_c capacity_ah remaining_ah installed_capacity_ah
cycles modules modules_blocking_charge modules_blocking_discharge modules_offline charged_kwh
discharged_kwh manufacturer product serial firmware hardware alarms warnings packs""".split()


def test_keys_are_exactly_the_contract():
    assert list(FIELD_NAMES) == CONTRACT_KEYS


def test_alarm_vocabulary_is_the_contract():
    assert ALARM_NAMES == (
        "high_voltage",
        "low_voltage",
        "high_temperature",
        "low_temperature",
        "high_temperature_charge",
        "low_temperature_charge",
        "high_charge_current",
        "high_discharge_current",
        "short_circuit",
        "contactor",
        "bms_internal",
        "cell_imbalance",
        "general",
    )


def test_absent_fields_are_left_out_not_defaulted():
    assert BatteryState().to_dict() == {}
    assert BatteryState(soc_pct=50.0).to_dict() == {"soc_pct": 50.0}
    assert json.loads(BatteryState(alarms=[]).to_json()) == {"alarms": []}


def test_nested_packs_round_trip():
    bank = BatteryState(
        voltage_v=52.1,
        packs=[BatteryState(soc_pct=40.0, cell_min_id="b0 m3"), BatteryState(cycles=7)],
    )
    again = BatteryState.from_json(bank.to_json())
    assert again == bank
    assert again.packs is not None and again.packs[0].cell_min_id == "b0 m3"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"soc": 5}, "unknown key 'soc'"),
        ({"soc_pct": "50"}, "soc_pct: expected a number"),
        ({"cycles": 1.5}, "cycles: expected an integer"),
        ({"charge_enable": 1}, "charge_enable: expected true or false"),
        ({"alarms": ["overheat"]}, "alarms[0]: unknown alarm name 'overheat'"),
        ({"cells_v": [3.3, "x"]}, "cells_v[1]: expected a number"),
        ({"packs": [{"volts": 1}]}, "unknown key 'packs[0].volts'"),
        ([], "expected a JSON object"),
    ],
)
def test_bad_json_names_the_problem(payload, message):
    with pytest.raises(StateError, match=message.replace("[", r"\[").replace("]", r"\]")):
        BatteryState.from_json(json.dumps(payload))


def test_null_means_absent():
    assert BatteryState.from_json('{"soc_pct": null}') == BatteryState()


@given(
    st.builds(
        BatteryState,
        voltage_v=st.floats(allow_nan=False, allow_infinity=False),
        cells_v=st.lists(st.floats(0, 5)),
        alarms=st.lists(st.sampled_from(ALARM_NAMES)),
        cycles=st.integers(0, 10**6),
        manufacturer=st.text(),
        charge_enable=st.booleans(),
    )
)
def test_json_round_trip(state):
    assert BatteryState.from_json(state.to_json()) == state
