"""Detection plus conformance on a generated 1,000,000-frame candump capture.

Generates the capture once (Pylontech LV traffic with jitter and 1 % dropped
frames) into a temporary directory, then times one pass of reading, per-id
statistics, conformance checking and profile detection, as `bmslink check`
and `bmslink detect` do. Last line: ``detect: N frames/s``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bmslink.capture import CaptureReport, read_capture, write_capture
from bmslink.diagnose.check import check_batches
from bmslink.diagnose.detect import detect
from bmslink.profiles import get_profile
from bmslink.sim.traffic import profile_traffic

FRAMES = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000


def main() -> None:
    profile = get_profile("pylontech")
    seconds = FRAMES / 7 * 1.02  # 7 frames per second, 1 % of them dropped
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "capture.log"
        frames = profile_traffic(profile, seconds, seed=1, jitter_s=0.03, drop_rate=0.01)
        count = write_capture(str(path), (f for _, f in zip(range(FRAMES), frames, strict=False)))
        size_mb = path.stat().st_size / 1e6
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            report = CaptureReport(str(path))
            stats, checker = check_batches(profile, read_capture(str(path), report), cells=16)
            findings = checker.findings(stats, report)
            result = detect(stats)
            best = min(best, time.perf_counter() - start)
    assert result.best is not None and result.best.profile == "pylontech"
    print(f"capture: {count} frames, {size_mb:.0f} MB candump -L")
    print(f"findings: {[f.code for f in findings]}; detected {result.best.profile}")
    print(f"time: {best:.2f} s for read + stats + check + detect (best of 3)")
    print(f"detect: {count / best:,.0f} frames/s")


if __name__ == "__main__":
    main()
