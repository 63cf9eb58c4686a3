"""Every BMS type end to end: the simulated device on one PTY end, the real driver on the other.

The device answers with the protocol's own ``answer()`` from simulated BMS
states; the driver polls it through ``SerialLink`` and the protocol's framer and
decoder, as it would a JK, JBD or Daly on ``/dev/ttyUSB0``. Faults a real line
has (noise, a corrupted checksum, a device that stops answering, an adapter
that is unplugged) are switched on while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import serial

from bmslink.bms import jbd
from bmslink.bms.base import IDENTITY_KEYS, BmsProtocol
from bmslink.bms.driver import BmsDriver, PollResult
from bmslink.bms.registry import BMS_TYPES, get_bms
from bmslink.links.serial_port import SerialLink
from bmslink.sim.bms import BmsSettings, SimBms
from bmslink.sim.bms_device import DeviceFaults, SimulatedBmsDevice
from bmslink.sim.nullmodem import NullModem
from bmslink.sim.pack import Pack
from bmslink.state import BatteryState

TYPES = list(BMS_TYPES)
TIMEOUT_S = 0.2
RETRIES = 1
GARBAGE = b"\x00\xff\x13garbage"
#: Names the device serves besides the simulated BMS's manufacturer and product (each short
#: and plain enough for every type's field: JK's 8-character serial, JBD's "M.m" version).
NAMES = {"serial": "SN2024", "firmware": "1.2", "hardware": "HW-3"}

#: Pack voltage resolution on the wire (V); the other types carry 10 mV or finer.
VOLTAGE_TOLERANCE = {"daly": 0.05}  # Daly sends 0.1 V (rounded: half of it at most)
EPS = 1e-6

#: Alarms a type folds into a more general one (its bitmask has no separate bit).
ALARM_FOLDS: dict[str, dict[str, str]] = {
    "jk": {
        "high_temperature_charge": "high_temperature",
        "low_temperature_charge": "low_temperature",
    },
}


def sim_bms(*, soc: float, seed: int, current_a: float, temperature_c: float = 25.0) -> SimBms:
    """A 16S 100 Ah simulated BMS after one second at ``current_a`` (+ = charging)."""
    bms = SimBms(
        Pack.lfp(16, capacity_ah=100, soc=soc, seed=seed),
        BmsSettings(capacity_ah=100, max_charge_current_a=50, max_discharge_current_a=50),
    )
    bms.pack.temperature_c = temperature_c
    bms.pack.apply(current_a, 1.0, 25.0)
    bms.update(current_a, 1.0)
    return bms


def discharging() -> SimBms:
    """Half full, discharging, everything allowed."""
    return sim_bms(soc=0.5, seed=1, current_a=-12.3)


def hot_charging() -> SimBms:
    """80 % and charging while too hot to charge: a latched protection, charging blocked."""
    bms = sim_bms(soc=0.8, seed=2, current_a=7.5, temperature_c=47.0)
    state = bms.state()
    assert state.charge_enable is False and state.alarms == ["high_temperature_charge"]
    return bms


STATES: dict[str, Callable[[], SimBms]] = {"discharging": discharging, "hot-charging": hot_charging}


# -- the rig -------------------------------------------------------------------------------------


class Plug:
    """An opener for SerialLink that can be unplugged (the adapter vanishes from /dev)."""

    def __init__(self) -> None:
        self.plugged = True

    def __call__(self, *args: Any, **kwargs: Any) -> serial.Serial:
        if not self.plugged:
            raise serial.SerialException("could not open port: No such file or directory")
        return serial.Serial(*args, **kwargs)


@dataclass
class Rig:
    protocol: BmsProtocol
    modem: NullModem
    device: SimulatedBmsDevice
    link: SerialLink
    driver: BmsDriver
    packs: dict[int, SimBms]
    plug: Plug
    names: dict[str, str]

    def served(self, address: int) -> BatteryState:
        """What the device serves for ``address`` right now."""
        return self.packs[address].state().merged(self.names)

    @property
    def faults(self) -> DeviceFaults:
        return self.device.faults

    def poll(self, address: int | None = None) -> PollResult:
        return self.driver.poll(self.driver.addresses[0] if address is None else address)


MakeRig = Callable[..., Rig]


@pytest.fixture
def make_rig() -> Iterator[MakeRig]:
    with contextlib.ExitStack() as stack:

        def make(
            name: str,
            packs: Mapping[int, SimBms] | None = None,
            faults: DeviceFaults | None = None,
            names: Mapping[str, str] | None = None,
        ) -> Rig:
            protocol = get_bms(name)
            if packs is None:
                packs = {protocol.default_address: discharging()}
            packs = dict(packs)
            extra = dict(names or {})
            modem = stack.enter_context(NullModem())

            def source(address: int) -> BatteryState | None:
                bms = packs.get(address)
                return None if bms is None else bms.state().merged(extra)

            device = SimulatedBmsDevice(get_bms(name), modem.a_path, source, faults=faults)
            device.start()
            stack.callback(device.stop)
            plug = Plug()
            link = SerialLink(modem.b_path, protocol.baudrate, reopen_interval_s=0.0, opener=plug)
            link.open()  # pyserial flushes input on open: open before the device answers anything
            stack.callback(link.close)
            driver = BmsDriver(protocol, link, list(packs), timeout_s=TIMEOUT_S, retries=RETRIES)
            return Rig(protocol, modem, device, link, driver, packs, plug, extra)

        yield make


# -- comparing a read state with what the device served ------------------------------------------


def folded_alarms(name: str, alarms: list[str] | None) -> list[str]:
    folds = ALARM_FOLDS.get(name, {})
    return sorted({folds.get(a, a) for a in alarms or []})


def assert_matches(protocol: BmsProtocol, got: BatteryState | None, want: BatteryState) -> None:
    """``got`` (decoded from the wire) carries ``want`` within the protocol's resolution."""
    name = protocol.name
    assert got is not None
    missing = sorted(k for k in protocol.keys if getattr(got, k) is None)
    assert not missing, f"{name}: keys promised in protocol.keys but absent: {missing}"

    tol_v = VOLTAGE_TOLERANCE.get(name, 0.01) + EPS
    assert got.voltage_v == pytest.approx(want.voltage_v, abs=tol_v), "voltage_v"
    assert got.current_a is not None and want.current_a is not None
    assert (got.current_a > 0) == (want.current_a > 0), f"current sign {got.current_a}"
    assert got.current_a == pytest.approx(want.current_a, abs=0.1 + EPS), "current_a"
    assert got.soc_pct == pytest.approx(want.soc_pct, abs=1.0 + EPS), "soc_pct"
    assert got.charge_enable is want.charge_enable, "charge_enable"
    assert got.discharge_enable is want.discharge_enable, "discharge_enable"
    assert got.cell_min_v == pytest.approx(want.cell_min_v, abs=0.001 + EPS), "cell_min_v"
    assert got.cell_max_v == pytest.approx(want.cell_max_v, abs=0.001 + EPS), "cell_max_v"
    if got.cells_v is not None or "cells_v" in protocol.keys:
        assert got.cells_v is not None and want.cells_v is not None
        assert len(got.cells_v) == len(want.cells_v), "cell count"
        assert got.cells_v == pytest.approx(want.cells_v, abs=0.001 + EPS), "cells_v"
    if "alarms" in protocol.keys:
        assert folded_alarms(name, got.alarms) == folded_alarms(name, want.alarms), "alarms"
    if "remaining_ah" in protocol.keys:
        assert got.remaining_ah == pytest.approx(want.remaining_ah, abs=0.1 + EPS), "remaining_ah"
    if "capacity_ah" in protocol.keys:
        assert got.capacity_ah == pytest.approx(want.capacity_ah, abs=0.1 + EPS), "capacity_ah"
    if "cycles" in protocol.keys:
        assert got.cycles == want.cycles, "cycles"
    if "temperature_c" in protocol.keys:
        assert got.temperature_c == pytest.approx(want.temperature_c, abs=1.0), "temperature_c"
    for key in ("charge_current_a", "discharge_current_a"):
        if key in protocol.keys:
            assert getattr(got, key) == pytest.approx(getattr(want, key), abs=0.1 + EPS), key


def identity(state: BatteryState | None) -> dict[str, object]:
    assert state is not None
    return {k: getattr(state, k) for k in IDENTITY_KEYS if getattr(state, k) is not None}


# -- 1. every type reads what its device serves --------------------------------------------------


@pytest.mark.parametrize("state_name", list(STATES))
@pytest.mark.parametrize("name", TYPES)
def test_reads_the_served_state(make_rig: MakeRig, name: str, state_name: str) -> None:
    rig = make_rig(name, {get_bms(name).default_address: STATES[state_name]()})
    result = rig.poll()
    assert result.error is None, result.error
    assert result.address == rig.protocol.default_address
    assert_matches(rig.protocol, result.state, rig.served(result.address))
    assert rig.driver.stats.good == 1 and rig.driver.stats.failed == 0
    assert rig.device.stats.encode_errors == 0, rig.device.stats.last_encode_error


@pytest.mark.parametrize("name", TYPES)
def test_two_packs_on_one_port(make_rig: MakeRig, name: str) -> None:
    protocol = get_bms(name)
    addresses = protocol.addresses
    if len(addresses) == 1:
        # one device per port for this type: a second address is refused, never guessed at
        assert list(addresses) == [protocol.default_address]
        with pytest.raises(ValueError, match=name):
            BmsDriver(protocol, SerialLink("/dev/unused"), [addresses.start, addresses.start + 1])
        return
    first = protocol.default_address
    second = first + 1 if first + 1 in addresses else first - 1
    rig = make_rig(name, {first: discharging(), second: hot_charging()})
    for _ in range(2):
        results = rig.driver.cycle()
        assert [r.address for r in results] == [first, second]
        for result in results:
            assert result.error is None, result.error
            assert_matches(rig.protocol, result.state, rig.served(result.address))
    a, b = (r.state for r in results)
    assert a is not None and b is not None
    assert a.current_a != b.current_a and a.charge_enable != b.charge_enable
    assert rig.driver.stats.by_address_failed == {}


# -- 2. and 3. a noisy line ------------------------------------------------------------------------


@pytest.mark.parametrize("name", TYPES)
def test_garbage_before_replies(make_rig: MakeRig, name: str) -> None:
    rig = make_rig(name, faults=DeviceFaults(garbage=GARBAGE))
    for _ in range(2):
        result = rig.poll()
        assert result.error is None, result.error
        assert_matches(rig.protocol, result.state, rig.served(result.address))
    assert rig.driver.noise_bytes > 0


@pytest.mark.parametrize("name", TYPES)
def test_corrupt_reply_is_retried(make_rig: MakeRig, name: str) -> None:
    rig = make_rig(name, faults=DeviceFaults(corrupt_replies=1))
    result = rig.poll()
    assert result.error is None, result.error
    assert_matches(rig.protocol, result.state, rig.served(result.address))
    assert rig.faults.corrupt_replies == 0
    assert rig.driver.bad_frames >= 1
    assert rig.driver.stats.timeouts >= 1
    assert rig.driver.stats.good == 1 and rig.driver.stats.failed == 0


#: Bytes that read as the start of a frame longer than the reply that follows them: the framer
#: would wait for the rest forever and hide the reply (Daly's frames are a fixed 13 bytes and
#: the ASCII types restart at every ``~``, so only these can be fooled).
FALSE_STARTS = {
    "jk": b"\x4e\x57\x01\xf0",  # 4E 57, length 0x01F0
    "jbd": b"\xdd\x03\x00\xff",  # DD, 0x03 reply, status OK, 255 data bytes
    "jk-pb": b"\x01\x03\xfa",  # slave 1, FC03 reply, 250 bytes
    "seplos-v3": b"\x01\x03\xfa",
}


@pytest.mark.parametrize("name", list(FALSE_STARTS))
def test_a_false_frame_start_does_not_hide_the_reply(make_rig: MakeRig, name: str) -> None:
    rig = make_rig(name, faults=DeviceFaults(garbage=FALSE_STARTS[name]))
    result = rig.poll()
    assert result.error is None, result.error
    assert_matches(rig.protocol, result.state, rig.served(result.address))
    assert rig.driver.stats.timeouts == 0, "the reply was found on the first try"
    assert rig.driver.noise_bytes >= len(FALSE_STARTS[name])


# -- 4. and 5. a device that stops answering, an adapter that is unplugged -----------------------


@pytest.mark.parametrize("name", TYPES)
def test_device_goes_silent_and_returns(make_rig: MakeRig, name: str) -> None:
    rig = make_rig(name)
    assert rig.poll().state is not None
    rig.faults.silent = True
    result = rig.poll()
    assert result.state is None
    assert result.error is not None
    assert name in result.error and rig.modem.b_path in result.error
    assert "no valid answer" in result.error
    stats = rig.driver.stats
    assert stats.failed == 1 and stats.last_error == result.error
    assert stats.timeouts >= RETRIES + 1
    assert stats.by_address_failed == {result.address: 1}
    rig.faults.silent = False
    again = rig.poll()
    assert again.error is None, again.error
    assert_matches(rig.protocol, again.state, rig.served(again.address))
    assert stats.good == 2 and stats.failed == 1


@pytest.mark.parametrize("name", TYPES)
def test_identity_is_remembered_per_connection(make_rig: MakeRig, name: str) -> None:
    rig = make_rig(name, names=NAMES)
    served = identity(rig.served(rig.protocol.default_address))
    first = rig.poll()
    assert first.error is None, first.error
    names = identity(first.state)
    assert names.items() <= served.items(), "identity read is not what the device served"
    asked = rig.device.stats.requests  # the first poll of a connection asks for the names too
    for _ in range(2):  # later polls of the same connection: the driver remembers the names
        before = rig.device.stats.requests
        later = rig.poll()
        assert later.error is None, later.error
        assert identity(later.state) == names
        assert rig.device.stats.requests - before <= asked

    # the port closed underneath and a different BMS answers on it: the next use reopens the
    # port (interval 0), and the first poll of the new connection has the new device's names
    rig.link.close()
    rig.names.update(serial="SN2025", firmware="1.3", hardware="HW-4")
    reopened = rig.poll()
    assert reopened.error is None, reopened.error
    assert rig.link.opens == 2
    renamed = {k: getattr(rig.served(reopened.address), k) for k in names}
    assert identity(reopened.state) == renamed, "names of the previous connection"


#: Types whose first poll of a connection asks for names (the others carry them in every cycle
#: or have no such request).
IDENTITY_TYPES = ["jbd", "jk-pb", "seplos", "pace"]


def optional_requests(protocol: BmsProtocol, address: int) -> list[bytes]:
    return [r.data for r in protocol.conversation(address, identity=True) if r.optional]


@pytest.mark.parametrize("name", IDENTITY_TYPES)
def test_a_device_that_ignores_the_identity_request_is_still_read(
    make_rig: MakeRig, name: str
) -> None:
    """JK-PB from firmware 15.36 never answers its about read: the poll must not depend on it."""
    protocol = get_bms(name)
    ignored = optional_requests(protocol, protocol.default_address)
    assert ignored, f"{name} asks for its identity"
    rig = make_rig(name, names=NAMES, faults=DeviceFaults(overrides={r: [] for r in ignored}))
    first = rig.poll()
    assert first.error is None, first.error
    assert_matches(rig.protocol, first.state, rig.served(first.address))
    stats = rig.driver.stats
    assert stats.optional_unanswered == len(ignored) and stats.failed == 0
    assert len(first.notes) == len(ignored) and all("no answer to" in n for n in first.notes)
    asked = rig.device.stats.requests
    second = rig.poll()  # not asked again on this connection: no second wait for silence
    assert second.error is None, second.error
    assert rig.device.stats.requests - asked == asked - len(ignored) * (RETRIES + 1)
    assert second.notes == []
    assert stats.optional_unanswered == len(ignored)

    rig.faults.overrides.clear()  # a firmware update later, and the port reopens
    rig.link.close()
    named = rig.poll()
    assert named.error is None, named.error
    assert identity(named.state).items() <= identity(rig.served(named.address)).items()
    assert identity(named.state), "the names arrive once the device answers"


def test_a_refused_identity_request_costs_the_names_not_the_reading(make_rig: MakeRig) -> None:
    """A JBD that answers 0x05 with the error status: measurements still read, no names."""
    (model,) = optional_requests(get_bms("jbd"), 0)
    refusal = jbd.build_reply(jbd.HARDWARE, b"", status=jbd.STATUS_ERROR)
    rig = make_rig("jbd", names=NAMES, faults=DeviceFaults(overrides={model: [refusal]}))
    result = rig.poll()
    assert result.error is None, result.error
    assert_matches(rig.protocol, result.state, rig.served(result.address))
    assert result.state is not None and result.state.hardware is None
    assert rig.driver.stats.optional_refused == 1 and rig.driver.stats.decode_errors == 0
    (note,) = result.notes
    assert "names not read" in note and "0x05" in note and "status 80" in note, note
    assert rig.poll().error is None
    assert rig.driver.stats.optional_refused == 1, "asked once per connection"


@pytest.mark.parametrize("name", TYPES)
def test_unplug_and_replug(make_rig: MakeRig, name: str) -> None:
    rig = make_rig(name, names=NAMES)
    first = rig.poll()
    assert first.error is None, first.error
    names = identity(first.state)

    rig.plug.plugged = False  # the adapter vanishes: the port is lost and cannot be reopened
    rig.link.close()
    gone = rig.poll()
    assert gone.state is None
    assert gone.error is not None
    assert name in gone.error and rig.modem.b_path in gone.error and "cannot open" in gone.error
    assert rig.driver.stats.failed == 1 and rig.driver.stats.last_error == gone.error
    assert rig.link.opens == 1

    rig.plug.plugged = True  # plugged back in under the same name
    back = rig.poll()
    assert back.error is None, back.error
    assert rig.link.opens == 2
    assert_matches(rig.protocol, back.state, rig.served(back.address))
    assert identity(back.state) == names
    assert rig.driver.stats.good == 2 and rig.driver.stats.failed == 1


# -- 6. on a schedule ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TYPES)
async def test_run_delivers_results_until_stopped(make_rig: MakeRig, name: str) -> None:
    rig = make_rig(name)
    results: list[PollResult] = []
    stop = asyncio.Event()

    def on_result(result: PollResult) -> None:
        results.append(result)
        if len(results) >= 3:
            stop.set()

    await asyncio.wait_for(rig.driver.run(on_result, interval_s=0.05, stop=stop), timeout=10)
    assert len(results) == 3
    for result in results:
        assert result.error is None, result.error
        assert_matches(rig.protocol, result.state, rig.served(result.address))
    assert [r.read_at for r in results] == sorted(r.read_at for r in results)


# -- 7. arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TYPES)
def test_driver_rejects_bad_arguments(name: str) -> None:
    protocol = get_bms(name)
    link = SerialLink("/dev/unused", protocol.baudrate)
    outside = protocol.addresses.stop
    with pytest.raises(ValueError, match=rf"{name}: address {outside} outside"):
        BmsDriver(protocol, link, [protocol.default_address, outside])
    for timeout in (0.0, -1.0):
        with pytest.raises(ValueError, match="timeout_s must be positive"):
            BmsDriver(protocol, link, timeout_s=timeout)
    with pytest.raises(ValueError, match="retries"):
        BmsDriver(protocol, link, retries=-1)
    assert not link.is_open  # checking arguments never touches the port
