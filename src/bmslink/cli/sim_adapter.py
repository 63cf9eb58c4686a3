"""``bmslink sim-adapter``: a simulated USB-CAN (slcan) adapter with a battery behind it.

So `sniff` and `doctor` can be tried without hardware, against the faults a real bench shows:
run this in one terminal, then point ``-I slcan -c PATH`` at the path it prints. The battery
sends a profile's frames on their real periods (and the inverter its keep-alives), from a
slowly drifting simulated pack.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

from bmslink.cli.common import fail, profile_or_exit

if TYPE_CHECKING:
    from bmslink.sim.slcan import BusFaults


def sim_adapter_command(
    profile: str = typer.Option("pylontech", "--profile", "-p", help="Profile the battery sends."),
    bitrate: int = typer.Option(
        500_000, "--bitrate", "-b", help="The bus's bit rate (set 250000 to try a mismatch)."
    ),
    no_termination: bool = typer.Option(
        False, "--no-termination", help="Missing 120 ohm terminator: a share of frames is lost."
    ),
    silent: bool = typer.Option(False, "--silent", help="Nobody on the bus sends anything."),
    battery_stops_after: float | None = typer.Option(
        None, "--battery-stops-after", metavar="S", help="The bus goes quiet after S seconds."
    ),
    no_inverter: bool = typer.Option(
        False, "--no-inverter", help="Only the battery is on the bus (no keep-alives)."
    ),
    stale: bool = typer.Option(
        False, "--stale", help="The battery repeats one frozen state (a stuck gateway)."
    ),
    duration: float | None = typer.Option(
        None, "--duration", "-d", min=0.0, help="Stop after S seconds (default: Ctrl-C)."
    ),
) -> None:
    """Serve a simulated slcan adapter on a pseudo-terminal; print its path."""
    from bmslink.sim.slcan import BusFaults, SimCanBus, SimSlcanAdapter
    from bmslink.sim.traffic import drifting_state, profile_traffic

    chosen = profile_or_exit(profile)
    if bitrate <= 0:
        fail(f"--bitrate must be positive, got {bitrate}", code=2)
    state_at = drifting_state(chosen.voltage_class)
    if stale:
        frozen = state_at(0.0)
        state_at = lambda _t: frozen  # noqa: E731 - a one-line state function
    traffic = profile_traffic(
        chosen, 7 * 24 * 3600.0, start=0.0, inverter=not no_inverter, state_at=state_at
    )
    faults = BusFaults(
        termination=not no_termination,
        silent=silent,
        battery_stops_after_s=battery_stops_after,
    )
    bus = SimCanBus(traffic, bitrate=bitrate, faults=faults)
    with SimSlcanAdapter(bus) as adapter:
        typer.echo(f"simulated slcan adapter on {adapter.path}")
        typer.echo(f"bus: {chosen.name} at {bitrate // 1000} kbit/s; {_faults_text(faults)}")
        typer.echo(f"try: bmslink sniff -I slcan -c {adapter.path} -o sleep_after_open=0")
        typer.echo(f"     bmslink doctor -I slcan -c {adapter.path} -o sleep_after_open=0")
        typer.echo("Ctrl-C to stop")
        end = None if duration is None else time.monotonic() + duration
        try:
            while end is None or time.monotonic() < end:
                time.sleep(0.2 if end is None else min(0.2, max(end - time.monotonic(), 0.0)))
        except KeyboardInterrupt:
            pass
        typer.echo(
            f"delivered {adapter.delivered} frames, {adapter.lost_to_errors} lost to bus errors, "
            f"{adapter.frames_seen_at_wrong_rate} seen at a wrong rate"
        )


def _faults_text(faults: BusFaults) -> str:
    parts = []
    if not faults.termination:
        parts.append("terminator missing")
    if faults.silent:
        parts.append("silent")
    if faults.battery_stops_after_s is not None:
        parts.append(f"stops after {faults.battery_stops_after_s:g} s")
    return ", ".join(parts) or "no fault"


def register(app: typer.Typer) -> None:
    app.command("sim-adapter")(sim_adapter_command)
