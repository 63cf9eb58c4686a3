"""``bmslink rs485``: decode per shared/contract.md, and serve <-> poll as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from bmslink.cli.main import app
from bmslink.sim.nullmodem import NullModem

runner = CliRunner()


def run(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["rs485", *args], input=stdin)


def test_decode_a_request() -> None:
    result = run("decode", "~20024642E00202FD33\\r")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "ver": "20", "adr": "02", "cid1": "46", "cid2": "42", "info": "02",
    }  # fmt: skip


def test_decode_an_answer_to_a_battery_state() -> None:
    e2 = (
        "~20014600C06E11010F0D450D440D450D440D450D440D3E0D450D4A0D4A0D4B0D4A0D4A0D4A0D4A"
        "050BC30BC30BC30BCD0BCD0000C725BF6802C3500002E553"
    )
    result = run("decode", "--command", "42", e2)
    assert result.exit_code == 0, result.stderr
    state = json.loads(result.stdout)
    assert state["voltage_v"] == 50.981 and len(state["cells_v"]) == 15 and state["cycles"] == 2


def test_decode_parameters_to_a_flat_object() -> None:
    result = run("decode", "-c", "92", "~20024600B014026EF05AA0022BFDD5C0F915")
    assert json.loads(result.stdout)["discharge_current_a"] == 55.5
    result = run("decode", "-c", "0x4F", "~200246000000FDB2")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"protocol_version": "2.0"}


def test_decode_from_stdin() -> None:
    result = run("decode", "-", stdin="~20024642E00202FD33\r\n")
    assert json.loads(result.stdout)["cid2"] == "42"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("~1203400456ABCEFEFC72\\r",), 1, "checksum mismatch: expected FC71, got FC72"),
        (("~20024642E00202FD34",), 1, "checksum mismatch: expected FD33, got FD34"),
        (("-c", "42", "~200246020000FDB0"), 1, "RTN 02 (CHKSUM error)"),
        (("~20024600B014026EF05AA0022BFDD5C0F915",), 1, "give --command"),
        (("-c", "77", "~20024642E00202FD33"), 2, "unknown command 77"),
        (("-c", "xyz", "~20024642E00202FD33"), 2, "not a hex command"),
    ],
)
def test_decode_errors_exit_non_zero_with_nothing_on_stdout(
    args: tuple[str, ...], code: int, message: str
) -> None:
    result = run("decode", *args)
    assert result.exit_code == code
    assert result.stdout == ""
    assert message in result.stderr


@pytest.fixture
def modem() -> Iterator[NullModem]:
    with NullModem() as m:
        yield m


def serve(port: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bmslink", "rs485", "serve", "--port", port,
         "--duration", "60", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


@pytest.mark.parametrize("baud", ["9600", "115200"])
def test_serve_and_poll_commands_interoperate(modem: NullModem, baud: str) -> None:
    server = serve(modem.a_path, "--baud", baud, "--address", "2", "--address", "3")
    assert server.stderr is not None
    assert "serving pylontech for address(es) 2, 3" in server.stderr.readline()  # port is open
    try:
        result = run(
            "poll", "--port", modem.b_path, "--baud", baud, "--address", "2", "--address", "3",
            "--count", "2", "--interval", "0", "--json", "--timeout", "2",
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(10)
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["address"] for r in records] == [2, 3, 2, 3]
    for r in records:
        state = r["state"]
        assert 40 < state["voltage_v"] < 60 and len(state["cells_v"]) == 16
        assert state["charge_current_a"] <= 50.0  # the sim's 100 Ah packs: 0.5 C rating
        assert state["manufacturer"] == "PYLON"


def test_poll_gives_up_with_a_clear_error(modem: NullModem) -> None:
    result = run(
        "poll", "--port", modem.b_path, "--timeout", "0.05", "--retries", "0",
        "--max-silent", "2", "--interval", "0",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "address 02 on" in result.stderr and "answered nothing in 2 polls" in result.stderr


def test_poll_names_a_port_that_does_not_exist() -> None:
    result = run("poll", "--port", "/dev/does-not-exist", "--count", "1")
    assert result.exit_code == 1
    assert "cannot open /dev/does-not-exist at 9600 baud" in result.stderr


def test_serve_refuses_unknown_sources(modem: NullModem) -> None:
    result = run("serve", "--port", modem.a_path, "--source", "can0", "--duration", "0")
    assert result.exit_code == 1 and "only 'sim'" in result.stderr


@pytest.mark.parametrize("baud", ["9600", "115200"])
def test_modbus_serve_and_poll_commands_interoperate(modem: NullModem, baud: str) -> None:
    server = serve(modem.a_path, "--protocol", "modbus", "--baud", baud, "--address", "1")
    assert server.stderr is not None
    assert "serving modbus for address(es) 1" in server.stderr.readline()
    try:
        result = run(
            "poll", "--protocol", "modbus", "--port", modem.b_path, "--baud", baud,
            "--address", "1", "--count", "2", "--interval", "0", "--json", "--timeout", "1",
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(10)
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2
    for r in records:
        assert r["address"] == 1
        assert len(r["state"]["cells_v"]) == 16 and r["state"]["charge_current_a"] <= 50.0


def test_modbus_poll_gives_up_with_a_clear_error(modem: NullModem) -> None:
    result = run(
        "poll", "--protocol", "modbus", "--port", modem.b_path, "--timeout", "0.05",
        "--retries", "0", "--max-silent", "2", "--interval", "0",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "Modbus slave 1 on" in result.stderr and "answered nothing in 2 polls" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--address", "0"), "--address 0: pylontech addresses are 1..254"),
        (("--protocol", "modbus", "--address", "250"), "modbus addresses are 1..247"),
        (("--address", "2", "--address", "2"), "--address repeats"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "poll"])
def test_bad_addresses_are_refused_by_name(
    modem: NullModem, command: str, args: tuple[str, ...], message: str
) -> None:
    result = run(command, "--port", modem.a_path, *args)
    assert result.exit_code == 2
    assert message in result.stderr
