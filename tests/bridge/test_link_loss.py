"""Link loss with an injected clock: derate at once, the safe state after 10 s, silence after the hold."""

from __future__ import annotations

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.bridge.aggregate import BankSettings, PackSettings
from bmslink.bridge.core import Bridge, LinkLoss, LinkLossSettings, safe_state
from bmslink.bridge.sinks import CanSink
from bmslink.clock import ManualClock
from bmslink.control import Controller, ControlSettings
from bmslink.limits import HardwareLimits
from bmslink.profiles import get_profile
from bmslink.roles import InverterRole
from strategies import pack

HW = HardwareLimits.for_cells(16, 150.0, 150.0)


def good() -> object:
    return pack("a").state


@settings(max_examples=200, deadline=None)
@given(
    silent=st.floats(0, 60),
    hold=st.floats(0, 120),
    gaps=st.lists(st.floats(0.01, 30), min_size=1, max_size=30),
    answers=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_the_phase_follows_the_time_since_the_last_usable_bank(
    silent: float, hold: float, gaps: list[float], answers: list[bool]
) -> None:
    ll = LinkLoss(LinkLossSettings(silent_after_s=silent, safe_hold_s=hold))
    last_good: float | None = None
    now = 0.0
    for gap, answered in zip(gaps, answers, strict=False):
        now += gap
        state = pack("a").state if answered else None
        out = ll.step(state, now)
        if answered:
            last_good = now
            assert out.phase == "normal" and out.state is state
            continue
        if last_good is None:
            assert out.phase == "waiting" and out.state is None
            continue
        quiet = now - last_good
        if quiet < silent:
            assert out.phase == "derated"
        elif quiet < silent + hold:
            assert out.phase == "safe"
            assert out.state is not None and "general" in (out.state.alarms or [])
        else:
            assert out.phase == "lost" and out.state is None
        if out.state is not None:  # whatever is sent without a usable bank allows no current
            assert out.state.charge_current_a == 0 and out.state.discharge_current_a == 0
            assert out.state.charge_enable is False and out.state.discharge_enable is False
            assert out.state.force_charge is False


def test_safe_state_keeps_cvl_and_never_sends_zero_cvl() -> None:
    last = pack("a", charge_voltage_v=55.2).state
    assert last is not None
    safe = safe_state(last, alarm=True)
    assert safe.charge_voltage_v == 55.2
    assert safe.alarms == ["general"]


class Rig:
    """A bridge with one CAN sink and an inverter role on the same virtual bus."""

    def __init__(self, channel: str, **link_loss: float) -> None:
        self.clock = ManualClock()
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.inverter_bus = can.Bus(interface="virtual", channel=channel)
        self.sink = CanSink(self.bus, get_profile("pylontech"), self.clock, HW)
        self.bridge = Bridge(
            [PackSettings("a", 100.0, 100.0), PackSettings("b", 100.0, 100.0)],
            BankSettings(),
            HW,
            self.clock,
            link_loss=LinkLossSettings(**link_loss),
            sinks=[self.sink],
        )
        self.inverter = InverterRole(self.inverter_bus, get_profile("pylontech"), self.clock)

    def run(
        self,
        seconds: float,
        step: float = 0.5,
        answer: dict[str, bool] | None = None,
        inverter: bool = True,
    ) -> None:
        t_end = self.clock.now() + seconds
        while self.clock.now() < t_end - 1e-9:
            for name, ok in (answer or {}).items():
                if ok:
                    self.bridge.on_reading(name, pack(name).state)
                else:
                    self.bridge.on_reading(name, None, "no valid answer")
            self.bridge.tick()
            if inverter:
                self.inverter.poll()  # reads the battery and sends its 0x305 keep-alive
            self.clock.advance(step)

    def close(self) -> None:
        self.bus.shutdown()
        self.inverter_bus.shutdown()


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Rig:
    r = Rig(f"ll-{request.node.name}", silent_after_s=10.0, safe_hold_s=30.0, pack_stale_s=5.0)
    yield r  # type: ignore[misc]
    r.close()


def test_every_bms_silent_gives_the_safe_state_then_silence_then_recovery(rig: Rig) -> None:
    rig.run(5, answer={"a": True, "b": True})
    seen = rig.inverter.state()
    assert seen is not None and seen.charge_current_a == 150.0  # 2 x 100 A, clamped to 150
    rig.run(9.5, answer={"a": False, "b": False})  # t = 5 .. 14.5: less than 10 s silent
    assert rig.bridge.output.phase == "derated"
    seen = rig.inverter.state()
    assert seen is not None and seen.charge_current_a == 0 and seen.discharge_current_a == 0
    assert not (seen.alarms or [])  # derated: a warning, not yet the alarm
    rig.run(1.0, answer={"a": False, "b": False})  # silent 10 s (last good reading at t = 4.5)
    assert rig.bridge.output.phase == "safe"
    seen = rig.inverter.state()
    assert seen is not None and seen.charge_current_a == 0 and "bms_internal" in (seen.alarms or [])
    frames_before = rig.sink.role.frames_sent
    rig.run(29.0, answer={"a": False, "b": False})  # still inside the 30 s hold
    assert rig.bridge.output.phase == "safe"
    assert rig.sink.role.frames_sent > frames_before  # the safe state keeps going out
    rig.run(1.0, answer={"a": False, "b": False})
    assert rig.bridge.output.phase == "lost"
    sent = rig.sink.role.frames_sent
    rig.run(30.0, answer={"a": False, "b": False})
    assert rig.sink.role.frames_sent == sent  # nothing is sent: stale values never go out
    assert not rig.inverter.battery_online
    rig.run(1.0, answer={"a": True})  # one BMS answers again: back at once, derated to one pack
    assert rig.bridge.output.phase == "normal"
    state = rig.bridge.output.state
    assert state is not None and state.charge_current_a == 100.0 and state.modules_offline == 1


def test_a_pack_that_stops_answering_derates_the_bank_at_the_first_failed_poll(rig: Rig) -> None:
    rig.run(2, answer={"a": True, "b": True})
    rig.run(0.5, answer={"a": True, "b": False})
    out = rig.bridge.output.state
    assert out is not None and out.charge_current_a == 100.0
    assert any(e.kind == "pack_note" and "b lost" in e.detail for e in rig.bridge.events)


def test_a_pack_whose_driver_hangs_goes_stale_after_pack_stale_s(rig: Rig) -> None:
    rig.bridge.on_reading("a", pack("a").state)
    rig.bridge.on_reading("b", pack("b").state)
    rig.run(4.5)  # no readings at all, but within pack_stale_s
    assert rig.bridge.output.phase == "normal"
    rig.run(1.5)
    assert rig.bridge.output.phase == "derated"


def test_a_keepalive_that_disappears_is_warned(rig: Rig) -> None:
    rig.run(3, answer={"a": True, "b": True})
    assert any(e.kind == "inverter_keepalive_seen" for e in rig.bridge.events)
    assert not any(e.kind == "inverter_keepalive_lost" for e in rig.bridge.events)
    rig.run(12, answer={"a": True, "b": True}, inverter=False)  # the inverter stops
    assert any(e.kind == "inverter_keepalive_lost" for e in rig.bridge.events)
    assert rig.bridge.output.phase == "normal"  # a warning: the battery side is fine


def test_after_link_loss_the_controllers_limits_come_back_through_hold_and_ramp() -> None:
    """The bridge tells its controller when no pack is usable, so the limits it brings back
    follow the controller's stale rule (hold, then ramp) instead of jumping to the old value;
    before the first reading there is nothing to recover from."""
    clock = ManualClock()
    settings = ControlSettings(current_recovery_hold_s=30.0, current_recovery_a_per_s=5.0)
    bridge = Bridge(
        [PackSettings("a", 100.0, 120.0)],
        BankSettings(),
        HW,
        clock,
        controller=Controller(settings, HW, clock),
    )
    bridge.refresh()  # waiting: the controller is not told anything yet
    bridge.on_reading("a", pack("a").state)
    first = bridge.output.state
    assert first is not None and first.discharge_current_a == 100.0  # no soft start
    clock.advance(2.0)
    bridge.on_reading("a", None, "no valid answer")
    assert bridge.output.phase == "derated" and bridge.control is not None
    assert bridge.control.mode == "safe"
    clock.advance(2.0)
    bridge.on_reading("a", pack("a").state)
    back = bridge.output.state
    assert back is not None and back.discharge_current_a == 0.0
    assert bridge.control is not None and bridge.control.dcl_reason == "recovering"
    clock.advance(31.0)
    bridge.on_reading("a", pack("a").state)
    ramping = bridge.output.state
    assert ramping is not None and 0.0 < ramping.discharge_current_a < 100.0
