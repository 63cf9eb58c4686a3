#!/usr/bin/env python3
"""CPU and memory of a running bridge: one simulated BMS polled at 1 Hz, one CAN sink.

The bridge runs as a user runs it, in its own process::

    python -m bmslink bridge --bms jk:sim --inverter pylontech:virtual:bench \\
        --duration 60 --status-every 60

(one JK BMS polled once a second, the default; the Pylontech CAN profile on a
python-can ``virtual`` bus, 6 frames once a second; a tick every 20 ms).
``jk:sim`` starts a simulated JK device on a PTY pair inside the same process,
with the simulated pack's physics behind it, so its serving thread, the PTY
relay thread and the pack model are counted too: the figures are an upper
bound for the bridge alone, which on a real installation talks to a BMS on
``/dev/ttyUSB0`` instead.

Figures:

- total cpu: the child's user + system time from ``os.wait4`` over its wall
  time from spawn to exit, in % of one core. It includes the interpreter's
  start, the imports and the shutdown, which a bridge running for months pays
  once.
- steady-state cpu (the last line): the child's own CPU counters
  (``/proc/PID/stat`` utime + stime, all its threads, 10 ms ticks) read twice
  while it runs: ``--settle`` seconds after its first status line (printed
  when the event loop starts: imports and set-up are done and the first polls
  are out) and 1 s before it stops. Their difference over the wall time
  between the reads is the cost of running, with start and stop outside the
  window. As a cross-check a ``--duration 1`` run is also timed and the
  difference of the two runs' CPU over the difference of their wall times is
  printed (start and stop cancel out; noisier, as one start's cost varies).
- start-up: wall and CPU time from spawn to the first status line.
- rss: peak resident set (``ru_maxrss`` from ``wait4``, KiB on Linux, or the
  ``VmHWM`` read at the end of the window if higher; printed in MiB as "MB")
  and the resident set at the end of the window (``VmRSS``).

Last line: ``bridge: cpu=X% rss=Y MB`` with the steady-state CPU and the peak RSS.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def command(seconds: float, channel: str) -> list[str]:
    return [
        sys.executable, "-m", "bmslink", "bridge",
        "--bms", "jk:sim",
        "--inverter", f"pylontech:virtual:{channel}",
        "--duration", f"{seconds:g}",
        "--status-every", f"{max(seconds, 0.1):g}",
    ]  # fmt: skip


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # fields 14, 15 of stat(5)


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB: resident now, and its high-water mark so far."""
    found: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(line.split()[1]) / 1024
    return found["VmRSS"], found["VmHWM"]


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    startup_wall_s: float | None = None
    startup_cpu_s: float | None = None
    window: tuple[float, float] | None = None  # (wall s, cpu s) of the steady window
    window_rss_mb: float | None = None
    window_hwm_mb: float = 0.0
    output: list[str] = field(default_factory=list)


def run_bridge(seconds: float, settle_s: float, channel: str) -> Run:
    """Spawn the bridge for ``seconds``; sample it in a window if the run is long enough."""
    start = time.perf_counter()
    child = subprocess.Popen(
        command(seconds, channel), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert child.stdout is not None
    output: list[str] = []
    first_line = threading.Event()

    def drain() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            output.append(line.rstrip())
            first_line.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    result = Run(0.0, 0.0, 0.0, output=output)
    if first_line.wait(timeout=seconds + 30) and child.poll() is None:
        result.startup_wall_s = time.perf_counter() - start
        result.startup_cpu_s = cpu_s(child.pid)
        window_start = result.startup_wall_s + settle_s
        window_end = seconds + result.startup_wall_s - 1.0
        if window_end - window_start >= 5.0:
            time.sleep(max(0.0, window_start - (time.perf_counter() - start)))
            w0, c0 = time.perf_counter(), cpu_s(child.pid)
            time.sleep(max(0.0, window_end - (time.perf_counter() - start)))
            w1, c1 = time.perf_counter(), cpu_s(child.pid)
            result.window = (w1 - w0, c1 - c0)
            result.window_rss_mb, result.window_hwm_mb = rss_mb(child.pid)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    result.wall_s = time.perf_counter() - start
    reader.join(5)
    if child.returncode != 0:
        sys.exit(f"the bridge failed ({child.returncode}):\n" + "\n".join(output[-20:]))
    result.cpu_s = usage.ru_utime + usage.ru_stime
    # ru_maxrss is the high-water mark at exit; VmHWM read while running may be a hair higher
    result.max_rss_mb = max(usage.ru_maxrss / 1024, result.window_hwm_mb)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="bridge run time (60)")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds after start-up before sampling (3)"
    )
    args = parser.parse_args()
    if args.seconds < args.settle + 6:
        parser.error("--seconds must leave at least 5 s of steady window after --settle")
    channel = f"bench-footprint-{os.getpid()}"
    short = run_bridge(1.0, args.settle, channel)
    long = run_bridge(args.seconds, args.settle, channel)
    assert long.window is not None and long.startup_wall_s is not None
    assert long.startup_cpu_s is not None

    total_pct = long.cpu_s / long.wall_s * 100
    window_wall, window_cpu = long.window
    steady_pct = window_cpu / window_wall * 100
    diff_pct = (long.cpu_s - short.cpu_s) / (long.wall_s - short.wall_s) * 100
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"bmslink bridge --bms jk:sim --inverter pylontech:virtual, {args.seconds:g} s; "
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs "
        f"(load average {load})"
    )
    print(
        f"  start-up (spawn -> first status line): {long.startup_wall_s:.2f} s wall, "
        f"{long.startup_cpu_s:.2f} s cpu"
    )
    print(
        f"  total: {long.cpu_s:.2f} s cpu in {long.wall_s:.1f} s wall = {total_pct:.2f}% "
        "of one core (start-up and shutdown included)"
    )
    print(
        f"  steady state: {window_cpu:.2f} s cpu in a {window_wall:.1f} s window = "
        f"{steady_pct:.2f}% of one core"
    )
    print(
        f"  cross-check, minus a --duration 1 run ({short.cpu_s:.2f} s cpu in "
        f"{short.wall_s:.1f} s): {diff_pct:.2f}% of one core"
    )
    print(
        f"  rss: peak {long.max_rss_mb:.1f} MB, at the end of the window "
        f"{long.window_rss_mb:.1f} MB (MB = MiB)"
    )
    print(f"bridge: cpu={steady_pct:.2f}% rss={long.max_rss_mb:.1f} MB")


if __name__ == "__main__":
    main()
