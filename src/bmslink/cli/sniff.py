"""``bmslink sniff``: watch a live CAN bus in battery terms, and optionally record it.

A terminal gets a live table (~4 refreshes a second); a pipe or log gets one
line per frame plus event lines, and either way the run ends with a per-id
summary. sniff never sends a data frame. Exit status: 0 when stopped (Ctrl-C,
--count, --duration), 1 when the bus cannot be opened or read, 2 for bad options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from bmslink.cli.common import fail, profile_or_exit
from bmslink.cli.live_options import (
    bitrate_option,
    bus_options_option,
    bus_spec_or_exit,
    channel_option,
    interface_option,
)

if TYPE_CHECKING:
    import can

    from bmslink.diagnose.live import LogRecorder
    from bmslink.profiles.base import Profile

REFRESH_S = 0.25
RECV_S = 0.1


def sniff_command(
    interface: str = interface_option(),
    channel: str | None = channel_option(),
    bitrate: int | None = bitrate_option(),
    bus_options: list[str] = bus_options_option(),
    profile: str = typer.Option(
        "auto", "--profile", "-p", help="Profile to decode with; auto = detect from the traffic."
    ),
    record: str | None = typer.Option(
        None,
        "--record",
        metavar="FILE",
        help="Also write every frame (and error frame) here; the suffix picks the format: "
        ".log (candump -L), .asc, .blf, .csv, .trc...",
    ),
    count: int | None = typer.Option(None, "--count", "-n", min=1, help="Stop after N frames."),
    duration: float | None = typer.Option(
        None, "--duration", "-d", min=0.0, help="Stop after S seconds."
    ),
    plain: bool = typer.Option(False, "--plain", help="Line log even on a terminal."),
    listen_only: bool = typer.Option(
        False,
        "--listen-only",
        help="Open the adapter silent (no ACKs) where python-can can: slcan, pcan, kvaser, "
        "vector... A bus with only a battery then needs another node to ACK.",
    ),
) -> None:
    """Watch a live bus: per-id counts, periods, jitter, decoded fields and the battery."""
    from bmslink.diagnose.live import (
        DEFAULT_BITRATE,
        REOPENABLE_INTERFACES,
        LiveBusError,
        LogRecorder,
        RecordError,
    )

    chosen = None if profile == "auto" else profile_or_exit(profile)
    if bitrate is None and interface in REOPENABLE_INTERFACES and interface != "virtual":
        bitrate = chosen.bitrate if chosen is not None else DEFAULT_BITRATE
        typer.echo(f"listening at {bitrate} bit/s (-b to change)", err=True)
    spec = bus_spec_or_exit(interface, channel, bitrate, bus_options, listen_only)
    recorder = None
    if record is not None:
        try:
            recorder = LogRecorder(record)
        except RecordError as exc:
            fail(str(exc), code=2)
    if interface == "socketcan" and bitrate is not None:
        typer.echo(
            f"note: socketcan uses the link's bit rate; set it with: sudo ip link set "
            f"{channel or 'can0'} up type can bitrate {bitrate}",
            err=True,
        )
    try:
        bus = spec.open()
    except LiveBusError as exc:
        if recorder is not None:
            recorder.discard()
        fail(str(exc))
    failure = _run(bus, chosen, recorder, count, duration, plain)
    if recorder is not None:
        typer.echo(f"recorded {recorder.count} frames to {recorder.target}", err=True)
    if failure is not None:
        fail(failure)


def _run(
    bus: can.BusABC,
    chosen: Profile | None,
    recorder: LogRecorder | None,
    count: int | None,
    duration: float | None,
    plain: bool,
) -> str | None:
    """The receive loop; returns an error message when the bus failed under us."""
    from rich.console import Console
    from rich.live import Live

    from bmslink.clock import MonotonicClock
    from bmslink.diagnose.live import BusWatcher, LiveBusError, close_quietly, error_flags
    from bmslink.diagnose.sniff import SniffEngine
    from bmslink.views.sniff import event_line, frame_line, live_view, summary_lines

    clock = MonotonicClock()
    engine = SniffEngine(clock, chosen)

    def on_message(msg: can.Message) -> None:
        if recorder is not None:
            recorder.write(msg)
        if msg.is_error_frame:
            engine.error_frame(error_flags(msg))

    watcher = BusWatcher(
        bus, clock, on_message=on_message, on_status=lambda f, s: engine.adapter_status(f, s)
    )
    console = Console()
    use_live = console.is_terminal and not plain
    deadline = None if duration is None else engine.started + duration
    failure: str | None = None

    def loop(view: Live | None) -> None:
        last_refresh = -REFRESH_S
        while True:
            now = clock.now()
            if deadline is not None and now >= deadline:
                return
            if count is not None and engine.frames >= count:
                return
            wait = RECV_S if deadline is None else max(0.0, min(RECV_S, deadline - now))
            msg = watcher.recv(wait)
            info = None
            if msg is not None:
                info = engine.feed(msg.arbitration_id, msg.is_extended_id, bytes(msg.data))
            events = engine.take_events()
            if view is None:
                for event in events:
                    typer.echo(event_line(event, engine.started))
                if info is not None:
                    typer.echo(frame_line(info, engine.started))
            elif clock.now() - last_refresh >= REFRESH_S:
                last_refresh = clock.now()
                view.update(live_view(engine, width=console.width), refresh=True)

    try:
        if use_live:
            with Live(console=console, auto_refresh=False, transient=False) as view:
                try:
                    loop(view)
                finally:
                    view.update(live_view(engine, width=console.width), refresh=True)
        else:
            loop(None)
    except KeyboardInterrupt:
        pass
    except LiveBusError as exc:
        failure = str(exc)
    finally:
        try:
            close_quietly(bus)
        finally:
            if recorder is not None:
                recorder.finish()
    for line in summary_lines(engine):
        typer.echo(line)
    return failure


def register(app: typer.Typer) -> None:
    app.command("sniff")(sniff_command)
