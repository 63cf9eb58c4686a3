"""The closed loop: sim pack + BMS -> battery role -> virtual CAN -> inverter role -> inverter."""

import json

import pytest
from typer.testing import CliRunner

from bmslink.cli.main import app
from bmslink.control import OUTPUT_MODES
from bmslink.profiles import PROFILES
from bmslink.sim.chain import METRIC_KEYS, PACK_FOR_CLASS, Chain, ChainConfig
from bmslink.sim.inverter import VoltageOnlyInverter


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
        # Pylontech carries SoC in whole percent, the limits in 0.1 A / 0.1 V rounded
        # toward safety (down), so what arrives is at most one step below what was sent
        assert s.seen.soc_pct == round(s.sent.soc_pct)
        for key in ("charge_current_a", "discharge_current_a", "charge_voltage_v"):
            sent, seen = getattr(s.sent, key), getattr(s.seen, key)
            assert sent - 0.1 - 1e-6 <= seen <= sent + 1e-6, (key, sent, seen)
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
    # the controller's mode and the rule behind each limit, on every line
    assert all(" | control bulk, CVL by " in line for line in lines[:3])
    assert all(", CCL by " in line and ", DCL by " in line for line in lines[:3])
    assert any(line.strip().startswith("charge held by") for line in lines)


def test_summary_says_which_controller_rule_held_the_charge_back():
    with Chain(ChainConfig(hours=6.0, start_hour=10.0, start_soc_pct=85.0)) as chain:
        summary = chain.run()
    held = summary.charge_limited_s
    # into full on a sunny noon: the controller's taper or voltage held the charge back
    assert any(k.startswith(("ccl:", "cvl:")) for k in held), held
    assert all(v > 0 for v in held.values())
    total = sum(held.values())
    assert total == pytest.approx(sum(chain.metrics.charge_limited_s.values()), abs=1.0)


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
    assert "controller" in result.stdout and "CCL by" in result.stdout


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


# -- the chain on the controller, the voltage-only inverter, faults and metrics ---------------

H = 3600.0


def test_the_role_sends_what_the_controller_decided():
    with Chain(ChainConfig(hours=1.0, start_hour=12.0, start_soc_pct=60.0)) as chain:
        for _ in range(30):
            chain.step()
            out, sent = chain.control_output, chain.battery_role.state
            assert out is not None and sent is not None
            assert out.mode in OUTPUT_MODES
            # the hardware clamp is the BMS's own maxima, the controller's ceilings too
            assert sent.charge_current_a == out.charge_current_a
            assert sent.discharge_current_a == out.discharge_current_a
            assert sent.charge_voltage_v == out.charge_voltage_v
            assert sent.charge_enable == out.charge_enable
        s = chain.sample()
        assert s.mode == out.mode and s.ccl_reason == out.ccl_reason


def test_without_the_controller_the_bms_limits_go_out_as_they_are():
    config = ChainConfig(hours=1.0, start_hour=12.0, start_soc_pct=60.0, control=False)
    with Chain(config) as chain:
        for _ in range(10):
            chain.step()
            sent = chain.battery_role.state
            assert sent is not None and chain.control_output is None
            assert sent.charge_current_a == chain.bms.state().charge_current_a
        assert chain.sample().mode is None


def test_in_process_link_carries_the_same_frames_as_the_virtual_bus():
    runs = []
    for link in ("can", "in-process"):
        config = ChainConfig(hours=3.0, start_hour=10.0, cloudiness=0.4, link=link)
        with Chain(config) as chain:
            runs.append((chain.run().to_dict(), chain.metrics_dict()))
    assert runs[0] == runs[1]
    assert runs[0][0]["frames_received"] > 0


def _silent_run(control: bool):
    """11:00-11:20 silent BMS in a sunny late morning; per step: (t, seen, current)."""
    config = ChainConfig(
        hours=1.0,
        start_hour=10.75,
        start_soc_pct=50.0,
        bms_silent=((11.0 * H, 11.0 * H + 1200.0),),
        control=control,
    )
    rows = []
    with Chain(config) as chain:
        chain.run(lambda c: rows.append((c.clock.now() - c.config.step_s, c.sample())))
    return rows


def test_silent_bms_gives_zero_limits_then_silence_then_comes_back():
    rows = _silent_run(control=True)
    start, end = 11.0 * H, 11.0 * H + 1200.0
    before = [s for t, s in rows if t < start]
    during = [(t, s) for t, s in rows if start <= t < end]
    after = [s for t, s in rows if t >= end + 120.0]
    assert all(s.seen is not None for s in before)
    assert before[-1].seen.charge_current_a > 10  # (it starts at 0 and ramps up)
    assert before[-1].current_a > 10  # charging when the BMS falls silent
    # the controller's stale rule (10 s) plus one 10 s step: zero limits reach the inverter
    zeroed = [t for t, s in during if s.seen is not None and s.seen.charge_current_a == 0]
    assert zeroed and zeroed[0] - start <= 20.0
    for t, s in during:
        if t >= zeroed[0]:
            assert s.seen is None or (
                s.seen.charge_current_a == 0 == s.seen.discharge_current_a
                and not s.seen.charge_enable
                and not s.seen.discharge_enable
            )
            assert s.current_a == 0.0
    # ... then the broadcast stops and the inverter declares the battery lost
    lost = [t for t, s in during if s.seen is None]
    assert lost and lost[0] > zeroed[0]
    assert all(s.limit == "battery_lost" for t, s in during if t > lost[0])
    assert all(s.bms_silent for _, s in during)
    # the BMS answers again: limits and charging come back
    assert after and all(s.seen is not None for s in after)
    assert max(s.current_a for s in after) > 10


def test_silent_bms_without_controller_goes_straight_to_silence():
    rows = _silent_run(control=False)
    start, end = 11.0 * H, 11.0 * H + 1200.0
    during = [s for t, s in rows if start <= t < end]
    # no zero-limit phase: the last limits stay until the role's staleness silences it
    assert all(s.seen is None or s.seen.charge_current_a > 0 for s in during)
    assert during[-1].seen is None and during[-1].current_a == 0.0


def test_metrics_have_every_key_and_energy_matches_the_inverters_books():
    with Chain(ChainConfig(hours=6.0, start_hour=9.0)) as chain:
        summary = chain.run()
        metrics = chain.metrics_dict()
    assert tuple(metrics) == METRIC_KEYS
    assert all(isinstance(v, int | float) for v in metrics.values())
    # both integrate current x voltage; the inverter reads the voltage before each
    # sub-step, the metrics after it: the same energy within a fraction of a percent
    assert metrics["energy_in_kwh"] == pytest.approx(summary.energy_in_kwh, rel=0.005)
    assert metrics["energy_out_kwh"] == pytest.approx(summary.energy_out_kwh, rel=0.005, abs=0.01)
    assert metrics["soc_error_max_pct"] >= metrics["soc_error_mean_pct"] >= 0


def test_over_voltage_metric_sees_a_voltage_only_charger_push_a_cell_into_ovp():
    """56.4 V absorption is 3.525 V per cell on average: with any spread the fullest cell
    passes the BMS's 3.65 V OVP while current flows, before the BMS opens its FET."""
    config = ChainConfig(
        hours=5.0, start_hour=9.0, start_soc_pct=80.0, inverter_mode="voltage-only"
    )
    with Chain(config) as chain:
        chain.run()
        metrics = chain.metrics_dict()
    assert metrics["bms_cutoffs"] > 0
    assert metrics["seconds_charging_over_voltage"] > 0
    assert metrics["seconds_cell_above_3v60"] >= metrics["seconds_charging_over_voltage"]


def test_cold_charging_metric_counts_the_sub_step_before_the_bms_trips():
    """Charging at noon, the pack suddenly at -5 °C: current flows for one physics
    sub-step (the BMS only sees the cold at its next measurement), then its FET opens."""
    config = ChainConfig(hours=1.0, start_hour=12.0, start_soc_pct=50.0, control=False)
    with Chain(config) as chain:
        for _ in range(5):
            chain.step()
        assert chain.sample().current_a > 10
        chain.pack.temperature_c = -5.0
        for _ in range(5):
            chain.step()
        assert chain.metrics_dict()["seconds_charging_below_0c"] == config.physics_dt_s
        assert chain.sample().current_a <= 0.0


def test_voltage_only_inverter_reports_its_own_soc():
    config = ChainConfig(hours=1.0, start_hour=18.0, inverter_mode="voltage-only")
    with Chain(config) as chain:
        assert isinstance(chain.inverter, VoltageOnlyInverter)
        chain.run()
        s = chain.sample()
        assert s.reported_soc_pct == chain.inverter.soc_pct is not None
        assert s.seen is not None  # the CAN traffic still runs, the inverter ignores it


@pytest.mark.parametrize(
    "overrides",
    [
        {"inverter_mode": "psychic"},
        {"link": "carrier-pigeon"},
        {"bms_silent": ((100.0, 50.0),)},
        {"soc_spread": -0.1},
        {"bms": "jk", "bms_silent": ((0.0, 10.0),)},
        {"soc": "guess"},
    ],
)
def test_bad_chain_configs_are_refused(overrides):
    with pytest.raises(ValueError):
        ChainConfig(**overrides)


def test_estimated_soc_is_absent_until_it_has_a_basis_then_follows_the_pack():
    """``soc="estimate"``: bmslink's own SoC, as a bridge would run it for a BMS without one."""
    config = ChainConfig(hours=6.0, start_hour=10.0, start_soc_pct=85.0, soc="estimate")
    with Chain(config) as chain:
        chain.step()
        # mid-curve, under load: no basis, no SoC, and a profile that needs one stays silent
        assert chain.pack_soc.source == "none:no-basis"
        assert chain.battery_role.state is not None
        assert chain.battery_role.state.soc_pct is None
        assert chain.battery_role.halted_reason is not None
        chain.run()
        assert chain.pack_soc.source.startswith("estimate:")
        s = chain.sample()
        assert s.seen is not None and s.seen.soc_pct is not None
        # the estimate, not the BMS's value, is what went out
        assert chain.pack_soc.estimator is not None
        assert s.seen.soc_pct == pytest.approx(chain.pack_soc.estimator.soc_pct, abs=1.0)
        assert abs(s.seen.soc_pct - s.true_soc_pct) < 3.0
        assert chain.bms.cutoffs == 0


def test_serial_path_bridge_estimates_soc_too():
    with Chain(ChainConfig(hours=0.01, bms="jk", soc="estimate")) as chain:
        chain.run()
        assert chain.serial is not None
        assert chain.serial.bridge.soc_sources == {"jk": "none:no-basis"}
        assert chain.battery_role.state is not None
        assert chain.battery_role.state.soc_pct is None
