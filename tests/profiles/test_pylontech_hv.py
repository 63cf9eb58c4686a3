"""Pylontech HV CAN: the default-payload vector, hand-built frames, offsets and request matching.

Expected bytes are written from the layout in shared/reference/inverter-protocols.md §4d
(little-endian, current/limits offset 30000 in 0.1 A, temperatures offset 1000 in 0.1 degC).
"""

import pytest

from bmslink.errors import DecodeError, EncodeError
from bmslink.profiles.base import merge_fields
from bmslink.profiles.pylontech_hv import PROFILE as HV
from bmslink.state import BatteryState


def fields(can_id: int, hex_data: str) -> dict:
    return HV.decode(can_id, bytes.fromhex(hex_data.replace(" ", "")), extended=True).fields


def encode(can_id: int, state: BatteryState, mux: int | None = None) -> bytes:
    specs = HV.specs_with_id(can_id, extended=True)
    spec = next(s for s in specs if mux is None or (s.mux is not None and s.mux[1] == mux))
    return HV.encode_frame(spec, state)


# -- the vector the reference states ---------------------------------------------------------------


def test_battery_emulator_default_4210_payload():
    assert fields(0x4210, "A5 09 30 75 9D 04 2E 64") == {
        "voltage_v": 246.9,
        "current_a": 0.0,
        "temperature_c": 18.1,
        "soc_pct": 46.0,
        "soh_pct": 100.0,
    }


def test_send_group_1_id_decodes_like_group_0():
    decoded = HV.decode(0x4211, bytes.fromhex("A50930759D042E64"), True)
    assert decoded.spec is HV.spec(0x4210, True)
    assert decoded.label == "0x4211"
    assert decoded.fields == fields(0x4210, "A5 09 30 75 9D 04 2E 64")
    for can_id in (0x4220, 0x4230, 0x4240, 0x4250, 0x4260, 0x4270, 0x4280, 0x4290, 0x7310):
        assert HV.spec(can_id + 1, True) is HV.spec(can_id, True)


def test_ids_are_29_bit_only():
    with pytest.raises(DecodeError, match="unknown 11-bit id"):
        HV.decode(0x4210, bytes(8), extended=False)


# -- offsets, both ways ----------------------------------------------------------------------------


def test_negative_current_and_temperature_use_the_offsets():
    state = BatteryState(
        voltage_v=380.5, current_a=-12.5, temperature_c=-5.0, soc_pct=64, soh_pct=98
    )
    # 3805 = 0x0EDD; (-12.5 + 3000) x 10 = 29875 = 0x74B3; (-5.0 + 100) x 10 = 950 = 0x03B6
    assert encode(0x4210, state) == bytes.fromhex("DD0E B374 B603 40 62")
    assert fields(0x4210, "DD0E B374 B603 40 62") == {
        "voltage_v": 380.5,
        "current_a": -12.5,
        "temperature_c": -5.0,
        "soc_pct": 64.0,
        "soh_pct": 98.0,
    }


def test_positive_current_is_charging():
    # 30000 + 155 = 30155 = 0x75CB
    assert fields(0x4210, "DD0E CB75 B603 40 62")["current_a"] == 15.5


# -- 0x4220 limits -----------------------------------------------------------------------------------

LIMITS = BatteryState(
    charge_voltage_v=420.0,
    discharge_voltage_v=336.0,
    charge_current_a=25.0,
    discharge_current_a=50.0,
)


def test_limits_frame_layout():
    # CVL 4200 = 0x1068, DVL 3360 = 0x0D20, CCL 30000 + 250 = 0x762A, DCL 30000 - 500 = 0x733C
    assert encode(0x4220, LIMITS) == bytes.fromhex("6810 200D 2A76 3C73")
    assert fields(0x4220, "6810 200D 2A76 3C73") == {
        "charge_voltage_v": 420.0,
        "discharge_voltage_v": 336.0,
        "charge_current_a": 25.0,
        "discharge_current_a": 50.0,
    }


def test_standard_negative_dcl_decodes_to_a_positive_magnitude():
    # raw 29000 = 30000 - 1000: a 100.0 A discharge limit
    assert fields(0x4220, "6810 200D 3075 4871")["discharge_current_a"] == 100.0


def test_positive_dcl_variant_is_not_supported():
    """GCE-style DCL above the offset decodes negative (documented: base.py cannot take |x|)."""
    assert fields(0x4220, "8C0A E907 4A79 4A79")["discharge_current_a"] == -105.0


def test_limits_round_toward_safety():
    state = BatteryState(
        charge_voltage_v=420.06,
        discharge_voltage_v=336.01,
        charge_current_a=25.07,
        discharge_current_a=50.0,
    )
    got = fields(0x4220, encode(0x4220, state).hex())
    assert got["charge_voltage_v"] == 420.0
    assert got["discharge_voltage_v"] == 336.1
    assert got["charge_current_a"] == 25.0


def test_dcl_rounds_down_in_amperes():
    state = LIMITS.merged({"discharge_current_a": 50.05})
    assert fields(0x4220, encode(0x4220, state).hex())["discharge_current_a"] == 50.0


def test_negative_limits_are_refused():
    with pytest.raises(EncodeError, match="charge_current_a is negative"):
        encode(0x4220, LIMITS.merged({"charge_current_a": -1.0}))
    with pytest.raises(EncodeError, match="discharge_current_a is negative"):
        encode(0x4220, LIMITS.merged({"discharge_current_a": -1.0}))


def test_missing_limit_is_an_encode_error():
    with pytest.raises(EncodeError, match="0x4220 limits: charge_current_a is missing"):
        encode(0x4220, LIMITS.merged({"charge_current_a": None}))


# -- cells, temperatures, status, forbidden marks -------------------------------------------------------


def test_cell_voltages_and_numbers():
    state = BatteryState(cell_max_v=3.456, cell_min_v=3.201, cell_max_id="12", cell_min_id="7")
    assert encode(0x4230, state) == bytes.fromhex("800D 810C 0C00 0700")
    assert fields(0x4230, "800D 810C 0C00 0700") == {
        "cell_max_v": 3.456,
        "cell_min_v": 3.201,
        "cell_max_id": "12",
        "cell_min_id": "7",
    }
    # number 0 means unknown both ways
    assert "cell_max_id" not in fields(0x4230, "800D 810C 0000 0700")
    assert encode(0x4230, state.merged({"cell_max_id": "b0 m3"}))[4:6] == b"\x00\x00"


def test_cell_temperatures_with_offset():
    state = BatteryState(cell_temp_max_c=31.5, cell_temp_min_c=-5.0)
    # 1315 = 0x0523, 950 = 0x03B6; cell numbers unknown, sent as 0
    assert encode(0x4240, state) == bytes.fromhex("2305 B603 0000 0000")
    assert fields(0x4240, "2305 B603 1100 0300") == {
        "cell_temp_max_c": 31.5,
        "cell_temp_min_c": -5.0,
        "cell_temp_max_number": 17,
        "cell_temp_min_number": 3,
    }


def test_module_temperatures_are_sent_as_the_cell_extremes_and_stay_diagnostic():
    state = BatteryState(cell_temp_max_c=31.5, cell_temp_min_c=-5.0)
    assert encode(0x4270, state) == bytes.fromhex("2305 B603 0000 0000")
    merged = merge_fields(
        BatteryState(), [HV.decode(0x4270, bytes.fromhex("2305B60305000100"), True)]
    )
    assert merged.to_dict() == {}


@pytest.mark.parametrize(
    ("current", "status"),
    [(10.0, 1), (0.6, 1), (0.5, 3), (0.0, 3), (-0.5, 3), (-0.6, 2), (-30.0, 2)],
)
def test_basic_status_follows_the_current_with_an_idle_band(current, status):
    data = encode(0x4250, BatteryState(current_a=current))
    assert data == bytes([status, 0, 0, 0, 0, 0, 0, 0])
    assert fields(0x4250, data.hex())["basic_status"] == status


def test_force_and_balance_charge_requests():
    state = BatteryState(current_a=10.0, force_charge=True, full_charge_request=True)
    assert encode(0x4250, state)[0] == 0x01 | 0x08 | 0x10
    got = fields(0x4250, "1A 0200 00 0000 0000")
    assert got["basic_status"] == 2
    assert got["force_charge"] is True and got["full_charge_request"] is True
    assert got["cycle_period"] == 2


def test_status_bits_are_diagnostic_and_carry_no_alarms():
    got = fields(0x4250, "03 0000 81 0302 0100")
    assert got["error_bits"] == 0x81
    assert got["alarm_bits"] == 0x0203 and got["protection_bits"] == 0x0001
    assert "alarms" not in got and "warnings" not in got
    assert HV.carries_alarms is False  # the battery role turns alarms into zero limits


@pytest.mark.parametrize(
    ("byte", "enabled"), [("00", True), ("AA", False), ("55", False), ("FF", False)]
)
def test_forbidden_marks(byte, enabled):
    got = fields(0x4280, f"{byte}{byte}000000000000")
    assert got == {"charge_enable": enabled, "discharge_enable": enabled}


def test_forbidden_marks_encode():
    state = BatteryState(charge_enable=False, discharge_enable=True)
    assert encode(0x4280, state) == bytes.fromhex("AA00 0000 0000 0000")
    with pytest.raises(EncodeError, match="charge_enable is missing"):
        encode(0x4280, BatteryState(discharge_enable=True))


def test_module_voltages_and_fault_extension_are_diagnostic_zeros():
    assert encode(0x4260, BatteryState()) == bytes(8)
    assert encode(0x4290, BatteryState()) == bytes(8)
    assert fields(0x4260, "ACC7 7427 0300 0200") == {
        "module_voltage_max_v": 51.116,
        "module_voltage_min_v": 10.1,
        "module_voltage_max_number": 3,
        "module_voltage_min_number": 2,
    }


# -- equipment information -------------------------------------------------------------------------------


def test_versions_default_payload():
    assert fields(0x7310, "0100 0201 0102 0000") == {
        "hardware_type": 1,
        "hardware": "2.1",
        "firmware": "1.2",
    }
    assert encode(0x7310, BatteryState(hardware="2.1", firmware="1.17")) == bytes.fromhex(
        "0000 0201 0111 0000"
    )


def test_module_info_default_payload():
    # Battery-Emulator's constants: 120 cells, 4 modules of 30, 384 V, 37 Ah
    assert fields(0x7320, "7800 04 1E 8001 2500") == {
        "cell_count": 120,
        "modules": 4,
        "cells_per_module": 30,
        "voltage_level_v": 384,
        "installed_capacity_ah": 37.0,
    }
    state = BatteryState(cells_v=[3.3] * 8, modules=2, voltage_v=26.4, installed_capacity_ah=100.0)
    assert encode(0x7320, state) == bytes.fromhex("0800 02 04 1A00 6400")


def test_manufacturer_over_two_frames():
    decoded = [
        HV.decode(0x7330, b"PYLONTEC", True),
        HV.decode(0x7341, b"H\x00\x00\x00\x00\x00\x00\x00", True),
    ]
    assert merge_fields(BatteryState(), decoded).manufacturer == "PYLONTECH"
    state = BatteryState(manufacturer="PYLON")
    assert encode(0x7330, state) == b"PYLON\x00\x00\x00"
    assert encode(0x7340, state) == bytes(8)


# -- request/response --------------------------------------------------------------------------------------


def test_0x4200_byte0_selects_the_answer():
    ensemble, equipment = HV.responses
    assert ensemble.matches(0x4200, True, bytes(8))
    assert not equipment.matches(0x4200, True, bytes(8))
    request_2 = bytes([2, 0, 0, 0, 0, 0, 0, 0])
    assert equipment.matches(0x4200, True, request_2)
    assert not ensemble.matches(0x4200, True, request_2)
    for response in HV.responses:
        assert not response.matches(0x4200, True, bytes([1]) + bytes(7))
        assert not response.matches(0x4200, False, bytes(8))  # 11-bit is another frame
    assert ensemble.frames == tuple(range(0x4210, 0x42A0, 0x10))
    assert equipment.frames == (0x7310, 0x7320, 0x7330, 0x7340)


def test_battery_answers_only():
    assert HV.request_response
    assert all(s.period_s is None and s.extended for s in HV.frames_from("battery"))
    assert all(s.alt_ids == (s.id + 1,) for s in HV.frames_from("battery"))


def test_inverter_requests():
    assert encode(0x4200, BatteryState(), mux=0) == bytes(8)
    assert encode(0x4200, BatteryState(), mux=2) == bytes([2]) + bytes(7)
    assert HV.decode(0x4200, bytes([2]) + bytes(7), True).spec.name == "equipment_request"
    assert HV.decode(0x4200, bytes(8), True).spec.name == "ensemble_request"
    with pytest.raises(DecodeError, match="index byte 0 = 1"):
        HV.decode(0x4200, bytes([1]) + bytes(7), True)
    sent = [(s.label, data.hex()) for s, data in HV.encode(BatteryState(), "inverter")]
    assert sent == [
        ("0x4200", "0000000000000000"),
        ("0x4200", "0200000000000000"),
        ("0x8200", "aa00000000000000"),
    ]  # 0x8210 is decode-only
    assert fields(0x8210, "AA00000000000000") == {"charge_command": 0xAA}


# -- a whole answer --------------------------------------------------------------------------------------

FULL = BatteryState(
    voltage_v=380.5,
    current_a=-12.5,
    temperature_c=21.0,
    soc_pct=64.0,
    soh_pct=98.0,
    charge_voltage_v=420.0,
    discharge_voltage_v=336.0,
    charge_current_a=25.0,
    discharge_current_a=50.0,
    cell_max_v=3.456,
    cell_min_v=3.201,
    cell_max_id="12",
    cell_min_id="7",
    cell_temp_max_c=31.5,
    cell_temp_min_c=-5.0,
    charge_enable=True,
    discharge_enable=True,
)


def test_optional_equipment_frames_are_left_out_without_data():
    result = HV.encode_round(FULL)
    assert [s.label for s, _ in result.frames] == [
        "0x4210",
        "0x4220",
        "0x4230",
        "0x4240",
        "0x4250",
        "0x4260",
        "0x4270",
        "0x4280",
        "0x4290",
        "0x7310",  # versions are informational: 0.0 when unknown
    ]
    assert sorted(s.label for s, _ in result.skipped) == ["0x7320", "0x7330", "0x7340"]


def test_round_of_a_full_state_merges_back():
    state = FULL.merged({"manufacturer": "PYLON", "modules": 4, "installed_capacity_ah": 37.0})
    state = state.merged({"cells_v": [3.3] * 120})
    result = HV.encode_round(state)
    assert result.skipped == []
    back = merge_fields(BatteryState(), [HV.decode(s.id, d, True) for s, d in result.frames])
    for key in ("voltage_v", "current_a", "discharge_current_a", "cell_min_id", "manufacturer"):
        assert getattr(back, key) == getattr(state, key), key
    assert back.modules == 4 and back.installed_capacity_ah == 37.0
