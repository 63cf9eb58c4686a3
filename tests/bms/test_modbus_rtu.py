"""Modbus RTU codec: CRC vectors, request/reply round trips, exception replies, fuzzing."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.bms.modbus_rtu import (
    EXCEPTION_NAMES,
    BitReply,
    ModbusException,
    ReadRequest,
    RegisterReply,
    build_bit_reply,
    build_exception_reply,
    build_read_request,
    build_register_reply,
    crc16_modbus,
    frame_from_hex,
    parse_bit_reply,
    parse_read_reply,
    parse_read_request,
    parse_register_reply,
    with_crc,
)
from bmslink.errors import DecodeError, EncodeError

SEP3_REQUEST = "01.04.10.00.00.11.34.C6"
SEP3_REPLY = (
    "01.04.22.14.CD.FF.77.6B.40.80.E8.01.22.03.40.03.E7.00.0A.0C.FF.0B.7F.0D.00.0C.FF"
    ".0B.81.0B.7E.00.00.00.B4.00.B4.D3.2E"
)
PB01_REQUEST = "01 03 12 90 00 02 C1 5E"


# -- CRC ------------------------------------------------------------------------------------------


def test_crc_check_value():
    assert crc16_modbus(b"123456789") == 0x4B37  # CRC-16/MODBUS catalogue check value


@pytest.mark.parametrize("text", [SEP3_REQUEST, SEP3_REPLY, PB01_REQUEST])
def test_crc_of_public_vectors(text):
    frame = frame_from_hex(text)
    assert crc16_modbus(frame[:-2]).to_bytes(2, "little") == frame[-2:]
    assert crc16_modbus(frame) == 0  # a frame with its CRC appended has a zero residue


def test_sep3_01_request_parses_and_rebuilds():
    frame = frame_from_hex(SEP3_REQUEST)
    assert parse_read_request(frame) == ReadRequest(1, 0x04, 0x1000, 17)
    assert build_read_request(1, 0x04, 0x1000, 0x11) == frame


def test_pb_01_request_parses_and_rebuilds():
    frame = frame_from_hex(PB01_REQUEST)
    assert parse_read_request(frame) == ReadRequest(1, 0x03, 0x1290, 2)
    assert build_read_request(1, 3, 0x1290, 2) == frame


def test_sep3_01_reply_registers():
    slave, registers = parse_register_reply(frame_from_hex(SEP3_REPLY), 0x04, 17)
    assert slave == 1
    assert registers[:4] == [0x14CD, 0xFF77, 0x6B40, 0x80E8]
    assert registers[-3:] == [0x0000, 0x00B4, 0x00B4]
    assert len(registers) == 17


def test_crc_error_names_both_crcs_in_wire_order():
    frame = bytearray(frame_from_hex(SEP3_REQUEST))
    frame[-1] = 0xC7
    with pytest.raises(DecodeError, match=r"^CRC mismatch: expected 34C6, got 34C7$"):
        parse_read_request(bytes(frame))


def test_hex_parsing_accepts_separators_and_names_bad_digits():
    assert frame_from_hex("01:04 10-00,00.11") == bytes.fromhex("010410000011")
    assert frame_from_hex("0x0104") == b"\x01\x04"
    with pytest.raises(DecodeError, match="not hex: 'z'"):
        frame_from_hex("01 0z")
    with pytest.raises(DecodeError, match="odd number of hex digits"):
        frame_from_hex("010")


# -- replies --------------------------------------------------------------------------------------


def test_register_reply_length_mismatch_names_the_byte_count():
    frame = frame_from_hex(SEP3_REPLY)[:-3] + frame_from_hex(SEP3_REPLY)[-2:]
    with pytest.raises(DecodeError, match="byte count 34 needs a 39-byte frame, got 38 bytes"):
        parse_register_reply(frame, 0x04)


def test_register_reply_count_mismatch():
    with pytest.raises(DecodeError, match="byte count 34 is 17 registers, expected 18"):
        parse_register_reply(frame_from_hex(SEP3_REPLY), 0x04, 18)


def test_function_mismatch_on_a_good_crc():
    frame = build_register_reply(1, 0x03, [1, 2])
    with pytest.raises(DecodeError, match="function mismatch: expected 04, got 03"):
        parse_register_reply(frame, 0x04)


def test_corrupted_function_byte_is_a_crc_error():
    frame = bytearray(build_register_reply(1, 0x04, [1, 2]))
    frame[1] = 0x03
    with pytest.raises(DecodeError, match="CRC mismatch"):
        parse_register_reply(bytes(frame), 0x04)


def test_odd_byte_count_and_zero_byte_count():
    with pytest.raises(DecodeError, match="byte count 3 is odd"):
        parse_register_reply(with_crc(bytes([1, 4, 3, 0, 0, 0])), 0x04)
    with pytest.raises(DecodeError, match="byte count 0"):
        parse_register_reply(with_crc(bytes([1, 4, 0])), 0x04)


def test_bit_reply_count_and_padding():
    bits = [True, False, True] + [False] * 10 + [True]
    frame = build_bit_reply(7, 0x01, bits)
    assert frame[2] == 2  # 14 bits in 2 bytes
    assert parse_bit_reply(frame, 0x01, 14) == BitReply(7, bits)
    assert len(parse_bit_reply(frame).bits) == 16  # without a count: every bit, padding too
    with pytest.raises(DecodeError, match="byte count 2 does not fit 17 bits"):
        parse_bit_reply(frame, 0x01, 17)


def test_parse_read_reply_dispatches_on_function():
    assert parse_read_reply(build_bit_reply(1, 1, [True]), 1, 1) == BitReply(1, [True])
    assert parse_read_reply(build_register_reply(1, 4, [9]), 4, 1) == RegisterReply(1, [9])


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x01, "illegal function"),
        (0x02, "illegal data address"),
        (0x03, "illegal data value"),
        (0x04, "slave device failure"),
        (0x06, "slave device busy"),
        (0x0B, "gateway target device failed to respond"),
        (0x42, "unknown exception code"),
    ],
)
def test_exception_reply_raises_modbus_exception_with_the_code_name(code, name):
    frame = build_exception_reply(3, 0x04, code)
    with pytest.raises(ModbusException) as info:
        parse_register_reply(frame, 0x04)
    assert info.value.code == code
    assert info.value.name == name
    assert info.value.slave == 3
    assert str(info.value) == f"slave 3 answered function 04 with exception {code:02X} ({name})"
    assert isinstance(info.value, DecodeError)


def test_exception_reply_names_can_be_extended():
    frame = build_exception_reply(1, 0x04, 0x81)
    with pytest.raises(ModbusException, match=r"81 \(no history record\)"):
        parse_register_reply(frame, 0x04, names={**EXCEPTION_NAMES, 0x81: "no history record"})


def test_exception_reply_for_another_function_and_wrong_length():
    with pytest.raises(DecodeError, match="exception reply to function 03, expected a reply to 04"):
        parse_register_reply(build_exception_reply(1, 0x03, 2), 0x04)
    with pytest.raises(DecodeError, match=r"exception reply .* is 5 bytes, got 6"):
        parse_register_reply(with_crc(bytes([1, 0x84, 2, 0])), 0x04)


def test_short_frames():
    with pytest.raises(DecodeError, match="frame too short: 4 bytes"):
        parse_register_reply(b"\x01\x04\x00\x00", 0x04)
    with pytest.raises(DecodeError, match="a read request is 8 bytes, got 7"):
        parse_read_request(frame_from_hex(SEP3_REQUEST)[:-1])


def test_request_for_a_write_function_is_not_a_read_request():
    frame = with_crc(bytes([1, 0x06, 0x10, 0x00, 0x00, 0x05]))
    with pytest.raises(DecodeError, match="function 06 is not a read function"):
        parse_read_request(frame)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((256, 4, 0, 1), "slave address 256"),
        ((1, 6, 0, 1), "function 06 is not a read function"),
        ((1, 4, 0, 126), "count 126 is outside 1..125"),
        ((1, 1, 0, 2001), "count 2001 is outside 1..2000"),
        ((1, 4, 0x10000, 1), "address 65536"),
        ((1, 4, 0xFFFF, 2), "runs past FFFF"),
    ],
)
def test_build_request_refuses_what_modbus_cannot_carry(args, message):
    with pytest.raises(EncodeError, match=message):
        build_read_request(*args)


def test_build_reply_refuses_bad_values():
    with pytest.raises(EncodeError, match="register 1 value 65536"):
        build_register_reply(1, 4, [0, 0x10000])
    with pytest.raises(EncodeError, match="answers bits"):
        build_register_reply(1, 1, [0])
    with pytest.raises(EncodeError, match="answers registers"):
        build_bit_reply(1, 4, [True])


# -- properties -----------------------------------------------------------------------------------

SLAVES = st.integers(0, 255)


@st.composite
def requests(draw):
    function = draw(st.sampled_from([1, 2, 3, 4]))
    top = 2000 if function in (1, 2) else 125
    count = draw(st.integers(1, top))
    address = draw(st.integers(0, 0x10000 - count))
    return ReadRequest(draw(SLAVES), function, address, count)


@given(requests())
def test_request_round_trip(request):
    assert parse_read_request(build_read_request(*request)) == request


@given(SLAVES, st.sampled_from([3, 4]), st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125))
def test_register_reply_round_trip(slave, function, registers):
    frame = build_register_reply(slave, function, registers)
    assert parse_register_reply(frame, function, len(registers)) == (slave, registers)


@given(SLAVES, st.sampled_from([1, 2]), st.lists(st.booleans(), min_size=1, max_size=2000))
def test_bit_reply_round_trip(slave, function, bits):
    frame = build_bit_reply(slave, function, bits)
    assert parse_bit_reply(frame, function, len(bits)) == (slave, bits)


def _parse_all(frame, function, count):
    for parse in (
        lambda: parse_read_request(frame),
        lambda: parse_read_reply(frame, function),
        lambda: parse_read_reply(frame, function, count),
    ):
        with contextlib.suppress(DecodeError):
            parse()


@given(st.binary(max_size=300), st.sampled_from([1, 2, 3, 4]), st.integers(1, 125))
def test_random_bytes_raise_only_decode_errors(data, function, count):
    _parse_all(data, function, count)


@st.composite
def mutated_frames(draw):
    function = draw(st.sampled_from([1, 3, 4]))
    kind = draw(st.sampled_from(["request", "reply", "exception"]))
    if kind == "request":
        frame = build_read_request(1, function, draw(st.integers(0, 0x1000)), 8)
    elif kind == "exception":
        frame = build_exception_reply(1, function, draw(st.integers(0, 255)))
    elif function == 1:
        frame = build_bit_reply(1, 1, draw(st.lists(st.booleans(), min_size=1, max_size=64)))
    else:
        regs = draw(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=40))
        frame = build_register_reply(1, function, regs)
    data = bytearray(frame)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "drop"]))
        if op == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            data = data[: draw(st.integers(0, len(data)))]
        elif op == "insert":
            data.insert(draw(st.integers(0, len(data))), draw(st.integers(0, 255)))
        elif op == "drop" and data:
            del data[draw(st.integers(0, len(data) - 1))]
    return function, bytes(data)


@given(mutated_frames(), st.integers(1, 64))
def test_mutated_frames_raise_only_decode_errors(case, count):
    function, frame = case
    _parse_all(frame, function, count)
