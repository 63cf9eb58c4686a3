"""``bmslink inverters [NAME]``: which profile, bit rate, menu setting and battery-port pinout an
inverter family wants, with its known quirks.

Plain text so it reads the same in a terminal, a pipe or a support forum post; ``--json`` for
machines. Pinouts that are single-source or unknown always come with a "measure first" warning,
because a wrong pin can put CAN_H on a supply line.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from bmslink.cli.common import align_columns, fail, inverter_or_exit, registry_or_exit, wrap_field

if TYPE_CHECKING:  # the registry (tomllib and the data) loads only when the command runs
    from bmslink.registry import Inverter, Pinout

METER_HINT = (
    "Check with a meter before connecting: against GND, with the bus active, CAN_H reads about "
    "2.5-3.5 V and CAN_L about 1.5-2.5 V."
)
NO_PROFILE = "none: bmslink has no profile for this inverter"


def _pins_text(pins: tuple[int, ...]) -> str:
    return "/".join(str(p) for p in pins) if pins else "?"


def _bitrate_text(bitrate: int | None) -> str:
    if bitrate is None:
        return "-"
    return f"{bitrate // 1000}k" if bitrate % 1000 == 0 else str(bitrate)


def _table(inverters: list[Inverter]) -> str:
    """One line per family; pins '?' = not known."""
    header = ("NAME", "TITLE", "PROFILES", "BITRATE", "CAN_H", "CAN_L", "GND", "CONFIDENCE")
    rows = [header]
    for inv in inverters:
        title = inv.title if len(inv.title) <= 44 else inv.title[:43] + "…"
        pinout = inv.pinout
        rows.append(
            (
                inv.name,
                title,
                ",".join(inv.profiles) if inv.profiles else "(none)",
                _bitrate_text(inv.bitrate),
                _pins_text(pinout.signal_pins("can_h")),
                _pins_text(pinout.signal_pins("can_l")),
                _pins_text(pinout.gnd),
                pinout.confidence,
            )
        )
    lines = align_columns(rows)
    lines.append("")
    lines.append("'?' = pin not known. Details and sources: bmslink inverters NAME")
    return "\n".join(lines)


def _pinout_lines(pinout: Pinout, what: str) -> list[str]:
    from bmslink.registry import CONFIDENCE_TEXT

    lines = [f"{what} (RJ45 pins 1-8), confidence: {CONFIDENCE_TEXT[pinout.confidence]}"]
    if pinout.known:
        for pin, signal in pinout.pins().items():
            lines.append(f"  pin {pin}  {signal}")
        lines.append("  ('-' = no signal known on that pin; leave it unconnected)")
    else:
        lines.append("  no pin is known: find the manual or measure; do not guess")
    if pinout.source:
        lines.extend(wrap_field("  source:", pinout.source))
    if pinout.notes:
        lines.extend(wrap_field("  notes:", pinout.notes))
    if pinout.needs_checking:
        lines.extend(wrap_field("  WARNING:", METER_HINT))
    return lines


def _detail(inv: Inverter) -> str:
    lines = [f"{inv.name}: {inv.title}"]
    if inv.aliases:
        lines.extend(wrap_field("aliases:", ", ".join(inv.aliases)))
    lines.extend(wrap_field("voltage:", "LV (48 V class)" if inv.voltage == "lv" else "HV"))
    if inv.profiles:
        lines.extend(wrap_field("profiles:", ", ".join(inv.profiles)))
        lines.extend(wrap_field("recommended:", inv.recommended_profile or ""))
    else:
        lines.extend(wrap_field("profiles:", NO_PROFILE))
    if inv.rs485:
        lines.extend(wrap_field("RS485:", ", ".join(inv.rs485)))
    bitrate = f"{inv.bitrate} bit/s" if inv.bitrate else "not stated by the sources"
    lines.extend(wrap_field("bit rate:", bitrate))
    lines.extend(wrap_field("setting:", inv.setting or "not known"))
    lines.append("")
    lines.extend(_pinout_lines(inv.pinout, "battery (BMS) port"))
    lines.append("")
    if inv.quirks:
        lines.append("quirks:")
        for quirk in inv.quirks:
            label = quirk.code if quirk.value is None else f"{quirk.code} = {quirk.value}"
            lines.extend(wrap_field(f"  {label}:", quirk.text, indent=4 + len(label)))
            lines.extend(wrap_field("    source:", quirk.source, indent=12))
    else:
        lines.append("quirks:       none known")
    lines.append("")
    if inv.notes:
        lines.extend(wrap_field("notes:", inv.notes))
    lines.extend(wrap_field("source:", inv.source))
    return "\n".join(lines)


def inverters_command(
    name: str | None = typer.Argument(
        None, help="Inverter family or alias (e.g. deye-lv, victron); omit to list all."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (a list, or one object)."),
    profile: str | None = typer.Option(
        None, "--profile", "-p", help="List only families that accept this bmslink profile."
    ),
) -> None:
    """Inverter families: accepted profiles, bit rate, setting, battery-port pinout, quirks."""
    from bmslink.registry import RegistryError

    registry = registry_or_exit()
    if name is not None and profile is not None:
        fail("give an inverter NAME or --profile, not both", code=2)
    if name is not None:
        inverter = inverter_or_exit(name)
        if as_json:
            typer.echo(json.dumps(inverter.to_dict(), indent=2, ensure_ascii=False))
        else:
            typer.echo(_detail(inverter))
        return
    inverters = list(registry.inverters)
    if profile is not None:
        try:
            inverters = registry.inverters_for_profile(profile)
        except RegistryError as exc:
            fail(str(exc), code=2)
    if as_json:
        typer.echo(json.dumps([inv.to_dict() for inv in inverters], indent=2, ensure_ascii=False))
    elif not inverters:
        typer.echo(f"no inverter family in the registry accepts profile {profile!r}")
    else:
        typer.echo(_table(inverters))


def register(app: typer.Typer) -> None:
    app.command("inverters")(inverters_command)
