"""The inverter role on RS485: retries with backoff, no stale carry-over, a clear silent error."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bmslink.roles.rs485_battery import PylonResponder
from bmslink.roles.rs485_inverter import PylonPoller, SilentBatteryError
from bmslink.rs485.frame import parse_frame
from bmslink.state import BatteryState

from .test_responder import GOOD

Script = Callable[[bytes], bytes | None]


class FakeTransport:
    """Answers through ``script`` (a responder, or a fault); records every request."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sent: list[bytes] = []

    def exchange(self, request: bytes, timeout_s: float) -> bytes | None:
        self.sent.append(request)
        return self.script(request)


def battery(state: BatteryState | None = GOOD, adr: int = 2) -> PylonResponder:
    return PylonResponder([adr], {adr: state}.get)


def poller(script: Script, sleeps: list[float], **kw: object) -> tuple[PylonPoller, FakeTransport]:
    transport = FakeTransport(script)
    return PylonPoller(transport, [2], sleep=sleeps.append, **kw), transport  # type: ignore[arg-type]


def test_a_cycle_merges_analog_alarms_and_limits() -> None:
    p, t = poller(battery().handle, [])
    state = p.cycle()[2]
    assert state is not None
    assert state.voltage_v == 52.8 and state.charge_current_a == 50.0 and state.alarms == []
    assert state.manufacturer == "PYLON" and state.serial == "BMSLINK002"  # asked once
    commands = [parse_frame(r).cid2 for r in t.sent]
    assert commands == [0x42, 0x44, 0x92, 0x51, 0x93]
    p.cycle()
    assert [parse_frame(r).cid2 for r in t.sent[5:]] == [0x42, 0x44, 0x92]


def test_lost_answers_are_retried_with_growing_pauses() -> None:
    answers = battery()
    drops = iter([True, True, False] * 10)

    def flaky(request: bytes) -> bytes | None:
        return None if next(drops) else answers.handle(request)

    sleeps: list[float] = []
    p, _ = poller(flaky, sleeps, commands=[0x42], identity_commands=[], backoff_s=0.1)
    assert p.cycle()[2] is not None
    assert sleeps == [0.1, 0.2]
    assert (p.timeouts, p.retried, p.answers) == (2, 2, 1)


def test_backoff_is_capped() -> None:
    sleeps: list[float] = []
    p, _ = poller(lambda r: None, sleeps, commands=[0x42], identity_commands=[],
                  retries=6, backoff_s=0.5, backoff_max_s=2.0)  # fmt: skip
    p.cycle()
    assert sleeps == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_a_corrupted_answer_is_retried_and_counted() -> None:
    answers = battery()
    corrupt = iter([True, False] * 10)

    def noisy(request: bytes) -> bytes | None:
        raw = answers.handle(request)
        assert raw is not None
        return raw[:-3] + b"00\r" if next(corrupt) else raw

    p, _ = poller(noisy, [], commands=[0x42], identity_commands=[])
    assert p.cycle()[2] is not None
    assert sum(p.bad_frames.values()) == 1 and "checksum mismatch" in next(iter(p.bad_frames))


def test_an_answer_from_another_address_is_not_taken() -> None:
    other = battery(adr=3)

    def wrong(request: bytes) -> bytes | None:
        return other.handle(request.replace(b"~2002", b"~2003").replace(b"02F", b"03F"))

    p, _ = poller(wrong, [], commands=[0x44], identity_commands=[], retries=0, max_silent=99)
    assert p.cycle()[2] is None


def test_an_error_code_is_not_retried() -> None:
    p, t = poller(battery().handle, [], commands=[0x47], identity_commands=[], retries=3)
    # 0x47 is unconfigured here: the battery stays silent, so it is retried...
    p.cycle()
    assert len(t.sent) == 4
    error = PylonResponder([2], {2: GOOD}.get)
    p2, t2 = poller(lambda r: error.handle(r[:-3] + b"00\r"), [], commands=[0x42],
                    identity_commands=[], retries=3, max_silent=99)  # fmt: skip
    p2.cycle()  # ...but a CHKSUM error answer (RTN 02) is an answer: asked once
    assert len(t2.sent) == 1 and p2.error_answers[2] == 1


def test_unanswered_commands_leave_their_keys_absent() -> None:
    answers = battery()
    p, _ = poller(lambda r: None if parse_frame(r).cid2 == 0x92 else answers.handle(r), [],
                  identity_commands=[], retries=0)  # fmt: skip
    state = p.cycle()[2]
    assert state is not None and state.voltage_v == 52.8
    assert state.charge_current_a is None and state.charge_voltage_v is None


def test_silence_gives_a_clear_error_after_max_silent_cycles() -> None:
    p, _ = poller(lambda r: None, [], retries=0, max_silent=3)
    p.where = "/dev/ttyUSB0 at 9600 baud"
    assert p.cycle() == {2: None}
    assert p.cycle() == {2: None}
    with pytest.raises(SilentBatteryError) as info:
        p.cycle()
    message = str(info.value)
    assert "address 02 on /dev/ttyUSB0 at 9600 baud answered nothing in 3 polls" in message
    assert "A/B" in message and "baud" in message


def test_a_battery_that_comes_back_resets_the_count() -> None:
    answers = battery()
    up = {"on": False}
    p, _ = poller(lambda r: answers.handle(r) if up["on"] else None, [], retries=0,
                  max_silent=3, identity_commands=[])  # fmt: skip
    p.cycle()
    p.cycle()
    up["on"] = True
    assert p.cycle()[2] is not None
    up["on"] = False
    p.cycle()
    p.cycle()  # two silent again: not yet an error
    assert p.silent_cycles[2] == 2
