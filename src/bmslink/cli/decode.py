"""``bmslink decode``: CAN frames as text in, JSON out (shared/contract.md).

The whole input is decoded before anything is printed, so a bad line leaves
stdout empty (nothing half-written) and exits 1 with the line named on stderr.
``--keep-going`` instead skips bad lines, reporting each, and still exits 1.
"""

from __future__ import annotations

import json

import typer

from bmslink.canlines import CanFrame, parse_line
from bmslink.cli.common import fail, profile_or_exit, read_lines
from bmslink.errors import DecodeError
from bmslink.profiles import PROFILES
from bmslink.profiles.base import DecodedFrame, Profile, merge_fields
from bmslink.state import BatteryState


def pick_profile(frames: list[tuple[int, CanFrame]]) -> Profile:
    """The profile that knows the most of these frames (issue 3 brings full detection)."""
    best: Profile | None = None
    best_score = 0
    for profile in PROFILES.values():
        score = sum(1 for _, f in frames if profile.spec(f.can_id, f.extended) is not None)
        if score > best_score:
            best, best_score = profile, score
    if best is None:
        raise DecodeError("no known profile matches these frames")
    return best


def decode_command(
    source: str = typer.Argument("-", metavar="[FILE|-]", help="Frames, one per line; - = stdin."),
    profile: str = typer.Option(..., "--profile", "-p", help="Profile name, or 'auto'."),
    state: bool = typer.Option(False, "--state", help="Merge all frames into one BatteryState."),
    keep_going: bool = typer.Option(
        False, "--keep-going", help="Skip bad lines (each reported), still exit 1."
    ),
) -> None:
    """Decode CAN frames (candump -L, candump, or id#data) with a battery profile."""
    forced = None if profile == "auto" else profile_or_exit(profile)
    errors: list[str] = []
    frames: list[tuple[int, CanFrame]] = []
    for number, line in read_lines(source):
        try:
            frame = parse_line(line)
        except DecodeError as exc:
            errors.append(f"line {number}: {exc}")
            if not keep_going:
                break
            continue
        if frame is not None:
            frames.append((number, frame))
    if errors and not keep_going:
        fail(errors[0])

    if forced is None:
        try:
            chosen = pick_profile(frames)
        except DecodeError as exc:
            fail(str(exc))
    else:
        chosen = forced

    decoded: list[DecodedFrame] = []
    for number, frame in frames:
        try:
            decoded.append(chosen.decode(frame.can_id, frame.data, frame.extended))
        except DecodeError as exc:
            errors.append(f"line {number}: {exc}")
            if not keep_going:
                fail(errors[-1])

    if state:
        typer.echo(merge_fields(BatteryState(), decoded).to_json())
    else:
        for item in decoded:
            typer.echo(json.dumps(item.to_dict()))
    if errors:
        for message in errors:
            typer.echo(message, err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("decode")(decode_command)
