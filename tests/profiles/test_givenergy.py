"""GivEnergy is a named alias of Pylontech LV CAN: same tables, same results."""

import pytest

from bmslink.profiles.givenergy import PROFILE as GIV
from bmslink.profiles.pylontech import PROFILE as PYLON
from bmslink.state import BatteryState

# A1-A7, A13 and B1-B3 of shared/reference/public-vectors.md
VECTORS = [
    (0x351, "14 02 74 0E 74 0E CC 01"),
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


def test_is_an_alias_of_pylontech():
    assert GIV.name == "givenergy" and GIV.alias_of == "pylontech"
    assert GIV.frames == PYLON.frames
    assert GIV.identity == {"manufacturer": "PYLON"}
    assert GIV.bitrate == 500_000 and GIV.voltage_class == "lv"


@pytest.mark.parametrize(("can_id", "hex_data"), VECTORS)
def test_decodes_the_pylontech_vectors_identically(can_id, hex_data):
    data = bytes.fromhex(hex_data.replace(" ", ""))
    assert GIV.decode(can_id, data).fields == PYLON.decode(can_id, data).fields


def test_spec_example_values():
    assert GIV.decode(0x351, bytes.fromhex("1402740E740ECC01")).fields == {
        "charge_voltage_v": 53.2,
        "charge_current_a": 370.0,
        "discharge_current_a": 370.0,
        "discharge_voltage_v": 46.0,
    }
    assert GIV.decode(0x359, bytes.fromhex("000000000A504E")).fields["modules"] == 10


def test_encodes_what_pylontech_encodes():
    state = BatteryState(
        charge_voltage_v=53.2,
        charge_current_a=370.0,
        discharge_current_a=370.0,
        discharge_voltage_v=46.0,
        soc_pct=26.0,
        soh_pct=100.0,
        voltage_v=48.66,
        current_a=0.0,
        temperature_c=33.0,
        alarms=[],
        warnings=[],
        modules=10,
        charge_enable=True,
        discharge_enable=True,
        manufacturer="PYLON",
    )
    ours = [(s.label, d.hex(" ").upper()) for s, d in GIV.encode(state)]
    assert ours == [(s.label, d.hex(" ").upper()) for s, d in PYLON.encode(state)]
    assert ours[:2] == [("0x351", "14 02 74 0E 74 0E CC 01"), ("0x355", "1A 00 64 00")]
