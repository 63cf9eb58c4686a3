"""``bmslink dbc NAME``: a profile's frame table as a DBC file."""

from __future__ import annotations

from pathlib import Path

import typer

from bmslink.cli.common import fail, profile_or_exit


def dbc_command(
    name: str = typer.Argument(..., help="Profile name, e.g. pylontech."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here, not stdout."),
) -> None:
    """Print the profile as a DBC database (SavvyCAN, cantools, CANdb++ read it)."""
    from bmslink.dbc import dbc_text  # cantools is slow to import: only this command needs it

    text = dbc_text(profile_or_exit(name))
    if output is None:
        typer.echo(text, nl=False)
        return
    tmp = output.with_name(output.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        fail(f"cannot write {output}: {exc.strerror or exc}")


def register(app: typer.Typer) -> None:
    app.command("dbc")(dbc_command)
