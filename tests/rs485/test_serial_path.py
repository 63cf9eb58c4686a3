"""Serve and poll over a real serial path (a PTY pair, pyserial on both ends), with faults."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import serial

from bmslink.clock import ManualClock
from bmslink.links.serial_port import LinkError, SerialLink, bytes_on_wire_s
from bmslink.roles.rs485_battery import PylonResponder, PylonSerialServer
from bmslink.roles.rs485_inverter import PylonPoller, SerialTransport
from bmslink.rs485.frame import parse_frame
from bmslink.rs485.pylontech import decode_response, request
from bmslink.sim.nullmodem import End, NullModem
from bmslink.state import BatteryState

from .test_responder import GOOD

SECOND = GOOD.merged({"current_a": 3.5, "cells_v": [3.31] * 15, "voltage_v": 49.65})


@dataclass
class Line:
    modem: NullModem
    server: PylonSerialServer
    poller: PylonPoller

    def poll(self) -> dict[int, BatteryState | None]:
        return self.poller.cycle()


@pytest.fixture(params=[9600, 115200])
def line(request: pytest.FixtureRequest) -> Iterator[Line]:
    baud = request.param
    with NullModem() as modem:
        responder = PylonResponder([2, 3], {2: GOOD, 3: SECOND}.get)
        server = PylonSerialServer(SerialLink(modem.a_path, baud), responder)
        server.link.open()  # pyserial flushes input on open: open before anything is sent
        stop = threading.Event()
        thread = threading.Thread(target=server.serve, args=(stop.is_set,), daemon=True)
        thread.start()
        link = SerialLink(modem.b_path, baud)
        link.open()
        poller = PylonPoller(
            SerialTransport(link), [2, 3], timeout_s=0.5, retries=2, backoff_s=0.01, max_silent=50
        )
        try:
            yield Line(modem, server, poller)
        finally:
            stop.set()
            thread.join(5)
            link.close()
            server.link.close()


def carried(state: BatteryState | None) -> dict[str, Any]:
    assert state is not None
    keys = ("voltage_v", "current_a", "cells_v", "capacity_ah", "remaining_ah", "cycles",
            "charge_voltage_v", "charge_current_a", "discharge_current_a", "discharge_voltage_v",
            "charge_enable", "discharge_enable", "alarms")  # fmt: skip
    return {k: getattr(state, k) for k in keys}


def test_serve_and_poll_interoperate(line: Line) -> None:
    for _ in range(3):
        states = line.poll()
        assert carried(states[2]) == carried(GOOD)
        assert carried(states[3]) == carried(SECOND)
    assert line.poller.timeouts == 0 and not line.poller.bad_frames


def test_garbage_between_frames_is_skipped(line: Line) -> None:
    line.poll()
    line.modem.inject("a", b"\x00\xff\x13noise\r\n")
    line.modem.inject("b", b"late junk")  # noise waiting at the poller is dropped before a request
    assert line.poll()[2] is not None
    assert line.server.framer.noise_bytes >= 10


def test_a_truncated_frame_is_dropped_and_the_next_read(line: Line) -> None:
    line.modem.inject("a", b"~20024642E0")  # a request cut off mid-frame
    assert carried(line.poll()[2]) == carried(GOOD)
    assert line.server.framer.truncated_frames >= 1


def test_a_corrupted_answer_is_retried(line: Line) -> None:
    hits = {"n": 0}

    def corrupt_once(to: End, data: bytes) -> bytes:
        if to == "b" and hits["n"] == 0 and data.startswith(b"~"):
            hits["n"] += 1
            return data.replace(b"~2002", b"~2012", 1)  # the checksum no longer matches
        return data

    line.modem.transform = corrupt_once
    assert carried(line.poll()[2]) == carried(GOOD)
    assert hits["n"] == 1 and sum(line.poller.bad_frames.values()) == 1


def test_a_request_with_a_bad_checksum_gets_rtn_02_on_the_wire(line: Line) -> None:
    with serial.Serial(line.modem.b_path, 9600, timeout=1) as raw:
        raw.write(request(0x42, 2).encode()[:-2] + b"0\r")
        answer = parse_frame(raw.read_until(b"\r"))
    assert answer.cid2 == 0x02


def test_a_wrong_address_is_left_to_its_owner(line: Line) -> None:
    line.poller.timeout_s, line.poller.retries = 0.2, 1  # silence costs a timeout per try
    line.poller.addresses = [2, 5]
    line.poller.silent_cycles[5] = 0
    states = line.poll()
    assert states[2] is not None and states[5] is None
    assert line.server.responder.not_ours >= 6  # every try for 05 went unanswered


def test_a_device_that_stops_answering_and_comes_back(line: Line) -> None:
    assert line.poll()[2] is not None
    line.poller.timeout_s, line.poller.retries = 0.2, 1
    line.modem.muted.add("b")
    assert line.poll() == {2: None, 3: None}
    assert line.poller.timeouts >= 2
    line.modem.muted.clear()
    assert carried(line.poll()[2]) == carried(GOOD)


def test_two_requests_back_to_back(line: Line) -> None:
    with serial.Serial(line.modem.b_path, 115200, timeout=1) as raw:
        raw.write(request(0x42, 2).encode() + request(0x92, 3).encode())
        first = parse_frame(raw.read_until(b"\r"))
        second = parse_frame(raw.read_until(b"\r"))
    assert decode_response(first, 0x42).voltage_v == GOOD.voltage_v
    assert decode_response(second, 0x92).charge_current_a == SECOND.charge_current_a


# -- the link itself ---------------------------------------------------------------------------


class FlakyPort:
    """A pyserial stand-in that can be unplugged."""

    plugged = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        if not FlakyPort.plugged:
            raise serial.SerialException("could not open port: No such file or directory")
        self.in_waiting = 0

    def read(self, n: int) -> bytes:
        if not FlakyPort.plugged:
            raise serial.SerialException("device reports readiness to read but returned no data")
        return b""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None: ...

    def close(self) -> None: ...


def test_an_unplugged_adapter_is_reopened_after_the_interval() -> None:
    clock = ManualClock()
    FlakyPort.plugged = True
    waits: list[float] = []
    link = SerialLink(
        "/dev/ttyUSB9",
        9600,
        clock=clock,
        opener=FlakyPort,
        reopen_interval_s=1.0,
        read_timeout_s=0.02,
        sleep=waits.append,
    )
    link.open()
    FlakyPort.plugged = False
    assert link.read() == b"" and not link.is_open and link.losses == 1
    assert link.read() == b""  # still gone: the read waits its timeout instead of spinning
    assert waits == [0.02, 0.02]
    assert "lost" in (link.last_error or "")
    FlakyPort.plugged = True
    assert not link.write(b"x")  # too soon to reopen
    clock.advance(1.0)
    assert link.write(b"x") and link.opens == 2


def test_a_port_that_cannot_be_opened_names_itself() -> None:
    FlakyPort.plugged = False
    link = SerialLink("/dev/ttyUSB9", 9600, opener=FlakyPort)
    with pytest.raises(LinkError, match="cannot open /dev/ttyUSB9 at 9600 baud"):
        link.open()
    FlakyPort.plugged = True


def test_wire_time() -> None:
    assert bytes_on_wire_s(960, 9600) == pytest.approx(1.0)
