"""``bmslink doctor`` on a live bus: python-can's real slcan driver talking to the simulated adapter.

Each test listens for a few seconds of real time (the simulated battery sends on real periods,
so the doctor measures real periods); nothing here asserts on timing.
"""

import json

import pytest
import typer
from typer.testing import CliRunner

from bmslink.cli import doctor as doctor_cli
from bmslink.profiles import get_profile
from bmslink.sim.slcan import BusFaults, SimCanBus, SimSlcanAdapter
from bmslink.sim.traffic import profile_traffic

PYLON = get_profile("pylontech")


@pytest.fixture
def cli():
    app = typer.Typer()
    doctor_cli.register(app)
    app.command("noop")(lambda: None)
    return app


def doctor(cli, bus, *args, listen=3.0):
    with SimSlcanAdapter(bus) as adapter:
        result = CliRunner().invoke(
            cli,
            [
                "doctor",
                "-I",
                "slcan",
                "-c",
                adapter.path,
                "-o",
                "sleep_after_open=0",
                "--listen",
                str(listen),
                "--scan-seconds",
                "0.5",
                "--json",
                *args,
            ],
        )
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.output)


def pylontech_bus(**kwargs):
    traffic = list(profile_traffic(PYLON, 30.0, seed=2, start=0.0))
    return SimCanBus(traffic, **kwargs)


def test_a_healthy_bus_is_all_ok(cli):
    code, report = doctor(cli, pylontech_bus(), "--inverter", "deye-lv")
    assert report["top"] == "all_ok", report["findings"]
    assert report["profile"] == "pylontech"
    assert code == 0


def test_a_battery_at_another_bit_rate_is_found_by_the_scan(cli):
    code, report = doctor(cli, pylontech_bus(bitrate=250_000), listen=1.5)
    assert code == 1
    top = report["findings"][0]
    assert top["code"] == "bitrate_mismatch", report["findings"]
    assert "250 kbit/s" in top["message"]
    assert any("pylontech" in line for line in top["evidence"])


def test_missing_termination_shows_as_error_frames(cli):
    faults = BusFaults(termination=False, error_rate=0.3)
    _, report = doctor(cli, pylontech_bus(faults=faults))
    assert report["top"] == "error_frames", report["findings"]


def test_a_silent_bus_is_bus_silent_after_the_scan(cli):
    code, report = doctor(cli, pylontech_bus(faults=BusFaults(silent=True)), listen=1.5)
    assert code == 1
    top = report["findings"][0]
    assert top["code"] == "bus_silent", report["findings"]
    assert any("250 kbit/s: 0 frames" in line for line in top["evidence"])


def test_a_battery_that_stops_is_battery_stopped(cli):
    faults = BusFaults(battery_stops_after_s=1.2)
    code, report = doctor(cli, pylontech_bus(faults=faults), listen=5.0)
    assert code == 1
    assert report["top"] == "battery_stopped", report["findings"]


def test_sim_adapter_command_serves_a_path_python_can_opens():
    from bmslink.cli import sim_adapter

    app = typer.Typer()
    sim_adapter.register(app)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["sim-adapter", "--bitrate", "250000", "--duration", "0.3"])
    assert result.exit_code == 0, result.output
    assert "simulated slcan adapter on /dev/pts/" in result.output
    assert "pylontech at 250 kbit/s" in result.output
    bad = CliRunner().invoke(app, ["sim-adapter", "--profile", "nosuch", "--duration", "0"])
    assert bad.exit_code == 2
