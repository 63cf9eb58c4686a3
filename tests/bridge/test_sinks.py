"""The polled sinks: they answer with the bridge's latest state, never an old one."""

from __future__ import annotations

from bmslink.bridge.sinks import PylontechRs485Sink
from bmslink.clock import ManualClock
from bmslink.limits import HardwareLimits
from strategies import pack

HW = HardwareLimits.for_cells(16, 100.0, 100.0)


def test_a_polled_sink_falls_silent_when_the_bridge_stops_pushing() -> None:
    clock = ManualClock()
    sink = PylontechRs485Sink("/dev/not-opened", clock, HW, address=2, stale_after_s=10.0)
    state = pack("a").state
    sink.update(state, "")
    assert sink.responder.source(2) is state
    assert sink.responder.source(3) is None  # another address: not ours
    clock.advance(10.0)
    assert sink.latest() is state
    clock.advance(0.1)
    assert sink.latest() is None  # the bridge's loop stalled: silence, not old values
    assert sink.responder.source(2) is None
    sink.update(state, "")
    assert sink.latest() is state


def test_the_inverters_polls_are_its_keepalive() -> None:
    clock = ManualClock()
    sink = PylontechRs485Sink("/dev/not-opened", clock, HW, inverter_timeout_s=10.0)
    sink.poll()
    assert not sink.inverter_online
    sink.responder.requests += 1
    sink.poll()
    assert sink.inverter_online
    clock.advance(10.5)
    sink.poll()
    assert not sink.inverter_online
