"""Sol-Ark LV v1.3: Pylontech LV frames, always 8 bytes, system error on bits 3 and 7."""

import pytest

from bmslink.errors import EncodeError
from bmslink.profiles.pylontech import PROFILE as PYLON
from bmslink.profiles.solark_lv import PROFILE as SOLARK
from bmslink.state import ALARM_NAMES, BatteryState


def fields(can_id: int, hex_data: str) -> dict:
    return SOLARK.decode(can_id, bytes.fromhex(hex_data.replace(" ", ""))).fields


def encode(can_id: int, state: BatteryState) -> str:
    spec = SOLARK.spec(can_id)
    assert spec is not None
    return SOLARK.encode_frame(spec, state).hex(" ").upper()


STATE = BatteryState(
    charge_voltage_v=53.2,
    charge_current_a=370.0,
    discharge_current_a=370.0,
    discharge_voltage_v=46.0,
    soc_pct=26.0,
    soh_pct=100.0,
    voltage_v=48.66,
    current_a=-12.3,
    temperature_c=33.0,
    alarms=[],
    warnings=[],
    modules=10,
    charge_enable=True,
    discharge_enable=True,
    force_charge=False,
    full_charge_request=False,
    manufacturer="BAT-EMU",
)


# -- the Pylontech vectors decode (short Pylontech lengths accepted) -------------------------------

VECTORS = [
    (0x351, "14 02 74 0E 74 0E CC 01"),
    (0x351, "14 02 74 0E 74 0E"),
    (0x355, "1A 00 64 00"),
    (0x356, "02 13 00 00 4A 01"),
    (0x359, "00 00 00 00 0A 50 4E"),
    (0x35C, "C0 00"),
    (0x35E, "50 59 4C 4F 4E 20 20 20"),
    (0x305, "00 00 00 00 00 00 00 00"),
    (0x351, "48 02 00 05 00 05 AE 01"),
    (0x355, "43 00 64 00 00 00 00 00"),
    (0x356, "BE 14 F9 FF 8C 00 00 00"),
]


@pytest.mark.parametrize(("can_id", "hex_data"), VECTORS)
def test_pylontech_vectors_decode_as_pylontech(can_id, hex_data):
    data = bytes.fromhex(hex_data.replace(" ", ""))
    assert SOLARK.decode(can_id, data).fields == PYLON.decode(can_id, data).fields


def test_spec_values():
    assert fields(0x356, "02 13 00 00 4A 01") == {
        "voltage_v": 48.66,  # 0.01 V, as Pylontech (not Battery-Emulator's 0.1 V)
        "current_a": 0.0,
        "temperature_c": 33.0,
    }
    assert fields(0x356, "BE 14 F9 FF 8C 00 00 00")["current_a"] == -0.7


def test_eight_byte_frames_as_sent_by_sol_ark_emulators():
    assert fields(0x359, "00 80 00 00 01 50 4E 00") == {
        "alarms": ["bms_internal"],
        "warnings": [],
        "modules": 1,
        "marker": "PN",
    }
    assert fields(0x35C, "A0 00 00 00 00 00 00 00")["force_charge"] is True


# -- encoding: 8 bytes each, exact layout ----------------------------------------------------------


def test_every_frame_is_sent_as_eight_bytes():
    frames = SOLARK.encode(STATE)
    assert [s.label for s, _ in frames] == ["0x351", "0x355", "0x356", "0x359", "0x35C", "0x35E"]
    assert all(len(d) == 8 and s.length == 8 for s, d in frames)


def test_exact_bytes():
    assert encode(0x351, STATE) == "14 02 74 0E 74 0E CC 01"
    assert encode(0x355, STATE) == "1A 00 64 00 00 00 00 00"
    assert encode(0x356, STATE) == "02 13 85 FF 4A 01 00 00"
    assert encode(0x359, STATE) == "00 00 00 00 0A 50 4E 00"
    assert encode(0x35C, STATE) == "C0 00 00 00 00 00 00 00"
    assert encode(0x35E, STATE) == "42 41 54 2D 45 4D 55 20"


@pytest.mark.parametrize("name", ["bms_internal", "contactor", "general", "cell_imbalance"])
def test_system_error_written_on_bit_3_and_bit_7(name):
    state = BatteryState(**{**STATE.to_dict(), "alarms": [name], "warnings": [name]})
    assert encode(0x359, state) == "00 88 00 88 0A 50 4E 00"


@pytest.mark.parametrize("byte1", ["08", "80", "88"])
def test_system_error_decoded_from_either_bit(byte1):
    assert fields(0x359, f"00 {byte1} 00 {byte1} 01 50 4E 00")["alarms"] == ["bms_internal"]


def test_over_temperature_is_bit_3_alone():
    state = BatteryState(**{**STATE.to_dict(), "alarms": ["high_temperature"]})
    assert encode(0x359, state) == "08 00 00 00 0A 50 4E 00"


@pytest.mark.parametrize("target", ["alarms", "warnings"])
def test_every_alarm_name_reaches_the_wire(target):
    for name in ALARM_NAMES:
        state = BatteryState(**{**STATE.to_dict(), "alarms": [], "warnings": []})
        setattr(state, target, [name])
        got = SOLARK.decode(0x359, SOLARK.encode_frame(SOLARK.spec(0x359), state)).fields
        assert got[target], f"{target}: {name} was lost"


def test_missing_required_values_refuse():
    with pytest.raises(EncodeError, match="0x351 limits: charge_current_a is missing"):
        SOLARK.encode_round(BatteryState(**{**STATE.to_dict(), "charge_current_a": None}))
    with pytest.raises(EncodeError, match="0x359 protection_alarms: modules is missing"):
        SOLARK.encode_round(BatteryState(**{**STATE.to_dict(), "modules": None}))


def test_missing_manufacturer_is_left_out():
    round_ = SOLARK.encode_round(BatteryState(**{**STATE.to_dict(), "manufacturer": None}))
    assert [s.label for s, _ in round_.skipped] == ["0x35E"]
    assert len(round_.frames) == 5


def test_inverter_answers_with_a_zero_0x305():
    d = SOLARK.decode(0x305, bytes(8))
    assert d.spec.sender == "inverter" and d.fields == {}
    assert SOLARK.encode_frame(d.spec, BatteryState()) == bytes(8)


def test_profile_metadata():
    assert SOLARK.name == "solark-lv" and SOLARK.bitrate == 500_000
    assert SOLARK.identity == {} and SOLARK.alias_of is None
    assert all(s.period_s == 1.0 for s in SOLARK.frames)
