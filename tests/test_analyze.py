"""`bmslink analyze`: the engine against the per-frame decoder, chunk invariance, gaps, alarms, CLI."""

from __future__ import annotations

import inspect
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import bmslink.capture as capture_module
import bmslink.cli.analyze as cli_module
from bmslink.capture import FrameBatch, candump_line, concat, parse_candump_block, write_capture
from bmslink.cli.analyze import register
from bmslink.diagnose import analyze as engine
from bmslink.diagnose.analyze import Analysis, Analyzer, alarm_names, analyze
from bmslink.errors import DecodeError
from bmslink.profiles import PROFILES, get_profile
from bmslink.profiles.base import AlarmBits, AlarmPairs, Bits, Coded, Flag, FrameSpec, Num, Profile
from bmslink.profiles.expiry import FRAME_EXPIRY_S, frame_expiry
from bmslink.roles.inverter import InverterRole
from bmslink.sim.traffic import drifting_state, profile_traffic
from bmslink.state import BatteryState

PYLON = get_profile("pylontech")
SMA = get_profile("sma")
T0 = 1_700_000_000.0


# -- helpers --------------------------------------------------------------------------------------


def with_alarms(voltage_class: str = "lv"):
    """A drifting battery whose alarms and warnings come and go (and one long episode)."""
    base = drifting_state(voltage_class)

    def state_at(t: float) -> BatteryState:
        alarms = ["high_temperature"] if 30 <= t % 97 < 45 else []
        warnings = ["low_voltage", "cell_imbalance"] if 60 <= t < 140 else []
        if 100 <= t < 104:
            warnings = [*warnings, "high_charge_current"]
        return base(t).merged({"alarms": alarms, "warnings": warnings})

    return state_at


def traffic(profile: Profile, seconds: float, **kwargs) -> list[tuple[float, int, bool, bytes]]:
    return list(profile_traffic(profile, seconds, seed=5, start=T0, **kwargs))


def batch_of(frames) -> FrameBatch:
    return FrameBatch.from_frames(frames)


def chunks(batch: FrameBatch, size: int):
    for lo in range(0, len(batch), size):
        yield capture_module.take(batch, np.arange(lo, min(lo + size, len(batch))))


def run(batch: FrameBatch, profile: Profile, size: int | None = None, **kwargs):
    """Analyse in chunks of ``size`` frames; returns the analysis and {bin: row}."""
    rows: dict[int, np.ndarray] = {}

    def sink(bins: np.ndarray, matrix: np.ndarray) -> None:
        for b, row in zip(bins.tolist(), matrix, strict=True):
            assert b not in rows, f"bin {b} written twice"
            assert not rows or b > max(rows), "bins out of order"
            rows[b] = row.copy()

    batches = chunks(batch, size) if size else [batch]
    result = analyze(batches, profile, rows=sink, **kwargs)
    return result, rows


def numeric(value):
    """A per-frame decoded value as analyze reports it; None when it is not a number."""
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str) and value.isdigit():  # cell numbers kept as text in the state
        return float(value)
    return None


def keys_of(spec: FrameSpec) -> set[str]:
    keys = set()
    for f in spec.fields:
        if isinstance(f, AlarmBits | AlarmPairs):
            keys.add(f.target)
        else:
            keys.add(f.key)
            if isinstance(f, Flag) and f.into:
                keys.add(f.into)
    return keys


def expiry(spec: FrameSpec) -> float:
    """The inverter role's rule, written out independently."""
    return 10.0 if spec.period_s is None else max(10.0, 2.5 * spec.period_s)


def decoded_frames(profile: Profile, batch: FrameBatch):
    """(time, spec, fields) of every battery frame the per-frame decoder accepts."""
    out = []
    for row in range(len(batch)):
        can_id, extended = int(batch.ids[row]), bool(batch.extended[row])
        spec = profile.spec(can_id, extended)
        if spec is None or spec.sender != "battery":
            continue
        try:
            decoded = profile.decode(can_id, batch.payload(row), extended)
        except DecodeError:
            continue
        out.append((float(batch.timestamps[row]), decoded.spec, decoded.fields))
    return out


def expected_rows(profile: Profile, batch: FrameBatch, keys: list[str], resolution: float):
    """The time series by the per-frame decoder: {bin: {key: value}}, non-empty bins only."""
    frames = decoded_frames(profile, batch)
    samples: dict[str, list[tuple[float, float, object]]] = {k: [] for k in keys}
    for t, spec, fields in frames:
        for key in keys_of(spec) & set(keys):
            value = fields.get(key)
            if key in ("alarms", "warnings"):
                value = None if value is None else tuple(value)
            else:
                value = numeric(value)
            samples[key].append((t, expiry(spec), value))
    first = math.floor(frames[0][0] / resolution)
    last = math.floor(float(batch.timestamps[-1]) / resolution)
    out: dict[int, dict[str, object]] = {}
    position = dict.fromkeys(keys, -1)
    for b in range(first, last + 1):
        row: dict[str, object] = {}
        for key in keys:
            items = samples[key]
            i = position[key]
            while i + 1 < len(items) and math.floor(items[i + 1][0] / resolution) <= b:
                i += 1
            position[key] = i
            if i >= 0:
                t, life, value = items[i]
                if b * resolution - t <= life and value is not None:
                    row[key] = value
        if row:
            out[b] = row
    return out


def as_row(keys: list[str], row: np.ndarray) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in zip(keys, row.tolist(), strict=True):
        if value != value:
            continue
        out[key] = tuple(alarm_names(value)) if key in ("alarms", "warnings") else value
    return out


def numeric_keys_of(spec: FrameSpec) -> set[str]:
    """Keys of the table's numeric fields and flags (text, versions, cell lists are not)."""
    keys = set()
    for f in spec.fields:
        if isinstance(f, Num | Flag | Coded | Bits):
            keys.add(f.key)
        if isinstance(f, Flag) and f.into:
            keys.add(f.into)
    return keys


def assert_matches_per_frame(profile: Profile, batch: FrameBatch, result: Analysis, rows) -> None:
    frames = decoded_frames(profile, batch)
    numeric_keys = {
        k
        for _, spec, fields in frames
        for k, v in fields.items()
        if k in numeric_keys_of(spec) and numeric(v) is not None
    }
    reported = {k for k, f in result.fields.items() if f.frames}
    assert reported == numeric_keys
    for key in reported:
        values = [
            (t, numeric(fields[key]))
            for t, _, fields in frames
            if numeric(fields.get(key)) is not None
        ]
        summary = result.fields[key]
        low = min(v for _, v in values)
        high = max(v for _, v in values)
        assert summary.frames == len(values), key
        assert summary.min == pytest.approx(low, abs=1e-9), key
        assert summary.min_at == next(t for t, v in values if v == low), key
        assert summary.max == pytest.approx(high, abs=1e-9), key
        assert summary.max_at == next(t for t, v in values if v == high), key
        assert (summary.last, summary.last_at) == (values[-1][1], values[-1][0]), key
    expected = expected_rows(profile, batch, result.series_keys, result.resolution_s)
    got = {b: as_row(result.series_keys, row) for b, row in rows.items()}
    assert got.keys() == expected.keys()
    for b, row in expected.items():
        assert got[b].keys() == row.keys(), b
        for key, value in row.items():
            if isinstance(value, tuple):
                assert set(got[b][key]) == set(value), (b, key)
            else:
                assert got[b][key] == pytest.approx(value, abs=1e-9), (b, key)


# -- the engine against the per-frame decoder -----------------------------------------------------


def test_expiry_rule_is_the_inverter_roles():
    default = inspect.signature(InverterRole.__init__).parameters["frame_expiry_s"].default
    assert default == FRAME_EXPIRY_S
    specs = [s for p in PROFILES.values() for s in p.frames_from("battery")]
    assert {s.period_s for s in specs if s.period_s} >= {60.0}  # a slow frame is among them
    for spec in specs:
        assert engine._Plan.of(spec).expiry_s == frame_expiry(spec), spec.label


def test_pylontech_with_alarms_a_hole_and_rejected_frames_matches_the_decoder():
    frames = traffic(PYLON, 300.0, state_at=with_alarms())
    # 0x351 stops for 30 s: its limits must go blank 10 s later, not stay on
    frames = [f for f in frames if not (f[1] == 0x351 and T0 + 100 <= f[0] < T0 + 130)]
    # frames the per-frame decoder rejects carry nothing: a short 0x351 claiming CVL 0 V
    frames.append((T0 + 150.5, 0x351, False, b"\x00\x00\x00\x00"))
    frames.sort(key=lambda f: f[0])
    batch = batch_of(frames)
    result, rows = run(batch, PYLON)
    assert result.decode_errors == {"0x351": 1}
    assert result.fields["charge_voltage_v"].min > 0
    assert_matches_per_frame(PYLON, batch, result, rows)
    bins = {b: as_row(result.series_keys, r) for b, r in rows.items()}
    hole = math.floor(T0 + 125)
    assert "charge_voltage_v" not in bins[hole] and "soc_pct" in bins[hole]
    assert result.alarms["alarms"]["high_temperature"].episodes >= 3


def test_sma_pairs_invalid_markers_and_negative_limits_match_the_decoder():
    def state_at(t: float) -> BatteryState:
        state = with_alarms()(t)
        if t >= 200:  # DVL and temperature not known: sent as SMA's invalid markers
            state = state.merged({"discharge_voltage_v": None, "temperature_c": None})
        return state

    frames = traffic(SMA, 300.0, state_at=state_at)
    limits = struct.pack("<HhhH", 552, -50, 1000, 464)  # CCL negative: the decoder refuses it
    frames.append((T0 + 77.3, 0x351, False, limits))
    frames.sort(key=lambda f: f[0])
    batch = batch_of(frames)
    result, rows = run(batch, SMA)
    assert result.decode_errors == {"0x351": 1}
    assert result.fields["charge_current_a"].min >= 0
    assert_matches_per_frame(SMA, batch, result, rows)
    bins = {b: as_row(result.series_keys, r) for b, r in rows.items()}
    late = math.floor(T0 + 250)
    assert "temperature_c" not in bins[late] and "voltage_v" in bins[late]
    assert set(bins[math.floor(T0 + 101)]["warnings"]) == {
        "low_voltage",
        "cell_imbalance",
        "high_charge_current",
    }


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_matches_the_per_frame_decoder(name):
    profile = PROFILES[name]
    frames = traffic(profile, 90.0, state_at=with_alarms(profile.voltage_class), drop_rate=0.05)
    batch = batch_of(frames)
    result, rows = run(batch, profile, resolution_s=0.5)
    assert result.fields and rows
    assert_matches_per_frame(profile, batch, result, rows)


def test_a_key_two_frames_carry_follows_the_latest_frame():
    """No bundled profile sends one key in two frames; the series then keeps the newer one."""
    profile = Profile(
        "two-socs",
        "soc_pct in two frames",
        (
            FrameSpec(0x100, "soc_a", 2, "battery", (Num("soc_pct", 0),)),
            FrameSpec(0x200, "soc_b", 2, "battery", (Num("soc_pct", 0),), period_s=5.0),
        ),
    )
    frames = [(T0 + t, 0x100, False, struct.pack("<H", 10 + t)) for t in range(30)]
    frames = [f for f in frames if not T0 + 12 <= f[0] < T0 + 25]  # 0x100 silent a while
    frames += [(T0 + t + 0.5, 0x200, False, struct.pack("<H", 90 - t)) for t in range(0, 30, 5)]
    frames.sort(key=lambda f: f[0])
    batch = batch_of(frames)
    for size in (None, 7):
        result, rows = run(batch, profile, size=size)
        assert_matches_per_frame(profile, batch, result, rows)
        soc = {
            b - math.floor(T0): as_row(result.series_keys, r)["soc_pct"] for b, r in rows.items()
        }
        assert (soc[5], soc[6], soc[18]) == (85.0, 16.0, 75.0)


def test_a_capture_file_round_trip_matches_the_decoder(tmp_path):
    frames = traffic(PYLON, 120.0, state_at=with_alarms())
    path = tmp_path / "cap.log"
    write_capture(str(path), frames)
    batch = concat(list(capture_module.read_capture(str(path), chunk_frames=100)))
    result, rows = run(batch, PYLON, size=100, resolution_s=2.0)
    assert_matches_per_frame(PYLON, batch, result, rows)


# -- chunk invariance -----------------------------------------------------------------------------


def _comparable(result: Analysis) -> dict:
    data = result.to_dict()
    data.pop("profile")  # detection samples payloads per batch: not part of the claim
    # check.Checker counts some frames per batch in its messages (not this engine's part)
    findings = data["conformance"].pop("findings")
    data["conformance"]["codes"] = [(f["code"], f["severity"]) for f in findings]
    return data


def _assert_close(a, b, path="") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9), path
    else:
        assert a == b, path


def _assert_same_rows(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


FRAME_IDS = [0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E, 0x305, 0x4AB]


@st.composite
def small_captures(draw):
    """Random frames of Pylontech ids (and one foreign id), with holes and a clock step back."""
    n = draw(st.integers(1, 160))
    t = T0
    frames = []
    for _ in range(n):
        step = draw(
            st.one_of(
                st.floats(0.0, 0.5),
                st.floats(0.0, 40.0),
                st.just(-0.3),  # a merged capture: time runs backwards a little
            )
        )
        t += step
        can_id = draw(st.sampled_from(FRAME_IDS))
        length = draw(st.integers(0, 8))
        payload = draw(st.binary(min_size=length, max_size=length))
        if can_id == 0x359 and length >= 4 and draw(st.booleans()):
            payload = bytes([draw(st.sampled_from([0, 2, 8, 0x12])), 0, 0, 0]) + payload[4:]
        frames.append((t, can_id, False, payload))
    return frames


@settings(max_examples=40)
@given(small_captures(), st.sampled_from([0.5, 1.0, 3.0]))
def test_results_do_not_depend_on_the_chunk_size(frames, resolution):
    batch = batch_of(frames)
    whole, whole_rows = run(batch, PYLON, resolution_s=resolution, envelope_bins=16)
    for size in (7, 1000):
        result, rows = run(batch, PYLON, size=size, resolution_s=resolution, envelope_bins=16)
        _assert_close(_comparable(result), _comparable(whole))
        _assert_same_rows(rows, whole_rows)
        np.testing.assert_array_equal(result.envelope.high, whole.envelope.high)
        np.testing.assert_array_equal(result.envelope.last, whole.envelope.last)


def test_gap_threshold_of_an_unknown_id_waits_for_its_median():
    """A foreign id every 0.1 s: its holes over 2 s are gaps, whatever the chunks."""
    frames = []
    t = T0
    for i in range(5000):
        t += 2.5 if i % 1000 == 999 else 1.5 if i % 1000 == 500 else 0.1
        frames.append((t, 0x4AB, False, b"\x01"))
    batch = batch_of(frames)
    results = [run(batch, PYLON, size=size)[0] for size in (7, 333, None)]
    for result in results:
        gaps = result.gaps[(0x4AB, False)]
        assert gaps.count == 5 and gaps.threshold_s == pytest.approx(2.0)
        assert not gaps.pending
    assert results[0].to_dict()["ids"] == results[2].to_dict()["ids"]


# -- gaps -----------------------------------------------------------------------------------------


def test_a_30_s_hole_is_reported_with_its_start():
    frames = traffic(PYLON, 120.0)
    kept = [f for f in frames if not (T0 + 40 <= f[0] < T0 + 70)]
    batch = batch_of(kept)
    result, _ = run(batch, PYLON, size=50)
    rows = {r["id"]: r for r in result.to_dict()["ids"]}
    for can_id in (0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E, 0x305):
        before = max(f[0] for f in kept if f[1] == can_id and f[0] < T0 + 40)
        after = min(f[0] for f in kept if f[1] == can_id and f[0] >= T0 + 70)
        gaps = rows[f"0x{can_id:03X}"]["gaps"]
        assert gaps["count"] == 1
        assert gaps["threshold_s"] == 3.0
        assert gaps["first"] == [{"start": round(before, 6), "length_s": round(after - before, 6)}]
        assert gaps["longest_s"] == pytest.approx(after - before)


def test_gaps_are_kept_bounded():
    frames = [(T0 + 5.0 * i, 0x351, False, bytes(8)) for i in range(200)]
    result, _ = run(batch_of(frames), PYLON, size=13)
    gaps = result.gaps[(0x351, False)]
    assert gaps.count == 199 and len(gaps.first) == engine.KEEP_GAPS


# -- alarms ---------------------------------------------------------------------------------------


def _protection(t: float, high_voltage: bool) -> tuple[float, int, bool, bytes]:
    return (T0 + t, 0x359, False, bytes([0x02 if high_voltage else 0, 0, 0, 0, 1]) + b"PN")


def test_alarm_episodes_first_last_and_active_seconds():
    frames = []
    for t in range(100):
        if 70 <= t < 85:
            continue  # the frame stops for 16 s while the alarm is on: a new episode after
        frames.append(_protection(t, 10 <= t < 20 or 50 <= t < 55 or 65 <= t < 90))
    frames += [(T0 + t + 0.5, 0x305, False, bytes(8)) for t in range(100)]
    frames.sort(key=lambda f: f[0])
    result, rows = run(batch_of(frames), PYLON, size=9)
    alarm = result.alarms["alarms"]["high_voltage"]
    assert alarm.episodes == 4
    assert (alarm.first, alarm.last) == (T0 + 10, T0 + 89)
    # 10 + 5 + (4 + 10 capped at the expiry) + 5 seconds
    assert alarm.active_s == pytest.approx(34.0)
    assert result.alarms["warnings"] == {}
    assert list(result.alarms["alarms"]) == ["high_voltage"]
    by_time = {b: as_row(result.series_keys, r) for b, r in rows.items()}
    assert by_time[math.floor(T0 + 12)]["alarms"] == ("high_voltage",)
    assert by_time[math.floor(T0 + 30)]["alarms"] == ()


def test_an_alarm_still_on_at_the_end_counts_up_to_the_capture_end():
    frames = [_protection(t, t >= 5) for t in range(10)]
    frames.append((T0 + 12.0, 0x305, False, bytes(8)))
    result, _ = run(batch_of(frames), PYLON)
    alarm = result.alarms["alarms"]["high_voltage"]
    assert alarm.episodes == 1
    assert alarm.active_s == pytest.approx(4.0 + 3.0)


# -- bounded memory -------------------------------------------------------------------------------


def test_retained_structures_stay_bounded_over_a_long_capture():
    pattern = [
        (0x351, bytes.fromhex("2802E803B004D001")),
        (0x355, bytes.fromhex("32006300")),
        (0x356, bytes.fromhex("7414F4FFDC00")),
        (0x359, bytes.fromhex("00000000015045")),
        (0x35C, bytes.fromhex("C000")),
        (0x305, bytes(8)),
    ]
    repeats = 50_000  # 300,000 frames
    n = repeats * len(pattern)
    step = np.arange(n) // len(pattern)
    times = T0 + step * 1.0 + np.tile(np.linspace(0, 0.5, len(pattern)), repeats)
    times += (step // 500) * 20.0  # a 20 s silence every 500 s: thousands of gaps
    data = np.zeros((n, 8), dtype=np.uint8)
    lengths = np.zeros(n, dtype=np.uint8)
    ids = np.zeros(n, dtype=np.uint32)
    for i, (can_id, payload) in enumerate(pattern):
        ids[i::6] = can_id
        lengths[i::6] = len(payload)
        data[i::6, : len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    data[3::6, 0] = (step[3::6] % 7 == 0) * 0x02  # alarms come and go
    data[1::6, 0] = step[1::6] % 101  # SoC moves
    batch = FrameBatch(times, ids, np.zeros(n, dtype=bool), lengths, data)
    analyzer = Analyzer(PYLON, envelope_bins=64)
    for part in chunks(batch, 4096):
        analyzer.add(part)
        assert analyzer.envelope.bins <= 64
        assert all(len(g.first) <= engine.KEEP_GAPS for g in analyzer.gaps.values())
        assert all(len(s.intervals) <= 4096 for s in analyzer.stats.ids.values())
        assert all(len(p.patterns) <= engine._PATTERN_CACHE for p in analyzer.plans)
    result = analyzer.finish()
    assert result.gaps[(0x351, False)].count == repeats // 500 - 1
    assert result.envelope.factor > 1
    soc = result.envelope.column("soc_pct", "high")
    assert np.nanmax(soc) == result.fields["soc_pct"].max == 100.0
    assert np.nanmin(result.envelope.column("soc_pct", "low")) == 0.0
    assert result.alarms["alarms"]["high_voltage"].episodes == len(range(0, repeats, 7))


# -- the candump reader's whole-matrix path -------------------------------------------------------


@st.composite
def candump_blocks(draw):
    """Blocks of candump -L lines, mostly of one shape, sometimes not (other widths, no dot)."""
    whole, fraction = draw(st.integers(1, 10)), draw(st.integers(0, 6))
    lines = []
    for _ in range(draw(st.integers(1, 40))):
        ident = (
            f"{draw(st.integers(0, 0x7FF)):03X}"
            if draw(st.booleans())
            else f"{draw(st.integers(0, 0x1FFFFFFF)):08x}"
        )
        data = draw(st.binary(max_size=8)).hex()
        data = data.upper() if draw(st.booleans()) else data
        w, f = (whole, fraction) if draw(st.integers(0, 8)) else (draw(st.integers(1, 10)), 3)
        digits = draw(st.text("0123456789", min_size=w + f, max_size=w + f))
        stamp = f"{digits[:w]}.{digits[w:]}" if f or draw(st.booleans()) else digits
        if draw(st.integers(0, 15)) == 0:
            data += "G0"  # not hex
        tail = draw(st.sampled_from(["", " R", " T", "\r"]))
        lines.append(f"({stamp}) can0 {ident}#{data}{tail}")
    return ("\n".join(lines) + "\n").encode()


@settings(max_examples=150)
@given(candump_blocks())
def test_the_whole_matrix_path_reads_what_the_column_path_reads(block):
    fast = parse_candump_block(block)
    original = capture_module._uniform_columns
    try:
        capture_module._uniform_columns = lambda *args: None
        slow = parse_candump_block(block)
    finally:
        capture_module._uniform_columns = original
    for name in ("timestamps", "ids", "extended", "lengths", "data"):
        np.testing.assert_array_equal(getattr(fast[0], name), getattr(slow[0], name))
    np.testing.assert_array_equal(fast[1], slow[1])


def test_the_whole_matrix_path_is_taken_for_one_writers_file():
    text = "".join(candump_line(T0 + i * 0.25, 0x351, False, bytes(8), "can0") for i in range(10))
    block = text.encode()
    calls = []
    original = capture_module._uniform_columns

    def spy(*args):
        out = original(*args)
        calls.append(out is not None)
        return out

    capture_module._uniform_columns = spy
    try:
        batch = parse_candump_block(block)[0]
    finally:
        capture_module._uniform_columns = original
    assert calls == [True]
    assert batch.timestamps.tolist() == [T0 + i * 0.25 for i in range(10)]


# -- CLI ------------------------------------------------------------------------------------------


runner = CliRunner()
cli = typer.Typer()
register(cli)


@cli.callback()
def _main() -> None:
    """A local app: the lead registers the command in bmslink.cli.main."""


def invoke(*args: str, stdin: str | None = None):
    return runner.invoke(cli, ["analyze", *args], input=stdin)


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cap") / "bus.log"
    frames = traffic(PYLON, 200.0, state_at=with_alarms())
    frames = [f for f in frames if not (f[1] == 0x356 and T0 + 50 <= f[0] < T0 + 80)]
    write_capture(str(path), frames)
    return path


def test_json_shape(capture):
    result = invoke(str(capture), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {
        "source",
        "frames",
        "lines",
        "bytes_read",
        "skipped_lines",
        "error_frames",
        "start",
        "end",
        "duration_s",
        "profile",
        "ids",
        "fields",
        "alarms",
        "decode_errors",
        "time_series",
        "conformance",
    } <= data.keys()
    assert data["profile"]["name"] == "pylontech"
    assert data["profile"]["chosen_by"] == "first_chunk" and data["profile"]["agrees"] is True
    assert data["bytes_read"] == capture.stat().st_size
    ids = {r["id"]: r for r in data["ids"]}
    assert ids["0x356"]["gaps"]["count"] == 1 and ids["0x356"]["table_period_s"] == 1.0
    assert set(ids["0x356"]) >= {"count", "period_s", "jitter_s", "lengths", "first", "last"}
    soc = data["fields"]["soc_pct"]
    assert set(soc) == {
        "frame",
        "unit",
        "frames",
        "min",
        "min_at",
        "max",
        "max_at",
        "last",
        "last_at",
    }
    assert data["alarms"]["alarms"]["high_temperature"]["episodes"] >= 2
    assert data["time_series"]["rows"] > 150 and data["time_series"]["csv"] is None
    assert {f["code"] for f in data["conformance"]["findings"]} >= {"frame_gap"}


def test_text_summary_names_the_essentials(capture):
    result = invoke(str(capture), "--profile", "pylontech")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "profile: pylontech (given)" in out
    assert "0x356" in out and "silent for" in out
    assert "high_temperature" in out and "frame_gap" in out
    assert result.stderr == ""  # no progress bar without a terminal


def test_csv_holds_the_time_series(capture, tmp_path):
    out = tmp_path / "series.csv"
    result = invoke(str(capture), "--csv", str(out), "--json")
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    header = lines[0].split(",")
    assert header[0] == "time" and "soc_pct" in header and header[-2:] == ["alarms", "warnings"]
    data = json.loads(result.stdout)
    assert len(lines) - 1 == data["time_series"]["rows"]
    assert data["time_series"]["csv"] == str(out)
    # the same rows as the engine, by the per-frame decoder
    batch = concat(list(capture_module.read_capture(str(capture))))
    expected = expected_rows(PYLON, batch, header[1:], 1.0)
    assert len(expected) == len(lines) - 1
    for line in lines[1:]:
        cells = dict(zip(header, line.split(","), strict=True))
        row = expected[int(cells["time"])]
        for key in header[1:]:
            want = row.get(key)
            if want is None:
                assert cells[key] == "", (cells["time"], key)
            elif isinstance(want, tuple):
                assert cells[key] == (" ".join(want) or "none")
            else:
                assert float(cells[key]) == pytest.approx(want, abs=1e-9)
    gap_row = next(line for line in lines if line.startswith(str(math.floor(T0 + 75))))
    assert ",," in gap_row  # 0x356 expired: voltage/current/temperature blank
    assert not list(tmp_path.glob(".*partial*"))


def test_resolution_bins_the_csv(capture, tmp_path):
    out = tmp_path / "coarse.csv"
    result = invoke(str(capture), "--csv", str(out), "--resolution", "10")
    assert result.exit_code == 0, result.output
    times = [float(line.split(",")[0]) for line in out.read_text().splitlines()[1:]]
    assert all(t % 10 == 0 for t in times) and 18 <= len(times) <= 22


def test_plot_writes_a_png(capture, tmp_path):
    out = tmp_path / "plot.png"
    result = invoke(str(capture), "--plot", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("option", ["--csv", "--plot"])
def test_a_bad_output_path_fails_before_reading(tmp_path, option):
    missing = tmp_path / "nowhere" / "out.png"
    # the capture does not exist either: reading it would exit 1, not 2
    result = invoke(str(tmp_path / "absent.log"), option, str(missing))
    assert result.exit_code == 2
    assert str(missing) in result.stderr and "does not exist" in result.stderr


def test_csv_and_plot_on_one_file_exit_2_before_reading(capture, tmp_path):
    same = tmp_path / "both.png"
    result = invoke(str(capture), "--csv", str(same), "--plot", str(same))
    assert result.exit_code == 2 and "one file cannot hold both" in result.stderr
    assert not same.exists()


def test_a_plot_needs_a_known_image_suffix(capture, tmp_path):
    result = invoke(str(capture), "--plot", str(tmp_path / "plot.txt"))
    assert result.exit_code == 2 and ".png" in result.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--resolution", "0"], "--resolution"),
        (["--profile", "nope"], "nope"),
        (["--inverter", "nope"], "nope"),
        (["--cells", "0"], "--cells"),
    ],
)
def test_bad_options_exit_2(capture, args, named):
    result = invoke(str(capture), *args)
    assert result.exit_code == 2 and named in result.stderr


def test_an_unreadable_capture_exits_1_named(tmp_path):
    missing = tmp_path / "absent.log"
    out = tmp_path / "series.csv"
    result = invoke(str(missing), "--csv", str(out))
    assert result.exit_code == 1
    assert str(missing) in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
    junk = tmp_path / "junk.log"
    junk.write_text("hello\nworld\n")
    result = invoke(str(junk))
    assert (
        result.exit_code == 1 and "no CAN frames in" in result.stderr and str(junk) in result.stderr
    )


def test_no_profile_detected_exits_1_suggesting_one(tmp_path):
    path = tmp_path / "other.log"
    write_capture(str(path), [(T0 + i, 0x6A0 + i % 3, False, bytes(3)) for i in range(30)])
    result = invoke(str(path))
    assert result.exit_code == 1
    assert "--profile" in result.stderr and "no known profile" in result.stderr


def test_a_profile_that_disagrees_with_the_capture_is_noted(tmp_path):
    path = tmp_path / "sma.log"
    write_capture(str(path), traffic(SMA, 60.0))
    result = invoke(str(path), "--profile", "pylontech", "--json")
    assert result.exit_code == 0  # findings do not change the exit status
    profile = json.loads(result.stdout)["profile"]
    assert profile["agrees"] is False and "sma" in profile["note"]


def test_stdin_and_findings_with_an_inverter(capture):
    result = invoke(
        "-", "--inverter", "victron", "--cells", "16", "--json", stdin=capture.read_text()
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["source"] == "-" and data["conformance"]["cells"] == 16


def test_error_frames_and_skipped_lines_are_reported(tmp_path):
    path = tmp_path / "mixed.log"
    lines = [candump_line(T0 + i, 0x355, False, bytes([50, 0, 99, 0]), "can0") for i in range(20)]
    lines.insert(5, "garbage here\n")
    lines.insert(9, f"({T0 + 8.5:.6f}) can0 20000004#0004000000000000\n")
    path.write_text("".join(lines))
    data = json.loads(invoke(str(path), "--profile", "pylontech", "--json").stdout)
    assert data["error_frames"] == 1 and data["skipped_lines"] == 1
    assert data["skipped_examples"][0].startswith("line 6")
    text = invoke(str(path), "--profile", "pylontech").stdout
    assert "1 error frames, 1 lines skipped" in text


def test_the_progress_bar_only_on_a_terminal(capture, monkeypatch):
    used = []

    def spy(batches, report, source):
        used.append(source)
        yield from batches

    monkeypatch.setattr(cli_module, "_batches_with_progress", spy)
    assert invoke(str(capture)).exit_code == 0
    assert used == []  # CliRunner's stderr is not a terminal
    monkeypatch.setattr(cli_module, "_interactive", lambda: True)
    assert invoke(str(capture)).exit_code == 0
    assert used == [str(capture)]
    assert invoke(str(capture), "--json").exit_code == 0
    assert used == [str(capture)]  # never with --json
