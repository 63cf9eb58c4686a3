"""``bmslink doctor``: every code is the top finding of a scenario built for it; clean is all_ok.

Capture scenarios run here; the live ones (simulated slcan adapter) are in test_doctor_live.py.
"""

import json
from collections import Counter

import pytest
import typer
from typer.testing import CliRunner

from bmslink.capture import FrameBatch, write_capture
from bmslink.cli import doctor as doctor_cli
from bmslink.diagnose.doctor import (
    ORDER,
    RULES,
    Context,
    DoctorFinding,
    Heard,
    ScanResult,
    diagnose,
    rank,
)
from bmslink.profiles import get_profile
from bmslink.registry import default_registry
from bmslink.sim.traffic import drifting_state, profile_traffic

PYLON = get_profile("pylontech")
T0 = 1_700_000_000.0


def traffic(profile="pylontech", seconds=120.0, **kwargs):
    return list(profile_traffic(get_profile(profile), seconds, seed=5, start=T0, **kwargs))


def with_state(**changes):
    base = drifting_state("lv")
    return lambda t: base(t).merged(changes)


def heard(frames, **kwargs):
    batches = [FrameBatch.from_frames(frames)] if frames else []
    return Heard(source="test", batches=lambda: batches, **kwargs)


def run(frames, inverter=None, profile=None, bms=None, **kwargs):
    context = Context(inverter=default_registry().find_inverter(inverter) if inverter else None)
    context.bms = bms
    chosen = get_profile(profile) if profile else None
    return diagnose(heard(frames, **kwargs), profile=chosen, context=context)


def constant_state():
    state = drifting_state("lv")(0.0)
    return lambda t: state


def every_other(frames, can_id):
    out, n = [], 0
    for f in frames:
        if f[1] == can_id:
            n += 1
            if n % 2:
                continue
        out.append(f)
    return out


SCENARIOS = {
    "bus_silent": lambda: run([], window=(0.0, 5.0), bitrate=500_000),
    "bitrate_mismatch": lambda: run(
        [],
        window=(0.0, 5.0),
        bitrate=500_000,
        scan=[
            ScanResult(250_000, 14, 0, Counter(), ["0x351", "0x355"], 1.5),
            ScanResult(125_000, 0, 3, Counter(bus_error=2), [], 1.5),
        ],
    ),
    "error_frames": lambda: run(traffic(), error_frames=40),
    "no_known_profile": lambda: run(
        [(T0 + n * 0.1, 0x123 + (n % 3), False, bytes([n % 256, 1, 2])) for n in range(600)]
    ),
    "profile_mismatch": lambda: run(traffic(), inverter="sma-sunny-island"),
    "frame_missing": lambda: run([f for f in traffic() if f[1] != 0x35C]),
    "battery_stopped": lambda: run(
        [f for f in traffic() if f[1] == 0x305 or f[0] < T0 + 50.0], inverter="deye-lv"
    ),
    "no_inverter_keepalive": lambda: run(traffic(inverter=False), inverter="deye-lv"),
    "stale_values": lambda: run(traffic(state_at=constant_state())),
    "period_out_of_tolerance": lambda: run(every_other(traffic(), 0x355)),
    "value_implausible": lambda: run(traffic(state_at=with_state(temperature_c=150.0))),
    "all_ok": lambda: run(traffic()),
}


def test_every_doctor_code_has_a_scenario():
    assert set(SCENARIOS) == set(RULES)


@pytest.mark.parametrize("code", sorted(SCENARIOS))
def test_each_code_is_the_top_finding_of_its_scenario(code):
    diagnosis = SCENARIOS[code]()
    top = diagnosis.top
    assert top.code == code, [f.code for f in diagnosis.findings]
    assert top.message and top.next_steps
    if code != "all_ok":
        assert top.evidence


def test_clean_traffic_is_all_ok_and_nothing_else_but_info():
    diagnosis = run(traffic(), inverter="deye-lv")
    assert diagnosis.top.code == "all_ok"
    assert diagnosis.errors == diagnosis.warnings == 0


def test_frames_slower_than_the_window_are_not_judged_missing():
    # BYD HVS sends 0x190 every 60 s: 30 s of traffic cannot call it missing, 150 s can
    def missing(seconds):
        frames = [f for f in traffic("byd-hvs", seconds=seconds) if f[1] != 0x190]
        window = (T0, T0 + seconds)
        return [f.message for f in run(frames, window=window).findings if f.code == "frame_missing"]

    assert not any("0x190" in m for m in missing(30.0))
    assert any("0x190" in m for m in missing(150.0))


def test_stale_values_need_a_minute():
    frames = [f for f in traffic(state_at=constant_state()) if f[0] < T0 + 40]
    assert "stale_values" not in {f.code for f in run(frames).findings}


def test_a_frame_that_stopped_while_others_went_on_is_missing_not_a_stopped_battery():
    frames = [f for f in traffic() if not (f[1] == 0x356 and f[0] > T0 + 40)]
    codes = [f.code for f in run(frames).findings]
    assert "frame_missing" in codes and "battery_stopped" not in codes


def test_error_frames_become_an_error_when_the_adapter_went_error_passive():
    mild = run(traffic(), error_frames=1)
    assert mild.top.code == "error_frames" and mild.top.severity == "warning"
    severe = run(traffic(), error_frames=1, status=Counter(error_passive=1))
    assert severe.top.severity == "error"


def test_keepalive_is_only_an_error_when_an_inverter_is_named():
    bench = run(traffic(inverter=False))
    finding = next(f for f in bench.findings if f.code == "no_inverter_keepalive")
    assert finding.severity == "warning"
    assert run(traffic(inverter=False), inverter="deye-lv").top.severity == "error"


def test_a_forced_profile_that_is_not_on_the_bus_is_a_mismatch_naming_the_real_one():
    diagnosis = run(traffic("sma"), profile="pylontech")
    assert diagnosis.top.code == "profile_mismatch"
    assert "sma" in diagnosis.top.message or "victron" in diagnosis.top.message


def test_a_silent_bus_with_errors_only_is_an_error_frames_error():
    diagnosis = run([], error_frames=12, window=(0.0, 5.0), bitrate=250_000)
    assert diagnosis.top.code == "error_frames" and diagnosis.top.severity == "error"


def test_ranking_puts_errors_first_then_the_checklist_order():
    findings = [
        DoctorFinding("value_implausible", "v"),
        DoctorFinding("all_ok", "ok"),
        DoctorFinding("frame_missing", "f"),
        DoctorFinding("bus_silent", "b"),
        DoctorFinding("error_frames", "e", severity="warning"),
    ]
    assert [f.code for f in rank(findings)] == [
        "bus_silent",
        "frame_missing",
        "error_frames",
        "value_implausible",
        "all_ok",
    ]
    assert set(RULES) <= set(ORDER)


# -- the command -----------------------------------------------------------------------------------


@pytest.fixture
def cli():
    app = typer.Typer()
    doctor_cli.register(app)
    app.command("noop")(lambda: None)  # more than one command: the name is a subcommand
    return app


def _capture(tmp_path, frames, name="bus.log"):
    path = tmp_path / name
    write_capture(str(path), frames)
    return str(path)


def test_doctor_on_a_clean_capture_exits_0_with_all_ok(cli, tmp_path):
    result = CliRunner().invoke(cli, ["doctor", "--capture", _capture(tmp_path, traffic())])
    assert result.exit_code == 0, result.output
    assert "all_ok" in result.output


def test_doctor_json_and_exit_1_on_an_error(cli, tmp_path):
    path = _capture(tmp_path, [f for f in traffic() if f[1] != 0x35C])
    result = CliRunner().invoke(cli, ["doctor", "--capture", path, "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.output)
    assert payload["top"] == "frame_missing"
    assert payload["profile"] == "pylontech"
    assert payload["findings"][0]["next_steps"]


def test_doctor_warnings_only_exit_0(cli, tmp_path):
    path = _capture(tmp_path, every_other(traffic(), 0x355))
    result = CliRunner().invoke(cli, ["doctor", "--capture", path, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["top"] == "period_out_of_tolerance"


def test_an_empty_capture_is_a_silent_bus(cli, tmp_path):
    path = tmp_path / "empty.log"
    path.write_text("")
    result = CliRunner().invoke(cli, ["doctor", "--capture", str(path), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["top"] == "bus_silent"


def test_a_capture_of_error_frames_only_is_error_frames(cli, tmp_path):
    path = tmp_path / "errors.log"
    path.write_text("".join(f"({T0 + n:.6f}) can0 20000080#0000000000000000\n" for n in range(5)))
    result = CliRunner().invoke(cli, ["doctor", "--capture", str(path), "--json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.output)["top"] == "error_frames"


def test_bad_options_exit_2_and_a_missing_file_exits_1(cli, tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["doctor"]).exit_code == 2
    both = runner.invoke(cli, ["doctor", "--capture", "x.log", "--interface", "virtual"])
    assert both.exit_code == 2
    path = _capture(tmp_path, traffic(seconds=10))
    assert runner.invoke(cli, ["doctor", "--capture", path, "--inverter", "nosuch"]).exit_code == 2
    missing = runner.invoke(cli, ["doctor", "--capture", str(tmp_path / "nope.log")])
    assert missing.exit_code == 1
    assert "nope.log" in missing.output
    text = tmp_path / "notes.txt"
    text.write_text("hello\nworld\n")
    garbage = runner.invoke(cli, ["doctor", "--capture", str(text)])
    assert garbage.exit_code == 1 and "line 1" in garbage.output


def test_values_that_change_after_the_first_frames_are_not_stale():
    # the per-id payload sample looks at the first rows of a batch only: a battery whose
    # values froze for 100 s and then moved is not stale
    frozen = traffic(state_at=constant_state(), seconds=100.0)
    moving = [f for f in traffic(seconds=200.0) if f[0] >= T0 + 100.0]
    diagnosis = run(frozen + moving)
    assert "stale_values" not in {f.code for f in diagnosis.findings}
