"""The shared hunting framer: noise, broken frames and false starts never cost a good frame."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.bms.framing import modbus_reply_framer
from bmslink.bms.modbus_rtu import with_crc


def read_reply(slave: int, data: bytes) -> bytes:
    return with_crc(bytes((slave, 0x03, len(data))) + data)


GOOD = read_reply(1, bytes(range(40)))


def test_a_false_long_header_holds_the_reply_until_the_line_goes_quiet() -> None:
    framer = modbus_reply_framer()
    assert framer.feed(b"\x07\x03\xfa" + GOOD) == []  # waits for a 255-byte frame
    assert framer.pending == 3 + len(GOOD)
    assert framer.idle() == [GOOD]
    assert framer.pending == 0 and framer.noise_bytes == 3


def test_idle_drops_an_unfinished_frame_and_keeps_nothing() -> None:
    framer = modbus_reply_framer()
    assert framer.feed(GOOD[:-5]) == []
    assert framer.idle() == []
    assert framer.pending == 0
    assert framer.feed(GOOD) == [GOOD], "the next frame starts clean"


@settings(max_examples=300, deadline=None)
@given(
    noise=st.binary(max_size=40),
    frames=st.lists(
        st.tuples(st.integers(1, 247), st.binary(min_size=2, max_size=120)), min_size=1, max_size=3
    ),
    chunk=st.integers(1, 64),
)
def test_frames_after_any_noise_arrive_by_the_end_of_the_silence(
    noise: bytes, frames: list[tuple[int, bytes]], chunk: int
) -> None:
    """Noise, then replies back to back, fed in chunks; after the silence every reply has
    arrived, in order. Noise may add a CRC-valid frame of its own; it could only swallow a real
    one by forming a CRC-valid frame with its first bytes (1 in 65,536), which hypothesis does
    not construct."""
    wire_frames = [read_reply(slave, data) for slave, data in frames]
    wire = noise + b"".join(wire_frames)
    framer = modbus_reply_framer()
    got: list[bytes] = []
    for at in range(0, len(wire), chunk):
        got += framer.feed(wire[at : at + chunk])
    got += framer.idle()
    it = iter(got)
    assert all(any(f == g for g in it) for f in wire_frames), (got, wire_frames)
    assert framer.pending == 0
