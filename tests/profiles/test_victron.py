"""Victron CAN-bus BMS: the BYD LVS capture, the SMA core and Victron's extensions."""

import pytest

from bmslink.errors import EncodeError
from bmslink.profiles.base import merge_fields
from bmslink.profiles.victron import PROFILE as VIC
from bmslink.state import ALARM_NAMES, BatteryState


def fields(can_id: int, hex_data: str) -> dict:
    return VIC.decode(can_id, bytes.fromhex(hex_data.replace(" ", ""))).fields


def encode(can_id: int, state: BatteryState) -> str:
    spec = VIC.spec(can_id)
    assert spec is not None
    return VIC.encode_frame(spec, state).hex(" ").upper()


def decoded(frames: list[tuple[int, str]]) -> BatteryState:
    return merge_fields(
        BatteryState(), [VIC.decode(i, bytes.fromhex(h.replace(" ", ""))) for i, h in frames]
    )


# -- public vectors: BYD Battery-Box LVS against Venus OS (dfch) -----------------------------------


def test_b1_limits():
    assert fields(0x351, "48 02 00 05 00 05 AE 01") == {
        "charge_voltage_v": 58.4,
        "charge_current_a": 128.0,
        "discharge_current_a": 128.0,
        "discharge_voltage_v": 43.0,
    }


def test_b2_zero_hires_soc_is_not_sent():
    assert fields(0x355, "43 00 64 00 00 00 00 00") == {"soc_pct": 67.0, "soh_pct": 100.0}


def test_b3_measurements():
    assert fields(0x356, "BE 14 F9 FF 8C 00 00 00") == {
        "voltage_v": 53.10,
        "current_a": -0.7,
        "temperature_c": 14.0,
    }


def test_b4_alarm_pairs_all_ok():
    assert fields(0x35A, "AA AA AA AA AA AA AA AA") == {"alarms": [], "warnings": []}


def test_b5_manufacturer():
    assert fields(0x35E, "42 59 44 00 00 00 00 00") == {"manufacturer": "BYD"}


def test_b6_identification():
    assert fields(0x35F, "4C 69 01 17 69 00 00 00") == {
        "product_code": "Li",
        "firmware": "1.17",
        "capacity_ah": 105.0,
    }


def test_b13_gx_identification_says_vic():
    f = fields(0x307, "12 34 56 78 56 49 43 00")
    assert f == {"gx_id": 0x12345678, "inverter_id": "VIC"}
    assert VIC.spec(0x307).sender == "inverter"


def test_gx_keepalives_are_eight_zero_bytes():
    for can_id in (0x305, 0x306):
        d = VIC.decode(can_id, bytes(8))
        assert d.spec.sender == "inverter" and d.fields == {}
        assert encode(can_id, BatteryState()) == "00 00 00 00 00 00 00 00"


def test_a_0x307_without_vic_still_decodes():
    f = fields(0x307, "00 00 00 00 00 00 00 00")
    assert f["inverter_id"] != "VIC" and f["gx_id"] == 0
    assert fields(0x307, "") == {}


def test_gx_sends_0x307_as_venus_does():
    assert encode(0x307, BatteryState()) == "12 34 56 78 56 49 43 00"


def test_byd_capture_merges_into_one_state():
    state = decoded(
        [
            (0x351, "48 02 00 05 00 05 AE 01"),
            (0x355, "43 00 64 00 00 00 00 00"),
            (0x356, "BE 14 F9 FF 8C 00 00 00"),
            (0x35A, "AA AA AA AA AA AA AA AA"),
            (0x35E, "42 59 44 00 00 00 00 00"),
            (0x35F, "4C 69 01 17 69 00 00 00"),
            (0x372, "02 00 00 00 00 00 00 00"),
            (0x382, "50 52 45 4D 49 55 4D 00"),
        ]
    )
    assert state.soc_pct == 67.0 and state.current_a == -0.7 and state.capacity_ah == 105.0
    assert state.manufacturer == "BYD" and state.product == "PREMIUM"
    assert state.firmware == "1.17" and state.modules == 2 and state.modules_offline == 0
    assert state.alarms == [] and state.warnings == []


# -- 0x351: CVL never 0, DCL a magnitude -----------------------------------------------------------


LIMITS = BatteryState(
    charge_voltage_v=55.2,
    charge_current_a=100.0,
    discharge_current_a=120.0,
    discharge_voltage_v=46.5,
)


def test_limits_encode_exact_bytes():
    assert encode(0x351, LIMITS) == "28 02 E8 03 B0 04 D1 01"


@pytest.mark.parametrize("cvl", [0.0, 0.05, 0.099])
def test_cvl_that_would_go_out_as_zero_is_refused(cvl):
    state = BatteryState(**{**LIMITS.to_dict(), "charge_voltage_v": cvl})
    with pytest.raises(EncodeError, match=f"charge_voltage_v={cvl} would be sent as"):
        encode(0x351, state)


def test_smallest_nonzero_cvl_is_sent():
    state = BatteryState(**{**LIMITS.to_dict(), "charge_voltage_v": 0.1})
    assert encode(0x351, state).startswith("01 00")


def test_cvl_zero_on_the_wire_is_no_cvl():
    assert "charge_voltage_v" not in fields(0x351, "00 00 E8 03 B0 04 D1 01")


def test_negative_dcl_decodes_to_its_magnitude():
    assert fields(0x351, "28 02 E8 03 38 FF D1 01")["discharge_current_a"] == 20.0


def test_dvl_is_optional_and_sent_invalid():
    state = BatteryState(charge_voltage_v=55.2, charge_current_a=100.0, discharge_current_a=120.0)
    assert encode(0x351, state) == "28 02 E8 03 B0 04 FF FF"


@pytest.mark.parametrize("key", ["charge_voltage_v", "charge_current_a", "discharge_current_a"])
def test_a_missing_limit_refuses(key):
    state = BatteryState(**{**LIMITS.to_dict(), key: None})
    with pytest.raises(EncodeError, match=f"0x351 limits: {key} is missing"):
        encode(0x351, state)


# -- 0x355 -----------------------------------------------------------------------------------------


def test_hires_soc_wins_when_sent():
    assert fields(0x355, "43 00 64 00 5E 1A 00 00")["soc_pct"] == 67.5


def test_soc_encode():
    assert encode(0x355, BatteryState(soc_pct=67.25, soh_pct=99)) == "43 00 63 00 45 1A 00 00"
    # 0 % goes out with HiResSOC "not sent" (0): it decodes back to 0 %
    assert encode(0x355, BatteryState(soc_pct=0.0)) == "00 00 FF FF 00 00 00 00"
    assert fields(0x355, "00 00 FF FF 00 00 00 00") == {"soc_pct": 0.0}


# -- 0x35A pairs (shared with SMA) -----------------------------------------------------------------


def test_alarm_pairs_encode():
    state = BatteryState(alarms=["high_voltage"], warnings=["cell_imbalance"])
    assert encode(0x35A, state) == "A6 AA AA 02 AA AA AA 01"


@pytest.mark.parametrize("name", ALARM_NAMES)
def test_every_alarm_name_survives(name):
    state = BatteryState(alarms=[name], warnings=[name])
    got = VIC.decode(0x35A, VIC.encode_frame(VIC.spec(0x35A), state)).fields
    assert got == {"alarms": [name], "warnings": [name]}


# -- 0x35F and 0x360 -------------------------------------------------------------------------------


def test_identification_encodes_like_byd():
    state = BatteryState(firmware="1.17", capacity_ah=105.0)
    assert encode(0x35F, state) == "4C 69 01 17 69 00 00 00"
    assert encode(0x35F, BatteryState(capacity_ah=280.0)) == "4C 69 00 00 18 01 00 00"


def test_charge_request():
    assert fields(0x360, "FF 00 00 00 00 00 00 00") == {"force_charge": True}
    assert fields(0x360, "00 00 00 00 00 00 00 00") == {"force_charge": False}
    assert fields(0x360, "01") == {"force_charge": False}
    assert encode(0x360, BatteryState(force_charge=True)) == "FF 00 00 00 00 00 00 00"
    assert encode(0x360, BatteryState(force_charge=False)) == "00 00 00 00 00 00 00 00"


# -- 0x370-0x382 extensions ------------------------------------------------------------------------


def test_bms_name_is_diagnostic_text_over_two_frames():
    assert fields(0x370, "44 49 59 42 4D 53 2D 31") == {"bms_name": "DIYBMS-1"}
    assert fields(0x371, "32 33 00 00 00 00 00 00") == {"bms_name_part2": "23"}
    merged = decoded([(0x370, "44 49 59 42 4D 53 2D 31"), (0x371, "32 33 00")])
    assert merged == BatteryState()  # a diagnostic never enters the state


def test_bms_name_is_written_from_the_product():
    state = BatteryState(product="PREMIUM-LVS-B019")
    assert encode(0x370, state) == "50 52 45 4D 49 55 4D 2D"
    assert encode(0x371, state) == "4C 56 53 2D 42 30 31 39"


def test_module_counts():
    assert fields(0x372, "03 00 01 00 02 00 00 01") == {
        "modules": 3,
        "modules_blocking_charge": 1,
        "modules_blocking_discharge": 2,
        "modules_offline": 256,
    }
    state = BatteryState(
        modules=4, modules_blocking_charge=0, modules_blocking_discharge=1, modules_offline=2
    )
    assert encode(0x372, state) == "04 00 00 00 01 00 02 00"


def test_cell_extremes_in_millivolt_and_kelvin():
    assert fields(0x373, "E4 0C F0 0C 2A 01 2B 01") == {
        "cell_min_v": 3.300,
        "cell_max_v": 3.312,
        "cell_temp_min_c": 25.0,  # 298 K
        "cell_temp_max_c": 26.0,  # 299 K
    }
    state = BatteryState(
        cell_min_v=3.301, cell_max_v=3.459, cell_temp_min_c=-5.0, cell_temp_max_c=40.0
    )
    assert encode(0x373, state) == "E5 0C 83 0D 0C 01 39 01"


def test_cell_ids():
    assert fields(0x374, "32 00 00 00 00 00 00 00") == {"cell_min_id": "2"}
    assert fields(0x375, "62 30 20 6D 33 00 00 00") == {"cell_max_id": "b0 m3"}
    assert encode(0x374, BatteryState(cell_min_id="12")) == "31 32 00 00 00 00 00 00"


def test_temperature_cell_ids_are_diagnostic_and_never_sent():
    assert fields(0x376, "34 00") == {"cell_temp_min_id": "4"}
    assert fields(0x377, "39") == {"cell_temp_max_id": "9"}
    assert not VIC.spec(0x376).emit and not VIC.spec(0x377).emit
    assert decoded([(0x376, "34"), (0x377, "39")]) == BatteryState()


def test_energy_counters_are_u32_in_100_wh():
    assert fields(0x378, "39 30 00 00 40 42 0F 00") == {
        "charged_kwh": 1234.5,
        "discharged_kwh": 100000.0,
    }
    state = BatteryState(charged_kwh=7000.1, discharged_kwh=0.0)
    assert encode(0x378, state) == "71 11 01 00 00 00 00 00"  # 70001


def test_installed_capacity():
    assert fields(0x379, "18 01") == {"installed_capacity_ah": 280.0}
    assert encode(0x379, BatteryState(installed_capacity_ah=100.0)) == "64 00 00 00 00 00 00 00"


def test_serial_over_two_frames_merges_into_one():
    assert fields(0x380, "31 51 2D 31 38 34 35 2D") == {"serial": "1Q-1845-"}
    assert fields(0x381, "41 42 43 00 00 00 00 00") == {"serial_part2": "ABC"}
    merged = decoded([(0x380, "31 51 2D 31 38 34 35 2D"), (0x381, "41 42 43 00 00 00 00 00")])
    assert merged.serial == "1Q-1845-ABC"
    assert decoded([(0x380, "31 51 2D 31 38 34 35 00")]).serial == "1Q-1845"


def test_serial_encodes_over_two_frames():
    state = BatteryState(serial="1Q-1845-ABC")
    assert encode(0x380, state) == "31 51 2D 31 38 34 35 2D"
    assert encode(0x381, state) == "41 42 43 00 00 00 00 00"


def test_product_name():
    assert fields(0x382, "50 52 45 4D 49 55 4D 00") == {"product": "PREMIUM"}
    assert encode(0x382, BatteryState(product="PREMIUM")) == "50 52 45 4D 49 55 4D 00"


# -- a whole round ---------------------------------------------------------------------------------


CORE = BatteryState(
    charge_voltage_v=55.2,
    charge_current_a=100.0,
    discharge_current_a=120.0,
    soc_pct=64.0,
    voltage_v=53.1,
    current_a=-12.3,
    alarms=[],
    warnings=[],
)


def test_optional_frames_are_left_out_and_listed():
    round_ = VIC.encode_round(CORE)
    assert [s.label for s, _ in round_.frames] == ["0x351", "0x355", "0x356", "0x35A", "0x35B"]
    skipped = {s.label: why for s, why in round_.skipped}
    assert sorted(skipped) == [
        "0x35E",
        "0x35F",
        "0x360",
        "0x370",
        "0x371",
        "0x372",
        "0x373",
        "0x374",
        "0x375",
        "0x378",
        "0x379",
        "0x380",
        "0x381",
        "0x382",
    ]
    assert skipped["0x35F"] == "0x35F identification: capacity_ah is missing"
    assert skipped["0x373"] == "0x373 cell_extremes: cell_min_v is missing"


def test_a_cvl_of_zero_stops_the_round():
    state = BatteryState(**{**CORE.to_dict(), "charge_voltage_v": 0.0})
    with pytest.raises(EncodeError, match=r"0x351 limits: charge_voltage_v=0\.0 would be sent"):
        VIC.encode_round(state)


def test_full_round_decodes_back():
    state = BatteryState(
        **CORE.to_dict(),
        temperature_c=21.5,
        soh_pct=99.0,
        discharge_voltage_v=46.4,
        force_charge=False,
        manufacturer="BYD",
        product="PREMIUM",
        serial="1Q-1845-ABC",
        firmware="1.17",
        capacity_ah=105.0,
        installed_capacity_ah=156.0,
        modules=2,
        modules_blocking_charge=0,
        modules_blocking_discharge=0,
        modules_offline=0,
        cell_min_v=3.3,
        cell_max_v=3.312,
        cell_min_id="2",
        cell_max_id="9",
        cell_temp_min_c=25.0,
        cell_temp_max_c=26.0,
        charged_kwh=1234.5,
        discharged_kwh=1200.0,
    )
    round_ = VIC.encode_round(state)
    assert not round_.skipped
    assert all(len(d) == 8 for _, d in round_.frames)
    merged = merge_fields(BatteryState(), [VIC.decode(s.id, d) for s, d in round_.frames])
    assert merged == state


def test_profile_metadata():
    assert VIC.bitrate == 500_000 and VIC.bitrates == (500_000, 250_000)
    assert VIC.lost_timeout_s == 10.0
    assert VIC.identity == {}
    assert all(s.period_s == 1.0 for s in VIC.frames if s.emit)
