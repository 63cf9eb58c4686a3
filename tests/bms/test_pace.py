"""Pace ASCII protocol 0x25: vector PACE-01, real frames, derived SoC/SoH, status tables, the
simulated device, round trips and fuzzing. The framing machinery is tested in test_seplos_v2."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.bms import pace
from bmslink.bms.base import BmsOptions, hex_frames
from bmslink.bms.pace import EXPRESSIBLE, FLAGS, PaceProtocol
from bmslink.bms.seplos_v2 import SeplosV2Protocol
from bmslink.errors import DecodeError, EncodeError
from bmslink.rs485.frame import AsciiFrame, parse_frame
from bmslink.sim.bms import SimBms
from bmslink.sim.pack import Pack
from bmslink.state import ALARM_NAMES, BatteryState

P = PaceProtocol()

# PACE-01
REQ_42 = b"~25014642E00201FD30\r"
PACE_01 = (
    "~25014600F07A0001100CC70CC80CC70CC70CC70CC50CC60CC70CC70CC60CC70CC60CC60CC70CC60CC7060B9B"
    "0B990B990B990BB30BBCFF1FCCCD12D303286A008C2710E1E4"
)
# Real exchanges quoted in nkinnan/esphome-pace-bms (pace_bms_protocol_v25.h), a source of the
# reference §5: 0x44 status (all clear, both MOSFETs on, discharging), 0xC1, 0xC2.
REQ_44 = b"~25014644E00201FD2E\r"
REAL_44 = (
    "~25014600004C000110000000000000000000000000000000000600000000000000000000000E000000000000EF3A"
)
REQ_C1 = b"~250146C10000FD9A\r"
REAL_C1 = "~25014600602850313653313030412D313831322D312E30302000F58E"
REQ_C2 = b"~250146C20000FD99\r"
REAL_C2 = (
    "~25014600B05031383132313031333830333039442020202020202020202020202020202020202020202020"
    "202020EE0F"
)


def frame(cid2, info=b"", adr=1, ver=0x25, cid1=0x46):
    return AsciiFrame(ver, adr, cid1, cid2, info).encode()


def state(**changes):
    return SimBms(Pack.lfp(16, 280.0, soc=0.6)).state().merged(changes)


def run_cycle(protocol, source, address, identity=True):
    frames = []
    conversation = protocol.conversation(address, identity=identity)
    request = next(conversation)
    while True:
        replies = protocol.answer(request.data, source)
        assert all(r.startswith(request.reply_prefix) for r in replies)
        frames += [request.data, *replies]
        try:
            request = conversation.send(replies)
        except StopIteration:
            return frames


def status_info(cells=(0,) * 16, temps=(0,) * 6, items=(0, 0, 0), system=0x06, **fields):
    """A 0x44 INFO; ``fields`` by name with spaces as underscores (protection_status_1=...)."""
    values = {name.replace(" ", "_"): 0 for name, _ in pace.STATUS_FIELDS}
    values.update(system_status=system, **fields)
    out = bytes([0, 1, len(cells), *cells, len(temps), *temps, *items])
    for name, fmt in pace.STATUS_FIELDS:
        out += values[name.replace(" ", "_")].to_bytes(2 if fmt == "u16" else 1, "big")
    return out


def decode_status(**kwargs):
    return P.decode([REQ_44, frame(0, status_info(**kwargs))])


# -- PACE-01 --------------------------------------------------------------------------------------

PACE_01_VALUES = {
    "cells_v": [
        3.271, 3.272, 3.271, 3.271, 3.271, 3.269, 3.270, 3.271,
        3.271, 3.270, 3.271, 3.270, 3.270, 3.271, 3.270, 3.271,
    ],
    "cell_min_v": 3.269,
    "cell_min_id": "6",
    "cell_max_v": 3.272,
    "cell_max_id": "2",
    "temperatures_c": [24.1, 23.9, 23.9, 23.9, 26.5, 27.4],
    "cell_temp_min_c": 23.9,
    "cell_temp_max_c": 24.1,
    "temperature_c": 24.0,  # mean of the four cell sensors, 23.95
    "current_a": -2.25,
    "voltage_v": 52.429,
    "remaining_ah": 48.19,
    "capacity_ah": 103.46,
    "installed_capacity_ah": 100.0,
    "cycles": 140,
    "soc_pct": 46.6,  # 48.19 / 103.46, derived
    "soh_pct": 100.0,  # 103.46 / 100.00 = 103.5 %, capped
}  # fmt: skip


def test_pace_01_request_is_byte_exact():
    requests = list(P.conversation(1, identity=False))
    assert requests[0].data == REQ_42
    assert requests[1].data == REQ_44
    assert all(r.reply_prefix == b"~250146" for r in requests)
    first = list(P.conversation(1, identity=True))
    assert [r.data for r in first] == [REQ_42, REQ_44, REQ_C1, REQ_C2]
    assert [r.optional for r in first] == [False, False, True, True]


@pytest.mark.parametrize("with_request", [True, False])
def test_pace_01_reply_decodes_to_the_stated_values(with_request):
    frames = [REQ_42, *hex_frames([PACE_01])] if with_request else hex_frames([PACE_01])
    assert P.decode(frames).to_dict() == PACE_01_VALUES


def test_pace_01_layout():
    info = parse_frame(hex_frames([PACE_01])[0]).info
    assert len(info) == 61 and info[:3] == b"\x00\x01\x10" and info[54] == 3


def test_kelvin_offset_default_2730_and_option():
    got = PaceProtocol(BmsOptions(kelvin_offset_raw=2731)).decode(hex_frames([PACE_01]))
    assert got.temperatures_c == [24.0, 23.8, 23.8, 23.8, 26.4, 27.3]


def test_total_voltage_is_millivolts_not_seplos_10_mv():
    with pytest.raises(DecodeError, match="frame 1: VER 25, seplos frames carry 20"):
        SeplosV2Protocol().decode(hex_frames([PACE_01]))
    with pytest.raises(DecodeError, match="frame 1: VER 20, pace frames carry 25"):
        P.decode([b"~20004642E00200FD37\r"])


# -- derived SoC / SoH ----------------------------------------------------------------------------


def _analog(remaining, full, design, count=3, extra=()):
    info = bytes([0, 1, 1]) + (3300).to_bytes(2, "big") + bytes([1]) + (2930).to_bytes(2, "big")
    info += (0).to_bytes(2, "big") + (3300).to_bytes(2, "big") + remaining.to_bytes(2, "big")
    info += bytes([count]) + full.to_bytes(2, "big") + (5).to_bytes(2, "big")
    info += design.to_bytes(2, "big") + b"".join(e.to_bytes(2, "big") for e in extra)
    return P.decode([REQ_42, frame(0, info)])


@pytest.mark.parametrize(
    ("remaining", "full", "design", "soc", "soh"),
    [
        (5000, 10000, 10000, 50.0, 100.0),
        (3333, 10000, 12000, 33.3, 83.3),
        (10500, 10000, 9000, 100.0, 100.0),  # capped to the contract's range
        (0, 10000, 10000, 0.0, 100.0),
        (100, 0, 10000, None, 0.0),  # no full capacity: no SoC
        (100, 10000, 0, 1.0, None),  # no design capacity: no SoH
    ],
)
def test_soc_and_soh_are_ratios_of_the_capacities(remaining, full, design, soc, soh):
    got = _analog(remaining, full, design)
    assert (got.soc_pct, got.soh_pct) == (soc, soh)


def test_a_single_sensor_is_a_board_sensor_and_extra_items_are_skipped():
    got = _analog(5000, 10000, 10000, count=5, extra=(7, 8))
    assert got.temperatures_c == [20.0] and got.temperature_c is None
    assert got.cycles == 5
    with pytest.raises(
        DecodeError,
        match=r"frame 2: 0x42 analog values: user-defined item count is 2 \(byte 10\), at least 3 needed .* the device sends 3",
    ):
        P.decode([REQ_42, frame(0, bytes([0, 1, 0, 0]) + bytes(6) + bytes([2]) + bytes(4))])


# -- 0x44 status ----------------------------------------------------------------------------------


def test_real_status_reply_all_clear_both_mosfets_on():
    for frames in ([REQ_44, *hex_frames([REAL_44])], hex_frames([REAL_44])):
        assert P.decode(frames).to_dict() == {
            "alarms": [],
            "warnings": [],
            "charge_enable": True,
            "discharge_enable": True,
        }


@pytest.mark.parametrize(
    ("fields", "alarms", "warnings"),
    [
        ({"protection_status_1": 0x01}, ["high_voltage"], []),
        ({"protection_status_1": 0x0A}, ["low_voltage"], []),
        ({"protection_status_1": 0x30}, ["high_charge_current", "high_discharge_current"], []),
        ({"protection_status_1": 0x40}, ["short_circuit"], []),
        ({"protection_status_1": 0x80}, [], []),  # undefined
        ({"protection_status_2": 0x05}, ["high_temperature_charge", "low_temperature_charge"], []),
        ({"protection_status_2": 0x7A}, ["high_temperature", "low_temperature"], []),
        ({"protection_status_2": 0x80}, [], []),  # "fully": the full-charge stop
        ({"fault_status": 0x03}, ["contactor"], []),
        ({"fault_status": 0x34}, ["bms_internal"], []),
        ({"fault_status": 0xC8}, [], []),  # undefined bits
        ({"warning_status_1": 0x0F}, [], ["high_voltage", "low_voltage"]),
        ({"warning_status_1": 0x30}, [], ["high_charge_current", "high_discharge_current"]),
        ({"warning_status_2": 0x05}, [], ["high_temperature_charge", "low_temperature_charge"]),
        ({"warning_status_2": 0x7A}, [], ["high_temperature", "low_temperature"]),
        ({"warning_status_2": 0x80}, [], ["low_voltage"]),  # low power
        ({"configuration_status": 0xFF, "balance_status": 0xFFFF}, [], []),
        ({"protection_status_1": 0x01, "warning_status_1": 0x05}, ["high_voltage"], []),
    ],
)
def test_status_table_rows(fields, alarms, warnings):
    got = decode_status(**fields)
    assert (got.alarms, got.warnings) == (alarms, warnings)


def test_item_bytes_are_warnings():
    cells = [0] * 16
    cells[0] = 0x02
    got = decode_status(cells=cells, temps=(0, 0, 0, 0, 0, 0x01), items=(0x02, 0x01, 0x02))
    assert got.warnings == [
        "high_voltage",
        "low_voltage",
        "low_temperature",
        "high_charge_current",
        "high_discharge_current",
    ]
    assert decode_status(items=(0x01, 0, 0)).warnings == ["general"]  # charge current "low"
    assert decode_status(items=(0, 0xF0, 0)).warnings == ["general"]
    assert decode_status(items=(0, 0, 0x85)).warnings == ["general"]  # user defined


@pytest.mark.parametrize(
    ("system", "charge", "discharge"),
    [
        (0x00, False, False),
        (0x02, True, False),
        (0x04, False, True),
        (0xFF, True, True),
        (0xF9, False, False),
    ],
)
def test_system_status_bit1_charge_bit2_discharge(system, charge, discharge):
    got = decode_status(system=system)
    assert (got.charge_enable, got.discharge_enable) == (charge, discharge)


def test_status_length_is_exact():
    info = status_info()
    with pytest.raises(
        DecodeError,
        match=r"frame 2: 0x44 status: INFO ends after 37 bytes, reading warning status 2 needs bytes 37..37",
    ):
        P.decode([REQ_44, frame(0, info[:-1])])
    with pytest.raises(
        DecodeError, match="frame 2: 0x44 status: 2 unexpected bytes after the last field"
    ):
        P.decode([REQ_44, frame(0, info + b"\x00\x00")])


def test_every_flag_names_a_contract_alarm_and_a_status_field():
    fields = {name for name, _ in pace.STATUS_FIELDS}
    for flag in FLAGS:
        assert flag.name in ALARM_NAMES and flag.field in fields
    assert set(EXPRESSIBLE["alarm"]) == set(ALARM_NAMES) - {"cell_imbalance", "general"}
    assert set(EXPRESSIBLE["warning"]) == set(ALARM_NAMES) - {
        "short_circuit",
        "contactor",
        "bms_internal",
        "cell_imbalance",
    }


# -- identity ----------------------------------------------------------------------------------------


def test_real_hardware_and_serial_replies():
    frames = [REQ_C1, *hex_frames([REAL_C1]), REQ_C2, *hex_frames([REAL_C2])]
    assert P.decode(frames).to_dict() == {
        "hardware": "P16S100A-1812-1.00",
        "serial": "1812101380309D",
    }


def test_text_replies_need_their_request():
    with pytest.raises(
        DecodeError,
        match=r"frame 1: a reply without its request \(20 INFO bytes\) fits no pace reply layout \(0xC1 hardware version and 0xC2 serial number replies need their request before them\)",
    ):
        P.decode(hex_frames([REAL_C1]))


def test_blank_text_is_absent_and_non_ascii_refused():
    assert P.decode([REQ_C1, frame(0, b" " * 20)]).hardware is None
    with pytest.raises(
        DecodeError, match=r"frame 2: 0xC2 serial number: serial number is not ASCII \(byte 3\)"
    ):
        P.decode([REQ_C2, frame(0, b"ABC\xe9")])


# -- context and errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (
            [REQ_42, frame(0x09)],
            r"frame 2: address 01 answered command 0x42 analog values with RTN 09 \(operation or write error\)",
        ),
        ([frame(0x02)], r"frame 1: address 01 answered a request with RTN 02 \(CHKSUM error\)"),
        (
            [frame(0x01)],
            "frame 1: CID2 01 is neither a pace command nor a return code",
        ),  # Seplos: VER error
        ([frame(0x33)], "frame 1: CID2 33 is neither a pace command nor a return code it defines"),
        ([frame(0x42, b"\x01", cid1=0x4A)], "frame 1: CID1 4A, pace uses 46 or 4F"),
        ([b"~25014642E00201FD31\r"], "frame 1: checksum mismatch: expected FD30, got FD31"),
    ],
)
def test_decode_errors_name_the_frame_and_the_fault(frames, message):
    with pytest.raises(DecodeError, match=message):
        P.decode(frames)


def test_li_ion_cid1_and_configuration_commands_are_accepted():
    info = parse_frame(hex_frames([PACE_01])[0]).info
    got = P.decode([frame(0x42, b"\x01", cid1=0x4F), frame(0, info, cid1=0x4F)])
    assert got.voltage_v == 52.429
    # a PbmsTools configuration read (0xD1) and its reply: known, not decoded, skipped
    assert P.decode([frame(0xD1), frame(0, bytes.fromhex("010E100E740D340A"))]).to_dict() == {}


# -- the simulated device -------------------------------------------------------------------------


def test_answer_serves_analog_values_in_mv_and_6_sensors():
    s = state()
    (reply,) = P.answer(REQ_42, lambda a: s)
    info = parse_frame(reply).info
    assert len(info) == 61 and info[2] == 16 and info[35] == 6
    assert info[44:48] == bytes(4)  # MOSFET and environment: no reading (raw 0)
    assert int.from_bytes(info[50:52], "big") == round(s.voltage_v * 1000)
    got = P.decode([REQ_42, reply])
    assert got.temperatures_c == s.temperatures_c and got.cells_v == s.cells_v
    assert got.soc_pct == s.soc_pct and got.soh_pct == 100.0


def test_answer_status_flags_items_and_fets():
    cells = [3.3] * 16
    cells[3] = 2.4
    s = state(
        cells_v=cells,
        alarms=["low_voltage", "bms_internal"],
        warnings=["high_charge_current", "general", "cell_imbalance"],
        charge_enable=False,
        current_a=3.0,
    )
    (reply,) = P.answer(REQ_44, lambda a: s)
    info = parse_frame(reply).info
    assert info[3 + 3] == 0x01  # cell 4 below its lower limit
    items = info[26:29]
    assert items == bytes([0x02, 0xF0, 0x00])  # charge current high; general on the next item
    p1, p2, system, config, fault = info[29:34]
    assert (p1, p2, config, fault) == (0x02, 0x00, 0x00, 0x20)  # cell UV; sampling fault
    assert system == 0x04 | 0x20  # discharge MOSFET on, charging
    assert info[34:36] == bytes(2)  # balancing
    assert info[36:38] == bytes([0x10, 0x00])  # warning status 1 bit 4: charge current
    got = P.decode([REQ_44, reply])
    assert got.alarms == ["low_voltage", "bms_internal"]
    assert got.warnings == ["high_charge_current", "general"]  # cell_imbalance has no flag
    assert (got.charge_enable, got.discharge_enable) == (False, True)


def test_answer_identity_pads_text():
    (reply,) = P.answer(REQ_C1, lambda a: state(hardware="P16S100A"))
    assert parse_frame(reply).info == b"P16S100A" + b" " * 12
    (reply,) = P.answer(REQ_C2, lambda a: state(serial="SN1"))
    assert parse_frame(reply).info == b"SN1" + b" " * 37
    assert P.decode([REQ_C2, reply]).serial == "SN1"


@pytest.mark.parametrize(
    "request_",
    [
        frame(0x42, b"\x01", adr=2),  # not served
        frame(0x42, b"\x01", adr=0x10),
        frame(0xD1),  # a command the device does not serve
        frame(0x99, b"\x0d"),
        frame(0xC1, b"\x01"),  # malformed INFO
        frame(0x42, b"\x01", ver=0x20),
        frame(0x42, b"\x01", cid1=0x4F),
        b"~25014642C00401FD30\r",  # a bad LENID: Pace defines no code for it
    ],
)
def test_answer_is_silent_for_what_it_does_not_serve(request_):
    assert P.answer(request_, lambda a: state() if a == 1 else None) == []


def test_bad_checksum_gets_rtn_02_and_lchksum_rtn_03():
    assert P.answer(b"~25014642E00201FD31\r", lambda a: state()) == [frame(0x02)]
    assert P.answer(b"~25014642F00201FD2F\r", lambda a: state()) == [frame(0x03)]
    assert frame(0x02) == b"~250146020000FDAC\r"
    assert P.answer(b"~25014642E00201FD31\r", lambda a: None) == []
    framer = P.request_framer()
    assert framer.feed(b"~25014642E00201FD31\r~25014642C00401FD30\r") == [b"~25014642E00201FD31\r"]
    assert framer.bad_frames == 2


@pytest.mark.parametrize(
    ("request_", "key"),
    [
        (REQ_42, "cells_v"),
        (REQ_42, "temperatures_c"),
        (REQ_42, "current_a"),
        (REQ_42, "voltage_v"),
        (REQ_42, "remaining_ah"),
        (REQ_42, "capacity_ah"),
        (REQ_42, "cycles"),
        (REQ_42, "installed_capacity_ah"),
        (REQ_44, "alarms"),
        (REQ_44, "charge_enable"),
        (REQ_44, "discharge_enable"),
        (REQ_44, "temperatures_c"),
    ],
)
def test_missing_key_is_refused_by_name(request_, key):
    with pytest.raises(EncodeError, match=f": {key} is missing"):
        P.answer(request_, lambda a: state(**{key: None}))


@pytest.mark.parametrize(
    ("request_", "changes", "message"),
    [
        (
            REQ_42,
            {"voltage_v": 65.536},
            r"0x42 analog values: voltage_v 65.536 is outside 0..65.535",
        ),
        (REQ_42, {"current_a": -327.69}, "current_a -327.69 is outside -327.68..327.67"),
        (REQ_42, {"capacity_ah": 655.36}, "capacity_ah 655.36 is outside 0..655.35"),
        (REQ_42, {"cells_v": []}, "cells_v: Pace carries 1..16 cells, got 0"),
        (
            REQ_42,
            {"temperatures_c": [1.0] * 7},
            "temperatures_c has 7 sensors; .* then MOSFET and environment",
        ),
        (
            REQ_42,
            {"temperatures_c": [6300.0]},
            r"temperatures_c\[0\] = 6300 °C is outside -272.9..6280.5 °C",
        ),
        (REQ_44, {"alarms": ["general"]}, "alarm 'general' has no Pace 0x44 flag"),
        (REQ_C1, {"hardware": "H" * 21}, "hardware 'H{21}' is longer than 20 characters"),
        (REQ_C2, {"serial": "S" * 41}, "serial 'S{41}' is longer than 40 characters"),
    ],
)
def test_values_the_reply_cannot_carry_are_refused_by_field(request_, changes, message):
    with pytest.raises(EncodeError, match=message):
        P.answer(request_, lambda a: state(**changes))


def test_poll_cycle_with_the_simulated_device():
    s = state(hardware="P16S100A-1812-1.00", serial="1812101380309D")
    frames = run_cycle(P, lambda a: s if a == 1 else None, 1)
    assert len(frames) == 8
    got = P.decode(frames)
    present = {k for k, v in got.to_dict().items() if v is not None}
    assert P.keys <= present
    assert (got.hardware, got.serial) == ("P16S100A-1812-1.00", "1812101380309D")
    assert got.voltage_v == s.voltage_v and got.remaining_ah == s.remaining_ah
    assert (got.alarms, got.warnings) == ([], [])
    assert len(run_cycle(P, lambda a: s, 1, identity=False)) == 4


# -- round trip -----------------------------------------------------------------------------------


def grid(low, high, step):
    return st.integers(low, high).map(lambda v: round(v * step, 4))


@st.composite
def pace_states(draw):
    cells = draw(st.lists(grid(2500, 3650, 0.001), min_size=1, max_size=16))
    sensors = draw(st.sampled_from([1, 2, 3, 4, 6]))
    return BatteryState(
        cells_v=cells,
        temperatures_c=draw(st.lists(grid(-200, 600, 0.1), min_size=sensors, max_size=sensors)),
        current_a=draw(grid(-32768, 32767, 0.01)),
        voltage_v=draw(grid(0, 65535, 0.001)),
        remaining_ah=draw(grid(0, 65535, 0.01)),
        capacity_ah=draw(grid(0, 65535, 0.01)),
        installed_capacity_ah=draw(grid(0, 65535, 0.01)),
        cycles=draw(st.integers(0, 0xFFFF)),
        charge_enable=draw(st.booleans()),
        discharge_enable=draw(st.booleans()),
        alarms=draw(st.lists(st.sampled_from(EXPRESSIBLE["alarm"]), unique=True)),
        warnings=draw(st.none() | st.lists(st.sampled_from(ALARM_NAMES), unique=True)),
        hardware=draw(st.none() | st.text("ABZ-019.", min_size=1, max_size=20)),
        serial=draw(st.none() | st.text("ABZ019", min_size=1, max_size=40)),
    )


def close(got, want, step):
    assert got is not None and abs(got - want) <= step / 2 + 1e-9, (got, want)


@settings(max_examples=150)
@given(pace_states(), st.integers(0, 15))
def test_round_trip_through_the_simulated_device(s, address):
    got = P.decode(run_cycle(P, lambda a: s, address))
    for key, step in [
        ("current_a", 0.01),
        ("voltage_v", 0.001),
        ("remaining_ah", 0.01),
        ("capacity_ah", 0.01),
        ("installed_capacity_ah", 0.01),
    ]:
        close(getattr(got, key), getattr(s, key), step)
    full, design = got.capacity_ah, got.installed_capacity_ah
    assert got.soc_pct == (min(100.0, round(100 * got.remaining_ah / full, 1)) if full else None)
    assert got.soh_pct == (min(100.0, round(100 * full / design, 1)) if design else None)
    assert got.cycles == s.cycles and got.cells_v == s.cells_v
    for g, w in zip(got.temperatures_c, s.temperatures_c, strict=True):
        close(g, w, 0.1)
    cell_sensors = got.temperatures_c[:4]
    assert (got.cell_temp_min_c, got.cell_temp_max_c) == (min(cell_sensors), max(cell_sensors))
    assert (got.charge_enable, got.discharge_enable) == (s.charge_enable, s.discharge_enable)
    assert got.alarms == [n for n in ALARM_NAMES if n in s.alarms]
    sent = set(s.warnings or []) & set(EXPRESSIBLE["warning"])
    assert got.warnings == [n for n in ALARM_NAMES if n in sent and n not in s.alarms]
    assert (got.hardware, got.serial) == (s.hardware, s.serial)


# -- fuzz -----------------------------------------------------------------------------------------


@settings(max_examples=150)
@given(st.binary(max_size=120), st.sampled_from([None, 0x42, 0x44, 0xC1, 0xC2, 0x9A]))
def test_decode_of_well_framed_random_info_raises_only_decode_error(info, cid2):
    frames = ([] if cid2 is None else [frame(cid2)]) + [frame(0, info)]
    with contextlib.suppress(DecodeError):
        P.decode(frames)


@settings(max_examples=150)
@given(st.binary(max_size=200), st.integers(1, 40))
def test_framers_and_decode_of_arbitrary_bytes(data, cut):
    for framer in (P.reply_framer(), P.request_framer()):
        for at in range(0, len(data), cut):
            framer.feed(data[at : at + cut])
    with contextlib.suppress(DecodeError):
        P.decode([data])


@settings(max_examples=100)
@given(st.data())
def test_bit_flips_and_truncation_are_named(data):
    good = hex_frames([PACE_01])[0]
    at = data.draw(st.integers(1, len(good) - 2))
    old = good[at : at + 1]
    new = data.draw(st.sampled_from([c for c in b"0123456789ABCDEF" if bytes([c]) != old]))
    with pytest.raises(DecodeError, match="checksum mismatch"):
        P.decode([good[:at] + bytes([new]) + good[at + 1 :]])
    cut = data.draw(st.integers(1, len(good) - 2))
    with pytest.raises(DecodeError, match=r"checksum mismatch|too short"):
        P.decode([good[:cut] + b"\r"])
