"""Properties every registered profile must have, derived from its table.

Round trip within resolution, fuzzed decoding that only ever raises DecodeError,
alarm tables that can send every alarm name, and translation: what one profile
decodes, another encodes with every shared field preserved.
"""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.errors import DecodeError, EncodeError
from bmslink.profiles import PROFILES
from bmslink.profiles.base import (
    AlarmBits,
    AlarmPairs,
    Bits,
    Cells,
    Coded,
    Flag,
    FrameSpec,
    Num,
    Profile,
    Text,
    Version,
    merge_fields,
)
from bmslink.roles.battery import guard
from bmslink.state import ALARM_NAMES, STATE_KEYS, BatteryState
from strategies import good_state, plausible_states, states_for

NAMES = sorted(PROFILES)


def _expected_alarms(afields: list[AlarmBits | AlarmPairs], names: list[str]) -> list[str]:
    decoded: set[str] = set()
    for a in afields:
        slots = a.bits if isinstance(a, AlarmBits) else a.pairs
        for name in names:
            where = a.write.get(name)
            if where is None:
                continue
            for slot in (where,) if isinstance(where, int) else where:
                decoded.add(slots[slot])
    return [n for n in ALARM_NAMES if n in decoded]


def _check_num(f: Num, want: float | str, got: float | str) -> None:
    if f.as_text:
        assert got == want, f.key
        return
    step = abs(f.scale)
    if f.rounding == "down":  # limits never leave above what was allowed
        assert want - step - 1e-9 < got <= want + 1e-9, f.key
    elif f.rounding == "up":
        assert want - 1e-9 <= got < want + step + 1e-9, f.key
    else:
        assert abs(got - want) <= step / 2 + 1e-9, f.key


def check_round_trip(profile: Profile, spec: FrameSpec, state: BatteryState, data: bytes) -> None:
    got = profile.decode(spec.id, data, spec.extended).fields
    for f in spec.fields:
        if isinstance(f, Num) and f.key in STATE_KEYS and f.derive is None:
            _check_num(f, getattr(state, f.key), got[f.key])
        elif isinstance(f, Flag) and f.write:
            assert got[f.into or f.key] == getattr(state, f.into or f.key), f.key
        elif isinstance(f, Coded) and f.key in STATE_KEYS:
            assert got[f.key] == getattr(state, f.key), f.key
        elif isinstance(f, AlarmBits | AlarmPairs):
            same = [
                a
                for a in spec.fields
                if isinstance(a, AlarmBits | AlarmPairs) and a.target == f.target
            ]
            assert got[f.target] == _expected_alarms(same, getattr(state, f.target))
        elif isinstance(f, Text) and (f.key in STATE_KEYS or f.source):
            text = getattr(state, f.source or f.key)
            want = text[f.part * f.size : (f.part + 1) * f.size].rstrip(" ")
            assert got.get(f.decoded_key, "") == want, f.decoded_key
        elif isinstance(f, Cells):
            want_cells = state.cells_v[f.part * f.count : (f.part + 1) * f.count]
            assert got[f.decoded_key] == pytest.approx(want_cells, abs=f.scale / 2 + 1e-9)
        elif isinstance(f, Version) and f.key in STATE_KEYS:
            assert got[f.key] == getattr(state, f.key)
        elif isinstance(f, Bits) and f.key in STATE_KEYS:  # Growatt's 7-bit SOH
            assert got[f.key] == round(getattr(state, f.key)), f.key


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_within_resolution(name):
    profile = PROFILES[name]

    @given(states_for(profile))
    def check(state: BatteryState) -> None:
        decoded = []
        for spec, data in profile.encode(state):
            assert len(data) == spec.length
            check_round_trip(profile, spec, state, data)
            decoded.append(profile.decode(spec.id, data, spec.extended))
        merged = merge_fields(BatteryState(), decoded)
        for key in ("serial", "product", "manufacturer", "cells_v"):
            texts = [
                f
                for spec, _ in profile.encode(state)
                for f in spec.fields
                if isinstance(f, Text | Cells) and f.key == key
            ]
            if texts and getattr(state, key) is not None:
                if key == "cells_v":
                    assert merged.cells_v == pytest.approx(state.cells_v, abs=0.0005)
                else:
                    assert getattr(merged, key) == getattr(state, key)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_inverter_frames_round_trip(name):
    profile = PROFILES[name]
    specs = [s for s in profile.frames_from("inverter") if s.emit]

    @given(states_for(profile, "inverter"))
    def check(state: BatteryState) -> None:
        for spec in specs:
            data = profile.encode_frame(spec, state)
            assert len(data) == spec.length
            check_round_trip(profile, spec, state, data)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_decoding_random_bytes_raises_only_decode_error(name):
    profile = PROFILES[name]
    known = [(i, s.extended) for s in profile.frames for i in (s.id, *s.alt_ids)]

    @given(
        st.one_of(
            st.tuples(st.integers(0, 0x7FF), st.just(False)),
            st.tuples(st.integers(0, 0x1FFFFFFF), st.just(True)),
            st.sampled_from(known),
        ),
        st.binary(min_size=0, max_size=12),
    )
    def check(ident: tuple[int, bool], data: bytes) -> None:
        try:
            decoded = profile.decode(ident[0], data, ident[1])
        except DecodeError:
            return
        assert ident[0] in (decoded.spec.id, *decoded.spec.alt_ids)
        assert len(data) <= 8
        # whatever decodes must be a valid BatteryState fragment
        merge_fields(BatteryState(), [decoded])

    check()


@pytest.mark.parametrize("name", NAMES)
def test_every_alarm_name_has_a_place_to_go(name):
    """No alarm is dropped on the way out: each frame's alarm bytes can say every name."""
    profile = PROFILES[name]
    for spec in profile.frames_from("battery"):
        for target in ("alarms", "warnings"):
            writers = [
                f
                for f in spec.fields
                if isinstance(f, AlarmBits | AlarmPairs) and f.target == target
            ]
            if writers:
                covered = set().union(*(f.write for f in writers))
                assert covered >= set(ALARM_NAMES), (spec.label, target)


@pytest.mark.parametrize("name", NAMES)
def test_alt_ids_decode_like_their_frame(name):
    profile = PROFILES[name]
    for spec in profile.frames:
        for alt in spec.alt_ids:
            data = bytes(range(spec.length))
            try:
                want = profile.decode(spec.id, data, spec.extended).fields
            except DecodeError:
                continue
            assert profile.decode(alt, data, spec.extended).fields == want


@pytest.mark.parametrize("name", NAMES)
def test_profile_metadata_is_consistent(name):
    profile = PROFILES[name]
    assert profile.bitrate in profile.bitrates
    battery = [s for s in profile.frames_from("battery") if s.emit]
    assert battery, "a profile without battery frames"
    for spec in battery:
        assert spec.period_s is not None or any(spec.id in r.frames for r in profile.responses), (
            f"{spec.label} is never sent: no period and no request asks for it"
        )
    if profile.alias_of:
        assert PROFILES[profile.alias_of].frames == profile.frames


# -- translation between profiles ------------------------------------------------------------------

MISSING = re.compile(r": (\w+) is missing$")
OUTSIDE = re.compile(r": \w+=\S+ outside ")


def translate(
    source: Profile, target: Profile, state: BatteryState
) -> tuple[BatteryState, BatteryState, BatteryState]:
    """Decode ``source`` traffic, then re-encode it as ``target`` the way the battery role does."""
    try:
        sent_by_source = source.encode_round(state).frames
    except EncodeError as exc:  # the generated state must suit the source: a test bug
        raise AssertionError(f"{source.name} cannot send a plausible state: {exc}") from exc
    heard = merge_fields(
        BatteryState(), [source.decode(s.id, d, s.extended) for s, d in sent_by_source]
    )
    outgoing, _ = guard(heard.merged(dict(target.identity)), target, None, source.required_keys)
    encoded = target.encode_round(outgoing)
    got = merge_fields(
        BatteryState(), [target.decode(s.id, d, s.extended) for s, d in encoded.frames]
    )
    # an optional frame the source had too little for is left out, with its values
    for spec, _why in encoded.skipped:
        for f in spec.fields:
            key = getattr(f, "into", None) or getattr(f, "key", None)
            if key in STATE_KEYS and key not in _sent_keys(encoded.frames):
                outgoing = outgoing.merged({key: None})
    return heard, outgoing, got


def _sent_keys(frames: list[tuple[FrameSpec, bytes]]) -> set[str]:
    return {
        key
        for spec, _ in frames
        for f in spec.fields
        if (key := getattr(f, "into", None) or getattr(f, "key", None))
    }


def _step(profile: Profile, key: str) -> float:
    steps = [
        abs(f.scale)
        for s in profile.frames_from("battery")
        for f in s.fields
        if isinstance(f, Num) and f.key == key
    ]
    return min(steps) if steps else 0.0


LV_SENDERS = ("pylontech", "givenergy", "sma", "solark-lv")
#: Pairs where the target requires a value the source's protocol never carries, so every
#: translation is refused (naming that value) or, across voltage classes, out of range.
REFUSES: dict[tuple[str, str], set[str]] = {
    **{(s, "growatt-lv"): {"cell_temp_max_c"} for s in LV_SENDERS},
    **{(s, "pylontech-hv"): {"cell_max_v"} for s in LV_SENDERS},
    **{(s, "byd-hvs"): {"remaining_ah"} for s in (*LV_SENDERS, "victron", "pylontech-hv")},
    **{("growatt-lv", t): {"discharge_voltage_v"} for t in ("pylontech", "givenergy", "solark-lv")},
    ("growatt-lv", "byd-hvs"): {"discharge_voltage_v"},
    ("growatt-lv", "pylontech-hv"): {"temperature_c"},
    **{
        (s, t): {"alarms", "range"}
        for s in ("pylontech-hv", "byd-hvs")
        for t in ("pylontech", "givenergy", "solark-lv")
    },
    ("byd-hvs", "growatt-lv"): {"cell_max_v", "range"},
    ("byd-hvs", "pylontech-hv"): {"cell_max_v"},
}


@pytest.mark.parametrize("source", NAMES)
@pytest.mark.parametrize("target", NAMES)
def test_translation_preserves_every_shared_field(source, target):
    src, dst = PROFILES[source], PROFILES[target]
    shared = (src.battery_keys & dst.battery_keys) - set(dst.identity)
    refusal = REFUSES.get((source, target))
    compared, refused = 0, set()

    @settings(max_examples=5 if refusal else 40)
    @given(plausible_states(src.voltage_class))
    def check(state: BatteryState) -> None:
        nonlocal compared
        try:
            _, outgoing, got = translate(src, dst, state)
        except EncodeError as exc:
            if src.voltage_class != dst.voltage_class and OUTSIDE.search(str(exc)):
                refused.add("range")  # a 48 V battery cannot pose as a 400 V one, nor back
                return
            missing = MISSING.search(str(exc))
            assert missing, str(exc)
            # refusing is right only for a value the source never carried
            assert missing.group(1) not in src.battery_keys, str(exc)
            refused.add(missing.group(1))
            return
        compared += 1
        for key in shared:
            want, have = getattr(outgoing, key), getattr(got, key)
            if want is None:
                continue
            if key in ("alarms", "warnings"):
                assert bool(have) == bool(want), (key, want, have)
            elif isinstance(want, float):
                tolerance = _step(src, key) + _step(dst, key) + 1e-9
                assert have == pytest.approx(want, abs=tolerance), key
            elif isinstance(want, list):
                assert have == pytest.approx(want, abs=0.001), key
            elif key in ("firmware", "hardware") and have is None:
                continue  # a version the target cannot write ("1.a" as digits) goes as unknown
            elif isinstance(want, str) and key not in ("cell_min_id", "cell_max_id"):
                assert have is not None and want.startswith(have), (key, want, have)
            else:
                assert have == want, key

    check()
    if refusal:
        assert compared == 0 and refused <= refusal, (compared, refused)
    else:
        assert compared > 0, f"every translation was refused: {sorted(refused)}"


LV_FAMILY = ["pylontech", "givenergy", "solark-lv", "victron", "sma"]


@pytest.mark.parametrize("source", LV_FAMILY)
@pytest.mark.parametrize("target", LV_FAMILY)
def test_lv_family_translates_without_refusing(source, target):
    """Pylontech-style frames from a real battery reach any LV inverter profile."""
    state = good_state(modules=2, manufacturer="PYLON", alarms=["high_temperature"])
    _, _, got = translate(PROFILES[source], PROFILES[target], state)
    for key in ("voltage_v", "current_a", "soc_pct", "charge_voltage_v", "charge_current_a"):
        assert getattr(got, key) == pytest.approx(getattr(state, key), abs=0.1), key
    assert got.alarms, "the alarm was lost in translation"
