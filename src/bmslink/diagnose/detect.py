"""Which profile is on this bus? Score every profile against a capture's statistics.

Evidence, strongest first:

- the share of frames whose ids the profile knows (both directions, 11/29-bit);
- how many of the profile's regular battery frames appear at all;
- lengths: a profile whose frames have exactly the observed lengths beats one
  that merely accepts them (Sol-Ark pads everything to 8 bytes, Pylontech not);
- periods close to the table's;
- marker bytes and names: Pylontech's "PN", Victron's "VIC", a manufacturer text;
- payloads that decode cleanly and plausibly (SoC 0-100, CVL above DVL...).

Profiles that are aliases (GivEnergy = Pylontech frames) cannot be told apart
on the wire; they are reported beside the winner rather than competing with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bmslink.diagnose.stats import CaptureStats, IdStats
from bmslink.errors import DecodeError
from bmslink.profiles import PROFILES
from bmslink.profiles.base import Const, FrameSpec, Profile, Text, assemble

WEIGHTS = {
    "ids": 0.35,
    "coverage": 0.20,
    "lengths": 0.20,
    "periods": 0.10,
    "payloads": 0.10,
    "markers": 0.05,  # a fixed marker ("PN", "VIC") seen: tells SMA from Victron on one frame
}


@dataclass
class Candidate:
    """One profile's score and the evidence behind it."""

    profile: str
    score: float
    parts: dict[str, float]
    evidence: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "score": round(self.score, 3),
            "parts": {k: round(v, 3) for k, v in self.parts.items()},
            "evidence": self.evidence,
            "aliases": self.aliases,
        }


@dataclass
class Detection:
    """The verdict: the best candidate, a confidence, and the runner-up."""

    best: Candidate | None
    confidence: float
    runner_up: Candidate | None
    ranking: list[Candidate]
    frames: int
    ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.best.profile if self.best else None,
            "confidence": round(self.confidence, 2),
            "best": self.best.to_dict() if self.best else None,
            "runner_up": self.runner_up.to_dict() if self.runner_up else None,
            "ranking": [{"profile": c.profile, "score": round(c.score, 3)} for c in self.ranking],
            "frames": self.frames,
            "ids": self.ids,
        }


def _plausible(values: dict[str, Any]) -> bool:
    """Values a real battery could send; catches a profile reading another's bytes."""
    soc = values.get("soc_pct")
    if soc is not None and not 0 <= soc <= 100:
        return False
    soh = values.get("soh_pct")
    if soh is not None and not 0 <= soh <= 100:
        return False
    cvl, dvl = values.get("charge_voltage_v"), values.get("discharge_voltage_v")
    if cvl is not None and dvl is not None and not 0 < dvl < cvl:
        return False
    volts = values.get("voltage_v")
    if volts is not None and cvl is not None and not 0.6 * cvl <= volts <= 1.15 * cvl:
        return False
    temp = values.get("temperature_c")
    return temp is None or -40 <= temp <= 100


def score_profile(profile: Profile, stats: CaptureStats) -> Candidate:
    evidence: list[str] = []
    total = max(stats.frames, 1)
    explained = [s for s in stats.ids.values() if profile.spec(s.can_id, s.extended)]
    share = sum(s.count for s in explained) / total
    unknown = stats.unknown_labels(profile)
    labels = " ".join(s.label for s in sorted(explained, key=lambda s: (s.extended, s.can_id)))
    evidence.append(f"{share:.0%} of frames have ids {profile.name} knows: {labels or 'none'}")
    if unknown:
        evidence.append(f"ids it does not know: {' '.join(unknown[:8])}")

    regular = [s for s in profile.frames_from("battery") if s.emit and s.required]
    seen_regular = [s for s in regular if any((i, s.extended) in stats.ids for i in s.wire_ids)]
    coverage = len(seen_regular) / len(regular) if regular else 0.0
    evidence.append(f"{len(seen_regular)}/{len(regular)} of its required battery frames seen")

    length_scores: list[float] = []
    period_scores: list[float] = []
    payload_scores: list[float] = []
    fields_seen: list[tuple[FrameSpec, dict[str, Any]]] = []
    markers: dict[str, bool] = {}  # evidence note -> the marker was right
    for s in explained:
        spec = profile.spec(s.can_id, s.extended)
        assert spec is not None  # explained ids only
        length = s.dominant_length
        if length == spec.length:
            length_scores.append(1.0)
        elif spec.accepted_min <= length <= 8 or spec.accept_any_payload:
            length_scores.append(0.25)  # accepted, but not what this profile sends
            evidence.append(f"{s.label} is {length} bytes; {profile.name} sends {spec.length}")
        else:
            length_scores.append(0.0)
            evidence.append(f"{s.label} is {length} bytes; {profile.name} expects {spec.length}")
        period = s.period
        if spec.period_s is not None and period is not None and period > 0:
            ratio = period / spec.period_s
            period_scores.append(1.0 if 0.7 <= ratio <= 1.4 else 0.3 if 0.4 <= ratio <= 2.5 else 0)
        payload_scores.append(_payload_score(profile, s, spec, evidence, fields_seen, markers))
    values = assemble(fields_seen)
    if fields_seen and not _plausible(values):
        payload_scores.append(0.0)
        evidence.append(f"decoded values are implausible under {profile.name}")
    parts = {
        "ids": share,
        "coverage": coverage,
        "lengths": sum(length_scores) / len(length_scores) if length_scores else 0.0,
        "periods": sum(period_scores) / len(period_scores) if period_scores else 0.5,
        "payloads": sum(payload_scores) / len(payload_scores) if payload_scores else 0.0,
        # no marker among the frames seen is neutral, not evidence against
        "markers": (
            0.0 if not all(markers.values()) else 1.0 if markers else 0.5 if explained else 0.0
        ),
    }
    score = sum(WEIGHTS[k] * v for k, v in parts.items())
    extended = [s.label for s in stats.ids.values() if s.extended]
    if extended:
        evidence.append(f"29-bit ids present: {' '.join(sorted(extended)[:6])}")
    return Candidate(profile.name, score, parts, evidence)


def _payload_score(
    profile: Profile,
    s: IdStats,
    spec: FrameSpec,
    evidence: list[str],
    fields_seen: list[tuple[FrameSpec, dict[str, Any]]],
    markers: dict[str, bool],
) -> float:
    """Share of sampled payloads that decode, with bonuses for markers and names."""
    ok = 0
    for payload in s.payloads:
        try:
            decoded = profile.decode(s.can_id, payload, s.extended)
        except DecodeError:
            continue
        ok += 1
        fields_seen.append((decoded.spec, decoded.fields))
        for f in decoded.spec.fields:
            if isinstance(f, Const) and f.start + len(f.value) <= len(payload):
                if payload[f.start : f.start + len(f.value)] != f.value:
                    # a marker this profile always sends is wrong
                    note = f"{s.label} lacks the marker {f.value.decode('latin-1')!r}"
                    evidence.append(note)
                    markers[note] = False
                    return 0.0
                note = f"{s.label} carries the marker {f.value.decode('latin-1')!r}"
                if note not in markers:
                    markers[note] = True
                    evidence.append(note)
            elif isinstance(f, Text) and f.key == "manufacturer" and decoded.fields.get(f.key):
                text = decoded.fields[f.key]
                note = f"{s.label} names the maker {text!r}"
                if note not in evidence:
                    evidence.append(note)
    if not s.payloads:
        return 0.0
    if spec.accept_any_payload and spec.length == 8 and any(any(p) for p in s.payloads):
        return 0.5  # a keep-alive that should be all zeros carries data (SMA's SI frames do)
    return ok / len(s.payloads)


def detect(stats: CaptureStats, profiles: dict[str, Profile] | None = None) -> Detection:
    """Rank the profiles; aliases ride along with the profile they copy."""
    profiles = profiles or PROFILES
    primaries = {n: p for n, p in profiles.items() if p.alias_of is None}
    ranking = sorted((score_profile(p, stats) for p in primaries.values()), key=lambda c: -c.score)
    for candidate in ranking:
        candidate.aliases = sorted(
            n for n, p in profiles.items() if p.alias_of == candidate.profile
        )
    ids = [s.label for s in sorted(stats.ids.values(), key=lambda s: (s.extended, s.can_id))]
    if not ranking or ranking[0].score <= 0.05:
        return Detection(None, 0.0, None, ranking, stats.frames, ids)
    best = ranking[0]
    runner = ranking[1] if len(ranking) > 1 else None
    margin = best.score - (runner.score if runner else 0.0)
    confidence = best.score * (0.5 + 0.5 * min(1.0, margin / 0.10))
    return Detection(best, min(confidence, 1.0), runner, ranking, stats.frames, ids)
