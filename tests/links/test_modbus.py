"""Seplos V3 server and client over a PTY null-modem: real pymodbus on both ends."""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.pdu import DecodePDU, ExceptionResponse

from bmslink.bms.modbus_rtu import build_read_request, build_register_reply
from bmslink.bms.seplos_v3 import decode, encode
from bmslink.links.modbus import HuntingFramer, ModbusLinkError, SeplosV3Client, SeplosV3Server
from bmslink.sim.nullmodem import NullModem
from bmslink.state import BatteryState

TIMEOUT_S = 0.3


def pack(**changes):
    values = dict(
        voltage_v=53.25,
        current_a=-1.37,
        remaining_ah=274.56,
        capacity_ah=330.0,
        soc_pct=83.2,
        soh_pct=99.9,
        cycles=10,
        charge_current_a=180.0,
        discharge_current_a=150.0,
        cells_v=[3.327] * 15 + [3.341],
        temperatures_c=[21.15, 21.05, 24.05, 26.95],
        alarms=[],
        warnings=["high_voltage"],
    )
    values.update(changes)
    return BatteryState(**values)


PACK_1 = pack()
PACK_2 = pack(voltage_v=52.0, current_a=12.5, soc_pct=40.0, cells_v=[3.25] * 16, cycles=300)


def direct(state):
    image = encode(state)
    return decode(image.pia, image.pib, image.coils, image.spa)


@dataclass
class Wire:
    """The null-modem's transform: records traffic and can cut the server off mid-poll."""

    log: list = field(default_factory=list)
    cut_after_bytes_to_server: int | None = None
    to_server: int = 0
    glitch_before_replies: bytes = b""

    def __call__(self, to, data):
        if to == "b" and data[:1] == b"\x01":
            data = self.glitch_before_replies + data
        if to == "a":
            self.to_server += len(data)
            if (
                self.cut_after_bytes_to_server is not None
                and self.to_server > self.cut_after_bytes_to_server
            ):
                return b""
        self.log.append((to, data))
        return data

    def to_client_since(self, mark):
        return b"".join(data for to, data in self.log[mark:] if to == "b")


@dataclass
class Bus:
    nm: NullModem
    wire: Wire
    server: SeplosV3Server
    client: SeplosV3Client


@pytest.fixture
async def make_bus():
    async with contextlib.AsyncExitStack() as stack:

        async def make(source, slaves=(1,), baudrate=19200, client=True):
            wire = Wire()
            nm = stack.enter_context(NullModem(transform=wire))
            server = SeplosV3Server(nm.a_path, slaves, source, baudrate=baudrate)
            stack.push_async_callback(server.stop)
            await server.start()
            reader = SeplosV3Client(nm.b_path, baudrate=baudrate, timeout_s=TIMEOUT_S)
            stack.callback(reader.close)
            if client:
                await reader.connect()
            return Bus(nm, wire, server, reader)

        yield make


def states(**by_slave):
    table = {int(k[1:]): v for k, v in by_slave.items()}
    return lambda slave: table.get(slave)


async def eventually(condition, timeout_s=2.0):
    """Wait for something the other end does (a PTY hop), without assuming how long it takes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.005)


# -- reading what is served -----------------------------------------------------------------------


@pytest.mark.parametrize("baudrate", [9600, 115200])
async def test_read_equals_direct_decode_of_encode(make_bus, baudrate):
    bus = await make_bus(states(s1=PACK_1), baudrate=baudrate)
    state = await bus.client.read(1)
    assert state == direct(PACK_1)
    assert state.warnings == ["high_voltage"]
    assert state.cells_v[-1] == 3.341 and state.cell_max_id == "16"
    assert bus.server.stats.served == 4  # PIA, PIB, PIC, SPA


async def test_two_reads_back_to_back_and_spa_is_read_once(make_bus):
    bus = await make_bus(states(s1=PACK_1))
    first = await bus.client.read(1)
    second = await bus.client.read(1)
    assert first == second == direct(PACK_1)
    assert bus.server.stats.requests[1] == 4 + 3


async def test_several_slaves_on_one_bus_and_silence_for_a_slave_not_served(make_bus, caplog):
    bus = await make_bus(states(s1=PACK_1, s2=PACK_2), slaves=(1, 2))
    a, b = await asyncio.gather(bus.client.read(1), bus.client.read(2))
    assert (a, b) == (direct(PACK_1), direct(PACK_2))

    mark = len(bus.wire.log)
    with caplog.at_level(logging.DEBUG), pytest.raises(ModbusLinkError) as info:
        await bus.client.read(3)
    assert str(info.value) == "slave 3 PIA (0x1000): no answer within 0.3 s (timeout)"
    assert (info.value.slave, info.value.block) == (3, "PIA")
    assert bus.wire.to_client_since(mark) == b""  # the server did not answer for slave 3
    assert bus.server.stats.other_slaves == 1
    assert not [r for r in caplog.records if r.name.startswith("pymodbus")]  # kept quiet

    assert await bus.client.read(2) == direct(PACK_2)  # the bus goes on


async def test_read_many_reports_each_slave(make_bus):
    bus = await make_bus(states(s1=PACK_1), slaves=(1, 2))
    result = await bus.client.read_many([1, 2, 3])
    assert result[1] == direct(PACK_1)
    assert isinstance(result[2], ModbusLinkError) and "slave device failure" in str(result[2])
    assert isinstance(result[3], ModbusLinkError) and "timeout" in str(result[3])


# -- refusing -------------------------------------------------------------------------------------


async def test_no_fresh_data_answers_slave_device_failure(make_bus):
    bus = await make_bus(lambda slave: None)
    with pytest.raises(
        ModbusLinkError, match=r"^slave 1 PIA \(0x1000\): exception 04 \(slave device failure\)$"
    ):
        await bus.client.read(1)
    assert bus.server.stats.refused == 1
    assert bus.server.stats.last_refusal == "slave 1: no fresh data"


async def test_a_state_that_cannot_be_encoded_is_refused_not_served_partly(make_bus):
    bus = await make_bus(states(s1=pack(alarms=["contactor"])))
    with pytest.raises(ModbusLinkError, match="slave device failure"):
        await bus.client.read(1)
    assert "alarm 'contactor' has no Seplos V3 coil" in bus.server.stats.last_refusal
    assert bus.server.stats.served == 0


async def test_writes_other_functions_and_addresses_outside_the_map_are_refused(make_bus):
    bus = await make_bus(states(s1=PACK_1), client=False)
    raw = AsyncModbusSerialClient(bus.nm.b_path, baudrate=19200, timeout=TIMEOUT_S, retries=0)
    assert await raw.connect()
    try:
        replies = {
            "write register": await raw.write_register(0x1000, 1, device_id=1),
            "write registers": await raw.write_registers(0x1005, [1, 2], device_id=1),
            "write coil": await raw.write_coil(0x1248, True, device_id=1),
            "read holding": await raw.read_holding_registers(0x1000, count=2, device_id=1),
            "read discrete": await raw.read_discrete_inputs(0x1200, count=8, device_id=1),
            "past PIA": await raw.read_input_registers(0x1011, count=2, device_id=1),
            "coil words": await raw.read_input_registers(0x120, count=1, device_id=1),
            "past PIC": await raw.read_coils(0x1288, count=9, device_id=1),
        }
        codes = {
            name: reply.exception_code
            for name, reply in replies.items()
            if isinstance(reply, ExceptionResponse)
        }
        assert codes == {
            "write register": 1,
            "write registers": 1,
            "write coil": 1,
            "read holding": 1,
            "read discrete": 1,
            "past PIA": 2,
            "coil words": 2,
            "past PIC": 2,
        }
        ok = await raw.read_input_registers(0x1000, count=1, device_id=1)
        assert ok.registers == [5325]  # unchanged by the refused writes
    finally:
        raw.close()
    assert bus.server.stats.rejected == 8


# -- a faulty line --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x07\x01\x12",  # the start of a frame: pymodbus alone would wait for the rest
        b"\x00\x00\x00",
        b"\x01\x04\x10\x00\x00\x12\x74\xc8",  # a request with a bad CRC
        bytes(range(256)) * 2,
    ],
)
async def test_garbage_towards_the_server_between_requests(make_bus, garbage):
    bus = await make_bus(states(s1=PACK_1))
    await bus.client.read(1)
    before = bus.server.stats.bytes_received
    bus.nm.inject("a", garbage)
    await eventually(lambda: bus.server.stats.bytes_received >= before + len(garbage))
    await asyncio.sleep(2 * bus.server.frame_gap_s)  # the line is silent, as between polls
    assert await bus.client.read(1) == direct(PACK_1)
    assert bus.server.stats.bad_frames >= 1


async def test_garbage_right_before_a_request_without_silence(make_bus):
    bus = await make_bus(states(s1=PACK_1))
    bus.nm.inject("a", b"\x07\x01\x12\x00")
    assert await bus.client.read(1) == direct(PACK_1)
    assert bus.server.stats.dropped_bytes >= 4


async def test_a_glitch_byte_before_every_reply(make_bus):
    """RS485 turnaround often puts a stray byte on the line just before the answer."""
    bus = await make_bus(states(s1=PACK_1))
    bus.wire.glitch_before_replies = b"\x00"
    assert await bus.client.read(1) == direct(PACK_1)
    bus.wire.glitch_before_replies = b"\xff\x01"
    assert await bus.client.read(1) == direct(PACK_1)


async def test_garbage_towards_the_client_between_requests(make_bus):
    bus = await make_bus(states(s1=PACK_1))
    await bus.client.read(1)
    bus.nm.inject("b", b"\x01\x04\x22\xff\xff")
    assert await bus.client.read(1) == direct(PACK_1)


async def test_device_stops_answering_mid_poll_then_comes_back(make_bus):
    bus = await make_bus(states(s1=PACK_1))
    await bus.client.read(1)  # SPA is cached: a poll is PIA, PIB, PIC
    bus.wire.cut_after_bytes_to_server = bus.wire.to_server + 2 * 8  # PIA and PIB get through
    with pytest.raises(ModbusLinkError, match=r"^slave 1 PIC \(0x1200\): no answer within 0.3 s"):
        await bus.client.read(1)
    bus.wire.cut_after_bytes_to_server = None
    assert await bus.client.read(1) == direct(PACK_1)


async def test_muted_server_end_then_unmuted(make_bus):
    bus = await make_bus(states(s1=PACK_1))
    bus.nm.muted.add("a")
    with pytest.raises(ModbusLinkError, match="timeout"):
        await bus.client.read(1)
    bus.nm.muted.clear()
    assert await bus.client.read(1) == direct(PACK_1)


def test_hunting_framer_hunts_past_a_bad_crc_and_waits_for_a_partial_frame():
    framer = HuntingFramer(DecodePDU(False))  # the client's side: replies
    reply = build_register_reply(1, 0x04, [0x14CD, 0xFF77])
    assert framer.decode(b"\x00" + reply) == (1 + len(reply), 1, 0, reply[1:-2])
    assert framer.skipped == 1
    assert framer.decode(reply[:-1]) == (0, 0, 0, b"")  # not complete yet: wait
    server_side = HuntingFramer(DecodePDU(True))
    request = build_read_request(2, 0x04, 0x1000, 18)
    assert server_side.decode(b"\x07\x01\x12" + request)[1:] == (2, 0, request[1:-2])


# -- setup ----------------------------------------------------------------------------------------


async def test_server_on_a_missing_port_raises_a_link_error(tmp_path):
    server = SeplosV3Server(str(tmp_path / "no-such-tty"), [1], lambda slave: None)
    with pytest.raises(ModbusLinkError, match="cannot serve on"):
        await server.start()
    await server.stop()


async def test_client_on_a_missing_port_raises_a_link_error(tmp_path):
    client = SeplosV3Client(str(tmp_path / "no-such-tty"), timeout_s=TIMEOUT_S)
    with pytest.raises(ModbusLinkError, match="cannot open serial port"):
        await client.read(1)
    client.close()


@pytest.mark.parametrize(
    ("slaves", "message"), [([], "no slave"), ([248], "outside"), ([1, 1], "repeat")]
)
def test_slave_ids_are_checked(slaves, message):
    with pytest.raises(ValueError, match=message):
        SeplosV3Server("/dev/null", slaves, lambda slave: None)
