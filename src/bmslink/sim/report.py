"""Run a scenario and write its report: ``metrics.json``, PNG plots and ``summary.md``.

Why a report directory rather than terminal output: a week at 10 s steps is 60 000
points per series; what a reader needs is the plot of SoC, cells, limits, current and
temperature beside the few numbers that say whether the chain was safe.

``metrics.json``::

    {
      "scenario": "voltage-only-vs-comms",
      "description": "...",
      "days": 2,
      "step_s": 10.0,
      "physics_dt_s": 5.0,
      "runs": {                       # run name -> exactly the METRIC_KEYS
        "comms": {"soc_error_mean_pct": 1.1, "soc_error_max_pct": 2.5, "bms_cutoffs": 0,
                  "seconds_cell_above_3v60": 0.0, "seconds_charging_over_voltage": 0.0,
                  "seconds_charging_below_0c": 0.0, "energy_in_kwh": 11.3,
                  "energy_out_kwh": 9.4},
        "voltage-only": {...}
      },
      "details": {                    # run name -> how it was run and what limited it
        "comms": {"inverter_mode": "comms", "control": true, "link": "can",
                  "charge_limited_s": {"none": 12500.0, ...},
                  "plot": "comms-overview.png", "wall_s": 2.1,
                  "config": {... the ChainConfig ...}, "summary": {... Chain.summary() ...}}
      },
      "plots": ["comms-overview.png", ...]
    }

``soc_error_*`` is null for a run in which the inverter never showed a SoC; every
other metric is always a number. ``charge_limited_s`` counts sub-step seconds in
which PV exceeded the load, by what held the charge current down: the inverter's
limit name (``none``, ``rating``, ``ccl``, ``cvl``, ``charge_disabled``,
``battery_lost``), refined with the controller's reason (``ccl:temperature``), or
``bms_fet_off`` when the BMS opened its charge FET under a charge command.

Files are written to temporary names in the directory and renamed into place only
after every one of them was rendered, so a failed run leaves no half-written report.
The plots use matplotlib's Agg canvas directly (no pyplot, no global backend state).
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bmslink.sim.chain import METRIC_KEYS, Chain, ChainConfig
from bmslink.sim.scenarios import Scenario

#: Plot points: one per this many simulated seconds (or per step, if steps are longer).
TRACE_EVERY_S = 60.0

#: The longest CAN round at which the safety metrics mean what they say: the inverter acts on
#: new limits once per round, so with 60 s rounds a cell can sit above its threshold for most
#: of a round before the cut arrives (imbalanced-pack: 35 s above 3.60 V and 3 cut-offs at
#: 60 s, none at 10 s). A real link sends every second.
SAFETY_RESOLUTION_S = 10.0


def resolution_note(step_s: float) -> str | None:
    """A warning when ``step_s`` is too coarse for the safety metrics, else None."""
    if step_s <= SAFETY_RESOLUTION_S:
        return None
    return (
        f"CAN round every {step_s:g} s: the inverter acts on new limits only that often, so "
        f"the safety metrics (seconds over voltage, cut-offs) overstate what a real link, which "
        f"sends every second, would allow; use --step {SAFETY_RESOLUTION_S:g} or less for them"
    )


_HOUR = 3600.0


@dataclass
class Trace:
    """Per-run time series for the plots, one point every ``every_s`` simulated seconds."""

    every_s: float = TRACE_EVERY_S
    hours: list[float] = field(default_factory=list)
    true_soc: list[float] = field(default_factory=list)
    reported_soc: list[float | None] = field(default_factory=list)
    cell_max: list[float] = field(default_factory=list)
    cell_min: list[float] = field(default_factory=list)
    ccl: list[float | None] = field(default_factory=list)
    dcl: list[float | None] = field(default_factory=list)
    bms_ccl: list[float] = field(default_factory=list)
    bms_dcl: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)
    ambient: list[float] = field(default_factory=list)
    silent: list[bool] = field(default_factory=list)
    _next_s: float = 0.0

    def __call__(self, chain: Chain) -> None:
        """An ``on_step`` callback: records a point when one is due."""
        elapsed = chain.elapsed_s
        if elapsed + 1e-9 < self._next_s:
            return
        self._next_s = elapsed + self.every_s
        s = chain.sample()
        self.hours.append(elapsed / _HOUR)
        self.true_soc.append(s.true_soc_pct)
        self.reported_soc.append(s.reported_soc_pct)
        self.cell_max.append(s.cell_max_v)
        self.cell_min.append(s.cell_min_v)
        self.ccl.append(s.ccl_a)
        self.dcl.append(s.dcl_a)
        self.bms_ccl.append(s.bms_ccl_a)
        self.bms_dcl.append(s.bms_dcl_a)
        self.current.append(s.current_a)
        self.temperature.append(s.temperature_c)
        self.ambient.append(s.ambient_c)
        self.silent.append(s.bms_silent)


@dataclass
class RunResult:
    """One run of a scenario: its configuration, metrics, summary and trace."""

    name: str
    config: ChainConfig
    metrics: dict[str, float | int | None]
    charge_limited_s: dict[str, float]
    summary: dict[str, Any]
    trace: Trace
    wall_s: float

    @property
    def plot_name(self) -> str:
        return f"{self.name}-overview.png"


@dataclass
class ScenarioResult:
    """Every run of one scenario."""

    scenario: Scenario
    days: int
    step_s: float
    runs: dict[str, RunResult]


def run_scenario(
    scenario: Scenario,
    days: int | None = None,
    step_s: float | None = None,
    on_run: Callable[[RunResult], None] | None = None,
) -> ScenarioResult:
    """Run each of the scenario's runs to the end; ``on_run`` hears about each finished one."""
    configs = scenario.configs(days, step_s)
    runs: dict[str, RunResult] = {}
    for name, config in configs.items():
        trace = Trace(every_s=max(TRACE_EVERY_S, config.step_s))
        start = time.perf_counter()
        with Chain(config) as chain:
            summary = chain.run(trace)
            result = RunResult(
                name=name,
                config=config,
                metrics=chain.metrics_dict(),
                charge_limited_s=summary.charge_limited_s,
                summary=summary.to_dict(),
                trace=trace,
                wall_s=time.perf_counter() - start,
            )
        runs[name] = result
        if on_run is not None:
            on_run(result)
    first = next(iter(configs.values()))
    return ScenarioResult(
        scenario=scenario,
        days=days if days is not None else scenario.days,
        step_s=first.step_s,
        runs=runs,
    )


# -- metrics.json -----------------------------------------------------------------------------


def metrics_document(result: ScenarioResult) -> dict[str, Any]:
    """The content of ``metrics.json`` (shape in the module docstring)."""
    first = next(iter(result.runs.values()))
    plots = plot_names(result)
    return {
        "scenario": result.scenario.name,
        "description": result.scenario.description,
        "days": result.days,
        "step_s": result.step_s,
        "physics_dt_s": first.config.physics_dt_s,
        "runs": {
            name: {k: run.metrics[k] for k in METRIC_KEYS} for name, run in result.runs.items()
        },
        "details": {
            name: {
                "inverter_mode": run.config.inverter_mode,
                "control": run.config.control,
                "link": run.config.link,
                "charge_limited_s": run.charge_limited_s,
                "plot": run.plot_name,
                "wall_s": round(run.wall_s, 3),
                "config": asdict(run.config),
                "summary": run.summary,
            }
            for name, run in result.runs.items()
        },
        "plots": plots,
    }


def plot_names(result: ScenarioResult) -> list[str]:
    names = [run.plot_name for run in result.runs.values()]
    if len(result.runs) > 1:
        names.append(COMPARISON_PLOT)
    return names


COMPARISON_PLOT = "soc-comparison.png"


# -- summary.md -------------------------------------------------------------------------------


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}"


def _describe_run(run: RunResult) -> str:
    c = run.config
    if c.inverter_mode == "comms":
        parts = ["controller" if c.control else "BMS limits as sent", "inverter obeys CAN"]
    else:
        parts = ["voltage-only inverter (CAN still runs, ignored)"]
    if c.link != "can":
        parts.append(f"{c.link} link")
    return ", ".join(parts)


def summary_markdown(result: ScenarioResult) -> str:
    """A short markdown page: the scenario, its runs, the metrics and what limited charging."""
    sc = result.scenario
    first = next(iter(result.runs.values())).config
    names = list(result.runs)
    physics_s = result.step_s / max(1, round(result.step_s / first.physics_dt_s))  # as Chain.step
    lines = [
        f"# bmslink simulate: {sc.name}",
        "",
        sc.description,
        "",
        f"- {result.days} simulated day(s), CAN round every {result.step_s:g} s, "
        f"physics every {physics_s:g} s, profile `{first.profile}`",
        *(f"- run `{name}`: {_describe_run(run)}" for name, run in result.runs.items()),
        *([f"- **note**: {note}"] if (note := resolution_note(result.step_s)) else []),
        "",
        "## Metrics",
        "",
        "| metric | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key in METRIC_KEYS:
        cells = " | ".join(_fmt(result.runs[n].metrics[key]) for n in names)
        lines.append(f"| {key} | {cells} |")
    lines += [
        "",
        "## What limited charging most",
        "",
        "Time with PV above the load, by what held the charge current down "
        "(`inverter limit:controller reason`; `bms_fet_off`: the BMS opened its charge FET).",
        "",
    ]
    for name, run in result.runs.items():
        total = sum(run.charge_limited_s.values())
        if total <= 0:
            lines.append(f"- `{name}`: PV never exceeded the load.")
            continue
        ranked = [(k, v) for k, v in run.charge_limited_s.items() if k != "none"]
        if not ranked:
            lines.append(f"- `{name}`: nothing; charging was never held down.")
            continue
        top = ", ".join(f"`{k}` {v / _HOUR:.1f} h" for k, v in ranked[:3])
        lines.append(f"- `{name}`: {top} (of {total / _HOUR:.1f} h with PV above the load)")
    lines += ["", "## Plots", ""]
    lines += [f"- [{p}]({p})" for p in plot_names(result)]
    return "\n".join(lines) + "\n"


# -- plots ------------------------------------------------------------------------------------


def _silent_spans(trace: Trace) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for h, silent in zip(trace.hours, trace.silent, strict=True):
        if silent and start is None:
            start = h
        elif not silent and start is not None:
            spans.append((start, h))
            start = None
    if start is not None and trace.hours:
        spans.append((start, trace.hours[-1]))
    return spans


def _nan(values: Iterable[float | None]) -> list[float]:
    """None (not received) as NaN, so matplotlib leaves a gap instead of inventing a value."""
    return [float("nan") if v is None else v for v in values]


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def render_run_plot(run: RunResult, title: str) -> bytes:
    """One PNG with five panels: SoC, cell extremes, CCL/DCL, current, temperature."""
    from matplotlib.figure import Figure

    t = run.trace
    fig = Figure(figsize=(11, 13), layout="constrained")
    axes = fig.subplots(5, 1, sharex=True)
    soc, cells, limits, current, temp = axes
    fig.suptitle(f"{title} · {run.name}")
    shown = (
        "reported over CAN" if run.config.inverter_mode == "comms" else "inverter's own estimate"
    )
    soc.plot(t.hours, t.true_soc, label="true SoC", color="black")
    soc.plot(t.hours, _nan(t.reported_soc), label=f"reported ({shown})", color="tab:orange")
    soc.set_ylabel("SoC (%)")
    soc.set_ylim(-2, 102)
    cells.plot(t.hours, t.cell_max, label="highest cell", color="tab:red")
    cells.plot(t.hours, t.cell_min, label="lowest cell", color="tab:blue")
    cells.axhline(3.60, color="grey", linestyle=":", label="3.60 V")
    cells.set_ylabel("cell (V)")
    limits.plot(t.hours, _nan(t.ccl), label="CCL received", color="tab:green")
    limits.plot(t.hours, _nan(t.dcl), label="DCL received", color="tab:purple")
    limits.plot(t.hours, t.bms_ccl, label="BMS's own CCL", color="tab:green", linestyle=":")
    limits.plot(t.hours, t.bms_dcl, label="BMS's own DCL", color="tab:purple", linestyle=":")
    limits.set_ylabel("limit (A)")
    current.plot(t.hours, t.current, label="battery current (+ charge)", color="tab:cyan")
    current.axhline(0.0, color="grey", linewidth=0.5)
    current.set_ylabel("current (A)")
    temp.plot(t.hours, t.temperature, label="pack", color="tab:red")
    temp.plot(t.hours, t.ambient, label="ambient", color="tab:grey")
    temp.axhline(0.0, color="tab:blue", linestyle=":", label="0 °C")
    temp.set_ylabel("temperature (°C)")
    temp.set_xlabel("simulated hours")
    for ax in axes:
        for start, end in _silent_spans(t):
            ax.axvspan(start, end, color="tab:red", alpha=0.12, linewidth=0)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
    return _png(fig)


def render_comparison_plot(result: ScenarioResult) -> bytes:
    """True SoC and each run's reported SoC on one axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.set_title(f"{result.scenario.name}: true vs reported SoC")
    for name, run in result.runs.items():
        line = ax.plot(run.trace.hours, run.trace.true_soc, label=f"{name}: true", linewidth=1)
        ax.plot(
            run.trace.hours,
            _nan(run.trace.reported_soc),
            label=f"{name}: reported",
            color=line[0].get_color(),
            linestyle="--",
        )
    ax.set_xlabel("simulated hours")
    ax.set_ylabel("SoC (%)")
    ax.set_ylim(-2, 102)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    return _png(fig)


# -- writing ----------------------------------------------------------------------------------


def render_report(result: ScenarioResult) -> dict[str, bytes]:
    """Every report file by name, rendered in memory."""
    files = {
        run.plot_name: render_run_plot(run, result.scenario.name) for run in result.runs.values()
    }
    if len(result.runs) > 1:
        files[COMPARISON_PLOT] = render_comparison_plot(result)
    files["summary.md"] = summary_markdown(result).encode()
    files["metrics.json"] = (json.dumps(metrics_document(result), indent=2) + "\n").encode()
    return files


def write_report(result: ScenarioResult, directory: Path) -> list[Path]:
    """Render everything, then write it into ``directory`` (created) via temp names + rename."""
    files = render_report(result)
    directory.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[Path, Path]] = []
    try:
        for name, data in files.items():
            final = directory / name
            temp = directory / f".{name}.{os.getpid()}.tmp"
            temps.append((temp, final))
            temp.write_bytes(data)
    except BaseException:
        for temp, _ in temps:
            temp.unlink(missing_ok=True)
        raise
    for temp, final in temps:
        os.replace(temp, final)
    return [final for _, final in temps]
