"""The ``bmslink`` command: one module per command, registered here."""

from __future__ import annotations

import typer

from bmslink import __version__
from bmslink.cli import (
    bms,
    bridge,
    check,
    dbc,
    decode,
    demo,
    detect,
    inverters,
    profiles,
    rs485,
    simulate,
)

app = typer.Typer(
    name="bmslink",
    help="Make home batteries and hybrid inverters talk: decode, emulate, bridge, simulate.",
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


for module in (decode, dbc, profiles, inverters, detect, check, demo, simulate, rs485, bms, bridge):
    module.register(app)


def run() -> None:
    app()
