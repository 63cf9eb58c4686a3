"""``bmslink profiles``: every CAN profile bmslink speaks, with its frames."""

from __future__ import annotations

import json
from typing import Any

import typer

from bmslink.cli.common import profile_or_exit
from bmslink.profiles import PROFILES
from bmslink.profiles.base import FrameSpec, Profile, format_id


def _frame_dict(spec: FrameSpec) -> dict[str, Any]:
    return {
        "id": spec.label,
        "name": spec.name,
        "sender": spec.sender,
        "length": spec.length,
        "period_s": spec.period_s,
        "required": spec.required,
        "alt_ids": [format_id(i, spec.extended) for i in spec.alt_ids],
        "doc": spec.doc,
    }


def profile_dict(profile: Profile) -> dict[str, Any]:
    return {
        "name": profile.name,
        "title": profile.title,
        "bitrates": list(profile.bitrates),
        "voltage_class": profile.voltage_class,
        "alias_of": profile.alias_of,
        "request_response": profile.request_response,
        "frames": [_frame_dict(s) for s in profile.frames],
    }


def _timing(spec: FrameSpec) -> str:
    return "on request" if spec.period_s is None else f"every {spec.period_s:g} s"


def profiles_command(
    name: str | None = typer.Argument(None, help="Show one profile's frames."),
    as_json: bool = typer.Option(False, "--json", help="JSON for machines."),
) -> None:
    """List the CAN profiles and their frames (ids, senders, lengths, periods)."""
    chosen = [profile_or_exit(name)] if name else [PROFILES[n] for n in sorted(PROFILES)]
    if as_json:
        payload: Any = [profile_dict(p) for p in chosen]
        typer.echo(json.dumps(payload[0] if name else payload, indent=2))
        return
    for profile in chosen:
        rates = "/".join(f"{r // 1000}k" for r in profile.bitrates)
        alias = f", same frames as {profile.alias_of}" if profile.alias_of else ""
        typer.echo(f"{profile.name}: {profile.title} ({rates}, {profile.voltage_class}{alias})")
        for spec in profile.frames:
            optional = "" if spec.required else ", optional"
            typer.echo(
                f"  {spec.label:<10} {spec.sender:<8} {spec.name:<24} "
                f"{spec.length} bytes, {_timing(spec)}{optional}"
            )
        if not name:
            typer.echo("")


def register(app: typer.Typer) -> None:
    app.command("profiles")(profiles_command)
