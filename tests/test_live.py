"""diagnose/live.py: opening, watching and rate-scanning a bus (virtual and simulated slcan)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import can
import numpy as np
import pytest
from can.interfaces import virtual

from bmslink.diagnose.live import (
    SCAN_BITRATES,
    BusSpec,
    BusWatcher,
    LiveBusError,
    LogRecorder,
    RecordError,
    error_flags,
    listen_only_options,
    parse_bus_options,
    scan_bitrates,
    slcan_status,
)
from bmslink.profiles import PROFILES
from bmslink.sim.slcan import SimCanBus, SimSlcanAdapter
from bmslink.sim.traffic import profile_traffic


class TickClock:
    """Injected time that moves ``step`` on every look, optionally doing something each time."""

    def __init__(self, step: float, on_tick=None) -> None:
        self.t = 100.0
        self.step = step
        self.on_tick = on_tick

    def now(self) -> float:
        self.t += self.step
        if self.on_tick is not None:
            self.on_tick()
        return self.t


@pytest.fixture
def channel() -> Iterator[str]:
    name = f"live-{uuid.uuid4().hex[:8]}"
    yield name
    assert name not in virtual.channels, "a bus was left open on the channel"


def sender(channel: str) -> can.BusABC:
    return can.Bus(interface="virtual", channel=channel)


def data(can_id: int, payload: bytes, extended: bool = False) -> can.Message:
    return can.Message(arbitration_id=can_id, data=payload, is_extended_id=extended)


# -- observe -----------------------------------------------------------------------------------


def test_observe_counts_data_and_error_frames(channel):
    bus = BusSpec("virtual", channel).open()
    tx = sender(channel)
    try:
        tx.send(can.Message(is_error_frame=True))
        tx.send(data(0x351, bytes(range(8))))
        tx.send(can.Message(arbitration_id=0x355, is_remote_frame=True, dlc=4))
        tx.send(data(0x18FF50E5, b"\x01\x02", extended=True))
        tx.send(can.Message(is_error_frame=True))
        tx.send(data(0x355, b"\x1a\x00\x64\x00"))
        clock = TickClock(0.1)
        watcher = BusWatcher(bus, clock)
        seen = watcher.observe(1.0, bitrate=500_000)
    finally:
        tx.shutdown()
        bus.shutdown()
    assert [(i, e, d) for _, i, e, d in seen.frames] == [
        (0x351, False, bytes(range(8))),
        (0x18FF50E5, True, b"\x01\x02"),
        (0x355, False, b"\x1a\x00\x64\x00"),
    ]
    assert seen.error_frames == 2
    assert watcher.skipped_frames == 1  # the remote frame
    assert seen.bitrate == 500_000
    times = [t for t, _, _, _ in seen.frames]
    assert seen.started < times[0] <= times[1] <= times[2] <= seen.ended  # the clock's times
    assert seen.seconds == pytest.approx(seen.ended - seen.started)
    assert seen.seconds >= 1.0
    batch = seen.batch()
    assert batch.ids.tolist() == [0x351, 0x18FF50E5, 0x355]
    assert batch.extended.tolist() == [False, True, False]
    assert batch.payload(2) == b"\x1a\x00\x64\x00"
    np.testing.assert_array_equal(batch.timestamps, times)


def test_observe_stops_at_max_frames_and_counts_per_stretch(channel):
    bus = BusSpec("virtual", channel).open()
    tx = sender(channel)
    try:
        for n in range(6):
            tx.send(data(0x356, bytes([n])))
        tx.send(can.Message(is_error_frame=True))
        watcher = BusWatcher(bus, TickClock(0.001))
        first = watcher.observe(100.0, max_frames=4)
        second = watcher.observe(0.01)
    finally:
        tx.shutdown()
        bus.shutdown()
    assert [d for _, _, _, d in first.frames] == [bytes([n]) for n in range(4)]
    assert first.error_frames == 0
    assert [d for _, _, _, d in second.frames] == [b"\x04", b"\x05"]
    assert second.error_frames == 1
    assert watcher.error_frames == 1 and watcher.frames == 6


def test_socketcan_error_classes_become_status_flags(channel):
    bus_off = can.Message(is_error_frame=True, arbitration_id=0x40)
    passive = can.Message(
        is_error_frame=True, arbitration_id=0x04, data=[0, 0x10, 0, 0, 0, 0, 0, 0]
    )
    warning_and_overflow = can.Message(
        is_error_frame=True, arbitration_id=0x04 | 0x80, data=[0, 0x09, 0, 0, 0, 0, 0, 0]
    )
    assert error_flags(bus_off) == {"bus_off"}
    assert error_flags(passive) == {"error_passive"}
    assert error_flags(warning_and_overflow) == {"error_warning", "overrun", "bus_error"}
    assert error_flags(can.Message(is_error_frame=True)) == frozenset()
    bus = BusSpec("virtual", channel).open()
    tx = sender(channel)
    try:
        for msg in (bus_off, passive, passive):
            tx.send(msg)
        seen = BusWatcher(bus, TickClock(0.5)).observe(1.0)
    finally:
        tx.shutdown()
        bus.shutdown()
    assert seen.error_frames == 3
    assert seen.status == {"bus_off": 1, "error_passive": 2}


class StatefulBus(virtual.VirtualBus):
    """A virtual bus whose driver reports a state, as pcan or ixxat do."""

    @property
    def state(self) -> can.BusState:
        return can.BusState.PASSIVE


def test_bus_state_is_polled_where_the_interface_reports_one(channel):
    plain = BusSpec("virtual", channel).open()
    stateful = StatefulBus(channel=channel)
    try:
        clock = TickClock(0.3)
        assert BusWatcher(plain, clock).observe(1.0).bus_states == {}
        reported = []
        watcher = BusWatcher(stateful, clock, 0.5, on_status=lambda f, s: reported.append((f, s)))
        seen = watcher.observe(2.0)
    finally:
        stateful.shutdown()
        plain.shutdown()
    assert seen.bus_states["PASSIVE"] >= 3  # every 0.5 s of a 2 s stretch, and at its end
    assert set(reported) == {(frozenset(), "PASSIVE")}
    assert watcher.bus_state == "PASSIVE"


def test_on_message_sees_every_frame_read(channel):
    bus = BusSpec("virtual", channel).open()
    tx = sender(channel)
    seen: list[can.Message] = []
    try:
        tx.send(can.Message(is_error_frame=True))
        tx.send(data(0x35C, b"\xc0\x00"))
        msg = BusWatcher(bus, TickClock(0.1), on_message=seen.append).recv(1.0)
    finally:
        tx.shutdown()
        bus.shutdown()
    assert msg is not None and msg.arbitration_id == 0x35C
    assert [m.is_error_frame for m in seen] == [True, False]


def test_an_adapter_that_never_answers_f_is_not_asked_forever(channel, monkeypatch):
    from bmslink.diagnose import live

    asked = []
    monkeypatch.setattr(live, "_is_slcan", lambda bus: True)
    monkeypatch.setattr(live, "slcan_status", lambda bus: asked.append(1))
    bus = BusSpec("virtual", channel).open()
    try:
        seen = BusWatcher(bus, TickClock(0.2), status_interval_s=0.5).observe(2.5)
    finally:
        bus.shutdown()
    assert len(asked) == live.UNANSWERED_POLLS
    assert seen.status == {}


# -- options and opening -----------------------------------------------------------------------


def test_parse_bus_options_types_values():
    options = parse_bus_options(
        [
            "tty_baudrate=115200",
            "rtscts=true",
            "fd=off",
            "timeout=0.5",
            "serial=A1B2",
            "app_name = CANalyzer",
            "mask=0x7FF",
            "sleep_after_open=0",
        ]
    )
    assert options == {
        "tty_baudrate": 115200,
        "rtscts": True,
        "fd": False,
        "timeout": 0.5,
        "serial": "A1B2",
        "app_name": "CANalyzer",
        "mask": 0x7FF,
        "sleep_after_open": 0,
    }
    assert parse_bus_options([]) == {}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("novalue", "bus option 'novalue': expected key=value"),
        ("=5", "bus option '=5': expected key=value"),
        ("two words=1", "bus option 'two words=1': expected key=value"),
        ("bitrate=250000", "bus option 'bitrate=250000': use --bitrate for bitrate"),
        ("channel=can1", "bus option 'channel=can1': use --channel for channel"),
    ],
)
def test_parse_bus_options_names_the_bad_item(item, message):
    with pytest.raises(LiveBusError) as caught:
        parse_bus_options(["timeout=1", item])
    assert str(caught.value).startswith(message)


def test_parse_bus_options_refuses_a_key_given_twice():
    with pytest.raises(LiveBusError, match="bus option 'timeout' given twice"):
        parse_bus_options(["timeout=1", "timeout=2"])


def test_open_failure_names_interface_channel_cause_and_hint(tmp_path):
    missing = str(tmp_path / "ttyACM9")
    spec = BusSpec("slcan", missing, 500_000, {"sleep_after_open": 0})
    with pytest.raises(LiveBusError) as caught:
        spec.open()
    message = str(caught.value)
    assert message.startswith(f"cannot open slcan {missing} at 500000 bit/s: ")
    assert "No such file or directory" in message
    assert "give the adapter's serial port" in message
    assert "\n" not in message and "Traceback" not in message


def test_open_failure_at_another_rate_names_that_rate(tmp_path):
    spec = BusSpec("slcan", str(tmp_path / "x"), 500_000, {"sleep_after_open": 0})
    with pytest.raises(LiveBusError, match="at 250000 bit/s"):
        spec.open(250_000)


def test_unknown_interface_lists_the_known_ones():
    with pytest.raises(LiveBusError) as caught:
        BusSpec("slcann", "/dev/ttyACM0").open()
    assert "unknown interface 'slcann'" in str(caught.value)
    assert "socketcan" in str(caught.value) and "slcan" in str(caught.value)


def test_reopenable_interfaces():
    assert BusSpec("slcan").reopenable and BusSpec("gs_usb").reopenable
    assert BusSpec("virtual").reopenable
    assert not BusSpec("socketcan", "can0").reopenable


def test_listen_only_options():
    assert listen_only_options("slcan") == {"listen_only": True}
    assert listen_only_options("pcan") == {"state": can.BusState.PASSIVE}
    assert listen_only_options("virtual") == {}
    with pytest.raises(LiveBusError) as caught:
        listen_only_options("socketcan")
    assert "listen-only on" in str(caught.value) and "ip link" in str(caught.value)
    with pytest.raises(LiveBusError, match="gs_usb: cannot open listen-only"):
        listen_only_options("gs_usb")


# -- scanning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountingSpec(BusSpec):
    """Records the rates it is opened at."""

    def open(self, bitrate: int | None = None) -> can.BusABC:
        opened_rates.append(bitrate)
        return super().open(bitrate)


opened_rates: list[int | None] = []


def test_scan_bitrates_reopens_a_virtual_bus_at_each_rate(channel):
    tx = sender(channel)
    opened_rates.clear()
    frame = data(0x351, bytes(8))

    def traffic() -> None:  # every look at the clock, one frame goes out on the wire
        tx.send(frame)

    try:
        results = scan_bitrates(
            CountingSpec("virtual", channel, 500_000), seconds=1.0, clock=TickClock(0.1, traffic)
        )
    finally:
        tx.shutdown()
    assert opened_rates == list(SCAN_BITRATES)
    assert list(results) == list(SCAN_BITRATES)
    for rate, seen in results.items():
        assert seen.bitrate == rate
        assert seen.frames and {i for _, i, _, _ in seen.frames} == {0x351}
        assert seen.seconds >= 1.0
    # every bus it opened was shut down: the channel fixture checks nothing is left


def test_scan_bitrates_shuts_down_a_given_non_slcan_bus(channel):
    spec = BusSpec("virtual", channel)
    bus = spec.open()
    results = scan_bitrates(spec, (125_000,), seconds=0.2, clock=TickClock(0.1), bus=bus)
    assert list(results) == [125_000] and results[125_000].frames == []
    assert bus._is_shutdown


def test_scan_bitrates_refuses_socketcan():
    with pytest.raises(LiveBusError) as caught:
        scan_bitrates(BusSpec("socketcan", "can0"))
    assert "cannot scan bit rates on socketcan" in str(caught.value)
    assert "ip link" in str(caught.value)


# -- recording ---------------------------------------------------------------------------------


def test_recorder_writes_a_partial_file_then_renames(tmp_path):
    target = tmp_path / "bus.log"
    recorder = LogRecorder(str(target))
    msg = data(0x355, b"\x1a\x00\x64\x00")
    msg.timestamp = 1_700_000_000.5
    msg.channel = "my bus"  # a space would split the candump line
    recorder.write(msg)
    assert recorder.partial.exists() and not target.exists()
    assert recorder.finish() == target
    assert target.read_text() == "(1700000000.500000) my_bus 355#1A006400 R\n"
    assert not recorder.partial.exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bus.pcap", "unknown suffix '.pcap'; python-can writes .asc, .blf"),
        ("bus", "unknown suffix '(none)'"),
        ("missing/bus.log", "does not exist"),
    ],
)
def test_recorder_refuses_what_it_cannot_write(tmp_path, name, message):
    with pytest.raises(RecordError) as caught:
        LogRecorder(str(tmp_path / name))
    assert message in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_recorder_discard_leaves_nothing(tmp_path):
    recorder = LogRecorder(str(tmp_path / "bus.asc"))
    recorder.discard()
    assert list(tmp_path.iterdir()) == []


# -- the simulated slcan adapter ---------------------------------------------------------------

PYLONTECH = PROFILES["pylontech"]


def pylontech_bus(bitrate: int, **kwargs) -> SimCanBus:
    traffic = profile_traffic(PYLONTECH, 3600.0, seed=3, start=0.0, jitter_s=0.0)
    return SimCanBus(traffic, bitrate=bitrate, time_scale=20.0, **kwargs)


def slcan_spec(adapter: SimSlcanAdapter, bitrate: int = 500_000) -> BusSpec:
    return BusSpec("slcan", adapter.path, bitrate, {"sleep_after_open": 0})


def test_slcan_status_reports_bus_error_on_a_wrong_rate_bus():
    with SimSlcanAdapter(pylontech_bus(250_000)) as adapter:
        bus = slcan_spec(adapter).open()
        try:
            deadline = time.monotonic() + 5
            while adapter.frames_seen_at_wrong_rate < 3 and time.monotonic() < deadline:
                assert bus.recv(0.05) is None  # nothing readable at the wrong rate
            status = slcan_status(bus)
            seen = BusWatcher(bus).observe(0.3)
        finally:
            bus.shutdown()
    assert status is not None and status & 0x80  # Lawicel bit 7: bus error
    assert seen.frames == []
    assert seen.status["bus_error"] >= 1


def test_slcan_status_is_none_off_slcan(channel):
    bus = BusSpec("virtual", channel).open()
    try:
        assert slcan_status(bus) is None
    finally:
        bus.shutdown()


def wait_for(condition, seconds: float = 5.0) -> None:
    """Wait (not a timing assertion) until the simulated adapter got somewhere."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the simulated adapter never got there"
        time.sleep(0.01)


def test_slcan_status_polls_lose_no_frame():
    """Frames read while waiting for F's answer go back to python-can, in order."""
    expected = [
        (i, d) for _, i, _, d in profile_traffic(PYLONTECH, 60, seed=3, start=0.0, jitter_s=0.0)
    ]
    with SimSlcanAdapter(pylontech_bus(500_000)) as adapter:
        bus = slcan_spec(adapter).open()
        try:
            wait_for(lambda: adapter.delivered >= 10)  # frames wait unread ahead of F's answer
            assert slcan_status(bus) == 0
            watcher = BusWatcher(bus, status_interval_s=0.0)  # and F before every read
            seen = watcher.observe(30.0, max_frames=40)
        finally:
            bus.shutdown()
        polls = sum(1 for c in adapter.commands if c == "F")
    assert polls >= 20
    assert [(i, d) for _, i, _, d in seen.frames] == expected[:40]
    assert seen.status == {}


def test_frames_from_the_previous_rate_do_not_count_at_the_next():
    with SimSlcanAdapter(pylontech_bus(250_000)) as adapter:
        spec = slcan_spec(adapter, 250_000)
        bus = spec.open()
        try:
            wait_for(lambda: adapter.delivered >= 10)  # heard at 250k, not yet read
            results = scan_bitrates(spec, (125_000,), seconds=0.3, bus=bus)
        finally:
            bus.shutdown()
    assert results[125_000].frames == []
    assert results[125_000].status["bus_error"] >= 1


def test_scan_bitrates_finds_250k_on_a_250k_bus_from_500k():
    with SimSlcanAdapter(pylontech_bus(250_000)) as adapter:
        spec = slcan_spec(adapter, 500_000)
        bus = spec.open()
        try:
            results = scan_bitrates(spec, seconds=0.4, bus=bus)
            after = adapter.bitrate
        finally:
            bus.shutdown()
        commands = list(adapter.commands)
    assert list(results) == list(SCAN_BITRATES)
    assert len(results[250_000].frames) > 10
    assert {i for _, i, _, _ in results[250_000].frames} >= {0x351, 0x355, 0x356}
    assert results[250_000].status == {}
    for rate in (500_000, 125_000, 1_000_000):
        assert results[rate].frames == []
        assert results[rate].status["bus_error"] >= 1, rate
    # rates changed on the open port (C, Sn, O), set back to the spec's rate at the end
    assert [c for c in commands if c.startswith("S")] == ["S6", "S6", "S5", "S4", "S8", "S6"]
    assert after == 500_000
