"""``bmslink bms`` and ``bmslink bridge`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bmslink.bms.registry import BMS_TYPES
from bmslink.cli.main import app

runner = CliRunner()

# JBD-02 and JBD-03 (public-vectors.md): one 4S pack's basic info and cells
JBD_BASIC = "DD:03:00:1D:06:0B:00:00:01:ED:01:F4:00:00:2C:7C:00:00:00:00:10:00:80:63:02:04:03:0B:A0:0B:9D:0B:98:FA:55:77"
JBD_CELLS = "DD:04:00:08:0F:23:0F:1C:0F:12:0F:1D:FF:4E:77"
# SEP3-01: a request and its reply
SEP3 = [
    "01.04.10.00.00.11.34.C6",
    "01.04.22.14.CD.FF.77.6B.40.80.E8.01.22.03.40.03.E7.00.0A.0C.FF.0B.7F.0D.00.0C.FF.0B.81.0B.7E.00.00.00.B4.00.B4.D3.2E",
]
PACE = [
    "~25014642E00201FD30\r",
    "~25014600F07A0001100CC70CC80CC70CC70CC70CC50CC60CC70CC70CC60CC70CC60CC60CC70CC60CC7060B9B0B990B990B990BB30BBCFF1FCCCD12D303286A008C2710E1E4\r",
]


def run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def test_bms_decode_merges_all_frames_into_one_state() -> None:
    result = run("bms", "decode", "--type", "jbd", JBD_BASIC, JBD_CELLS)
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert state["voltage_v"] == pytest.approx(15.47)
    assert state["cells_v"] == [3.875, 3.868, 3.858, 3.869]
    assert state["soc_pct"] == 99
    assert state["charge_enable"] is False and state["discharge_enable"] is True


def test_bms_decode_takes_request_reply_pairs_and_ascii_frames() -> None:
    seplos = run("bms", "decode", "--type", "seplos-v3", *SEP3)
    assert seplos.exit_code == 0, seplos.output
    assert json.loads(seplos.stdout)["voltage_v"] == pytest.approx(53.25)
    pace = run("bms", "decode", "--type", "pace", *PACE)
    assert pace.exit_code == 0, pace.output
    assert json.loads(pace.stdout)["current_a"] == pytest.approx(-2.25)


def test_bms_decode_bad_checksum_is_one_line_on_stderr_and_nothing_on_stdout() -> None:
    broken = JBD_CELLS.replace("FF:4E", "FF:4F")
    result = run("bms", "decode", "--type", "jbd", broken)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert (
        "checksum" in result.stderr
        and "4E" in result.stderr
        and len(result.stderr.splitlines()) == 1
    )


def test_bms_decode_unknown_type_lists_the_known_ones() -> None:
    result = run("bms", "decode", "--type", "jkk", "00")
    assert result.exit_code == 2
    assert "unknown BMS type 'jkk'" in result.stderr and "seplos-v3" in result.stderr


@pytest.mark.parametrize("bms_type", list(BMS_TYPES))
def test_bms_read_reads_each_simulated_device(bms_type: str) -> None:
    result = run("bms", "read", "--type", bms_type, "--port", "sim", "--count", "1", "--json")
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout.splitlines()[-1])
    assert len(state["cells_v"]) == 16
    assert 40 < state["voltage_v"] < 60


def test_bms_read_a_missing_port_is_named() -> None:
    result = run("bms", "read", "--type", "jk", "--port", "/dev/does-not-exist", "--count", "1")
    assert result.exit_code == 1
    assert "/dev/does-not-exist" in result.stderr


def test_bms_types_lists_every_type() -> None:
    result = run("bms", "types")
    assert result.exit_code == 0
    for name in BMS_TYPES:
        assert name in result.stdout


def test_bridge_short_form_runs_a_simulated_bms_to_a_virtual_bus() -> None:
    result = run(
        "bridge",
        "--bms",
        "jk:sim",
        "--inverter",
        "pylontech:virtual:cli-bridge",
        "--duration",
        "2.5",
        "--status-every",
        "1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    last = lines[-1]
    assert last["phase"] == "normal" and last["packs_combined"] == ["pack1"]
    assert last["state"]["charge_current_a"] == 100.0  # the short form's per-pack maximum
    assert last["soc_sources"] == {"pack1": "bms"}
    assert last["control"]["mode"] == "bulk" and last["control"]["ccl"] == "max"


def test_bridge_status_names_a_pack_whose_soc_bmslink_estimates(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(
        "[hardware]\nmax_charge_current_a = 100\nmax_discharge_current_a = 100\n"
        '[[bms]]\nname = "rack"\ntype = "jk"\nport = "sim"\nsoc = "estimate"\n'
        "max_charge_current_a = 50\nmax_discharge_current_a = 50\n"
        '[[inverter]]\nkind = "can"\nprofile = "pylontech"\ninterface = "virtual"\n'
        'channel = "cli-bridge-soc"\n'
    )
    result = run("bridge", "--config", str(path), "--duration", "2.5", "--status-every", "1")
    assert result.exit_code == 0, result.output
    status = [line for line in result.stdout.splitlines() if "| packs 1/1" in line]
    # seconds after start the estimate has no basis yet (no rest, not full): SoC stays absent
    assert status and all("| soc rack none:no-basis |" in line for line in status), status
    assert all(" SoC - % " in line for line in status), status


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bms", "jk", "--inverter", "pylontech:virtual:x"], "--bms 'jk': expected TYPE:PORT"),
        (["--bms", "jk:sim", "--inverter", "pylontech:virtual"], "--inverter 'pylontech:virtual'"),
        (["--bms", "jk:sim:x", "--inverter", "pylontech:virtual:x"], "addresses must be numbers"),
        (["--bms", "jk:sim"], "at least one --bms and one --inverter"),
        (
            ["--bms", "nope:sim", "--inverter", "pylontech:virtual:x"],
            "command line: bms[0]: unknown BMS type 'nope'",
        ),
    ],
)
def test_bridge_bad_arguments_are_named(args: list[str], message: str) -> None:
    result = run("bridge", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_bridge_bad_config_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(
        '[hardware]\nmax_charge_current_a = 100\nmax_discharge_current_a = 100\n[[bms]]\nname = "a"\ntype = "jk"\nport = "sim"\nmax_charge_current_a = 5\nmax_discharge_current_a = 5\npoll = 3\n[[inverter]]\nkind = "can"\nprofile = "pylontech"\n'
    )
    result = run("bridge", "--config", str(path))
    assert result.exit_code == 2
    assert "bms[0].poll: Extra inputs are not permitted" in result.stderr


def test_demo_with_a_bms_runs_the_whole_chain_over_a_pty() -> None:
    result = run("demo", "--bms", "jk", "--hours", "2", "--speed", "0", "--json", "--plain")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["frames_received"] > 0 and summary["decode_errors"] == 0
    assert summary["seen_soc_min_pct"] is not None
    assert summary["broadcast_halts"] == 0
