"""What every BMS protocol provides, so one driver, one simulated device and one CLI serve all.

A protocol here is pure: it builds the requests of one poll cycle, cuts a byte
stream into checked frames, decodes frames into a BatteryState and, for the
simulated device, answers a request from a BatteryState. The driver
(``bms/driver.py``) owns the port, the timing, retries and reconnects.

A poll cycle is a *conversation*: a generator that yields a ``Request`` and is
sent back the reply frames that answered it, so that a protocol whose next
request depends on an answer (Daly's cell frames, three cells each, depend on
the cell count in 0x94) stays a plain function of bytes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple, Protocol

from bmslink.bms.framing import modbus_crc_ok
from bmslink.bms.modbus_rtu import frame_from_hex
from bmslink.errors import DecodeError
from bmslink.state import FIELD_NAMES, BatteryState

#: ``source(address)``: the state a simulated device serves for that address, None = silent.
StateSource = Callable[[int], BatteryState | None]
JkCurrent = Literal["auto", "sign-bit", "offset"]

#: Keys that name a device, not a measurement: read once per connection, kept afterwards.
IDENTITY_KEYS: tuple[str, ...] = ("manufacturer", "product", "serial", "firmware", "hardware")


@dataclass(frozen=True)
class BmsOptions:
    """Per-installation reading choices where firmwares disagree (bms-protocols.md §6).

    The defaults follow the reference's reading; each option exists because some
    users' hardware needs the other one.
    """

    #: Negate the current after decoding (several Daly firmwares report the opposite sign).
    invert_current: bool = False
    #: Raw value of 0 °C in 0.1 K temperature fields; None = the protocol's own default
    #: (JBD and Seplos V2 2731, Pace 2730, Seplos V3 2731.5).
    kelvin_offset_raw: float | None = None
    #: JK 4E 57 current encoding: "auto" follows tag 0xC0 (protocol version), the others force it.
    jk_current: JkCurrent = "auto"


@dataclass(frozen=True)
class Request:
    """One request of a poll cycle and what completes it."""

    data: bytes
    #: For messages: "0x95 cell voltages", "PIA registers 0x1000-0x1011".
    what: str
    #: Reply frames that complete the request (Daly's 0x95 sends one per three cells).
    replies: int = 1
    #: A reply frame that does not start with this is not the answer (a stray or late frame).
    reply_prefix: bytes = b""
    #: Some firmwares never answer it (JK-PB >= 15.36 and its about block): the poll goes on
    #: without it instead of failing, and the driver does not ask again on this connection.
    optional: bool = False


Conversation = Generator[Request, list[bytes], None]


class Framer(Protocol):
    """Cuts a byte stream into complete frames whose checksum is right."""

    @property
    def noise_bytes(self) -> int:
        """Bytes skipped while hunting for a frame start."""

    @property
    def bad_frames(self) -> int:
        """Candidates dropped for a bad checksum or an impossible length."""

    @property
    def pending(self) -> int:
        """Bytes held for a frame not complete yet."""

    def feed(self, data: bytes) -> list[bytes]: ...

    def idle(self) -> list[bytes]:
        """The line has been quiet: give up unfinished candidates, return frames behind them."""

    def reset(self) -> None: ...


class BmsProtocol(ABC):
    """One BMS protocol: requests, framing, decoding, and answering for the simulated device."""

    #: The ``--type`` name: "jk", "jk-pb", "jbd", "daly", "seplos", "seplos-v3", "pace".
    name: ClassVar[str]
    title: ClassVar[str]
    baudrate: ClassVar[int]
    default_address: ClassVar[int]
    #: Addresses a device of this type can have (one bus may carry several for some types).
    addresses: ClassVar[range]
    #: BatteryState keys a full poll cycle always yields (what the bridge may rely on).
    keys: ClassVar[frozenset[str]]
    #: Seconds of bus silence a device needs between two requests (Daly ~20 ms, JK-PB ~120 ms).
    request_gap_s: ClassVar[float] = 0.0

    def __init__(self, options: BmsOptions | None = None) -> None:
        self.options = options or BmsOptions()

    def check_address(self, address: int) -> None:
        if address not in self.addresses:
            raise ValueError(
                f"{self.name}: address {address} outside "
                f"{self.addresses.start}..{self.addresses.stop - 1}"
            )

    # -- host side -------------------------------------------------------------------------------

    @abstractmethod
    def reply_framer(self) -> Framer:
        """A fresh framer for what a device sends."""

    @abstractmethod
    def conversation(self, address: int, *, identity: bool) -> Conversation:
        """The requests of one poll cycle; ``identity`` adds the ones for names and versions
        (asked once per connection), last and ``optional``: a device that ignores them is
        still read, and a silent device fails on its first measurement request. An optional
        request that got no answer is sent back as ``[]``."""

    def decode(self, frames: Sequence[bytes]) -> BatteryState:
        """One state merged over ``frames`` (later frames win), after the reading options.

        Requests among the frames are accepted and give the replies after them their
        context (which command or registers they answer); DecodeError names the
        frame, byte and field that are wrong.
        """
        state = self._decode(frames)
        if self.options.invert_current and state.current_a is not None:
            state = state.merged({"current_a": -state.current_a or 0.0})
        return state

    @abstractmethod
    def _decode(self, frames: Sequence[bytes]) -> BatteryState: ...

    # -- device side (the simulated BMS) ---------------------------------------------------------

    @abstractmethod
    def request_framer(self) -> Framer:
        """A fresh framer for what a host sends."""

    @abstractmethod
    def answer(self, request: bytes, source: StateSource) -> list[bytes]:
        """The frames a real device would send in reply to ``request``.

        ``source(address)`` gives the state of the addressed pack; None, an address
        this device does not have, or a request it ignores gives [] (silence).
        EncodeError when the state lacks a key the reply must carry.
        """


class AddressedRequest(NamedTuple):
    slave: int
    function: int
    state: BatteryState


def modbus_addressed(request: bytes, slaves: range, source: StateSource) -> AddressedRequest | None:
    """A Modbus request a simulated device must answer: CRC right, one of its ``slaves``, a
    request function, and a state to answer from. None: silence, as a real slave keeps."""
    if len(request) < 4 or not modbus_crc_ok(request):
        return None
    slave, function = request[0], request[1]
    if slave not in slaves or not 1 <= function <= 0x7F:
        return None
    state = source(slave)
    return None if state is None else AddressedRequest(slave, function, state)


def merge(states: Sequence[BatteryState]) -> BatteryState:
    """Later states' keys win; absent keys never overwrite present ones."""
    values: dict[str, object] = {}
    for state in states:
        for name in FIELD_NAMES:
            value = getattr(state, name)
            if value is not None:
                values[name] = value
    return BatteryState(**values)  # type: ignore[arg-type]


def hex_frames(texts: Sequence[str]) -> list[bytes]:
    """Frames from hex text (spaces, colons, dots or dashes between bytes allowed).

    A text starting with ``~`` is an ASCII frame (Seplos V2, Pace) taken as it is,
    with a literal ``\\r`` or a missing end completed to the carriage return.
    """
    frames = []
    for i, text in enumerate(texts, 1):
        stripped = text.strip()
        if stripped.startswith("~"):
            body = stripped.removesuffix("\\r").rstrip("\r")
            frames.append(body.encode("latin-1") + b"\r")
            continue
        try:
            frames.append(frame_from_hex(text))
        except DecodeError as exc:
            raise DecodeError(f"frame {i}: {exc}") from exc
    return frames
