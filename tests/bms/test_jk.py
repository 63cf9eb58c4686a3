"""JK "4E 57" read-all: JK-01/JK-02 and two more real captures, current rules, alarm table,
the simulated device, round trips, framer, errors and fuzzing."""

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.bms import jk
from bmslink.bms.base import BmsOptions, hex_frames
from bmslink.bms.jk import JkProtocol
from bmslink.bms.registry import get_bms
from bmslink.errors import DecodeError, EncodeError
from bmslink.sim.bms import SimBms
from bmslink.sim.pack import Pack
from bmslink.state import ALARM_NAMES, BatteryState
from strategies import ALARM_LISTS, TEXT_ALPHABET

JK_01 = "4E 57 00 13 00 00 00 00 06 03 00 00 00 00 00 00 68 00 00 01 29"
JK_02 = (
    "4E 57 01 1B 00 00 00 00 06 00 01 79 2A 01 0E ED 02 0E FA 03 0E F7 04 0E EC 05 0E F8 06 0E FA "
    "07 0E F1 08 0E F8 09 0E E3 0A 0E FA 0B 0E F1 0C 0E FB 0D 0E FB 0E 0E F2 80 00 1D 81 00 1E "
    "82 00 1C 83 14 EF 84 80 D0 85 0F 86 02 87 00 04 89 00 00 00 00 8A 00 0E 8B 00 00 8C 00 07 "
    "8E 16 26 8F 10 AE 90 0F D2 91 0F A0 92 00 05 93 0B EA 94 0C 1C 95 00 05 96 01 2C 97 00 07 "
    "98 00 03 99 00 05 9A 00 05 9B 0C E4 9C 00 08 9D 01 9E 00 5A 9F 00 46 A0 00 64 A1 00 64 "
    "A2 00 14 A3 00 46 A4 00 46 A5 FF EC A6 FF F6 A7 FF EC A8 FF F6 A9 0E AA 00 00 00 0E AB 01 "
    "AC 01 AD 04 11 AE 01 AF 01 B0 00 0A B1 14 B2 31 32 33 34 35 36 00 00 00 00 B3 00 B4 49 6E "
    "70 75 74 20 55 73 B5 32 31 30 31 B6 00 00 E2 00 B7 48 36 2E 58 5F 5F 53 36 2E 31 2E 33 53 "
    "5F 5F B8 00 B9 00 00 00 00 BA 42 54 33 30 37 32 30 32 30 31 32 30 30 30 30 32 30 30 35 32 "
    "31 30 30 31 C0 01 00 00 00 00 68 00 00 54 D1"
)
# syssi/esphome-jk-bms docs/pdus/10.07.txt: 13S Li-ion, firmware 10.07, both FETs off.
JK_1007 = (
    "4E:57:01:18:00:00:00:00:06:00:01:79:27:01:0F:FC:02:0F:CF:03:0F:FD:04:0F:FC:05:0F:FC:06:0F:FA"
    ":07:0F:F7:08:0F:FE:09:0F:FE:0A:0F:FC:0B:0F:F7:0C:0F:F7:0D:0F:FD:80:00:16:81:00:13:82:00:13:83"
    ":14:C1:84:00:00:85:5E:86:02:87:00:00:89:00:00:00:00:8A:00:0D:8B:00:00:8C:00:04:8E:15:54:8F:0E"
    ":BA:90:10:68:91:10:04:92:00:05:93:0B:54:94:0C:80:95:00:05:96:01:2C:97:00:96:98:01:2C:99:00:19"
    ":9A:00:1E:9B:0C:E4:9C:00:0A:9D:01:9E:00:5A:9F:00:46:A0:00:64:A1:00:64:A2:00:14:A3:00:46:A4:00"
    ":46:A5:FF:EC:A6:FF:F6:A7:FF:EC:A8:FF:F6:A9:0D:AA:00:00:00:05:AB:00:AC:00:AD:04:2E:AE:01:AF:01"
    ":B0:00:0A:B1:14:B2:31:32:33:34:35:36:00:00:00:00:B3:00:B4:49:6E:70:75:74:20:55:73:B5:32:32:30"
    ":34:B6:00:00:00:00:B7:31:30:2E:58:57:5F:53:31:30:2E:30:37:5F:5F:5F:B8:00:B9:00:00:00:00:BA:49"
    ":6E:70:75:74:20:55:73:65:72:64:61:4A:4B:2D:42:32:41:32:34:53:31:35:50:C0:01:00:00:00:00:68:00"
    ":00:54:4E"
)
# syssi/esphome-jk-bms docs/pdus/7.1.0H.txt: 16S LFP, discharging. The source prints the tag
# after 9F as "0"; its checksum 4AB1 holds only with A0, so A0 is used here.
JK_710H = (
    "4E:57:01:21:00:00:00:00:06:00:01:79:30:01:0C:81:02:0C:81:03:0C:82:04:0C:81:05:0C:83:06:0C:81"
    ":07:0C:71:08:0C:81:09:0C:7C:0A:0C:83:0B:0C:82:0C:0C:83:0D:0C:83:0E:0C:83:0F:0C:83:10:0C:82:80"
    ":00:12:81:00:10:82:00:10:83:14:01:84:00:45:85:0F:86:02:87:00:11:89:00:00:05:00:8A:00:10:8B:00"
    ":00:8C:00:03:8E:16:D0:8F:10:90:90:0E:42:91:0D:DE:92:00:05:93:0A:5A:94:0A:BE:95:00:05:96:01:2C"
    ":97:00:3C:98:01:2C:99:00:1E:9A:00:1E:9B:0D:7A:9C:00:0A:9D:01:9E:00:5A:9F:00:46:A0:00:64:A1:00"
    ":64:A2:00:14:A3:00:46:A4:00:46:A5:00:00:A6:00:05:A7:FF:EC:A8:FF:F6:A9:10:AA:00:00:00:51:AB:01"
    ":AC:01:AD:02:D5:AE:01:AF:01:B0:00:0A:B1:14:B2:31:32:33:34:35:36:00:00:00:00:B3:00:B4:49:6E:70"
    ":75:74:20:55:73:B5:32:31:30:36:B6:00:01:64:00:B7:48:37:2E:58:5F:5F:53:37:2E:31:2E:30:48:5F:5F"
    ":B8:00:B9:00:00:00:00:BA:42:54:33:30:37:32:30:32:30:31:32:30:30:30:30:32:30:30:35:32:31:30:30"
    ":31:C0:01:00:00:00:00:68:00:00:4A:B1"
)


def raw(text):
    return hex_frames([text])[0]


REQUEST = raw(JK_01)
REPLY = raw(JK_02)

# JK-02 byte offsets (tag bytes), counted from the vector.
AT_80, AT_84, AT_85, AT_8A, AT_8B, AT_8C, AT_C0 = 55, 67, 70, 82, 85, 88, 274


def resum(frame):
    """``frame`` with its length field and checksum recomputed (an independent computation)."""
    frame = bytearray(frame)
    frame[2:4] = (len(frame) - 2).to_bytes(2, "big")
    frame[-4:] = (sum(frame[:-4]) % 65536).to_bytes(4, "big")
    return bytes(frame)


def patched(offset, value, frame=REPLY):
    """JK-02 with ``value`` bytes written at ``offset``, checksum fixed."""
    out = bytearray(frame)
    out[offset : offset + len(value)] = value
    return resum(out)


def cut(offset, size, frame=REPLY):
    """JK-02 without ``size`` bytes at ``offset`` (a record removed), length and checksum fixed."""
    return resum(frame[:offset] + frame[offset + size :])


def envelope(data, command=0x06, source=0x00, frame_type=0x01, terminal=b"\0\0\0\0"):
    """A frame around ``data`` with a right length and checksum."""
    body = b"NW\0\0" + terminal + bytes((command, source, frame_type)) + data + bytes(4) + b"\x68"
    return resum(body + bytes(4))


def decode(*frames, **options):
    return JkProtocol(BmsOptions(**options)).decode(list(frames))


# -- public vectors -------------------------------------------------------------------------------


def test_jk_01_read_all_request_is_byte_exact():
    assert jk.read_all_request() == REQUEST
    for identity in (False, True):
        conversation = JkProtocol().conversation(0, identity=identity)
        request = next(conversation)
        assert request.data == REQUEST and request.replies == 1
        assert request.reply_prefix == b"\x4e\x57"
        with pytest.raises(StopIteration):
            conversation.send([REPLY])


def test_jk_02_decodes_to_the_stated_values():
    assert decode(REPLY).to_dict() == {
        "cells_v": [
            *(3.821, 3.834, 3.831, 3.820, 3.832, 3.834, 3.825),
            *(3.832, 3.811, 3.834, 3.825, 3.835, 3.835, 3.826),
        ],
        "cell_min_v": 3.811,
        "cell_min_id": "9",
        "cell_max_v": 3.835,
        "cell_max_id": "12",
        "temperatures_c": [29.0, 30.0, 28.0],  # MOSFET, T1, T2
        "cell_temp_min_c": 28.0,
        "cell_temp_max_c": 30.0,
        "temperature_c": 29.0,  # mean of T1 and T2
        "voltage_v": 53.59,
        "current_a": 2.08,  # 0x80D0, protocol version 1: charging
        "soc_pct": 15.0,
        "cycles": 4,
        "alarms": [],
        "warnings": [],
        "charge_enable": True,  # status 0x0007
        "discharge_enable": True,
        "capacity_ah": 14.0,  # 0xB9 is 0: the setting 0xAA
        "installed_capacity_ah": 14.0,
        "serial": "Input Us",
        "firmware": "H6.X__S6.1.3S__",
        "manufacturer": "BT3072020120000200521001",
    }


def test_decode_command_via_the_registry_and_hex_text():
    protocol = get_bms("jk")
    assert isinstance(protocol, JkProtocol)
    assert protocol.baudrate == 115200 and list(protocol.addresses) == [0]
    assert protocol.decode(hex_frames([JK_01, JK_02])).voltage_v == 53.59


def test_firmware_10_07_capture_13s_fets_off():
    state = decode(raw(JK_1007))
    assert state.cells_v[:3] == [4.092, 4.047, 4.093] and len(state.cells_v) == 13
    assert state.temperatures_c == [22.0, 19.0, 19.0]
    assert (state.voltage_v, state.current_a, state.soc_pct) == (53.13, 0.0, 94.0)
    assert (state.charge_enable, state.discharge_enable) == (False, False)  # status 0x0004
    assert (state.capacity_ah, state.installed_capacity_ah) == (5.0, 5.0)
    assert state.firmware == "10.XW_S10.07___"
    assert state.manufacturer == "Input UserdaJK-B2A24S15P"


def test_firmware_7_1_0h_capture_16s_lfp_discharging():
    state = decode(raw(JK_710H))
    assert len(state.cells_v) == 16 and state.cell_min_v == 3.185 and state.cell_min_id == "7"
    assert state.current_a == -0.69  # 0x0045, version 1: bit 15 clear = discharging
    assert (state.voltage_v, state.soc_pct, state.cycles) == (51.21, 15.0, 17)
    assert state.temperatures_c == [18.0, 16.0, 16.0]
    assert (state.charge_enable, state.discharge_enable) == (True, True)
    assert state.capacity_ah == 81.0


# -- current ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw16", "amps"),
    [
        (0x80D0, 2.08),
        (0x0045, -0.69),
        (0x07D0, -20.0),
        (0x87D0, 20.0),
        (0x0000, 0.0),
        (0x8000, 0.0),
    ],
)
def test_current_sign_bit_rule_with_protocol_version_1(raw16, amps):
    state = decode(patched(AT_84 + 1, raw16.to_bytes(2, "big")))
    assert state.current_a == amps
    assert str(state.current_a) != "-0.0"


@pytest.mark.parametrize(("raw16", "amps"), [(11000, -10.0), (9500, 5.0), (10000, 0.0)])
def test_current_offset_rule_with_version_0_or_without_0xc0(raw16, amps):
    version_0 = patched(AT_84 + 1, raw16.to_bytes(2, "big"), patched(AT_C0 + 1, b"\x00"))
    assert decode(version_0).current_a == amps
    no_version = cut(AT_C0, 2, patched(AT_84 + 1, raw16.to_bytes(2, "big")))
    assert decode(no_version).current_a == amps


def test_jk_current_option_forces_the_rule():
    version_1 = patched(AT_84 + 1, (11000).to_bytes(2, "big"))
    assert decode(version_1).current_a == 0x2AF8 / 100 * -1  # sign-bit: 11000 raw = -110.00 A
    assert decode(version_1, jk_current="offset").current_a == -10.0
    assert decode(raw(JK_02), jk_current="sign-bit").current_a == 2.08
    assert decode(raw(JK_02), jk_current="offset").current_a == 10000 / 100 - 0x80D0 / 100


def test_unknown_protocol_version_is_an_error_unless_the_rule_is_forced():
    version_2 = patched(AT_C0 + 1, b"\x02")
    with pytest.raises(DecodeError, match=r"frame 1: tag 0xC0 .* at byte 274: .*version 0x02"):
        decode(version_2)
    assert decode(version_2, jk_current="sign-bit").current_a == 2.08


def test_invert_current_is_applied_once():
    assert decode(REPLY, invert_current=True).current_a == -2.08


# -- temperatures, alarms, status -----------------------------------------------------------------


@pytest.mark.parametrize(("raw16", "celsius"), [(0, 0.0), (100, 100.0), (101, -1.0), (140, -40.0)])
def test_temperature_spec_rule(raw16, celsius):
    state = decode(patched(AT_80 + 1, raw16.to_bytes(2, "big")))
    assert state.temperatures_c[0] == celsius
    assert (state.cell_temp_min_c, state.cell_temp_max_c) == (
        28.0,
        30.0,
    )  # MOSFET not a cell sensor


def test_temperature_beyond_140_is_an_error_naming_tag_and_byte():
    with pytest.raises(DecodeError, match=r"frame 1: tag 0x81 \(.*\) at byte 58: raw 141"):
        decode(patched(AT_80 + 4, (141).to_bytes(2, "big")))


EXPECTED_BITS = {
    0: ([], ["low_voltage"]),
    1: (["high_temperature"], []),
    2: (["high_voltage"], []),
    3: (["low_voltage"], []),
    4: (["high_temperature"], []),
    5: (["high_charge_current"], []),
    6: (["high_discharge_current"], []),
    7: (["cell_imbalance"], []),
    8: (["high_temperature"], []),
    9: (["low_temperature"], []),
    10: (["high_voltage"], []),
    11: (["low_voltage"], []),
    12: (["general"], []),
    13: (["general"], []),
    14: ([], []),
    15: ([], []),
}


@pytest.mark.parametrize("bit", sorted(EXPECTED_BITS))
def test_each_warning_bit(bit):
    state = decode(patched(AT_8B + 1, (1 << bit).to_bytes(2, "big")))
    assert (state.alarms, state.warnings) == EXPECTED_BITS[bit]


def test_warning_listed_once_when_its_alarm_is_active_and_contract_order():
    state = decode(patched(AT_8B + 1, (0b0000_1100_0110_0001).to_bytes(2, "big")))
    assert state.alarms == [
        "high_voltage",
        "low_voltage",
        "high_charge_current",
        "high_discharge_current",
    ]
    assert state.warnings == []


@pytest.mark.parametrize(
    ("status", "flags"),
    [(0, (False, False)), (1, (True, False)), (2, (False, True)), (0xFFFC, (False, False))],
)
def test_status_bits(status, flags):
    state = decode(patched(AT_8C + 1, status.to_bytes(2, "big")))
    assert (state.charge_enable, state.discharge_enable) == flags


def test_actual_capacity_wins_when_set_and_zero_capacity_is_absent():
    at_b9 = REPLY.index(b"\xb9\x00\x00\x00\x00")
    at_aa = REPLY.index(b"\xaa\x00\x00\x00\x0e")
    state = decode(patched(at_b9 + 1, (12).to_bytes(4, "big")))
    assert (state.capacity_ah, state.installed_capacity_ah) == (12.0, 14.0)
    state = decode(patched(at_aa + 1, bytes(4)))
    assert state.capacity_ah is None and state.installed_capacity_ah is None


def test_text_cut_at_nul_and_filler_stripped_and_blank_is_absent():
    at_b4 = REPLY.index(b"\xb4Input Us")
    assert decode(patched(at_b4 + 1, b"AB\0CDEFG")).serial == "AB"
    assert decode(patched(at_b4 + 1, b"AB  \xff\xff\xff\xff")).serial == "AB"
    assert decode(patched(at_b4 + 1, b"A\x80      ")).serial == "A\ufffd"
    assert decode(patched(at_b4 + 1, b"        ")).serial is None


# -- frames in a capture ----------------------------------------------------------------------------


def test_requests_writes_and_echoed_command_03():
    write_reply = envelope(b"\xab\x01", command=0x02)
    echo_03 = patched(8, b"\x03")
    state = decode(REQUEST, write_reply, echo_03)
    assert state.voltage_v == 53.59 and state.cells_v is not None
    assert decode(REQUEST).to_dict() == {}
    assert decode(write_reply).to_dict() == {}


def test_single_register_reply_and_later_frames_win():
    soc_only = envelope(b"\x85\x21", command=0x03)
    assert decode(soc_only).to_dict() == {"soc_pct": 33.0}
    assert decode(REPLY, soc_only).soc_pct == 33.0
    assert decode(soc_only, REPLY).soc_pct == 15.0
    upload = patched(10, b"\x02")  # frame type 02, active upload
    assert decode(upload).voltage_v == 53.59


# -- errors -------------------------------------------------------------------------------------


ERRORS = [
    (b"NW\x00\x13", r"frame 1: 4 bytes, shorter than the 20 of a frame without data"),
    (b"NX" + REPLY[2:], r"frame 1: starts with 4E 58, expected 4E 57"),
    (
        REPLY[:-1],
        r"frame 1: wrong length: length field 0x011B \(bytes 2-3\) says 285 bytes, the frame has 284",
    ),
    (REPLY[:-1] + b"\xd2", r"frame 1: checksum mismatch: expected 000054D1, got 000054D2"),
    (patched(len(REPLY) - 5, b"\x69"), r"frame 1: end marker at byte 280 is 69, expected 68"),
    (patched(8, b"\x07"), r"frame 1: unknown command 0x07 at byte 8"),
    (patched(9, b"\x04"), r"frame 1: unknown frame source 0x04 at byte 9"),
    (patched(10, b"\x03"), r"frame 1: unknown frame type 0x03 at byte 10"),
    (patched(AT_8C, b"\x8d"), r"frame 1: unknown tag 0x8D at byte 88: its size is not known"),
    (
        envelope(b"\x85\x21\x87\x00"),
        r"frame 1: tag 0x87 \(cycle count\) at byte 13 needs 2 value bytes, only 1 left",
    ),
    (
        envelope(b"\x79"),
        r"frame 1: tag 0x79 \(cell voltages\) at byte 11: the length byte is missing",
    ),
    (
        envelope(b"\x79\x04\x01\x0e\xed\x02"),
        r"tag 0x79 \(cell voltages\) at byte 11: length 4 is not a multiple of 3",
    ),
    (
        envelope(b"\x79\x06\x01\x0e\xed"),
        r"tag 0x79 .* at byte 11: length 6 needs bytes 13..18, the records end at byte 15",
    ),
    (
        patched(16, b"\x03"),
        r"frame 1: tag 0x79 \(cell voltages\) at byte 11: cell entry at byte 16 has index 3, expected 2",
    ),
    (
        patched(AT_8A + 1, b"\x00\x0f"),
        r"frame 1: tag 0x8A \(cell count\) at byte 82: says 15 cells, tag 0x79 carries 14",
    ),
    (patched(AT_85 + 1, b"\x65"), r"frame 1: tag 0x85 \(SoC\) at byte 70: 101 is outside 0..100"),
]


@pytest.mark.parametrize(("frame", "message"), ERRORS)
def test_decode_errors_name_frame_byte_and_field(frame, message):
    with pytest.raises(DecodeError, match=message):
        decode(frame)


def test_error_names_the_frame_index():
    with pytest.raises(DecodeError, match=r"^frame 3: checksum mismatch"):
        decode(REQUEST, REPLY, REPLY[:-1] + b"\x00")


def test_error_offsets_are_the_vector_offsets():
    # the offsets the tests use are where JK-02 has those tags
    for offset, tag in [
        (AT_80, 0x80),
        (AT_84, 0x84),
        (AT_85, 0x85),
        (AT_8A, 0x8A),
        (AT_8B, 0x8B),
        (AT_8C, 0x8C),
        (AT_C0, 0xC0),
    ]:
        assert REPLY[offset] == tag


# -- framer ---------------------------------------------------------------------------------------


def test_framer_skips_garbage_splits_and_bad_checksums():
    framer = JkProtocol().reply_framer()
    bad = REPLY[:-1] + b"\x00"
    stream = b"\x00\xffN" + REPLY + b"garbage NW" + bad + REPLY
    out = []
    for i in range(0, len(stream), 7):
        out += framer.feed(stream[i : i + 7])
    assert out == [REPLY, REPLY]
    assert framer.bad_frames >= 1
    assert framer.noise_bytes >= len(b"\x00\xffN" + b"garbage NW")


def test_reply_framer_drops_the_echoed_request_and_request_framer_the_reply():
    replies = JkProtocol().reply_framer()
    assert replies.feed(REQUEST + REPLY) == [REPLY]
    assert replies.bad_frames == 1
    requests = JkProtocol().request_framer()
    assert requests.feed(REPLY + REQUEST) == [REQUEST]


def test_framer_waits_for_a_split_frame_and_reset_forgets_it():
    framer = JkProtocol().reply_framer()
    assert framer.feed(REPLY[:100]) == []
    assert framer.feed(REPLY[100:]) == [REPLY]
    framer.feed(REPLY[:100])
    framer.reset()
    assert framer.feed(REPLY) == [REPLY]


def test_framer_skips_impossible_length():
    framer = JkProtocol().reply_framer()
    assert framer.feed(b"NW\x00\x01" + REPLY) == [REPLY]
    assert framer.feed(b"NW\xff\xff" + REPLY) == [REPLY]


# -- the simulated device -------------------------------------------------------------------------


def sim_state(**changes):
    return SimBms(Pack.lfp(16, 280.0, soc=0.6)).state().merged(changes)


def answer(state, request=REQUEST, **options):
    return JkProtocol(BmsOptions(**options)).answer(
        request, lambda address: state if address == 0 else None
    )


def tag_order(frame):
    return list(jk.parse_records(frame).values)


def test_answer_has_the_tags_of_a_real_reply_in_its_order():
    (frame,) = answer(sim_state())
    assert tag_order(frame) == tag_order(REPLY)
    assert frame[:2] == b"NW" and frame[8:11] == b"\x06\x00\x01"
    assert len(frame) == len(raw(JK_710H))  # a real 16S reply has the same length
    assert frame[11:13] == b"\x79\x30"
    assert frame[-9:-4] == b"\x00\x00\x00\x00\x68"


def test_answer_fixed_lfp_settings_and_protocol_version():
    (frame,) = answer(sim_state())
    values = {tag: value for tag, (_, value) in jk.parse_records(frame).values.items()}
    assert values[0x8E] == (5840).to_bytes(2, "big")  # 16 x 3.65 V
    assert values[0x8F] == (4000).to_bytes(2, "big")  # 16 x 2.50 V
    assert values[0x90] == (3650).to_bytes(2, "big")
    assert values[0x93] == (2500).to_bytes(2, "big")
    assert values[0xA7] == b"\xff\xec"  # -20 °C, signed
    assert values[0xA9] == b"\x10" and values[0xAF] == b"\x00"  # 16 cells, LiFePO4
    assert values[0xAA] == values[0xB9] == (280).to_bytes(4, "big")
    assert values[0x8C] == b"\x00\x03"  # both FETs on, balancer and bit 3 clear
    assert values[0xC0] == b"\x01"
    assert values[0xBA] == b"bmslink-sim".ljust(24, b"\0")


def test_answer_with_offset_option_serves_version_0():
    (frame,) = answer(sim_state(current_a=-10.0), jk_current="offset")
    values = {tag: value for tag, (_, value) in jk.parse_records(frame).values.items()}
    assert values[0xC0] == b"\x00" and values[0x84] == (11000).to_bytes(2, "big")
    assert decode(frame).current_a == -10.0  # auto reads version 0


def test_answer_sign_bit_current_bytes():
    (frame,) = answer(sim_state(current_a=20.0))
    assert jk.parse_records(frame).values[0x84][1] == b"\x87\xd0"
    (frame,) = answer(sim_state(current_a=-20.0))
    assert jk.parse_records(frame).values[0x84][1] == b"\x07\xd0"


def test_sim_state_temperatures_and_identity():
    state = sim_state()
    decoded = decode(*answer(state))
    assert decoded.temperatures_c == [
        round(state.temperature_c),
        round(state.cell_temp_min_c),
        round(state.cell_temp_max_c),
    ]
    assert decoded.manufacturer == "bmslink-sim" and decoded.product is None
    assert decoded.serial is None and decoded.firmware is None


def drive(protocol, state, identity):
    """A poll cycle with answer() as the device and the framers between them (no I/O)."""
    conversation = protocol.conversation(0, identity=identity)
    frames = []
    request = next(conversation)
    while True:
        (sent,) = protocol.request_framer().feed(b"\x00" + request.data)
        replies = [
            f
            for r in protocol.answer(sent, lambda a: state)
            for f in protocol.reply_framer().feed(r)
        ]
        assert len(replies) == request.replies
        assert all(r.startswith(request.reply_prefix) for r in replies)
        frames += [request.data, *replies]
        try:
            request = conversation.send(replies)
        except StopIteration:
            break
    return protocol.decode(frames)


@pytest.mark.parametrize("identity", [False, True])
def test_poll_cycle_against_the_simulated_device(identity):
    state = sim_state(current_a=-37.25, cycles=12)
    decoded = drive(JkProtocol(), state, identity)
    assert JkProtocol.keys <= set(decoded.to_dict())
    assert decoded.cells_v == state.cells_v
    assert (decoded.cell_min_id, decoded.cell_max_id) == (state.cell_min_id, state.cell_max_id)
    assert decoded.voltage_v == round(state.voltage_v, 2)
    assert decoded.current_a == -37.25
    assert decoded.soc_pct == round(state.soc_pct)
    assert decoded.cycles == 12
    assert (decoded.capacity_ah, decoded.installed_capacity_ah) == (280.0, 280.0)
    assert (decoded.charge_enable, decoded.discharge_enable) == (
        state.charge_enable,
        state.discharge_enable,
    )
    assert decoded.alarms == state.alarms == []


def test_keys_are_what_jk_02_yields():
    assert JkProtocol.keys <= set(decode(REPLY).to_dict())


@pytest.mark.parametrize(
    "request_frame",
    [
        envelope(b"\x00", frame_type=0x00, source=0x03, command=0x03),  # read register
        envelope(b"\x85", frame_type=0x00, source=0x03),  # read-all of another register
        envelope(b"\xab\x00", frame_type=0x00, source=0x03, command=0x02),  # write
        envelope(b"\x00", frame_type=0x00, source=0x03, terminal=b"\0\0\0\1"),  # terminal 1
        REPLY,  # a reply is no request
        REQUEST[:-1] + b"\x00",  # bad checksum
        b"",
        b"garbage",
    ],
)
def test_answer_is_silent_for_anything_but_a_read_all_to_terminal_0(request_frame):
    assert answer(sim_state(), request_frame) == []


def test_answer_esphome_request_from_the_gps_source():
    esphome = envelope(b"\x00", frame_type=0x00, source=0x02)
    assert esphome[-2:] == b"\x01\x28"  # the reference's esphome checksum
    assert len(answer(sim_state(), esphome)) == 1


def test_answer_source_none_is_silence():
    assert JkProtocol().answer(REQUEST, lambda address: None) == []


@pytest.mark.parametrize(
    "key",
    [
        "cells_v",
        "voltage_v",
        "current_a",
        "soc_pct",
        "cycles",
        "capacity_ah",
        "charge_enable",
        "discharge_enable",
        "alarms",
    ],
)
def test_answer_refuses_a_state_missing_a_required_key(key):
    with pytest.raises(EncodeError, match=rf"missing {key}: the JK read-all reply needs it"):
        answer(sim_state(**{key: None}))


def test_answer_needs_temperatures():
    state = sim_state(temperatures_c=None, cell_temp_min_c=None, cell_temp_max_c=None)
    with pytest.raises(EncodeError, match=r"missing temperatures_c"):
        answer(state)
    # the extremes alone are enough: T1 = coldest, T2 = hottest, MOSFET = temperature_c
    state = sim_state(
        temperatures_c=None, cell_temp_min_c=5.0, cell_temp_max_c=9.0, temperature_c=7.0
    )
    assert decode(*answer(state)).temperatures_c == [7.0, 5.0, 9.0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"soc_pct": 100.6}, r"soc_pct \(tag 0x85 SoC\) = 100.6 % is outside 0..100 %"),
        (
            {"current_a": 327.68},
            r"current_a \(tag 0x84, sign-bit encoding\) = 327.68 A is outside -327.67..327.67 A",
        ),
        ({"current_a": float("nan")}, r"current_a .* is not a number"),
        (
            {"voltage_v": 655.36},
            r"voltage_v \(tag 0x83 total voltage\) = 655.36 V is outside 0..655.35 V",
        ),
        ({"cycles": 65536}, r"cycles \(tag 0x87 cycle count\) = 65536 is outside 0..65535"),
        (
            {"capacity_ah": 0.4},
            r"capacity_ah \(tag 0xB9 actual capacity \(Ah\)\) = 0.4 Ah is outside 1..",
        ),
        (
            {"temperatures_c": [20.0, 100.6, 20.0]},
            r"temperature \(tag 0x81 .*\) = 100.6 °C is outside -40..100 °C",
        ),
        (
            {"temperatures_c": [20.0, 20.0, -40.6]},
            r"temperature \(tag 0x82 .*\) = -40.6 °C is outside",
        ),
        ({"cells_v": [3.3, 3.3]}, r"cells_v: the JK read-all reply carries 3..32 cells, got 2"),
        ({"cells_v": [3.3] * 33}, r"got 33"),
        (
            {"cells_v": [3.3, 3.3, 0.0]},
            r"cells_v\[2\] \(tag 0x79 cell voltages\) = 0 V is outside 0.001..65.535 V",
        ),
        (
            {"manufacturer": "x" * 25},
            r"manufacturer \(tag 0xBA manufacturer id\) 'x+' is longer than 24",
        ),
        ({"serial": "café"}, r"serial \(tag 0xB4 device id\) 'café' is not printable ASCII"),
        ({"alarms": ["short_circuit"]}, r"alarm 'short_circuit' has no bit .* 0x8B; refusing"),
        ({"alarms": ["bms_internal"]}, r"alarm 'bms_internal' has no bit"),
    ],
)
def test_answer_refuses_values_out_of_range(changes, message):
    with pytest.raises(EncodeError, match=message):
        answer(sim_state(**changes))


def test_offset_rule_range():
    with pytest.raises(
        EncodeError,
        match=r"current_a \(tag 0x84, offset encoding\) = 100.01 A is outside -555.35..100 A",
    ):
        answer(sim_state(current_a=100.01), jk_current="offset")
    assert decode(*answer(sim_state(current_a=-555.35), jk_current="offset")).current_a == -555.35


@pytest.mark.parametrize(
    ("name", "bit"),
    [
        ("high_voltage", 10),  # cell over-voltage, not the pack bit 2
        ("low_voltage", 11),  # cell under-voltage, not the pack bit 3
        ("high_temperature", 4),
        ("high_temperature_charge", 4),
        ("low_temperature", 9),
        ("low_temperature_charge", 9),
        ("high_charge_current", 5),
        ("high_discharge_current", 6),
        ("cell_imbalance", 7),
        ("general", 12),
    ],
)
def test_each_alarm_is_sent_on_its_bit(name, bit):
    (frame,) = answer(sim_state(alarms=[name], warnings=[]))
    assert jk.parse_records(frame).values[0x8B][1] == (1 << bit).to_bytes(2, "big")


def test_alarm_encoding_and_dropped_warnings():
    state = sim_state(
        alarms=["high_temperature_charge", "low_temperature_charge", "general"],
        warnings=["high_voltage", "low_voltage", "cell_imbalance"],
    )
    (frame,) = answer(state)
    assert jk.parse_records(frame).values[0x8B][1] == (1 << 4 | 1 << 9 | 1 << 12 | 1).to_bytes(
        2, "big"
    )
    decoded = decode(frame)
    assert decoded.alarms == ["high_temperature", "low_temperature", "general"]
    assert decoded.warnings == ["low_voltage"]


# -- round trips ----------------------------------------------------------------------------------

ENCODABLE_ALARMS = {
    "high_voltage": "high_voltage",
    "low_voltage": "low_voltage",
    "high_temperature": "high_temperature",
    "high_temperature_charge": "high_temperature",
    "low_temperature": "low_temperature",
    "low_temperature_charge": "low_temperature",
    "high_charge_current": "high_charge_current",
    "high_discharge_current": "high_discharge_current",
    "cell_imbalance": "cell_imbalance",
    "general": "general",
}


def texts(size):
    return st.none() | st.text(alphabet=TEXT_ALPHABET, min_size=1, max_size=size)


@st.composite
def jk_states(draw, amps_range=(-32767, 32767)):
    return BatteryState(
        cells_v=draw(
            st.lists(st.integers(2500, 3650).map(lambda mv: mv / 1000), min_size=3, max_size=32)
        ),
        temperatures_c=draw(
            st.lists(st.integers(-400, 1000).map(lambda t: t / 10), min_size=3, max_size=3)
        ),
        voltage_v=draw(st.integers(0, 65535).map(lambda v: v / 100)),
        current_a=draw(st.integers(*amps_range).map(lambda a: a / 100)),
        soc_pct=draw(st.integers(0, 1000).map(lambda s: s / 10)),
        cycles=draw(st.integers(0, 65535)),
        capacity_ah=draw(st.integers(1, 2000).map(float)),
        installed_capacity_ah=draw(st.none() | st.integers(1, 2000).map(float)),
        charge_enable=draw(st.booleans()),
        discharge_enable=draw(st.booleans()),
        alarms=draw(st.lists(st.sampled_from(sorted(ENCODABLE_ALARMS)), unique=True)),
        warnings=draw(ALARM_LISTS),
        serial=draw(texts(8)),
        firmware=draw(texts(15)),
        manufacturer=draw(texts(24)),
    )


def check_round_trip(state, decoded):
    assert decoded.cells_v == state.cells_v
    assert decoded.to_dict().keys() >= JkProtocol.keys
    for got, sent in zip(decoded.temperatures_c, state.temperatures_c, strict=True):
        assert abs(got - sent) <= 0.5
    t1, t2 = decoded.temperatures_c[1:]
    assert (decoded.cell_temp_min_c, decoded.cell_temp_max_c) == (min(t1, t2), max(t1, t2))
    assert decoded.temperature_c == (t1 + t2) / 2
    assert decoded.voltage_v == state.voltage_v
    assert decoded.current_a == state.current_a
    assert abs(decoded.soc_pct - state.soc_pct) <= 0.5
    assert decoded.cycles == state.cycles
    assert decoded.capacity_ah == state.capacity_ah
    assert decoded.installed_capacity_ah == (state.installed_capacity_ah or state.capacity_ah)
    assert (decoded.charge_enable, decoded.discharge_enable) == (
        state.charge_enable,
        state.discharge_enable,
    )
    alarms = {ENCODABLE_ALARMS[n] for n in state.alarms}
    assert decoded.alarms == [n for n in ALARM_NAMES if n in alarms]
    low = "low_voltage" in state.warnings and "low_voltage" not in alarms
    assert decoded.warnings == (["low_voltage"] if low else [])
    assert (decoded.serial, decoded.firmware, decoded.manufacturer) == (
        state.serial,
        state.firmware,
        state.manufacturer,
    )


@given(jk_states())
def test_round_trip_sign_bit(state):
    check_round_trip(state, decode(*answer(state)))


@given(jk_states(amps_range=(-55535, 10000)))
def test_round_trip_offset_rule(state):
    check_round_trip(state, decode(*answer(state, jk_current="offset"), jk_current="offset"))


# -- fuzzing --------------------------------------------------------------------------------------


@given(st.binary(max_size=600))
def test_fuzz_framer_and_decode_raise_only_decode_error(data):
    framer = JkProtocol().reply_framer()
    for frame in framer.feed(data):
        assert frame.startswith(b"NW")
    with contextlib.suppress(DecodeError):
        decode(data)


@given(st.binary(max_size=300), st.sampled_from([0x03, 0x06]), st.integers(0, 2))
def test_fuzz_records_in_a_valid_envelope(data, command, frame_type):
    frame = envelope(data, command=command, frame_type=frame_type)
    for options in ({}, {"jk_current": "sign-bit"}):
        try:
            decode(frame, **options)
        except DecodeError as exc:
            assert str(exc).startswith("frame 1: ")


@given(st.integers(0, len(REPLY) * 8 - 1))
def test_any_bit_flip_is_rejected(bit):
    flipped = bytearray(REPLY)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(DecodeError, match=r"checksum mismatch|wrong length|starts with"):
        decode(bytes(flipped))
    assert JkProtocol().reply_framer().feed(bytes(flipped)) == []


@given(st.integers(0, len(REPLY) - 1))
def test_any_truncation_is_rejected(size):
    with pytest.raises(DecodeError, match=r"wrong length|shorter than"):
        decode(REPLY[:size])


def test_message_formats_are_hex_upper():
    with pytest.raises(DecodeError) as info:
        decode(REPLY[:-2] + b"\xab\xcd")
    assert re.search(r"expected 000054D1, got 0000ABCD", str(info.value))
