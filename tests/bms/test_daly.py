"""Daly A5 protocol: DALY-01/03/04, frame layouts, decode choices, refusals, round trips, fuzzing."""

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.bms import daly
from bmslink.bms.base import BmsOptions, hex_frames
from bmslink.bms.daly import (
    DATA_IDS,
    EXPRESSIBLE,
    FAILURE_FLAGS,
    SEND_BITS,
    SERVED,
    DalyProtocol,
    build_frame,
    build_request,
    checksum,
)
from bmslink.bms.registry import get_bms
from bmslink.errors import DecodeError, EncodeError
from bmslink.sim.bms import SimBms
from bmslink.sim.pack import Pack
from bmslink.state import ALARM_NAMES, BatteryState

DALY_01_REQUEST = "A5 40 90 08 00 00 00 00 00 00 00 00 7D"
DALY_01_REPLY = "A5 01 90 08 02 FC 00 00 75 A1 00 00 52"
DALY_03_REPLY = "A5 01 91 08 0D 00 0F 0C FE 01 03 78 E1"
DALY_04_REPLY = "A5 01 92 08 37 01 37 01 FE 01 03 78 2A"

PROTOCOL = DalyProtocol()


def reply(data_id, data):
    return build_frame(0x01, data_id, bytes(data))


def status(cells, sensors, cycles=0):
    return reply(0x94, [cells, sensors, 0, 0, 0, cycles >> 8, cycles & 0xFF, 0])


def cell_frame(number, *mv, spare=0):
    data = [number]
    for v in mv:
        data += [v >> 8, v & 0xFF]
    return reply(0x95, [*data, spare])


def temp_frame(number, *raw):
    return reply(0x96, [number, *raw])


def good(**changes):
    """A complete 16-cell, 4-sensor state like the simulator's; ``changes`` override."""
    cells = [3.301 + i / 1000 for i in range(16)]
    values = dict(
        voltage_v=52.9,
        current_a=-12.3,
        soc_pct=64.5,
        cells_v=cells,
        temperatures_c=[21.0, 22.0, 23.0, 20.0],
        charge_enable=True,
        discharge_enable=False,
        remaining_ah=180.5,
        capacity_ah=280.0,
        cycles=300,
        alarms=[],
        warnings=[],
    )
    values.update(changes)
    return BatteryState(**values)


def serve(state, data_id, sender=0x40):
    return PROTOCOL.answer(build_request(data_id, sender), lambda address: state)


def run_cycle(protocol, source, identity=False):
    """Drive conversation() with answer() as the device; the frames a capture would hold."""
    conversation = protocol.conversation(1, identity=identity)
    frames = []
    request = next(conversation)
    while True:
        replies = protocol.answer(request.data, source)
        assert len(replies) == request.replies, request.what
        assert all(r.startswith(request.reply_prefix) for r in replies), request.what
        frames += [request.data, *replies]
        try:
            request = conversation.send(replies)
        except StopIteration:
            return frames


# -- public vectors -------------------------------------------------------------------------------


def test_daly_01_request_is_byte_exact():
    expected = bytes.fromhex(DALY_01_REQUEST)
    assert build_request(0x90) == expected
    assert PROTOCOL.request(0x90).data == expected
    assert next(PROTOCOL.conversation(1, identity=False)).data == expected


def test_daly_01_reply_decodes_to_the_stated_values():
    state = PROTOCOL.decode(hex_frames([DALY_01_REQUEST, DALY_01_REPLY]))
    assert state.to_dict() == {"voltage_v": 76.4, "current_a": 11.3, "soc_pct": 0.0}


def test_daly_01_reply_is_what_the_simulated_device_sends():
    state = BatteryState(voltage_v=76.4, current_a=11.3, soc_pct=0.0)
    assert serve(state, 0x90) == hex_frames([DALY_01_REPLY])


def test_invert_current_flips_daly_01():
    inverted = DalyProtocol(BmsOptions(invert_current=True))
    assert inverted.decode(hex_frames([DALY_01_REPLY])).current_a == -11.3
    zero = reply(0x90, [0, 0, 0, 0, 0x75, 0x30, 0, 0])  # raw 30000 = 0 A stays 0.0, not -0.0
    assert str(inverted.decode([zero]).current_a) == "0.0"


def test_daly_03_reply_decodes_to_the_stated_values():
    state = PROTOCOL.decode(hex_frames([DALY_03_REPLY]))
    assert state.to_dict() == {
        "cell_max_v": 3.328,
        "cell_max_id": "15",
        "cell_min_v": 3.326,
        "cell_min_id": "1",
    }


def test_daly_04_reply_decodes_to_the_stated_values():
    state = PROTOCOL.decode(hex_frames([DALY_04_REPLY]))
    assert state.to_dict() == {
        "cell_temp_max_c": 15.0,
        "cell_temp_min_c": 15.0,
        "temperature_c": 15.0,  # mean of 0x92's two extremes without 0x96
    }


def test_registered_under_daly():
    protocol = get_bms("daly")
    assert isinstance(protocol, DalyProtocol)
    assert (protocol.baudrate, protocol.default_address, protocol.request_gap_s) == (9600, 1, 0.02)
    assert list(protocol.addresses) == [1]


# -- the simulated device: exact layouts ----------------------------------------------------------


def test_cells_are_six_frames_numbered_from_one_with_zero_padding():
    frames = serve(good(), 0x95)
    assert len(frames) == 6
    assert [f[4] for f in frames] == [1, 2, 3, 4, 5, 6]
    assert frames[0][5:12] == bytes([0x0C, 0xE5, 0x0C, 0xE6, 0x0C, 0xE7, 0])  # 3301-3303 mV
    assert frames[5][5:12] == bytes([0x0C, 0xF4, 0, 0, 0, 0, 0])  # cell 16 = 3316 mV, padding
    assert all(f[:4] == bytes([0xA5, 0x01, 0x95, 0x08]) and checksum(f) == f[12] for f in frames)


def test_temperatures_are_one_frame_with_zero_padding():
    assert serve(good(), 0x96) == [temp_frame(1, 61, 62, 63, 60, 0, 0, 0)]


def test_status_mos_and_extremes_layouts():
    state = good()
    assert serve(state, 0x94) == [status(16, 4, cycles=300)]
    # discharging, charge MOS on, discharge MOS off, "BMS life" 0, 180500 mAh
    assert serve(state, 0x93) == [reply(0x93, [2, 1, 0, 0, 0x00, 0x02, 0xC1, 0x14])]
    # max 3.316 V is cell 16, min 3.301 V is cell 1, B6-7 0
    assert serve(state, 0x91) == [reply(0x91, [0x0C, 0xF4, 16, 0x0C, 0xE5, 1, 0, 0])]
    # max 23 °C is sensor 3, min 20 °C is sensor 4
    assert serve(state, 0x92) == [reply(0x92, [63, 3, 60, 4, 0, 0, 0, 0])]
    assert serve(good(current_a=0.04), 0x93)[0][4] == 0  # rounds to 0 A: stationary
    assert serve(good(current_a=0.1), 0x93)[0][4] == 1  # charging


def test_capacity_and_battery_code_layouts():
    assert serve(good(), 0x50) == [reply(0x50, [0x00, 0x04, 0x45, 0xC0, 0, 0, 0, 0])]
    frames = serve(good(serial="DALY-48V-280AH-0001"), 0x57)
    assert [f[4] for f in frames] == [1, 2, 3, 4, 5]
    assert b"".join(f[5:12] for f in frames) == b"DALY-48V-280AH-0001".ljust(35, b"\x00")
    assert b"".join(f[5:12] for f in serve(good(), 0x57)) == bytes(35)


def test_served_state_ids_follow_the_state_when_it_names_cells():
    state = good(cell_max_id="7", cell_min_id="2", cell_max_v=3.5, cell_min_v=3.0)
    assert serve(state, 0x91)[0][4:10] == bytes([0x0D, 0xAC, 7, 0x0B, 0xB8, 2])
    # an id that is not a number ("b0 m3") is looked up in the cells; not found = 0
    assert serve(good(cell_max_id="b0 m3", cell_max_v=3.9), 0x91)[0][6] == 0


def test_failure_bits_sent_for_each_name():
    data = serve(good(alarms=["short_circuit", "high_voltage"], warnings=["cell_imbalance"]), 0x98)
    assert data == [reply(0x98, [0b10, 0, 0, 0b1, 0, 0, 0b100, 0])]


def test_every_named_pair_has_exactly_one_sent_bit():
    pairs = {(f.name, f.level) for f in FAILURE_FLAGS if f.name is not None}
    for pair in pairs:
        sent = [f for f in FAILURE_FLAGS if (f.name, f.level) == pair and f.send]
        assert len(sent) == 1, pair
    assert set(SEND_BITS) == pairs
    assert EXPRESSIBLE["alarm"] == ALARM_NAMES
    assert set(ALARM_NAMES) - set(EXPRESSIBLE["warning"]) == {
        "short_circuit",
        "contactor",
        "bms_internal",
    }
    assert len({(f.byte, f.bit) for f in FAILURE_FLAGS}) == len(FAILURE_FLAGS)


@pytest.mark.parametrize("flag", FAILURE_FLAGS, ids=lambda f: f"B{f.byte}.{f.bit}")
def test_each_failure_bit_decodes_to_its_name_and_level(flag):
    data = [0] * 8
    data[flag.byte] = 1 << flag.bit
    state = PROTOCOL.decode([reply(0x98, data)])
    if flag.name is None:
        assert (state.alarms, state.warnings) == ([], [])
    elif flag.level == "alarm":
        assert (state.alarms, state.warnings) == ([flag.name], [])
    else:
        assert (state.alarms, state.warnings) == ([], [flag.name])


def test_failure_decode_keeps_both_levels_and_contract_order():
    state = PROTOCOL.decode([reply(0x98, [0b11, 0b1, 0, 0b11, 0, 0x01, 0x04, 0xFF])])
    assert state.alarms == ["high_voltage", "short_circuit", "bms_internal", "cell_imbalance"]
    assert state.warnings == ["high_voltage", "high_temperature_charge", "cell_imbalance"]
    assert PROTOCOL.decode([reply(0x98, [0] * 8)]).alarms == []
    assert PROTOCOL.decode(hex_frames([DALY_01_REPLY])).alarms is None


# -- decode choices -------------------------------------------------------------------------------


def test_cells_placed_by_number_from_zero_or_one():
    from_one = [cell_frame(2, 3304, 3305, 3306), cell_frame(1, 3301, 3302, 3303)]
    from_zero = [cell_frame(1, 3304, 3305, 3306), cell_frame(0, 3301, 3302, 3303)]
    expected = [3.301, 3.302, 3.303, 3.304, 3.305, 3.306]
    assert PROTOCOL.decode(from_one).cells_v == expected
    assert PROTOCOL.decode(from_zero).cells_v == expected


def test_cell_count_from_0x94_drops_padding_and_extra_frames():
    frames = [
        status(4, 0),
        cell_frame(1, 3301, 3302, 3303),
        cell_frame(2, 3304, 0xFFFF, 0x1234),  # the padding of a real BMS need not be 0
        cell_frame(3, 3000, 3000, 3000),  # beyond the count
    ]
    state = PROTOCOL.decode(frames)
    assert state.cells_v == [3.301, 3.302, 3.303, 3.304]
    assert (state.cell_min_id, state.cell_max_id) == ("1", "4")


def test_without_0x94_only_trailing_zero_slots_of_the_last_frame_are_padding():
    frames = [cell_frame(1, 3301, 0, 3303), cell_frame(2, 3304, 0, 0)]
    state = PROTOCOL.decode(frames)
    assert state.cells_v == [3.301, 0.0, 3.303, 3.304]  # a 0 mV cell inside is a reading
    assert (state.cell_min_v, state.cell_min_id) == (0.0, "2")
    temps = PROTOCOL.decode([temp_frame(1, 0, 65, 0, 0, 0, 0, 0)])
    assert temps.temperatures_c == [-40.0, 25.0]


def test_the_lists_win_over_the_bms_extremes():
    frames = [
        hex_frames([DALY_03_REPLY])[0],  # says 3.328 V (cell 15) and 3.326 V (cell 1)
        hex_frames([DALY_04_REPLY])[0],  # says 15 °C / 15 °C
        status(3, 2),
        cell_frame(1, 3310, 3300, 3320),
        temp_frame(1, 60, 65, 0, 0, 0, 0, 0),
    ]
    state = PROTOCOL.decode(frames)
    assert (state.cell_max_v, state.cell_max_id) == (3.32, "3")
    assert (state.cell_min_v, state.cell_min_id) == (3.3, "2")
    assert (state.cell_temp_min_c, state.cell_temp_max_c) == (20.0, 25.0)
    assert state.temperatures_c == [20.0, 25.0]
    assert state.temperature_c == 22.5  # mean of the sensors


def test_cycles_from_0x94_not_from_bms_life():
    frames = [status(16, 4, cycles=1234), reply(0x93, [0, 1, 1, 7, 0, 0, 0x03, 0xE8])]
    state = PROTOCOL.decode(frames)
    assert state.cycles == 1234
    assert (state.charge_enable, state.discharge_enable, state.remaining_ah) == (True, True, 1.0)
    assert PROTOCOL.decode([reply(0x93, [0, 0, 2, 9, 0, 0, 0, 0])]).cycles is None
    assert PROTOCOL.decode([reply(0x93, [0, 0, 2, 9, 0, 0, 0, 0])]).charge_enable is False


def test_capacity_and_battery_code_decode():
    state = PROTOCOL.decode(serve(good(), 0x50) + serve(good(serial="PACK 7"), 0x57))
    assert (state.capacity_ah, state.serial) == (280.0, "PACK 7")
    assert PROTOCOL.decode(serve(good(), 0x57)).serial is None  # an empty code is no serial
    code = [reply(0x57, [n, *b"AB\x00\xffCD "]) for n in range(1, 6)]
    assert (
        PROTOCOL.decode(code).serial
        == "AB \ufffdCD AB \ufffdCD AB \ufffdCD AB \ufffdCD AB \ufffdCD"
    )


def test_requests_of_every_sender_are_accepted_and_ignored_ids_change_nothing():
    frames = [build_request(0x90, sender) for sender in (0x40, 0x80, 0x20)]
    frames += [reply(0x97, [0xFF] * 8), reply(0x53, [1, 2, 24, 5, 6, 0, 0, 0])]
    assert PROTOCOL.decode(frames) == BatteryState()


def test_later_frames_win():
    first = reply(0x90, [0x02, 0x00, 0, 0, 0x75, 0x30, 0x01, 0xF4])
    state = PROTOCOL.decode([first, hex_frames([DALY_01_REPLY])[0]])
    assert (state.voltage_v, state.soc_pct) == (76.4, 0.0)


# -- the conversation -----------------------------------------------------------------------------


def test_conversation_counts_cell_and_temperature_frames_from_0x94():
    conversation = PROTOCOL.conversation(1, identity=True)
    requests = [next(conversation)]
    while requests[-1].data[2] != 0x94:
        requests.append(conversation.send([]))
    requests.append(conversation.send([status(17, 8)]))
    requests.append(conversation.send([]))
    requests.append(conversation.send([]))
    with pytest.raises(StopIteration):
        conversation.send([])
    ids = [r.data[2] for r in requests]
    assert ids == [0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x98]
    assert [r.replies for r in requests] == [1, 1, 1, 1, 1, 6, 2, 1]
    assert all(r.reply_prefix == bytes([0xA5, 0x01, r.data[2], 0x08]) for r in requests)
    assert all(r.data == build_request(r.data[2]) for r in requests)


def test_conversation_skips_0x95_and_0x96_for_zero_counts():
    conversation = PROTOCOL.conversation(1, identity=False)
    next(conversation)
    for _ in range(3):
        conversation.send([])
    assert conversation.send([]).data[2] == 0x94
    assert conversation.send([build_request(0x94), status(0, 0)]).data[2] == 0x98


@pytest.mark.parametrize(
    ("replies", "message"),
    [
        ([], "0x94 status: no reply among the frames received"),
        (
            [status(49, 4)],
            r"frame 1: 0x94 byte 4 \(cell count\) is 49, at most 48 \(16 frames of 3\)",
        ),
        (
            [status(16, 22)],
            r"frame 1: 0x94 byte 5 \(temperature sensor count\) is 22, at most 21",
        ),
    ],
)
def test_conversation_refuses_a_status_it_cannot_count(replies, message):
    conversation = PROTOCOL.conversation(1, identity=False)
    next(conversation)
    for _ in range(4):
        conversation.send([])
    with pytest.raises(DecodeError, match=message):
        conversation.send(replies)


def test_conversation_refuses_another_address():
    with pytest.raises(ValueError, match=r"daly: address 2 outside 1\.\.1"):
        next(PROTOCOL.conversation(2, identity=False))


def test_whole_cycle_against_the_simulator():
    bms = SimBms(Pack.lfp(16, 280.0, soc=0.6))
    sent = bms.state()
    frames = run_cycle(PROTOCOL, lambda address: sent if address == 1 else None)
    state = PROTOCOL.decode(frames)
    assert PROTOCOL.keys <= set(state.to_dict())
    assert state.cells_v == sent.cells_v
    assert state.temperatures_c == [round(t) for t in sent.temperatures_c]
    assert state.voltage_v == round(sent.voltage_v, 1)
    assert state.soc_pct == sent.soc_pct
    assert state.remaining_ah == sent.remaining_ah
    assert (state.alarms, state.warnings) == (sent.alarms, sent.warnings)
    # the same bytes through the framers
    requests = PROTOCOL.request_framer().feed(b"".join(f for f in frames if f[1] == 0x40))
    replies = PROTOCOL.reply_framer().feed(b"".join(f for f in frames if f[1] == 0x01))
    assert requests + replies == [f for f in frames if f[1] == 0x40] + [
        f for f in frames if f[1] == 0x01
    ]


# -- errors ---------------------------------------------------------------------------------------


def with_checksum(body):
    body = bytes(body)
    return body + bytes([sum(body) & 0xFF])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (bytes.fromhex(DALY_01_REPLY)[:12], "frame 2: wrong length: expected 13 bytes, got 12"),
        (
            bytes.fromhex(DALY_01_REPLY) + b"\x00",
            "frame 2: wrong length: expected 13 bytes, got 14",
        ),
        (
            bytes.fromhex(DALY_01_REPLY)[:12] + b"\x53",
            "frame 2: checksum mismatch: expected 52, got 53",
        ),
        (
            with_checksum([0xA4, 1, 0x90, 8] + [0] * 8),
            r"frame 2: byte 0 \(start\) is 0xA4, expected 0xA5",
        ),
        (
            with_checksum([0xA5, 1, 0x90, 7] + [0] * 8),
            r"frame 2: byte 3 \(data length\) is 7, expected 8",
        ),
        (
            with_checksum([0xA5, 2, 0x90, 8] + [0] * 8),
            r"frame 2: byte 1 \(address\) is 0x02, neither the BMS \(0x01\) nor a host "
            r"\(0x40, 0x80, 0x20\)",
        ),
        (reply(0x42, [0] * 8), "frame 2: byte 2: unknown data id 0x42"),
        (status(50, 1), r"frame 2: 0x94 byte 4 \(cell count\) is 50, at most 48"),
        (status(1, 30), r"frame 2: 0x94 byte 5 \(temperature sensor count\) is 30, at most 21"),
        (
            cell_frame(17, 1, 2, 3),
            r"frame 2: 0x95 byte 4 \(frame number\) is 17, beyond the 16 frames of cell "
            r"voltages \(numbered from 1\)",
        ),
        (
            temp_frame(4, 1, 2, 3, 4, 5, 6, 7),
            r"frame 2: 0x96 byte 4 \(frame number\) is 4, beyond the 3 frames of temperatures",
        ),
    ],
)
def test_frame_errors_name_frame_byte_and_field(frame, message):
    with pytest.raises(DecodeError, match=f"^{message}"):
        PROTOCOL.decode([hex_frames([DALY_01_REPLY])[0], frame])


def test_zero_based_numbering_limits_frame_numbers_to_15():
    frames = [cell_frame(0, 1, 2, 3), cell_frame(16, 1, 2, 3)]
    with pytest.raises(DecodeError, match=r"^frame 2: 0x95 .* is 16, .*\(numbered from 0\)"):
        PROTOCOL.decode(frames)


def test_a_missing_frame_is_named():
    frames = [status(16, 4), *serve(good(), 0x95)]
    del frames[3]  # frame number 3
    with pytest.raises(
        DecodeError, match=r"^0x95 cell voltages: frame number 3 missing \(cells 7-9 of 16\)$"
    ):
        PROTOCOL.decode(frames)
    with pytest.raises(
        DecodeError, match=r"^0x96 temperatures: frame number 1 missing \(sensors 1-4 of 4\)$"
    ):
        PROTOCOL.decode([status(16, 4), temp_frame(2, *[60] * 7)])
    with pytest.raises(
        DecodeError, match=r"^0x95 cell voltages: frame number 2 missing \(cells 4-6\)$"
    ):
        PROTOCOL.decode([cell_frame(1, 1, 2, 3), cell_frame(3, 1, 2, 3)])
    with pytest.raises(
        DecodeError, match=r"^0x57 battery code: frame number 5 missing \(characters 29-35 of 35\)$"
    ):
        PROTOCOL.decode(serve(good(), 0x57)[:4])


# -- refusals and silence -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_id", "key"),
    [(data_id, key) for data_id, keys in daly.REQUIRED.items() for key in keys],
)
def test_missing_key_is_refused_by_name(data_id, key):
    with pytest.raises(EncodeError, match=f"^missing {key}: the Daly 0x{data_id:02X} reply"):
        serve(good(**{key: None}), data_id)


def test_extremes_without_lists_are_refused_by_name():
    with pytest.raises(EncodeError, match=r"^missing cell_max_v: .*0x91.*no cells_v"):
        serve(good(cells_v=None), 0x91)
    with pytest.raises(EncodeError, match=r"^missing cell_temp_min_c: .*0x92.*no temperatures_c"):
        serve(good(temperatures_c=None, cell_temp_max_c=20.0), 0x92)
    state = good(cells_v=None, temperatures_c=None, cell_max_v=3.4, cell_min_v=3.3)
    assert serve(state.merged({"cell_temp_max_c": 20.0, "cell_temp_min_c": 10.0}), 0x92)


@pytest.mark.parametrize(
    ("data_id", "changes", "message"),
    [
        (0x90, {"soc_pct": 100.1}, r"soc_pct = 100.1 % is outside 0..100 % \(0x90 byte 10\)"),
        (
            0x90,
            {"current_a": 3553.6},
            r"current_a = 3553.6 A is outside -3000..3553.5 A \(0x90 byte 8\)",
        ),
        (0x90, {"current_a": -3000.1}, "current_a = -3000.1 A is outside -3000..3553.5 A"),
        (0x90, {"voltage_v": 6553.6}, "voltage_v = 6553.6 V is outside 0..6553.5 V"),
        (0x90, {"voltage_v": math.nan}, r"voltage_v = nan is not a number \(0x90 byte 4\)"),
        (0x93, {"remaining_ah": -0.001}, "remaining_ah = -0.001 Ah is outside 0..4.29497e\\+06 Ah"),
        (0x94, {"cycles": 70000}, r"cycles = 70000 is outside 0..65535 \(0x94 byte 9\)"),
        (0x94, {"cells_v": [3.3] * 49}, "cells_v: Daly carries at most 48 cells, got 49"),
        (0x95, {"cells_v": [3.3] * 49}, "cells_v: Daly carries at most 48 cells, got 49"),
        (0x94, {"temperatures_c": [20.0] * 22}, "temperatures_c: Daly carries at most 21 sensors"),
        (
            0x95,
            {"cells_v": [3.3, 65.536]},
            r"cells_v\[1\] = 65.536 V is outside 0..65.535 V \(0x95\)",
        ),
        (0x95, {"cells_v": [3.3, -0.1]}, r"cells_v\[1\] = -0.1 V is outside"),
        (
            0x96,
            {"temperatures_c": [20.0, 215.6]},
            r"temperatures_c\[1\] = 215.6 °C is outside -40..215 °C",
        ),
        (
            0x96,
            {"temperatures_c": [-40.6]},
            r"temperatures_c\[0\] = -40.6 °C is outside -40..215 °C",
        ),
        (
            0x92,
            {"cell_temp_max_c": 216.0},
            r"cell_temp_max_c = 216 °C is outside -40..215 °C \(0x92 byte 4\)",
        ),
        (0x91, {"cell_max_id": "300"}, r"cell_max_id = 300 is outside 0..255 \(0x91 byte 6\)"),
        (
            0x91,
            {"cell_min_v": 3.4, "cell_max_v": 3.3},
            "cell_min_v = 3.4 V is above cell_max_v = 3.3 V",
        ),
        (
            0x92,
            {"cell_temp_min_c": 30.0},
            "cell_temp_min_c = 30 °C is above cell_temp_max_c = 23 °C",
        ),
        (
            0x57,
            {"serial": "x" * 36},
            "serial 'x{36}' is longer than the 35 characters of Daly 0x57",
        ),
        (0x57, {"serial": "Grüße"}, "serial 'Grüße' is not ASCII"),
        (0x50, {"capacity_ah": 4294967.296}, "capacity_ah = 4.29497e\\+06 Ah is outside"),
    ],
)
def test_values_out_of_range_are_refused_by_key(data_id, changes, message):
    with pytest.raises(EncodeError, match=message):
        serve(good(**changes), data_id)


@pytest.mark.parametrize(
    ("alarms", "warnings", "named"),
    [
        ([], ["short_circuit"], "warning 'short_circuit'"),
        ([], ["contactor"], "warning 'contactor'"),
        ([], ["bms_internal"], "warning 'bms_internal'"),
    ],
)
def test_names_without_a_bit_are_refused(alarms, warnings, named):
    with pytest.raises(EncodeError, match=f"^{named} has no Daly 0x98 bit"):
        serve(good(alarms=alarms, warnings=warnings), 0x98)


def test_absent_warnings_are_served_as_none():
    assert serve(good(warnings=None, alarms=["general"]), 0x98) == [
        reply(0x98, [0, 0, 0, 0b1000, 0, 0, 0, 0])
    ]


@pytest.mark.parametrize(
    "request_bytes",
    [
        bytes.fromhex(DALY_01_REQUEST)[:12] + b"\x7e",  # bad checksum
        bytes.fromhex(DALY_01_REQUEST)[:12],  # truncated
        build_request(0x97),  # known, not served
        build_request(0x53),
        build_request(0x42),  # unknown
        build_frame(0x01, 0x90),  # a reply, not a request
        build_frame(0x41, 0x90),  # board 2 in serialbattery's scheme: not this device
        with_checksum([0xA5, 0x40, 0x90, 7] + [0] * 8),
    ],
)
def test_requests_not_served_get_silence(request_bytes):
    assert PROTOCOL.answer(request_bytes, lambda address: good()) == []


def test_silent_source_and_every_sender():
    assert PROTOCOL.answer(build_request(0x90), lambda address: None) == []
    asked = []
    for sender in (0x40, 0x80, 0x20):
        assert serve(good(), 0x90, sender)[0][:4] == bytes([0xA5, 0x01, 0x90, 0x08])
    PROTOCOL.answer(build_request(0x90), lambda address: asked.append(address))
    assert asked == [1]
    # requests padded with 0xAA (as serialbattery sends them) are answered too
    padded = with_checksum([0xA5, 0x40, 0x90, 0x08] + [0xAA] * 8)
    assert PROTOCOL.answer(padded, lambda address: good()) == serve(good(), 0x90)


# -- framer ---------------------------------------------------------------------------------------


def test_framer_skips_garbage_and_bad_frames_and_joins_split_frames():
    good_frame = hex_frames([DALY_01_REPLY])[0]
    other = hex_frames([DALY_03_REPLY])[0]
    bad = good_frame[:12] + b"\x00"
    framer = PROTOCOL.reply_framer()
    out = framer.feed(b"\x00\xff\xa5\x01" + bad + good_frame[:5])
    assert out == []
    out = framer.feed(good_frame[5:] + b"\x12\x34" + other)
    assert out == [good_frame, other]
    assert framer.bad_frames == 1
    assert framer.noise_bytes >= 4 + 2
    framer.feed(b"\xa5\x01\x90\x09")  # impossible data length
    assert framer.feed(good_frame) == [good_frame]


# -- hypothesis -----------------------------------------------------------------------------------

TEXT = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
CELL = st.integers(2500, 3650).map(lambda mv: mv / 1000)
CELSIUS = st.integers(-400, 1000).map(lambda t: t / 10)


@st.composite
def daly_states(draw):
    """States a Daly can carry: 1-48 cells, 1-21 sensors, both current signs, its alarms."""
    cells = draw(st.lists(CELL, min_size=1, max_size=48))
    temps = draw(st.lists(CELSIUS, min_size=1, max_size=21))
    named = draw(st.booleans())

    def names(level):
        return st.lists(st.sampled_from(EXPRESSIBLE[level]), unique=True)

    return BatteryState(
        voltage_v=round(sum(cells), 3),
        current_a=draw(st.integers(-30000, 35535).map(lambda a: a / 10)),
        soc_pct=draw(st.integers(0, 1000).map(lambda p: p / 10)),
        cells_v=cells,
        temperatures_c=temps,
        cell_min_v=min(cells) if named else None,
        cell_max_v=max(cells) if named else None,
        cell_temp_min_c=min(temps) if named else None,
        cell_temp_max_c=max(temps) if named else None,
        charge_enable=draw(st.booleans()),
        discharge_enable=draw(st.booleans()),
        remaining_ah=draw(st.integers(0, 2_000_000).map(lambda mah: mah / 1000)),
        capacity_ah=draw(st.integers(1, 2_000_000).map(lambda mah: mah / 1000)),
        cycles=draw(st.integers(0, 0xFFFF)),
        alarms=draw(names("alarm")),
        warnings=draw(st.none() | names("warning")),
        serial=draw(st.none() | st.text(alphabet=TEXT, min_size=1, max_size=35)),
    )


def check_roundtrip(state, decoded):
    assert decoded.voltage_v == pytest.approx(state.voltage_v, abs=0.05 + 1e-9)
    assert decoded.current_a == pytest.approx(state.current_a, abs=1e-9)
    assert decoded.soc_pct == pytest.approx(state.soc_pct, abs=1e-9)
    assert decoded.cells_v == state.cells_v
    assert decoded.temperatures_c == [float(round(t)) for t in state.temperatures_c]
    cells, temps = decoded.cells_v, decoded.temperatures_c
    assert (decoded.cell_min_v, decoded.cell_max_v) == (min(cells), max(cells))
    assert decoded.cell_min_id == str(cells.index(min(cells)) + 1)
    assert decoded.cell_max_id == str(cells.index(max(cells)) + 1)
    assert (decoded.cell_temp_min_c, decoded.cell_temp_max_c) == (min(temps), max(temps))
    assert decoded.temperature_c == round(sum(temps) / len(temps), 1)
    assert decoded.remaining_ah == state.remaining_ah
    assert decoded.capacity_ah == state.capacity_ah
    assert decoded.cycles == state.cycles
    assert (decoded.charge_enable, decoded.discharge_enable) == (
        state.charge_enable,
        state.discharge_enable,
    )
    assert decoded.alarms == [n for n in ALARM_NAMES if n in state.alarms]
    assert decoded.warnings == [n for n in ALARM_NAMES if n in (state.warnings or [])]
    assert decoded.serial == state.serial


@given(daly_states())
def test_round_trip_through_every_served_reply(state):
    frames = [frame for data_id in SERVED for frame in serve(state, data_id)]
    check_roundtrip(state, PROTOCOL.decode(frames))


@given(daly_states())
def test_poll_cycle_with_answer_as_the_device(state):
    frames = run_cycle(PROTOCOL, lambda address: state)
    decoded = PROTOCOL.decode(frames + serve(state, 0x50) + serve(state, 0x57))
    assert PROTOCOL.keys <= set(decoded.to_dict())
    check_roundtrip(state, decoded)


@given(daly_states())
def test_the_bms_extremes_alone_decode_within_resolution(state):
    frames = serve(state, 0x91) + serve(state, 0x92)
    decoded = PROTOCOL.decode(frames)
    assert (decoded.cell_min_v, decoded.cell_max_v) == (min(state.cells_v), max(state.cells_v))
    assert decoded.cell_max_id == str(state.cells_v.index(max(state.cells_v)) + 1)
    assert decoded.cell_temp_max_c == round(max(state.temperatures_c))
    assert decoded.cell_temp_min_c == round(min(state.temperatures_c))


@given(st.binary(max_size=200), st.integers(1, 20))
def test_framer_never_raises(data, chunk):
    framer = PROTOCOL.reply_framer()
    frames = []
    for i in range(0, len(data), chunk):
        frames += framer.feed(data[i : i + chunk])
    assert all(len(f) == 13 and checksum(f) == f[12] for f in frames)


FRAME_BODIES = st.tuples(
    st.sampled_from([0xA5, 0xA5, 0xA5, 0x00]),
    st.sampled_from([0x01, 0x01, 0x40, 0x80, 0x20, 0x02]),
    st.sampled_from([*DATA_IDS, 0x00]),
    st.sampled_from([8, 8, 8, 0]),
    st.binary(min_size=8, max_size=8),
).map(lambda t: with_checksum(bytes(t[:4]) + t[4]))


@given(st.lists(FRAME_BODIES | st.binary(max_size=15), max_size=12))
def test_decode_raises_only_decode_errors(frames):
    with contextlib.suppress(DecodeError):
        PROTOCOL.decode(frames)


@given(daly_states(), st.data())
def test_flipped_or_truncated_frames_are_rejected(state, data):
    frames = [frame for data_id in SERVED for frame in serve(state, data_id)]
    index = data.draw(st.integers(0, len(frames) - 1))
    frame = bytearray(frames[index])
    if data.draw(st.booleans()):
        bit = data.draw(st.integers(0, 13 * 8 - 1))
        frame[bit // 8] ^= 1 << (bit % 8)
        expected = f"frame {index + 1}: checksum mismatch"
    else:
        frame = frame[: data.draw(st.integers(0, 12))]
        expected = f"frame {index + 1}: wrong length"
    frames[index] = bytes(frame)
    with pytest.raises(DecodeError, match=f"^{expected}"):
        PROTOCOL.decode(frames)
