"""Views of the simulated chain: a live rich panel, plain progress lines, the summary."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bmslink.sim.chain import Chain, Sample, Summary

_SPARK = "▁▂▃▄▅▆▇█"


def clock_text(t_s: float) -> str:
    day, rest = divmod(int(t_s), 86_400)
    return f"day {day + 1} {rest // 3600:02d}:{rest % 3600 // 60:02d}"


def sparkline(values: list[float], low: float = 0.0, high: float = 100.0) -> str:
    span = high - low
    return "".join(_SPARK[min(7, max(0, int((v - low) / span * 7.999)))] for v in values)


def _fmt(value: float | None, unit: str, places: int = 1) -> str:
    return "—" if value is None else f"{value:.{places}f} {unit}"


def _flag(value: bool | None) -> str:
    return "—" if value is None else ("[green]yes[/]" if value else "[red]no[/]")


def progress_line(s: Sample) -> str:
    """One plain line (no colour) for logs and pipes."""
    seen = s.seen
    limits = (
        "battery lost"
        if seen is None
        else f"CVL {_fmt(seen.charge_voltage_v, 'V')} CCL {_fmt(seen.charge_current_a, 'A')} "
        f"DCL {_fmt(seen.discharge_current_a, 'A')}"
    )
    alarms = ",".join(seen.alarms or []) if seen is not None else ""
    return (
        f"[{clock_text(s.t_s)}] SoC true {s.true_soc_pct:5.1f}% seen "
        f"{_fmt(s.seen_soc_pct, '%', 0):>6} | {s.voltage_v:5.2f} V {s.current_a:+7.1f} A | "
        f"{limits} | cells {s.cell_min_v:.3f}-{s.cell_max_v:.3f} V | {s.temperature_c:4.1f} C | "
        f"PV {s.pv_w:5.0f} W load {s.load_w:5.0f} W | limit {s.limit} | "
        f"{control_text(s)} | alarms {alarms or '-'}"
    )


def control_text(s: Sample) -> str:
    """The controller's mode and the rule that sets each limit, e.g.
    ``control bulk, CVL by bulk, CCL by cell_voltage, DCL by max``."""
    if s.mode is None:
        return "control off"
    return f"control {s.mode}, CVL by {s.cvl_reason}, CCL by {s.ccl_reason}, DCL by {s.dcl_reason}"


def live_panel(chain: Chain, s: Sample, soc_history: list[float], wall_s: float) -> RenderableType:
    """The live view: truth on the left of each row, what the inverter sees on the right."""
    seen = s.seen
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column()
    direction = (
        "charging" if s.current_a > 0.05 else "discharging" if s.current_a < -0.05 else "idle"
    )
    grid.add_row("time", f"{clock_text(s.t_s)}   (wall {wall_s:5.1f} s)")
    grid.add_row(
        "SoC",
        f"true [bold]{s.true_soc_pct:5.1f} %[/]   BMS {_fmt(s.bms_soc_pct, '%')}   "
        f"inverter sees [bold]{_fmt(s.seen_soc_pct, '%', 0)}[/]",
    )
    grid.add_row("SoC (½ h)", sparkline(soc_history[-96:]) or "…")
    grid.add_row("pack", f"{s.voltage_v:6.2f} V  {s.current_a:+7.1f} A  ({direction})")
    grid.add_row(
        "cells",
        f"min {s.cell_min_v:.3f} V  max {s.cell_max_v:.3f} V  "
        f"Δ {1000 * (s.cell_max_v - s.cell_min_v):.0f} mV   temperature {s.temperature_c:.1f} °C",
    )
    if seen is None:
        grid.add_row("limits", "[red]battery lost: inverter neither charges nor discharges[/]")
    else:
        grid.add_row(
            "limits (CAN)",
            f"CVL {_fmt(seen.charge_voltage_v, 'V')}  CCL {_fmt(seen.charge_current_a, 'A')}  "
            f"DCL {_fmt(seen.discharge_current_a, 'A')}  DVL {_fmt(seen.discharge_voltage_v, 'V')}",
        )
        grid.add_row(
            "flags (CAN)",
            f"charge {_flag(seen.charge_enable)}  discharge {_flag(seen.discharge_enable)}  "
            f"force charge {_flag(seen.force_charge)}",
        )
        grid.add_row("controller", control_text(s))
        alarms = ", ".join(seen.alarms or []) or "[green]none[/]"
        warnings = ", ".join(seen.warnings or []) or "[green]none[/]"
        grid.add_row("alarms", f"{alarms}   warnings: {warnings}")
    grid_w = s.load_w + s.voltage_v * s.current_a - s.pv_w
    flow = "import" if grid_w > 0 else "export"
    grid.add_row(
        "power",
        f"PV {s.pv_w / 1000:4.1f} kW  load {s.load_w / 1000:4.1f} kW  "
        f"grid {flow} {abs(grid_w) / 1000:4.1f} kW  inverter limited by [bold]{s.limit}[/]",
    )
    rate = s.frames_sent / wall_s if wall_s > 0 else 0.0
    grid.add_row(
        "CAN",
        f"battery {'[green]online[/]' if s.battery_online else '[red]lost[/]'}  "
        f"inverter keep-alive {'[green]online[/]' if s.inverter_online else '[red]offline[/]'}  "
        f"{s.frames_sent:,} frames ({rate:,.0f}/s wall)",
    )
    grid.add_row("BMS cut-offs", str(s.cutoffs) if s.cutoffs == 0 else f"[red]{s.cutoffs}[/]")
    cfg = chain.config
    title = (
        f"bmslink demo · {chain.profile.title} · "
        f"{chain.capacity_ah:.0f} Ah {chain.series_cells}S LFP ↔ "
        f"{cfg.inverter_rating_w / 1000:.0f} kW"
    )
    return Panel(grid, title=title, border_style="blue")


def summary_lines(summary: Summary) -> list[str]:
    """The summary as plain lines, also the body of the rich summary."""
    hours = summary.seconds_at_limit
    limit_text = ", ".join(
        f"{name} {seconds / 3600:.1f} h"
        for name, seconds in sorted(hours.items())
        if name != "none"
    )
    seen = (
        "never received"
        if summary.seen_soc_min_pct is None
        else f"{summary.seen_soc_min_pct:.0f}-{summary.seen_soc_max_pct:.0f} %"
    )
    lines = [
        f"simulated          {summary.simulated_hours:.1f} h in {summary.step_s:g} s steps, "
        f"profile {summary.profile}",
        f"battery energy     in {summary.energy_in_kwh:.2f} kWh, "
        f"out {summary.energy_out_kwh:.2f} kWh",
        f"PV / load          {summary.pv_kwh:.2f} kWh / {summary.load_kwh:.2f} kWh",
        f"grid               import {summary.grid_import_kwh:.2f} kWh, "
        f"export {summary.grid_export_kwh:.2f} kWh",
        f"SoC range          true {summary.true_soc_min_pct:.1f}-{summary.true_soc_max_pct:.1f} %, "
        f"inverter saw {seen} (max error {summary.soc_error_max_pct:.1f} points)",
        f"BMS cut-offs       {summary.bms_cutoffs}"
        + (f" ({'; '.join(summary.cutoff_events)})" if summary.cutoff_events else ""),
        f"time at limits     {limit_text or 'none'}",
        f"charge held by     {held_text(summary.charge_limited_s) or 'nothing'}",
        f"CAN                {summary.frames_sent:,} frames sent, {summary.frames_received:,} "
        f"decoded, {summary.decode_errors} decode errors, {summary.immediate_rounds} immediate "
        f"safety rounds, battery lost {summary.battery_lost_events}×",
    ]
    if summary.broadcast_halts:
        lines.append(
            f"broadcast halted   {summary.broadcast_halts}×, last: {summary.last_halt_reason}"
        )
    return lines


def held_text(held_s: dict[str, float]) -> str:
    """What held the charge current down while PV exceeded the load (``held_s`` comes ranked,
    ``Summary.charge_limited_s``); the controller's rule after the colon
    (``ccl:cell_voltage 0.4 h``)."""
    return ", ".join(f"{name} {s / 3600:.1f} h" for name, s in held_s.items() if name != "none")


def summary_panel(summary: Summary) -> RenderableType:
    return Panel(
        Group(*(Text(line) for line in summary_lines(summary))),
        title="summary",
        border_style="green" if summary.bms_cutoffs == 0 else "red",
    )
