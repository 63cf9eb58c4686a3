"""Seplos V3 over a serial port with pymodbus: serve states as packs, or read real packs.

The only module that uses pymodbus (3.16, whose datastore is the SimDevice
simulator). The register map itself lives in :mod:`bmslink.bms.seplos_v3`;
this module moves it over RS485.

Serving: every read is answered from ``encode(source(slave))`` made at that
moment. No fresh state, or one that cannot be encoded, answers exception 04
(slave device failure) rather than stale or partial data; writes answer 01
(illegal function). A request for a slave id not served gets no answer at all,
since another device on the bus may own it.

Two things pymodbus 3.16 does not do on its own are added by small subclasses:

- ``ignore_missing_devices`` is only honoured by the deprecated datastores: the
  SimDevice store answers an unknown slave with exception 04 (and logs a
  traceback). The store here raises pymodbus's NoSuchIdException instead, which
  the server turns into silence.
- Its RTU framer stops hunting at the first byte that could start a frame and,
  when that frame's CRC fails, drops everything: one glitch byte before a
  reply (common at RS485 bus turnaround) or a little line noise before a
  request loses that frame. :class:`HuntingFramer` looks for a frame with a
  good CRC at every offset instead, and the server's request handler also
  drops a partial frame once the line has been silent for ``frame_gap_s`` (the
  3.5-character gap of Modbus RTU), counting what it drops.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusIOException, NoSuchIdException
from pymodbus.exceptions import ModbusException as PymodbusException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore
from pymodbus.transaction import TransactionManager

from bmslink.bms.modbus_rtu import exception_name
from bmslink.bms.seplos_v3 import (
    EXCEPTION_NAMES,
    KELVIN_OFFSET_RAW,
    PIA,
    PIB,
    PIC,
    REGISTER_BLOCKS,
    SPA,
    Block,
    decode,
    encode,
)
from bmslink.errors import BmslinkError, DecodeError, EncodeError
from bmslink.state import BatteryState

#: slave id -> the state to serve now; None means "no fresh data" (answered with exception 04).
StateSource = Callable[[int], BatteryState | None]

DEFAULT_BAUDRATE = 19200  # Seplos V3: 19200 8N1
#: Silence after which a partial frame is dropped. Modbus RTU says 3.5 characters
#: (2 ms at 19200); USB adapters deliver a frame in chunks up to ~16 ms apart.
FRAME_GAP_S = 0.05

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class ModbusLinkError(BmslinkError):
    """A read failed; the message names the slave, the block and the cause."""

    def __init__(
        self,
        message: str,
        *,
        slave: int | None = None,
        block: str | None = None,
        exception_code: int | None = None,
    ):
        self.slave = slave
        self.block = block
        #: set when the device answered with a Modbus exception (it is there, but refused)
        self.exception_code = exception_code
        super().__init__(message)


# -- pymodbus logging -----------------------------------------------------------------------------

#: pymodbus logs these at error/warning level although they are part of normal
#: bus life (a timeout, another slave's frame, line noise); bmslink reports them
#: itself through ModbusLinkError and the server counters.
_EXPECTED_MESSAGES = (
    "No response received",
    "ERROR: request ask for",
    "ERROR: received pdu without",
    "Unable to decode frame",
    "Repeating....",
)


class _ExpectedNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_EXPECTED_MESSAGES)


_NOISE = _ExpectedNoise()


def configure_pymodbus_logging(verbose: bool = False) -> None:
    """Quiet pymodbus (warnings and real errors only) unless ``verbose`` (everything).

    pymodbus has one process-wide logger, so this applies to every link.
    """
    logger = logging.getLogger("pymodbus.logging")
    if verbose:
        logger.setLevel(logging.DEBUG)
        logger.removeFilter(_NOISE)
    else:
        logger.setLevel(logging.WARNING)
        logger.addFilter(_NOISE)


# -- framing --------------------------------------------------------------------------------------


class HuntingFramer(FramerRTU):
    """pymodbus's RTU framer, except that a CRC error is noise to hunt past, not the end.

    As in pymodbus, the first byte that can start a frame decides how many bytes
    to wait for. When the frame is complete and its CRC is wrong, pymodbus drops
    the whole buffer (and the real frame behind the noise with it); here the
    hunt goes on at the next byte. Bytes skipped before a frame add to ``skipped``.
    """

    skipped = 0

    def decode(self, data: bytes) -> tuple[int, int, int, bytes]:
        for start in range(len(data) - self.MIN_SIZE + 1):
            try:
                pdu_class = self.decoder.lookupPduClass(data[start:])
                size = pdu_class.calculateRtuFrameSize(data[start:]) if pdu_class else -1
            except (KeyError, IndexError, PymodbusException):
                continue
            if size < 0:
                continue  # no function code here
            end = start + size
            if not size or end > len(data):
                break  # a frame may start here: wait for the rest of it
            crc = int.from_bytes(data[end - 2 : end], "big")
            if self.check_CRC(data[start : end - 2], crc):
                self.skipped += start
                return end, data[start], 0, data[start + 1 : end - 2]
        return 0, 0, 0, self.EMPTY


# -- server ---------------------------------------------------------------------------------------


@dataclass
class ServerStats:
    """What the server saw; bad frames are CRC errors, noise and partial frames dropped."""

    requests: dict[int, int] = field(default_factory=dict)  # per served slave
    served: int = 0  # reads answered with data
    refused: int = 0  # answered exception 04: no fresh data or the state cannot be encoded
    last_refusal: str | None = None
    rejected: int = 0  # writes, other functions, addresses outside the map (exception 01/02)
    other_slaves: int = 0  # requests for slave ids not served, left unanswered
    frames: int = 0  # request frames with a good CRC, for any slave
    bad_frames: int = 0
    dropped_bytes: int = 0
    bytes_received: int = 0


def _coil_words(coils: Sequence[bool]) -> list[int]:
    """Coils as pymodbus stores them with bit addressing: coil 16r+i is bit i of register r."""
    words = [0] * ((len(coils) + 15) // 16)
    for index, on in enumerate(coils):
        if on:
            words[index // 16] |= 1 << (index % 16)
    return words


class _StrictCore(SimCore):
    """SimCore that raises NoSuchIdException for a slave it does not serve."""

    def __init__(self, devices: list[SimDevice], stats: ServerStats) -> None:
        super().__init__(devices)
        self._stats = stats

    def _check(self, device_id: int) -> None:
        if device_id not in self.devices:
            self._stats.other_slaves += 1
            raise NoSuchIdException(f"slave {device_id} is not served here")
        self._stats.requests[device_id] = self._stats.requests.get(device_id, 0) + 1

    def _count(self, result: _T) -> _T:
        """Count exceptions other than 04 (which the action counts with its reason)."""
        if isinstance(result, ExcCodes) and result != ExcCodes.DEVICE_FAILURE:
            self._stats.rejected += 1
        return result

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        self._check(device_id)
        return self._count(await super().async_getValues(device_id, func_code, address, count))

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        self._check(device_id)
        return self._count(await super().async_setValues(device_id, func_code, address, values))


class _Handler(ServerRequestHandler):
    """Request handler with an inter-frame gap, bad-frame counters, and no stray answers."""

    def __init__(self, server: _Server) -> None:
        super().__init__(server, None, None, None)  # type: ignore[no-untyped-call]
        self._stats = server.owner.stats
        self._gap_s = server.owner.frame_gap_s
        self._last_rx = 0.0

    def _dropped(self, count: int) -> None:
        if count:
            self._stats.bad_frames += 1
            self._stats.dropped_bytes += count

    def datagram_received(self, data: bytes, addr: tuple[Any, ...] | None) -> None:
        now = time.monotonic()
        if self.recv_buffer and now - self._last_rx > self._gap_s:
            self._dropped(len(self.recv_buffer))
            self.recv_buffer = b""
        self._last_rx = now
        self._stats.bytes_received += len(data)
        if len(self.recv_buffer) + len(data) > self.max_buffer_size:
            self._dropped(len(self.recv_buffer) + len(data))  # pymodbus drops all of it
        super().datagram_received(data, addr)

    def callback_data(self, data: bytes, addr: tuple[Any, ...] | None = None) -> int:
        skipped = self.framer.skipped if isinstance(self.framer, HuntingFramer) else 0
        try:
            used = TransactionManager.callback_data(self, data, addr)
        except ModbusIOException:
            # A good CRC around a request pymodbus cannot decode. Its answer would carry
            # function 00 and maybe another device's id: stay silent, count it.
            self._dropped(len(data))
            return len(data)
        if isinstance(self.framer, HuntingFramer):
            self._dropped(self.framer.skipped - skipped)
        if self.last_pdu:
            self._stats.frames += 1
            self.loop.call_soon(self.handle_later)
        return used


class _Server(ModbusSerialServer):
    def __init__(self, owner: SeplosV3Server, devices: list[SimDevice]) -> None:
        super().__init__(
            devices,
            port=owner.port,
            baudrate=owner.baudrate,
            bytesize=8,
            parity="N",
            stopbits=1,
            ignore_missing_devices=True,
        )
        self.owner = owner
        self.context = _StrictCore(devices, owner.stats)
        self.framer = HuntingFramer

    def callback_new_connection(self) -> _Handler:
        return _Handler(self)


class SeplosV3Server:
    """Answers a Modbus master as one Seplos V3 pack per slave id, from ``source``."""

    def __init__(
        self,
        port: str,
        slaves: Sequence[int],
        source: StateSource,
        *,
        baudrate: int = DEFAULT_BAUDRATE,
        kelvin_offset_raw: float = KELVIN_OFFSET_RAW,
        frame_gap_s: float | None = None,
        verbose: bool = False,
    ) -> None:
        if not slaves:
            raise ValueError("no slave ids to serve")
        for slave in slaves:
            if not 0 <= slave <= 247:
                raise ValueError(f"slave id {slave} is outside 0..247")
        if len(set(slaves)) != len(slaves):
            raise ValueError(f"slave ids repeat: {list(slaves)}")
        self.port = port
        self.slaves = tuple(slaves)
        self.source = source
        self.baudrate = baudrate
        self.kelvin_offset_raw = kelvin_offset_raw
        char_s = 11 / baudrate  # start + 8 data + parity/stop bits
        self.frame_gap_s = max(FRAME_GAP_S, 3.5 * char_s) if frame_gap_s is None else frame_gap_s
        self.verbose = verbose
        self.stats = ServerStats(requests={slave: 0 for slave in self.slaves})
        self._server: _Server | None = None

    def _device(self, slave: int) -> SimDevice:
        action = functools.partial(self._answer, slave)  # pymodbus calls it on every access
        simdata = [SimData(PIC.start // 16, count=PIC.count // 16, datatype=DataType.BITS)]
        simdata += [
            SimData(block.start, count=block.count, values=0, datatype=DataType.REGISTERS)
            for block in REGISTER_BLOCKS
        ]
        return SimDevice(slave, simdata=simdata, use_bit_addressing=True, action=action)

    @staticmethod
    def _in_map(function_code: int, address: int, count: int) -> bool:
        if function_code == PIC.function:  # address is the coil, count is in registers
            first = address // 16
            return PIC.start <= address and first + count <= PIC.end // 16
        return any(b.start <= address and address + count <= b.end for b in REGISTER_BLOCKS)

    async def _answer(
        self,
        slave: int,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Fill the device's registers for one read, or say which exception to answer."""
        stats = self.stats
        if set_values is not None or function_code not in (PIC.function, PIA.function):
            return ExcCodes.ILLEGAL_FUNCTION
        if not self._in_map(function_code, address, count):
            return ExcCodes.ILLEGAL_ADDRESS
        try:
            state = self.source(slave)
            if state is None:
                raise EncodeError("no fresh data")
            image = encode(state, kelvin_offset_raw=self.kelvin_offset_raw)
        except BmslinkError as exc:
            stats.refused += 1
            stats.last_refusal = f"slave {slave}: {exc}"
            _log.debug("refused a read of slave %d: %s", slave, exc)
            return ExcCodes.DEVICE_FAILURE
        for block in REGISTER_BLOCKS:
            at = block.start - start_address
            registers[at : at + block.count] = image.registers[block.start]
        words = _coil_words(image.coils)
        at = PIC.start // 16 - start_address
        registers[at : at + len(words)] = words
        stats.served += 1
        return None

    async def start(self) -> None:
        """Open the port and answer requests in the background until :meth:`stop`."""
        if self._server is not None:
            return
        configure_pymodbus_logging(self.verbose)
        server = _Server(self, [self._device(slave) for slave in self.slaves])
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise ModbusLinkError(f"cannot serve on {self.port}: {exc}") from exc
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> SeplosV3Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# -- client ---------------------------------------------------------------------------------------


class SeplosV3Client:
    """Reads Seplos V3 packs: PIA, PIB and PIC every time, SPA once per slave.

    Requests are not retried: the caller's poll loop owns retries and backoff.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = DEFAULT_BAUDRATE,
        timeout_s: float = 1.0,
        kelvin_offset_raw: float = KELVIN_OFFSET_RAW,
        verbose: bool = False,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.kelvin_offset_raw = kelvin_offset_raw
        self.verbose = verbose
        self._client: AsyncModbusSerialClient | None = None
        self._spa: dict[int, list[int]] = {}

    async def connect(self) -> None:
        configure_pymodbus_logging(self.verbose)
        if self._client is None:
            self._client = AsyncModbusSerialClient(
                self.port,
                baudrate=self.baudrate,
                bytesize=8,
                parity="N",
                stopbits=1,
                timeout=self.timeout_s,
                retries=0,
            )
            self._client.ctx.framer = HuntingFramer(self._client.ctx.framer.decoder)
        if not self._client.connected and not await self._client.connect():
            raise ModbusLinkError(f"cannot open serial port {self.port}")

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def __aenter__(self) -> SeplosV3Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _error(
        self, slave: int, block: Block, cause: str, exception_code: int | None = None
    ) -> ModbusLinkError:
        return ModbusLinkError(
            f"slave {slave} {block.name} (0x{block.start:04X}): {cause}",
            slave=slave,
            block=block.name,
            exception_code=exception_code,
        )

    async def _request(self, slave: int, block: Block) -> ModbusPDU:
        await self.connect()
        assert self._client is not None
        try:
            if block.function == PIC.function:
                reply = await self._client.read_coils(
                    block.start, count=block.count, device_id=slave
                )
            else:
                reply = await self._client.read_input_registers(
                    block.start, count=block.count, device_id=slave
                )
        except ModbusIOException as exc:
            if "No response" in str(exc):
                cause = f"no answer within {self.timeout_s:g} s (timeout)"
            else:
                cause = str(exc)
            raise self._error(slave, block, cause) from None
        except (ConnectionException, PymodbusException) as exc:
            raise self._error(slave, block, str(exc)) from None
        if isinstance(reply, ExceptionResponse):
            code = reply.exception_code
            name = exception_name(code, EXCEPTION_NAMES)
            raise self._error(slave, block, f"exception {code:02X} ({name})", code)
        if reply.function_code != block.function:
            raise self._error(
                slave,
                block,
                f"answered function {reply.function_code:02X}, expected {block.function:02X}",
            )
        return reply

    async def _registers(self, slave: int, block: Block) -> list[int]:
        registers = list((await self._request(slave, block)).registers)
        if len(registers) != block.count:
            raise self._error(
                slave, block, f"answered {len(registers)} registers, expected {block.count}"
            )
        return registers

    async def _coils(self, slave: int, block: Block) -> list[bool]:
        bits = list((await self._request(slave, block)).bits)
        if len(bits) < block.count:
            raise self._error(slave, block, f"answered {len(bits)} coils, expected {block.count}")
        return bits[: block.count]

    async def read(self, slave: int) -> BatteryState:
        """One pack's state; ModbusLinkError names the slave, the block and the cause."""
        try:
            pia = await self._registers(slave, PIA)
            pib = await self._registers(slave, PIB)
            pic = await self._coils(slave, PIC)
            spa = self._spa.get(slave)
            if spa is None:
                spa = await self._registers(slave, SPA)
        except ModbusLinkError:
            self._spa.pop(slave, None)  # it may be another pack when it answers again
            raise
        try:
            state = decode(pia, pib, pic, spa, kelvin_offset_raw=self.kelvin_offset_raw)
        except DecodeError as exc:
            self._spa.pop(slave, None)
            raise ModbusLinkError(f"slave {slave}: {exc}", slave=slave) from None
        self._spa[slave] = spa
        return state

    async def read_many(self, slaves: Sequence[int]) -> dict[int, BatteryState | ModbusLinkError]:
        """Each slave's state, or the error its read ended with; one failure stops nothing."""
        out: dict[int, BatteryState | ModbusLinkError] = {}
        for slave in slaves:
            try:
                out[slave] = await self.read(slave)
            except ModbusLinkError as exc:
                out[slave] = exc
        return out
