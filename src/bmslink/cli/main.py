"""The ``bmslink`` command: one module per command, registered here."""

from __future__ import annotations

import typer

from bmslink import __version__
from bmslink.cli import (
    analyze,
    bms,
    bridge,
    cable,
    check,
    dbc,
    decode,
    demo,
    detect,
    doctor,
    inverters,
    profiles,
    rs485,
    sim_adapter,
    simulate,
    sniff,
)

app = typer.Typer(
    name="bmslink",
    help=(
        "Make home batteries and hybrid inverters talk: "
        "decode, emulate, bridge, diagnose, simulate."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bmslink {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """bmslink: battery <-> inverter protocols in both roles, with a simulator."""


COMMANDS = (
    decode,
    dbc,
    profiles,
    inverters,
    cable,
    detect,
    check,
    sniff,
    analyze,
    doctor,
    demo,
    simulate,
    sim_adapter,
    rs485,
    bms,
    bridge,
)
for module in COMMANDS:
    module.register(app)


def run() -> None:
    app()
