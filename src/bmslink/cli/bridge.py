"""``bmslink bridge``: BMSs in, one bank out to inverters, with link-loss safety.

``--config bridge.toml`` (see examples/bridge.toml) or the short form
``--bms jk:/dev/ttyUSB0 --inverter pylontech:socketcan:can0``; both are
validated the same way before anything is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bmslink.cli.common import fail

if TYPE_CHECKING:  # the bridge (python-can, pymodbus) loads only when the command runs
    from bmslink.bridge.runner import BridgeRunner

INVERTER_HELP = (
    "PROFILE:INTERFACE:CHANNEL for CAN (pylontech:socketcan:can0), "
    "pylontech-rs485:PORT[:ADDRESS] or modbus:PORT[:SLAVE]; repeatable."
)


def parse_bms(text: str, index: int, max_charge: float, max_discharge: float) -> dict[str, object]:
    """``TYPE:PORT[:ADDR,ADDR]`` as a [[bms]] table."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        fail(f"--bms {text!r}: expected TYPE:PORT or TYPE:PORT:ADDRESS[,ADDRESS...]", code=2)
    entry: dict[str, object] = {
        "name": f"pack{index}",
        "type": parts[0],
        "port": parts[1],
        "max_charge_current_a": max_charge,
        "max_discharge_current_a": max_discharge,
    }
    if len(parts) == 3:
        try:
            entry["addresses"] = [int(a, 0) for a in parts[2].split(",")]
        except ValueError:
            fail(f"--bms {text!r}: addresses must be numbers, got {parts[2]!r}", code=2)
    return entry


def parse_inverter(text: str) -> dict[str, object]:
    """The short inverter forms as an [[inverter]] table."""
    parts = text.split(":")
    kind = parts[0]
    if kind in ("pylontech-rs485", "modbus"):
        if len(parts) not in (2, 3) or not parts[1]:
            fail(f"--inverter {text!r}: expected {kind}:PORT[:ADDRESS]", code=2)
        entry: dict[str, object] = {"kind": kind, "port": parts[1]}
        if len(parts) == 3:
            try:
                entry["address" if kind == "pylontech-rs485" else "slave"] = int(parts[2], 0)
            except ValueError:
                fail(f"--inverter {text!r}: {parts[2]!r} is not a number", code=2)
        return entry
    if len(parts) != 3 or not all(parts):
        fail(f"--inverter {text!r}: expected {INVERTER_HELP}", code=2)
    return {"kind": "can", "profile": parts[0], "interface": parts[1], "channel": parts[2]}


def bridge_command(
    config: Path | None = typer.Option(None, "--config", "-c", help="Bridge TOML file."),
    bms: list[str] | None = typer.Option(
        None, "--bms", help="TYPE:PORT[:ADDR,...] ('sim' as PORT: a simulated BMS); repeatable."
    ),
    inverter: list[str] | None = typer.Option(None, "--inverter", help=INVERTER_HELP),
    max_charge: float = typer.Option(
        100.0, "--max-charge-current", min=0.1, help="Short form: hardware and per-pack limit, A."
    ),
    max_discharge: float = typer.Option(
        100.0, "--max-discharge-current", min=0.1, help="Short form: as --max-charge-current."
    ),
    cells: int = typer.Option(16, "--cells", min=1, help="Short form: cells in series."),
    duration: float = typer.Option(0.0, "--duration", min=0.0, help="Stop after S s; 0 = never."),
    status_every: float = typer.Option(
        5.0, "--status-every", min=0.1, help="Seconds between status lines."
    ),
    as_json: bool = typer.Option(False, "--json", help="Status lines as JSON objects."),
    sim_speed: float = typer.Option(
        60.0, "--sim-speed", min=0.0, help="Simulated seconds per second for 'sim' BMSs."
    ),
) -> None:
    """Bridge BMSs to inverters: parallel packs as one bank, fail-safe on link loss."""
    from bmslink.bridge.config import ConfigError, load, validate
    from bmslink.bridge.runner import BridgeRunner
    from bmslink.links.serial_port import LinkError

    try:
        if config is not None:
            if bms or inverter:
                fail("give either --config or --bms/--inverter, not both", code=2)
            cfg = load(config)
        else:
            if not bms or not inverter:
                fail("give --config FILE, or at least one --bms and one --inverter", code=2)
            data = {
                "bank": {"series_cells": cells},
                "hardware": {
                    "max_charge_current_a": max_charge,
                    "max_discharge_current_a": max_discharge,
                },
                "bms": [parse_bms(b, i, max_charge, max_discharge) for i, b in enumerate(bms, 1)],
                "inverter": [parse_inverter(i) for i in inverter],
            }
            cfg = validate(data, "command line")
    except ConfigError as exc:
        fail(str(exc), code=2)

    try:
        runner = BridgeRunner(cfg, sim_speed=sim_speed)
    except (LinkError, OSError, ValueError) as exc:
        fail(f"cannot start the bridge: {exc}")
    start = time.monotonic()
    shown_events = 0
    next_status = 0.0

    def on_tick(r: BridgeRunner) -> None:
        nonlocal shown_events, next_status
        now = time.monotonic() - start
        events = list(r.bridge.events)
        for event in events[shown_events:] if len(events) > shown_events else []:
            typer.echo(f"[{now:8.1f} s] {event.kind}: {event.detail}")
        shown_events = len(events)
        if now >= next_status:
            next_status = now + status_every
            typer.echo(status_line(r, now, as_json))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        if duration > 0:
            loop.call_later(duration, stop.set)
        await runner.run(stop, on_tick=on_tick)

    try:
        asyncio.run(main())
    finally:
        runner.close()


def status_line(runner: BridgeRunner, now: float, as_json: bool) -> str:
    """One line: phase, bank values, packs and sinks."""
    bridge = runner.bridge
    out = bridge.output
    state = out.state
    packs = f"{len(bridge.bank.combined)}/{len(bridge.packs)}"
    # where a pack's SoC came from, when it is not simply the BMS's own
    socs = ", ".join(f"{n} {s}" for n, s in bridge.soc_sources.items() if s != "bms")
    sinks = {s.name: s.inverter_online for s in bridge.sinks}
    control = bridge.control
    limited_by = (
        None
        if control is None or state is None
        else {
            "mode": control.mode,
            "cvl": control.cvl_reason,
            "ccl": control.ccl_reason,
            "dcl": control.dcl_reason,
        }
    )
    if as_json:
        return json.dumps(
            {
                "t_s": round(now, 1),
                "phase": out.phase,
                "reason": out.reason,
                "packs_combined": bridge.bank.combined,
                "notes": bridge.bank.notes,
                "inverter_online": sinks,
                "control": limited_by,
                "soc_sources": bridge.soc_sources,
                "state": None if state is None else state.to_dict(),
            }
        )
    if state is None:
        body = out.reason
    else:

        def num(v: float | None, fmt: str) -> str:
            return "-" if v is None else format(v, fmt)

        body = (
            f"{num(state.voltage_v, '.2f')} V {num(state.current_a, '+.1f')} A "
            f"SoC {num(state.soc_pct, '.1f')} % CCL {num(state.charge_current_a, '.1f')} A "
            f"DCL {num(state.discharge_current_a, '.1f')} A "
            f"CVL {num(state.charge_voltage_v, '.2f')} V"
        )
        if limited_by is not None:
            body += (
                f" [{limited_by['mode']}; CVL {limited_by['cvl']}, CCL {limited_by['ccl']}, "
                f"DCL {limited_by['dcl']}]"
            )
        if state.alarms:
            body += " ALARMS " + ",".join(state.alarms)
    online = ", ".join(
        f"{name}: {'keep-alive ok' if ok else 'no keep-alive' if ok is False else '?'}"
        for name, ok in sinks.items()
    )
    soc_part = f" | soc {socs}" if socs else ""
    return f"[{now:8.1f} s] {out.phase:<8} {body} | packs {packs}{soc_part} | {online}"


def register(app: typer.Typer) -> None:
    app.command("bridge")(bridge_command)
