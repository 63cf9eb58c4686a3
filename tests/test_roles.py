"""Battery and inverter roles on python-can's virtual bus, driven by a manual clock."""

import asyncio
import itertools

import can
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.clock import ManualClock
from bmslink.errors import EncodeError
from bmslink.limits import HardwareLimits
from bmslink.profiles import PROFILES, get_profile
from bmslink.roles import BatteryRole, InverterRole, safety_escalation
from bmslink.roles.battery import guard
from bmslink.state import ALARM_NAMES
from strategies import good_state

PYLON = get_profile("pylontech")
_channels = itertools.count()


@pytest.fixture
def link():
    channel = f"test-roles-{next(_channels)}"
    buses = [
        can.Bus(interface="virtual", channel=channel, preserve_timestamps=True) for _ in range(3)
    ]
    clock = ManualClock()
    battery = BatteryRole(buses[0], PYLON, clock)
    inverter = InverterRole(buses[1], PYLON, clock)
    yield clock, battery, inverter, buses[2]
    for bus in buses:
        bus.shutdown()


def sniffed(bus: can.BusABC) -> list[can.Message]:
    out = []
    while (msg := bus.recv(timeout=0)) is not None:
        out.append(msg)
    return out


def test_broadcasts_full_set_once_per_period(link):
    clock, battery, _inverter, sniffer = link
    battery.update(good_state())
    assert battery.poll() == 6
    clock.advance(0.5)
    assert battery.poll() == 0
    clock.advance(0.5)
    assert battery.poll() == 6
    ids = [m.arbitration_id for m in sniffed(sniffer)]
    assert ids == [0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E] * 2


def test_inverter_reads_state_back(link):
    _clock, battery, inverter, _ = link
    sent = good_state()
    battery.update(sent)
    battery.poll()
    inverter.poll()
    seen = inverter.state()
    assert seen is not None
    assert seen.soc_pct == 64.0 and seen.voltage_v == 53.1 and seen.current_a == -12.3
    assert seen.charge_current_a == 100.0 and seen.discharge_current_a == 120.0
    assert seen.manufacturer == "PYLON"  # the profile's identity, which Deye insists on
    assert seen.cells_v is None  # Pylontech CAN does not carry cells: absent, not invented


def test_keepalive_makes_inverter_online_and_silence_offline(link):
    clock, battery, inverter, sniffer = link
    battery.update(good_state())
    assert battery.inverter_online is False
    for _ in range(3):
        inverter.poll()
        battery.poll()
        clock.advance(1.0)
    assert battery.inverter_online is True
    assert battery.keepalives == 3
    assert [m.arbitration_id for m in sniffed(sniffer) if m.arbitration_id == 0x305] == [0x305] * 3
    clock.advance(10.0)
    battery.poll()
    assert battery.inverter_online is False
    kinds = [e.kind for e in battery.events if e.kind.startswith("inverter")]
    assert kinds == ["inverter_online", "inverter_offline"]


def test_battery_lost_after_configured_silence(link):
    clock, battery, inverter, _ = link
    inverter.lost_timeout_s = 5.0
    battery.update(good_state())
    battery.poll()
    inverter.poll()
    assert inverter.battery_online
    clock.advance(5.0)
    assert inverter.state() is not None
    clock.advance(0.01)
    assert inverter.state() is None
    assert not inverter.battery_online
    assert [e.kind for e in inverter.events] == ["battery_online", "battery_lost"]


def test_default_battery_lost_timeout_is_ten_seconds(link):
    _, _, inverter, _ = link
    assert inverter.lost_timeout_s == 10.0


def test_a_frame_that_stops_takes_its_values_with_it(link):
    clock, battery, inverter, _ = link
    battery.update(good_state())
    battery.poll()
    inverter.poll()
    # from now on only measurements arrive: limits must expire, not stay frozen
    other = can.Bus(interface="virtual", channel=battery.bus.channel_id)
    try:
        for _ in range(11):
            clock.advance(1.0)
            data = bytes.fromhex("BE14F9FF8C00")
            other.send(can.Message(arbitration_id=0x356, data=data, is_extended_id=False))
            inverter.poll()
    finally:
        other.shutdown()
    seen = inverter.state()
    assert seen is not None and seen.voltage_v == 53.10
    assert seen.charge_current_a is None and seen.charge_enable is None


def test_alarm_goes_out_at_once_not_at_next_period(link):
    clock, battery, _, sniffer = link
    battery.update(good_state())
    battery.poll()
    sniffed(sniffer)
    clock.advance(0.3)
    battery.update(good_state(alarms=["high_voltage"], charge_enable=False))
    frames = sniffed(sniffer)
    assert len(frames) == 6 and all(m.timestamp == 0.3 for m in frames)
    assert PYLON.decode(0x359, frames[3].data).fields["alarms"] == ["high_voltage"]
    assert battery.immediate_rounds == 1
    assert battery.events[-1].kind == "immediate_round"


@pytest.mark.parametrize(
    ("change", "immediate"),
    [
        (dict(soc_pct=63.0), False),
        (dict(charge_current_a=95.0), False),  # a 5 % cut waits for the next round
        (dict(charge_current_a=89.0), True),  # more than 10 %
        (dict(discharge_current_a=0.0), True),
        (dict(charge_voltage_v=49.0), True),
        (dict(discharge_enable=False), True),
        (dict(warnings=["low_voltage"]), False),
        (dict(alarms=["low_temperature_charge"]), True),
        (dict(discharge_voltage_v=52.0), True),
        (dict(charge_current_a=120.0), False),  # raising a limit is not urgent
    ],
)
def test_which_changes_are_urgent(link, change, immediate):
    clock, battery, _, sniffer = link
    battery.update(good_state())
    battery.poll()
    sniffed(sniffer)
    clock.advance(0.4)
    battery.update(good_state(**change))
    assert (len(sniffed(sniffer)) == 6) is immediate


def test_immediate_rounds_are_rate_limited(link):
    clock, battery, _, sniffer = link
    battery.min_gap_s = 0.2
    battery.update(good_state())
    battery.poll()
    sniffed(sniffer)
    clock.advance(0.1)
    battery.update(good_state(alarms=["high_voltage"]))
    assert sniffed(sniffer) == []  # too soon after the last round
    clock.advance(0.1)
    battery.poll()
    assert len(sniffed(sniffer)) == 6


def test_a_held_escalation_sends_the_state_that_raised_it(link):
    """The alarm raised inside min_gap_s goes out even when a calmer state arrived meanwhile;
    the calmer one follows on the normal cadence, and the event tells what was sent."""
    clock, battery, _, sniffer = link
    battery.min_gap_s = 0.2
    battery.update(good_state())
    battery.poll()
    sniffed(sniffer)
    clock.advance(0.05)
    battery.update(good_state(alarms=["high_voltage"], charge_enable=False))
    clock.advance(0.05)
    battery.update(good_state(soc_pct=64.0))  # calmer again before the gap has passed
    clock.advance(0.05)
    assert battery.poll() == 0, "nothing goes out before the held round"
    assert sniffed(sniffer) == []
    clock.advance(0.05)
    assert battery.poll() == 6
    held = {m.arbitration_id: m for m in sniffed(sniffer)}
    assert PYLON.decode(0x359, held[0x359].data).fields["alarms"] == ["high_voltage"]
    assert PYLON.decode(0x35C, held[0x35C].data).fields["charge_enable"] is False
    assert battery.events[-1].kind == "immediate_round"
    assert battery.events[-1].detail == "alarm raised: high_voltage"
    clock.advance(1.0)
    assert battery.poll() == 6
    later = {m.arbitration_id: m for m in sniffed(sniffer)}
    assert PYLON.decode(0x359, later[0x359].data).fields["alarms"] == []
    assert PYLON.decode(0x355, later[0x355].data).fields["soc_pct"] == 64.0


def test_unencodable_state_halts_broadcast_instead_of_sending_stale_frames(link):
    clock, battery, _, sniffer = link
    battery.update(good_state())
    battery.poll()
    sniffed(sniffer)
    clock.advance(1.0)
    battery.update(good_state(charge_current_a=None))
    assert battery.poll() == 0
    clock.advance(1.0)
    assert battery.poll() == 0
    assert sniffed(sniffer) == []
    assert battery.halted_reason == "0x351 limits: charge_current_a is missing"
    battery.update(good_state())
    clock.advance(1.0)
    assert battery.poll() == 6
    assert [e.kind for e in battery.events][-2:] == ["broadcast_halted", "broadcast_resumed"]


def test_a_victron_source_reaches_a_pylontech_inverter_only_when_declared(link):
    """Victron has no enable flags; the battery role fills them only if told the source."""
    clock, battery, inverter, _ = link
    from_victron = good_state(charge_enable=None, discharge_enable=None, charge_current_a=0.0)
    battery.update(from_victron)
    assert battery.poll() == 0 and "charge_enable is missing" in battery.halted_reason
    battery.source_keys = PROFILES["victron"].required_keys
    battery.update(from_victron)
    clock.advance(1.0)
    assert battery.poll() == 6
    inverter.poll()
    seen = inverter.state()
    assert seen.charge_enable is False and seen.discharge_enable is True  # CCL 0 stops charging


def test_identity_can_be_turned_off(link):
    _clock, battery, inverter, _ = link
    battery.identity = {}
    battery.update(good_state(manufacturer="JK-BMS"))
    battery.poll()
    inverter.poll()
    assert inverter.state().manufacturer == "JK-BMS"


def test_async_runner_with_injected_sleep(link):
    clock, battery, inverter, _sniffer = link
    battery.update(good_state())
    stop = asyncio.Event()
    ticks = 0

    async def fake_sleep(seconds: float) -> None:
        nonlocal ticks
        clock.advance(seconds)
        inverter.poll()
        ticks += 1
        if clock.now() >= 5.0 - 1e-9:
            stop.set()

    asyncio.run(battery.run(stop, tick_s=0.25, sleep=fake_sleep))
    assert ticks == 20
    assert battery.rounds == 5  # t = 0, 1, 2, 3, 4
    assert battery.inverter_online


# -- safety_escalation as a property ----------------------------------------------------------

limits = st.floats(0, 500, allow_nan=False)


@given(
    old_ccl=limits,
    new_ccl=limits,
    old_alarms=st.lists(st.sampled_from(ALARM_NAMES), unique=True),
    new_alarms=st.lists(st.sampled_from(ALARM_NAMES), unique=True),
    old_enable=st.booleans(),
    new_enable=st.booleans(),
)
def test_escalation_property(old_ccl, new_ccl, old_alarms, new_alarms, old_enable, new_enable):
    old = good_state(charge_current_a=old_ccl, alarms=old_alarms, charge_enable=old_enable)
    new = good_state(charge_current_a=new_ccl, alarms=new_alarms, charge_enable=new_enable)
    urgent = safety_escalation(old, new) is not None
    if set(new_alarms) - set(old_alarms) or (old_enable and not new_enable):
        assert urgent
    if new_ccl < old_ccl * 0.9 or (new_ccl == 0 < old_ccl):
        assert urgent
    if not (set(new_alarms) - set(old_alarms)) and new_ccl >= old_ccl and new_enable >= old_enable:
        assert not urgent
    assert safety_escalation(old, old) is None


# -- stale state and hardware limits ------------------------------------------------------------


def test_stale_state_halts_the_broadcast(link):
    clock, battery, _, sniffer = link
    battery.update(good_state())
    for _ in range(10):
        battery.poll()
        clock.advance(1.0)
    assert battery.poll() == 6  # t = 10 s: the state is exactly 10 s old
    clock.advance(0.5)
    assert battery.poll() == 0  # over 10 s without an update: silence, not old values
    assert battery.halted_reason == "state stale: no update for 10.5 s"
    sniffed(sniffer)
    clock.advance(5.0)
    assert battery.poll() == 0 and sniffed(sniffer) == []
    battery.update(good_state())
    assert battery.poll() == 6
    assert [e.kind for e in battery.events][-2:] == ["broadcast_halted", "broadcast_resumed"]


HARDWARE = HardwareLimits.for_cells(16, max_charge_current_a=100.0, max_discharge_current_a=120.0)
# maxima off the 0.1 A / 0.1 V grid: rounding must not push a limit over them
ODD_HARDWARE = HardwareLimits(
    max_charge_current_a=99.96,
    max_discharge_current_a=119.93,
    max_charge_voltage_v=56.77,
    min_discharge_voltage_v=44.83,
)


@given(
    ccl=st.floats(0, 3276.7),
    dcl=st.floats(0, 3276.7),
    cvl=st.floats(0.1, 6553.5),
    dvl=st.floats(0, 6553.5),
)
def test_outgoing_limits_never_exceed_the_hardware(ccl, dcl, cvl, dvl):
    channel = f"test-roles-{next(_channels)}"
    tx = can.Bus(interface="virtual", channel=channel)
    rx = can.Bus(interface="virtual", channel=channel)
    try:
        role = BatteryRole(tx, PYLON, ManualClock(), hardware=ODD_HARDWARE)
        role.update(
            good_state(
                charge_current_a=ccl,
                discharge_current_a=dcl,
                charge_voltage_v=cvl,
                discharge_voltage_v=dvl,
            )
        )
        role.poll()
        limits = next(m for m in sniffed(rx) if m.arbitration_id == 0x351)
        sent = PYLON.decode(0x351, limits.data).fields
        hw = ODD_HARDWARE
        assert sent["charge_current_a"] <= min(ccl, hw.max_charge_current_a) + 1e-9
        assert sent["discharge_current_a"] <= min(dcl, hw.max_discharge_current_a) + 1e-9
        assert sent["charge_voltage_v"] <= min(cvl, hw.max_charge_voltage_v) + 1e-9
        assert sent["discharge_voltage_v"] >= max(dvl, hw.min_discharge_voltage_v) - 1e-9
        # and only by the wire's resolution: nothing is cut more than one 0.1 A step
        assert sent["charge_current_a"] > min(ccl, hw.max_charge_current_a) - 0.1 - 1e-9
    finally:
        tx.shutdown()
        rx.shutdown()


def test_cvl_zero_is_never_sent(link):
    _, battery, _, sniffer = link
    battery.hardware = HARDWARE
    battery.update(good_state(charge_voltage_v=0.0))
    assert battery.poll() == 0 and sniffed(sniffer) == []
    assert battery.halted_reason == "charge_voltage_v 0 V is never sent"


def test_hardware_limits_validate_their_own_configuration():
    with pytest.raises(ValueError, match="max_charge_current_a must be positive"):
        HardwareLimits(0.0, 10.0, 55.0, 44.0)
    with pytest.raises(ValueError, match="must be below max_charge_voltage_v"):
        HardwareLimits(10.0, 10.0, 44.0, 48.0)
    assert HARDWARE.max_charge_voltage_v == 56.8 and HARDWARE.min_discharge_voltage_v == 44.8


def test_inverter_state_lists_are_the_callers_own(link):
    _, battery, inverter, _ = link
    battery.update(good_state(alarms=["high_voltage"]))
    battery.poll()
    inverter.poll()
    first = inverter.state()
    first.alarms.append("general")
    assert inverter.state().alarms == ["high_voltage"]


def test_counts_survive_a_bounded_event_history(link):
    """Summaries count halts and losses; they must not depend on the capped event log."""
    clock, battery, inverter, _ = link
    battery.events = type(battery.events)(maxlen=2)
    inverter.events = type(inverter.events)(maxlen=2)
    for _ in range(5):
        battery.update(good_state(charge_current_a=None))  # halt
        battery.update(good_state())  # resume
        battery.poll()
        inverter.poll()
        clock.advance(11.0)
        inverter.poll()  # battery lost
    assert battery.halts == 5 and inverter.battery_lost_count == 5
    assert battery.last_halt_reason == "0x351 limits: charge_current_a is missing"
    assert battery.halted_reason is None


LIMIT_OR_NONE = st.one_of(st.none(), st.integers(0, 2000).map(lambda v: v / 10))
FLAG_OR_NONE = st.one_of(st.none(), st.booleans())


@given(
    LIMIT_OR_NONE,
    LIMIT_OR_NONE,
    FLAG_OR_NONE,
    FLAG_OR_NONE,
    st.sampled_from(list(PROFILES)),
    st.sampled_from(list(PROFILES)),
)
def test_filled_enable_flags_never_allow_what_the_limits_forbid(
    ccl, dcl, charge, discharge, source, target
):
    """A source protocol without enable flags (Victron, SMA) gets them from its limits only."""
    source_keys = PROFILES[source].required_keys
    state = good_state().merged(
        {
            "charge_current_a": ccl,
            "discharge_current_a": dcl,
            "charge_enable": charge,
            "discharge_enable": discharge,
            "modules": None,
        }
    )
    out, _ = guard(state, PROFILES[target], None, source_keys)
    for flag, given_flag, limit in (
        ("charge_enable", charge, out.charge_current_a),
        ("discharge_enable", discharge, out.discharge_current_a),
    ):
        if given_flag is not None:
            assert getattr(out, flag) is given_flag, "a flag the BMS sent was changed"
        elif flag in source_keys or limit is None:
            # the source could have sent it and did not (a frame stopped): stays missing
            assert getattr(out, flag) is None, "a flag was invented"
        else:
            assert getattr(out, flag) is (limit > 0)
    assert out.modules == (None if "modules" in source_keys else 1)


def test_nothing_is_filled_for_an_unknown_source():
    state = good_state().merged({"charge_enable": None, "modules": None})
    out, _ = guard(state, PROFILES["pylontech"], None)
    assert out.charge_enable is None and out.modules is None


@pytest.mark.parametrize(
    ("source", "allowed"), [(None, False), ("pylontech", False), ("byd-hvs", True)]
)
def test_unknown_alarms_go_out_as_not_supported_only_from_a_source_without_alarms(source, allowed):
    victron = PROFILES["victron"]
    keys = None if source is None else PROFILES[source].required_keys
    state = good_state(alarms=None, warnings=None)
    if not allowed:  # the source sends alarms and none arrived: refuse, never "not supported"
        with pytest.raises(EncodeError, match="alarms are missing"):
            guard(state, victron, None, keys)
        return
    out, _ = guard(state, victron, None, keys)
    frames = dict((spec.label, data) for spec, data in victron.encode_round(out).frames)
    assert frames["0x35A"] == bytes(8)  # every pair "not supported"


@pytest.mark.parametrize("target", ["byd-hvs", "growatt-lv", "pylontech-hv"])
def test_unknown_alarms_never_leave_the_limits_open_on_profiles_without_alarm_bits(target):
    """Alarms reach these inverters only as zero limits; unknown alarms must not mean 'none'."""
    state = good_state(alarms=None)
    with pytest.raises(EncodeError, match="alarms are missing"):
        guard(state, PROFILES[target], None, PROFILES["pylontech"].required_keys)


def test_every_alarm_but_imbalance_stops_something():
    from bmslink.limits import limits_for_alarms

    for name in ALARM_NAMES:
        _, zeroed = limits_for_alarms(good_state(alarms=[name]))
        assert bool(zeroed) is (name != "cell_imbalance"), name


def test_sma_limits_expire_long_before_the_60_s_battery_timeout():
    """The SI waits 60 s for 0x355, but 0x351's limits are not kept that long."""
    sma = PROFILES["sma"]
    channel = f"test-roles-{next(_channels)}"
    buses = [can.Bus(interface="virtual", channel=channel) for _ in range(2)]
    clock = ManualClock()
    inverter = InverterRole(buses[1], sma, clock)
    try:
        frames = dict((s.id, d) for s, d in sma.encode_round(good_state()).frames)
        for second in range(20):
            for can_id, data in frames.items():
                if can_id != 0x351 or second == 0:  # 0x351 stops after the first second
                    buses[0].send(
                        can.Message(arbitration_id=can_id, data=data, is_extended_id=False)
                    )
            inverter.poll()
            clock.advance(1.0)
        seen = inverter.state()
        assert inverter.lost_timeout_s == 60.0 and seen is not None  # still online
        assert seen.charge_current_a is None and seen.charge_voltage_v is None
        assert seen.soc_pct is not None
    finally:
        for bus in buses:
            bus.shutdown()
