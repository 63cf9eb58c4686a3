"""The DBC export decodes the same values as bmslink, checked with cantools itself."""

import cantools
import pytest
from hypothesis import given

from bmslink.dbc import dbc_text, signal_name
from bmslink.profiles import PROFILES
from bmslink.profiles.base import (
    AlarmBits,
    AlarmPairs,
    Bits,
    Cells,
    Coded,
    Const,
    Flag,
    Num,
    Text,
    Version,
)
from strategies import states_for

PARTS = ("major", "minor")


def _database(name):
    return cantools.database.load_string(dbc_text(PROFILES[name]), "dbc")


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_cantools_loads_every_frame(name):
    profile = PROFILES[name]
    db = _database(name)
    wire_ids = {(i, s.extended) for s in profile.frames for i in s.wire_ids}
    assert sorted((m.frame_id, m.is_extended_frame) for m in db.messages) == sorted(wire_ids)
    for spec in profile.frames:
        for can_id in spec.wire_ids:
            message = db.get_message_by_frame_id(can_id)
            assert message.length >= spec.length
            assert message.is_extended_frame == spec.extended
            assert message.senders == ["BMS" if spec.sender == "battery" else "INVERTER"]
            if spec.mux is not None:
                assert any(s.is_multiplexer for s in message.signals)
    for message in db.messages:
        names = [s.name for s in message.signals]
        assert len(names) == len(set(names)), f"{message.name}: a signal name repeats"


def _candidates(theirs, base):
    """A repeated key is exported as ``key``, ``key_2``...: any of them may carry the value."""
    return [v for k, v in theirs.items() if k == base or k.removeprefix(base + "_").isdigit()]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_cantools_decodes_what_bmslink_decodes(name):
    profile = PROFILES[name]
    db = _database(name)
    checked: set[str] = set()

    @given(states_for(profile))
    def check(state):
        for spec, data in profile.encode(state):
            ours = profile.decode(spec.id, data, spec.extended).fields
            for can_id in spec.wire_ids:  # alternates (Pylon HV send group 1) decode alike
                theirs = db.decode_message(can_id, data, decode_choices=False)
                for f in spec.fields:
                    if isinstance(f, Num) and f.as_text:
                        raw = theirs[signal_name(f.key)]
                        assert ours.get(f.key) == (str(int(raw)) if raw else None)
                    elif isinstance(f, Num) and ours.get(f.key) is None:
                        assert f.invalid is not None, f"{spec.label} {f.key} did not decode"
                        raw = theirs[signal_name(f.key)]  # the "not sent" marker, scaled
                        assert raw == pytest.approx(f.invalid_raw * f.scale + f.offset)
                    elif isinstance(f, Num):
                        values = _candidates(theirs, signal_name(f.key))
                        want = ours[f.key]
                        assert any(v == pytest.approx(want, rel=1e-12, abs=1e-9) for v in values), (
                            spec.label,
                            f.key,
                            want,
                            values,
                        )
                    elif isinstance(f, Flag):
                        assert bool(theirs[signal_name(f.key)]) == ours[f.key]
                    elif isinstance(f, AlarmBits | AlarmPairs):
                        prefix = "protection_" if f.target == "alarms" else "warning_"
                        names = {  # a set bit, or a pair reading 1 = active
                            sig.removeprefix(prefix).split("_alt")[0]
                            for sig, value in theirs.items()
                            if sig.startswith(prefix) and value == 1
                        }
                        assert names == set(ours[f.target] or ())
                    elif isinstance(f, Text | Const):
                        key = f.decoded_key if isinstance(f, Text) else f.key
                        size = f.size if isinstance(f, Text) else len(f.value)
                        raw = bytes(theirs[signal_name(key, f"char{i}")] for i in range(size))
                        assert raw.decode("latin-1").rstrip("\x00 ") == ours[key]
                    elif isinstance(f, Bits):
                        assert int(theirs[signal_name(f.key)]) == ours[f.key]
                    elif isinstance(f, Coded):
                        raw = int(theirs[signal_name(f.key)])
                        assert f.values.get(raw, f.otherwise) == ours[f.key]
                    elif isinstance(f, Version):
                        major, minor = (int(theirs[signal_name(f.key, p)]) for p in PARTS)
                        text = f"{major:x}.{minor:x}" if f.base == 16 else f"{major}.{minor}"
                        assert ours.get(f.key) == (text if major or minor else None)
                    elif isinstance(f, Cells):
                        first = f.part * f.count + 1
                        volts = [theirs[f"cell{first + i}_v"] for i in range(f.count)]
                        while volts and volts[-1] == 0:  # trailing zeros: cells the pack lacks
                            volts.pop()
                        assert ours[f.decoded_key] == pytest.approx(volts)
                    else:
                        raise AssertionError(f"{type(f).__name__} is not compared")
                    checked.add(type(f).__name__)

    check()
    carried = {type(f).__name__ for s in profile.frames_from("battery") if s.emit for f in s.fields}
    assert checked == carried, carried - checked
