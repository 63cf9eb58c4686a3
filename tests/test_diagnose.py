"""Capture reading, profile detection and conformance rules, on captures bmslink generates."""

import json

import pytest
from typer.testing import CliRunner

from bmslink.capture import CaptureError, CaptureReport, FrameBatch, read_capture, write_capture
from bmslink.cli.main import app
from bmslink.diagnose.check import RULES, check_batches
from bmslink.diagnose.detect import detect
from bmslink.diagnose.stats import gather
from bmslink.profiles import PROFILES, get_profile
from bmslink.profiles.sma import PROFILE as SMA
from bmslink.profiles.victron import PROFILE as VICTRON
from bmslink.registry import default_registry
from bmslink.sim.traffic import drifting_state, profile_traffic

PYLON = get_profile("pylontech")


def _profile(profile):
    return get_profile(profile) if isinstance(profile, str) else profile


def traffic(profile="pylontech", seconds=180.0, **kwargs):
    return list(profile_traffic(_profile(profile), seconds, seed=3, **kwargs))


def codes(frames, profile="pylontech", inverter=None, cells=16):
    family = default_registry().find_inverter(inverter) if inverter else None
    stats, checker = check_batches(
        _profile(profile), [FrameBatch.from_frames(frames)], inverter=family, cells=cells
    )
    return {f.code: f for f in checker.findings(stats)}


def with_state(**changes):
    base = drifting_state("lv")
    return lambda t: base(t).merged(changes)


# -- capture reading -------------------------------------------------------------------------------


def test_candump_text_round_trips_through_the_vectorised_reader(tmp_path):
    frames = traffic(seconds=20.0)
    path = tmp_path / "cap.log"
    write_capture(str(path), frames)
    batch = next(read_capture(str(path)))
    assert len(batch) == len(frames)
    for row in (0, len(frames) // 2, len(frames) - 1):
        t, can_id, extended, data = frames[row]
        assert batch.timestamps[row] == pytest.approx(t, abs=1e-6)
        assert (batch.ids[row], bool(batch.extended[row])) == (can_id, extended)
        assert batch.payload(row) == data


@pytest.mark.parametrize("suffix", [".asc", ".blf", ".csv"])
def test_python_can_formats_are_read(tmp_path, suffix):
    frames = traffic(seconds=5.0)
    path = tmp_path / f"cap{suffix}"
    write_capture(str(path), frames)
    batch = next(read_capture(str(path)))
    assert [(int(i), bool(e)) for i, e in zip(batch.ids, batch.extended, strict=True)] == [
        (f[1], f[2]) for f in frames
    ]
    assert batch.payload(0) == frames[0][3]


def test_mixed_formats_keep_line_order_and_bad_lines_are_named(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_text(
        "(1.000000) can0 351#1402740E740ECC01\n"
        "can0  355   [4]  1A 00 64 00\n"
        "this is not a frame\n"
        "(3.000000) can0 356#0213000004A01\n"
        "(4.000000) can0 20000004#0000000000000000\n"
        "(5.500000) can0 35C#C000\n"
    )
    report = CaptureReport(str(path))
    batch = next(read_capture(str(path), report))
    assert [hex(i) for i in batch.ids] == ["0x351", "0x355", "0x35c"]
    assert report.bad_lines == 2 and report.error_frames == 1
    assert report.errors[0].startswith("line 3: cannot parse")
    assert report.errors[1].startswith("line 4: odd number of hex digits")


def test_a_file_without_frames_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.log"
    path.write_text("garbage\n")
    with pytest.raises(CaptureError, match=r"no CAN frames in .*empty.log; line 1"):
        list(read_capture(str(path)))
    with pytest.raises(CaptureError, match="cannot read"):
        list(read_capture(str(tmp_path / "missing.log")))


# -- detection -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(n for n, p in PROFILES.items() if p.alias_of is None))
def test_detection_names_each_profile_from_jittery_lossy_traffic(name):
    frames = list(profile_traffic(PROFILES[name], 120.0, seed=7, jitter_s=0.05, drop_rate=0.05))
    result = detect(gather([FrameBatch.from_frames(frames)]))
    assert result.best is not None and result.best.profile == name, [
        (c.profile, round(c.score, 3)) for c in result.ranking[:3]
    ]
    assert result.runner_up is None or result.runner_up.score < result.best.score


def test_detection_reports_aliases_and_evidence():
    result = detect(gather([FrameBatch.from_frames(traffic())]))
    assert result.best.profile == "pylontech"
    assert "givenergy" in result.best.aliases
    assert any("'PN'" in line for line in result.best.evidence)


def test_detection_on_the_public_victron_vectors():
    frames = [
        (1.0, 0x351, False, bytes.fromhex("480200050005AE01")),
        (1.1, 0x355, False, bytes.fromhex("4300640000000000")),
        (1.2, 0x356, False, bytes.fromhex("BE14F9FF8C000000")),
        (1.3, 0x35A, False, bytes.fromhex("AAAAAAAAAAAAAAAA")),
        (1.4, 0x35E, False, bytes.fromhex("4259440000000000")),
        (1.5, 0x35F, False, bytes.fromhex("4C69011769000000")),
        (1.6, 0x307, False, bytes.fromhex("1234567856494300")),
    ]
    result = detect(gather([FrameBatch.from_frames(frames)]))
    assert result.best.profile == "victron"
    assert result.runner_up.profile == "sma"  # the same frame set but for the GX's "VIC"
    found = codes(frames, "victron", inverter="victron", cells=16)
    assert {c for c, f in found.items() if f.severity != "info"} == set()


PYLONTECH_SPEC_VECTORS = [  # shared/reference/public-vectors.md A1-A7, A13
    (0.0, 0x351, False, bytes.fromhex("1402740E740ECC01")),
    (0.1, 0x355, False, bytes.fromhex("1A006400")),
    (0.2, 0x356, False, bytes.fromhex("021300004A01")),
    (0.3, 0x359, False, bytes.fromhex("000000000A504E")),
    (0.4, 0x35C, False, bytes.fromhex("C000")),
    (0.5, 0x35E, False, bytes.fromhex("50594C4F4E202020")),
    (0.6, 0x305, False, bytes(8)),
]


def test_detect_and_check_on_the_public_pylontech_vectors():
    result = detect(gather([FrameBatch.from_frames(PYLONTECH_SPEC_VECTORS)]))
    assert result.best.profile == "pylontech" and result.best.aliases == ["givenergy"]
    assert result.confidence > 0.8
    assert codes(PYLONTECH_SPEC_VECTORS, inverter="deye") == {}
    renamed = [f if f[1] != 0x35E else (*f[:3], b"ACME    ") for f in PYLONTECH_SPEC_VECTORS]
    assert codes(renamed, inverter="deye")["name_rejected"].severity == "error"


# -- conformance: each rule fires on a capture made to break it, and not on a clean one ----------


def test_clean_traffic_has_no_errors_or_warnings():
    found = codes(traffic())
    assert {c for c, f in found.items() if f.severity != "info"} == set()


def drop_ids(frames, *ids):
    return [f for f in frames if f[1] not in ids]


CASES = {
    "frame_missing": lambda: codes(drop_ids(traffic(), 0x351)),
    "wrong_length": lambda: codes(
        [(t, i, e, d[:4] if i == 0x356 else d) for t, i, e, d in traffic()]
    ),
    "period_out_of_tolerance": lambda: codes(
        [f for n, f in enumerate(traffic()) if f[1] != 0x355 or n % 3 == 0]
    ),
    "frame_gap": lambda: codes(
        [f for f in traffic() if not (f[1] == 0x351 and 1_700_000_030 < f[0] < 1_700_000_080)]
    ),
    "soc_out_of_range": lambda: codes(traffic(state_at=with_state(soc_pct=150.0))),
    "cvl_zero": lambda: codes(
        [(t, i, e, bytes(2) + d[2:] if i == 0x351 else d) for t, i, e, d in traffic()]
    ),
    "cvl_above_chemistry_max": lambda: codes(traffic(state_at=with_state(charge_voltage_v=62.0))),
    "dcl_negative": lambda: codes(
        [(t, i, e, d[:4] + b"\x9c\xff" + d[6:] if i == 0x351 else d) for t, i, e, d in traffic()]
    ),
    "value_implausible": lambda: codes(traffic(state_at=with_state(temperature_c=150.0))),
    "charge_enabled_zero_ccl": lambda: codes(traffic(state_at=with_state(charge_current_a=0.0))),
    "no_inverter_keepalive": lambda: codes(traffic(inverter=False)),
    "unknown_ids": lambda: codes([*traffic(), (1_700_000_001.0, 0x123, False, b"\x01")]),
    "battery_silent": lambda: codes([f for f in traffic() if f[1] == 0x305]),
    "name_rejected": lambda: codes(
        [(t, i, e, b"BMSLINK " if i == 0x35E else d) for t, i, e, d in traffic()],
        inverter="deye-lv",
    ),
    "profile_not_accepted": lambda: codes(traffic(), inverter="sma-sunny-island"),
    "dvl_ignored": lambda: codes(traffic(), inverter="victron"),
}


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_rule_has_a_capture_that_triggers_it(code):
    found = CASES[code]()
    assert code in found, sorted(found)
    finding = found[code]
    assert finding.severity == RULES[code][0]
    assert finding.advice


def test_inverter_quirks_raise_severity():
    frames = [(t, i, e, bytes(2) + d[2:] if i == 0x351 else d) for t, i, e, d in traffic()]
    assert codes(frames)["cvl_zero"].severity == "warning"
    assert codes(frames, inverter="victron")["cvl_zero"].severity == "error"


def test_sma_inhibit_time_is_enforced():
    frames = traffic(SMA)
    doubled = sorted(frames + [(t + 0.05, i, e, d) for t, i, e, d in frames if i == 0x351])
    assert "period_too_fast" in codes(doubled, SMA)
    assert "period_too_fast" not in codes(frames, SMA)


# -- the commands ----------------------------------------------------------------------------------


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "bus.log"
    write_capture(str(path), traffic())
    return str(path)


def test_detect_command_json(capture):
    result = CliRunner().invoke(app, ["detect", "--json", capture])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["profile"] == "pylontech" and payload["confidence"] > 0.8


def test_check_command_exit_status_follows_errors(capture, tmp_path):
    ok = CliRunner().invoke(app, ["check", "-p", "pylontech", "-i", "deye", "--json", capture])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["errors"] == 0
    broken = tmp_path / "broken.log"
    write_capture(str(broken), drop_ids(traffic(), 0x351))
    bad = CliRunner().invoke(app, ["check", "-p", "pylontech", str(broken)])
    assert bad.exit_code == 1
    assert "frame_missing" in bad.stdout


def test_check_command_refuses_unknown_inverter_and_profile(capture):
    assert CliRunner().invoke(app, ["check", "-p", "nope", capture]).exit_code == 2
    assert (
        CliRunner().invoke(app, ["check", "-p", "pylontech", "-i", "nope", capture]).exit_code == 2
    )


def test_profiles_command_lists_every_profile():
    result = CliRunner().invoke(app, ["profiles", "--json"])
    assert result.exit_code == 0
    assert sorted(p["name"] for p in json.loads(result.stdout)) == sorted(PROFILES)


def test_cvl_zero_is_seen_on_victron_where_the_table_reads_raw_zero_as_absent():
    frames = [(t, i, e, bytes(2) + d[2:] if i == 0x351 else d) for t, i, e, d in traffic(VICTRON)]
    assert codes(frames, VICTRON, inverter="victron")["cvl_zero"].severity == "error"
    assert "cvl_zero" not in codes(traffic(VICTRON), VICTRON, inverter="victron")


def test_extended_ids_on_a_victron_bus_are_flagged_from_the_registry_quirk():
    extra = (1_700_000_001.0, 0x4210, True, bytes(8))
    assert "extended_ids_ignored" in codes([*traffic(), extra], inverter="victron")
    assert "extended_ids_ignored" not in codes([*traffic(), extra], inverter="deye-lv")


def test_a_capture_without_timestamps_gives_frame_numbers_not_nan(tmp_path):
    bare = tmp_path / "bare.txt"
    bare.write_text("351#1402740E740ECC01\n355#96006400\n")  # SoC 150 %
    result = CliRunner().invoke(app, ["check", "-p", "pylontech", "--json", str(bare)])
    assert "NaN" not in result.stdout
    report = json.loads(result.stdout)
    (soc,) = [f for f in report["findings"] if f["code"] == "soc_out_of_range"]
    assert soc["evidence"][0]["time"] == 1.0  # the second frame


def test_a_timestamp_too_long_for_the_fast_parser_is_still_read_right(tmp_path):
    path = tmp_path / "long.log"
    path.write_text("(1700000000.1234567891) can0 351#1402740E740ECC01\n")
    (batch,) = read_capture(str(path))
    assert batch.timestamps[0] == pytest.approx(1700000000.1234567891)
