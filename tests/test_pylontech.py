"""Pylontech LV CAN: the public vectors and the documented disagreements.

The round-trip and fuzz properties for every profile are in test_profiles_generic.py.
"""

import pytest

from bmslink.errors import DecodeError, EncodeError
from bmslink.profiles import get_profile
from bmslink.profiles.base import merge_fields
from bmslink.state import ALARM_NAMES, BatteryState

PYLON = get_profile("pylontech")


def fields(can_id: int, hex_data: str) -> dict:
    return PYLON.decode(can_id, bytes.fromhex(hex_data.replace(" ", ""))).fields


# -- public vectors (shared/reference/public-vectors.md) ---------------------------------------


def test_a1_limits_spec_example():
    assert fields(0x351, "14 02 74 0E 74 0E CC 01") == {
        "charge_voltage_v": 53.2,
        "charge_current_a": 370.0,
        "discharge_current_a": 370.0,
        "discharge_voltage_v": 46.0,
    }


def test_a2_soc_soh():
    assert fields(0x355, "1A 00 64 00") == {"soc_pct": 26.0, "soh_pct": 100.0}


def test_a3_measurements():
    assert fields(0x356, "02 13 00 00 4A 01") == {
        "voltage_v": 48.66,
        "current_a": 0.0,
        "temperature_c": 33.0,
    }


def test_a5_flags_and_module_count():
    f = fields(0x359, "00 00 00 00 0A 50 4E")
    assert f["alarms"] == [] and f["warnings"] == []
    assert f["modules"] == 10
    assert f["marker"] == "PN"


def test_a6_request_flags():
    f = fields(0x35C, "C0 00")
    assert f["charge_enable"] is True and f["discharge_enable"] is True
    assert f["force_charge"] is False and f["full_charge_request"] is False


def test_a7_manufacturer():
    assert fields(0x35E, "50 59 4C 4F 4E 20 20 20") == {"manufacturer": "PYLON"}


def test_a13_inverter_keepalive():
    decoded = PYLON.decode(0x305, bytes(8))
    assert decoded.spec.sender == "inverter" and decoded.fields == {}


def test_b1_limits():
    assert fields(0x351, "48 02 00 05 00 05 AE 01") == {
        "charge_voltage_v": 58.4,
        "charge_current_a": 128.0,
        "discharge_current_a": 128.0,
        "discharge_voltage_v": 43.0,
    }


def test_b2_eight_byte_soc_frame():
    assert fields(0x355, "43 00 64 00 00 00 00 00") == {"soc_pct": 67.0, "soh_pct": 100.0}


def test_b3_discharging_current_is_negative():
    assert fields(0x356, "BE 14 F9 FF 8C 00 00 00") == {
        "voltage_v": 53.10,
        "current_a": -0.7,
        "temperature_c": 14.0,
    }


def test_merged_state_from_spec_frames():
    frames = [
        ("351", "1402740E740ECC01"),
        ("355", "1A006400"),
        ("356", "021300004A01"),
        ("359", "000000000A504E"),
        ("35C", "C000"),
        ("35E", "50594C4F4E202020"),
    ]
    state = merge_fields(
        BatteryState(), [PYLON.decode(int(i, 16), bytes.fromhex(d)) for i, d in frames]
    )
    assert state.soc_pct == 26.0 and state.voltage_v == 48.66 and state.modules == 10
    assert state.charge_enable is True and state.manufacturer == "PYLON"
    assert state.alarms == [] and state.cells_v is None  # never defaulted


# -- disagreements the reference documents -----------------------------------------------------


def test_negative_dcl_decodes_to_its_magnitude():
    assert fields(0x351, "1402 E803 9CFF CC01")["discharge_current_a"] == 10.0


def test_2016_six_byte_limits_frame_has_no_dvl():
    assert fields(0x351, "1402740E740E") == {
        "charge_voltage_v": 53.2,
        "charge_current_a": 370.0,
        "discharge_current_a": 370.0,
    }


@pytest.mark.parametrize("byte1", ["08", "80", "88"])
def test_system_error_accepted_on_bit3_and_bit7(byte1):
    assert fields(0x359, f"00{byte1}00000150 4E")["alarms"] == ["bms_internal"]


def test_system_error_written_on_documented_bit3():
    state = BatteryState(alarms=["bms_internal"], warnings=["bms_internal"], modules=1)
    data = PYLON.encode_frame(PYLON.spec(0x359), state)
    assert data == bytes.fromhex("0008000801504E")


def test_flag_bits_follow_the_2016_table():
    f = fields(0x359, "9E 01 9E 01 02 50 4E")
    every = ["high_voltage", "low_voltage", "high_temperature", "low_temperature"]
    assert f["alarms"] == [*every, "high_charge_current", "high_discharge_current"]
    assert f["warnings"] == f["alarms"]


def test_force_charge_ii_alone_counts_as_force_charge():
    f = fields(0x35C, "D0 00")
    assert (
        f["force_charge"] is True and f["force_charge_ii"] is True and f["force_charge_i"] is False
    )


def test_every_alarm_name_reaches_the_wire():
    """No alarm may be dropped on the way out: each name sets some bit in both directions."""
    spec = PYLON.spec(0x359)
    for target in ("alarms", "warnings"):
        for name in ALARM_NAMES:
            state = BatteryState(alarms=[], warnings=[], modules=1)
            setattr(state, target, [name])
            decoded = PYLON.decode(0x359, PYLON.encode_frame(spec, state)).fields
            assert decoded[target], f"{target}: {name} was lost"


# -- encoding rounds limits toward safety and refuses rather than guessing --------------------------


def test_limits_round_toward_safety_measurements_to_nearest():
    state = BatteryState(
        charge_voltage_v=55.29,
        charge_current_a=99.96,
        discharge_current_a=120.05,
        discharge_voltage_v=46.41,
        voltage_v=53.126,
        current_a=-12.34,
        temperature_c=21.25,
    )
    limits = PYLON.decode(0x351, PYLON.encode_frame(PYLON.spec(0x351), state)).fields
    assert limits == {
        "charge_voltage_v": 55.2,
        "charge_current_a": 99.9,
        "discharge_current_a": 120.0,
        "discharge_voltage_v": 46.5,
    }
    measured = PYLON.decode(0x356, PYLON.encode_frame(PYLON.spec(0x356), state)).fields
    assert measured == {"voltage_v": 53.13, "current_a": -12.3, "temperature_c": 21.2}


def test_exact_limits_survive_float_error():
    # 53.2 * 10 is 531.9999999999999 in binary floating point: it must still go out as 532
    state = BatteryState(
        charge_voltage_v=53.2,
        charge_current_a=0.3,
        discharge_current_a=0.7,
        discharge_voltage_v=46.0,
    )
    assert PYLON.encode_frame(PYLON.spec(0x351), state) == bytes.fromhex("1402 0300 0700 CC01")


def test_missing_limit_is_an_encode_error():
    with pytest.raises(EncodeError, match="0x351 limits: charge_current_a is missing"):
        PYLON.encode_frame(
            PYLON.spec(0x351),
            BatteryState(charge_voltage_v=55.2, discharge_current_a=10, discharge_voltage_v=46),
        )


def test_out_of_range_value_is_an_encode_error_not_a_wrap():
    state = BatteryState(
        charge_voltage_v=55.2,
        charge_current_a=4000.0,
        discharge_current_a=10,
        discharge_voltage_v=46,
    )
    with pytest.raises(EncodeError, match=r"charge_current_a=4000\.0 outside"):
        PYLON.encode_frame(PYLON.spec(0x351), state)


def test_negative_dcl_is_refused_on_encode():
    state = BatteryState(
        charge_voltage_v=55.2, charge_current_a=1, discharge_current_a=-10, discharge_voltage_v=46
    )
    with pytest.raises(EncodeError, match="discharge_current_a is negative"):
        PYLON.encode_frame(PYLON.spec(0x351), state)


def test_negative_ccl_on_the_wire_is_a_decode_error():
    with pytest.raises(DecodeError, match="charge_current_a is negative"):
        PYLON.decode(0x351, bytes.fromhex("1402 9CFF 740E CC01"))


def test_unknown_id_and_wrong_length_are_named():
    with pytest.raises(DecodeError, match="unknown 11-bit id 0x123 for profile pylontech"):
        PYLON.decode(0x123, b"")
    with pytest.raises(DecodeError, match=r"0x356 measurements: wrong length 5, expected 6\.\.8"):
        PYLON.decode(0x356, bytes(5))
    with pytest.raises(DecodeError, match="unknown 29-bit id"):
        PYLON.decode(0x351, bytes(8), extended=True)
