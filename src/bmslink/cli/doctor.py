"""``bmslink doctor``: walk the troubleshooting checklist on a live bus or a capture."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import typer

from bmslink.cli.common import bms_or_exit, fail, inverter_or_exit, profile_or_exit
from bmslink.cli.live_options import bus_options_option, bus_spec_or_exit, channel_option

if TYPE_CHECKING:
    from bmslink.capture import FrameBatch
    from bmslink.diagnose.doctor import Diagnosis, Heard
    from bmslink.diagnose.live import BusSpec

DEFAULT_LISTEN_S = 5.0
DEFAULT_SCAN_S = 1.5


def doctor_command(
    interface: str | None = typer.Option(
        None, "--interface", "-I", help="python-can interface: socketcan, slcan, gs_usb, pcan..."
    ),
    channel: str | None = channel_option(),
    bitrate: int | None = typer.Option(
        None,
        "--bitrate",
        "-b",
        help="Bit rate to listen at first (default: the profile's or inverter's, else 500000).",
    ),
    bus_option: list[str] = bus_options_option(),
    capture: str | None = typer.Option(
        None, "--capture", help="Diagnose a capture file instead of a live bus ('-' = stdin)."
    ),
    inverter: str | None = typer.Option(
        None, "--inverter", "-i", help="Inverter family from `bmslink inverters`."
    ),
    bms: str | None = typer.Option(None, "--bms", help="BMS from `bmslink cable --list`."),
    profile: str | None = typer.Option(
        None, "--profile", "-p", help="Profile the battery should send (default: detect it)."
    ),
    cells: int | None = typer.Option(None, "--cells", help="LFP cells in series (voltage checks)."),
    listen: float = typer.Option(
        DEFAULT_LISTEN_S, "--listen", help="Seconds to listen on a live bus."
    ),
    scan: bool = typer.Option(
        True, "--scan/--no-scan", help="On a silent bus, try 500k, 250k, 125k and 1M."
    ),
    scan_seconds: float = typer.Option(
        DEFAULT_SCAN_S, "--scan-seconds", help="Seconds to listen at each scanned bit rate."
    ),
    as_json: bool = typer.Option(False, "--json", help="JSON for machines."),
) -> None:
    """Find what is wrong with a battery-inverter link, most basic fault first.

    Exit status 0 when the link is all ok or has warnings only, 1 when there is an error,
    2 for bad options.
    """
    from bmslink.diagnose.doctor import Context, diagnose

    if (interface is None) == (capture is None):
        fail("give either --interface (a live bus) or --capture FILE", code=2)
    if listen <= 0 or scan_seconds <= 0:
        fail("--listen and --scan-seconds must be positive", code=2)
    chosen = profile_or_exit(profile) if profile else None
    context = Context(cells=cells)
    if inverter is not None:
        context.inverter = inverter_or_exit(inverter)
    if bms is not None:
        context.bms = bms_or_exit(bms).name
    if capture is not None:
        heard = _heard_from_capture(capture)
    else:
        assert interface is not None
        rate = bitrate or _default_rate(chosen, context)
        spec = bus_spec_or_exit(interface, channel, rate, bus_option)
        heard = _heard_live(spec, listen, scan, scan_seconds)
    diagnosis = diagnose(heard, profile=chosen, context=context)
    if as_json:
        typer.echo(json.dumps(diagnosis.to_dict(), indent=2))
    else:
        _print(diagnosis)
    if diagnosis.errors:
        raise typer.Exit(1)


def _default_rate(profile: Any, context: Any) -> int:
    if profile is not None:
        return int(profile.bitrate)
    if context.inverter is not None and context.inverter.bitrate:
        return int(context.inverter.bitrate)
    from bmslink.diagnose.live import DEFAULT_BITRATE

    return DEFAULT_BITRATE


def _heard_from_capture(source: str) -> Heard:
    from bmslink.capture import CaptureError, CaptureReport, read_capture
    from bmslink.diagnose.doctor import Heard
    from bmslink.diagnose.stats import CaptureStats, gather

    report = CaptureReport(source)
    kept: list[FrameBatch] | None = None
    stats = CaptureStats()  # this first pass is doctor's statistics pass too
    try:
        if source == "-":  # stdin cannot be read twice: doctor's captures are small, keep them
            kept = list(read_capture(source, report))
            stats = gather(kept)
        else:
            stats = gather(read_capture(source, report))
    except CaptureError as exc:
        if report.lines == 0 and report.frames == 0 and "cannot read" in str(exc):
            fail(str(exc))
        if report.bad_lines and not report.error_frames:
            fail(str(exc))  # a file that is not a capture at all
        kept = []  # an empty capture or one of error frames only: a finding, not bad input

    def batches() -> Iterable[FrameBatch]:
        if kept is not None:
            return kept
        return read_capture(source)

    return Heard(
        source=f"capture {source}",
        batches=batches,
        stats=stats,
        error_frames=report.error_frames,
        bad_lines=report.bad_lines,
        first_bad_line=report.errors[0] if report.errors else "",
    )


def _heard_live(spec: BusSpec, listen: float, scan: bool, scan_seconds: float) -> Heard:
    from bmslink.diagnose.doctor import Heard, ScanResult, id_labels
    from bmslink.diagnose.live import (
        DEFAULT_BITRATE,
        SCAN_BITRATES,
        BusWatcher,
        LiveBusError,
        close_quietly,
        scan_bitrates,
    )

    bitrate = spec.bitrate or DEFAULT_BITRATE
    try:
        bus = spec.open()
    except LiveBusError as exc:
        fail(str(exc))
    where = f"{spec.interface} {spec.channel or ''}".strip()
    try:
        observation = BusWatcher(bus).observe(listen, bitrate=bitrate)
        heard = Heard(
            source=f"live {where} at {bitrate // 1000} kbit/s",
            batches=lambda: [observation.batch()] if observation.frames else [],
            error_frames=observation.error_frames,
            status=observation.status,
            bus_states=observation.bus_states,
            window=(observation.started, observation.ended),
            bitrate=bitrate,
        )
        if observation.frames or not scan:
            return heard
        if not spec.reopenable:
            heard.scan_note = (
                f"bit rate not scanned: bmslink cannot change the rate of a {spec.interface} "
                "interface (socketcan: ip link set DEV type can bitrate N, needs root)"
            )
            return heard
        rates = [r for r in SCAN_BITRATES if r != bitrate]
        results = scan_bitrates(spec, rates, seconds=scan_seconds, bus=bus)
        for rate, seen in results.items():
            frames = [seen.batch()] if seen.frames else []
            heard.scan.append(
                ScanResult(
                    rate,
                    len(seen.frames),
                    seen.error_frames,
                    seen.status,
                    id_labels(frames),
                    seen.seconds,
                )
            )
            heard.scan_frames = {**heard.scan_frames, rate: frames}
        return heard
    except LiveBusError as exc:
        fail(str(exc))
    finally:
        close_quietly(bus)


def _print(diagnosis: Diagnosis) -> None:
    head = f"{diagnosis.source}: {diagnosis.frames} frames"
    if diagnosis.seconds is not None:
        head += f" in {diagnosis.seconds:.1f} s"
    if diagnosis.profile:
        sure = (
            f" ({diagnosis.detection.confidence:.0%})"
            if diagnosis.detection is not None and diagnosis.detection.best is not None
            else ""
        )
        head += f", profile {diagnosis.profile}{sure}"
    if diagnosis.inverter:
        head += f", inverter {diagnosis.inverter}"
    if diagnosis.bms:
        head += f", BMS {diagnosis.bms}"
    typer.echo(head)
    for n, finding in enumerate(diagnosis.findings, start=1):
        typer.echo(f"{n}. {finding.severity.upper():<7} {finding.code}: {finding.message}")
        for line in finding.evidence[:6]:
            typer.echo(f"     seen: {line}")
        for step in finding.next_steps:
            typer.echo(f"     next: {step}")
    verdict = (
        f"{diagnosis.errors} error(s), {diagnosis.warnings} warning(s)"
        if diagnosis.errors or diagnosis.warnings
        else "all ok"
    )
    typer.echo(verdict)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_command)
