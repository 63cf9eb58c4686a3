"""``bmslink simulate``: run a named scenario of the closed loop and write a report directory.

Why separate from ``demo``: the demo is for watching one day go by; ``simulate`` runs a
scenario (days of weather, a cold snap, a weak cell, a silent BMS, an inverter without
comms) as fast as it can and leaves numbers and plots behind: ``DIR/metrics.json``
(shape in ``bmslink.sim.report``), one ``<run>-overview.png`` per run (plus
``soc-comparison.png`` when a scenario has several runs) and ``DIR/summary.md``.
Progress goes to stderr; ``--json`` prints metrics.json on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from bmslink.cli.common import fail


def simulate_command(
    scenario: str | None = typer.Option(
        None, "--scenario", "-s", help="Scenario to run (see --list)."
    ),
    days: int | None = typer.Option(
        None, "--days", min=1, max=366, help="Simulated days (default: the scenario's)."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Directory for metrics.json, summary.md and the plots (created)."
    ),
    step: float | None = typer.Option(
        None,
        "--step",
        min=0.5,
        max=60.0,
        help="Simulated seconds per step, one CAN round each (default 10).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Also print metrics.json on stdout."),
    list_only: bool = typer.Option(False, "--list", help="List the scenarios and exit."),
) -> None:
    """Run a scenario of the closed loop and write metrics, plots and a summary to --report."""
    from bmslink.sim.scenarios import SCENARIOS, UnknownScenarioError, get_scenario

    if list_only:
        if as_json:
            listing = [
                {"name": s.name, "days": s.days, "runs": list(s.runs), "description": s.description}
                for s in SCENARIOS.values()
            ]
            typer.echo(json.dumps(listing))
        else:
            width = max(len(name) for name in SCENARIOS)
            for s in SCENARIOS.values():
                typer.echo(f"{s.name:<{width}}  {s.days} d  {s.description}")
        return
    if scenario is None:
        fail(f"--scenario is required; known: {', '.join(SCENARIOS)}", code=2)
    try:
        chosen = get_scenario(scenario)
    except UnknownScenarioError as exc:
        fail(str(exc), code=2)
    if report is None:
        fail("--report DIR is required: where metrics.json, summary.md and the plots go", code=2)
    if report.exists() and not report.is_dir():
        fail(f"--report {report}: exists and is not a directory", code=2)
    try:
        configs = chosen.configs(days, step)  # bad combinations fail now, not after a week
    except ValueError as exc:
        fail(str(exc), code=2)

    from bmslink.sim.report import (
        RunResult,
        metrics_document,
        resolution_note,
        run_scenario,
        write_report,
    )

    note = resolution_note(next(iter(configs.values())).step_s)
    if note is not None:
        print(f"note: {note}", file=sys.stderr, flush=True)

    def progress(run: RunResult) -> None:
        hours = run.config.hours
        rate = hours / run.wall_s if run.wall_s > 0 else float("inf")
        print(
            f"{chosen.name}/{run.name}: {hours:g} simulated h in {run.wall_s:.1f} s "
            f"({rate:.1f} h per wall s)",
            file=sys.stderr,
            flush=True,
        )

    result = run_scenario(chosen, days, step, on_run=progress)
    try:
        written = write_report(result, report)
    except OSError as exc:
        fail(f"--report {report}: {exc.strerror or exc}")
    if as_json:
        typer.echo(json.dumps(metrics_document(result)))
        return
    for name, run in result.runs.items():
        typer.echo(f"{name}:")
        for key, value in run.metrics.items():
            typer.echo(f"  {key:<31} {'n/a' if value is None else value}")
    typer.echo(f"wrote {', '.join(p.name for p in written)} to {report}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
