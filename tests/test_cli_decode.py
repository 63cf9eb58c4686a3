"""`bmslink decode` and `bmslink dbc` exactly as shared/contract.md describes them."""

import json
import subprocess
import sys

import cantools
import pytest
from typer.testing import CliRunner

from bmslink.capture import candump_line
from bmslink.cli.main import app
from bmslink.profiles import PROFILES
from bmslink.roles.battery import guard
from bmslink.sim.bms import BmsSettings, SimBms
from bmslink.sim.chain import PACK_FOR_CLASS
from bmslink.sim.pack import Pack
from bmslink.state import STATE_KEYS, BatteryState

runner = CliRunner()

SPEC_FRAMES = """\
(1700000000.000000) can0 351#1402740E740ECC01
  can0  355   [4]  1A 00 64 00
356#021300004A01
359#000000000A504E
35C#C000
35E#50594C4F4E202020
"""


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, list(args), input=stdin)


def test_one_object_per_frame():
    result = run("decode", "--profile", "pylontech", "-", stdin=SPEC_FRAMES)
    assert result.exit_code == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in objects] == ["0x351", "0x355", "0x356", "0x359", "0x35C", "0x35E"]
    assert objects[0] == {
        "id": "0x351",
        "name": "limits",
        "fields": {
            "charge_voltage_v": 53.2,
            "charge_current_a": 370.0,
            "discharge_current_a": 370.0,
            "discharge_voltage_v": 46.0,
        },
    }


def test_state_reproduces_the_public_vectors(tmp_path):
    capture = tmp_path / "spec.log"
    capture.write_text(SPEC_FRAMES)
    result = run("decode", "--profile", "pylontech", "--state", str(capture))
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "voltage_v": 48.66,
        "current_a": 0.0,
        "temperature_c": 33.0,
        "soc_pct": 26.0,
        "soh_pct": 100.0,
        "charge_voltage_v": 53.2,
        "charge_current_a": 370.0,
        "discharge_current_a": 370.0,
        "discharge_voltage_v": 46.0,
        "charge_enable": True,
        "discharge_enable": True,
        "force_charge": False,
        "full_charge_request": False,
        "modules": 10,
        "manufacturer": "PYLON",
        "alarms": [],
        "warnings": [],
    }


VICTRON_VECTORS = """\
351#480200050005AE01
355#4300640000000000
356#BE14F9FF8C000000
35A#AAAAAAAAAAAAAAAA
35E#4259440000000000
35F#4C69011769000000
307#1234567856494300
"""


def test_state_reproduces_the_public_victron_vectors():
    result = run("decode", "--profile", "victron", "--state", stdin=VICTRON_VECTORS)
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert state == {
        "charge_voltage_v": 58.4,
        "charge_current_a": 128.0,
        "discharge_current_a": 128.0,
        "discharge_voltage_v": 43.0,
        "soc_pct": 67.0,
        "soh_pct": 100.0,
        "voltage_v": 53.1,
        "current_a": -0.7,
        "temperature_c": 14.0,
        "alarms": [],
        "warnings": [],
        "manufacturer": "BYD",
        "firmware": "1.17",
        "capacity_ah": 105.0,
    }


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_state_of_every_profile_is_the_contract_shape(name):
    """Traffic bmslink sends as NAME decodes back, through the CLI, to what was sent."""
    profile = PROFILES[name]
    series, capacity = PACK_FOR_CLASS[profile.voltage_class]
    bms = SimBms(Pack.lfp(series, capacity, soc=0.6), BmsSettings(capacity_ah=capacity))
    sent, _ = guard(bms.state().merged(dict(profile.identity)), profile, None)
    lines = "".join(
        candump_line(float(i), spec.id, spec.extended, data, "can0")
        for i, (spec, data) in enumerate(profile.encode_round(sent).frames)
    )
    result = run("decode", "--profile", name, "--state", stdin=lines)
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert set(state) <= set(STATE_KEYS), set(state) - set(STATE_KEYS)
    assert BatteryState.from_dict(state).to_dict() == state  # the contract's own parser agrees
    resolution = {
        "voltage_v": 0.1,
        "soc_pct": 0.5,
        "charge_voltage_v": 0.1,
        "charge_current_a": 0.1,
    }
    for key, step in resolution.items():  # the coarsest step any profile uses (SoC in whole %)
        assert state[key] == pytest.approx(getattr(sent, key), abs=step + 1e-9), key


def test_later_frames_win_when_merging():
    frames = "355#1A006400\n355#43006400\n"
    result = run("decode", "-p", "pylontech", "--state", stdin=frames)
    assert json.loads(result.stdout)["soc_pct"] == 67.0


def test_auto_picks_pylontech():
    result = run("decode", "--profile", "auto", "--state", stdin=SPEC_FRAMES)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["modules"] == 10


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("351#1402740E\n", "line 1: 0x351 limits: wrong length 4, expected 6..8 bytes"),
        ("355#1A006400\n123#00\n", "line 2: unknown 11-bit id 0x123 for profile pylontech"),
        ("351#14027\n", "line 1: odd number of hex digits in data '14027'"),
        ("hello\n", "line 1: cannot parse 'hello' as a CAN frame"),
    ],
)
@pytest.mark.parametrize("state", [False, True])
def test_bad_input_prints_nothing_and_names_the_problem(stdin, message, state):
    args = ["decode", "-p", "pylontech", *(["--state"] if state else [])]
    result = run(*args, stdin=stdin)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == message


def test_keep_going_skips_bad_lines_but_still_fails():
    result = run(
        "decode", "-p", "pylontech", "--keep-going", stdin="355#1A006400\n35X#00\n35C#C000\n"
    )
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 2
    assert "line 2: bad CAN id '35X': not hex" in result.stderr


def test_unknown_profile_is_a_usage_error():
    result = run("decode", "-p", "solarix", stdin="355#1A006400\n")
    assert result.exit_code == 2
    assert "unknown profile 'solarix'; known: byd-hvs, givenergy" in result.stderr
    assert result.stdout == ""


def test_missing_file_is_named(tmp_path):
    result = run("decode", "-p", "pylontech", str(tmp_path / "nope.log"))
    assert result.exit_code == 1
    assert "cannot read" in result.stderr and "nope.log" in result.stderr


def test_dbc_command_output_loads_in_cantools(tmp_path):
    result = run("dbc", "pylontech")
    assert result.exit_code == 0
    db = cantools.database.load_string(result.stdout, "dbc")
    assert db.decode_message(0x355, bytes.fromhex("1A006400")) == {"soc_pct": 26, "soh_pct": 100}
    out = tmp_path / "pylontech.dbc"
    assert run("dbc", "pylontech", "-o", str(out)).exit_code == 0
    assert out.read_text() == result.stdout


def test_installed_console_script_separates_streams(tmp_path):
    """The real entry point, as a user runs it: JSON on stdout, errors on stderr."""
    exe = [sys.executable, "-c", "from bmslink.cli.main import run; run()"]
    good = subprocess.run(
        [*exe, "decode", "-p", "pylontech", "--state"],
        input=SPEC_FRAMES,
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0 and json.loads(good.stdout)["soc_pct"] == 26.0
    bad = subprocess.run(
        [*exe, "decode", "-p", "pylontech"],
        input="356#0213\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip() == "line 1: 0x356 measurements: wrong length 2, expected 6..8 bytes"
