"""``bmslink rs485``: Pylontech ASCII and Modbus RTU on a serial line, in both roles.

- ``decode``: one Pylontech-style frame to JSON (shared/contract.md).
- ``serve``: be the battery; answer an inverter's polls from live states.
- ``poll``: be the inverter; poll batteries and print their states.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable, Generator
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

from bmslink.cli.common import fail
from bmslink.clock import MonotonicClock
from bmslink.errors import BmslinkError, DecodeError
from bmslink.limits import HardwareLimits
from bmslink.links.serial_port import LinkError, SerialLink
from bmslink.rs485.frame import parse_frame
from bmslink.rs485.pylontech import (
    SystemParameters,
    command_spec,
    decode_request,
    decode_response,
)
from bmslink.state import BatteryState

if TYPE_CHECKING:
    from bmslink.roles.rs485_battery import PylonResponder

app = typer.Typer(
    name="rs485",
    help="RS485 protocols: Pylontech ASCII and Modbus RTU (Seplos V3 map), both roles.",
    no_args_is_help=True,
)


class Protocol(StrEnum):
    pylontech = "pylontech"
    modbus = "modbus"


DEFAULT_BAUD = {Protocol.pylontech: 9600, Protocol.modbus: 19200}
DEFAULT_ADDRESS = {Protocol.pylontech: 2, Protocol.modbus: 1}


#: Addresses each protocol allows (Pylontech reserves 0 and 255; Modbus slave ids 1-247).
ADDRESS_RANGE = {Protocol.pylontech: (1, 254), Protocol.modbus: (1, 247)}


def _addresses(given: list[int] | None, protocol: Protocol) -> list[int]:
    addresses = given or [DEFAULT_ADDRESS[protocol]]
    low, high = ADDRESS_RANGE[protocol]
    for adr in addresses:
        if not low <= adr <= high:
            fail(f"--address {adr}: {protocol.value} addresses are {low}..{high}", code=2)
    if len(set(addresses)) != len(addresses):
        fail(f"--address repeats: {addresses}", code=2)
    return addresses


def _command_value(text: str) -> int:
    try:
        value = int(text.removeprefix("0x").removeprefix("0X"), 16)
    except ValueError:
        fail(f"--command {text!r} is not a hex command such as 42", code=2)
    try:
        command_spec(value)
    except DecodeError as exc:
        fail(str(exc), code=2)
    return value


@app.command("decode")
def decode_command(
    frame: str = typer.Argument(..., help="A frame such as '~20024642E00202FD33' ('-' = stdin)."),
    command: str | None = typer.Option(
        None, "--command", "-c", help="For an answer: the CID2 of the request (42, 44, 47, 92...)."
    ),
) -> None:
    """Decode one Pylontech-style ASCII frame: a request, or (with --command) an answer."""
    text = sys.stdin.readline() if frame == "-" else frame
    text = text.strip().removesuffix("\\r")
    try:
        parsed = parse_frame(text)
    except DecodeError as exc:
        fail(str(exc))
    if command is None:
        if parsed.cid2 == 0 and parsed.info:
            fail(
                "this looks like an answer (CID2 00 = RTN normal): "
                "give --command with the request's CID2, e.g. --command 42"
            )
        typer.echo(json.dumps(decode_request(parsed)))
        return
    try:
        decoded = decode_response(parsed, _command_value(command))
    except DecodeError as exc:
        fail(str(exc))
    typer.echo(decoded.to_json() if isinstance(decoded, BatteryState) else json.dumps(decoded))


def _stop_flag() -> Callable[[], bool]:
    stopped = False

    def stop(*_: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return lambda: stopped


def _open(port: str, baud: int) -> SerialLink:
    link = SerialLink(port, baud)
    try:
        link.open()
    except LinkError as exc:
        fail(str(exc))
    return link


@app.command("serve")
def serve_command(
    port: str = typer.Option(..., "--port", help="Serial port, e.g. /dev/ttyUSB0."),
    baud: int | None = typer.Option(
        None, "--baud", help="Baud rate (default 9600 for pylontech, 19200 for modbus)."
    ),
    address: list[int] | None = typer.Option(
        None, "--address", help="Address to answer for; repeat for several packs (default 2/1)."
    ),
    protocol: Protocol = typer.Option(Protocol.pylontech, "--protocol", help="Wire protocol."),
    source: str = typer.Option("sim", "--source", help="Where states come from: sim."),
    speed: float = typer.Option(
        60.0, "--speed", min=0.0, help="sim: simulated seconds per wall second."
    ),
    capacity: float = typer.Option(100.0, "--capacity", min=1.0, help="sim: Ah per pack."),
    duration: float | None = typer.Option(
        None, "--duration", min=0.0, help="Stop after this many seconds (default: until Ctrl-C)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No status lines on stderr."),
) -> None:
    """Be the battery: answer an inverter's polls on PORT from live simulated packs."""
    from bmslink.sim.live import LivePacks

    if source != "sim":
        fail(f"--source {source!r}: only 'sim' is available (a BMS source comes with the bridge)")
    addresses = _addresses(address, protocol)
    baudrate = baud or DEFAULT_BAUD[protocol]
    clock = MonotonicClock()
    packs = LivePacks(len(addresses), clock, capacity_ah=capacity, speed=speed)
    index = {adr: i for i, adr in enumerate(sorted(addresses))}

    def state_for(adr: int) -> BatteryState | None:
        i = index.get(adr)
        return None if i is None else packs.state(i)

    started = clock.now()
    stopped = _stop_flag()

    def should_stop() -> bool:
        return stopped() or (duration is not None and clock.now() - started >= duration)

    banner = (
        f"serving {protocol.value} for address(es) {', '.join(map(str, addresses))} "
        f"on {port} at {baudrate} baud from {len(addresses)} simulated pack(s); Ctrl-C stops"
    )
    if protocol == Protocol.modbus:
        _serve_modbus(
            port, baudrate, addresses, state_for, packs.hardware, should_stop, quiet, banner
        )
        return
    from bmslink.roles.rs485_battery import PylonResponder, PylonSerialServer

    s = packs.settings
    n = packs.series_cells
    responder = PylonResponder(
        addresses,
        state_for,
        clock=clock,
        hardware=packs.hardware,
        parameters=SystemParameters(
            cell_high_voltage_v=s.cell_ovp_v,
            cell_low_voltage_v=s.cell_low_warning_v,
            cell_under_voltage_v=s.cell_uvp_v,
            charge_high_temperature_c=s.charge_temp_max_c,
            charge_low_temperature_c=s.charge_temp_min_c,
            charge_current_a=s.max_charge_current_a,
            module_high_voltage_v=round(s.cell_ovp_v * n, 3),
            module_low_voltage_v=round(s.cell_low_warning_v * n, 3),
            module_under_voltage_v=round(s.cell_uvp_v * n, 3),
            discharge_high_temperature_c=s.discharge_temp_max_c,
            discharge_low_temperature_c=s.discharge_temp_min_c,
            discharge_current_a=s.max_discharge_current_a,
        ),
    )
    server = PylonSerialServer(_open(port, baudrate), responder)
    if not quiet:
        typer.echo(banner, err=True)
    last_report = clock.now()
    while not should_stop():
        server.serve_once()
        if not quiet and clock.now() - last_report >= 10.0:
            last_report = clock.now()
            typer.echo(_serve_status(responder), err=True)
    server.link.close()
    if not quiet:
        typer.echo(_serve_status(responder), err=True)


def _serve_status(responder: PylonResponder) -> str:
    errors = ", ".join(f"RTN {k:02X}: {v}" for k, v in sorted(responder.errors.items()))
    silent = ", ".join(f"{k}: {v}" for k, v in responder.silent.items())
    return (
        f"requests {responder.requests}, answered {responder.answered}, "
        f"for other addresses {responder.not_ours}"
        + (f", errors sent ({errors})" if errors else "")
        + (f", left unanswered ({silent})" if silent else "")
    )


def _serve_modbus(
    port: str,
    baudrate: int,
    addresses: list[int],
    state_for: Callable[[int], BatteryState | None],
    hardware: HardwareLimits,
    should_stop: Callable[[], bool],
    quiet: bool,
    banner: str,
) -> None:
    from bmslink.roles.modbus_battery import ModbusBattery

    battery = ModbusBattery(port, addresses, state_for, baudrate=baudrate, hardware=hardware)

    async def run() -> None:
        await battery.start()
        if not quiet:
            typer.echo(banner, err=True)
        try:
            while not should_stop():
                await asyncio.sleep(0.1)
        finally:
            await battery.stop()

    try:
        asyncio.run(run())
    except BmslinkError as exc:
        fail(str(exc))
    if not quiet:
        typer.echo(battery.status(), err=True)


@app.command("poll")
def poll_command(
    port: str = typer.Option(..., "--port", help="Serial port, e.g. /dev/ttyUSB0."),
    baud: int | None = typer.Option(
        None, "--baud", help="Baud rate (default 9600 for pylontech, 19200 for modbus)."
    ),
    address: list[int] | None = typer.Option(
        None, "--address", help="Address to poll; repeat for several (default 2/1)."
    ),
    protocol: Protocol = typer.Option(Protocol.pylontech, "--protocol", help="Wire protocol."),
    interval: float = typer.Option(1.0, "--interval", min=0.0, help="Seconds between cycles."),
    count: int | None = typer.Option(None, "--count", min=1, help="Stop after N cycles."),
    timeout: float = typer.Option(
        1.0, "--timeout", min=0.01, help="Seconds to wait for an answer."
    ),
    retries: int = typer.Option(2, "--retries", min=0, help="Retries per request, with backoff."),
    max_silent: int = typer.Option(
        5, "--max-silent", min=1, help="Give up after this many silent cycles in a row."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per address and cycle."),
) -> None:
    """Be the inverter: poll batteries on PORT and print their states."""
    addresses = _addresses(address, protocol)
    baudrate = baud or DEFAULT_BAUD[protocol]
    where = f"{port} at {baudrate} baud"
    stopped = _stop_flag()
    cycles = (
        _modbus_cycles(port, baudrate, addresses, timeout, retries, max_silent, where)
        if protocol == Protocol.modbus
        else _pylon_cycles(_open(port, baudrate), addresses, timeout, retries, max_silent, where)
    )
    done = 0
    try:
        for result in cycles:
            t = time.time()
            for adr, state in result.items():
                _print_state(adr, state, t, as_json)
            done += 1
            if (count is not None and done >= count) or stopped():
                break
            time.sleep(interval)
    except BmslinkError as exc:  # a silent battery, a lost or unopenable port
        fail(str(exc))
    finally:
        cycles.close()  # closes the port


Cycle = dict[int, BatteryState | str | None]  # a state, or why there is none


def _reported(result: dict[int, BatteryState | None], problems: dict[int, str]) -> Cycle:
    return {adr: state if state is not None else problems.get(adr) for adr, state in result.items()}


def _pylon_cycles(
    link: SerialLink,
    addresses: list[int],
    timeout: float,
    retries: int,
    max_silent: int,
    where: str,
) -> Generator[Cycle, None, None]:
    from bmslink.roles.rs485_inverter import PylonPoller, SerialTransport

    poller = PylonPoller(
        SerialTransport(link),
        addresses,
        timeout_s=timeout,
        retries=retries,
        max_silent=max_silent,
        where=where,
    )
    try:
        while True:
            yield _reported(poller.cycle(), poller.last_problem)
    finally:
        link.close()


def _modbus_cycles(
    port: str,
    baudrate: int,
    addresses: list[int],
    timeout: float,
    retries: int,
    max_silent: int,
    where: str,
) -> Generator[Cycle, None, None]:
    from bmslink.links.modbus import SeplosV3Client
    from bmslink.roles.modbus_inverter import ModbusPoller

    with asyncio.Runner() as runner:  # one event loop for the client across cycles
        client = SeplosV3Client(port, baudrate=baudrate, timeout_s=timeout)
        try:
            runner.run(client.connect())
            poller = ModbusPoller(
                client, addresses, retries=retries, max_silent=max_silent, where=where
            )
            while True:
                yield _reported(runner.run(poller.cycle()), poller.last_problem)
        finally:
            client.close()


def _print_state(adr: int, state: BatteryState | str | None, t: float, as_json: bool) -> None:
    if as_json:
        record: dict[str, Any] = {"time": round(t, 3), "address": adr}
        if isinstance(state, BatteryState):
            record["state"] = state.to_dict()
        else:
            record["error"] = state or "no answer"
        typer.echo(json.dumps(record))
        return
    if not isinstance(state, BatteryState):
        typer.echo(f"address {adr}: no answer ({state or 'silent'})")
        return
    parts = [f"address {adr}:"]
    for key, fmt in (
        ("soc_pct", "SoC {:.1f} %"),
        ("voltage_v", "{:.2f} V"),
        ("current_a", "{:+.1f} A"),
        ("cell_min_v", "cells {:.3f}"),
        ("cell_max_v", "..{:.3f} V"),
        ("cell_temp_max_c", "max {:.1f} °C"),
        ("charge_voltage_v", "CVL {:.2f} V"),
        ("charge_current_a", "CCL {:.1f} A"),
        ("discharge_current_a", "DCL {:.1f} A"),
    ):
        value = getattr(state, key)
        if value is not None:
            parts.append(fmt.format(value))
    if state.alarms:
        parts.append("ALARMS " + ",".join(state.alarms))
    if state.warnings:
        parts.append("warnings " + ",".join(state.warnings))
    typer.echo(" ".join(parts))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="rs485")
