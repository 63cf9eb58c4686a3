"""``bmslink analyze``: a capture of any size as a summary, a CSV time series and a plot.

The work is :mod:`bmslink.diagnose.analyze`; this module checks the options before
reading anything, writes the outputs beside their targets and renames them only
when complete, draws the plot (matplotlib, loaded only for ``--plot``) and prints.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import typer

from bmslink.cli.common import fail, inverter_or_exit, profile_or_exit

if TYPE_CHECKING:
    import numpy as np

    from bmslink.capture import CaptureReport, FrameBatch
    from bmslink.diagnose.analyze import Analysis, Analyzer

PLOT_SUFFIXES = (".png", ".svg", ".pdf")

#: Plot panels: title, keys on the left axis, keys on a right axis (another unit).
PANELS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("SoC (%)", ("soc_pct",), ()),
    ("pack voltage (V)", ("voltage_v",), ()),
    ("current (A, + = charging)", ("current_a",), ()),
    (
        "limits: CVL/DVL (V), CCL/DCL (A)",
        ("charge_voltage_v", "discharge_voltage_v"),
        ("charge_current_a", "discharge_current_a"),
    ),
    ("cells (V)", ("cell_min_v", "cell_max_v"), ()),
    ("temperatures (degC)", ("temperature_c", "cell_temp_min_c", "cell_temp_max_c"), ()),
)


class _Output:
    """A file written under a partial name and renamed when complete; removed on failure."""

    def __init__(self, target: str) -> None:
        self.target = Path(target)
        self.partial = self.target.with_name(f".{self.target.name}.partial")

    def commit(self) -> None:
        self.partial.replace(self.target)

    def discard(self) -> None:
        self.partial.unlink(missing_ok=True)


def _check_output(option: str, path: str, capture: str) -> None:
    """A bad output path fails before the capture is read (exit 2), naming it."""
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        fail(f"{option} {path}: directory {str(parent)!r} does not exist", code=2)
    if target.is_dir():
        fail(f"{option} {path}: is a directory", code=2)
    if not os.access(parent, os.W_OK):
        fail(f"{option} {path}: directory {str(parent)!r} is not writable", code=2)
    if capture != "-" and target.exists() and target.resolve() == Path(capture).resolve():
        fail(f"{option} {path}: is the capture itself", code=2)
    if option == "--plot" and target.suffix.lower() not in PLOT_SUFFIXES:
        fail(f"--plot {path}: the name must end in {', '.join(PLOT_SUFFIXES)}", code=2)


class _CsvRows:
    """Streams the time series to a CSV file as its bins complete."""

    def __init__(self, handle: IO[str], resolution_s: float) -> None:
        from bmslink.scaling import decimal_places

        self.handle = handle
        self.resolution_s = resolution_s
        self.time_places = decimal_places(resolution_s)
        self.keys: list[str] = []
        self.places: dict[str, int] = {}

    def header(self, analyzer: Analyzer) -> None:
        self.keys = analyzer.keys
        self.places = analyzer.decimals
        self.handle.write(",".join(["time", *self.keys]) + "\n")

    def __call__(self, bins: np.ndarray, rows: np.ndarray) -> None:
        from bmslink.diagnose.analyze import alarm_names

        places = self.time_places
        columns: list[list[str]] = [[f"{b * self.resolution_s:.{places}f}" for b in bins.tolist()]]
        for index, key in enumerate(self.keys):
            values = rows[:, index].tolist()
            if key in ("alarms", "warnings"):
                columns.append(
                    [
                        "" if v != v else " ".join(alarm_names(v)) or "none"  # NaN: absent
                        for v in values
                    ]
                )
            else:
                p = self.places[key]
                columns.append(["" if v != v else f"{v:.{p}f}" for v in values])
        self.handle.writelines(",".join(row) + "\n" for row in zip(*columns, strict=True))


def _interactive() -> bool:
    """A progress bar only for a person watching a terminal."""
    return sys.stderr.isatty()


def _batches_with_progress(
    batches: Iterator[FrameBatch], report: CaptureReport, source: str
) -> Iterator[FrameBatch]:
    """A rich progress bar on stderr: bytes of a text file, else frames."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from bmslink.capture import PYTHON_CAN_SUFFIXES

    size: int | None = None
    if source != "-" and Path(source).suffix.lower() not in PYTHON_CAN_SUFFIXES:
        try:
            size = Path(source).stat().st_size
        except OSError:
            size = None
    console = Console(stderr=True)
    if size:
        columns: tuple[Any, ...] = (
            TextColumn("analysing"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
        )
    else:
        columns = (TextColumn("analysing"), TextColumn("{task.completed:,.0f} frames"))
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("analyse", total=size)
        for batch in batches:
            yield batch
            progress.update(task, completed=report.bytes_read if size else report.frames)


def analyze_command(
    capture: str = typer.Argument(
        ..., metavar="CAPTURE", help="candump text, .log, .asc, .blf, .csv, .trc; - = stdin."
    ),
    profile: str = typer.Option(
        "auto", "--profile", "-p", help="Profile of the traffic; auto = detect it."
    ),
    plot: str | None = typer.Option(
        None, "--plot", help="Draw SoC, voltage, current, limits, cells (.png/.svg/.pdf)."
    ),
    csv_path: str | None = typer.Option(
        None, "--csv", help="Write the time series: one row per bin, one column per field."
    ),
    as_json: bool = typer.Option(False, "--json", help="The whole summary as JSON."),
    resolution: float = typer.Option(
        1.0, "--resolution", help="Seconds per time-series bin.", show_default=True
    ),
    inverter: str | None = typer.Option(
        None, "--inverter", "-i", help="Inverter family from `bmslink inverters`."
    ),
    cells: int | None = typer.Option(
        None, "--cells", help="Cells in series (LFP); default 16 for a 48 V pack."
    ),
) -> None:
    """Decode a capture of any size into a summary and a time series.

    Per id: counts, periods, jitter, gaps. Per field: min, max, last. Alarms over time.

    Exit status: 0 analysed (findings do not change it), 1 unreadable or no profile.

    Exit status 2: bad options, checked before the capture is read.
    """
    if not resolution > 0:
        fail(f"--resolution {resolution}: must be above 0 s", code=2)
    if cells is not None and cells < 1:
        fail(f"--cells {cells}: must be at least 1", code=2)
    chosen = None if profile == "auto" else profile_or_exit(profile)
    family = None
    if inverter is not None:
        family = inverter_or_exit(inverter)
    for option, path in (("--csv", csv_path), ("--plot", plot)):
        if path is not None:
            _check_output(option, path, capture)
    if (
        csv_path is not None
        and plot is not None
        and Path(csv_path).resolve() == Path(plot).resolve()
    ):
        fail(f"--csv {csv_path} and --plot {plot}: one file cannot hold both", code=2)

    from bmslink.capture import CaptureError, CaptureReport, read_capture
    from bmslink.diagnose.analyze import AnalyzeError, analyze

    report = CaptureReport(capture)
    outputs = [_Output(p) for p in (csv_path, plot) if p is not None]
    try:
        with ExitStack() as stack:
            sink = None
            if csv_path is not None:
                handle = stack.enter_context(
                    open(outputs[0].partial, "w", encoding="ascii", newline="")
                )
                sink = _CsvRows(handle, resolution)
            batches: Iterator[FrameBatch] = read_capture(capture, report)
            if _interactive() and not as_json:
                batches = _batches_with_progress(batches, report, capture)
            result = analyze(
                batches,
                chosen,
                report=report,
                resolution_s=resolution,
                inverter=family,
                cells=cells,
                rows=sink,
                on_start=sink.header if sink is not None else None,
            )
        if plot is not None:
            _plot(result, outputs[-1].partial, plot)
        for output in outputs:
            output.commit()
    except (CaptureError, AnalyzeError) as exc:
        _discard(outputs)
        fail(str(exc))
    except BaseException:
        _discard(outputs)
        raise
    result.outputs.update(csv=csv_path, plot=plot)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for line in summary_lines(result):
            typer.echo(line)


def _discard(outputs: list[_Output]) -> None:
    for output in outputs:
        output.discard()


# -- text summary ---------------------------------------------------------------------------------


def _at(t: float | None, start: float) -> str:
    return "-" if t is None or t != t else f"+{t - start:.1f} s"


def _value(v: float | None, places: int = 3) -> str:
    return "-" if v is None or v != v else f"{v:.{places}f}"


def summary_lines(result: Analysis) -> list[str]:
    """The readable summary: what was read, which profile, ids, fields, alarms, findings."""
    from datetime import UTC, datetime

    data = result.to_dict()
    start = result.start
    lines: list[str] = []
    span = data["duration_s"]
    when = ""
    if start == start and start > 1e9:  # an epoch time: say when
        when = f", from {datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M:%S} UTC"
    lines.append(
        f"{data['source']}: {data['frames']:,} frames over {span or 0:,.1f} s{when}"
        f" (times below are from the first frame)"
    )
    if data["error_frames"] or data["skipped_lines"] or data["untimed_frames"]:
        parts = [f"{data['error_frames']} error frames", f"{data['skipped_lines']} lines skipped"]
        if data["untimed_frames"]:
            parts.append(f"{data['untimed_frames']} frames without a time")
        lines.append("  " + ", ".join(parts))
        lines += [f"  {e}" for e in data["skipped_examples"]]
    p = data["profile"]
    if p["chosen_by"] == "first_chunk":
        first = p["first_chunk"]
        lines.append(
            f"profile: {p['name']} (detected on the first {first['frames']:,} frames, "
            f"confidence {first['confidence']:.0%})"
        )
    else:
        lines.append(f"profile: {p['name']} (given)")
    whole = p["whole_capture"]
    if p["agrees"]:
        lines.append(f"  the whole capture agrees (confidence {whole['confidence']:.0%})")
    elif p["note"]:
        lines.append(f"  NOTE: {p['note']} (confidence {whole['confidence']:.0%})")
    lines.append("")
    lines.append(
        f"{'id':<11}{'frame':<20}{'count':>9}{'period':>9}{'table':>7}{'jitter':>8}"
        f"{'len':>6}{'gaps':>6}"
    )
    for row in data["ids"]:
        lengths = "/".join(row["lengths"])
        lines.append(
            f"{row['id']:<11}{(row['frame'] or '?')[:19]:<20}{row['count']:>9,}"
            f"{_value(row['period_s']):>9}{_value(row['table_period_s'], 1):>7}"
            f"{_value(row['jitter_s']):>8}{lengths:>6}{row['gaps']['count']:>6}"
        )
    gaps = [(r["id"], g) for r in data["ids"] for g in r["gaps"]["first"]]
    if gaps:
        lines.append("")
        lines.append("gaps (first ones):")
        for label, g in gaps[:20]:
            lines.append(
                f"  {label} silent for {g['length_s']:.1f} s from {_at(g['start'], start)}"
            )
    if data["decode_errors"]:
        errors = ", ".join(f"{k}: {v}" for k, v in data["decode_errors"].items())
        lines.append(f"frames the decoder rejects: {errors}")
    lines.append("")
    lines.append(
        f"{'field':<28}{'min':>10}{'at':>14}{'max':>10}{'at':>14}{'last':>10}{'frames':>9}"
    )
    for key, f in data["fields"].items():
        places = result.fields[key].decimals
        lines.append(
            f"{key:<28}{_value(f['min'], places):>10}{_at(f['min_at'], start):>14}"
            f"{_value(f['max'], places):>10}{_at(f['max_at'], start):>14}"
            f"{_value(f['last'], places):>10}{f['frames']:>9,}"
        )
    for target, names in data["alarms"].items():
        lines.append("")
        if not names:
            lines.append(f"{target}: none active")
            continue
        lines.append(f"{target}:")
        for name, a in names.items():
            lines.append(
                f"  {name:<26}{a['episodes']:>4} episodes, active {a['active_s']:,.1f} s, "
                f"first {_at(a['first'], start)}, last {_at(a['last'], start)}"
            )
    series = data["time_series"]
    lines.append("")
    lines.append(f"time series: {series['rows']:,} rows of {series['resolution_s']:g} s")
    for name in ("csv", "plot"):
        if series[name]:
            lines.append(f"  {name}: {series[name]}")
    c = data["conformance"]
    lines.append("")
    cell_note = f", {c['cells']}S LFP" if c["cells"] else ""
    lines.append(
        f"conformance{cell_note}: {c['errors']} errors, {c['warnings']} warnings"
        + ("" if c["findings"] else ", no findings")
    )
    for f in c["findings"]:
        lines.append(f"  {f['severity'].upper():<7} {f['code']}: {f['message']}")
    return lines


# -- plot -----------------------------------------------------------------------------------------


def _plot(result: Analysis, path: Path, target: str) -> None:
    """Panels of the envelope (min-max band, last value), alarm spans shaded."""
    import numpy as np
    from matplotlib.figure import Figure

    env = result.envelope
    times = env.times()
    present = set(result.series_keys)

    def has_data(key: str) -> bool:
        return key in present and bool(len(times)) and not np.isnan(env.column(key)).all()

    panels = [
        (title, [k for k in left if has_data(k)], [k for k in right if has_data(k)])
        for title, left, right in PANELS
    ]
    panels = [p for p in panels if p[1] or p[2]]
    start = float(times[0]) if len(times) else 0.0
    span = float(times[-1] - start) if len(times) else 0.0
    unit, divisor = (
        ("h", 3600.0) if span > 3 * 3600 else ("min", 60.0) if span > 600 else ("s", 1.0)
    )
    x = (times - start) / divisor
    width = env.width_s / divisor
    figure = Figure(figsize=(11, 1.2 + 2.0 * max(len(panels), 1)))
    axes = figure.subplots(max(len(panels), 1), 1, sharex=True, squeeze=False)[:, 0]
    spans = {
        target_key: _runs(env.column(target_key, "high") if target_key in present else None)
        for target_key in ("alarms", "warnings")
    }
    for axis, (title, left, right) in zip(axes, panels, strict=False):
        axis.set_title(title, fontsize=9, loc="left")
        _draw(axis, env, x, left)
        if right:
            twin = axis.twinx()
            _draw(twin, env, x, right, dashed=True)
        for target_key, colour in (("warnings", "orange"), ("alarms", "red")):
            for lo, hi in spans[target_key]:
                axis.axvspan(x[lo], x[hi] + width, color=colour, alpha=0.15, linewidth=0)
    if not panels:
        axes[0].text(0.5, 0.5, "no field of the profile in the capture", ha="center")
    axes[-1].set_xlabel(f"{unit} from the first frame")
    when = ""
    if start > 1e9:
        from datetime import UTC, datetime

        when = f", from {datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M} UTC"
    figure.suptitle(
        f"{Path(result.report.source).name}: {result.profile.name}{when} "
        f"(red: alarms, orange: warnings)",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, format=Path(target).suffix.lower().lstrip("."), dpi=110)


def _draw(axis: Any, env: Any, x: np.ndarray, keys: list[str], dashed: bool = False) -> None:
    """Each key's last value per bin as a line, its min-max range as a band."""
    first_colour = 2 if dashed else 0  # a right axis starts its own colour cycle: skip on
    for n, key in enumerate(keys):
        colour = f"C{first_colour + n}"
        low, high = env.column(key, "low"), env.column(key, "high")
        axis.plot(x, env.column(key), label=key, color=colour, linestyle="--" if dashed else "-")
        axis.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
    if keys:
        axis.legend(loc="upper left" if not dashed else "upper right", fontsize=7)


def _runs(flags: np.ndarray | None) -> list[tuple[int, int]]:
    """Index ranges where an alarm column says "active" (1)."""
    if flags is None:
        return []
    import numpy as np

    active = np.nan_to_num(flags, nan=0.0) > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[0::2], edges[1::2], strict=True)]


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_command)
