"""Analyse a capture of any size in one pass: per-id timing, every field, alarms, a time series.

Batch by batch (the FrameBatch chunks of :mod:`bmslink.capture`), in memory that
does not grow with the capture: per-id statistics (:mod:`bmslink.diagnose.stats`),
the conformance rules (:mod:`bmslink.diagnose.check`), the profile's numeric fields
and flags decoded a column at a time (:func:`bmslink.profiles.vector.decode_columns`),
alarm bytes decoded once per distinct pattern by the per-frame decoder, and a time
series that is streamed out (CSV) as its bins complete and kept for a plot only as a
bounded envelope.

Choices made where the issue is silent:

- Which frames carry values: exactly those the per-frame decoder accepts. A frame it
  rejects (shorter than the table allows, a negative value where the table forbids
  one, an unknown code) carries nothing and is counted as a decode error, as the
  inverter role drops it.
- A field's value in the time series is the one its frame last carried: a frame that
  sends the protocol's "invalid" marker makes the value absent from then on, exactly
  as :class:`bmslink.roles.inverter.InverterRole` holds it. Bin ``b`` covers
  ``[b * resolution, (b + 1) * resolution)`` with ``b = floor(t / resolution)``; its
  row holds, per key, the value of the last frame in or before the bin, blank when
  ``b * resolution - t_frame`` exceeds that frame's expiry (10 s, or 2.5 periods for
  slow frames). Bins in which nothing is valid are not written: a day-long hole is a
  jump in the time column, not 86,400 blank rows. The last bin written is the one of
  the capture's last frame.
- Time running backwards (merged captures) is clamped to the latest time seen so far
  for bins, expiry and alarm durations; reported times are the frames' own. Frames
  without any time (a mixed file) are left out of fields, alarms and the series.
- Alarms: a name is active in a frame that reports it. An episode starts at a frame
  reporting it when the previous frame of that id did not, or had expired. Active time
  counts, for each such frame, up to the next frame of its id, at most its expiry; the
  last one up to the capture's end, at most its expiry. A pair byte in which no pair
  reports (SMA's "not supported") is absent, not "no alarm".
- Gaps: an interval longer than ``max(3 x period, 2 s)``, the period being the table's
  (the shortest of a multiplexed id's frames) or else the median of the id's first
  4096 intervals; until that sample is full, candidate intervals (at most 4096 per id)
  are held, so the result does not depend on the chunk size.
- Jitter is the inter-quartile range of the sampled intervals: the gaps, reported on
  their own, do not inflate it the way they would a standard deviation.
- Cell numbers the state keeps as text (``cell_min_id``) are kept as numbers here; 0,
  "unknown", is absent. Text, cell lists and versions are not fields of the summary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bmslink.capture import CaptureReport, FrameBatch
from bmslink.diagnose.check import Checker, Finding
from bmslink.diagnose.detect import Detection, detect
from bmslink.diagnose.stats import SAMPLE_INTERVALS, CaptureStats, numbered
from bmslink.errors import BmslinkError, DecodeError
from bmslink.profiles.base import (
    AlarmBits,
    AlarmPairs,
    Bits,
    Coded,
    Flag,
    FrameSpec,
    Num,
    Profile,
)
from bmslink.profiles.expiry import frame_expiry
from bmslink.profiles.vector import decode_columns, raw_column
from bmslink.scaling import decimal_places
from bmslink.state import ALARM_NAMES

DEFAULT_RESOLUTION_S = 1.0
GAP_PERIODS = 3.0
GAP_FLOOR_S = 2.0
KEEP_GAPS = 50
ENVELOPE_BINS = 4096
PIECE_BINS = 65_536  # time-series bins computed at once: bounds the memory per step
ALARM_TARGETS = ("alarms", "warnings")
_ALARM_BIT = {name: i for i, name in enumerate(ALARM_NAMES)}
_PATTERN_CACHE = 65_536


class AnalyzeError(BmslinkError):
    """The capture cannot be analysed as asked (no profile recognised)."""


# -- decoding one frame kind a column at a time ---------------------------------------------------


@dataclass
class _Plan:
    """How to pull one battery frame's values out of a batch."""

    spec: FrameSpec
    keys: list[str]
    decimals: dict[str, int]
    units: dict[str, str]
    expiry_s: float
    targets: list[str]  # alarm targets ("alarms", "warnings") this frame carries
    alarm_bytes: list[int]
    wire_keys: tuple[int, ...] = ()
    patterns: dict[tuple[int, int], tuple[float, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: FrameSpec) -> _Plan:
        keys: list[str] = []
        decimals: dict[str, int] = {}
        units: dict[str, str] = {}

        def add(key: str, places: int, unit: str = "") -> None:
            if key not in decimals:
                keys.append(key)
                decimals[key] = places
                units[key] = unit
            else:
                decimals[key] = max(decimals[key], places)

        targets: list[str] = []
        alarm_bytes: list[int] = []
        if not spec.accept_any_payload:
            for f in spec.fields:
                if isinstance(f, Num):
                    add(f.key, 0 if f.as_text else _places(f), f.unit)
                elif isinstance(f, Flag):
                    add(f.key, 0)
                    if f.into:
                        add(f.into, 0)
                elif isinstance(f, Coded | Bits):
                    add(f.key, 0)
                elif isinstance(f, AlarmBits | AlarmPairs):
                    if f.target not in targets:
                        targets.append(f.target)
                    alarm_bytes.append(f.byte)
        expiry = frame_expiry(spec)
        wire = tuple(i | (int(spec.extended) << 32) for i in spec.wire_ids)
        return cls(spec, keys, decimals, units, expiry, targets, sorted(alarm_bytes), wire)

    def rows(self, keys: np.ndarray, batch: FrameBatch) -> np.ndarray:
        """Rows of the batch that are this frame (by id, and by the index byte if muxed)."""
        mask = keys == self.wire_keys[0]
        for key in self.wire_keys[1:]:
            mask |= keys == key
        mux = self.spec.mux
        if mux is not None:
            mask &= (batch.data[:, mux[0]] == mux[1]) & (batch.lengths > mux[0])
        return np.flatnonzero(mask)

    def decode(self, data: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows the per-frame decoder accepts, and their values (rows x keys, NaN = absent)."""
        spec = self.spec
        valid = lengths >= spec.accepted_min
        values = decode_columns(spec, data, lengths) if self.keys else {}
        for f in spec.fields:
            if isinstance(f, Num):
                fits = lengths >= f.end
                if f.as_text:
                    raw = raw_column(spec, f, data).astype(np.float64)
                    raw[(raw == 0) | ~fits] = np.nan
                    values[f.key] = raw
                elif f.non_negative and f.signed:
                    raw_int = raw_column(spec, f, data)
                    bad = fits & (raw_int < 0)
                    if f.invalid is not None:
                        bad &= raw_int != f.invalid_raw
                    valid &= ~bad
            elif isinstance(f, Flag) and f.into:
                bit = ((data[:, f.byte] >> f.bit) & 1).astype(np.float64)
                bit[lengths <= f.byte] = np.nan
                values[f.key] = bit
            elif isinstance(f, Coded) and f.otherwise is None:
                lookup = np.full(256, np.nan)
                for raw_value, value in f.values.items():
                    lookup[raw_value] = float(value)
                coded = lookup[data[:, f.byte]]
                present = lengths > f.byte
                valid &= ~(present & np.isnan(coded))
                coded[~present] = np.nan
                values[f.key] = coded
            elif isinstance(f, Bits):
                bits = ((data[:, f.byte] >> f.lsb) & ((1 << f.width) - 1)).astype(np.float64)
                bits[lengths <= f.byte] = np.nan
                values[f.key] = bits
        out = np.empty((len(lengths), len(self.keys)), dtype=np.float64)
        for column, key in enumerate(self.keys):
            column_values = values[key]
            places = self.decimals[key]
            if places:
                # the per-frame decoder divides by 10**places: the same double, not 48.660000001
                column_values = np.round(column_values, places)
            out[:, column] = column_values
        return valid, out

    def alarm_masks(self, profile: Profile, batch: FrameBatch, rows: np.ndarray) -> np.ndarray:
        """Per row and target, the active names as a bit mask (float; NaN = not reported).

        Each distinct pattern of the alarm bytes (and of which of them the frame is long
        enough to carry) goes through the per-frame decoder once; rows are then mapped
        onto the result.
        """
        data = batch.data[rows]
        code = np.zeros(len(rows), dtype=np.uint64)
        for shift, byte in enumerate(self.alarm_bytes):  # at most 8 bytes: 64 bits
            code |= data[:, byte].astype(np.uint64) << np.uint64(8 * shift)
        carried = np.searchsorted(self.alarm_bytes, batch.lengths[rows])  # bytes present
        out = np.empty((len(rows), len(self.targets)), dtype=np.float64)
        for present in np.unique(carried).tolist():
            part = np.flatnonzero(carried == present)
            codes = code[part]
            unique = np.unique(codes)
            if len(unique) <= 64:  # few patterns (the usual case): no sort of the rows
                inverse = np.searchsorted(unique, codes)
                first = np.array([int(np.argmax(codes == u)) for u in unique.tolist()])
            else:
                unique, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
            table = np.empty((len(unique), len(self.targets)), dtype=np.float64)
            for n, (pattern, row) in enumerate(zip(unique.tolist(), first.tolist(), strict=True)):
                masks = self.patterns.get((present, pattern))
                if masks is None:
                    masks = self._decode_pattern(profile, batch, int(rows[part[row]]))
                    if len(self.patterns) >= _PATTERN_CACHE:
                        self.patterns.clear()
                    self.patterns[(present, pattern)] = masks
                table[n] = masks
            out[part] = table[np.asarray(inverse).reshape(-1)]
        return out

    def _decode_pattern(self, profile: Profile, batch: FrameBatch, row: int) -> tuple[float, ...]:
        try:
            fields = profile.decode(
                int(batch.ids[row]), batch.payload(row), bool(batch.extended[row])
            ).fields
        except DecodeError:
            return tuple(np.nan for _ in self.targets)
        out: list[float] = []
        for target in self.targets:
            names = fields.get(target)
            if names is None:
                out.append(np.nan)
            else:
                out.append(float(sum(1 << _ALARM_BIT[n] for n in set(names))))
        return tuple(out)


def _places(f: Num) -> int:
    return max(f.decimals, decimal_places(f.offset)) if (f.scale != 1 or f.offset) else 0


# -- summaries ------------------------------------------------------------------------------------


@dataclass
class FieldSummary:
    """Extremes of one field over the capture, with the time of each."""

    key: str
    frame: str
    unit: str
    decimals: int
    frames: int = 0
    min: float = float("nan")
    min_at: float = float("nan")
    max: float = float("nan")
    max_at: float = float("nan")
    last: float = float("nan")
    last_at: float = float("nan")

    def add(self, values: np.ndarray, times: np.ndarray) -> None:
        present = np.flatnonzero(~np.isnan(values))
        if not len(present):
            return
        values, times = values[present], times[present]
        self.frames += len(values)
        low, high = int(values.argmin()), int(values.argmax())
        if not values[low] >= self.min:  # NaN-safe: the first chunk always sets it
            self.min, self.min_at = float(values[low]), float(times[low])
        if not values[high] <= self.max:
            self.max, self.max_at = float(values[high]), float(times[high])
        self.last, self.last_at = float(values[-1]), float(times[-1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "unit": self.unit,
            "frames": self.frames,
            "min": _num(self.min),
            "min_at": _num(self.min_at),
            "max": _num(self.max),
            "max_at": _num(self.max_at),
            "last": _num(self.last),
            "last_at": _num(self.last_at),
        }


@dataclass
class AlarmSummary:
    """One alarm or warning name over the capture."""

    target: str
    name: str
    episodes: int = 0
    first: float = float("nan")
    last: float = float("nan")
    active_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "first": _num(self.first),
            "last": _num(self.last),
            "active_s": round(self.active_s, 6),
        }


@dataclass
class _AlarmTrack:
    """What carries over between batches for one frame's alarms."""

    last_time: float = float("nan")  # clamped time of the previous frame of this id
    last_masks: np.ndarray | None = None  # its masks per target (NaN = not reported)


@dataclass
class GapSummary:
    """Silences of one id: the first few with their start, their count, the longest."""

    count: int = 0
    longest_s: float = 0.0
    longest_at: float = float("nan")
    threshold_s: float | None = None
    first: list[tuple[float, float]] = field(default_factory=list)  # (start, length)
    pending: list[tuple[float, float]] = field(default_factory=list)  # threshold not known yet
    table_period_s: float | None = None  # the profile's period for this id, if it has one
    last_seen: float = float("nan")  # time of the id's last frame so far

    def add(self, starts: np.ndarray, lengths: np.ndarray) -> None:
        if not len(lengths):
            return
        self.count += len(lengths)
        room = KEEP_GAPS - len(self.first)
        if room > 0:
            self.first.extend(zip(starts[:room].tolist(), lengths[:room].tolist(), strict=True))
        longest = int(lengths.argmax())
        if lengths[longest] > self.longest_s:
            self.longest_s, self.longest_at = float(lengths[longest]), float(starts[longest])

    def settle(self, threshold: float) -> None:
        """The threshold is known: the held candidates become gaps or are dropped."""
        self.threshold_s = threshold
        if self.pending:
            starts = np.array([s for s, _ in self.pending])
            lengths = np.array([n for _, n in self.pending])
            keep = lengths > threshold
            self.add(starts[keep], lengths[keep])
            self.pending = []

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "threshold_s": _num(self.threshold_s),
            "longest_s": round(self.longest_s, 6),
            "longest_at": _num(self.longest_at),
            "first": [{"start": round(s, 6), "length_s": round(n, 6)} for s, n in self.first],
        }


# -- the time series ------------------------------------------------------------------------------


@dataclass
class Envelope:
    """At most ``cap`` bins of min/max/last per key; full, it doubles its width and merges pairs."""

    keys: list[str]
    resolution_s: float
    cap: int = ENVELOPE_BINS
    origin: int | None = None  # the first series bin, in series bins
    factor: int = 1  # series bins per envelope bin
    low: np.ndarray = field(init=False)
    high: np.ndarray = field(init=False)
    last: np.ndarray = field(init=False)
    filled: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.cap = max(2, self.cap + self.cap % 2)  # pairs merge: an even count
        shape = (self.cap, len(self.keys))
        self.low = np.full(shape, np.nan)
        self.high = np.full(shape, np.nan)
        self.last = np.full(shape, np.nan)
        self.filled = np.zeros(self.cap, dtype=bool)

    @property
    def width_s(self) -> float:
        return self.factor * self.resolution_s

    @property
    def bins(self) -> int:
        return int(np.flatnonzero(self.filled)[-1]) + 1 if self.filled.any() else 0

    def add(self, bins: np.ndarray, rows: np.ndarray) -> None:
        if not len(bins):
            return
        if self.origin is None:
            self.origin = int(bins[0])
        while (int(bins[-1]) - self.origin) // self.factor >= self.cap:
            self._halve()
        slots = (bins - self.origin) // self.factor
        starts = np.flatnonzero(np.concatenate([[True], np.diff(slots) != 0]))
        ends = np.concatenate([starts[1:], [len(slots)]]) - 1
        at = slots[starts]
        with np.errstate(invalid="ignore"):
            low = np.fmin.reduceat(rows, starts, axis=0)
            high = np.fmax.reduceat(rows, starts, axis=0)
        self.low[at] = np.fmin(self.low[at], low)
        self.high[at] = np.fmax(self.high[at], high)
        self.last[at] = rows[ends]
        self.filled[at] = True

    def _halve(self) -> None:
        for name in ("low", "high", "last"):
            array = getattr(self, name)
            even, odd = array[0::2], array[1::2]
            if name == "low":
                merged = np.fmin(even, odd)
            elif name == "high":
                merged = np.fmax(even, odd)
            else:
                merged = np.where(self.filled[1::2, None], odd, even)
            fresh = np.full_like(array, np.nan)
            fresh[: len(merged)] = merged
            setattr(self, name, fresh)
        filled = self.filled[0::2] | self.filled[1::2]
        self.filled = np.zeros(self.cap, dtype=bool)
        self.filled[: len(filled)] = filled
        self.factor *= 2

    def times(self) -> np.ndarray:
        """Start time of each envelope bin in use."""
        origin = self.origin or 0
        return (origin + np.arange(self.bins) * self.factor) * self.resolution_s

    def column(self, key: str, which: str = "last") -> np.ndarray:
        array = {"low": self.low, "high": self.high, "last": self.last}[which]
        values: np.ndarray = array[: self.bins, self.keys.index(key)]
        return values


#: Called with each piece of completed bins: their numbers and a rows x keys matrix.
RowSink = Callable[[np.ndarray, np.ndarray], None]


class _Series:
    """Bins the decoded frames into rows as they complete: carry-forward with expiry."""

    def __init__(self, plans: list[_Plan], keys: list[str], resolution_s: float) -> None:
        self.plans = plans  # those with a key or an alarm target (Analyzer keeps no other)
        self.keys = keys
        self.resolution_s = resolution_s
        position = {k: i for i, k in enumerate(keys)}
        # per plan: where each of its columns (keys, then alarm targets) goes in a row
        self.targets = {id(p): [position[k] for k in (*p.keys, *p.targets)] for p in self.plans}
        columns = [t for p in self.plans for t in self.targets[id(p)]]
        #: a key two frames carry (none in the bundled profiles): the latest frame wins
        self.latest_wins = len(columns) != len(set(columns))
        self.carry_t = {id(p): -np.inf for p in self.plans}
        self.carry_v = {id(p): np.full(len(p.keys) + len(p.targets), np.nan) for p in self.plans}
        self.open_bin: int | None = None  # every bin before it has been emitted
        self.reach = max(
            (int(np.ceil(p.expiry_s / resolution_s)) + 1 for p in self.plans), default=1
        )
        self.rows = 0

    def bin_of(self, times: np.ndarray) -> np.ndarray:
        return np.floor(times / self.resolution_s).astype(np.int64)

    def add(
        self,
        chunk: dict[int, tuple[np.ndarray, np.ndarray]],
        clock: np.ndarray,
        sink: RowSink,
        final: bool = False,
    ) -> None:
        """Emit the bins this batch completes.

        ``chunk``: per plan, (clamped times, values then alarm masks) of its valid rows;
        ``clock``: the batch's clamped times (non-decreasing), the last one the latest.
        """
        if not self.plans or not len(clock) or np.isnan(clock[-1]):
            return
        end_bin = int(np.floor(clock[-1] / self.resolution_s)) + (1 if final else 0)
        carried = sorted(t for t in self.carry_t.values() if np.isfinite(t))
        # every bin a value can be valid in is within reach of a frame's bin: those of
        # this batch's frames (sorted, as the clock never runs back) and of the carries
        frame_bins = self.bin_of(np.concatenate([carried, clock]))
        if self.open_bin is None:
            self.open_bin = int(frame_bins[0])
        begin = self.open_bin
        if end_bin > begin:
            distinct = frame_bins[np.concatenate([[True], np.diff(frame_bins) != 0])]
            seg_lo, seg_hi = _union_of_reaches(distinct, self.reach)
            seg_lo = np.maximum(seg_lo, begin)
            seg_hi = np.minimum(seg_hi, end_bin)
            keep = seg_hi > seg_lo
            if keep.any():
                frames = {id(p): self._with_carry(p, chunk) for p in self.plans}
                for bins in _pieces(seg_lo[keep], seg_hi[keep], PIECE_BINS):
                    self._emit(bins, frames, sink)
        self.open_bin = max(begin, end_bin)
        for plan in self.plans:
            times, values = chunk.get(id(plan), (np.empty(0), np.empty((0, 0))))
            if len(times):
                self.carry_t[id(plan)] = float(times[-1])
                self.carry_v[id(plan)] = values[-1].copy()

    def _with_carry(
        self, plan: _Plan, chunk: dict[int, tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A plan's frames with the one before the batch first: times, bins, values."""
        carry_v = self.carry_v[id(plan)][None, :]
        got = chunk.get(id(plan))
        if got is None:
            times, values = np.array([self.carry_t[id(plan)]]), carry_v
        else:
            times = np.concatenate([[self.carry_t[id(plan)]], got[0]])
            values = np.vstack([carry_v, got[1]])
        with np.errstate(invalid="ignore"):
            bins = np.where(np.isfinite(times), np.floor(times / self.resolution_s), -(2.0**62))
        return times, bins, values

    def _emit(
        self,
        bins: np.ndarray,
        frames: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
        sink: RowSink,
    ) -> None:
        rows = np.full((len(bins), len(self.keys)), np.nan)
        start_times = bins * self.resolution_s
        seen_by_key = np.full(rows.shape, -np.inf) if self.latest_wins else None
        for plan in self.plans:
            times, frame_bins, values = frames[id(plan)]
            index = np.searchsorted(frame_bins, bins, side="right") - 1  # the carry is at 0
            seen = times[index]
            fresh = start_times - seen <= plan.expiry_s
            picked = values[index]
            picked[~fresh] = np.nan
            columns = self.targets[id(plan)]
            if seen_by_key is None:
                rows[:, columns] = picked
                continue
            for column, target in enumerate(columns):
                newer = fresh & (seen > seen_by_key[:, target])
                rows[newer, target] = picked[newer, column]
                seen_by_key[newer, target] = seen[newer]
        used = ~np.isnan(rows).all(axis=1)
        if used.any():
            self.rows += int(used.sum())
            sink(bins[used], rows[used])


def _union_of_reaches(frame_bins: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge the ranges [b, b + reach) of sorted bins into disjoint segments."""
    ends = frame_bins + reach
    running = np.maximum.accumulate(ends)
    new = np.concatenate([[True], frame_bins[1:] >= running[:-1]])
    first = np.flatnonzero(new)
    lo = frame_bins[first]
    hi = np.maximum.reduceat(ends, first)
    return lo, hi


def _pieces(lo: np.ndarray, hi: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """The bins of the segments [lo, hi), in order, at most ``size`` at a time."""
    lengths = hi - lo
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    total = int(offsets[-1])
    for start in range(0, total, size):
        position = np.arange(start, min(start + size, total))
        segment = np.searchsorted(offsets, position, side="right") - 1
        yield lo[segment] + (position - offsets[segment])


# -- the analyser ---------------------------------------------------------------------------------


@dataclass
class Analysis:
    """Everything the summary reports; ``to_dict`` is the ``--json`` document."""

    profile: Profile
    chosen_by: str  # "option" or "first_chunk"
    first_detection: Detection | None
    detection: Detection
    report: CaptureReport
    stats: CaptureStats
    gaps: dict[tuple[int, bool], GapSummary]
    fields: dict[str, FieldSummary]
    alarms: dict[str, dict[str, AlarmSummary]]
    decode_errors: dict[str, int]
    findings: list[Finding]
    cells: int | None
    series_keys: list[str]
    series_rows: int
    resolution_s: float
    envelope: Envelope
    untimed_frames: int = 0
    start: float = float("nan")
    end: float = float("nan")
    outputs: dict[str, str | None] = field(default_factory=dict)

    @property
    def agrees(self) -> bool | None:
        """Whether the whole capture's detection names the profile analysed (aliases count)."""
        best = self.detection.best
        if best is None:
            return None
        names = {best.profile, *best.aliases}
        return self.profile.name in names or self.profile.alias_of in names

    def id_rows(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key, s in sorted(self.stats.ids.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            spec = self.profile.spec(s.can_id, s.extended)
            gaps = self.gaps[key]  # every id counted has been through _gaps
            out.append(
                {
                    "id": s.label,
                    "extended": s.extended,
                    "frame": spec.name if spec else None,
                    "sender": spec.sender if spec else None,
                    "count": s.count,
                    "period_s": _num(s.period),
                    "table_period_s": gaps.table_period_s,
                    "jitter_s": _num(_iqr(s.intervals)),
                    "min_interval_s": _num(s.min_interval if s.intervals else None),
                    "lengths": {str(n): int(c) for n, c in enumerate(s.lengths.tolist()) if c},
                    "first": _num(s.first_ts),
                    "last": _num(s.last_ts),
                    "gaps": gaps.to_dict(),
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        report = self.report
        first = self.first_detection
        note = None
        if self.agrees is False and self.detection.best is not None:
            note = (
                f"the whole capture looks like {self.detection.best.profile}, "
                f"not {self.profile.name}"
            )
        errors = sum(f.severity == "error" for f in self.findings)
        return {
            "source": report.source,
            "frames": report.frames,
            "lines": report.lines,
            "bytes_read": report.bytes_read,
            "skipped_lines": report.bad_lines,
            "skipped_examples": list(report.errors),
            "error_frames": report.error_frames,
            "untimed_frames": self.untimed_frames,
            "start": _num(self.start),
            "end": _num(self.end),
            "duration_s": _num(self.end - self.start),
            "profile": {
                "name": self.profile.name,
                "chosen_by": self.chosen_by,
                "first_chunk": first.to_dict() if first is not None else None,
                "whole_capture": self.detection.to_dict(),
                "agrees": self.agrees,
                "note": note,
            },
            "ids": self.id_rows(),
            "fields": {k: f.to_dict() for k, f in self.fields.items()},
            "alarms": {
                target: {name: a.to_dict() for name, a in names.items()}
                for target, names in self.alarms.items()
            },
            "decode_errors": dict(self.decode_errors),
            "time_series": {
                "resolution_s": self.resolution_s,
                "keys": self.series_keys,
                "rows": self.series_rows,
                "envelope_bins": self.envelope.bins,
                "envelope_width_s": self.envelope.width_s,
                "csv": self.outputs.get("csv"),
                "plot": self.outputs.get("plot"),
            },
            "conformance": {
                "cells": self.cells,
                "errors": errors,
                "warnings": sum(f.severity == "warning" for f in self.findings),
                "findings": [f.to_dict() for f in self.findings],
            },
        }


class Analyzer:
    """Feed batches (through :func:`numbered`), then :meth:`finish` for the :class:`Analysis`."""

    def __init__(
        self,
        profile: Profile,
        *,
        resolution_s: float = DEFAULT_RESOLUTION_S,
        inverter: Any = None,
        cells: int | None = None,
        rows: RowSink | None = None,
        envelope_bins: int = ENVELOPE_BINS,
    ) -> None:
        if not resolution_s > 0:
            raise ValueError(f"resolution must be above 0 s, not {resolution_s}")
        self.profile = profile
        self.resolution_s = resolution_s
        self.stats = CaptureStats()
        self.checker = Checker(profile, inverter, cells)
        self.cells = cells
        self.plans = [_Plan.of(s) for s in profile.frames_from("battery")]
        self.plans = [p for p in self.plans if p.keys or p.targets]
        self.fields: dict[str, FieldSummary] = {}
        for plan in self.plans:
            for key in plan.keys:
                if key not in self.fields:
                    self.fields[key] = FieldSummary(
                        key, plan.spec.label, plan.units[key], plan.decimals[key]
                    )
        targets = [t for t in ALARM_TARGETS if any(t in p.targets for p in self.plans)]
        #: the time-series columns: every field, then the alarm targets (as name masks)
        self.keys = [*self.fields, *targets]
        self._alarm_columns = [i for i, k in enumerate(self.keys) if k in ALARM_TARGETS]
        self.decimals = {k: f.decimals for k, f in self.fields.items()}
        self.alarms: dict[str, dict[str, AlarmSummary]] = {t: {} for t in targets}
        self._alarm_tracks = {id(p): _AlarmTrack() for p in self.plans if p.targets}
        self.decode_errors: dict[str, int] = {}
        self.gaps: dict[tuple[int, bool], GapSummary] = {}
        self.series = _Series(self.plans, self.keys, resolution_s)
        self.envelope = Envelope(self.keys, resolution_s, cap=envelope_bins)
        self._sink = rows
        self._clock = float("nan")  # the latest time seen: times never run backwards here
        self.start = float("nan")
        self.end = float("nan")
        self.untimed = 0

    # -- per batch --------------------------------------------------------------------------------

    def add(self, batch: FrameBatch) -> None:
        n = len(batch)
        if n == 0:
            return
        self.stats.add(batch)
        self.checker.add(batch)
        times = batch.timestamps
        timed = ~np.isnan(times)
        self.untimed += int(n - timed.sum())
        if timed.any():
            first_t = float(times[timed][0])
            if np.isnan(self.start):
                self.start = first_t
            self.end = float(times[timed][-1])
        clamped = np.fmax.accumulate(np.concatenate([[self._clock], times]))[1:]
        if not np.isnan(clamped[-1]):
            self._clock = float(clamped[-1])
        keys = batch.ids.astype(np.int64) | (batch.extended.astype(np.int64) << 32)
        self._gaps(batch, keys)
        chunk: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        by_key: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        for plan in self.plans:
            rows = plan.rows(keys, batch)
            if not len(rows):
                continue
            rows = rows[~np.isnan(clamped[rows])]
            valid, values = plan.decode(batch.data[rows], batch.lengths[rows])
            if not valid.all():
                label = plan.spec.label
                self.decode_errors[label] = self.decode_errors.get(label, 0) + int((~valid).sum())
                rows, values = rows[valid], values[valid]
            if not len(rows):
                continue
            raw_times = times[rows]
            for column, key in enumerate(plan.keys):
                by_key.setdefault(key, []).append((rows, values[:, column], raw_times))
            if plan.targets:
                masks = plan.alarm_masks(self.profile, batch, rows)
                self._alarms(plan, clamped[rows], raw_times, masks)
                values = np.hstack([values, masks])
            chunk[id(plan)] = (clamped[rows], values)
        for key, parts in by_key.items():
            _, key_values, key_times = parts[0]
            if len(parts) > 1:  # a key two frames carry: their rows back in capture order
                order = np.argsort(np.concatenate([p[0] for p in parts]), kind="stable")
                key_values = np.concatenate([p[1] for p in parts])[order]
                key_times = np.concatenate([p[2] for p in parts])[order]
            self.fields[key].add(key_values, key_times)
        self.series.add(chunk, clamped[~np.isnan(clamped)], self._rows)

    def _rows(self, bins: np.ndarray, rows: np.ndarray) -> None:
        plot_rows = rows
        alarm_columns = self._alarm_columns
        if alarm_columns:  # the envelope keeps "any name active", for shading
            plot_rows = rows.copy()
            active = rows[:, alarm_columns]
            with np.errstate(invalid="ignore"):
                plot_rows[:, alarm_columns] = np.where(np.isnan(active), np.nan, active > 0)
        self.envelope.add(bins, plot_rows)
        if self._sink is not None:
            self._sink(bins, rows)

    def _gaps(self, batch: FrameBatch, keys: np.ndarray) -> None:
        """Intervals above max(3 periods, 2 s), per id; held while the period is unknown.

        ``keys``: each row's id with the extended flag in bit 32, as :meth:`add` has them.
        """
        distinct = np.unique(keys)
        times = batch.timestamps
        if len(distinct) <= 64:  # the usual bus: a mask per id beats sorting the batch
            groups: Iterable[tuple[int, np.ndarray]] = (
                (int(k), np.flatnonzero(keys == k)) for k in distinct
            )
        else:
            order = np.argsort(keys, kind="stable")
            bounds = np.flatnonzero(np.diff(keys[order])) + 1
            groups = ((int(keys[part[0]]), part) for part in np.split(order, bounds) if len(part))
        for key, rows in groups:
            ident = (key & 0xFFFFFFFF, bool(key >> 32))
            summary = self.gaps.get(ident)
            if summary is None:
                period = _profile_period(self.profile, *ident)
                summary = self.gaps[ident] = GapSummary(table_period_s=period)
            t = np.concatenate([[summary.last_seen], times[rows]])
            summary.last_seen = float(t[-1])
            with np.errstate(invalid="ignore"):
                intervals = np.diff(t)
                candidates = np.flatnonzero(intervals > GAP_FLOOR_S)
            gap_starts, gap_lengths = t[candidates], intervals[candidates]
            if summary.threshold_s is None:
                period = summary.table_period_s
                stats = self.stats.ids[ident]
                if period is None and len(stats.intervals) >= SAMPLE_INTERVALS:
                    period = float(np.median(stats.intervals))
                if period is None:
                    summary.pending.extend(
                        zip(gap_starts.tolist(), gap_lengths.tolist(), strict=True)
                    )
                    continue
                summary.settle(max(GAP_PERIODS * period, GAP_FLOOR_S))
                # candidates of this batch were not held: settle saw only earlier ones
            keep = gap_lengths > summary.threshold_s
            summary.add(gap_starts[keep], gap_lengths[keep])

    def _alarms(self, plan: _Plan, clamped: np.ndarray, raw: np.ndarray, masks: np.ndarray) -> None:
        track = self._alarm_tracks[id(plan)]
        previous_masks = track.last_masks
        if previous_masks is None:
            previous_masks = np.full(len(plan.targets), np.nan)
        times = np.concatenate([[track.last_time], clamped])
        with np.errstate(invalid="ignore"):
            intervals = np.diff(times)  # NaN before the first frame ever
        for column, target in enumerate(plan.targets):
            all_masks = np.concatenate([[previous_masks[column]], masks[:, column]])
            present = all_masks[~np.isnan(all_masks)].astype(np.int64)
            union = int(np.bitwise_or.reduce(present)) if len(present) else 0
            names = self.alarms[target]
            for name in ALARM_NAMES:
                bit = 1 << _ALARM_BIT[name]
                if not union & bit:
                    continue
                with np.errstate(invalid="ignore"):
                    active = (np.nan_to_num(all_masks, nan=0).astype(np.int64) & bit) != 0
                # active[0] is the previous batch's last frame
                held = active[:-1] & (intervals <= plan.expiry_s)
                rises = active[1:] & ~held
                counted = np.minimum(intervals, plan.expiry_s)
                seconds = float(np.nansum(np.where(active[:-1], counted, 0.0)))
                summary = names.get(name)
                if summary is None:
                    summary = names[name] = AlarmSummary(target, name)
                summary.episodes += int(rises.sum())
                summary.active_s += seconds
                hits = np.flatnonzero(active[1:])
                if len(hits):
                    if np.isnan(summary.first):
                        summary.first = float(raw[hits[0]])
                    summary.last = float(raw[hits[-1]])
        track.last_time = float(clamped[-1])
        track.last_masks = masks[-1].copy()

    # -- after the last batch ---------------------------------------------------------------------

    def finish(self, report: CaptureReport | None = None) -> Analysis:
        report = report if report is not None else CaptureReport("")
        self.series.add({}, np.array([self._clock]), self._rows, final=True)
        for ident, summary in self.gaps.items():
            if summary.threshold_s is None:
                period = self.stats.ids[ident].period
                summary.settle(max(GAP_PERIODS * (period or 0.0), GAP_FLOOR_S))
        for plan in self.plans:  # the last frame reporting an alarm: up to the end, capped
            track = self._alarm_tracks.get(id(plan))
            if track is None or track.last_masks is None:
                continue
            tail = min(max(self._clock - track.last_time, 0.0), plan.expiry_s)
            for column, target in enumerate(plan.targets):
                mask = track.last_masks[column]
                if np.isnan(mask):
                    continue
                for name, alarm in self.alarms[target].items():
                    if int(mask) >> _ALARM_BIT[name] & 1:
                        alarm.active_s += tail
        if self.cells is None:
            self.checker.cells = self.checker.assumed_cells()
        findings = self.checker.findings(self.stats, report)
        return Analysis(
            profile=self.profile,
            chosen_by="option",
            first_detection=None,
            detection=detect(self.stats),
            report=report,
            stats=self.stats,
            gaps=self.gaps,
            fields=self.fields,
            alarms={t: dict(sorted(n.items())) for t, n in self.alarms.items()},
            decode_errors=self.decode_errors,
            findings=findings,
            cells=self.checker.cells,
            series_keys=self.keys,
            series_rows=self.series.rows,
            resolution_s=self.resolution_s,
            envelope=self.envelope,
            untimed_frames=self.untimed,
            start=self.start,
            end=self.end,
        )


def analyze(
    batches: Iterable[FrameBatch],
    profile: Profile | None = None,
    *,
    report: CaptureReport | None = None,
    resolution_s: float = DEFAULT_RESOLUTION_S,
    inverter: Any = None,
    cells: int | None = None,
    rows: RowSink | None = None,
    envelope_bins: int = ENVELOPE_BINS,
    on_start: Callable[[Analyzer], None] | None = None,
) -> Analysis:
    """One pass over ``batches``; ``profile=None`` detects it from the first batch.

    Raises AnalyzeError when no profile is named and the first batch matches none.
    ``on_start`` gets the analyser before any row is produced: its ``keys`` and
    ``decimals`` are the time series' columns (to write a header).
    """
    stream = numbered(batches)
    first_detection: Detection | None = None
    first = next(stream, None)
    if profile is None:
        if first is None:
            raise AnalyzeError("no frames to detect a profile from; name one with --profile")
        head = CaptureStats()
        head.add(first)
        first_detection = detect(head)
        if first_detection.best is None:
            raise AnalyzeError(
                f"no known profile matches the first {len(first)} frames "
                f"(ids {' '.join(first_detection.ids[:8])}); name one with --profile"
            )
        from bmslink.profiles import get_profile

        profile = get_profile(first_detection.best.profile)
    analyzer = Analyzer(
        profile,
        resolution_s=resolution_s,
        inverter=inverter,
        cells=cells,
        rows=rows,
        envelope_bins=envelope_bins,
    )
    if on_start is not None:
        on_start(analyzer)
    if first is not None:
        analyzer.add(first)
    for batch in stream:
        analyzer.add(batch)
    result = analyzer.finish(report)
    if first_detection is not None:
        result = replace(result, chosen_by="first_chunk", first_detection=first_detection)
    return result


def alarm_names(mask: float) -> list[str]:
    """The names in an alarm column's mask."""
    bits = int(mask)
    return [name for name, bit in _ALARM_BIT.items() if bits >> bit & 1]


# -- small helpers --------------------------------------------------------------------------------


def _num(value: float | None) -> float | None:
    """JSON-safe: NaN and infinities are absent."""
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), 6)


def _iqr(intervals: list[float]) -> float | None:
    if len(intervals) < 2:
        return None
    q1, q3 = np.percentile(intervals, [25, 75])
    return float(q3 - q1)


def _profile_period(profile: Profile, can_id: int, extended: bool) -> float | None:
    periods = [
        s.period_s for s in profile.specs_with_id(can_id, extended) if s.period_s is not None
    ]
    return min(periods) if periods else None


__all__ = [
    "DEFAULT_RESOLUTION_S",
    "Analysis",
    "AnalyzeError",
    "Analyzer",
    "Envelope",
    "FieldSummary",
    "alarm_names",
    "analyze",
]
