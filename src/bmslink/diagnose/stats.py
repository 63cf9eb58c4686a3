"""Per-id statistics of a capture, gathered a batch at a time in constant memory.

For each CAN id: how often, how regularly (median period from a bounded
sample of intervals, the longest gap and when it started), which lengths,
and a few distinct payloads kept as evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from bmslink.capture import FrameBatch
from bmslink.profiles.base import Profile, format_id

SAMPLE_INTERVALS = 4096
SAMPLE_PAYLOADS = 8


@dataclass
class IdStats:
    """What one CAN id did over the capture."""

    can_id: int
    extended: bool
    count: int = 0
    first_ts: float = float("nan")
    last_ts: float = float("nan")
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(9, dtype=np.int64))
    intervals: list[float] = field(default_factory=list)  # a bounded sample
    min_interval: float = float("inf")
    max_gap: float = 0.0
    max_gap_at: float = float("nan")
    payloads: dict[bytes, float] = field(default_factory=dict)  # first distinct payloads -> time
    #: Whether any frame's payload differed from the first one, over every row (the payload
    #: sample above only looks at the first rows of each batch).
    varies: bool = False

    @property
    def label(self) -> str:
        return format_id(self.can_id, self.extended)

    @property
    def period(self) -> float | None:
        """Median interval, the period a sender aims for; None below two frames."""
        if not self.intervals:
            return None
        return float(np.median(self.intervals))

    @property
    def dominant_length(self) -> int:
        return int(self.lengths.argmax())


@dataclass
class CaptureStats:
    """Everything detection and conformance need that is cheap to keep."""

    ids: dict[tuple[int, bool], IdStats] = field(default_factory=dict)
    frames: int = 0

    def unknown_labels(self, profile: Profile) -> list[str]:
        """Ids on the capture that ``profile`` has no frame for, sorted."""
        known = profile.spec
        return sorted(s.label for s in self.ids.values() if known(s.can_id, s.extended) is None)

    def add(self, batch: FrameBatch) -> None:
        """Fold one batch in; batches come through ``numbered`` so every frame has a time."""
        n = len(batch)
        if n == 0:
            return
        self.frames += n
        ts = batch.timestamps
        keys = batch.ids.astype(np.uint64) | (batch.extended.astype(np.uint64) << np.uint64(32))
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        bounds = np.flatnonzero(np.diff(sorted_keys)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [n]])
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            rows = order[lo:hi]
            key = int(sorted_keys[lo])
            ident = (key & 0xFFFFFFFF, bool(key >> 32))
            stats = self.ids.get(ident)
            if stats is None:
                stats = self.ids[ident] = IdStats(*ident)
            self._update(stats, rows, ts, batch)

    @staticmethod
    def _update(stats: IdStats, rows: np.ndarray, ts: np.ndarray, batch: FrameBatch) -> None:
        times = ts[rows]
        if not np.isnan(stats.last_ts):
            times_all = np.concatenate([[stats.last_ts], times])
        else:
            times_all = times
            stats.first_ts = float(times[0])
        intervals = np.diff(times_all)
        if len(intervals):
            room = SAMPLE_INTERVALS - len(stats.intervals)
            if room > 0:
                stats.intervals.extend(intervals[:room].tolist())
            stats.min_interval = min(stats.min_interval, float(intervals.min()))
            longest = int(intervals.argmax())
            if intervals[longest] > stats.max_gap:
                stats.max_gap = float(intervals[longest])
                stats.max_gap_at = float(times_all[longest])
        stats.count += len(rows)
        stats.last_ts = float(times[-1])
        stats.lengths += np.bincount(batch.lengths[rows], minlength=9)[:9]
        if not stats.varies:
            first = next(iter(stats.payloads)) if stats.payloads else batch.payload(rows[0])
            reference = np.frombuffer(first.ljust(8, b"\0"), dtype=np.uint8)
            stats.varies = bool(
                (batch.lengths[rows] != len(first)).any() or (batch.data[rows] != reference).any()
            )
        if len(stats.payloads) < SAMPLE_PAYLOADS:
            for row in rows[:64].tolist():
                payload = batch.payload(row)
                if payload not in stats.payloads:
                    stats.payloads[payload] = float(ts[row])
                    if len(stats.payloads) >= SAMPLE_PAYLOADS:
                        break


def numbered(batches: Iterable[FrameBatch]) -> Iterator[FrameBatch]:
    """Batches whose capture has no timestamps (bare id#data) get frame numbers instead.

    Done once, before statistics and checks, so evidence times are numbers, never NaN.
    """
    seen = 0
    for batch in batches:
        n = len(batch)
        if n and np.isnan(batch.timestamps).all():
            batch = replace(batch, timestamps=np.arange(seen, seen + n, dtype=np.float64))
        seen += n
        yield batch


def gather(batches: Iterable[FrameBatch]) -> CaptureStats:
    stats = CaptureStats()
    for batch in numbered(batches):
        stats.add(batch)
    return stats
