"""SMA Sunny Island external-BMS CAN: layouts, invalid markers, 0x35A pairs, SI frames."""

import pytest

from bmslink.errors import EncodeError
from bmslink.profiles.base import merge_fields
from bmslink.profiles.sma import PROFILE as SMA
from bmslink.state import ALARM_NAMES, BatteryState


def fields(can_id: int, hex_data: str) -> dict:
    return SMA.decode(can_id, bytes.fromhex(hex_data.replace(" ", ""))).fields


def encode(can_id: int, state: BatteryState) -> str:
    spec = SMA.spec(can_id)
    assert spec is not None
    return SMA.encode_frame(spec, state).hex(" ").upper()


LIMITS = BatteryState(
    charge_voltage_v=55.2,
    charge_current_a=100.0,
    discharge_current_a=120.0,
    discharge_voltage_v=46.5,
)


# -- 0x351 limits ----------------------------------------------------------------------------------


def test_limits_decode_little_endian_cvl_ccl_dcl_dvl():
    assert fields(0x351, "28 02 E8 03 B0 04 D1 01") == {
        "charge_voltage_v": 55.2,
        "charge_current_a": 100.0,
        "discharge_current_a": 120.0,
        "discharge_voltage_v": 46.5,
    }


def test_b1_limits_vector():
    assert fields(0x351, "48 02 00 05 00 05 AE 01") == {
        "charge_voltage_v": 58.4,
        "charge_current_a": 128.0,
        "discharge_current_a": 128.0,
        "discharge_voltage_v": 43.0,
    }


def test_limits_invalid_markers_decode_to_absent():
    assert fields(0x351, "FF FF 00 80 00 80 FF FF") == {}


def test_negative_dcl_decodes_to_its_magnitude():
    assert fields(0x351, "28 02 E8 03 38 FF D1 01")["discharge_current_a"] == 20.0


def test_limits_encode_exact_bytes():
    assert encode(0x351, LIMITS) == "28 02 E8 03 B0 04 D1 01"


def test_absent_dvl_is_sent_as_invalid():
    state = BatteryState(charge_voltage_v=55.2, charge_current_a=100.0, discharge_current_a=120.0)
    assert encode(0x351, state) == "28 02 E8 03 B0 04 FF FF"


@pytest.mark.parametrize("key", ["charge_voltage_v", "charge_current_a", "discharge_current_a"])
def test_a_missing_limit_refuses_rather_than_sending_invalid(key):
    state = BatteryState(**{**LIMITS.to_dict(), key: None})
    with pytest.raises(EncodeError, match=f"0x351 limits: {key} is missing"):
        encode(0x351, state)


def test_a_limit_equal_to_the_invalid_marker_is_refused():
    state = BatteryState(**{**LIMITS.to_dict(), "charge_voltage_v": 6553.5})
    with pytest.raises(EncodeError, match=r"charge_voltage_v=6553\.5 would be sent as the invalid"):
        encode(0x351, state)


def test_limits_round_toward_safety():
    state = BatteryState(
        charge_voltage_v=55.29,
        charge_current_a=99.96,
        discharge_current_a=120.05,
        discharge_voltage_v=46.41,
    )
    assert encode(0x351, state) == "28 02 E7 03 B0 04 D1 01"


# -- 0x355 SOC/SOH/HiResSOC ------------------------------------------------------------------------


def test_hires_soc_wins_when_present():
    assert fields(0x355, "43 00 64 00 5E 1A 00 00") == {"soc_pct": 67.5, "soh_pct": 100.0}


def test_invalid_hires_soc_leaves_the_one_percent_value():
    assert fields(0x355, "43 00 64 00 FF FF 00 00") == {"soc_pct": 67.0, "soh_pct": 100.0}


def test_four_byte_soc_frame_is_accepted():
    assert fields(0x355, "43 00 64 00") == {"soc_pct": 67.0, "soh_pct": 100.0}


def test_soc_invalid_markers_decode_to_absent():
    assert fields(0x355, "FF FF FF FF FF FF") == {}


def test_soc_encode_sends_both_resolutions_and_invalid_soh():
    assert encode(0x355, BatteryState(soc_pct=67.25)) == "43 00 FF FF 45 1A 00 00"
    assert encode(0x355, BatteryState(soc_pct=100.0, soh_pct=98.0)) == "64 00 62 00 10 27 00 00"


def test_missing_soc_refuses():
    with pytest.raises(EncodeError, match="0x355 soc_soh: soc_pct is missing"):
        encode(0x355, BatteryState(soh_pct=100.0))


# -- 0x356 measurements ----------------------------------------------------------------------------


def test_b3_measurements_discharging():
    assert fields(0x356, "BE 14 F9 FF 8C 00 00 00") == {
        "voltage_v": 53.10,
        "current_a": -0.7,
        "temperature_c": 14.0,
    }


def test_measurement_invalid_markers_decode_to_absent():
    assert fields(0x356, "BE 14 F9 FF 00 80") == {"voltage_v": 53.10, "current_a": -0.7}
    assert fields(0x356, "00 80 00 80 00 80") == {}


def test_absent_temperature_encodes_as_invalid():
    state = BatteryState(voltage_v=53.1, current_a=-12.3)
    assert encode(0x356, state) == "BE 14 85 FF 00 80 00 00"


def test_negative_temperature_and_charging_current_encode():
    state = BatteryState(voltage_v=48.66, current_a=25.0, temperature_c=-5.5)
    assert encode(0x356, state) == "02 13 FA 00 C9 FF 00 00"


def test_missing_voltage_refuses():
    with pytest.raises(EncodeError, match="0x356 measurements: voltage_v is missing"):
        encode(0x356, BatteryState(current_a=1.0, temperature_c=20.0))


# -- 0x35A alarm/warning pairs ---------------------------------------------------------------------


def test_b4_all_pairs_ok_means_nothing_active():
    assert fields(0x35A, "AA AA AA AA AA AA AA AA") == {"alarms": [], "warnings": []}


def test_low_bit_of_a_pair_means_active():
    # dfch: 0x10 in byte 0 is a low-voltage alarm (pair 2 = 01)
    assert fields(0x35A, "10 00 00 00 00 00 00 00")["alarms"] == ["low_voltage"]


def test_unsupported_and_reserved_pair_values_are_not_active():
    # 0xFF reserved, 0x00 not supported: nothing reports, so nothing is known
    assert fields(0x35A, "FF 00 FF 00 00 FF 00 FF") == {"alarms": None, "warnings": None}
    # one pair reporting OK among unsupported ones: known, and nothing active
    assert fields(0x35A, "02 00 FF 00 00 FF 00 02") == {"alarms": [], "warnings": []}


def test_unknown_alarms_go_as_not_supported_never_as_ok():
    data = SMA.encode_frame(SMA.spec(0x35A), BatteryState())
    assert data == bytes(8)
    assert fields(0x35A, data.hex()) == {"alarms": None, "warnings": None}


def test_reserved_pairs_of_byte_3_and_7_are_ignored():
    # 0x55: all four pairs "active", but pairs 1-3 are reserved
    assert fields(0x35A, "AA AA AA 55 AA AA AA 55") == {
        "alarms": ["cell_imbalance"],
        "warnings": ["cell_imbalance"],
    }


def test_pair_layout_byte_by_byte():
    cases = {
        "01 AA AA 02": "general",
        "A6 AA AA 02": "high_voltage",
        "9A AA AA 02": "low_voltage",
        "6A AA AA 02": "high_temperature",
        "AA A9 AA 02": "low_temperature",
        "AA A6 AA 02": "high_temperature_charge",
        "AA 9A AA 02": "low_temperature_charge",
        "AA 6A AA 02": "high_discharge_current",
        "AA AA A9 02": "high_charge_current",
        "AA AA A6 02": "contactor",
        "AA AA 9A 02": "short_circuit",
        "AA AA 6A 02": "bms_internal",
        "AA AA AA 01": "cell_imbalance",
    }
    for hex_alarms, name in cases.items():
        got = fields(0x35A, hex_alarms + " AA AA AA 02")
        assert got == {"alarms": [name], "warnings": []}, name


def test_encode_one_alarm_and_one_warning():
    state = BatteryState(alarms=["high_voltage"], warnings=["cell_imbalance"])
    # byte 0 = 0b10_10_01_10: pair 1 active, the others OK; reserved pairs 0 (not supported)
    assert encode(0x35A, state) == "A6 AA AA 02 AA AA AA 01"


def test_encode_nothing_active():
    assert encode(0x35A, BatteryState(alarms=[], warnings=[])) == "AA AA AA 02 AA AA AA 02"


@pytest.mark.parametrize("name", ALARM_NAMES)
@pytest.mark.parametrize("target", ["alarms", "warnings"])
def test_every_alarm_name_survives_the_pairs(name, target):
    state = BatteryState(alarms=[], warnings=[])
    setattr(state, target, [name])
    decoded = SMA.decode(0x35A, SMA.encode_frame(SMA.spec(0x35A), state)).fields
    other = "warnings" if target == "alarms" else "alarms"
    assert decoded[target] == [name] and decoded[other] == []


def test_every_alarm_name_at_once():
    state = BatteryState(alarms=list(ALARM_NAMES), warnings=list(ALARM_NAMES))
    assert encode(0x35A, state) == "55 55 55 01 55 55 55 01"


def test_missing_alarms_are_not_supported_while_known_warnings_are_ok():
    data = bytes.fromhex(encode(0x35A, BatteryState(warnings=[])).replace(" ", ""))
    assert data[:4] == bytes(4), "unknown alarms must not be sent as OK"
    assert data[4:] != bytes(4)
    assert SMA.decode(0x35A, data).fields == {"alarms": None, "warnings": []}


# -- 0x35B, 0x35E, 0x35F, 0x00F --------------------------------------------------------------------


def test_events_frame_is_eight_zero_bytes_and_accepts_anything():
    assert encode(0x35B, BatteryState()) == "00 00 00 00 00 00 00 00"
    assert fields(0x35B, "01 02 03") == {}


def test_b5_manufacturer():
    assert fields(0x35E, "42 59 44 00 00 00 00 00") == {"manufacturer": "BYD"}


def test_manufacturer_encodes_nul_padded():
    assert encode(0x35E, BatteryState(manufacturer="SMA")) == "53 4D 41 00 00 00 00 00"


def test_identification_decodes_capacity_and_diagnostics():
    assert fields(0x35F, "03 00 01 02 C8 00 07 00") == {
        "bat_type": 3,
        "bms_version": 0x0201,
        "capacity_ah": 200.0,
        "manufacturer_id": 7,
    }
    assert fields(0x35F, "FF FF FF FF 69 00 FF FF") == {"capacity_ah": 105.0}


def test_identification_sends_invalid_for_what_bmslink_cannot_know():
    assert encode(0x35F, BatteryState(capacity_ah=280.0)) == "FF FF FF FF 18 01 FF FF"
    assert encode(0x35F, BatteryState()) == "FF FF FF FF FF FF FF FF"


def test_quick_stop_decodes_and_is_never_sent():
    assert fields(0x00F, "") == {}
    assert fields(0x00F, "00 00 00 00 00 00 00 00") == {}
    spec = SMA.spec(0x00F)
    assert spec is not None and not spec.emit and spec.sender == "battery"


# -- a whole round ---------------------------------------------------------------------------------


def full_state(**changes) -> BatteryState:
    base = BatteryState(
        charge_voltage_v=55.2,
        charge_current_a=100.0,
        discharge_current_a=120.0,
        soc_pct=67.5,
        voltage_v=53.1,
        current_a=-2.5,
        alarms=[],
        warnings=[],
    )
    return BatteryState(**{**base.to_dict(), **changes})


@pytest.mark.parametrize("key", ["charge_voltage_v", "charge_current_a", "discharge_current_a"])
def test_a_missing_limit_stops_the_whole_round(key):
    with pytest.raises(EncodeError, match=f"0x351 limits: {key} is missing"):
        SMA.encode_round(full_state(**{key: None}))


def test_round_leaves_out_a_missing_manufacturer():
    round_ = SMA.encode_round(full_state())
    sent = [s.label for s, _ in round_.frames]
    assert sent == ["0x351", "0x355", "0x356", "0x35A", "0x35B", "0x35F"]
    assert [(s.label, why) for s, why in round_.skipped] == [
        ("0x35E", "0x35E manufacturer: manufacturer is missing")
    ]


def test_round_decodes_back_to_the_state():
    state = full_state(manufacturer="REC-BMS", capacity_ah=280.0, temperature_c=21.5, soh_pct=99)
    round_ = SMA.encode_round(state)
    assert not round_.skipped
    merged = merge_fields(BatteryState(), [SMA.decode(s.id, d) for s, d in round_.frames])
    assert merged == BatteryState(**{**state.to_dict(), "discharge_voltage_v": None})


def test_profile_timing_and_liveness():
    assert SMA.bitrate == 500_000
    assert SMA.min_frame_interval_s == 0.2
    assert SMA.lost_timeout_s == 60.0 and SMA.liveness_ids == (0x355,)
    assert SMA.identity == {}
    assert all(s.period_s == 1.0 for s in SMA.frames if s.emit)


# -- Sunny Island frames ---------------------------------------------------------------------------


def test_si_305_negative_raw_current_is_charging():
    # jaedog saw bytes 4-7 "E6 00 DE 03" from an SI: 23.0 degC and 99.0 % SOC
    assert fields(0x305, "13 02 38 FF E6 00 DE 03") == {
        "voltage_v": 53.1,
        "current_a": 20.0,
        "temperature_c": 23.0,
        "soc_pct": 99.0,
    }
    assert fields(0x305, "13 02 C8 00 E6 00 DE 03")["current_a"] == -20.0


def test_si_305_invalid_markers_decode_to_absent():
    assert fields(0x305, "FF FF 00 80 00 80 00 80") == {}


def test_si_305_encodes_what_the_battery_reported():
    state = BatteryState(voltage_v=53.1, current_a=-5.0, soc_pct=99.0)
    assert SMA.spec(0x305).sender == "inverter"
    assert encode(0x305, state) == "13 02 32 00 00 80 DE 03"


def test_si_306_status():
    assert fields(0x306, "64 00 0A 01 00 00 28 02") == {
        "soh_pct": 100.0,
        "charging_procedure": 10,
        "operating_state": 1,
        "error_number": 0,
        "charge_voltage_v": 55.2,
    }
    assert encode(0x306, BatteryState(charge_voltage_v=55.25)) == "FF FF 0A 01 00 00 28 02"


def test_si_307_relay_state():
    assert fields(0x307, "00 80 00 00 00 00 00 00") == {"relay_state": 0x8000}
    assert encode(0x307, BatteryState()) == "00 00 00 00 00 00 00 00"


def test_si_round_from_an_empty_state_is_all_invalid_but_sent():
    frames = SMA.encode_round(BatteryState(), sender="inverter").frames
    assert [(s.label, d.hex(" ").upper()) for s, d in frames] == [
        ("0x305", "FF FF 00 80 00 80 00 80"),
        ("0x306", "FF FF 0A 01 00 00 FF FF"),
        ("0x307", "00 00 00 00 00 00 00 00"),
    ]
