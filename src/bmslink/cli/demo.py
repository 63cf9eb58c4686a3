"""``bmslink demo``: the simulated battery talking a CAN profile to a simulated inverter.

A terminal gets a live view; a pipe or log gets one plain line per simulated
hour. Either way the run ends with a summary (``--json`` prints it as JSON on
stdout, progress then goes to stderr).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live

from bmslink.cli.common import fail, profile_or_exit

REFRESH_S = 0.125


def check_capture_target(path: str) -> None:
    """Refuse an unwritable capture path before the run, not after a simulated day."""
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        fail(f"--capture {path}: directory {parent} does not exist", code=2)
    if not os.access(parent, os.W_OK):
        fail(f"--capture {path}: directory {parent} is not writable", code=2)


def demo_command(
    hours: float = typer.Option(24.0, "--hours", min=0.01, help="Simulated hours to run."),
    speed: float = typer.Option(
        3600.0,
        "--speed",
        min=0.0,
        help="Simulated seconds per wall second; 0 = as fast as possible.",
    ),
    profile: str = typer.Option("pylontech", "--profile", "-p", help="CAN profile on the link."),
    step: float | None = typer.Option(
        None,
        "--step",
        min=0.1,
        max=60.0,
        help="Simulated seconds per step, one CAN round each "
        "(default 10; 1 with --capture, so the capture has the profile's real periods).",
    ),
    physics_dt: float = typer.Option(
        5.0, "--physics-dt", min=0.1, max=60.0, help="Simulated seconds per physics sub-step."
    ),
    start_soc: float = typer.Option(
        40.0, "--start-soc", min=0.0, max=100.0, help="True SoC at start, %."
    ),
    cloudiness: float = typer.Option(0.0, "--cloudiness", min=0.0, max=1.0, help="0 = clear sky."),
    seed: int = typer.Option(1, "--seed", help="Seed for cell spread and weather."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    live: bool | None = typer.Option(
        None, "--live/--plain", help="Live view or plain lines (default: live on a terminal)."
    ),
    bms: str | None = typer.Option(
        None,
        "--bms",
        help="Read the simulated pack through this BMS protocol on a PTY "
        "(jk, jk-pb, jbd, daly, seplos, seplos-v3, pace), then bridge it to the profile.",
    ),
    capture: str | None = typer.Option(
        None,
        "--capture",
        help="Also write every frame of the link to this file (.log candump -L, .asc, .blf...).",
    ),
) -> None:
    """Run the closed loop: sim pack + BMS -> battery role -> CAN -> inverter role -> inverter.

    With --bms the BMS answers its real byte protocol on a PTY and the bridge reads it.
    """
    # python-can and the simulator load only for this command, not for every bmslink call
    from bmslink.capture import write_capture
    from bmslink.sim.chain import Chain, ChainConfig
    from bmslink.views.chain import live_panel, progress_line, summary_lines, summary_panel

    profile_or_exit(profile)
    try:
        config = ChainConfig(
            profile=profile,
            hours=hours,
            step_s=step if step is not None else 1.0 if capture is not None else 10.0,
            physics_dt_s=physics_dt,
            start_soc_pct=start_soc,
            cloudiness=cloudiness,
            seed=seed,
            record=capture is not None,
            bms=bms,
        )
    except ValueError as exc:
        fail(str(exc), code=2)
    if capture is not None:
        check_capture_target(capture)
    out = Console(stderr=as_json)
    use_live = out.is_terminal if live is None else live
    with Chain(config) as chain:
        start = time.monotonic()
        soc_history: list[float] = []
        next_line_s = 3600.0
        last_refresh = 0.0

        def pace() -> None:
            if speed > 0:
                ahead = chain.elapsed_s / speed - (time.monotonic() - start)
                if ahead > 0.005:
                    time.sleep(ahead)

        def on_step_plain(c: Chain) -> None:
            nonlocal next_line_s
            if c.elapsed_s >= next_line_s - 1e-6:
                next_line_s += 3600.0
                print(
                    progress_line(c.sample()),
                    file=sys.stderr if as_json else sys.stdout,
                    flush=True,
                )
            pace()

        try:
            if use_live:
                with Live(console=out, auto_refresh=False, transient=False) as view:

                    def on_step_live(c: Chain) -> None:
                        nonlocal last_refresh
                        if len(soc_history) * 1800.0 <= c.elapsed_s:
                            soc_history.append(c.pack.soc_pct)
                        wall = time.monotonic() - start
                        if wall - last_refresh >= REFRESH_S:
                            last_refresh = wall
                            view.update(live_panel(c, c.sample(), soc_history, wall), refresh=True)
                        pace()

                    summary = chain.run(on_step_live)
                    view.update(
                        live_panel(chain, chain.sample(), soc_history, time.monotonic() - start),
                        refresh=True,
                    )
            else:
                summary = chain.run(on_step_plain)
        except KeyboardInterrupt:
            summary = chain.summary()
            out.print("[yellow]interrupted: summary so far[/]")
    if capture is not None:
        count = write_capture(capture, chain.recorded)
        Console(stderr=True).print(f"wrote {count:,} frames to {capture}")
    if as_json:
        typer.echo(json.dumps(summary.to_dict()))
    elif use_live:
        out.print(summary_panel(summary))
    else:
        typer.echo("summary")
        for line in summary_lines(summary):
            typer.echo("  " + line)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
