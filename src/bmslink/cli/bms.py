"""``bmslink bms``: read a DIY BMS live, decode its raw frames, list the types."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from bmslink.bms.registry import BMS_TYPES, UnknownBmsType, get_bms, protocol_class
from bmslink.cli.common import fail
from bmslink.errors import DecodeError
from bmslink.state import BatteryState

if TYPE_CHECKING:
    from bmslink.bms.base import BmsOptions

app = typer.Typer(help="Read DIY BMSs (JK, JK-PB, JBD, Daly, Seplos, Seplos V3, Pace).")

TYPE_HELP = "BMS type: " + ", ".join(BMS_TYPES)


def _options(invert_current: bool, kelvin_offset: float | None, jk_current: str) -> BmsOptions:
    from bmslink.bms.base import BmsOptions  # loaded by the command that needs it, not at start-up

    if jk_current not in ("auto", "sign-bit", "offset"):
        fail(f"--jk-current {jk_current!r}: expected auto, sign-bit or offset", code=2)
    return BmsOptions(invert_current, kelvin_offset, jk_current)  # type: ignore[arg-type]


@app.command("decode")
def decode_command(
    frames: list[str] = typer.Argument(..., help="Raw frames as hex (ASCII frames as ~...)."),
    bms_type: str = typer.Option(..., "--type", "-t", help=TYPE_HELP),
    invert_current: bool = typer.Option(False, "--invert-current", help="Negate the current."),
    kelvin_offset: float | None = typer.Option(
        None, "--kelvin-offset", help="Raw value of 0 °C in 0.1 K fields (default per type)."
    ),
    jk_current: str = typer.Option("auto", "--jk-current", help="JK: auto, sign-bit or offset."),
) -> None:
    """Decode raw BMS frames into one BatteryState (JSON), merged over all frames given."""
    try:
        protocol = get_bms(bms_type, _options(invert_current, kelvin_offset, jk_current))
    except UnknownBmsType as exc:
        fail(str(exc), code=2)
    from bmslink.bms.base import hex_frames

    try:
        state = protocol.decode(hex_frames(frames))
    except DecodeError as exc:
        fail(str(exc))
    typer.echo(state.to_json())


@app.command("types")
def types_command() -> None:
    """The BMS types bmslink reads, with their line settings and addresses."""
    table = Table("type", "protocol", "baud", "addresses")
    for name in BMS_TYPES:
        cls = protocol_class(name)
        r = cls.addresses
        table.add_row(name, cls.title, str(cls.baudrate), f"{r.start}..{r.stop - 1}")
    Console().print(table)


def _summary(state: BatteryState) -> str:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    cells = state.cells_v or []
    spread = f"{(max(cells) - min(cells)) * 1000:.0f} mV" if cells else "-"
    parts = [
        f"{num(state.voltage_v, '.2f')} V",
        f"{num(state.current_a, '+.2f')} A",
        f"SoC {num(state.soc_pct, '.1f')} %",
        f"cells {len(cells)} ({num(state.cell_min_v, '.3f')}-{num(state.cell_max_v, '.3f')} V,"
        f" spread {spread})",
        f"T {num(state.cell_temp_min_c, '.1f')}..{num(state.cell_temp_max_c, '.1f')} °C",
        f"charge {'on' if state.charge_enable else 'off' if state.charge_enable is False else '-'}",
        f"discharge "
        f"{'on' if state.discharge_enable else 'off' if state.discharge_enable is False else '-'}",
    ]
    if state.alarms:
        parts.append("ALARMS " + ",".join(state.alarms))
    if state.warnings:
        parts.append("warnings " + ",".join(state.warnings))
    return "  ".join(parts)


@app.command("read")
def read_command(
    bms_type: str = typer.Option(..., "--type", "-t", help=TYPE_HELP),
    port: str = typer.Option(
        ..., "--port", "-p", help="Serial port, or 'sim' for a simulated BMS of this type."
    ),
    address: list[int] | None = typer.Option(
        None, "--address", "-a", help="Address on the bus (repeat for several packs)."
    ),
    baud: int | None = typer.Option(None, "--baud", help="Baud rate (default per type)."),
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="Seconds between polls."),
    count: int = typer.Option(0, "--count", "-n", min=0, help="Polls to run; 0 = until Ctrl-C."),
    timeout: float = typer.Option(0.5, "--timeout", min=0.01, help="Seconds to wait per reply."),
    retries: int = typer.Option(2, "--retries", min=0, max=10, help="Retries per request."),
    as_json: bool = typer.Option(False, "--json", help="One BatteryState JSON object per poll."),
    invert_current: bool = typer.Option(False, "--invert-current", help="Negate the current."),
    kelvin_offset: float | None = typer.Option(None, "--kelvin-offset"),
    jk_current: str = typer.Option("auto", "--jk-current", help="JK: auto, sign-bit or offset."),
) -> None:
    """Poll a BMS and show its live state; exit 1 if the last poll got no answer."""
    from bmslink.bms.driver import BmsDriver
    from bmslink.links.serial_port import LinkError, SerialLink
    from bmslink.sim.bms_device import SimulatedPort
    from bmslink.sim.live import LivePacks

    options = _options(invert_current, kelvin_offset, jk_current)
    try:
        protocol = get_bms(bms_type, options)
    except UnknownBmsType as exc:
        fail(str(exc), code=2)
    addresses = address or [protocol.default_address]
    for a in addresses:
        try:
            protocol.check_address(a)
        except ValueError as exc:
            fail(str(exc), code=2)
    sim: SimulatedPort | None = None
    if port == "sim":
        from bmslink.clock import MonotonicClock

        live = LivePacks(len(addresses), MonotonicClock(), speed=60.0)
        index = {a: i for i, a in enumerate(addresses)}
        sim = SimulatedPort(bms_type, lambda a: live.state(index[a]) if a in index else None)
        port = sim.path
    link = SerialLink(port, baud or protocol.baudrate)
    ok = True
    try:
        try:
            link.open()
        except LinkError as exc:
            fail(str(exc))
        driver = BmsDriver(protocol, link, addresses, timeout_s=timeout, retries=retries)
        done = 0
        while count == 0 or done < count:
            started = time.monotonic()
            for result in driver.cycle():
                ok = result.state is not None
                for note in result.notes:
                    typer.echo(f"address {result.address}: {note}", err=True)
                if result.state is None:
                    typer.echo(f"address {result.address}: {result.error}", err=True)
                elif as_json:
                    typer.echo(result.state.to_json())
                else:
                    typer.echo(f"address {result.address}: {_summary(result.state)}")
            done += 1
            if count == 0 or done < count:
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
    finally:
        link.close()
        if sim is not None:
            sim.close()
    if not ok:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="bms")
