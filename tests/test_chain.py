"""The closed loop: sim pack + BMS -> battery role -> virtual CAN -> inverter role -> inverter."""

import json

import pytest
from typer.testing import CliRunner

from bmslink.cli.main import app
from bmslink.profiles import PROFILES
from bmslink.sim.chain import PACK_FOR_CLASS, Chain, ChainConfig


@pytest.fixture(scope="module")
def sunny_day():
    with Chain(ChainConfig(hours=24.0)) as chain:
        samples = []
        summary = chain.run(
            lambda c: samples.append(c.sample()) if c.elapsed_s % 600 == 0 else None
        )
    return summary, samples


def test_a_day_moves_energy_both_ways_without_cutoffs(sunny_day):
    summary, _ = sunny_day
    assert summary.simulated_hours == 24.0
    assert summary.energy_in_kwh > 5 and summary.energy_out_kwh > 5
    assert summary.bms_cutoffs == 0
    assert summary.decode_errors == 0 and summary.battery_lost_events == 0
    assert summary.broadcast_halts == 0 and summary.last_halt_reason is None
    assert summary.frames_sent == summary.frames_received == 6 * 24 * 360


def test_soc_rises_in_the_sun_and_falls_at_night(sunny_day):
    _, samples = sunny_day
    by_hour = {round(s.t_s / 3600) % 24: s.true_soc_pct for s in samples}
    assert by_hour[13] > by_hour[8] + 30
    assert by_hour[23] < by_hour[17] - 10


def test_inverter_sees_what_the_bms_sent_through_can(sunny_day):
    summary, samples = sunny_day
    for s in samples:
        assert s.seen is not None and s.sent is not None
        # Pylontech carries SoC in whole percent, the limits in 0.1 A / 0.1 V
        assert s.seen.soc_pct == round(s.sent.soc_pct)
        assert s.seen.charge_current_a == pytest.approx(s.sent.charge_current_a, abs=0.05)
        assert s.seen.discharge_current_a == pytest.approx(s.sent.discharge_current_a, abs=0.05)
        assert s.seen.charge_voltage_v == pytest.approx(s.sent.charge_voltage_v, abs=0.05)
        assert s.seen.charge_enable == s.sent.charge_enable
        assert s.seen.alarms == s.sent.alarms
        assert s.seen.manufacturer == "PYLON"
    assert summary.soc_error_max_pct < 5


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_carries_the_chain_through_noon_and_evening(name):
    """Charge in the sun, discharge after it, over each profile's own frames and timing."""
    config = ChainConfig(profile=name, hours=8.0, start_hour=11.0, start_soc_pct=50.0)
    with Chain(config) as chain:
        summary = chain.run()
        assert chain.series_cells == PACK_FOR_CLASS[PROFILES[name].voltage_class][0]
    assert summary.energy_in_kwh > 1 and summary.energy_out_kwh > 0.5, summary
    assert summary.bms_cutoffs == 0
    assert summary.decode_errors == 0 and summary.broadcast_halts == 0
    assert summary.battery_lost_events == 0
    assert summary.frames_sent == summary.frames_received > 0
    assert summary.soc_error_max_pct < 5


def test_energy_balance(sunny_day):
    summary, _ = sunny_day
    supplied = summary.pv_kwh + summary.grid_import_kwh + summary.energy_out_kwh
    used = summary.load_kwh + summary.grid_export_kwh + summary.energy_in_kwh
    assert supplied == pytest.approx(used, abs=0.02)


def test_lost_link_stops_the_inverter_and_recovers():
    with Chain(ChainConfig(hours=1.0, start_hour=19.0, start_soc_pct=80.0)) as chain:
        for _ in range(30):
            chain.step()
        assert chain.sample().current_a < -5  # discharging into the evening load
        chain.link_up = False
        for _ in range(4):  # 40 s of silence: more than the 30 s lost-timeout
            chain.step()
        lost = chain.sample()
        assert not lost.battery_online and lost.seen is None
        assert lost.current_a == 0.0 and lost.limit == "battery_lost"
        chain.link_up = True
        chain.step()
        chain.step()
        assert chain.sample().current_a < -5
        assert [e.kind for e in chain.inverter_role.events] == [
            "battery_online",
            "battery_lost",
            "battery_online",
        ]
        assert chain.summary().battery_lost_events == 1


def test_same_seed_same_day():
    runs = []
    for _ in range(2):
        with Chain(ChainConfig(hours=3.0, cloudiness=0.5, start_hour=9.0)) as chain:
            runs.append(chain.run().to_dict())
    assert runs[0] == runs[1]


def test_demo_command_json_summary():
    result = CliRunner().invoke(app, ["demo", "--hours", "2", "--speed", "0", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["simulated_hours"] == 2.0 and summary["profile"] == "pylontech"
    assert summary["frames_sent"] == summary["frames_received"] > 0
    assert result.stderr.count("[day 1 ") == 2  # progress lines went to stderr


def test_demo_command_plain_progress_and_summary():
    result = CliRunner().invoke(app, ["demo", "--hours", "3", "--speed", "0", "--plain"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line[:14] for line in lines[:3]] == [
        "[day 1 01:00] ",
        "[day 1 02:00] ",
        "[day 1 03:00] ",
    ]
    assert "summary" in lines and any(line.strip().startswith("BMS cut-offs") for line in lines)


@pytest.mark.parametrize("name", ["victron", "byd-hvs"])
def test_demo_capture_is_real_traffic_that_detect_and_check_accept(tmp_path, name):
    path = tmp_path / f"{name}.log"
    args = ["demo", "-p", name, "--hours", "0.05", "--speed", "0", "--json", "--capture", str(path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    lines = path.read_text().splitlines()
    assert len(lines) >= summary["frames_sent"] > 0  # the inverter's frames are in it too
    detected = CliRunner().invoke(app, ["detect", "--json", str(path)])
    assert json.loads(detected.stdout)["profile"] == name
    checked = CliRunner().invoke(app, ["check", "-p", name, "--json", str(path)])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert report["errors"] == 0 and report["warnings"] == 0, report


def test_demo_capture_into_a_missing_directory_is_refused_before_running(tmp_path):
    target = tmp_path / "nope" / "bus.log"
    result = CliRunner().invoke(app, ["demo", "--hours", "24", "--capture", str(target)])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert not target.parent.exists()


def test_demo_live_view_renders():
    result = CliRunner().invoke(app, ["demo", "--hours", "1", "--speed", "0", "--live"])
    assert result.exit_code == 0
    assert "inverter sees" in result.stdout and "summary" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "nope"], "unknown profile 'nope'"),
        (["--hours", "0"], "Invalid value for '--hours'"),
        (["--step", "0"], "Invalid value for '--step'"),
    ],
)
def test_demo_rejects_bad_options(args, message):
    result = CliRunner().invoke(app, ["demo", "--speed", "0", *args])
    assert result.exit_code == 2
    assert message in result.stderr
