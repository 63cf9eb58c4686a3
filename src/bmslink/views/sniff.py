"""Views of ``bmslink sniff``: a live rich table on a terminal, a line log anywhere else.

Line log, one line per frame (times are seconds since sniff started)::

       1.204  0x351  [8]  14 02 74 0E 74 0E CC 01  limits charge_voltage_v=53.2 ...

Values are JSON (``53.2``, ``true``, ``"PYLON"``, ``[3.301,3.302]``) so a script
can read them back exactly; a payload the profile refuses shows ``!`` and why.
Events (profile detected, error frames, adapter status) are lines starting
with ``--`` after the time.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bmslink.diagnose.sniff import FrameInfo, IdRow, SniffEngine, SniffEvent
from bmslink.state import BatteryState


def format_value(value: Any) -> str:
    """A decoded value as compact JSON: exact and machine-readable."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def format_fields(fields: Mapping[str, Any]) -> str:
    return " ".join(f"{key}={format_value(value)}" for key, value in fields.items())


def hex_bytes(data: bytes) -> str:
    return " ".join(f"{b:02X}" for b in data)


def frame_line(info: FrameInfo, started: float) -> str:
    """``TIME ID [LEN] DATA  NAME key=value ...`` for one frame."""
    head = (
        f"{info.t - started:10.3f}  {info.label:<10} [{len(info.data)}]  {hex_bytes(info.data):<23}"
    )
    if info.name is None:
        return head.rstrip()
    if info.error is not None:
        return f"{head}  {info.name} !{info.error}"
    detail = format_fields(info.fields or {})
    return f"{head}  {info.name} {detail}".rstrip()


def event_line(event: SniffEvent, started: float) -> str:
    return f"{event.t - started:10.3f}  -- {event.text}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


def _counter_text(counter: Counter[str]) -> str:
    return ", ".join(f"{name} ×{n}" for name, n in sorted(counter.items())) or "none"


def profile_text(engine: SniffEngine) -> str:
    if engine.profile is None:
        guess = engine.detection
        if guess is not None and guess.best is not None:
            return f"detecting… (best guess {guess.best.profile}, {guess.confidence:.0%})"
        return "detecting…"
    if not engine.auto:
        return engine.profile.name
    confidence = engine.detection.confidence if engine.detection else 0.0
    return f"{engine.profile.name} (auto, {confidence:.0%})"


def counters_text(engine: SniffEngine, now: float) -> str:
    """The bottom line: totals, errors, adapter status and bus states."""
    other = (
        f" (+{engine.other_frames} beyond {len(engine.rows)} ids)" if engine.other_frames else ""
    )
    return (
        f"{engine.elapsed(now):.1f} s  frames {engine.frames}{other}  ids {len(engine.rows)}  "
        f"decode errors {engine.decode_errors}  error frames {engine.error_frames}  "
        f"status {_counter_text(engine.status)}  bus states {_counter_text(engine.bus_states)}  "
        f"profile {profile_text(engine)}"
    )


def row_line(row: IdRow, now: float) -> str:
    """One id of the summary."""
    name = row.name or "?"
    return (
        f"{row.label:<10} {name:<18} count {row.count:<7} period {_seconds(row.period):>9}  "
        f"jitter {_seconds(row.jitter):>9}  age {row.age(now):7.1f} s  last {hex_bytes(row.data)}"
    )


def summary_lines(engine: SniffEngine, now: float | None = None) -> list[str]:
    now = engine.clock.now() if now is None else now
    lines = ["summary", f"  {counters_text(engine, now)}"]
    lines += [f"  {row_line(row, now)}" for row in engine.sorted_rows()]
    return lines


def state_lines(state: BatteryState | None) -> list[tuple[str, str]]:
    if state is None:
        return []
    return [(key, format_value(value)) for key, value in state.to_dict().items()]


#: Below this many columns the battery goes under the id table instead of beside it.
WIDE_COLUMNS = 140


#: Below this many columns the id table leaves out the jitter.
NARROW_COLUMNS = 100


def id_table(engine: SniffEngine, now: float, *, width: int) -> Table:
    """One row per CAN id; jitter and the decoded fields only when there is room for them."""
    wide = width >= WIDE_COLUMNS
    jitter = width >= NARROW_COLUMNS
    table = Table(
        expand=True,
        header_style="bold cyan",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    columns = ["id", "frame", "count", "period", *(["jitter"] if jitter else []), "age", "data"]
    for name in columns:
        right = name in ("count", "period", "jitter", "age")
        table.add_column(
            name,
            justify="right" if right else "left",
            no_wrap=True,
            min_width=5 if name == "id" else None,
        )
    if wide:
        table.add_column("decoded", ratio=1, overflow="ellipsis")
    for row in engine.sorted_rows():
        age = row.age(now)
        stale = row.spec is not None and age > engine.expiry(row.spec)
        cells: list[RenderableType] = [
            row.label,
            row.name or "?",
            str(row.count),
            _seconds(row.period),
            *([_seconds(row.jitter)] if jitter else []),
            Text(f"{age:.1f} s", style="red" if stale else ""),
            hex_bytes(row.data),
        ]
        if wide:
            if row.error is not None:
                cells.append(Text(row.error, style="red"))
            else:
                cells.append(Text(format_fields(row.fields) if row.fields else ""))
        table.add_row(*cells)
    return table


def battery_panel(state: BatteryState | None, pairs_per_row: int = 1) -> Panel:
    """The decoded battery, from fresh frames only; nothing at all rather than stale values."""
    if state is None:
        body: RenderableType = Text("no fresh battery frames", style="yellow")
    else:
        grid = Table.grid(padding=(0, 1), expand=True)
        for _ in range(pairs_per_row):
            grid.add_column(style="cyan", no_wrap=True)
            grid.add_column(overflow="fold", ratio=1)
        items = state_lines(state)
        for start in range(0, len(items), pairs_per_row):
            chunk = items[start : start + pairs_per_row]
            cells = [cell for pair in chunk for cell in pair]
            grid.add_row(*cells, *[""] * (2 * pairs_per_row - len(cells)))
        body = grid
    return Panel(
        body,
        title="battery (fresh frames only)",
        border_style="green" if state is not None else "yellow",
    )


def live_view(
    engine: SniffEngine, now: float | None = None, width: int = WIDE_COLUMNS
) -> RenderableType:
    """The id table and the decoded battery (beside it when ``width`` allows, else below),
    recent events and the counters under them."""
    now = engine.clock.now() if now is None else now
    wide = width >= WIDE_COLUMNS
    table = id_table(engine, now, width=width)
    state = engine.state(now)
    if wide:
        top = Table.grid(expand=True, padding=(0, 1))
        top.add_column(ratio=3)
        top.add_column(ratio=1, min_width=36)
        top.add_row(table, battery_panel(state))
        body: list[RenderableType] = [top]
    else:
        body = [table, battery_panel(state, pairs_per_row=2 if width < 110 else 3)]
    events = [Text(event_line(e, engine.started)) for e in list(engine.events)[-4:]]
    footer = Text(counters_text(engine, now), style="bold")
    return Panel(
        Group(*body, *events, footer),
        title=f"bmslink sniff · {profile_text(engine)}",
        border_style="blue",
    )
