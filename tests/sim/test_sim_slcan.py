"""The simulated slcan adapter, driven through python-can's real slcan driver (and raw pyserial
for protocol details): traffic, wrong bit rate, missing termination, silent bus, a battery that
stops, host transmits, status flags."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import can
import pytest
import serial

from bmslink.clock import ManualClock
from bmslink.profiles import get_profile
from bmslink.sim.slcan import BusFaults, Flag, Frame, SimCanBus, SimSlcanAdapter
from bmslink.sim.traffic import profile_traffic

T0 = 100.0  # the manual clock's reading when the adapter opens


def pylontech(seconds: float) -> list[Frame]:
    return list(profile_traffic(get_profile("pylontech"), seconds, start=0.0))


@contextmanager
def simulated(
    traffic: list[Frame], *, adapter_rate: int = 500_000, listen_only: bool = False, **bus_kw
) -> Iterator[tuple[SimSlcanAdapter, can.BusABC, ManualClock]]:
    """Adapter on a manual clock, opened by python-can; bus time 0 is the clock at T0."""
    clock = ManualClock(T0)
    with SimSlcanAdapter(SimCanBus(traffic, **bus_kw), clock=clock.now) as adapter:
        bus = can.Bus(
            interface="slcan",
            channel=adapter.path,
            bitrate=adapter_rate,
            sleep_after_open=0,
            listen_only=listen_only,
        )
        wait_for(lambda: adapter.bus_time() is not None)  # O seen: bus time 0 is T0
        try:
            yield adapter, bus, clock
        finally:
            bus.shutdown()


def wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Until the adapter thread has caught up with the clock (not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the adapter did not catch up"
        time.sleep(0.002)


def elapse(adapter: SimSlcanAdapter, clock: ManualClock, bus_s: float, expected: int) -> None:
    """Move bus time to ``bus_s`` and wait until the adapter has played ``expected`` frames."""
    clock.set(T0 + bus_s / adapter.bus.time_scale)
    wait_for(lambda: adapter.elapsed_frames == expected)


def receive_all(bus: can.BusABC, limit: int = 10_000, timeout: float = 0.15) -> list[can.Message]:
    out = []
    while len(out) < limit and (msg := bus.recv(timeout)) is not None:
        out.append(msg)
    return out


def as_frames(messages: list[can.Message]) -> list[tuple[int, bool, bytes]]:
    return [(m.arbitration_id, m.is_extended_id, bytes(m.data)) for m in messages]


def ask(bus: can.BusABC, command: str, timeout: float = 1.0) -> str:
    """``command``'s answer through python-can's slcan bus, setting frame lines aside for recv
    as its get_version does; an ``N`` first consumes answers to earlier commands."""

    def answer(accept: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = bus._read(max(0.0, deadline - time.monotonic()))
            assert line is not None, f"no answer to {command!r}"
            if line[0] in "tT" and len(line) > 2:
                bus._queue.put_nowait(line)
            elif accept(line):
                return line

    bus._write("N")
    answer(lambda line: line == "NSIM1\r")
    bus._write(command)
    return answer(lambda line: True)


def status(bus: can.BusABC) -> int:
    line = ask(bus, "F")
    assert line[0] == "F" and line.endswith("\r") and len(line) == 4, line
    return int(line[1:3], 16)


# -- traffic --------------------------------------------------------------------------------------


def test_pylontech_arrives_in_order_in_scaled_real_time() -> None:
    traffic = pylontech(3.0)
    bus_sim = SimCanBus(traffic, bitrate=500_000, time_scale=20)
    with SimSlcanAdapter(bus_sim) as adapter:
        bus = can.Bus(interface="slcan", channel=adapter.path, bitrate=500_000, sleep_after_open=0)
        try:
            started = time.monotonic()
            got = receive_all(bus, limit=len(traffic), timeout=1.0)
            took = time.monotonic() - started
        finally:
            bus.shutdown()
    assert as_frames(got) == [(i, e, d) for _, i, e, d in traffic]
    assert adapter.delivered == len(traffic)
    assert {f[1] for f in traffic} >= {0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E}
    assert took < 1.5  # 3 s of traffic at time_scale 20 is 0.15 s, not 3 s
    assert adapter.commands[:3] == ["C", "S6", ""]  # python-can's open sequence


def test_time_scale_delivers_only_what_is_due() -> None:
    traffic = pylontech(3.0)
    due = [f for f in traffic if f[0] <= 1.0]
    with simulated(traffic, time_scale=10) as (adapter, bus, clock):
        assert receive_all(bus, timeout=0.1) == []  # bus time stands still
        elapse(adapter, clock, 1.0, len(due))  # 0.1 s of clock is 1 s of bus
        assert as_frames(receive_all(bus)) == [(i, e, d) for _, i, e, d in due]


def test_extended_frames_and_loop_replay_an_endless_generator() -> None:
    def endless() -> Iterator[Frame]:  # the adapter must read it lazily
        for n in itertools.count():
            yield (0.1 * n, 0x1806E5F4, True, bytes([n % 256]))

    # loop_s = 0.25 s: frames at 0.0, 0.1, 0.2 then again at 0.25, 0.35, 0.45, 0.5 ...
    with SimSlcanAdapter(SimCanBus(endless(), loop_s=0.25), clock=ManualClock(T0).now) as adapter:
        pass  # never opened: nothing read, no hang on close
    clock = ManualClock(T0)
    with SimSlcanAdapter(SimCanBus(endless(), loop_s=0.25), clock=clock.now) as adapter:
        bus = can.Bus(interface="slcan", channel=adapter.path, bitrate=500_000, sleep_after_open=0)
        wait_for(lambda: adapter.bus_time() is not None)
        try:
            elapse(adapter, clock, 0.5, 7)
            got = receive_all(bus)
        finally:
            bus.shutdown()
    assert [(m.arbitration_id, m.is_extended_id, m.data[0]) for m in got] == [
        (0x1806E5F4, True, n) for n in (0, 1, 2, 0, 1, 2, 0)
    ]


def test_bad_traffic_is_raised_on_close_naming_the_frame() -> None:
    traffic = [(0.0, 0x351, False, b"\x01"), (0.5, 0x800, False, b"")]
    adapter = SimSlcanAdapter(SimCanBus(traffic), clock=ManualClock(T0).now)
    with serial.Serial(adapter.path, timeout=1) as port:
        port.write(b"S6\rO\r")
        assert port.read(2) == b"\r\r"
        assert port.read_until(b"\r") == b"t351101\r"
    wait_for(lambda: adapter.error is not None)
    with pytest.raises(ValueError, match=r"traffic frame 1 .*id out of range for 11-bit"):
        adapter.close()


# -- faults ---------------------------------------------------------------------------------------


def test_wrong_rate_shows_errors_only_then_scanning_to_the_right_rate_finds_traffic() -> None:
    traffic = pylontech(6.0)
    first = [f for f in traffic if f[0] <= 3.0]
    with simulated(traffic, adapter_rate=250_000, bitrate=500_000) as (adapter, bus, clock):
        assert len(first) >= 16  # enough errors to reach error passive
        elapse(adapter, clock, 3.0, len(first))
        assert receive_all(bus, timeout=0.1) == []
        assert adapter.frames_seen_at_wrong_rate == len(first) and adapter.delivered == 0
        flags = status(bus)
        assert flags & Flag.BUS_ERROR and flags & Flag.ERROR_PASSIVE and flags & Flag.ERROR_WARNING
        assert status(bus) == 0  # reading cleared them, and no frame came since

        before = len(adapter.commands)
        bus.set_bitrate(500_000)
        assert ask(bus, "V") == "V1013\r"  # the adapter has seen set_bitrate's commands
        assert adapter.commands[before : before + 4] == ["C", "S6", "", "O"]
        elapse(adapter, clock, 6.0, len(traffic))
        got = receive_all(bus)
    assert as_frames(got) == [(i, e, d) for _, i, e, d in traffic[len(first) :]]


def test_wrong_rate_on_a_silent_bus_shows_nothing_at_all() -> None:
    faults = BusFaults(silent=True)
    traffic = pylontech(3.0)
    with simulated(traffic, adapter_rate=250_000, faults=faults) as (adapter, bus, clock):
        elapse(adapter, clock, 3.0, len(traffic))
        assert status(bus) == 0
        assert adapter.frames_seen_at_wrong_rate == 0


def test_few_errors_set_bus_error_but_not_error_passive() -> None:
    traffic = pylontech(3.0)[:5]
    with simulated(traffic, adapter_rate=125_000) as (adapter, bus, clock):
        elapse(adapter, clock, 3.0, 5)
        assert status(bus) == Flag.BUS_ERROR  # 5 errors: counter 40, still error active


def run_unterminated(seed: int) -> tuple[SimSlcanAdapter, list[tuple[int, bool, bytes]], int]:
    traffic = pylontech(8.0)
    faults = BusFaults(termination=False, error_rate=0.25)
    with simulated(traffic, faults=faults, seed=seed) as (adapter, bus, clock):
        elapse(adapter, clock, 8.0, len(traffic))
        wait_for(lambda: adapter.delivered + adapter.lost_to_errors == len(traffic))
        got = as_frames(receive_all(bus, limit=adapter.delivered, timeout=1.0))
        flags = status(bus)
    return adapter, got, flags


def test_missing_termination_loses_a_seeded_share_of_frames() -> None:
    traffic = [(i, e, d) for _, i, e, d in pylontech(8.0)]
    adapter, got, flags = run_unterminated(seed=3)
    assert 0 < adapter.lost_to_errors < len(traffic) // 2
    assert len(got) == adapter.delivered == len(traffic) - adapter.lost_to_errors
    it = iter(traffic)
    assert all(frame in it for frame in got)  # what arrives is the traffic, in order, with gaps
    assert flags & Flag.BUS_ERROR
    assert adapter.frames_seen_at_wrong_rate == 0

    again, got_again, _ = run_unterminated(seed=3)
    assert (again.lost_to_errors, got_again) == (adapter.lost_to_errors, got)
    other, _, _ = run_unterminated(seed=4)
    assert other.lost_to_errors + other.delivered == len(traffic)


def test_silent_bus_shows_nothing() -> None:
    traffic = pylontech(3.0)
    with simulated(traffic, faults=BusFaults(silent=True)) as (adapter, bus, clock):
        elapse(adapter, clock, 3.0, len(traffic))
        assert receive_all(bus, timeout=0.1) == []
        assert ask(bus, "F") == "F00\r"
        assert adapter.delivered == adapter.lost_to_errors == 0


def test_battery_stops_after_its_time() -> None:
    traffic = pylontech(4.0)
    before = [(i, e, d) for t, i, e, d in traffic if t <= 1.5]
    assert 0 < len(before) < len(traffic)
    faults = BusFaults(battery_stops_after_s=1.5)
    with simulated(traffic, faults=faults) as (adapter, bus, clock):
        elapse(adapter, clock, 4.0, len(traffic))
        assert as_frames(receive_all(bus)) == before
        assert adapter.delivered == len(before)
        assert status(bus) == 0


def test_frames_due_while_the_channel_is_closed_are_gone() -> None:
    traffic = pylontech(4.0)
    with simulated(traffic) as (adapter, bus, clock):
        n1 = sum(1 for f in traffic if f[0] <= 1.0)
        elapse(adapter, clock, 1.0, n1)
        assert ask(bus, "C") == "\r"
        elapse(adapter, clock, 3.0, sum(1 for f in traffic if f[0] <= 3.0))
        assert ask(bus, "O") == "\r"
        elapse(adapter, clock, 4.0, len(traffic))
        got = as_frames(receive_all(bus))
    expected = [(i, e, d) for t, i, e, d in traffic if t <= 1.0 or t > 3.0]
    assert got == expected


# -- host transmit and status ---------------------------------------------------------------------


def test_host_send_lands_on_the_bus() -> None:
    with simulated([]) as (adapter, bus, clock):
        clock.advance(0.5)
        bus.send(can.Message(arbitration_id=0x305, is_extended_id=False, data=b"\x01\x02"))
        assert ask(bus, "V") == "V1013\r"  # N and V come after the send's z
        bus.send(can.Message(arbitration_id=0x1234567, is_extended_id=True, data=b""))
        wait_for(lambda: len(adapter.transmitted) == 2)
        assert status(bus) == 0
    assert adapter.transmitted == [
        (0.5, 0x305, False, b"\x01\x02"),
        (0.5, 0x1234567, True, b""),
    ]
    assert "t30520102" in adapter.commands and "T012345670" in adapter.commands


def test_listen_only_refuses_to_send() -> None:
    with simulated([], listen_only=True) as (adapter, bus, _):
        assert adapter.listen_only
        bus.send(can.Message(arbitration_id=0x305, is_extended_id=False, data=b"\x00"))
        wait_for(lambda: "t305100" in adapter.commands)
        assert ask(bus, "t305100") == "\a"
    assert adapter.transmitted == []


def test_send_at_the_wrong_rate_is_queued_but_never_acknowledged() -> None:
    with simulated([], adapter_rate=250_000) as (adapter, bus, _):
        assert ask(bus, "t305100") == "z\r"
        flags = status(bus)
        assert flags & Flag.BUS_ERROR and flags & Flag.ERROR_PASSIVE
        assert status(bus) == 0  # the F read cleared them
    assert adapter.transmitted == []


def test_unread_frames_overflow_into_overrun_flags() -> None:
    traffic = [(0.0, 0x351, False, bytes(8))] * 12_000
    clock = ManualClock(T0)
    with (
        SimSlcanAdapter(SimCanBus(traffic), clock=clock.now) as adapter,
        serial.Serial(adapter.path, timeout=1) as port,
    ):
        port.write(b"S6\rO\r")
        wait_for(lambda: adapter.elapsed_frames == len(traffic))
        assert adapter.overruns > 0
        assert adapter.delivered + adapter.overruns == len(traffic)
        port.write(b"F\r")
        data = b""
        while not data.endswith(b"F09\r"):
            chunk = port.read(max(1, port.in_waiting))
            assert chunk, data[-40:]
            data += chunk
        assert data.count(b"t3518") == adapter.delivered


# -- protocol -------------------------------------------------------------------------------------

PROTOCOL = [
    # (commands sent in order, answers expected in order)
    (["V", "v", "N"], ["V1013\r", "v1013\r", "NSIM1\r"]),
    (["O", "F", "t1230"], ["\a", "\a", "\a"]),  # no rate yet: cannot open; closed: no F, no send
    (["S9", "S", "S66", "s12", "s12G4"], ["\a"] * 5),
    (
        ["S6", "Y2", "y5", "Z1", "Z0", "Z2", "O", "O", "S4", "Y2", "sABCD"],
        ["\r"] * 5 + ["\a", "\r", "\a", "\a", "\a", "\a"],
    ),
    (["S6", "O", "F", "C", "C", "F", ""], ["\r", "\r", "F00\r", "\r", "\r", "\a", "\r"]),
    (
        [
            "S6",
            "O",
            "t7FF0",
            "t8000",
            "t1231",
            "t12310",
            "t1239" + "00" * 9,
            "t12+1AA",
            "T1FFFFFFF0",
            "T200000000",
        ],
        ["\r", "\r", "z\r", "\a", "\a", "\a", "\a", "\a", "Z\r", "\a"],
    ),
    (["S6", "O", "r1230", "d1230", "Q", "X1", "M00000000"], ["\r", "\r"] + ["\a"] * 5),
]


def read_answers(port: serial.Serial, count: int) -> list[str]:
    answers: list[str] = []
    buf = b""
    while len(answers) < count:
        byte = port.read(1)
        assert byte, f"answers so far {answers}"
        buf += byte
        if byte in (b"\r", b"\a"):
            answers.append(buf.decode())
            buf = b""
    return answers


@pytest.mark.parametrize(("commands", "answers"), PROTOCOL)
def test_protocol_answers(commands: list[str], answers: list[str]) -> None:
    with (
        SimSlcanAdapter(SimCanBus(), clock=ManualClock(T0).now) as adapter,
        serial.Serial(adapter.path, timeout=1) as port,
    ):
        port.write("".join(c + "\r" for c in commands).encode())
        assert read_answers(port, len(answers)) == answers
        assert adapter.commands == commands


def test_btr_rate_never_matches_the_bus() -> None:
    traffic = pylontech(3.0)
    assert len(traffic) >= 16  # 8 per error: error warning at 12, error passive at 16
    clock = ManualClock(T0)
    with (
        SimSlcanAdapter(SimCanBus(traffic), clock=clock.now) as adapter,
        serial.Serial(adapter.path, timeout=1) as port,
    ):
        port.write(b"s001C\rO\r")  # BTR0/BTR1 for 500k on an 8 MHz SJA1000, still "unknown"
        assert read_answers(port, 2) == ["\r", "\r"]
        assert adapter.bitrate is None
        clock.advance(3.0)
        wait_for(lambda: adapter.elapsed_frames == len(traffic))
        assert adapter.frames_seen_at_wrong_rate == len(traffic)
        port.write(b"F\r")
        assert read_answers(port, 1) == ["FA4\r"]


def test_noise_without_carriage_return_is_dropped() -> None:
    with (
        SimSlcanAdapter(SimCanBus(), clock=ManualClock(T0).now) as adapter,
        serial.Serial(adapter.path, timeout=1) as port,
    ):
        port.write(b"x" * 100)
        assert read_answers(port, 1) == ["\a"]
        port.write(b"V\r")
        assert read_answers(port, 1) == ["V1013\r"]
        assert adapter.commands == ["V"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bitrate": 0}, "bitrate"),
        ({"time_scale": 0}, "time_scale"),
        ({"loop_s": -1.0}, "loop_s"),
        ({"faults": BusFaults(error_rate=1.5)}, "error_rate"),
        ({"faults": BusFaults(battery_stops_after_s=-1)}, "battery_stops_after_s"),
    ],
)
def test_bad_bus_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimCanBus(**kwargs)


def test_a_bus_feeds_one_adapter() -> None:
    bus_sim = SimCanBus()
    with SimSlcanAdapter(bus_sim), pytest.raises(RuntimeError, match="already feeds"):
        SimSlcanAdapter(bus_sim)
