"""`bmslink sniff`: the engine on an injected clock, the CLI on virtual and simulated slcan buses."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import uuid
from collections.abc import Iterable

import can
import pytest
import typer
from can.interfaces import virtual
from rich.console import Console
from typer.testing import CliRunner

from bmslink.capture import read_capture
from bmslink.cli.sniff import register
from bmslink.clock import ManualClock
from bmslink.diagnose import sniff as sniff_module
from bmslink.diagnose.sniff import MAX_IDS, RECENT_INTERVALS, SniffEngine
from bmslink.profiles import PROFILES
from bmslink.profiles.base import assemble
from bmslink.sim.slcan import SimCanBus, SimSlcanAdapter
from bmslink.sim.traffic import profile_traffic
from bmslink.state import BatteryState
from bmslink.views.sniff import frame_line, live_view

PYLONTECH = PROFILES["pylontech"]
Frame = tuple[float, int, bool, bytes]

app = typer.Typer()
register(app)


@app.callback()
def _root() -> None:
    """A local app, as bmslink's own registers the command."""


def traffic(seconds: float, profile: str = "pylontech", start: float = 0.0) -> list[Frame]:
    return list(profile_traffic(PROFILES[profile], seconds, seed=5, start=start))


# -- the engine --------------------------------------------------------------------------------


def feed_all(engine: SniffEngine, clock: ManualClock, frames: Iterable[Frame]) -> None:
    for t, can_id, extended, data in frames:
        clock.set(t)
        engine.feed(can_id, extended, data)


def test_period_jitter_count_and_age_per_id():
    clock = ManualClock()
    engine = SniffEngine(clock, PYLONTECH)
    for t in (0.0, 0.9, 2.0, 2.9, 4.0):
        clock.set(t)
        engine.feed(0x355, False, b"\x1a\x00\x64\x00")
    clock.set(4.5)
    row = engine.rows[(0x355, False)]
    assert row.count == 5
    assert row.period == pytest.approx(1.0)
    assert row.jitter == pytest.approx(0.1)
    assert row.age(clock.now()) == pytest.approx(0.5)
    assert row.name == "soc_soh" and row.fields == {"soc_pct": 26.0, "soh_pct": 100.0}
    assert row.label == "0x355"


def test_period_is_recent_and_memory_is_bounded():
    clock = ManualClock()
    engine = SniffEngine(clock, PYLONTECH)
    t = 0.0
    for n in range(200):
        t += 5.0 if n < 100 else 1.0  # the battery changes pace
        clock.set(t)
        engine.feed(0x356, False, bytes(6))
    row = engine.rows[(0x356, False)]
    assert len(row.intervals) == RECENT_INTERVALS
    assert row.period == pytest.approx(1.0)
    for n in range(MAX_IDS + 88):
        engine.feed(0x1000 + n, True, b"\x00")
    assert len(engine.rows) == MAX_IDS
    assert engine.other_frames == 89  # 0x356 holds one of the rows
    assert engine.frames == 200 + MAX_IDS + 88


def test_state_is_the_assembly_of_the_last_frames():
    clock = ManualClock()
    engine = SniffEngine(clock, PYLONTECH)
    frames = traffic(10.0)
    feed_all(engine, clock, frames)
    last: dict[int, bytes] = {}
    for _, can_id, _, data in frames:
        last[can_id] = data
    decoded = [PYLONTECH.decode(i, d) for i, d in last.items()]
    battery = [(f.spec, f.fields) for f in decoded if f.spec.sender == "battery"]
    expected = BatteryState(**assemble(battery))
    state = engine.state()
    assert state is not None
    assert state.to_dict() == expected.to_dict()
    assert state.soc_pct is not None and state.charge_voltage_v is not None


def test_a_frame_that_stops_makes_its_values_absent():
    clock = ManualClock()
    engine = SniffEngine(clock, PYLONTECH)
    frames = traffic(30.0)
    feed_all(engine, clock, [f for f in frames if f[0] < 10.0])
    limits_last_seen = engine.rows[(0x351, False)].last_seen
    # 0x351 (limits) stops; the rest keeps coming for 20 s
    feed_all(engine, clock, [f for f in frames if f[0] >= 10.0 and f[1] != 0x351])
    row = engine.rows[(0x351, False)]
    assert clock.now() - row.last_seen > 10.0
    state = engine.state()
    assert state is not None
    assert state.charge_voltage_v is None and state.charge_current_a is None  # absent
    assert state.discharge_current_a is None
    assert state.soc_pct is not None and state.voltage_v is not None  # still fresh
    # just before expiry the value was still there
    assert engine.state(limits_last_seen + 9.9).charge_voltage_v is not None  # type: ignore[union-attr]
    clock.advance(11.0)  # everything stops
    assert engine.state() is None


def test_auto_detects_pylontech_and_decodes_earlier_frames():
    clock = ManualClock()
    engine = SniffEngine(clock)
    infos = []
    for t, can_id, extended, data in traffic(6.0):
        clock.set(t)
        infos.append(engine.feed(can_id, extended, data))
    events = engine.take_events()
    assert [e.kind for e in events] == ["profile_detected"]
    assert "profile detected: pylontech" in events[0].text
    assert engine.profile is PYLONTECH
    assert infos[0].name is None  # before detection: undecoded
    assert infos[-1].name is not None
    assert all(r.name is not None for r in engine.rows.values())  # decoded once detected
    state = engine.state()
    assert state is not None and state.manufacturer == "PYLON"
    assert engine.take_events() == []


def test_auto_follows_a_change_of_profile():
    clock = ManualClock()
    engine = SniffEngine(clock)
    feed_all(engine, clock, traffic(10.0))
    feed_all(engine, clock, traffic(60.0, "victron", start=10.0))
    kinds = [(e.kind, e.text.split(":")[1].split("(")[0].strip()) for e in engine.take_events()]
    assert kinds == [("profile_detected", "pylontech"), ("profile_changed", "pylontech -> victron")]
    assert engine.profile is PROFILES["victron"]


def test_a_fixed_profile_is_never_replaced():
    clock = ManualClock()
    engine = SniffEngine(clock, PYLONTECH)
    feed_all(engine, clock, traffic(60.0, "victron"))
    assert engine.take_events() == []
    assert engine.profile is PYLONTECH


def test_a_bad_payload_is_named_not_decoded():
    clock = ManualClock()
    engine = SniffEngine(clock, PYLONTECH)
    info = engine.feed(0x351, False, b"\x14\x02")
    assert info.name == "limits"
    assert info.error == "0x351 limits: wrong length 2, expected 6..8 bytes"
    assert engine.decode_errors == 1
    assert engine.state() is None
    assert frame_line(info, 0.0).endswith(
        "limits !0x351 limits: wrong length 2, expected 6..8 bytes"
    )
    unknown = engine.feed(0x123, False, b"\x01")
    assert unknown.name is None and unknown.error is None
    assert frame_line(unknown, 0.0) == "     0.000  0x123      [1]  01"


def test_error_frame_events_are_rate_limited():
    clock = ManualClock()
    engine = SniffEngine(clock)
    for _ in range(100):
        clock.advance(0.005)
        engine.error_frame(frozenset({"bus_error"}))
    events = engine.take_events()
    assert len(events) == 1 and events[0].kind == "error_frames"
    assert events[0].text.startswith("error frame (bus_error)")
    clock.advance(1.0)
    engine.error_frame()
    events = engine.take_events()
    assert [e.text for e in events] == ["100 more error frames, 101 in all"]
    assert engine.error_frames == 101 and engine.status == {"bus_error": 100}


def test_status_and_bus_state_events_on_change_only():
    clock = ManualClock()
    engine = SniffEngine(clock)
    engine.adapter_status(frozenset())
    engine.adapter_status(frozenset({"bus_error", "error_warning"}), "ACTIVE")
    engine.adapter_status(frozenset({"bus_error", "error_warning"}), "ACTIVE")
    engine.adapter_status(frozenset(), "PASSIVE")
    assert [e.text for e in engine.take_events()] == [
        "adapter status: bus_error, error_warning",
        "bus state: ACTIVE",
        "adapter status: clear",
        "bus state: PASSIVE",
    ]
    assert engine.status == {"bus_error": 2, "error_warning": 2}
    assert engine.bus_states == {"ACTIVE": 2, "PASSIVE": 1}


def test_live_view_shows_ids_and_the_battery():
    clock = ManualClock()
    engine = SniffEngine(clock)
    feed_all(engine, clock, traffic(5.0))
    for width in (80, 120, 200):
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(live_view(engine, width=width))
        text = console.export_text()
        assert "pylontech (auto" in text
        for label in ("0x351", "0x355", "0x35E", "soc_soh", "protection_alarms"):
            assert label in text, (width, label)
        assert "manufacturer" in text and '"PYLON"' in text  # the battery panel
        assert ("soc_pct=" in text) == (width >= 140)  # decoded fields only where they fit
        assert ("jitter" in text) == (width >= 100)
    clock.advance(30.0)
    console.print(live_view(engine))
    assert "no fresh battery frames" in console.export_text()


# -- the command on a virtual bus --------------------------------------------------------------


def run_sniff(args: list[str], frames: list[Frame], channel: str, *, errors: int = 0):
    """Run sniff on a virtual channel and send ``frames`` once its bus is open."""
    result = {}

    def invoke() -> None:
        result["r"] = CliRunner().invoke(app, ["sniff", "-I", "virtual", "-c", channel, *args])

    tx = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    thread = threading.Thread(target=invoke)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(virtual.channels.get(channel, [])) < 2 and thread.is_alive():
            assert time.monotonic() < deadline, "sniff never opened its bus"
            time.sleep(0.005)
        for _ in range(errors):
            tx.send(can.Message(is_error_frame=True, timestamp=1.0))
        for t, can_id, extended, data in frames:
            tx.send(
                can.Message(timestamp=t, arbitration_id=can_id, is_extended_id=extended, data=data)
            )
    finally:
        thread.join(20)
        tx.shutdown()
    assert not thread.is_alive(), "sniff did not stop"
    return result["r"]


@pytest.fixture
def channel() -> str:
    return f"sniff-{uuid.uuid4().hex[:8]}"


FRAME_LINE = re.compile(
    r"^\s*(?P<t>\d+\.\d{3})  (?P<id>0x[0-9A-F]+)\s+\[(?P<len>\d)\]  (?P<data>(?:[0-9A-F]{2} ?)*)"
    r"(?:\s+(?P<name>\w+)(?P<fields>.*))?$"
)


def parse_fields(text: str) -> dict:
    """``key=value`` pairs, values JSON (strings may hold spaces)."""
    pairs = re.split(r" (?=\w+=)", text.strip())
    return {k: json.loads(v) for k, v in (p.split("=", 1) for p in pairs if p)}


def frame_lines(stdout: str) -> list[re.Match]:
    lines = stdout.split("summary\n")[0].splitlines()
    return [m for line in lines if (m := FRAME_LINE.match(line)) and "--" not in line]


def test_line_log_values_equal_profile_decode(channel, tmp_path):
    frames = traffic(5.0, start=1_700_000_000.0)
    record = tmp_path / "bus.log"
    result = run_sniff(
        ["--profile", "pylontech", "--count", str(len(frames)), "--record", str(record)],
        frames,
        channel,
    )
    assert result.exit_code == 0, result.output
    matches = frame_lines(result.stdout)
    assert len(matches) == len(frames)
    for match, (_, can_id, _, data) in zip(matches, frames, strict=True):
        assert int(match["id"], 16) == can_id
        assert bytes.fromhex(match["data"]) == data and int(match["len"]) == len(data)
        decoded = PYLONTECH.decode(can_id, data)
        assert match["name"] == decoded.spec.name
        assert parse_fields(match["fields"]) == decoded.fields
    # the recording reads back, frame for frame, through bmslink's own candump reader
    batches = list(read_capture(str(record)))
    got = [
        (float(b.timestamps[r]), int(b.ids[r]), bool(b.extended[r]), b.payload(r))
        for b in batches
        for r in range(len(b))
    ]
    assert [(i, e, d) for _, i, e, d in got] == [(i, e, d) for _, i, e, d in frames]
    assert [t for t, *_ in got] == pytest.approx([t for t, *_ in frames], abs=1e-6)
    assert not list(tmp_path.glob(".*partial*"))
    assert f"recorded {len(frames)} frames to {record}" in result.stderr


def test_record_asc_reads_back_identical_frames(channel, tmp_path):
    frames = traffic(3.0, start=1_700_000_000.0)
    record = tmp_path / "bus.asc"
    result = run_sniff(
        ["--plain", "--count", str(len(frames)), "--record", str(record)], frames, channel, errors=2
    )
    assert result.exit_code == 0, result.output
    from bmslink.capture import CaptureReport

    report = CaptureReport(str(record))
    batches = list(read_capture(str(record), report))
    got = [
        (int(b.ids[r]), bool(b.extended[r]), b.payload(r)) for b in batches for r in range(len(b))
    ]
    assert got == [(i, e, d) for _, i, e, d in frames]
    assert report.error_frames == 2  # error frames are recorded too


def test_auto_detection_is_announced(channel):
    frames = traffic(5.0)
    result = run_sniff(["--count", str(len(frames))], frames, channel)
    assert result.exit_code == 0, result.output
    announced = [line for line in result.stdout.splitlines() if "-- profile detected" in line]
    assert len(announced) == 1 and "profile detected: pylontech" in announced[0]
    after = result.stdout.split(announced[0])[1]
    names = {m["name"] for m in frame_lines(after)}
    assert {"limits", "soc_soh", "measurements", "manufacturer"} <= names
    assert "profile pylontech (auto" in result.stdout.split("summary\n")[1]


def test_count_stops_and_the_summary_lists_each_id(channel):
    frames = traffic(10.0)
    result = run_sniff(["--count", "10", "-p", "pylontech"], frames, channel)
    assert result.exit_code == 0, result.output
    assert len(frame_lines(result.stdout)) == 10
    summary = result.stdout.split("summary\n")[1].splitlines()
    assert "frames 10 " in summary[0]
    ids = {line.split()[0] for line in summary[1:]}
    assert ids == {f"0x{i:03X}" for _, i, _, _ in frames[:10]}
    assert sum(int(line.split("count ")[1].split()[0]) for line in summary[1:]) == 10


def test_error_frames_are_logged_and_counted(channel):
    frames = traffic(1.0)
    result = run_sniff(["--count", str(len(frames))], frames, channel, errors=3)
    assert result.exit_code == 0, result.output
    assert "-- error frame: bit-rate mismatch, termination or wiring" in result.stdout
    assert "error frames 3" in result.stdout.split("summary\n")[1]


def test_duration_stops_a_silent_bus(channel):
    result = CliRunner().invoke(app, ["sniff", "-I", "virtual", "-c", channel, "--duration", "0.3"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("summary\n")
    assert "frames 0 " in result.stdout


def test_terminal_gets_the_live_view(channel, monkeypatch):
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))
    frames = traffic(3.0)
    result = run_sniff(["--count", str(len(frames))], frames, channel)
    assert result.exit_code == 0, result.output
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout)
    assert "bmslink sniff" in screen and "battery (fresh frames only)" in screen
    assert not frame_lines(screen)  # no line log on a terminal
    assert "summary\n" in screen
    plain = run_sniff(["--plain", "--count", "3"], frames, f"{channel}-p")
    assert "bmslink sniff" not in plain.stdout and len(frame_lines(plain.stdout)) == 3


def test_ctrl_c_exits_0_with_the_summary_and_a_complete_recording(channel, tmp_path, monkeypatch):
    from bmslink.diagnose.live import BusWatcher

    real_recv = BusWatcher.recv
    calls = []

    def recv(self, timeout):
        msg = real_recv(self, timeout)
        if msg is not None:
            calls.append(msg)
            if len(calls) == 5:
                raise KeyboardInterrupt
        return msg

    monkeypatch.setattr(BusWatcher, "recv", recv)
    frames = traffic(3.0, start=1_700_000_000.0)
    record = tmp_path / "bus.log"
    result = run_sniff(["-p", "pylontech", "--record", str(record)], frames, channel)
    assert result.exit_code == 0, result.output
    assert len(frame_lines(result.stdout)) == 4  # the fifth was interrupted on its way
    assert "summary\n" in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["bus.log"]
    got = [b.payload(r) for b in read_capture(str(record)) for r in range(len(b))]
    assert got == [d for *_, d in frames[:5]]  # everything read was recorded


def test_unknown_record_suffix_is_refused_before_the_bus_opens(tmp_path):
    # the bus could not open either: exit 2 for the suffix proves it was checked first
    missing = str(tmp_path / "ttyACM9")
    target = tmp_path / "bus.pcap"
    result = CliRunner().invoke(
        app, ["sniff", "-I", "slcan", "-c", missing, "--record", str(target), "--count", "1"]
    )
    assert result.exit_code == 2
    assert "--record" in result.stderr and "unknown suffix '.pcap'" in result.stderr
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_a_bus_that_cannot_open_is_one_line_exit_1(tmp_path):
    missing = str(tmp_path / "ttyACM9")
    record = tmp_path / "bus.log"
    result = CliRunner().invoke(
        app,
        [
            "sniff",
            "-I",
            "slcan",
            "-c",
            missing,
            "-b",
            "500000",
            "-o",
            "sleep_after_open=0",
            "--record",
            str(record),
        ],
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"cannot open slcan {missing} at 500000 bit/s:")
    assert "serial port" in lines[0]
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []  # the partial recording went with it


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-I", "socketcan", "-c", "can0", "--listen-only"], "socketcan: cannot open listen-only"),
        (["-I", "virtual", "-o", "nonsense"], "bus option 'nonsense': expected key=value"),
        (["-I", "virtual", "-p", "solarix"], "unknown profile 'solarix'"),
    ],
)
def test_usage_errors_exit_2(args, message):
    result = CliRunner().invoke(app, ["sniff", *args, "--duration", "0.1"])
    assert result.exit_code == 2
    assert message in result.stderr and result.stdout == ""


def test_detection_cadence_constants_hold_together():
    assert sniff_module.DETECT_FEWEST_FRAMES <= sniff_module.DETECT_MIN_FRAMES
    assert sniff_module.CONFIDENT > 0.5


# -- the command on the simulated slcan adapter ------------------------------------------------


def test_sniff_over_slcan_decodes_pylontech_without_transmitting():
    wire = profile_traffic(PYLONTECH, 3600.0, seed=5, start=0.0)
    with SimSlcanAdapter(SimCanBus(wire, bitrate=500_000, time_scale=20.0)) as adapter:
        result = CliRunner().invoke(
            app,
            [
                "sniff",
                "-I",
                "slcan",
                "-c",
                adapter.path,
                "-b",
                "500000",
                "-o",
                "sleep_after_open=0",
                "--listen-only",
                "--count",
                "30",
            ],
        )
        commands = list(adapter.commands)
        transmitted = list(adapter.transmitted)
    assert result.exit_code == 0, result.output
    assert "profile detected: pylontech" in result.stdout
    matches = frame_lines(result.stdout)
    assert len(matches) == 30
    decoded = [m for m in matches if m["name"]]
    assert decoded, "nothing was decoded after detection"
    for m in decoded:
        frame = PYLONTECH.decode(int(m["id"], 16), bytes.fromhex(m["data"]))
        assert parse_fields(m["fields"]) == frame.fields
    assert "L" in commands and "O" not in commands  # opened listen-only
    assert transmitted == []
    assert not any(c[:1] in ("t", "T") for c in commands)


def test_sniff_on_slcan_without_a_bit_rate_opens_at_the_battery_rate():
    # an slcan adapter must be told a rate before it opens; without -b sniff uses 500k
    wire = profile_traffic(PYLONTECH, 3600.0, seed=6, start=0.0)
    with SimSlcanAdapter(SimCanBus(wire, bitrate=500_000, time_scale=20.0)) as adapter:
        result = CliRunner().invoke(
            app,
            ["sniff", "-I", "slcan", "-c", adapter.path, "-o", "sleep_after_open=0", "-n", "5"],
        )
        commands = list(adapter.commands)
    assert result.exit_code == 0, result.output
    assert "S6" in commands  # 500 kbit/s
    assert len(frame_lines(result.stdout)) == 5
