"""``bmslink cable BMS INVERTER``: does a straight RJ45 patch cable work, or which pins to join.

Plain ASCII so the drawing survives any terminal, pipe or forum post; ``--json`` for machines.
The rules live in ``bmslink.diagnose.cable``; this module only looks names up and prints.
Exit status: 0 straight or custom, 1 unknown or no_port (or broken registry data), 2 bad input.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from bmslink.cli.common import (
    align_columns,
    bms_or_exit,
    fail,
    inverter_or_exit,
    registry_or_exit,
    wrap_field,
)

if TYPE_CHECKING:  # the registry and the rules load only when the command runs
    from bmslink.diagnose.cable import CablePlan
    from bmslink.registry import Bms

VERDICT_TEXT = {
    "straight": "a standard straight-through RJ45 patch cable works",
    "custom": "a straight patch cable does not fit: make the cable drawn below",
    "unknown": "a needed pin is not recorded, so no cable is drawn: find it first (see notes)",
    "no_port": "one side has no port of this bus",
}


def _bullets(title: str, items: tuple[str, ...] | list[str]) -> list[str]:
    lines = [f"{title}:"]
    for item in items:
        lines.extend(wrap_field("  -", item, indent=4))
    return lines


def render(plan: CablePlan) -> str:
    """The text report: verdict, drawing, notes, profile, termination, confidence, sources."""
    from bmslink.diagnose.cable import BUS_LABELS, build_hint, diagram
    from bmslink.registry import CONFIDENCE_TEXT

    bus = BUS_LABELS[plan.bus]
    lines = [f"{plan.bms.name} -> {plan.inverter.name} over {bus}: {plan.verdict}"]
    lines.extend(wrap_field("", VERDICT_TEXT[plan.verdict], indent=2))
    drawing = diagram(plan)
    if drawing:
        lines.append("")
        lines.extend(drawing)
    hint = build_hint(plan)
    if hint:
        lines.extend(wrap_field("", hint, indent=0))
    if plan.notes:
        lines.append("")
        lines.extend(_bullets("notes", plan.notes))
    lines.append("")
    lines.extend(wrap_field("profile:", plan.profiles.advice))
    if plan.termination:
        lines.extend(_bullets("termination", plan.termination))
    confidence = plan.confidence()
    parts = [
        f"{side} {CONFIDENCE_TEXT[level]}"
        for side, level in (("BMS", confidence["bms"]), ("inverter", confidence["inverter"]))
        if level is not None
    ]
    if parts:
        lines.extend(wrap_field("confidence:", "; ".join(parts)))
    sources = plan.sources()
    lines.append("sources:")
    lines.extend(wrap_field("  BMS:", sources["bms"]))
    lines.extend(wrap_field("  inverter:", sources["inverter"]))
    port_notes = [
        (f"  {plan.bms.name}:", plan.port.pinout.notes if plan.port else ""),
        (f"  {plan.inverter.name}:", plan.inverter.pinout.notes),
    ]
    if any(text for _, text in port_notes):
        lines.append("about the ports:")
        for label, text in port_notes:
            if text:
                lines.extend(wrap_field(label, text))
    return "\n".join(lines)


def _pins(bms: Bms, bus: str) -> str:
    port = bms.port_for(bus)
    if port is None:
        return "-"
    keys = ("can_h", "can_l") if bus == "can" else ("rs485_a", "rs485_b")
    pins = [port.pinout.signal_pins(key) for key in keys]
    return "/".join(",".join(map(str, p)) if p else "?" for p in pins)


def list_table(bmss: tuple[Bms, ...]) -> str:
    """One line per BMS family; pins '?' = not known, '-' = no port of that bus."""
    header = ("NAME", "TITLE", "CAN H/L", "RS485 A/B", "PROFILES", "CONFIDENCE (CAN)")
    rows = [header]
    for bms in bmss:
        can = bms.port_for("can")
        rows.append(
            (
                bms.name,
                bms.title,
                _pins(bms, "can"),
                _pins(bms, "rs485"),
                ",".join(bms.profiles) or "(none recorded)",
                can.pinout.confidence if can else "-",
            )
        )
    lines = align_columns(rows)
    lines.append("")
    lines.append(
        "'?' = pin not known, '-' = no port of that bus. Wiring: bmslink cable BMS INVERTER"
    )
    return "\n".join(lines)


def cable_command(
    bms: str | None = typer.Argument(
        None, help="BMS family or alias (jk, jk-pb, seplos, seplos-v3, pylontech, pace, daly-can)."
    ),
    inverter: str | None = typer.Argument(
        None, help="Inverter family or alias, as in `bmslink inverters` (e.g. deye-lv)."
    ),
    bus: str = typer.Option("can", "--bus", help="Bus to wire: can (default) or rs485."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    list_bmss: bool = typer.Option(False, "--list", help="List the BMS families and their ports."),
) -> None:
    """Cable from a BMS to an inverter: straight, custom (drawn pin to pin), unknown or no_port.

    Exit status 0 for straight or custom, 1 for unknown or no_port, 2 for bad input.
    """
    from bmslink.diagnose.cable import plan_cable
    from bmslink.registry import BUSES

    registry = registry_or_exit()
    if list_bmss:
        if bms is not None or inverter is not None:
            fail("give --list alone, or a BMS and an INVERTER", code=2)
        if as_json:
            typer.echo(
                json.dumps([b.to_dict() for b in registry.bmss], indent=2, ensure_ascii=False)
            )
        else:
            typer.echo(list_table(registry.bmss))
        return
    if bms is None or inverter is None:
        fail("give a BMS and an INVERTER (see `bmslink cable --list`)", code=2)
    wanted_bus = bus.strip().lower()
    if wanted_bus not in BUSES:
        fail(f"--bus {bus!r}: must be one of {', '.join(BUSES)}", code=2)
    plan = plan_cable(bms_or_exit(bms), inverter_or_exit(inverter), wanted_bus)
    if as_json:
        typer.echo(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False))
    else:
        typer.echo(render(plan))
    if not plan.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("cable")(cable_command)
