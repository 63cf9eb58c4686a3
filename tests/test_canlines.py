import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.canlines import CanFrame, parse_line
from bmslink.errors import DecodeError

DATA = bytes.fromhex("1402740E740ECC01")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "(1700000000.000000) can0 351#1402740E740ECC01",
            CanFrame(0x351, DATA, False, 1.7e9, "can0"),
        ),
        (
            "(1700000000.5) vcan0 351#1402740E740ECC01 R",
            CanFrame(0x351, DATA, False, 1.7e9 + 0.5, "vcan0"),
        ),
        ("  can0  351   [8]  14 02 74 0E 74 0E CC 01", CanFrame(0x351, DATA, False, None, "can0")),
        (
            "(12.25)  can0  351   [8]  14 02 74 0E 74 0E CC 01",
            CanFrame(0x351, DATA, False, 12.25, "can0"),
        ),
        ("351#1402740E740ECC01", CanFrame(0x351, DATA)),
        ("351#", CanFrame(0x351, b"")),
        ("can0  305   [0]", CanFrame(0x305, b"", False, None, "can0")),
        ("00004210#A509307500", CanFrame(0x4210, bytes.fromhex("A509307500"), True)),
    ],
)
def test_accepted_forms(line, expected):
    assert parse_line(line) == expected


@pytest.mark.parametrize("line", ["", "   ", "# comment", "// note"])
def test_blank_and_comment_lines(line):
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("351#1402740", "odd number of hex digits"),
        ("351#14027G0E", "non-hex character 'G'"),
        ("351#1402740E740ECC0100", "9 data bytes"),
        ("800#00", "above 0x7FF"),
        ("3510#00", "use 3 hex digits"),
        ("351#R", "remote frame"),
        ("351##1020304", "CAN FD"),
        ("20000004#0000000000000000", "error frame"),
        ("can0  351   [3]  14 02", "DLC [3] but 2 data bytes"),
        ("(abc) can0 351#00", "bad timestamp"),
        ("hello world", "cannot parse"),
        ("can0 351#00 extra", "cannot parse"),
    ],
)
def test_rejected_lines_name_the_problem(line, message):
    with pytest.raises(DecodeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_line(line)


@given(st.text(max_size=80))
def test_any_text_parses_or_raises_decode_error(line):
    try:
        frame = parse_line(line)
    except DecodeError:
        return
    if frame is not None:
        assert 0 <= frame.can_id <= 0x1FFFFFFF and len(frame.data) <= 8


@given(st.integers(0, 0x7FF), st.binary(max_size=8))
def test_every_frame_survives_all_three_forms(can_id, data):
    hexdata = data.hex().upper()
    spaced = " ".join(f"{b:02X}" for b in data)
    forms = [
        f"(1.5) can0 {can_id:03X}#{hexdata}",
        f"  can0  {can_id:03X}   [{len(data)}]  {spaced}",
        f"{can_id:03X}#{hexdata}",
    ]
    for form in forms:
        frame = parse_line(form)
        assert frame is not None and (frame.can_id, frame.data) == (can_id, data)
