"""`bmslink analyze` over a 1,000,000-frame capture, against python-can + cantools, same run.

Generates (once, cached in the system's temp directory) a candump ``-L`` capture
of the Pylontech frame set from :func:`bmslink.sim.traffic.profile_traffic`, with
a high-temperature alarm for ten minutes of every three hours so the alarm path
has work. Then times:

- bmslink: the analyze engine in-process over the whole file: parsing, per-id
  statistics and gaps, vectorised decoding of every field, alarms, the 1 s time
  series (its envelope; no CSV, no plot) and the conformance rules;
- the peer: python-can's ``can.LogReader`` plus cantools decoding each message
  with the DBC ``bmslink dbc pylontech`` exports, on the first 200,000 frames
  (its rate does not depend on the file's length; the whole file takes minutes).

Each side is the best of three runs. Peak RSS (``resource.getrusage``) is
measured in child processes that analyse the file and the file four times over,
to show that memory does not grow with the capture; they run before the timings,
because Linux starts a child's peak RSS from its parent's. Last line:
``analyze: bmslink=N frames/s python-can+cantools=M frames/s ratio=R``.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FRAMES = 1_000_000
PEER_FRAMES = 200_000


def capture_path(frames: int) -> Path:
    """The cached capture, generated on first use (about ten seconds)."""
    from bmslink.capture import write_capture
    from bmslink.profiles import get_profile
    from bmslink.sim.traffic import drifting_state, profile_traffic
    from bmslink.state import BatteryState

    path = Path(tempfile.gettempdir()) / "bmslink-bench" / f"analyze-pylontech-{frames}.log"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    base = drifting_state("lv")

    def state_at(t: float) -> BatteryState:
        state = base(t)
        if t % 10_800 < 600:  # ten minutes of every three hours
            state = state.merged({"alarms": ["high_temperature"]})
        return state

    profile = get_profile("pylontech")
    seconds = frames / 7 * 1.05
    traffic = profile_traffic(profile, seconds, seed=1, jitter_s=0.03, state_at=state_at)
    write_capture(str(path), itertools.islice(traffic, frames))
    return path


def run_bmslink(path: Path) -> tuple[int, float]:
    from bmslink.capture import CaptureReport, read_capture
    from bmslink.diagnose.analyze import analyze
    from bmslink.profiles import get_profile

    profile = get_profile("pylontech")
    report = CaptureReport(str(path))
    start = time.perf_counter()
    result = analyze(read_capture(str(path), report), profile, report=report, cells=16)
    elapsed = time.perf_counter() - start
    assert result.fields["soc_pct"].frames > 0 and result.series_rows > 0
    assert result.alarms["alarms"]["high_temperature"].episodes > 0
    return report.frames, elapsed


def run_peer(path: Path, frames: int) -> tuple[int, float]:
    import can
    import cantools

    from bmslink.dbc import dbc_text
    from bmslink.profiles import get_profile

    db = cantools.database.load_string(dbc_text(get_profile("pylontech")), "dbc")
    known = {m.frame_id for m in db.messages}
    count = 0
    start = time.perf_counter()
    reader = can.LogReader(str(path))
    for msg in itertools.islice(reader, frames):
        if msg.arbitration_id in known:
            db.decode_message(msg.arbitration_id, msg.data, decode_choices=False)
        count += 1
    elapsed = time.perf_counter() - start
    stop = getattr(reader, "stop", None)
    if stop is not None:
        stop()
    return count, elapsed


def child_rss(path: Path) -> tuple[int, int]:
    """Peak RSS (KiB) of a fresh process after its imports, and after analysing ``path``."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--peer-frames", type=int, default=PEER_FRAMES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import bmslink.diagnose.analyze  # noqa: F401  (imports alone, for the baseline)

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run_bmslink(Path(args.child))
        print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return

    path = capture_path(args.frames)
    # the capture four times over (its clock restarts at each copy): four times the frames
    longer = path.with_name(f"{path.stem}-x4.log")
    if not longer.exists():
        with longer.open("wb") as target:
            for _ in range(4):
                with path.open("rb") as source:
                    shutil.copyfileobj(source, target)
    size_mb = path.stat().st_size / 1e6
    print(
        f"capture: {args.frames:,} frames, {size_mb:.0f} MB candump -L ({path}); "
        f"Python {platform.python_version()} on {platform.machine()}"
    )
    # first, while this process is small: a child's peak RSS starts from its parent's
    base, rss = child_rss(path)
    _, longer_rss = child_rss(longer)
    print(
        f"peak RSS of a bmslink analyze process: {rss / 1024:.0f} MiB for "
        f"{args.frames:,} frames, {longer_rss / 1024:.0f} MiB for {4 * args.frames:,} frames "
        f"({base / 1024:.0f} MiB after imports)"
    )
    ours = [run_bmslink(path) for _ in range(args.repeats)]
    frames, best = ours[0][0], min(t for _, t in ours)
    rate = frames / best
    print(
        f"bmslink analyze: {frames:,} frames in {best:.2f} s (best of {args.repeats}; "
        f"runs {', '.join(f'{t:.2f}' for _, t in ours)} s) = {rate:,.0f} frames/s"
    )
    peer = [run_peer(path, args.peer_frames) for _ in range(args.repeats)]
    peer_frames, peer_best = peer[0][0], min(t for _, t in peer)
    peer_rate = peer_frames / peer_best
    print(
        f"python-can LogReader + cantools: first {peer_frames:,} frames in {peer_best:.2f} s "
        f"(best of {args.repeats}) = {peer_rate:,.0f} frames/s"
    )
    print(
        f"analyze: bmslink={rate:.0f} frames/s python-can+cantools={peer_rate:.0f} frames/s "
        f"ratio={rate / peer_rate:.1f}"
    )


if __name__ == "__main__":
    main()
