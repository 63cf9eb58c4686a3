"""``bmslink check``: conformance of captured traffic to a profile and an inverter's quirks."""

from __future__ import annotations

import json

import typer

from bmslink.cli.common import consume_capture, inverter_or_exit, profile_or_exit


def check_command(
    source: str = typer.Argument("-", metavar="[FILE|-]", help="Capture file; - = stdin."),
    profile: str = typer.Option(..., "--profile", "-p", help="Profile the traffic should follow."),
    inverter: str | None = typer.Option(
        None, "--inverter", "-i", help="Inverter family from `bmslink inverters`."
    ),
    cells: int | None = typer.Option(
        None, "--cells", help="Cells in series (LFP); default 16 for a 48 V pack, else unchecked."
    ),
    as_json: bool = typer.Option(False, "--json", help="JSON for machines."),
) -> None:
    """Check traffic against a profile: missing frames, periods, lengths, values, keep-alive.

    Exit status 0 when there is no error (warnings allowed), 1 when there is one.
    """
    from bmslink.diagnose.check import check_batches

    chosen = profile_or_exit(profile)
    family = None
    if inverter is not None:
        family = inverter_or_exit(inverter)
    (stats, checker), report = consume_capture(
        source, lambda batches: check_batches(chosen, batches, inverter=family, cells=cells)
    )
    findings = checker.findings(stats, report)
    errors = sum(f.severity == "error" for f in findings)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "profile": chosen.name,
                    "inverter": family.name if family else None,
                    "cells": checker.cells,
                    "frames": stats.frames,
                    "errors": errors,
                    "warnings": sum(f.severity == "warning" for f in findings),
                    "findings": [f.to_dict() for f in findings],
                },
                indent=2,
            )
        )
    else:
        target = f" for {family.name}" if family else ""
        cell_note = f", {checker.cells}S LFP" if checker.cells else ""
        typer.echo(f"{stats.frames} frames checked against {chosen.name}{target}{cell_note}")
        if not findings:
            typer.echo("all ok: no findings")
        for f in findings:
            typer.echo(f"{f.severity.upper():<7} {f.code}: {f.message}")
            for item in f.evidence[:1]:
                if item.get("data") or item.get("id"):
                    typer.echo(f"        at {item['time']}: {item['id']} {item['data']}".rstrip())
            typer.echo(f"        -> {f.advice}")
    if errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("check")(check_command)
