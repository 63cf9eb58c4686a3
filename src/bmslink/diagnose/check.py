"""Conformance: does this traffic follow the profile, and suit the named inverter?

One pass over the capture, a batch at a time: frame timing and lengths come
from :mod:`bmslink.diagnose.stats`, values from the vectorised decoder, and the
inverter's quirks from the registry. Every finding has a stable code (listed in
:data:`RULES` with its severity and what to do), a message, and evidence: the
frame and the time it was seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bmslink.capture import CaptureReport, FrameBatch
from bmslink.diagnose.stats import CaptureStats, numbered
from bmslink.errors import DecodeError
from bmslink.profiles.base import FrameSpec, Num, Profile, assemble
from bmslink.profiles.vector import decode_columns, raw_column

Severity = str  # "error" | "warning" | "info"

#: Every finding's code, its severity, and the advice that goes with it.
RULES: dict[str, tuple[Severity, str]] = {
    "battery_silent": (
        "error",
        "No frame of this profile from the battery: check the profile "
        "set on the BMS, the wiring (CAN_H/CAN_L swapped?) and the bit rate.",
    ),
    "frame_missing": (
        "error",
        "The inverter needs this frame; set the BMS to the right profile or update its firmware.",
    ),
    "wrong_length": (
        "error",
        "Frames shorter than the protocol defines are dropped by "
        "inverters: the BMS speaks another variant of the profile.",
    ),
    "period_out_of_tolerance": (
        "warning",
        "Inverters time out on slow frames and may reject "
        "fast ones; check the BMS's send interval.",
    ),
    "period_too_fast": (
        "error",
        "The inverter ignores frames sent faster than its inhibit time: slow the sender down.",
    ),
    "frame_gap": (
        "warning",
        "The frame stopped for a while: look for a BMS reboot, a loose "
        "connector or bus errors at that time.",
    ),
    "soc_out_of_range": ("error", "SoC/SoH outside 0..100 %: wrong scaling or a wrong profile."),
    "cvl_zero": (
        "warning",
        "A charge voltage limit of 0 V: Victron treats it as over-voltage "
        "and discharges. Send a lower CVL or CCL = 0 instead.",
    ),
    "cvl_above_chemistry_max": (
        "error",
        "The charge voltage limit is above what the cells may "
        "reach (LFP 3.65 V per cell): fix the BMS settings or --cells.",
    ),
    "cell_min_above_max": (
        "error",
        "The lowest cell is reported above the highest: swapped fields or a wrong profile.",
    ),
    "dcl_negative": (
        "warning",
        "DCL is sent negative; most inverters take the magnitude, some need it positive.",
    ),
    "value_implausible": (
        "warning",
        "A value no battery of this size reports: wrong scaling, "
        "a wrong cell count, or a sensor fault.",
    ),
    "charge_enabled_zero_ccl": (
        "warning",
        "Charging is enabled but the charge limit has been "
        "0 A for a long time: inverters disagree on what that means.",
    ),
    "discharge_enabled_zero_dcl": (
        "warning",
        "Discharging is enabled but the discharge limit has been 0 A for a long time.",
    ),
    "no_inverter_keepalive": (
        "error",
        "The inverter is not answering: set it to a lithium/BMS "
        "battery type with this protocol, check the CAN pinout.",
    ),
    "unknown_ids": (
        "info",
        "Frames this profile does not define: another device on the bus, "
        "or a different profile (try bmslink detect).",
    ),
    "profile_not_accepted": (
        "error",
        "The named inverter does not accept this profile: set the BMS (or bmslink) to one it does.",
    ),
    "name_rejected": ("error", "This inverter only accepts certain battery names in 0x35E."),
    "dvl_ignored": (
        "info",
        "This inverter ignores the discharge voltage limit: protect "
        "against over-discharge with DCL = 0 and the discharge-enable flag.",
    ),
    "full_soc_stops_charging": (
        "info",
        "This inverter stops charging at 100 % SoC: the BMS "
        "should hold SoC at 99 % until the cells are balanced.",
    ),
    "extended_ids_ignored": ("warning", "This inverter ignores 29-bit frames."),
    "error_frames": (
        "warning",
        "Error frames: a bit-rate mismatch, missing 120 ohm termination, or a wiring fault.",
    ),
    "unparsable_lines": ("warning", "Lines of the capture that are not CAN frames were skipped."),
}

LFP_MAX_CELL_V = 3.65
LONG_ZERO_LIMIT_S = 60.0
PERIOD_TOLERANCE = 0.3  # +/- 30 % of the table period


@dataclass
class Finding:
    code: str
    message: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    severity: Severity = ""
    advice: str = ""

    def __post_init__(self) -> None:
        severity, advice = RULES[self.code]
        self.severity = self.severity or severity
        self.advice = self.advice or advice

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "evidence": self.evidence,
            "advice": self.advice,
        }


def _frame_evidence(spec_or_label: FrameSpec | str, time: float, data: bytes) -> dict[str, Any]:
    label = spec_or_label if isinstance(spec_or_label, str) else spec_or_label.label
    return {"id": label, "time": round(time, 6), "data": data.hex(" ").upper()}


@dataclass
class _Series:
    """Change points of one value over time, kept across batches (few: limits rarely move)."""

    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    last_time: float = float("nan")

    def add(self, times: np.ndarray, values: np.ndarray) -> None:
        keep = ~np.isnan(values)
        times, values = times[keep], values[keep]
        if not len(values):
            return
        previous = self.values[-1] if self.values else np.nan
        changes = np.flatnonzero(np.diff(np.concatenate([[previous], values])) != 0)
        self.times.extend(times[changes].tolist())
        self.values.extend(values[changes].tolist())
        self.last_time = float(times[-1])

    def value_at(self, t: float) -> float:
        i = int(np.searchsorted(self.times, t, side="right")) - 1
        return self.values[i] if i >= 0 else float("nan")


class Checker:
    """Feed batches, then :meth:`findings`; ``inverter`` is a registry entry or None."""

    def __init__(self, profile: Profile, inverter: Any = None, cells: int | None = None) -> None:
        self.profile = profile
        self.inverter = inverter
        self.cells = cells
        self._specs = [s for s in profile.frames_from("battery")]
        self._first: dict[str, Finding] = {}  # one finding per code and subject
        self._series: dict[str, _Series] = {}
        self._extreme_frames: dict[str, tuple[float, str, dict[str, Any]]] = {}

    def _once(self, key: str, finding: Finding) -> None:
        self._first.setdefault(key, finding)

    def add(self, batch: FrameBatch) -> None:
        keys = batch.ids.astype(np.int64) | (batch.extended.astype(np.int64) << 32)
        for spec in self._specs:
            mask = np.zeros(len(batch), dtype=bool)
            for can_id in spec.wire_ids:
                mask |= keys == (can_id | (int(spec.extended) << 32))
            if spec.mux is not None:
                mask &= batch.data[:, spec.mux[0]] == spec.mux[1]
            if not mask.any():
                continue
            rows = np.flatnonzero(mask)
            self._check_frames(spec, batch, rows)

    def _check_frames(self, spec: FrameSpec, batch: FrameBatch, rows: np.ndarray) -> None:
        times = batch.timestamps[rows]
        lengths = batch.lengths[rows]
        data = batch.data[rows]
        short = np.flatnonzero(lengths < spec.accepted_min)
        if len(short):
            row = rows[short[0]]
            self._once(
                f"wrong_length {spec.label}",
                Finding(
                    "wrong_length",
                    f"{spec.label} {spec.name}: {len(short)} frames of {lengths[short[0]]} bytes, "
                    f"the profile needs at least {spec.accepted_min}",
                    [_frame_evidence(spec, batch.timestamps[row], batch.payload(row))],
                ),
            )
        values = decode_columns(spec, data, lengths)
        for f in spec.fields:
            if isinstance(f, Num) and f.key == "charge_voltage_v" and not f.offset:
                # the raw count, not the decoded value: Victron's table reads a raw 0 as
                # "no CVL", yet a 0 on the wire is exactly what this rule is about
                zero = np.flatnonzero((raw_column(spec, f, data) == 0) & (lengths >= f.end))
                if len(zero):
                    row = rows[zero[0]]
                    self._once(
                        "cvl_zero cvl",
                        Finding(
                            "cvl_zero",
                            f"{spec.label}: CVL = 0 V in {len(zero)} frames",
                            [_frame_evidence(spec, batch.timestamps[row], batch.payload(row))],
                        ),
                    )
            if isinstance(f, Num) and (f.magnitude or f.non_negative) and f.signed:
                raw = raw_column(spec, f, data)
                negative = np.flatnonzero((raw < 0) & (lengths >= f.end))
                if len(negative):
                    row = rows[negative[0]]
                    code = "dcl_negative" if f.magnitude else "value_implausible"
                    self._once(
                        f"{code} {f.key}",
                        Finding(
                            code,
                            f"{spec.label}: {f.key} is sent negative in {len(negative)} frames",
                            [_frame_evidence(spec, batch.timestamps[row], batch.payload(row))],
                        ),
                    )

        def flag(code: str, key: str, bad: np.ndarray, message: str, shown: str = "") -> None:
            hits = np.flatnonzero(bad)
            if len(hits):
                row = rows[hits[0]]
                self._once(
                    f"{code} {key}",
                    Finding(
                        code,
                        message.format(n=len(hits), value=float(values[shown or key][hits[0]])),
                        [_frame_evidence(spec, batch.timestamps[row], batch.payload(row))],
                    ),
                )

        with np.errstate(invalid="ignore"):
            for key in ("soc_pct", "soh_pct"):
                if key in values:
                    flag(
                        "soc_out_of_range",
                        key,
                        (values[key] > 100) | (values[key] < 0),
                        f"{spec.label}: {key} = {{value:g}} % ({{n}} frames)",
                    )
            if "charge_voltage_v" in values:
                cvl = values["charge_voltage_v"]
                self._keep_extreme(spec, batch, rows, "cvl", cvl, highest=True)
                if "discharge_voltage_v" in values:
                    flag(
                        "value_implausible",
                        "dvl",
                        values["discharge_voltage_v"] >= cvl,
                        f"{spec.label}: DVL {{value:g}} V is not below CVL ({{n}} frames)",
                        "discharge_voltage_v",
                    )
            if "cell_min_v" in values and "cell_max_v" in values:
                flag(
                    "cell_min_above_max",
                    "cells",
                    values["cell_min_v"] > values["cell_max_v"],
                    f"{spec.label}: min cell {{value:g}} V above the max cell ({{n}} frames)",
                    "cell_min_v",
                )
            if "temperature_c" in values:
                t = values["temperature_c"]
                flag(
                    "value_implausible",
                    "temperature",
                    (t < -40) | (t > 90),
                    f"{spec.label}: temperature {{value:g}} degC ({{n}} frames)",
                    "temperature_c",
                )
            if "voltage_v" in values:
                self._keep_extreme(spec, batch, rows, "voltage_max", values["voltage_v"], True)
                self._keep_extreme(spec, batch, rows, "voltage_min", values["voltage_v"], False)
        for key in ("charge_current_a", "discharge_current_a", "charge_enable", "discharge_enable"):
            if key in values:
                self._series.setdefault(key, _Series()).add(times, values[key])
        if "soc_pct" in values:
            self._keep_extreme(spec, batch, rows, "soc_max", values["soc_pct"], True)

    def _keep_extreme(
        self,
        spec: FrameSpec,
        batch: FrameBatch,
        rows: np.ndarray,
        name: str,
        values: np.ndarray,
        highest: bool,
    ) -> None:
        """The highest (or lowest) value so far with its frame, for rules decided at the end."""
        if np.isnan(values).all():
            return
        index = int(np.nanargmax(values) if highest else np.nanargmin(values))
        value = float(values[index])
        old = self._extreme_frames.get(name)
        if old is None or (value > old[0] if highest else value < old[0]):
            row = rows[index]
            evidence = _frame_evidence(spec, batch.timestamps[row], batch.payload(row))
            self._extreme_frames[name] = (value, spec.label, evidence)

    def assumed_cells(self) -> int | None:
        """16S for a 48 V LFP pack (the common DIY build); None for HV, which needs --cells."""
        low = self._extreme_frames.get("voltage_min")
        high = self._extreme_frames.get("voltage_max")
        if self.profile.voltage_class == "lv" and low and high and low[0] >= 40 and high[0] <= 62:
            return 16
        return None

    # -- after the last batch ----------------------------------------------------------------------

    def findings(self, stats: CaptureStats, report: CaptureReport | None = None) -> list[Finding]:
        out = list(self._first.values())
        out += self._timing(stats)
        out += self._cell_count_rules()
        out += self._flags_vs_limits()
        out += self._inverter_quirks(stats)
        if report is not None:
            if report.error_frames:
                out.append(Finding("error_frames", f"{report.error_frames} error frames"))
            if report.bad_lines:
                out.append(
                    Finding(
                        "unparsable_lines",
                        f"{report.bad_lines} lines skipped; first: {report.errors[0]}",
                    )
                )
        order = {"error": 0, "warning": 1, "info": 2}
        return sorted(out, key=lambda f: (order[f.severity], f.code))

    def _timing(self, stats: CaptureStats) -> list[Finding]:
        profile = self.profile
        out: list[Finding] = []
        battery_seen = False
        for spec in self._specs:
            seen = [stats.ids.get((i, spec.extended)) for i in spec.wire_ids]
            present = [s for s in seen if s is not None]
            if not present:
                if spec.required and spec.emit:
                    out.append(Finding("frame_missing", f"{spec.label} {spec.name} never seen"))
                continue
            battery_seen = True
            s = max(present, key=lambda x: x.count)
            period = s.period
            interval = max(profile.min_frame_interval_s, self._quirk_value("min_frame_interval_s"))
            if interval and s.min_interval < interval * 0.9 and spec.mux is None:
                out.append(
                    Finding(
                        "period_too_fast",
                        f"{spec.label}: frames {s.min_interval * 1000:.0f} ms apart; "
                        f"{profile.name} needs at least {interval * 1000:.0f} ms",
                    )
                )
            if spec.period_s is None or period is None or spec.mux is not None:
                continue
            if abs(period - spec.period_s) > PERIOD_TOLERANCE * spec.period_s:
                out.append(
                    Finding(
                        "period_out_of_tolerance",
                        f"{spec.label} {spec.name}: every {period:.2f} s, "
                        f"the profile says {spec.period_s:g} s",
                        [{"id": spec.label, "time": round(s.first_ts, 6), "data": ""}],
                    )
                )
            limit = max(3 * spec.period_s, profile.lost_timeout_s)
            if s.max_gap > limit:
                out.append(
                    Finding(
                        "frame_gap",
                        f"{spec.label} {spec.name}: silent for {s.max_gap:.1f} s",
                        [{"id": spec.label, "time": round(s.max_gap_at, 6), "data": ""}],
                    )
                )
        if not battery_seen:
            return [Finding("battery_silent", f"no battery frame of {profile.name} in the capture")]
        outgoing = [s for s in profile.frames_from("inverter") if s.emit]
        if outgoing and not any((i, s.extended) in stats.ids for s in outgoing for i in s.wire_ids):
            names = " ".join(s.label for s in outgoing)
            out.append(Finding("no_inverter_keepalive", f"none of {names} from the inverter"))
        unknown = stats.unknown_labels(profile)
        if unknown:
            out.append(Finding("unknown_ids", f"{len(unknown)} ids: {' '.join(unknown[:10])}"))
        return out

    def _cell_count_rules(self) -> list[Finding]:
        cells = self.cells
        if not cells:
            return []
        out: list[Finding] = []
        cvl = self._extreme_frames.get("cvl")
        top = cells * LFP_MAX_CELL_V
        if cvl is not None and cvl[0] > top * 1.005:
            out.append(
                Finding(
                    "cvl_above_chemistry_max",
                    f"{cvl[1]}: CVL {cvl[0]:g} V is above {cells} x {LFP_MAX_CELL_V} V = {top:g} V",
                    [cvl[2]],
                )
            )
        for name, per_cell, text in (("voltage_min", 2.0, "below"), ("voltage_max", 3.8, "above")):
            extreme = self._extreme_frames.get(name)
            low = name == "voltage_min"
            if extreme is not None and (
                extreme[0] < per_cell * cells if low else extreme[0] > per_cell * cells
            ):
                out.append(
                    Finding(
                        "value_implausible",
                        f"{extreme[1]}: pack voltage {extreme[0]:g} V is {text} "
                        f"{per_cell} V per cell "
                        f"for {cells} cells",
                        [extreme[2]],
                    )
                )
        return out

    def _flags_vs_limits(self) -> list[Finding]:
        out: list[Finding] = []
        for flag_key, limit_key, code in (
            ("charge_enable", "charge_current_a", "charge_enabled_zero_ccl"),
            ("discharge_enable", "discharge_current_a", "discharge_enabled_zero_dcl"),
        ):
            flags, limits = self._series.get(flag_key), self._series.get(limit_key)
            if flags is None or limits is None:
                continue
            longest, since, at = 0.0, None, 0.0
            points = sorted(set(flags.times) | set(limits.times))
            end = max(flags.last_time, limits.last_time)
            for t in [*points, end]:
                zero_but_enabled = limits.value_at(t) == 0 and flags.value_at(t) == 1
                if since is not None and (not zero_but_enabled or t == end):
                    if t - since > longest:
                        longest, at = t - since, since
                    since = None if not zero_but_enabled else since
                if zero_but_enabled and since is None:
                    since = t
            if longest > LONG_ZERO_LIMIT_S:
                out.append(
                    Finding(
                        code,
                        f"{flag_key} set while {limit_key} = 0 for {longest:.0f} s",
                        [{"id": "", "time": round(at, 6), "data": ""}],
                    )
                )
        return out

    def _quirk_value(self, code: str) -> float:
        quirk = self.inverter.quirk(code) if self.inverter is not None else None
        if quirk is None or quirk.value is None:
            return 0.0
        try:
            return float(quirk.value)
        except (TypeError, ValueError):
            return 0.0

    def _inverter_quirks(self, stats: CaptureStats) -> list[Finding]:
        inverter = self.inverter
        if inverter is None:
            return []
        out: list[Finding] = []
        name = getattr(inverter, "name", "inverter")
        if self.profile.name not in inverter.profiles:
            accepted = ", ".join(inverter.profiles) or "none bmslink knows"
            out.append(
                Finding(
                    "profile_not_accepted",
                    f"{name} accepts {accepted}, not {self.profile.name}",
                )
            )
        prefix = inverter.quirk("name_prefix")
        if prefix is not None and prefix.value:
            maker = self._manufacturer(stats)
            if maker is not None and not maker.upper().startswith(str(prefix.value).upper()):
                out.append(
                    Finding(
                        "name_rejected",
                        f"{name} needs a name starting {prefix.value!r}; the battery sends "
                        f"{maker!r}",
                    )
                )
        if inverter.quirk("ignores_dvl") is not None:
            out.append(Finding("dvl_ignored", f"{name} ignores DVL"))
        zero = next((f for f in self._first.values() if f.code == "cvl_zero"), None)
        if zero is not None and inverter.quirk("cvl_zero_forbidden") is not None:
            zero.severity = "error"
        negative = next((f for f in self._first.values() if f.code == "dcl_negative"), None)
        if negative is not None and inverter.quirk("dcl_positive") is not None:
            negative.severity = "error"
        soc = self._extreme_frames.get("soc_max")
        if inverter.quirk("stops_charging_at_full_soc") is not None and soc and soc[0] >= 100:
            out.append(
                Finding("full_soc_stops_charging", f"{name}: SoC reached {soc[0]:g} %", [soc[2]])
            )
        if inverter.quirk("ignores_extended_ids") is not None:
            extended = sorted(s.label for s in stats.ids.values() if s.extended)
            if extended:
                out.append(Finding("extended_ids_ignored", f"{' '.join(extended[:6])}"))
        return out

    def _manufacturer(self, stats: CaptureStats) -> str | None:
        for spec in self._specs:
            s = stats.ids.get((spec.id, spec.extended))
            if s is None or not any(getattr(f, "key", "") == "manufacturer" for f in spec.fields):
                continue
            for payload in s.payloads:
                try:
                    decoded = self.profile.decode(spec.id, payload, spec.extended)
                except DecodeError:
                    continue
                maker = assemble([(decoded.spec, decoded.fields)]).get("manufacturer")
                if maker:
                    return str(maker)
        return None


def check_batches(
    profile: Profile,
    batches: Iterable[FrameBatch],
    *,
    inverter: Any = None,
    cells: int | None = None,
) -> tuple[CaptureStats, Checker]:
    stats = CaptureStats()
    checker = Checker(profile, inverter, cells)
    for batch in numbered(batches):
        stats.add(batch)
        checker.add(batch)
    if cells is None:  # the cell-count rules are decided after the pass, from extremes
        checker.cells = checker.assumed_cells()
    return stats, checker
