"""Growatt LV CAN (low confidence): big-endian frames, status word, SOH unsafe bit, cells.

Expected bytes are written from shared/reference/inverter-protocols.md §4e and
Battery-Emulator's GROWATT-LV-CAN layout.
"""

import pytest

from bmslink.errors import EncodeError
from bmslink.profiles.base import merge_fields
from bmslink.profiles.growatt_lv import PROFILE as GROWATT
from bmslink.state import BatteryState


def fields(can_id: int, hex_data: str) -> dict:
    return GROWATT.decode(can_id, bytes.fromhex(hex_data.replace(" ", ""))).fields


def encode(can_id: int, state: BatteryState) -> bytes:
    spec = GROWATT.spec(can_id)
    assert spec is not None
    return GROWATT.encode_frame(spec, state)


LIMITS = BatteryState(
    charge_voltage_v=55.2, charge_current_a=100.0, discharge_current_a=120.0, current_a=10.0
)


@pytest.mark.parametrize(
    ("current", "word"),
    [(10.0, "0802"), (0.5, "0401"), (0.0, "0401"), (-0.5, "0401"), (-3.0, "0C03")],
)
def test_limits_and_status_word(current, word):
    # CVL 552 = 0x0228, CCL 1000 = 0x03E8, DCL 1200 = 0x04B0; status bits 10-11 and 0-1
    data = encode(0x311, LIMITS.merged({"current_a": current}))
    assert data == bytes.fromhex(f"0228 03E8 04B0 {word}")


def test_limits_decode():
    assert fields(0x311, "0228 03E8 04B0 0C03") == {
        "charge_voltage_v": 55.2,
        "charge_current_a": 100.0,
        "discharge_current_a": 120.0,
        "sp_status": 3,
        "status": 3,
    }


def test_limits_round_toward_safety_and_refuse_missing():
    state = LIMITS.merged({"charge_voltage_v": 55.29, "charge_current_a": 99.99})
    assert encode(0x311, state)[:4] == bytes.fromhex("0228 03E7")
    with pytest.raises(EncodeError, match="0x311 limits_status: discharge_current_a is missing"):
        encode(0x311, LIMITS.merged({"discharge_current_a": None}))


def test_faults_frame_is_diagnostic():
    state = BatteryState(modules=2, cells_v=[3.3] * 16)
    assert encode(0x312, state) == bytes.fromhex("00000000 02 0000 10")
    assert encode(0x312, BatteryState()) == bytes.fromhex("00000000 01 0000 00")
    got = fields(0x312, "00010203 01 AABB 10")
    assert got == {
        "fault_bits": 0x00010203,
        "pack_number": 1,
        "manufacturer_code": 0xAABB,
        "cell_count": 16,
    }
    assert merge_fields(BatteryState(), [GROWATT.decode(0x312, bytes(8))]).to_dict() == {}
    assert GROWATT.carries_alarms is False


def test_measurements_big_endian_signed():
    state = BatteryState(
        voltage_v=52.43, current_a=-12.5, cell_temp_max_c=-2.5, soc_pct=51, soh_pct=99.4
    )
    # 5243 = 0x147B, -125 = 0xFF83, -25 = 0xFFE7, 51 = 0x33, 99 = 0x63
    assert encode(0x313, state) == bytes.fromhex("147B FF83 FFE7 33 63")
    assert fields(0x313, "147B FF83 FFE7 33 63") == {
        "voltage_v": 52.43,
        "current_a": -12.5,
        "cell_temp_max_c": -2.5,
        "soc_pct": 51.0,
        "soh_pct": 99,
        "soh_unsafe": 0,
    }


def test_soh_unsafe_bit_is_not_part_of_the_soh():
    got = fields(0x313, "147B 0000 00F0 33 E3")  # 0xE3 = unsafe flag + 99 %
    assert got["soh_pct"] == 99 and got["soh_unsafe"] == 1
    merged = merge_fields(
        BatteryState(), [GROWATT.decode(0x313, bytes.fromhex("147B000000F033E3"))]
    )
    assert merged.soh_pct == 99.0


def test_soh_outside_seven_bits_is_refused():
    state = BatteryState(voltage_v=52.0, current_a=0, cell_temp_max_c=20, soc_pct=50, soh_pct=130)
    with pytest.raises(EncodeError, match=r"soh_pct=130 outside 0\.\.127"):
        encode(0x313, state)


def test_capacity_frame():
    state = BatteryState(
        remaining_ah=143.1, capacity_ah=280.0, cell_max_v=3.279, cell_min_v=3.277, cycles=42
    )
    # 14310 = 0x37E6, 28000 = 0x6D60, 2 mV, 42 = 0x2A
    assert encode(0x314, state) == bytes.fromhex("37E6 6D60 0002 002A")
    assert fields(0x314, "37E6 6D60 0002 002A") == {
        "remaining_ah": 143.1,
        "capacity_ah": 280.0,
        "cell_delta_v": 0.002,
        "cycles": 42,
    }


def test_cells_are_big_endian_and_merge_over_four_frames():
    cells = [round(3.200 + 0.001 * i, 3) for i in range(14)]
    state = BatteryState(cells_v=cells)
    assert encode(0x315, state) == bytes.fromhex("0C80 0C81 0C82 0C83")
    assert encode(0x318, state) == bytes.fromhex("0C8C 0C8D 0000 0000")
    decoded = [GROWATT.decode(i, encode(i, state)) for i in (0x315, 0x316, 0x317, 0x318)]
    assert merge_fields(BatteryState(), decoded).cells_v == cells
    assert fields(0x316, "0CCD 0CCE 0000 0000") == {"cells_v_part2": [3.277, 3.278]}


def test_request_flags_and_cell_extremes():
    state = BatteryState(
        charge_enable=True,
        discharge_enable=False,
        force_charge=True,
        cell_max_v=3.456,
        cell_min_v=3.201,
        cell_max_id="12",
        cell_min_id="3",
    )
    assert encode(0x319, state) == bytes.fromhex("A0 0D80 0C81 0C 03 00")
    got = fields(0x319, "50 0D80 0C81 0C 03 00")  # discharge enable + force charge 2
    assert got["charge_enable"] is False and got["discharge_enable"] is True
    assert got["force_charge"] is True and got["force_charge_1"] is False
    assert got["cell_max_v"] == 3.456 and got["cell_min_v"] == 3.201
    assert got["cell_max_id"] == "12" and got["cell_min_id"] == "3"
    with pytest.raises(EncodeError, match="charge_enable is missing"):
        encode(0x319, state.merged({"charge_enable": None}))


def test_bms_info():
    state = BatteryState(manufacturer="BE", hardware="1", firmware="2")
    assert encode(0x320, state) == bytes.fromhex("4245 01 02 00000000")
    assert fields(0x320, "4245 01 02 12345678") == {
        "manufacturer": "BE",
        "hardware": "1",
        "firmware": "2",
        "date_time": 0x12345678,
    }


def test_any_0x301_asks_for_the_whole_set():
    (response,) = GROWATT.responses
    assert response.matches(0x301, False, bytes(8))
    assert response.matches(0x301, False, b"\x01\x02")
    assert response.frames == (
        0x311,
        0x312,
        0x313,
        0x314,
        0x315,
        0x316,
        0x317,
        0x318,
        0x319,
        0x320,
        0x321,
    )
    assert GROWATT.request_response
    assert fields(0x301, "0102") == {}
    assert [(s.label, d) for s, d in GROWATT.encode(BatteryState(), "inverter")] == [
        ("0x301", bytes(8))
    ]


def test_optional_frames_are_left_out():
    state = LIMITS.merged(
        {
            "voltage_v": 52.0,
            "cell_temp_max_c": 20.0,
            "soc_pct": 50.0,
            "soh_pct": 100.0,
            "charge_enable": True,
            "discharge_enable": True,
            "cell_max_v": 3.3,
            "cell_min_v": 3.2,
        }
    )
    result = GROWATT.encode_round(state)
    assert [s.label for s, _ in result.frames] == ["0x311", "0x312", "0x313", "0x319", "0x321"]
    assert [s.label for s, _ in result.skipped] == [
        "0x314",
        "0x315",
        "0x316",
        "0x317",
        "0x318",
        "0x320",
    ]
