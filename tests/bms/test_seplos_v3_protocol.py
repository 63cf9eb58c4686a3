"""SeplosV3Protocol: the register map behind BmsProtocol: SEP3-01, poll cycles, device, errors."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.bms.base import BmsOptions, hex_frames
from bmslink.bms.modbus_rtu import (
    build_bit_reply,
    build_exception_reply,
    build_read_request,
    build_register_reply,
    parse_bit_reply,
    parse_register_reply,
    with_crc,
)
from bmslink.bms.registry import get_bms
from bmslink.bms.seplos_v3 import (
    KELVIN_OFFSET_RAW,
    PIA,
    PIB,
    PIC,
    SERIALBATTERY_KELVIN_OFFSET_RAW,
    SPA,
    SeplosV3Protocol,
    encode,
)
from bmslink.errors import DecodeError, EncodeError
from bmslink.sim.bms import SimBms
from bmslink.sim.pack import Pack
from bmslink.state import BatteryState

from .test_seplos_v3 import SEP3_REPLY, check_roundtrip, good, seplos_states

PROTOCOL = SeplosV3Protocol()
SEP3_REQUEST = "01.04.10.00.00.11.34.C6"

#: SEP3-01 as stated (derived values; temperatures with the default 2731.5 offset).
SEP3_STATE = {
    "voltage_v": 53.25,
    "current_a": -1.37,
    "remaining_ah": 274.56,
    "capacity_ah": 330.0,
    "soc_pct": 83.2,
    "soh_pct": 99.9,
    "cycles": 10,
    "temperature_c": 21.15,
    "cell_max_v": 3.328,
    "cell_min_v": 3.327,
    "cell_temp_max_c": 21.35,
    "cell_temp_min_c": 21.05,
    "discharge_current_a": 180.0,
    "charge_current_a": 180.0,
}


def serve(state, request, protocol=PROTOCOL):
    return protocol.answer(request, lambda a: state if a == 1 else None)


def cycle(state, protocol=PROTOCOL, address=1):
    """A whole poll cycle with ``answer`` as the device; every frame on the wire, in order."""
    wire = []
    conversation = protocol.conversation(address, identity=True)
    request = next(conversation)
    while True:
        replies = protocol.answer(request.data, lambda a: state if a == address else None)
        assert len(replies) == request.replies and replies[0].startswith(request.reply_prefix)
        assert protocol.reply_framer().feed(b"".join(replies)) == replies
        wire += [request.data, *replies]
        try:
            request = conversation.send(replies)
        except StopIteration:
            return wire


def reply(state, block, count=None):
    (frame,) = serve(
        state, build_read_request(1, block.function, block.start, count or block.count)
    )
    return frame


# -- the public vector ----------------------------------------------------------------------------


def test_sep3_01_request_is_byte_exact():
    assert build_read_request(1, 0x04, 0x1000, 17) == hex_frames([SEP3_REQUEST])[0]


def test_sep3_01_request_and_reply_decode_to_the_stated_values():
    assert PROTOCOL.decode(hex_frames([SEP3_REQUEST, SEP3_REPLY])).to_dict() == SEP3_STATE


def test_sep3_01_reply_alone_is_recognised_by_its_size():
    assert PROTOCOL.decode(hex_frames([SEP3_REPLY])).to_dict() == SEP3_STATE


def test_sep3_01_with_the_serialbattery_offset_option():
    protocol = SeplosV3Protocol(BmsOptions(kelvin_offset_raw=SERIALBATTERY_KELVIN_OFFSET_RAW))
    state = protocol.decode(hex_frames([SEP3_REQUEST, SEP3_REPLY]))
    assert (state.temperature_c, state.cell_temp_max_c, state.cell_temp_min_c) == (21.3, 21.5, 21.2)


def test_registry_and_class_facts():
    protocol = get_bms("seplos-v3")
    assert isinstance(protocol, SeplosV3Protocol)
    assert (protocol.baudrate, protocol.default_address, protocol.addresses) == (
        19200,
        0,
        range(0, 0x80),
    )
    assert protocol.kelvin_offset_raw == KELVIN_OFFSET_RAW


# -- the poll cycle -------------------------------------------------------------------------------


def test_poll_cycle_reads_every_block_with_the_existing_constants():
    requests = list(PROTOCOL.conversation(2, identity=False))
    assert [r.data for r in requests] == [
        with_crc(bytes.fromhex("02 04 10 00 00 12")),  # PIA, 18 registers
        with_crc(bytes.fromhex("02 04 11 00 00 1A")),  # PIB
        with_crc(bytes.fromhex("02 01 12 00 00 90")),  # PIC coils
        with_crc(bytes.fromhex("02 04 13 00 00 6A")),  # SPA: the cell count, every cycle
    ]
    assert all(r.reply_prefix == b"\x02" and r.replies == 1 for r in requests)
    assert [r.data for r in PROTOCOL.conversation(2, identity=True)] == [r.data for r in requests]
    assert requests[0].what.startswith("PIA (function 04, 0x1000-0x1011")
    with pytest.raises(ValueError, match=r"outside 0\.\.127"):
        next(PROTOCOL.conversation(0x80, identity=False))


def test_a_simulated_pack_survives_a_whole_poll_cycle():
    sent = SimBms(Pack.lfp(16, 280.0, soc=0.6)).state()
    wire = cycle(sent)
    assert len(wire) == 8
    got = PROTOCOL.decode(wire)
    assert {k for k in PROTOCOL.keys if getattr(got, k) is None} == set()
    assert got.cells_v == [round(v, 3) for v in sent.cells_v]
    assert got.voltage_v == pytest.approx(sent.voltage_v, abs=0.005)
    assert got.current_a == pytest.approx(sent.current_a, abs=0.005)
    assert got.temperatures_c == pytest.approx(sent.temperatures_c, abs=0.051)  # 0.1 K steps
    assert got.alarms == sorted(sent.alarms)
    assert (got.charge_enable, got.discharge_enable) == (sent.charge_enable, sent.discharge_enable)
    assert got.installed_capacity_ah == 280.0


@given(seplos_states(), st.sampled_from([None, SERIALBATTERY_KELVIN_OFFSET_RAW]))
def test_round_trip_through_a_poll_cycle(state, offset):
    protocol = SeplosV3Protocol(BmsOptions(kelvin_offset_raw=offset))
    check_roundtrip(state, protocol.decode(cycle(state, protocol)))


@settings(max_examples=100)
@given(seplos_states())
def test_replies_without_requests_decode_the_same(state):
    wire = cycle(state)
    assert PROTOCOL.decode(wire[1::2]) == PROTOCOL.decode(wire)


def test_a_cell_reading_0_mv_stays_in_the_list_with_spa():
    state = good(cells_v=[3.3, 3.31, 3.32, 3.33])
    pib = bytearray(reply(state, PIB))
    pib[3 + 2 : 3 + 4] = b"\x00\x00"  # cell 2 reads 0 mV
    pib = with_crc(bytes(pib[:-2]))
    assert PROTOCOL.decode([pib, reply(state, SPA)]).cells_v == [3.3, 0.0, 3.32, 3.33]
    assert PROTOCOL.decode([pib]).cells_v == [3.3]  # without SPA: up to the first 0 mV


def test_without_pia_the_other_blocks_still_decode():
    state = good(cells_v=[3.3, 3.31, 3.29], alarms=["high_charge_current"])
    got = PROTOCOL.decode([reply(state, PIB), reply(state, PIC), reply(state, SPA)])
    assert got.voltage_v is None and got.current_a is None and got.soc_pct is None
    assert got.cells_v == [3.3, 3.31, 3.29]
    assert (got.cell_min_v, got.cell_max_v, got.cell_min_id, got.cell_max_id) == (
        3.29,
        3.31,
        "3",
        "2",
    )
    assert got.alarms == ["high_charge_current"]
    assert got.installed_capacity_ah == 330.0


def test_pia_extremes_win_over_the_cells():
    state = good(cells_v=[3.3, 3.31], cell_max_v=3.4, cell_min_v=3.2)
    got = PROTOCOL.decode(cycle(state))
    assert (got.cell_min_v, got.cell_max_v) == (3.2, 3.4)


def test_the_later_reply_of_a_block_wins():
    older = reply(good(voltage_v=50.0), PIA)
    newer = reply(good(voltage_v=51.0), PIA)
    assert PROTOCOL.decode([older, newer]).voltage_v == 51.0


def test_reads_that_are_no_block_are_checked_and_ignored():
    sfa = build_read_request(1, 0x01, 0x1400, 0x50)
    via = build_read_request(1, 0x04, 0x1700, 10)
    frames = [
        sfa,
        build_bit_reply(1, 0x01, [True] * 0x50),
        via,
        build_register_reply(1, 0x04, list(b"XZH-ElecTech")[:10]),
        *hex_frames([SEP3_REPLY]),
    ]
    assert PROTOCOL.decode(frames).to_dict() == SEP3_STATE
    frames[3] = frames[3][:-1] + b"\x00"
    with pytest.raises(DecodeError, match=r"^frame 4: CRC mismatch"):
        PROTOCOL.decode(frames)


def test_no_frames_is_an_empty_state():
    assert PROTOCOL.decode([]) == BatteryState()
    assert PROTOCOL.decode(hex_frames([SEP3_REQUEST])) == BatteryState()


# -- the simulated device -------------------------------------------------------------------------


def test_reads_inside_a_block_at_any_start_and_count():
    state = good()
    image = encode(state)
    (frame,) = serve(state, build_read_request(1, 0x04, 0x1005, 3))
    assert parse_register_reply(frame, 0x04, 3).registers == list(image.pia[5:8])
    (frame,) = serve(state, build_read_request(1, 0x04, 0x1359, 1))
    assert parse_register_reply(frame, 0x04, 1).registers == [33000]
    (frame,) = serve(state, build_read_request(1, 0x01, 0x1278, 2))
    assert parse_bit_reply(frame, 0x01, 2).bits == list(image.coils[0x78:0x7A])


def test_served_pia_matches_the_sep3_01_reply_where_the_state_says_the_same():
    served = parse_register_reply(reply(good(), PIA, 17), 0x04, 17).registers
    stated = parse_register_reply(hex_frames([SEP3_REPLY])[0], 0x04, 17).registers
    for index in (0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 15, 16):
        assert served[index] == stated[index], hex(0x1000 + index)


@pytest.mark.parametrize(
    ("request_hex", "code"),
    [
        ("01 04 10 11 00 02", 0x02),  # runs past PIA
        ("01 04 14 00 00 01", 0x02),  # not served
        ("01 01 12 8F 00 02", 0x02),  # runs past PIC
        ("01 01 14 00 00 50", 0x02),  # SFA: not served
        ("01 04 10 00 00 00", 0x03),  # count 0
        ("01 03 10 00 00 01", 0x01),  # holding registers
        ("01 06 13 01 00 10", 0x01),  # a write
    ],
)
def test_requests_outside_the_map_get_an_exception(request_hex, code):
    request = with_crc(bytes.fromhex(request_hex))
    assert serve(good(), request) == [build_exception_reply(1, request[1], code)]


@pytest.mark.parametrize(
    "request_bytes",
    [
        build_read_request(2, 0x04, 0x1000, 18),  # another slave
        build_read_request(0x80, 0x04, 0x1000, 18),  # outside 0..127
        b"\x01",
        build_read_request(1, 0x04, 0x1000, 18)[:-1] + b"\x00",  # bad CRC
    ],
)
def test_silence(request_bytes):
    assert serve(good(), request_bytes) == []


def test_source_none_is_silence():
    assert PROTOCOL.answer(build_read_request(1, 0x04, 0x1000, 18), lambda a: None) == []


def test_missing_key_is_refused_by_name():
    with pytest.raises(EncodeError, match=r"^missing cells_v: Seplos V3 needs it"):
        serve(good(cells_v=None), build_read_request(1, 0x04, 0x1000, 18))


# -- framing --------------------------------------------------------------------------------------


def test_framer_skips_garbage_and_bad_crc_and_joins_split_frames():
    pia = hex_frames([SEP3_REPLY])[0]
    pic = reply(good(), PIC)
    bad = bytearray(pic)
    bad[-1] ^= 0x40
    stream = b"\xff\x00" + bytes(bad) + pia + b"\x7e" + pic
    framer = PROTOCOL.reply_framer()
    out = framer.feed(stream[:20]) + framer.feed(stream[20:60]) + framer.feed(stream[60:])
    assert out == [pia, pic]
    assert framer.bad_frames >= 1 and framer.noise_bytes >= 3


def test_request_framer():
    request = build_read_request(1, 0x04, 0x1000, 18)
    framer = PROTOCOL.request_framer()
    assert framer.feed(b"\x00" + request[:3]) == []
    assert framer.feed(request[3:]) == [request]


# -- fuzzing and errors ---------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=230), max_size=4))
def test_random_frames_raise_only_decode_errors(frames):
    with contextlib.suppress(DecodeError):
        PROTOCOL.decode(frames)


@settings(max_examples=100)
@given(st.lists(st.integers(0, 0xFFFF), min_size=0x6A, max_size=0x6A))
def test_random_spa_registers_raise_only_decode_errors(spa):
    with contextlib.suppress(DecodeError):
        PROTOCOL.decode([build_register_reply(1, 0x04, spa)])


@given(st.data())
def test_truncated_or_flipped_replies_are_rejected(data):
    frame = hex_frames([SEP3_REPLY])[0]
    cut = data.draw(st.integers(5, len(frame) - 1))
    request = hex_frames([SEP3_REQUEST])[0]
    with pytest.raises(DecodeError, match=r"^frame 2: (length mismatch|CRC mismatch)"):
        PROTOCOL.decode([request, frame[:cut]])
    at = data.draw(st.integers(0, len(frame) - 1))
    flipped = bytearray(frame)
    flipped[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(DecodeError, match=r"^frame 2: "):
        PROTOCOL.decode([request, bytes(flipped)])


def spa_with_cell_count(count):
    registers = [0] * SPA.count
    registers[1] = count
    return build_register_reply(1, 0x04, registers)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (
            [build_read_request(1, 0x04, 0x1000, 18), build_exception_reply(1, 0x04, 0x81)],
            "frame 2: slave 1 answered function 04 with exception 81 (no history record)",
        ),
        (
            [build_exception_reply(1, 0x01, 0x02)],
            "frame 1: slave 1 answered function 01 with exception 02 (illegal data address)",
        ),
        (
            [build_exception_reply(1, 0x04, 0x02) + b"\x00"],
            "frame 1: exception reply (function byte 84) is 5 bytes, got 6",
        ),
        ([b"\x01\x04\x22"], "frame 1: 3 bytes is too short for a Modbus RTU frame"),
        (
            [with_crc(bytes.fromhex("01 03 10 00 00 12"))],
            "frame 1: function 03 is not a Seplos V3 read (01 read coils, 04 read input registers)",
        ),
        (
            [build_read_request(1, 0x04, 0x1000, 18), with_crc(bytes.fromhex("02 04 02 00 00"))],
            "frame 2: reply from slave 2 to a request to slave 1",
        ),
        (
            [build_read_request(1, 0x04, 0x1000, 18), *hex_frames([SEP3_REPLY])],
            "frame 2: byte count 34 is 17 registers, expected 18",
        ),
        (
            [build_read_request(1, 0x04, 0x1000, 17), reply(good(), PIC)],
            "frame 2: function mismatch: expected 04, got 01",
        ),
        (
            [build_read_request(1, 0x04, 0x1100, 10)],
            "frame 1: a read of PIB (0x1100) asks for 10 registers, bmslink decodes whole blocks (26)",
        ),
        (
            [build_read_request(1, 0x01, 0x1200, 0x80)],
            "frame 1: a read of PIC (0x1200) asks for 128 coils, bmslink decodes whole blocks (144)",
        ),
        (
            [build_register_reply(1, 0x04, [0] * 5)],
            "frame 1: a reply of 10 data bytes to function 04 matches no Seplos V3 block "
            "(PIA 34, PIA 36, PIB 52, SPA 212); give the read request before it",
        ),
        (
            [build_read_request(1, 0x04, 0x1300, 0x6A), spa_with_cell_count(17)],
            "frame 2: SPA: cell count (register 0x1301) is 17, expected 1..16",
        ),
        (
            [build_read_request(1, 0x04, 0x1000, 18)[:-1] + b"\x00"],
            "frame 1: CRC mismatch: expected ",
        ),
    ],
)
def test_errors_name_frame_and_cause(frames, message):
    with pytest.raises(DecodeError) as err:
        PROTOCOL.decode(frames)
    assert str(err.value).startswith(message), str(err.value)


def test_blocks_keep_their_sizes():
    assert (PIA.count, PIB.count, PIC.count, SPA.count) == (18, 26, 0x90, 0x6A)
