"""The table machinery on a synthetic profile: offsets, byte orders, widths, flags, text.

Pylontech LV uses only little-endian 16-bit fields without offsets; the profiles that
come next (Pylontech HV's 30000 offset, BYD's big-endian frames) rely on the rest.
"""

import pytest
from hypothesis import given

from bmslink.errors import DecodeError, EncodeError
from bmslink.profiles.base import AlarmBits, Flag, FrameSpec, Num, Profile, Text
from bmslink.state import BatteryState
from strategies import states_for

MIXED = FrameSpec(
    0x10,
    "mixed",
    length=8,
    min_length=4,
    sender="battery",
    byteorder="big",
    fields=(
        Num("current_a", 0, 2, scale=0.1, offset=-3000.0, unit="A"),  # HV-style offset
        Num("temperature_c", 2, 2, scale=0.1, offset=-100.0, byteorder="little"),
        Num("charged_kwh", 4, 4, scale=0.1),
    ),
)
BITS = FrameSpec(
    0x1ABCDEF0,
    "bits",
    length=3,
    sender="battery",
    extended=True,
    fields=(
        Flag("charge_enable", 0, 0),
        AlarmBits(
            "alarms",
            1,
            {0: "short_circuit", 1: "contactor"},
            {"short_circuit": 0, "contactor": 1, "general": 1},
        ),
        Num("cycles", 2, 1, integer=True),
    ),
)
NAME = FrameSpec(
    0x11, "name", length=4, sender="battery", fields=(Text("serial", 0, 4, pad=b"\x00"),)
)
TEST = Profile("synthetic", "synthetic", (MIXED, BITS, NAME))


def test_offsets_and_mixed_byte_orders():
    state = BatteryState(current_a=-12.5, temperature_c=21.3, charged_kwh=1234.5)
    data = TEST.encode_frame(MIXED, state)
    assert data[:2] == (29875).to_bytes(2, "big")  # (-12.5 + 3000) / 0.1
    assert data[2:4] == (1213).to_bytes(2, "little")  # (21.3 + 100) / 0.1
    assert data[4:] == (12345).to_bytes(4, "big")
    assert TEST.decode(0x10, data).fields == {
        "current_a": -12.5,
        "temperature_c": 21.3,
        "charged_kwh": 1234.5,
    }


def test_short_payload_leaves_later_fields_absent():
    assert TEST.decode(0x10, bytes.fromhex("74B3BD04")).fields == {
        "current_a": -12.5,
        "temperature_c": 21.3,
    }


def test_extended_ids_flags_and_integer_fields():
    state = BatteryState(charge_enable=True, alarms=["general"], cycles=7)
    data = TEST.encode_frame(BITS, state)
    assert data == bytes([0x01, 0x02, 0x07])
    assert TEST.decode(0x1ABCDEF0, data, extended=True).fields == {
        "charge_enable": True,
        "alarms": ["contactor"],
        "cycles": 7,
    }
    with pytest.raises(DecodeError, match="unknown 11-bit id 0x1ABCDEF0"):
        TEST.decode(0x1ABCDEF0, data)


def test_text_padding_and_ascii_only():
    assert TEST.encode_frame(NAME, BatteryState(serial="AB")) == b"AB\x00\x00"
    assert TEST.decode(0x11, b"AB\x00\x00").fields == {"serial": "AB"}
    with pytest.raises(EncodeError, match="serial is not ASCII"):
        TEST.encode_frame(NAME, BatteryState(serial="Å1"))


def test_offset_range_is_checked_in_physical_units():
    with pytest.raises(EncodeError, match=r"current_a=3600.0 outside -3000..3553.5 A"):
        TEST.encode_frame(MIXED, BatteryState(current_a=3600.0, temperature_c=0.0, charged_kwh=0.0))


@given(states_for(TEST))
def test_round_trip(state):
    for spec, data in TEST.encode(state):
        got = TEST.decode(spec.id, data, spec.extended).fields
        for f in spec.fields:
            if isinstance(f, Num):
                assert got[f.key] == pytest.approx(getattr(state, f.key), abs=f.scale / 2 + 1e-6)


def test_table_errors_are_caught_when_the_profile_is_built():
    with pytest.raises(ValueError, match="ends at byte 9 > length 8"):
        Profile("bad", "bad", (FrameSpec(1, "x", 8, "battery", (Num("soc_pct", 7, 2),)),))
    with pytest.raises(ValueError, match="duplicate frame 0x001"):
        Profile("bad", "bad", (FrameSpec(1, "x", 8, "battery"), FrameSpec(1, "y", 8, "battery")))


def test_directed_rounding_follows_the_physical_value_with_a_negative_scale():
    """A limit sent as (offset - value) must still never leave above what was allowed."""
    spec = FrameSpec(
        0x20,
        "neg",
        length=4,
        sender="battery",
        fields=(
            Num("discharge_current_a", 0, 2, scale=-0.1, offset=3000.0, rounding="down"),
            Num("discharge_voltage_v", 2, 2, scale=-0.1, offset=3000.0, rounding="up"),
        ),
    )
    profile = Profile("neg", "neg", (spec,))
    data = profile.encode_frame(
        spec, BatteryState(discharge_current_a=50.05, discharge_voltage_v=46.01)
    )
    got = profile.decode(0x20, data).fields
    assert got["discharge_current_a"] == 50.0
    assert got["discharge_voltage_v"] == 46.1
