"""BYD Battery-Box Premium HVS: big-endian frames, DCL before CCL, the identification set.

Expected bytes are written from shared/reference/inverter-protocols.md §4b and
Battery-Emulator's BYD-CAN default payloads.
"""

import pytest

from bmslink.errors import DecodeError, EncodeError
from bmslink.profiles.base import merge_fields
from bmslink.profiles.byd_hvs import PROFILE as BYD
from bmslink.state import BatteryState


def fields(can_id: int, hex_data: str) -> dict:
    return BYD.decode(can_id, bytes.fromhex(hex_data.replace(" ", ""))).fields


def encode(can_id: int, state: BatteryState) -> bytes:
    spec = BYD.spec(can_id)
    assert spec is not None
    return BYD.encode_frame(spec, state)


# -- periodic battery frames -----------------------------------------------------------------------


def test_limits_are_big_endian_with_dcl_before_ccl():
    state = BatteryState(
        charge_voltage_v=403.2,
        discharge_voltage_v=300.8,
        charge_current_a=12.5,
        discharge_current_a=25.0,
    )
    # CVL 4032 = 0x0FC0, DVL 3008 = 0x0BC0, DCL 250 = 0x00FA, CCL 125 = 0x007D
    assert encode(0x110, state) == bytes.fromhex("0FC0 0BC0 00FA 007D")
    assert fields(0x110, "0FC0 0BC0 00FA 007D") == {
        "charge_voltage_v": 403.2,
        "discharge_voltage_v": 300.8,
        "discharge_current_a": 25.0,
        "charge_current_a": 12.5,
    }


def test_limits_round_toward_safety():
    state = BatteryState(
        charge_voltage_v=403.29,
        discharge_voltage_v=300.81,
        charge_current_a=12.59,
        discharge_current_a=25.01,
    )
    assert encode(0x110, state) == bytes.fromhex("0FC0 0BC1 00FA 007D")


def test_negative_current_limit_on_the_wire_is_a_decode_error():
    with pytest.raises(DecodeError, match="charge_current_a is negative"):
        fields(0x110, "0FC0 0BC0 00FA FF83")


def test_missing_limit_is_an_encode_error():
    state = BatteryState(charge_voltage_v=403.2, discharge_voltage_v=300.8, charge_current_a=1)
    with pytest.raises(EncodeError, match="0x110 limits: discharge_current_a is missing"):
        encode(0x110, state)


def test_states_in_hundredths_and_tenths():
    state = BatteryState(soc_pct=51.23, soh_pct=98.5, remaining_ah=143.1, capacity_ah=280.0)
    # 5123 = 0x1403, 9850 = 0x267A, 1431 = 0x0597, 2800 = 0x0AF0
    assert encode(0x150, state) == bytes.fromhex("1403 267A 0597 0AF0")
    assert fields(0x150, "1403 267A 0597 0AF0") == {
        "soc_pct": 51.23,
        "soh_pct": 98.5,
        "remaining_ah": 143.1,
        "capacity_ah": 280.0,
    }


def test_battery_info_signed_current_and_temperature():
    state = BatteryState(voltage_v=403.2, current_a=-12.5, temperature_c=-5.0)
    # -125 = 0xFF83, -50 = 0xFFCE, then the fixed 03 08
    assert encode(0x1D0, state) == bytes.fromhex("0FC0 FF83 FFCE 0308")
    got = fields(0x1D0, "0FC0 FF83 FFCE 0308")
    assert got["voltage_v"] == 403.2 and got["current_a"] == -12.5
    assert got["temperature_c"] == -5.0
    assert fields(0x1D0, "0FC0 0051 00DC 0308")["current_a"] == 8.1  # + = charging


def test_cell_info_temperatures():
    state = BatteryState(cell_temp_max_c=31.5, cell_temp_min_c=-2.5)
    assert encode(0x210, state) == bytes.fromhex("013B FFE7 0000 0000")
    assert fields(0x210, "013B FFE7 0000 0000") == {
        "cell_temp_max_c": 31.5,
        "cell_temp_min_c": -2.5,
    }


def test_alarm_frame_is_always_the_default_and_carries_no_alarm():
    state = BatteryState(alarms=["high_voltage", "general"], warnings=["cell_imbalance"])
    assert encode(0x190, state) == bytes.fromhex("0000 0300 0000 0000")
    assert fields(0x190, "0000 0300 0000 0000") == {"alarm_bits_0_3": 0x300, "alarm_bits_4_7": 0}
    assert BYD.carries_alarms is False  # alarms reach the inverter only as zero limits


def test_periods_and_waiting_for_the_inverter():
    periods = {s.label: s.period_s for s in BYD.frames_from("battery") if s.period_s}
    assert periods == {"0x110": 2.0, "0x150": 10.0, "0x190": 60.0, "0x1D0": 10.0, "0x210": 10.0}
    assert BYD.battery_waits_for_inverter and not BYD.request_response
    assert BYD.voltage_class == "hv"


# -- identification ---------------------------------------------------------------------------------

PRODUCT_FRAMES = [
    "00 42 61 74 74 65 72 79",  # "Battery"
    "01 2D 42 6F 78 20 50 72",  # "-Box Pr"
    "02 65 6D 69 75 6D 20 48",  # "emium H"
    "03 56 53 00 00 00 00 00",  # "VS"
]


def test_product_name_frames_merge():
    decoded = [BYD.decode(0x3D0, bytes.fromhex(h.replace(" ", ""))) for h in PRODUCT_FRAMES]
    assert [d.spec.name for d in decoded] == [f"ident_product_{k}" for k in range(4)]
    assert merge_fields(BatteryState(), decoded).product == "Battery-Box Premium HVS"


def test_product_name_frames_encode_from_the_identity():
    state = BatteryState().merged(dict(BYD.identity))
    sent = [BYD.encode_frame(s, state) for s in BYD.specs_with_id(0x3D0)]
    assert sent == [bytes.fromhex(h.replace(" ", "")) for h in PRODUCT_FRAMES]


def test_unknown_product_index_is_a_decode_error():
    with pytest.raises(DecodeError, match="index byte 0 = 4"):
        fields(0x3D0, "04 41 41 41 41 41 41 41")


def test_manufacturer_frame():
    assert encode(0x2D0, BatteryState(manufacturer="BYD")) == bytes.fromhex("00 425944 00000000")
    assert fields(0x2D0, "00 425944 00000000") == {"manufacturer": "BYD"}


def test_firmware_and_capacity_frame():
    state = BatteryState(firmware="3.29", capacity_ah=280.0, voltage_v=403.2)
    # 280 Ah x 403.2 V = 112.896 kWh -> 1129 = 0x0469
    assert encode(0x250, state) == bytes.fromhex("0329 0066 0469 0209")
    got = fields(0x250, "0329 0066 00F0 0209")
    assert got["firmware"] == "3.29" and got["capacity_kwh"] == 24.0
    assert (
        "capacity_kwh" not in merge_fields(BatteryState(), [BYD.decode(0x250, bytes(8))]).to_dict()
    )


def test_fixed_identification_frame():
    assert encode(0x290, BatteryState()) == bytes.fromhex("0637 10D9 0000 0000")


def test_identification_answers_the_identify_request_only():
    (response,) = BYD.responses
    assert response.frames == (0x250, 0x290, 0x2D0, 0x3D0)
    assert response.matches(0x151, False, bytes([1]) + b"\x00" * 7)
    assert not response.matches(0x151, False, b"\x00GOODWE\x00")
    assert not response.matches(0x151, True, bytes([1]) + b"\x00" * 7)
    assert all(
        s.period_s is None and not s.required for i in response.frames for s in BYD.specs_with_id(i)
    )


def test_identification_frames_are_optional_but_periodic_ones_are_not():
    state = BatteryState(
        charge_voltage_v=403.2,
        discharge_voltage_v=300.8,
        charge_current_a=12.5,
        discharge_current_a=25.0,
        soc_pct=50,
        soh_pct=100,
        remaining_ah=140,
        capacity_ah=280,
        voltage_v=403.2,
        current_a=0,
        temperature_c=20,
        cell_temp_max_c=21,
        cell_temp_min_c=19,
    )
    result = BYD.encode_round(state)  # no manufacturer, no product
    assert [s.label for s, _ in result.frames] == [
        "0x110",
        "0x150",
        "0x190",
        "0x1D0",
        "0x210",
        "0x250",
        "0x290",
    ]
    skipped = [s.label for s, _ in result.skipped]
    assert skipped == ["0x2D0", "0x3D0", "0x3D0", "0x3D0", "0x3D0"]
    with pytest.raises(EncodeError, match="0x150 states: capacity_ah is missing"):
        BYD.encode_round(state.merged({"capacity_ah": None}))


# -- inverter frames ------------------------------------------------------------------------------


def test_inverter_brand_and_identify_request():
    sent = [(s.name, data) for s, data in BYD.encode(BatteryState(), "inverter")]
    assert sent == [
        ("identify_request", bytes([1]) + bytes(7)),
        ("inverter_brand", b"\x00BMSLINK"),
    ]
    got = BYD.decode(0x151, b"\x00GOODWE\x00")
    assert got.spec.name == "inverter_brand" and got.fields == {"inverter_brand": "GOODWE"}
    assert BYD.decode(0x151, bytes([1]) + bytes(7)).spec.name == "identify_request"


def test_inverter_measurements_are_diagnostic():
    got = BYD.decode(0x091, bytes.fromhex("0FC0 FF83 00DC 0000"))
    assert got.fields == {
        "inverter_voltage_v": 403.2,
        "inverter_current_a": -12.5,
        "inverter_temperature_c": 22.0,
    }
    decoded = [
        got,
        BYD.decode(0x0D1, bytes.fromhex("01F4 0000 0000 0000")),
        BYD.decode(0x111, bytes.fromhex("6553F100 00000000")),
        BYD.decode(0x191, bytes.fromhex("0102")),
    ]
    assert decoded[1].fields == {"inverter_soc_pct": 50.0}
    assert decoded[2].fields == {"inverter_timestamp": 0x6553F100}
    assert merge_fields(BatteryState(), decoded).to_dict() == {}
    emitted = {s.label for s in BYD.frames_from("inverter") if s.emit}
    assert emitted == {"0x151"}
