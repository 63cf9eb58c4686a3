"""The sniff engine: what a live bus says, per CAN id and as a battery, in bounded memory.

It does no I/O: the caller feeds it frames, error frames and adapter status as
they arrive, and renders :meth:`SniffEngine.rows`, :meth:`SniffEngine.state`
and the :class:`SniffEvent` list however it likes (views/sniff.py).

Choices made where the issue is silent:

- Period is the mean of the last ``RECENT_INTERVALS`` intervals of an id, jitter
  their standard deviation: recent, so a battery that changes pace shows it.
- The BatteryState follows :class:`~bmslink.roles.inverter.InverterRole`: only
  battery frames, each frame's values expiring by the shared rule of
  :mod:`bmslink.profiles.expiry` (10 s, or 2.5 periods), an expired value absent,
  not stale. No fresh battery frame at all gives None.
- Profile ``auto``: detection runs on the statistics gathered so far, every
  ``DETECT_EVERY_FRAMES`` frames or ``DETECT_EVERY_S`` seconds, once there are
  ``DETECT_MIN_FRAMES`` frames (or ``DETECT_FEWEST_FRAMES`` over
  ``DETECT_MIN_SPAN_S``, for slow buses); a profile is taken at confidence
  ``CONFIDENT`` or more. After that a window of
  fresh statistics is checked every ``RECHECK_S``, and the profile changes only
  when the window confidently names another one (no flapping on one odd frame).
  Frames seen before detection are decoded from each id's last payload then.
- Bounded memory: at most ``MAX_IDS`` ids get a row (more ids are counted as
  ``other_frames``), a fixed number of intervals per id, and detection
  statistics that are per id and capped (diagnose.stats), reset per window.
- Error frames become an event for the first one, then at most one per
  ``ERROR_EVENT_S`` summing what came since: a wrong bit rate floods them.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bmslink.capture import FrameBatch
from bmslink.clock import Clock
from bmslink.diagnose.detect import Detection, detect
from bmslink.diagnose.stats import CaptureStats
from bmslink.errors import DecodeError
from bmslink.profiles import PROFILES
from bmslink.profiles.base import FrameSpec, Profile, format_id
from bmslink.profiles.expiry import FRAME_EXPIRY_S, frame_expiry, frame_key, fresh_state
from bmslink.state import BatteryState

MAX_IDS = 512
RECENT_INTERVALS = 32
CONFIDENT = 0.6
DETECT_MIN_FRAMES = 16
DETECT_MIN_SPAN_S = 2.0
DETECT_FEWEST_FRAMES = 4
DETECT_EVERY_FRAMES = 64
DETECT_EVERY_S = 1.0
RECHECK_S = 30.0
STATS_BATCH = 256
ERROR_EVENT_S = 1.0

EventKind = Literal["profile_detected", "profile_changed", "error_frames", "status", "bus_state"]


@dataclass(frozen=True)
class SniffEvent:
    """Something worth a line of its own in the log."""

    t: float  # clock time
    kind: EventKind
    text: str


@dataclass
class IdRow:
    """One CAN id as seen so far."""

    can_id: int
    extended: bool
    count: int = 0
    first_seen: float = math.nan
    last_seen: float = math.nan
    data: bytes = b""
    intervals: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_INTERVALS))
    spec: FrameSpec | None = None
    fields: dict[str, Any] | None = None
    error: str | None = None  # why the last payload did not decode

    @property
    def label(self) -> str:
        return format_id(self.can_id, self.extended)

    @property
    def name(self) -> str | None:
        return self.spec.name if self.spec is not None else None

    @property
    def period(self) -> float | None:
        """Mean of the recent intervals; None below two frames."""
        if not self.intervals:
            return None
        return sum(self.intervals) / len(self.intervals)

    @property
    def jitter(self) -> float | None:
        """Standard deviation of the recent intervals; None below three frames."""
        if len(self.intervals) < 2:
            return None
        mean = sum(self.intervals) / len(self.intervals)
        return math.sqrt(sum((i - mean) ** 2 for i in self.intervals) / len(self.intervals))

    def age(self, now: float) -> float:
        return now - self.last_seen


@dataclass(frozen=True)
class FrameInfo:
    """One received frame as the line log shows it."""

    t: float
    can_id: int
    extended: bool
    data: bytes
    name: str | None
    fields: Mapping[str, Any] | None
    error: str | None

    @property
    def label(self) -> str:
        return format_id(self.can_id, self.extended)


class SniffEngine:
    """Per-id table, decoded battery and bus health of a live bus; feed it, then read it."""

    def __init__(
        self,
        clock: Clock,
        profile: Profile | None = None,
        *,
        frame_expiry_s: float = FRAME_EXPIRY_S,
        profiles: dict[str, Profile] | None = None,
    ) -> None:
        """``profile`` None means auto: detect among ``profiles`` (all of bmslink's)."""
        self.clock = clock
        self.started = clock.now()
        self.profile = profile
        self.auto = profile is None
        self.frame_expiry_s = frame_expiry_s
        self.profiles = profiles or PROFILES
        self.detection: Detection | None = None
        self.rows: dict[tuple[int, bool], IdRow] = {}
        self.frames = 0
        self.other_frames = 0  # ids beyond MAX_IDS
        self.decode_errors = 0
        self.error_frames = 0
        self.status: Counter[str] = Counter()
        self.bus_states: Counter[str] = Counter()
        self.flags: frozenset[str] = frozenset()
        self.bus_state: str | None = None
        self.events: deque[SniffEvent] = deque(maxlen=64)  # the recent ones, for a live view
        self._new_events: list[SniffEvent] = []
        self._latest: dict[str, tuple[float, FrameSpec, dict[str, Any]]] = {}
        self._stats = CaptureStats()
        self._pending: list[tuple[float, int, bool, bytes]] = []
        self._last_check = self.started
        self._frames_at_check = 0
        self._first_frame: float | None = None
        self._errors_reported = 0
        self._error_event_at = -math.inf

    # -- input -------------------------------------------------------------------------------

    def feed(self, can_id: int, extended: bool, data: bytes, t: float | None = None) -> FrameInfo:
        """Take one data frame (time from the clock unless given); returns how to show it."""
        now = self.clock.now() if t is None else t
        data = bytes(data)
        self.frames += 1
        if self._first_frame is None:
            self._first_frame = now
        key = (can_id, extended)
        row = self.rows.get(key)
        if row is None:
            if len(self.rows) >= MAX_IDS:
                self.other_frames += 1
                return FrameInfo(now, can_id, extended, data, None, None, None)
            row = self.rows[key] = IdRow(can_id, extended, first_seen=now)
        elif not math.isnan(row.last_seen):
            row.intervals.append(now - row.last_seen)
        row.count += 1
        row.last_seen = now
        row.data = data
        if self.auto:
            self._pending.append((now, can_id, extended, data))
            if len(self._pending) >= STATS_BATCH:
                self._flush()
        self._decode(row, now)
        if self.auto:
            self._maybe_detect(now)
        return FrameInfo(now, can_id, extended, data, row.name, row.fields, row.error)

    def error_frame(self, flags: frozenset[str] = frozenset(), t: float | None = None) -> None:
        """Count one error frame and the status flags it carried."""
        now = self.clock.now() if t is None else t
        self.error_frames += 1
        self.status.update(flags)
        first = self._errors_reported == 0
        if first or now - self._error_event_at >= ERROR_EVENT_S:
            new = self.error_frames - self._errors_reported
            what = f" ({', '.join(sorted(flags))})" if flags else ""
            text = (
                f"error frame{what}: bit-rate mismatch, termination or wiring"
                if first
                else f"{new} more error frames{what}, {self.error_frames} in all"
            )
            self._event(now, "error_frames", text)
            self._errors_reported = self.error_frames
            self._error_event_at = now

    def adapter_status(
        self, flags: frozenset[str], bus_state: str | None = None, t: float | None = None
    ) -> None:
        """One status poll: flags set now and the bus state (None where not reported)."""
        now = self.clock.now() if t is None else t
        self.status.update(flags)
        if bus_state is not None:
            self.bus_states[bus_state] += 1
        if flags != self.flags:
            text = ", ".join(sorted(flags)) if flags else "clear"
            self._event(now, "status", f"adapter status: {text}")
            self.flags = flags
        if bus_state != self.bus_state and bus_state is not None:
            self._event(now, "bus_state", f"bus state: {bus_state}")
        self.bus_state = bus_state

    def take_events(self) -> list[SniffEvent]:
        """Events since the last call, oldest first."""
        events, self._new_events = self._new_events, []
        return events

    # -- output ------------------------------------------------------------------------------

    def elapsed(self, t: float | None = None) -> float:
        return (self.clock.now() if t is None else t) - self.started

    def sorted_rows(self) -> list[IdRow]:
        return sorted(self.rows.values(), key=lambda r: (r.extended, r.can_id))

    def expiry(self, spec: FrameSpec) -> float:
        return frame_expiry(spec, self.frame_expiry_s)

    def state(self, now: float | None = None) -> BatteryState | None:
        """The battery from fresh battery frames; None when there is none (or no profile)."""
        now = self.clock.now() if now is None else now
        return fresh_state(self._latest, now, self.frame_expiry_s)

    # -- internals ---------------------------------------------------------------------------

    def _event(self, t: float, kind: EventKind, text: str) -> None:
        event = SniffEvent(t, kind, text)
        self.events.append(event)
        self._new_events.append(event)

    def _decode(self, row: IdRow, now: float, count: bool = True) -> None:
        profile = self.profile
        row.spec = row.fields = row.error = None
        if profile is None:
            return
        spec = profile.spec(row.can_id, row.extended)
        if spec is None:
            return  # not this profile's id: shown without a name
        try:
            decoded = profile.decode(row.can_id, row.data, row.extended)
        except DecodeError as exc:
            self.decode_errors += count
            row.spec, row.error = spec, str(exc)
            return
        row.spec, row.fields = decoded.spec, decoded.fields
        if decoded.spec.sender == "battery":
            self._latest[frame_key(decoded.spec)] = (now, decoded.spec, decoded.fields)

    def _flush(self) -> None:
        if self._pending:
            self._stats.add(FrameBatch.from_frames(self._pending))
            self._pending = []

    def _maybe_detect(self, now: float) -> None:
        since = self.frames - self._frames_at_check
        if self.profile is None:
            assert self._first_frame is not None
            span = now - self._first_frame
            if self.frames < DETECT_MIN_FRAMES and (
                span < DETECT_MIN_SPAN_S or self.frames < DETECT_FEWEST_FRAMES
            ):
                return
            checked = self.detection is not None
            if checked and since < DETECT_EVERY_FRAMES and now - self._last_check < DETECT_EVERY_S:
                return
        elif now - self._last_check < RECHECK_S:
            return
        self._flush()
        self._last_check, self._frames_at_check = now, self.frames
        stats = self._stats
        if self.profile is not None:
            self._stats = CaptureStats()  # the next window starts here
            if stats.frames < DETECT_MIN_FRAMES:
                return
        result = detect(stats, self.profiles)
        if result.best is None or result.confidence < CONFIDENT:
            if self.profile is None:
                self.detection = result  # the best guess so far, for the view
            return
        name = result.best.profile
        if self.profile is not None and name == self.profile.name:
            self.detection = result
            return
        previous = self.profile
        self.detection = result
        self.profile = self.profiles[name]
        if previous is None:
            self._stats = CaptureStats()
            text = f"profile detected: {name} (confidence {result.confidence:.0%})"
            self._event(now, "profile_detected", text)
        else:
            text = (
                f"profile changed: {previous.name} -> {name} "
                f"(confidence {result.confidence:.0%} over the last {stats.frames} frames)"
            )
            self._event(now, "profile_changed", text)
        self._redecode()

    def _redecode(self) -> None:
        """A new profile: every id's last payload decoded again, at the time it was seen."""
        self._latest.clear()
        for row in self.rows.values():
            self._decode(row, row.last_seen, count=False)
