"""The DBC export decodes the same values as bmslink, checked with cantools itself."""

import cantools
import pytest
from hypothesis import given

from bmslink.dbc import dbc_text, signal_name
from bmslink.profiles import PROFILES
from bmslink.profiles.base import AlarmBits, Const, Flag, Num, Text
from strategies import states_for


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_cantools_loads_every_frame(name):
    profile = PROFILES[name]
    db = cantools.database.load_string(dbc_text(profile), "dbc")
    assert sorted(m.frame_id for m in db.messages) == sorted(s.id for s in profile.frames)
    for spec in profile.frames:
        message = db.get_message_by_frame_id(spec.id)
        assert message.length == spec.length
        assert message.is_extended_frame == spec.extended
        assert message.senders == ["BMS" if spec.sender == "battery" else "INVERTER"]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_cantools_decodes_what_bmslink_decodes(name):
    profile = PROFILES[name]
    db = cantools.database.load_string(dbc_text(profile), "dbc")

    @given(states_for(profile))
    def check(state):
        for spec, data in profile.encode(state):
            ours = profile.decode(spec.id, data, spec.extended).fields
            theirs = db.decode_message(spec.id, data, decode_choices=False)
            for f in spec.fields:
                if isinstance(f, Num):
                    assert theirs[signal_name(f.key)] == pytest.approx(ours[f.key], abs=1e-9)
                elif isinstance(f, Flag):
                    assert bool(theirs[signal_name(f.key)]) == ours[f.key]
                elif isinstance(f, AlarmBits):
                    prefix = "protection_" if f.target == "alarms" else "warning_"
                    set_bits = {
                        sig.removeprefix(prefix).removesuffix("_alt2")
                        for sig, value in theirs.items()
                        if sig.startswith(prefix) and value
                    }
                    assert set_bits == set(ours[f.target])
                elif isinstance(f, Text | Const):
                    size = f.size if isinstance(f, Text) else len(f.value)
                    chars = bytes(theirs[signal_name(f.key, f"char{i}")] for i in range(size))
                    assert chars.decode("latin-1").rstrip("\x00 ") == ours[f.key]

    check()
