"""The ASCII frame: public vectors, the documented errata, LENGTH edge cases, fuzz."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.errors import DecodeError
from bmslink.rs485.frame import (
    AsciiFrame,
    AsciiFramer,
    FrameError,
    Rtn,
    chksum,
    length_field,
    parse_frame,
    rtn_text,
)

# Frames from shared/reference/public-vectors.md (E1, E2, E10, SEP2-01, SEP2-02, PACE-01) and
# real JK-BMS captures in Pylon LV mode (dnc392/rs485-bms-probe tests/samples/hardware).
VERIFIED = [
    "~20024642E00202FD33\r",
    "~20014642E00201FD35\r",
    "~20014600C06E11010F0D450D440D450D440D450D440D3E0D450D4A0D4A0D4B0D4A0D4A0D4A0D4A050BC30BC30BC30BCD0BCD0000C725BF6802C3500002E553\r",
    "~20024600B014026EF05AA0022BFDD5C0F915\r",
    "~20004642E00200FD37\r",
    "~20004644E00200FD35\r",
    "~200046510000FDAE\r",
    "~200046470000FDA9\r",
    "~2000464F0000FD9A\r",
    "~2000460010960001100CD70CE90CF40CD60CEF0CE50CE10CDC0CE90CF00CE80CEF0CEA0CDA0CDE0CD8060BA60BA00B970BA60BA50BA2FD5C14A0344E0A426803134650004603E8149F0000000000000000DC6C\r",
    "~25014642E00201FD30\r",
    "~25014600F07A0001100CC70CC80CC70CC70CC70CC50CC60CC70CC70CC60CC70CC60CC60CC70CC60CC7060B9B0B990B990B990BB30BBCFF1FCCCD12D303286A008C2710E1E4\r",
    "~201246610000FDAA\r",
    "~20024600800800000000FC22\r",
    "~20024600D01270805460064006A4C0F9E5\r",
]


@pytest.mark.parametrize("raw", VERIFIED)
def test_public_frames_verify_and_re_encode_byte_for_byte(raw: str) -> None:
    frame = parse_frame(raw)
    assert frame.encode() == raw.encode()
    assert parse_frame(raw.rstrip("\r")) == frame  # the trailing CR is optional


def test_e1_fields() -> None:
    frame = parse_frame("~20024642E00202FD33\r")
    assert (frame.ver, frame.adr, frame.cid1, frame.cid2, frame.info) == (
        0x20,
        0x02,
        0x46,
        0x42,
        b"\x02",
    )


def test_e4_documented_checksum_example_is_rejected_as_printed() -> None:
    with pytest.raises(FrameError, match="checksum mismatch: expected FC71, got FC72") as info:
        parse_frame("~1203400456ABCEFEFC72\r")
    assert info.value.rtn == Rtn.CHKSUM_ERROR
    with pytest.raises(FrameError) as fixed:  # the corrected checksum passes; its LENGTH does not
        parse_frame("~1203400456ABCEFEFC71\r")
    assert fixed.value.rtn != Rtn.CHKSUM_ERROR
    assert chksum(b"1203400456ABCEFE") == 0xFC71


@pytest.mark.parametrize(
    ("lenid", "field"),
    [
        (18, 0xD012),
        (2, 0xE002),
        (0, 0x0000),
        (0x06E, 0xC06E),
        (0x07A, 0xF07A),
        (0x07E, 0xB07E),
        (0x0F1, 0x00F1),
        (0x0FF, 0x20FF),
    ],
)
def test_length_field(lenid: int, field: int) -> None:
    """E5 and its edge cases: a nibble sum that is a multiple of 16 gives LCHKSUM 0."""
    assert length_field(lenid) == field


def test_length_field_refuses_more_than_12_bits() -> None:
    with pytest.raises(ValueError, match="12 bits"):
        length_field(0x1000)


def test_lchksum_error_names_both_values() -> None:
    good = AsciiFrame(0x20, 2, 0x46, 0x42, b"\x02").encode().decode()
    bad_length = good[:9] + "F002" + good[13:-5]
    bad = "~" + bad_length[1:] + f"{chksum(bad_length[1:].encode()):04X}"
    with pytest.raises(
        FrameError, match="LCHKSUM mismatch in LENGTH F002: expected E, got F"
    ) as info:
        parse_frame(bad)
    assert info.value.rtn == Rtn.LCHKSUM_ERROR
    assert info.value.adr == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "must start with '~'"),
        ("20024642E00202FD33", "must start with '~'"),
        ("~2002", "too short"),
        ("~20024642E0G202FD33", "byte 11 of the frame \\(0-based\\) is b'G'"),
        ("~20024642E00202FD34", "checksum mismatch: expected FD33, got FD34"),
    ],
)
def test_bad_frames_name_the_problem(raw: str, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        parse_frame(raw)


def test_lenid_must_match_info_length() -> None:
    body = b"20024642C00402"  # LENID 4, but only 2 INFO characters
    with pytest.raises(FrameError, match="LENID says 4 INFO characters, the frame has 2"):
        parse_frame(b"~" + body + b"%04X" % chksum(body))


def test_rtn_text() -> None:
    assert rtn_text(2) == "RTN 02 (CHKSUM error)"
    assert rtn_text(0x55) == "RTN 55 (not a defined code)"


frames = st.builds(
    AsciiFrame,
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=300),
)


@given(frames)
def test_round_trip(frame: AsciiFrame) -> None:
    assert parse_frame(frame.encode()) == frame


@given(st.binary(max_size=200))
def test_fuzz_random_bytes_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_frame(data)


@given(frames, st.data())
def test_fuzz_mutated_frames_are_rejected_or_still_valid(
    frame: AsciiFrame, data: st.DataObject
) -> None:
    raw = bytearray(frame.encode())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    try:
        parsed = parse_frame(bytes(raw))
    except DecodeError:
        return
    # a mutation that still parses must have kept every check consistent
    assert parsed.encode().rstrip(b"\r").upper() == bytes(raw).rstrip(b"\r").upper()


@given(st.lists(frames, min_size=1, max_size=5), st.data())
def test_framer_finds_every_frame_across_noise_and_chunking(
    sent: list[AsciiFrame], data: st.DataObject
) -> None:
    noise = st.binary(max_size=20).map(lambda b: b.replace(b"~", b"").replace(b"\r", b""))
    stream = b"".join(data.draw(noise) + f.encode() for f in sent) + data.draw(noise)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer = AsciiFramer()
    found: list[bytes] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        found += framer.feed(stream[a:b])
    assert [parse_frame(f) for f in found] == sent


def test_framer_drops_a_truncated_frame_and_reads_the_next() -> None:
    framer = AsciiFramer()
    good = b"~20024642E00202FD33\r"
    assert framer.feed(b"\x00\xff~200246" + good + b"junk") == [good]
    assert framer.truncated_frames == 1
    assert framer.noise_bytes == 2 + 4
    framer.feed(b"~2002")
    framer.reset()  # the line went idle mid-frame
    assert framer.truncated_frames == 2
    assert framer.feed(good) == [good]


def test_framer_drops_oversized_frames() -> None:
    framer = AsciiFramer()
    assert framer.feed(b"~" + b"0" * 5000 + b"\r~20024642E00202FD33\r") == [
        b"~20024642E00202FD33\r"
    ]
    assert framer.oversized_frames == 1
