"""``bmslink detect``: which profile is on this bus, from a capture file or stdin."""

from __future__ import annotations

import json

import typer

from bmslink.cli.common import consume_capture


def detect_command(
    source: str = typer.Argument(
        "-", metavar="[FILE|-]", help="candump text, .log, .asc, .blf, .csv, .trc; - = stdin."
    ),
    as_json: bool = typer.Option(False, "--json", help="JSON for machines."),
) -> None:
    """Name the most likely profile of captured traffic, with confidence and evidence."""
    from bmslink.diagnose.detect import detect  # numpy: load on use
    from bmslink.diagnose.stats import gather

    stats, report = consume_capture(source, gather)
    result = detect(stats)
    if as_json:
        payload = result.to_dict()
        payload["skipped_lines"] = report.bad_lines
        payload["error_frames"] = report.error_frames
        typer.echo(json.dumps(payload, indent=2))
    else:
        if result.best is None:
            typer.echo(f"no known profile matches these {stats.frames} frames")
        else:
            best = result.best
            also = f" (same frames: {', '.join(best.aliases)})" if best.aliases else ""
            typer.echo(f"profile: {best.profile}{also}  confidence {result.confidence:.0%}")
            for line in best.evidence:
                typer.echo(f"  - {line}")
            if result.runner_up is not None:
                runner = result.runner_up
                typer.echo(f"runner-up: {runner.profile} (score {runner.score:.2f})")
                for line in runner.evidence:  # what tells the two apart
                    if line not in best.evidence:
                        typer.echo(f"  - {line}")
        if report.bad_lines:
            typer.echo(f"skipped {report.bad_lines} unparsable lines; {report.errors[0]}", err=True)
    if result.best is None:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("detect")(detect_command)
