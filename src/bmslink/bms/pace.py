"""Pace BMS over RS485: the ASCII protocol version 0x25 (PbmsTools' protocol), 9600 8N1.

The same ``~ VER ADR CID1 CID2 LENGTH INFO CHKSUM \\r`` frames as Seplos V2,
with VER 0x25 and CID1 0x46; the frame handling, the request framer and the
protocol class are Seplos V2's (``seplos_v2.py``), this module has Pace's
tables. One poll cycle asks 0x42 (analog values) and 0x44 (status) with INFO =
the bus id; the identity asked once per connection adds 0xC1 (hardware
version) and 0xC2 (serial number), both with empty INFO. Facts:
shared/reference/bms-protocols.md §5 (nkinnan/esphome-pace-bms,
syssi/esphome-pace-bms, batmon-ha); vector PACE-01.

Choices where the sources are silent or disagree:

- SoC and SoH are not sent. ``soc_pct`` = remaining / full capacity and
  ``soh_pct`` = full / design capacity, as the reference computes them: a
  ratio of two values the pack sent is a derivation, not a guess (Pylontech
  0x42 gets its SoC the same way). Both are rounded to 0.1 % and capped at
  100 % (the contract's range; PACE-01's full capacity is above its design
  capacity, 103.5 %); a capacity of 0 leaves them absent.
- Temperatures are 0.1 K with 0 °C = raw 2730 (``kelvin_offset_raw`` changes
  it), in the order cells 1-4, MOSFET, environment. As for Seplos V2 the last
  two are the board sensors, the others cell sensors (``cell_temp_*``,
  ``temperature_c`` = their mean); raw 0 is no reading, and the simulated
  device sends 6 sensors (a state's list of up to 4 = cell sensors).
- Total voltage is 1 mV (Seplos: 10 mV), so the simulated device refuses a
  ``voltage_v`` above 65.535 V. Capacities are 10 mAh: remaining ->
  ``remaining_ah``, full -> ``capacity_ah``, design -> ``installed_capacity_ah``.
  The user-defined item count is 3 (full, cycles, design); more are accepted
  and skipped.
- 0x44 (:data:`FLAGS`): protection status 1 and 2 are alarms, warning status 1
  and 2 warnings; the "fully" bit (protection status 2 bit 7) is the full-charge
  stop, a state the charge FET bit already shows, not an alarm. Fault status:
  MOSFET faults are ``contactor`` (the pack's switch), NTC, cell and sampling
  faults ``bms_internal``. "Low power" (warning status 2 bit 7) is a
  ``low_voltage`` warning (the pack is nearly empty). The per-cell,
  per-sensor, charge-current, total-voltage and discharge-current bytes are
  warnings (01 low, 02 high; a current below its lower limit, F0 and the
  user-defined 0x80-0xEF are ``general``).
- ``charge_enable`` / ``discharge_enable`` are system status bits 1 / 2
  (charge / discharge MOSFET on). The configuration bits "MOSFET turned off"
  are not read: the system status already says it.
- The simulated device sets the first flag listed for a name; it refuses an
  alarm with no flag (``cell_imbalance``, ``general``), does not send a
  warning with no flag (``short_circuit``, ``contactor``, ``bms_internal``,
  ``cell_imbalance``), and sends a ``general`` warning as F0 on the first item
  byte still normal. Configuration status and balancing are sent as 0.
- 0xC1 / 0xC2 replies are ASCII text of any length (real packs: 20 bytes of
  hardware version, 20 or 40 of serial number); blank is absent. They cannot
  be told apart by layout, so they need their request among the frames. The
  simulated device sends 20 and 40 bytes, space-padded.
- Return codes are the Pace document's: 00, 02 CHKSUM, 03 LCHKSUM, 04 CID2
  undefined, 09 operation or write error. The simulated device answers a bad
  CHKSUM / LCHKSUM for a pack it serves with RTN 02 / 03; the document
  defines no code for a bad LENID, so that request gets silence.
- Decoding accepts CID1 0x4F too (a Li-ion variant of the same protocol);
  bmslink asks with 0x46.
"""

from __future__ import annotations

from bmslink.bms.seplos_v2 import (
    CID1_LFP,
    POLL_KEYS,
    AsciiBmsProtocol,
    Command,
    Flag,
    Item,
    ItemHead,
    Level,
    activity_bits,
    alarm_lists,
    analog_state,
    cells_to_write,
    contract_keys,
    expressible,
    read_bits,
    read_counted,
    read_custom,
    read_flags,
    read_text,
    temperatures_to_write,
    write_bits,
    write_cells,
    write_flags,
    write_temperatures,
)
from bmslink.rs485.layout import Reader, Word, Writer
from bmslink.state import ALARM_NAMES, BatteryState, required

VER = 0x25
CID1_LI_ION = 0x4F
#: Raw value of 0 °C in the 0.1 K temperature fields (Pace document, nkinnan/esphome-pace-bms).
KELVIN_OFFSET_RAW = 2730.0
ANALOG_VALUES, STATUS, HARDWARE_VERSION, SERIAL_NUMBER = 0x42, 0x44, 0xC1, 0xC2

#: Every command of the protocol (PbmsTools 2.4); only the first four are decoded and served.
COMMAND_NAMES: dict[int, str] = {
    ANALOG_VALUES: "analog values",
    STATUS: "status",
    HARDWARE_VERSION: "hardware version",
    SERIAL_NUMBER: "serial number",
    0x99: "switch command",
    0x9A: "charge MOSFET switch",
    0x9B: "discharge MOSFET switch",
    0x9C: "shutdown",
    0xA1: "log history",
    0xA6: "remaining capacity",
    0xB1: "read date and time",
    0xB2: "write date and time",
    0xEB: "read communication protocols",
    0xEC: "write communication protocols",
    0xED: "read charge current limiter start current",
    0xEE: "write charge current limiter start current",
    **{cid2: "read/write configuration" for cid2 in (0xA0, 0xA8, 0xAE, 0xAF, 0xB5, 0xB6)},
    **{cid2: "read/write configuration" for cid2 in range(0xD0, 0xE8)},
}

RTN_NAMES: dict[int, str] = {
    0x00: "normal",
    0x02: "CHKSUM error",
    0x03: "LCHKSUM error",
    0x04: "CID2 undefined",
    0x09: "operation or write error",
}

# -- 0x42 analog values --------------------------------------------------------------------------

ANALOG = "0x42 analog values"
#: After the cell and temperature arrays.
ANALOG_HEAD: tuple[Word, ...] = (
    Word("current_a", "s16", 0.01, doc="10 mA, + = charging"),
    Word("voltage_v", "u16", 0.001, doc="total voltage, 1 mV"),
    Word("remaining_ah", "u16", 0.01, doc="remaining capacity, 10 mAh"),
)
#: The user-defined items after their count byte (Pace sends 3).
ANALOG_CUSTOM: tuple[Word, ...] = (
    Word("capacity_ah", "u16", 0.01, doc="full capacity, 10 mAh"),
    Word("cycles", "u16", integer=True),
    Word("installed_capacity_ah", "u16", 0.01, doc="design capacity, 10 mAh"),
)


def ratio_pct(part: float, whole: float) -> float | None:
    """``part`` / ``whole`` in %, 0.1 % steps, at most 100; absent for a whole of 0."""
    if whole <= 0:
        return None
    return min(100.0, round(100 * part / whole, 1))


def decode_analog(info: bytes, offset: float) -> BatteryState:
    r = Reader(info, ANALOG)
    r.u8("data flag")
    r.u8("bus id")
    cells = read_counted(r, "cell count", "u16", "cell voltage")
    temps = read_counted(r, "temperature count", "u16", "temperature")
    values = r.words(ANALOG_HEAD)
    values.update(read_custom(r, ANALOG_CUSTOM, len(ANALOG_CUSTOM), len(ANALOG_CUSTOM)))
    r.done()
    values["soc_pct"] = ratio_pct(values["remaining_ah"], values["capacity_ah"])
    values["soh_pct"] = ratio_pct(values["capacity_ah"], values["installed_capacity_ah"])
    return BatteryState(**contract_keys(values), **analog_state(cells, temps, offset))


def encode_analog(state: BatteryState, group: int, offset: float) -> bytes:
    cells = cells_to_write(state, ANALOG, "Pace")
    temps = temperatures_to_write(state, offset, ANALOG, "MOSFET and environment")
    w = Writer(ANALOG)
    w.u8(0x00, "data flag")
    w.u8(group, "bus id")
    write_cells(w, cells)
    write_temperatures(w, temps, offset)
    w.words(ANALOG_HEAD, {word.key: getattr(state, word.key) for word in ANALOG_HEAD})
    w.u8(len(ANALOG_CUSTOM), "user-defined item count")
    w.words(ANALOG_CUSTOM, {word.key: getattr(state, word.key) for word in ANALOG_CUSTOM})
    return w.bytes()


# -- 0x44 status ---------------------------------------------------------------------------------

STATUS_INFO = "0x44 status"
#: The item bytes after the temperature items.
FIXED_ITEMS: tuple[Item, ...] = (
    Item("charge current warning", None, "high_charge_current"),
    Item("total voltage warning", "low_voltage", "high_voltage", encode=False),
    Item("discharge current warning", None, "high_discharge_current"),
)
STATUS_HEAD = ItemHead("bus id", "warning", FIXED_ITEMS)
#: The status fields after the items, in order.
STATUS_FIELDS: tuple[tuple[str, str], ...] = (
    ("protection status 1", "u8"),
    ("protection status 2", "u8"),
    ("system status", "u8"),
    ("configuration status", "u8"),
    ("fault status", "u8"),
    ("balance status", "u16"),
    ("warning status 1", "u8"),
    ("warning status 2", "u8"),
)

_P1, _P2 = "protection status 1", "protection status 2"
_W1, _W2 = "warning status 1", "warning status 2"
_FAULT = "fault status"

#: Every status bit that is an alarm or a warning. The simulated device sets the first flag
#: listed for a name at its level.
FLAGS: tuple[Flag, ...] = (
    Flag(_P1, 0, "high_voltage", "alarm", "cell over-voltage"),
    Flag(_P1, 1, "low_voltage", "alarm", "cell under-voltage"),
    Flag(_P1, 2, "high_voltage", "alarm", "pack over-voltage"),
    Flag(_P1, 3, "low_voltage", "alarm", "pack under-voltage"),
    Flag(_P1, 4, "high_charge_current", "alarm", "charge over-current"),
    Flag(_P1, 5, "high_discharge_current", "alarm", "discharge over-current"),
    Flag(_P1, 6, "short_circuit", "alarm", "short circuit"),
    Flag(_P2, 0, "high_temperature_charge", "alarm", "charge high temperature"),
    Flag(_P2, 1, "high_temperature", "alarm", "discharge high temperature"),
    Flag(_P2, 2, "low_temperature_charge", "alarm", "charge low temperature"),
    Flag(_P2, 3, "low_temperature", "alarm", "discharge low temperature"),
    Flag(_P2, 4, "high_temperature", "alarm", "MOSFET high temperature"),
    Flag(_P2, 5, "high_temperature", "alarm", "environment high temperature"),
    Flag(_P2, 6, "low_temperature", "alarm", "environment low temperature"),
    # protection status 2 bit 7 "fully": the full-charge stop, a state
    Flag(_FAULT, 0, "contactor", "alarm", "charge MOSFET fault"),
    Flag(_FAULT, 1, "contactor", "alarm", "discharge MOSFET fault"),
    Flag(_FAULT, 5, "bms_internal", "alarm", "sampling fault (listed first: sent for the name)"),
    Flag(_FAULT, 2, "bms_internal", "alarm", "NTC fault"),
    Flag(_FAULT, 4, "bms_internal", "alarm", "cell fault"),
    Flag(_W1, 0, "high_voltage", "warning", "cell high voltage"),
    Flag(_W1, 1, "low_voltage", "warning", "cell low voltage"),
    Flag(_W1, 2, "high_voltage", "warning", "pack high voltage"),
    Flag(_W1, 3, "low_voltage", "warning", "pack low voltage"),
    Flag(_W1, 4, "high_charge_current", "warning", "charge current"),
    Flag(_W1, 5, "high_discharge_current", "warning", "discharge current"),
    Flag(_W2, 0, "high_temperature_charge", "warning", "charge high temperature"),
    Flag(_W2, 1, "high_temperature", "warning", "discharge high temperature"),
    Flag(_W2, 2, "low_temperature_charge", "warning", "charge low temperature"),
    Flag(_W2, 3, "low_temperature", "warning", "discharge low temperature"),
    Flag(_W2, 4, "high_temperature", "warning", "environment high temperature"),
    Flag(_W2, 5, "low_temperature", "warning", "environment low temperature"),
    Flag(_W2, 6, "high_temperature", "warning", "MOSFET high temperature"),
    Flag(_W2, 7, "low_voltage", "warning", "low power: the pack is nearly empty"),
)

#: FET states: system status bit 1 charge MOSFET on, bit 2 discharge MOSFET on.
SWITCHES: dict[str, tuple[str, int]] = {
    "charge_enable": ("system status", 1),
    "discharge_enable": ("system status", 2),
}
#: System status bits the simulated device sets from the current's sign.
ACTIVITY: dict[str, tuple[str, int]] = {
    "discharging": ("system status", 3),
    "charging": ("system status", 5),
}

#: Names 0x44 can carry per level (``general`` warnings ride on an item byte).
EXPRESSIBLE: dict[Level, tuple[str, ...]] = {
    "alarm": expressible(FLAGS, "alarm"),
    "warning": tuple(n for n in ALARM_NAMES if n in {*expressible(FLAGS, "warning"), "general"}),
}


def decode_status(info: bytes, offset: float) -> BatteryState:
    r = Reader(info, STATUS_INFO)
    item_warnings_seen = STATUS_HEAD.read(r)
    fields = {name: r.number(fmt, name) for name, fmt in STATUS_FIELDS}
    r.done()
    seen = read_flags(fields, FLAGS)
    warnings = seen["warning"] | item_warnings_seen
    return BatteryState(**alarm_lists(seen["alarm"], warnings), **read_bits(fields, SWITCHES))


def encode_status(state: BatteryState, group: int, offset: float) -> bytes:
    alarms = list(required(state, "alarms", STATUS_INFO))
    warnings = list(state.warnings or [])
    cells = cells_to_write(state, STATUS_INFO, "Pace")
    temps = temperatures_to_write(state, offset, STATUS_INFO, "MOSFET and environment")
    fields = write_flags(alarms, warnings, FLAGS, STATUS_INFO, "Pace 0x44")
    write_bits(fields, state, SWITCHES, STATUS_INFO)
    activity_bits(fields, state.current_a, ACTIVITY)
    w = Writer(STATUS_INFO)
    STATUS_HEAD.write(w, group, STATUS_HEAD.codes(cells, temps, alarms, warnings))
    for name, fmt in STATUS_FIELDS:
        w.number(fmt, fields.get(name, 0), name)
    return w.bytes()


# -- 0xC1 hardware version, 0xC2 serial number ---------------------------------------------------

HARDWARE = "0xC1 hardware version"
SERIAL = "0xC2 serial number"
HARDWARE_SIZE = 20
SERIAL_SIZE = 40


def decode_hardware(info: bytes, offset: float) -> BatteryState:
    return BatteryState(hardware=read_text(Reader(info, HARDWARE), len(info), "hardware version"))


def decode_serial(info: bytes, offset: float) -> BatteryState:
    return BatteryState(serial=read_text(Reader(info, SERIAL), len(info), "serial number"))


def encode_hardware(state: BatteryState, group: int, offset: float) -> bytes:
    w = Writer(HARDWARE)
    w.text(state.hardware or "", HARDWARE_SIZE, "hardware")
    return w.bytes()


def encode_serial(state: BatteryState, group: int, offset: float) -> bytes:
    w = Writer(SERIAL)
    w.text(state.serial or "", SERIAL_SIZE, "serial")
    return w.bytes()


# -- the protocol class --------------------------------------------------------------------------


class PaceProtocol(AsciiBmsProtocol):
    """Pace BMS over RS485, ASCII protocol version 0x25."""

    name = "pace"
    title = "Pace BMS (ASCII protocol 0x25, RS485)"
    baudrate = 9600
    default_address = 1
    addresses = range(0, 16)
    keys = POLL_KEYS

    ver = VER
    accepted_cid1 = frozenset({CID1_LFP, CID1_LI_ION})
    commands = (
        Command(ANALOG_VALUES, ANALOG, decode_analog, encode_analog),
        Command(STATUS, STATUS_INFO, decode_status, encode_status),
        Command(
            HARDWARE_VERSION,
            HARDWARE,
            decode_hardware,
            encode_hardware,
            per_pack=False,
            identity=True,
            recognisable=False,
        ),
        Command(
            SERIAL_NUMBER,
            SERIAL,
            decode_serial,
            encode_serial,
            per_pack=False,
            identity=True,
            recognisable=False,
        ),
    )
    command_names = COMMAND_NAMES
    rtn_names = RTN_NAMES
    answered_rtns = frozenset({0x02, 0x03})
    default_kelvin_offset_raw = KELVIN_OFFSET_RAW
