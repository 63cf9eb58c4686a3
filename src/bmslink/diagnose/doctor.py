"""``bmslink doctor``: the troubleshooting checklist of a battery-inverter link, walked in order.

An expert with a USB-CAN adapter checks the physical layer first (is anything on the wire, at
which bit rate, with bus errors?), then the protocol (which profile, one the inverter accepts?),
then the frames (all there, on time, the inverter answering?), then the values (moving,
plausible?). Findings come in that order within each severity, so the first finding is the
thing to fix first: a conformance warning is noise while the bus is silent.

Each finding has a stable code (:data:`RULES`), a message, evidence (what was seen, when) and
next steps that name pins, resistors and menu settings from the registry where it knows them.
Codes from ``bmslink check`` pass through unchanged (their meaning is documented there), except
the ones doctor decides itself with more context:

- ``frame_missing`` only for frames the listening window was long enough to see (a live
  window of 5 s cannot judge a frame sent every 60 s), and for a frame that stopped before the
  end of the window;
- ``no_inverter_keepalive`` is an error only when an inverter was named: on a bench with just
  the battery it is expected;
- ``profile_not_accepted`` and ``battery_silent`` become ``profile_mismatch``.

Choices where the issue is silent: ``stale_values`` needs 60 s of traffic (a battery at rest
can hold its pack voltage for a minute, but not every cell voltage, temperature and current
byte); ``error_frames`` is an error when the adapter went error-passive or bus-off, or when
more than 1 % of what it saw were errors, else a warning; ``battery_stopped`` is an error when
every battery frame stopped at least 3 of its periods (2 s at least) before the end while the
window (or other traffic) went on: sooner than an inverter's lost timeout (10-60 s), because
doctor reports what it saw, not what the inverter will do about it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bmslink.capture import FrameBatch
from bmslink.diagnose.check import RULES as CHECK_RULES
from bmslink.diagnose.check import Finding, check_batches
from bmslink.diagnose.detect import Detection, detect
from bmslink.diagnose.stats import CaptureStats, IdStats, gather
from bmslink.profiles import PROFILES
from bmslink.profiles.base import Cells, FrameSpec, Num, Profile, format_id

Severity = str  # "error" | "warning" | "info"

#: Doctor's own codes: severity and what to do first. Check's codes keep check's advice.
RULES: dict[str, tuple[Severity, str]] = {
    "bus_silent": (
        "error",
        "Nothing on the wire: check the power-up order (BMS on and awake, then the inverter), "
        "the cable against both pinouts, and that the adapter is on the bus.",
    ),
    "bitrate_mismatch": (
        "error",
        "Traffic was found at another bit rate: set the adapter (or the device that is wrong) "
        "to the rate the inverter expects.",
    ),
    "error_frames": (
        "warning",
        "Bus errors: a bit-rate mismatch, missing 120 ohm termination, CAN_H/CAN_L swapped or "
        "a bad joint.",
    ),
    "no_known_profile": (
        "error",
        "Frames that match no battery profile: another device, a wrong bit rate that still "
        "decodes, or a profile bmslink does not know.",
    ),
    "profile_mismatch": (
        "error",
        "The battery speaks a profile the inverter does not accept: change the BMS's CAN "
        "protocol or the inverter's battery type.",
    ),
    "frame_missing": CHECK_RULES["frame_missing"],
    "battery_stopped": (
        "error",
        "The battery stopped sending: a BMS protection event, sleep, reboot or a loose "
        "connector; the inverter will fall back to voltage-only or fault.",
    ),
    "no_inverter_keepalive": CHECK_RULES["no_inverter_keepalive"],
    "stale_values": (
        "error",
        "Frames keep coming but no value ever changes: a gateway repeating a cached frame, a "
        "frozen BMS, or a BMS-to-CAN adapter that lost its BMS link.",
    ),
    "period_out_of_tolerance": CHECK_RULES["period_out_of_tolerance"],
    "value_implausible": CHECK_RULES["value_implausible"],
    "all_ok": ("info", "Nothing to fix on this link."),
}

#: The checklist order: physical layer, protocol, frames, timing, values; check's codes slot in.
ORDER: tuple[str, ...] = (
    "bus_silent",
    "bitrate_mismatch",
    "error_frames",
    "no_known_profile",
    "profile_mismatch",
    "name_rejected",
    "battery_stopped",
    "frame_missing",
    "wrong_length",
    "no_inverter_keepalive",
    "extended_ids_ignored",
    "period_too_fast",
    "period_out_of_tolerance",
    "frame_gap",
    "stale_values",
    "soc_out_of_range",
    "cvl_above_chemistry_max",
    "cell_min_above_max",
    "cvl_zero",
    "dcl_negative",
    "value_implausible",
    "charge_enabled_zero_ccl",
    "discharge_enabled_zero_dcl",
    "unparsable_lines",
    "all_ok",  # first among the infos: the verdict, then what is worth knowing
    "unknown_ids",
    "dvl_ignored",
    "full_soc_stops_charging",
)
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

STALE_MIN_S = 60.0
#: A battery frame silent this many of its periods (at least STOPPED_MIN_S) at the end stopped.
STOPPED_PERIODS = 3.0
STOPPED_MIN_S = 2.0
ERROR_SHARE = 0.01
#: A frame is judged missing only when the window covered this many of its periods.
PERIODS_TO_JUDGE = 2.0
#: Values that move on a live battery; frames carrying any of them are watched for staleness.
MOVING_KEYS = frozenset(
    {"voltage_v", "current_a", "temperature_c", "cell_min_v", "cell_max_v", "soc_pct"}
)
#: Adapter status flags that mean the adapter itself is in trouble on this bus.
SEVERE_STATUS = frozenset({"error_passive", "bus_off"})


@dataclass
class DoctorFinding:
    """One ranked finding: what, how sure (evidence), and what to do next."""

    code: str
    message: str
    evidence: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    severity: Severity = ""

    def __post_init__(self) -> None:
        severity, advice = RULES.get(self.code) or CHECK_RULES[self.code]
        self.severity = self.severity or severity
        if not self.next_steps:
            self.next_steps = [advice]

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "evidence": self.evidence,
            "next_steps": self.next_steps,
        }


@dataclass
class ScanResult:
    """What one bit rate of a scan heard."""

    bitrate: int
    frames: int
    error_frames: int
    status: Counter[str]
    ids: list[str]
    seconds: float

    def describe(self) -> str:
        parts = [f"{self.frames} frames"]
        if self.ids:
            parts.append(f"ids {' '.join(self.ids[:8])}")
        if self.error_frames:
            parts.append(f"{self.error_frames} error frames")
        flags = [name for name, n in sorted(self.status.items()) if n]
        if flags:
            parts.append(f"adapter flags {', '.join(flags)}")
        return f"at {self.bitrate // 1000} kbit/s: {', '.join(parts)} in {self.seconds:.1f} s"


@dataclass
class Heard:
    """Everything the doctor knows about the bus: frames and the physical layer's signs.

    ``batches`` is called once per pass (twice at most, once when ``stats`` already holds
    the statistics pass), so a capture file is read again rather than held in memory.
    ``window`` is the live listening interval on the frames' time base, None for a capture
    (whose end is its last frame).
    """

    source: str
    batches: Callable[[], Iterable[FrameBatch]]
    stats: CaptureStats | None = None
    error_frames: int = 0
    status: Counter[str] = field(default_factory=Counter)
    bus_states: Counter[str] = field(default_factory=Counter)
    bad_lines: int = 0
    first_bad_line: str = ""
    window: tuple[float, float] | None = None
    bitrate: int | None = None
    scan: list[ScanResult] = field(default_factory=list)
    scan_frames: Mapping[int, list[FrameBatch]] = field(default_factory=dict)
    scan_note: str = ""  # why no scan was done, when it was not


@dataclass
class Diagnosis:
    source: str
    findings: list[DoctorFinding]
    frames: int
    profile: str | None
    detection: Detection | None
    inverter: str | None
    bms: str | None
    seconds: float | None

    @property
    def errors(self) -> int:
        return sum(f.severity == "error" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.severity == "warning" for f in self.findings)

    @property
    def top(self) -> DoctorFinding:
        return self.findings[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "frames": self.frames,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "profile": self.profile,
            "confidence": None if self.detection is None else round(self.detection.confidence, 2),
            "inverter": self.inverter,
            "bms": self.bms,
            "errors": self.errors,
            "warnings": self.warnings,
            "top": self.top.code,
            "findings": [f.to_dict() for f in self.findings],
        }


def rank(findings: Iterable[DoctorFinding]) -> list[DoctorFinding]:
    """Errors before warnings before info; within each, the checklist order."""
    position = {code: i for i, code in enumerate(ORDER)}
    return sorted(
        findings,
        key=lambda f: (_SEVERITY_ORDER[f.severity], position.get(f.code, len(ORDER))),
    )


# -- advice from the registry ------------------------------------------------------------------


@dataclass
class Context:
    """The named devices, looked up once; any of them may be unknown."""

    inverter: Any = None  # registry Inverter
    bms: str | None = None
    cells: int | None = None

    @property
    def inverter_name(self) -> str | None:
        return getattr(self.inverter, "name", None)

    def wiring_steps(self, bus: str = "can") -> list[str]:
        if self.inverter is None and self.bms is None:
            return []
        from bmslink.diagnose.cable import pinout_advice

        return pinout_advice(self.bms, self.inverter_name, bus)

    def termination_steps(self) -> list[str]:
        if self.inverter is None and self.bms is None:
            return []
        from bmslink.diagnose.cable import termination_advice

        return termination_advice(self.bms, self.inverter_name)

    def bms_profiles(self) -> tuple[str, ...]:
        if self.bms is None:
            return ()
        from bmslink.diagnose.cable import bms_profiles

        return bms_profiles(self.bms)

    def expected_bitrates(self, profile: Profile | None) -> list[int]:
        rates: list[int] = []
        if self.inverter is not None and self.inverter.bitrate:
            rates.append(int(self.inverter.bitrate))
        if profile is not None:
            rates += [r for r in profile.bitrates if r not in rates]
        return rates or [500_000]


def _kbit(rate: int | None) -> str:
    return "an unknown rate" if rate is None else f"{rate // 1000} kbit/s"


# -- the checklist ------------------------------------------------------------------------------


def diagnose(
    heard: Heard,
    *,
    profile: Profile | None = None,
    context: Context | None = None,
    stale_after_s: float = STALE_MIN_S,
) -> Diagnosis:
    """Walk the checklist over what was heard; the findings come ranked, never empty."""
    context = context or Context()
    stats = heard.stats if heard.stats is not None else gather(heard.batches())
    seconds = _span(heard, stats)
    findings: list[DoctorFinding] = []
    detection: Detection | None = None

    def done(chosen: Profile | None) -> Diagnosis:
        if not any(f.severity in ("error", "warning") for f in findings):
            findings.append(_all_ok(heard, stats, chosen, detection, seconds, stale_after_s))
        return Diagnosis(
            heard.source,
            rank(findings),
            stats.frames,
            chosen.name if chosen else None,
            detection,
            context.inverter_name,
            context.bms,
            seconds,
        )

    # 1. the physical layer
    errors = _error_finding(heard, stats, context, profile)
    if stats.frames == 0:
        findings.extend(_silent_bus(heard, context, profile, errors))
        return done(profile)
    if errors is not None:
        findings.append(errors)
    if heard.bad_lines:
        findings.append(
            DoctorFinding(
                "unparsable_lines",
                f"{heard.bad_lines} lines of the capture are not CAN frames",
                [heard.first_bad_line] if heard.first_bad_line else [],
            )
        )

    # 2. which protocol
    detection = detect(stats)
    chosen = profile
    if chosen is None:
        if detection.best is None:
            findings.append(_unknown_traffic(stats, context))
            return done(None)
        chosen = PROFILES[detection.best.profile]
    mismatch = _profile_mismatch(
        chosen, detection, context, forced=profile is not None, stats=stats
    )
    if mismatch is not None:
        findings.append(mismatch)
        if profile is not None and mismatch.message.startswith("no frame of"):
            return done(chosen)

    # 3-5. frames, timing, values: check's rules on the same traffic, with doctor's context
    check_stats, checker = check_batches(
        chosen, heard.batches(), inverter=context.inverter, cells=context.cells
    )
    for finding in checker.findings(check_stats):
        converted = _from_check(finding, context, check_stats)
        if converted is not None:
            findings.append(converted)
    findings.extend(_missing_or_stopped(chosen, check_stats, heard, seconds))
    stale = _stale(chosen, check_stats, seconds, stale_after_s)
    if stale is not None:
        findings.append(stale)
    return done(chosen)


def _span(heard: Heard, stats: CaptureStats) -> float | None:
    if heard.window is not None:
        return heard.window[1] - heard.window[0]
    if not stats.ids:
        return None
    first = min(s.first_ts for s in stats.ids.values())
    last = max(s.last_ts for s in stats.ids.values())
    return last - first


def _error_finding(
    heard: Heard, stats: CaptureStats, context: Context, profile: Profile | None
) -> DoctorFinding | None:
    flags = {name: n for name, n in heard.status.items() if n}
    states = {name: n for name, n in heard.bus_states.items() if n and name != "ACTIVE"}
    if not heard.error_frames and not flags and not states:
        return None
    evidence = []
    if heard.error_frames:
        evidence.append(f"{heard.error_frames} error frames beside {stats.frames} data frames")
    if flags:
        evidence.append(
            "adapter status flags: " + ", ".join(f"{k} x{v}" for k, v in sorted(flags.items()))
        )
    if states:
        evidence.append("bus states: " + ", ".join(f"{k} x{v}" for k, v in sorted(states.items())))
    share = heard.error_frames / max(heard.error_frames + stats.frames, 1)
    severe = (
        bool(SEVERE_STATUS & set(flags))
        or any(s in ("PASSIVE", "ERROR", "BUS_OFF") for s in states)
        or share > ERROR_SHARE
        or stats.frames == 0
    )
    rates = context.expected_bitrates(profile)
    steps = [
        f"Bit rate: the adapter listens at {_kbit(heard.bitrate)}; this link should run at "
        + " or ".join(_kbit(r) for r in rates)
        + " (both devices and the adapter must agree).",
        *(
            context.termination_steps()
            or [
                "Termination: with everything powered off, measure between CAN_H and CAN_L: "
                "about 60 ohm is right (120 ohm at each end), 120 ohm means one terminator is "
                "missing, under 50 ohm means one too many."
            ]
        ),
        "Wiring: CAN_H and CAN_L swapped, or a pair split across two twisted pairs, gives "
        "errors at any bit rate.",
        *context.wiring_steps(),
    ]
    message = (
        f"bus errors at {_kbit(heard.bitrate)}: {heard.error_frames} error frames "
        f"({share:.0%} of what was seen)"
        if heard.error_frames
        else f"the adapter reports bus errors at {_kbit(heard.bitrate)}"
    )
    return DoctorFinding("error_frames", message, evidence, steps, "error" if severe else "warning")


def _silent_bus(
    heard: Heard, context: Context, profile: Profile | None, errors: DoctorFinding | None
) -> list[DoctorFinding]:
    found = [s for s in heard.scan if s.frames and s.bitrate != heard.bitrate]
    if found:
        best = max(found, key=lambda s: s.frames)
        evidence = [s.describe() for s in heard.scan]
        batches = heard.scan_frames.get(best.bitrate)
        if batches:
            detection = detect(gather(batches))
            if detection.best is not None:
                evidence.append(
                    f"the traffic at {_kbit(best.bitrate)} looks like "
                    f"{detection.best.profile} ({detection.confidence:.0%})"
                )
        expected = context.expected_bitrates(profile)
        steps = [f"Listen at {_kbit(best.bitrate)}: bmslink doctor ... --bitrate {best.bitrate}."]
        if best.bitrate not in expected:
            target = " or ".join(_kbit(r) for r in expected)
            device = f"the inverter ({context.inverter.title})" if context.inverter else "it"
            steps.append(
                f"The battery sends at {_kbit(best.bitrate)} but {device} expects {target}: "
                "set the BMS's CAN bit rate (or pick the inverter's port profile for "
                f"{_kbit(best.bitrate)} where it has one)."
            )
            if context.inverter is not None and context.inverter.setting:
                steps.append(f"Inverter setting: {context.inverter.setting}.")
        out = [
            DoctorFinding(
                "bitrate_mismatch",
                f"no traffic at {_kbit(heard.bitrate)}, traffic at {_kbit(best.bitrate)}",
                evidence,
                steps,
            )
        ]
        if errors is not None:
            errors.severity = "warning"  # explained by the rate
            out.append(errors)
        return out
    if errors is not None:
        if heard.scan:
            errors.evidence += [s.describe() for s in heard.scan]
        elif heard.scan_note:
            errors.evidence.append(heard.scan_note)
        return [errors]
    evidence = [f"no frame and no bus error at {_kbit(heard.bitrate)}"]
    if heard.window is not None:
        evidence[0] += f" in {heard.window[1] - heard.window[0]:.1f} s"
    evidence += [s.describe() for s in heard.scan]
    if heard.scan_note:
        evidence.append(heard.scan_note)
    steps = [
        "Power-up order: switch the battery on and wake the BMS first (many only start CAN "
        "when woken, some only after hearing the inverter), then the inverter.",
        "Check the BMS has CAN output enabled and a profile selected.",
        *context.wiring_steps(),
        "No pinout known? Measure, battery on: CAN_H and CAN_L each idle near 2.5 V against "
        "ground; with traffic CAN_H rises towards 3.5 V and CAN_L falls towards 1.5 V.",
        "Adapter: is the interface up (socketcan: ip link set can0 up type can bitrate "
        "500000) and on the right port?",
    ]
    return [DoctorFinding("bus_silent", "nothing heard on the bus", evidence, steps)]


def _unknown_traffic(stats: CaptureStats, context: Context) -> DoctorFinding:
    ids = [s.label for s in sorted(stats.ids.values(), key=lambda s: (s.extended, s.can_id))]
    return DoctorFinding(
        "no_known_profile",
        f"{stats.frames} frames, none in a profile bmslink knows",
        [f"ids: {' '.join(ids[:12])}"],
        [
            "Another device may be on the bus: unplug everything but the battery and listen again.",
            "Compare with `bmslink detect --json` on a capture and `bmslink profiles`.",
            *context.wiring_steps(),
        ],
    )


def _accepts(inverter: Any, profile: Profile) -> bool:
    names = {profile.name, *(n for n, p in PROFILES.items() if p.alias_of == profile.name)}
    if profile.alias_of:
        names.add(profile.alias_of)
    return bool(names & set(inverter.profiles))


def _profile_mismatch(
    chosen: Profile,
    detection: Detection,
    context: Context,
    *,
    forced: bool,
    stats: CaptureStats,
) -> DoctorFinding | None:
    battery = [s for s in chosen.frames_from("battery") if s.emit]
    seen = any((i, s.extended) in stats.ids for s in battery for i in s.wire_ids)
    detected = detection.best.profile if detection.best else None
    if forced and not seen:
        also = f"; the traffic looks like {detected}" if detected else ""
        return DoctorFinding(
            "profile_mismatch",
            f"no frame of {chosen.name} on the bus{also}",
            [f"ids seen: {' '.join(detection.ids[:12])}"],
            _profile_steps(detected, context),
        )
    same = {chosen.name, chosen.alias_of, *(detection.best.aliases if detection.best else [])}
    if forced and detected is not None and detected not in same and detection.confidence >= 0.5:
        return DoctorFinding(
            "profile_mismatch",
            f"the traffic looks like {detected} ({detection.confidence:.0%} sure), "
            f"not {chosen.name}",
            detection.best.evidence[:3] if detection.best else [],
            _profile_steps(detected, context),
        )
    inverter = context.inverter
    if inverter is None or _accepts(inverter, chosen):
        return None
    accepted = ", ".join(inverter.profiles) or "none bmslink knows"
    confidence = f" ({detection.confidence:.0%} sure)" if detection.best and not forced else ""
    return DoctorFinding(
        "profile_mismatch",
        f"the battery speaks {chosen.name}{confidence}; {inverter.title} accepts {accepted}",
        [f"detected {chosen.name} from ids {' '.join(detection.ids[:8])}"],
        _profile_steps(chosen.name, context),
    )


def _profile_steps(spoken: str | None, context: Context) -> list[str]:
    inverter = context.inverter
    steps: list[str] = []
    if inverter is not None:
        offered = context.bms_profiles()
        common = [p for p in inverter.profiles if p in offered]
        device = f"the BMS ({context.bms})" if context.bms else "the BMS"
        if common:
            steps.append(f"On {device}: set the CAN protocol to {common[0]} ({inverter.title}).")
        elif inverter.profiles:
            steps.append(
                f"On {device}: set the CAN protocol to one of {', '.join(inverter.profiles)}; "
                + (
                    "none of them is listed for this BMS: bmslink bridge can translate."
                    if context.bms
                    else "or put bmslink bridge between them to translate."
                )
            )
        if inverter.setting:
            steps.append(f"On the inverter: {inverter.setting}.")
    elif spoken:
        steps.append(f"Run doctor with --profile {spoken}, or set the BMS to the expected one.")
    return steps or [RULES["profile_mismatch"][1]]


def _from_check(finding: Finding, context: Context, stats: CaptureStats) -> DoctorFinding | None:
    code = finding.code
    if code in ("profile_not_accepted", "battery_silent", "frame_missing"):
        return None  # decided by doctor with the window and registry in hand
    evidence = [_evidence_text(item) for item in finding.evidence if item.get("id")]
    severity = finding.severity
    steps = [finding.advice]
    if code == "no_inverter_keepalive":
        ids = sorted(s.label for s in stats.ids.values())
        evidence = [f"{stats.frames} frames heard, all from ids {' '.join(ids[:10])}"]
        if context.inverter is None:
            severity = "warning"
            steps.append("Only expected when an inverter is connected and switched on.")
        else:
            steps = [
                f"Set {context.inverter.title} to a lithium battery with a BMS link"
                + (f" ({context.inverter.setting})" if context.inverter.setting else "")
                + ".",
                *context.wiring_steps(),
            ]
    return DoctorFinding(code, finding.message, evidence, steps, severity)


def _evidence_text(item: Mapping[str, Any]) -> str:
    return f"at {item['time']}: {item['id']} {item.get('data', '')}".rstrip()


def _judgeable(spec: FrameSpec, seconds: float | None) -> bool:
    if spec.period_s is None or seconds is None:
        return True
    return seconds >= PERIODS_TO_JUDGE * spec.period_s


def _missing_or_stopped(
    profile: Profile, stats: CaptureStats, heard: Heard, seconds: float | None
) -> list[DoctorFinding]:
    out: list[DoctorFinding] = []
    end = heard.window[1] if heard.window is not None else _last_time(stats)
    last_battery: list[tuple[FrameSpec, IdStats]] = []
    for spec in profile.frames_from("battery"):
        present = [
            stats.ids[(i, spec.extended)] for i in spec.wire_ids if (i, spec.extended) in stats.ids
        ]
        if not present:
            if spec.required and spec.emit and _judgeable(spec, seconds):
                span = f" in {seconds:.1f} s" if seconds is not None else ""
                out.append(
                    DoctorFinding(
                        "frame_missing",
                        f"{spec.label} {spec.name} never seen{span}",
                        [f"{profile.name} sends it every {spec.period_s:g} s"]
                        if spec.period_s
                        else [],
                    )
                )
            continue
        last_battery.append((spec, max(present, key=lambda s: s.last_ts)))
    if not last_battery or end is None:
        return out
    stopped = []
    for spec, s in last_battery:
        limit = max(STOPPED_PERIODS * (spec.period_s or 1.0), STOPPED_MIN_S)
        if end - s.last_ts > limit:
            stopped.append((spec, s, end - s.last_ts))
    if stopped and len(stopped) == len(last_battery):
        last = max(s.last_ts for _, s, _ in stopped)
        out.append(
            DoctorFinding(
                "battery_stopped",
                f"the battery's frames stopped {end - last:.1f} s before the end",
                [f"last battery frame at {last:.3f}", f"window ends at {end:.3f}"]
                + [f"{spec.label} last at {s.last_ts:.3f}" for spec, s, _ in stopped[:4]],
            )
        )
    else:
        for spec, s, quiet in stopped:
            out.append(
                DoctorFinding(
                    "frame_missing",
                    f"{spec.label} {spec.name} stopped {quiet:.1f} s before the end",
                    [f"last at {s.last_ts:.3f}, {s.count} frames before"],
                )
            )
    return out


def _present(stats: CaptureStats, spec: FrameSpec) -> list[IdStats]:
    return [stats.ids[(i, spec.extended)] for i in spec.wire_ids if (i, spec.extended) in stats.ids]


def _last_time(stats: CaptureStats) -> float | None:
    if not stats.ids:
        return None
    return max(s.last_ts for s in stats.ids.values())


def _moving(spec: FrameSpec) -> bool:
    return any(
        (isinstance(f, Num) and f.key in MOVING_KEYS) or isinstance(f, Cells) for f in spec.fields
    )


def _stale(
    profile: Profile, stats: CaptureStats, seconds: float | None, stale_after_s: float
) -> DoctorFinding | None:
    if seconds is None or seconds < stale_after_s:
        return None
    watched: list[IdStats] = []
    for spec in profile.frames_from("battery"):
        if spec.mux is not None or not _moving(spec):
            continue
        watched += [
            stats.ids[(i, spec.extended)] for i in spec.wire_ids if (i, spec.extended) in stats.ids
        ]
    watched = [s for s in watched if s.count >= 3]
    if not watched or any(s.varies for s in watched):
        return None
    span = max(s.last_ts for s in watched) - min(s.first_ts for s in watched)
    if span < stale_after_s:
        return None
    evidence = [
        f"{s.label}: {s.count} frames, always {next(iter(s.payloads)).hex(' ').upper()}"
        for s in watched[:6]
    ]
    return DoctorFinding(
        "stale_values",
        f"{len(watched)} measurement frames unchanged for {span:.0f} s",
        evidence,
    )


def _all_ok(
    heard: Heard,
    stats: CaptureStats,
    profile: Profile | None,
    detection: Detection | None,
    seconds: float | None,
    stale_after_s: float,
) -> DoctorFinding:
    evidence = [f"{stats.frames} frames from {len(stats.ids)} ids"]
    if seconds is not None:
        evidence[0] += f" in {seconds:.1f} s"
    if profile is not None:
        sure = f" ({detection.confidence:.0%})" if detection and detection.best else ""
        evidence.append(f"profile {profile.name}{sure}, every required frame on time")
    if not heard.error_frames and not any(heard.status.values()):
        evidence.append("no bus errors")
    if seconds is not None and seconds < stale_after_s:
        evidence.append(
            f"stale values not judged: that needs {stale_after_s:g} s of traffic "
            f"(--listen {stale_after_s:g})"
        )
    return DoctorFinding("all_ok", "the link looks healthy", evidence)


def id_labels(batches: Iterable[FrameBatch]) -> list[str]:
    """Distinct id labels in first-seen order (for scan evidence)."""
    seen: dict[str, None] = {}
    for batch in batches:
        for can_id, extended in zip(batch.ids.tolist(), batch.extended.tolist(), strict=True):
            seen.setdefault(format_id(can_id, extended), None)
    return list(seen)
