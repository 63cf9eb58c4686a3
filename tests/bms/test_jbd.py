"""JBD: the public vectors, round trips through the simulated device, framing, refusals, fuzzing."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.bms import jbd
from bmslink.bms.base import BmsOptions, hex_frames
from bmslink.bms.jbd import (
    BASIC_INFO,
    CELL_VOLTAGES,
    EXPRESSIBLE_ALARMS,
    HARDWARE,
    PROTECTION_BITS,
    JbdProtocol,
    build_frame,
    build_reply,
    checksum,
    parse_basic,
    parse_frame,
    read_request,
)
from bmslink.bms.registry import get_bms
from bmslink.errors import DecodeError, EncodeError
from bmslink.sim.bms import SimBms
from bmslink.sim.pack import Pack
from bmslink.state import ALARM_NAMES, STATE_KEYS, BatteryState
from strategies import ALARM_LISTS, TEXT_ALPHABET

JBD_02 = (
    "DD:03:00:1D:06:0B:00:00:01:ED:01:F4:00:00:2C:7C:00:00:00:00:10:00:80:63:02:04:03"
    ":0B:A0:0B:9D:0B:98:FA:55:77"
)
JBD_03 = "DD:04:00:08:0F:23:0F:1C:0F:12:0F:1D:FF:4E:77"
JBD_12 = (
    "DD 03 00 1F 19 DF F8 24 0D A5 0F A0 00 02 24 91 00 00 00 00 00 00 12 57 03 11 04"
    " 0B 98 0B A9 0B 96 0B 97 F8 9A 77"
)
JBD_13 = (
    "DD 04 00 22 0E C8 0E C8 0E CB 0E CF 0E CA 0E C7 0E CA 0E CD 0E C9 0E CA 0E CB 0E CB"
    " 0E C8 0E CC 0E C8 0E C9 0E C9 F1 87 77"
)
#: The reference's MOSFET write (discharge FET off) and the BMS's acknowledgement.
MOSFET_WRITE = "DD 5A E1 02 00 02 FF 1B 77"
MOSFET_ACK = "DD E1 00 00 00 00 77"

PROTOCOL = JbdProtocol()


def frames(*texts):
    return hex_frames(list(texts))


def decode(*texts, **options):
    return JbdProtocol(BmsOptions(**options)).decode(frames(*texts))


def data_of(text):
    return parse_frame(frames(text)[0]).data


def reply_with(text, offset, new):
    """The reply ``text`` with data bytes from ``offset`` replaced by ``new``, re-checksummed."""
    frame = parse_frame(frames(text)[0])
    data = bytearray(frame.data)
    data[offset : offset + len(new)] = new
    return build_reply(frame.register, bytes(data))


def good(**changes):
    """A complete 16-cell state as the simulator gives one; ``changes`` override."""
    values = dict(
        voltage_v=52.8,
        current_a=-12.34,
        temperature_c=21.0,
        soc_pct=64.0,
        remaining_ah=179.2,
        capacity_ah=280.0,
        cycles=12,
        charge_enable=True,
        discharge_enable=False,
        cells_v=[3.3] * 15 + [3.312],
        temperatures_c=[20.4, 21.2, 21.7, 20.7],
        alarms=["low_voltage"],
        warnings=["cell_imbalance"],
        product="SIM-16S280",
    )
    values.update(changes)
    return BatteryState(**values)


def poll(protocol, state, *, identity):
    """Drive ``conversation()`` with ``answer()`` as the device; every frame on the wire."""
    wire = []
    conversation = protocol.conversation(0, identity=identity)
    request = next(conversation)
    while True:
        replies = protocol.answer(request.data, lambda address: state)
        assert len(replies) == request.replies
        assert all(r.startswith(request.reply_prefix) for r in replies)
        wire += [request.data, *replies]
        try:
            request = conversation.send(replies)
        except StopIteration:
            return wire


# -- JBD-01: requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("register", "text"),
    [
        (0x03, "DD A5 03 00 FF FD 77"),
        (0x04, "DD A5 04 00 FF FC 77"),
        (0x05, "DD A5 05 00 FF FB 77"),
        (0xAA, "DD A5 AA 00 FF 56 77"),
    ],
)
def test_jbd_01_read_requests_are_byte_exact(register, text):
    assert read_request(register) == bytes.fromhex(text)


def test_the_poll_cycle_reads_basic_info_then_cells_and_the_model_once():
    cycle = list(PROTOCOL.conversation(0, identity=False))
    assert [r.data for r in cycle] == [
        bytes.fromhex("DD A5 03 00 FF FD 77"),
        bytes.fromhex("DD A5 04 00 FF FC 77"),
    ]
    assert [r.reply_prefix for r in cycle] == [b"\xdd\x03", b"\xdd\x04"]
    first = list(PROTOCOL.conversation(0, identity=True))
    assert [r.data for r in first] == [
        bytes.fromhex("DD A5 03 00 FF FD 77"),
        bytes.fromhex("DD A5 04 00 FF FC 77"),
        bytes.fromhex("DD A5 05 00 FF FB 77"),
    ]
    assert first[2].what == "0x05 hardware version"
    assert [r.optional for r in first] == [False, False, True], "the model read is optional"


def test_the_protocol_is_registered_with_its_serial_facts():
    protocol = get_bms("jbd")
    assert isinstance(protocol, JbdProtocol)
    assert (protocol.name, protocol.baudrate, protocol.addresses) == ("jbd", 9600, range(0, 1))
    assert protocol.keys <= STATE_KEYS
    with pytest.raises(ValueError, match=r"address 1 outside 0\.\.0"):
        next(protocol.conversation(1, identity=False))


# -- JBD-02 / JBD-03: a real 4S pack with the MOSFET software lock -------------------------------


def test_jbd_02_decodes_to_the_stated_values():
    state = decode(JBD_02)
    assert state.to_dict() == {
        "voltage_v": 15.47,
        "current_a": 0.0,
        "remaining_ah": 4.93,
        "capacity_ah": 5.0,
        "cycles": 0,
        "firmware": "8.0",
        "soc_pct": 99.0,
        # FET status 0x02: discharge on, charge off (the software lock blocks charging)
        "charge_enable": False,
        "discharge_enable": True,
        # protection 0x1000 is the MOSFET software lock only: no alarm (module docstring)
        "alarms": [],
        "warnings": [],
        "temperatures_c": [24.5, 24.2, 23.7],
        "cell_temp_min_c": 23.7,
        "cell_temp_max_c": 24.5,
        "temperature_c": 24.1,  # mean of the NTCs, 0.1 °C
    }


def test_jbd_02_fields_outside_the_contract():
    info = parse_basic(data_of(JBD_02))
    assert info.production_date == (2022, 3, 28)
    assert info.balance == 0
    assert info.values["protection"] == 4096
    assert info.values["software_version"] == 0x80
    assert info.values["fet_status"] == 0x02
    assert info.cell_count == 4
    assert info.values["ntc_count"] == 3
    assert info.extra == b""


def test_jbd_03_decodes_to_the_stated_cells():
    state = decode(JBD_03)
    assert state.cells_v == [3.875, 3.868, 3.858, 3.869]
    assert (state.cell_min_v, state.cell_min_id) == (3.858, "3")
    assert (state.cell_max_v, state.cell_max_id) == (3.875, "1")
    assert round(state.cell_max_v - state.cell_min_v, 3) == 0.017
    assert sum(state.cells_v) / 4 == pytest.approx(3.8675)
    assert state.alarms is None and state.warnings is None  # no 0x03: alarm state unknown


def test_jbd_02_and_03_merge_and_their_cell_counts_agree():
    state = decode(JBD_02, JBD_03)
    assert state.voltage_v == 15.47
    assert state.cells_v == [3.875, 3.868, 3.858, 3.869]


# -- JBD-12 / JBD-13: the vendor document's 17S example ------------------------------------------


def test_jbd_12_decodes_to_the_stated_and_derived_values():
    state = decode(JBD_12)
    assert state.voltage_v == 66.23
    assert state.current_a == -20.12  # 0xF824, discharging
    assert state.remaining_ah == 34.93
    assert state.capacity_ah == 40.0
    assert state.cycles == 2
    assert state.firmware == "1.2"  # version byte 0x12
    assert state.soc_pct == 87.0
    assert (state.charge_enable, state.discharge_enable) == (True, True)  # MOS 0x03
    assert state.alarms == [] and state.warnings == []
    # derived from the bytes; the document's "24.7 °C" for NTC1 is an arithmetic slip
    assert state.temperatures_c == [23.7, 25.4, 23.5, 23.6]
    assert state.temperatures_c[0] != 24.7
    assert (state.cell_temp_min_c, state.cell_temp_max_c) == (23.5, 25.4)
    assert state.temperature_c == 24.1  # mean raw 2971.5 rounds half up to 2972


def test_jbd_12_fields_outside_the_contract():
    info = parse_basic(data_of(JBD_12))
    assert info.values["production_date"] == 0x2491
    assert info.production_date == (2018, 4, 17)
    assert info.balance == 0
    assert info.values["protection"] == 0
    assert info.cell_count == 17
    assert info.values["ntc_count"] == 4


def test_jbd_13_decodes_17_cells():
    state = decode(JBD_13)
    millivolts = [3784, 3784, 3787, 3791, 3786, 3783, 3786, 3789, 3785, 3786]
    millivolts += [3787, 3787, 3784, 3788, 3784, 3785, 3785]
    assert state.cells_v == [mv / 1000 for mv in millivolts]
    assert state.cells_v[1] == 3.784  # not the document's "3744" typo
    assert (state.cell_min_v, state.cell_min_id) == (3.783, "6")
    assert (state.cell_max_v, state.cell_max_id) == (3.791, "4")
    assert decode(JBD_12, JBD_13).cells_v == state.cells_v


def test_a_cell_count_mismatch_names_both_frames():
    with pytest.raises(DecodeError) as err:
        decode(JBD_02, JBD_13)
    assert str(err.value) == (
        "frame 2: cell count mismatch: 17 cells here (0x04 cell voltages, 34 data bytes), "
        "4 in frame 1 (0x03 basic info byte 21)"
    )
    with pytest.raises(
        DecodeError,
        match=r"frame 2: .* 4 cells here \(0x03 basic info byte 21\), 17 in frame 1 \(0x04",
    ):
        decode(JBD_13, JBD_02)


# -- reading options and other 0x03 details -------------------------------------------------------


def test_kelvin_offset_option_moves_every_temperature():
    state = decode(JBD_02, kelvin_offset_raw=2730)
    assert state.temperatures_c == [24.6, 24.3, 23.8]
    assert (state.cell_temp_min_c, state.cell_temp_max_c) == (23.8, 24.6)
    assert decode(JBD_02, kelvin_offset_raw=2731.5).temperatures_c == [24.45, 24.15, 23.65]


def test_invert_current_is_applied_once():
    assert decode(JBD_12, invert_current=True).current_a == 20.12


def test_charging_current_is_positive():
    assert decode(reply_with(JBD_12, 2, b"\x07\xd0").hex()).current_a == 20.0


@pytest.mark.parametrize("bit", PROTECTION_BITS, ids=lambda b: f"bit{b.bit}")
def test_every_protection_bit_maps_per_the_table(bit):
    state = decode(reply_with(JBD_12, 16, (1 << bit.bit).to_bytes(2, "big")).hex())
    assert state.alarms == ([bit.alarm] if bit.alarm else [])
    assert state.warnings == []


def test_protection_table_covers_the_documented_names():
    by_bit = {b.bit: b.alarm for b in PROTECTION_BITS}
    assert sorted(by_bit) == list(range(16))
    assert by_bit[10] == "short_circuit"
    assert by_bit[11] == "bms_internal"
    assert by_bit[12] is None  # MOSFET software lock
    assert {by_bit[0], by_bit[2]} == {"high_voltage"}  # cell and pack level
    assert {by_bit[1], by_bit[3]} == {"low_voltage"}
    assert set(EXPRESSIBLE_ALARMS) == set(ALARM_NAMES) - {"contactor", "cell_imbalance"}


def test_several_bits_give_each_name_once_in_contract_order():
    state = decode(reply_with(JBD_12, 16, b"\x04\x45").hex())  # bits 0, 2, 6, 10
    assert state.alarms == ["high_voltage", "high_temperature", "short_circuit"]


def test_newer_firmware_extra_bytes_after_the_ntcs_are_ignored():
    extra = bytes.fromhex("00 00 00 4E 20 4A DF 00 00")
    frame = build_reply(BASIC_INFO, data_of(JBD_02) + extra)
    assert len(parse_frame(frame).data) == 38
    assert parse_basic(parse_frame(frame).data).extra == extra
    assert PROTOCOL.decode([frame]) == decode(JBD_02)


def test_no_ntc_means_no_temperatures():
    data = bytearray(data_of(JBD_02)[:23])
    data[22] = 0
    state = PROTOCOL.decode([build_reply(BASIC_INFO, bytes(data))])
    assert state.temperatures_c is None and state.temperature_c is None
    assert state.cell_temp_min_c is None and state.voltage_v == 15.47


def test_hardware_reply_decodes_into_hardware():
    frame = build_reply(HARDWARE, b"JBD-SP04S034-L4S-200A-B-U\x00 ")
    assert PROTOCOL.decode([frame]).to_dict() == {"hardware": "JBD-SP04S034-L4S-200A-B-U"}
    assert PROTOCOL.decode([build_reply(HARDWARE, b"")]).to_dict() == {}


def test_requests_in_a_capture_are_accepted_and_give_write_acks_their_context():
    state = decode("DD A5 03 00 FF FD 77", JBD_02, MOSFET_WRITE, MOSFET_ACK)
    assert state == decode(JBD_02)
    error_counters = build_reply(0xAA, bytes(24))
    assert decode("DD A5 AA 00 FF 56 77", error_counters.hex()).to_dict() == {}
    assert decode(error_counters.hex()).to_dict() == {}  # a known register, not mapped


def test_later_frames_win():
    later = reply_with(JBD_02, 19, b"\x32").hex()  # RSOC 50 %
    assert decode(JBD_02, later).soc_pct == 50.0


# -- decode errors: each names the frame and the byte or field ------------------------------------


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["DD 03 00 00 00"], "frame 1: wrong length: 5 bytes, a JBD frame has at least 7"),
        ([JBD_03, "DC 04 00 00 00 00 77"], "frame 2: byte 0 is DC, expected DD (frame start)"),
        (
            [JBD_03[:-6]],
            "frame 1: wrong length: byte 3 gives 8 data bytes, so the frame has 15 bytes, got 13",
        ),
        (["DD 04 00 02 0F 23 FF CC 78"], "frame 1: byte 8 is 78, expected 77 (frame end)"),
        (
            ["DD 04 00 02 0F 23 FF CB 77"],
            "frame 1: checksum mismatch: expected FFCC, got FFCB",
        ),
        (
            [JBD_02.replace("FA:55", "FA:56")],
            "frame 1: checksum mismatch: expected FA55, got FA56",
        ),
        (
            ["DD 03 80 00 FF 80 77"],
            "frame 1: register 0x03 basic info reply has status 80 (error) at byte 2",
        ),
        (
            ["DD 05 12 00 FF EE 77"],
            "frame 1: register 0x05 hardware version reply has status 12 (unknown status)",
        ),
        (
            [MOSFET_ACK],
            "frame 1: reply for unknown register 0xE1 (byte 1), not requested before it "
            "(known: 0x03 basic info, 0x04 cell voltages, 0x05 hardware version, "
            "0xAA error counters)",
        ),
        (
            [build_reply(BASIC_INFO, bytes(22)).hex()],
            "frame 1: 0x03 basic info: 22 data bytes, the fixed fields need 23 "
            "(through the NTC count at byte 22)",
        ),
        (
            [JBD_03, build_reply(BASIC_INFO, data_of(JBD_02)[:-1]).hex()],
            "frame 2: 0x03 basic info: NTC count 3 (byte 22) needs 29 data bytes, got 28",
        ),
        (
            [build_reply(CELL_VOLTAGES, b"\x0f\x23\x0f").hex()],
            "frame 1: 0x04 cell voltages: 3 data bytes, expected an even number (2 per cell)",
        ),
        (
            [build_reply(CELL_VOLTAGES, b"").hex()],
            "frame 1: 0x04 cell voltages: no data bytes, expected 2 per cell",
        ),
        (
            [build_reply(HARDWARE, b"JBD\x01X").hex()],
            "frame 1: 0x05 hardware version: hardware text has a control byte 01 at 3",
        ),
        (
            [build_reply(HARDWARE, b"JBD\xe9").hex()],
            "frame 1: 0x05 hardware version: hardware is not ASCII (byte 3)",
        ),
    ],
)
def test_decode_errors_name_the_frame_and_the_byte(texts, message):
    with pytest.raises(DecodeError) as err:
        decode(*texts)
    assert str(err.value).startswith(message), str(err.value)


def test_a_status_80_reply_names_register_and_status_in_full():
    with pytest.raises(DecodeError) as err:
        decode(JBD_02, build_reply(CELL_VOLTAGES, b"", status=0x80).hex())
    assert str(err.value) == (
        "frame 2: register 0x04 cell voltages reply has status 80 (error) at byte 2, "
        "expected 00 (OK)"
    )


# -- the simulated device -------------------------------------------------------------------------


def test_a_simulated_pack_survives_a_whole_poll_cycle():
    bms = SimBms(Pack.lfp(16, 280, soc=0.6))
    sent = bms.state()
    wire = poll(PROTOCOL, sent, identity=True)
    assert len(wire) == 6
    got = PROTOCOL.decode(wire)
    assert got.cells_v == sent.cells_v
    assert got.temperatures_c == sent.temperatures_c
    assert got.voltage_v == pytest.approx(sent.voltage_v, abs=0.005)
    assert got.current_a == pytest.approx(sent.current_a, abs=0.005)
    assert got.soc_pct == pytest.approx(sent.soc_pct, abs=0.5)
    assert got.remaining_ah == pytest.approx(sent.remaining_ah, abs=0.005)
    assert got.capacity_ah == sent.capacity_ah
    assert got.cycles == sent.cycles
    assert got.temperature_c == pytest.approx(sent.temperature_c, abs=0.1)
    assert (got.charge_enable, got.discharge_enable) == (sent.charge_enable, sent.discharge_enable)
    assert got.alarms == sent.alarms and got.warnings == []
    assert got.hardware == sent.product  # the simulator names a product only
    assert got.firmware == "8.0"  # the fixed version of a state without firmware
    # a cycle without identity yields every promised key
    plain = PROTOCOL.decode(poll(PROTOCOL, sent, identity=False))
    assert {k for k in PROTOCOL.keys if getattr(plain, k) is None} == set()
    assert plain.hardware is None


def test_the_served_0x03_has_zero_date_and_balance_and_no_extra_bytes():
    reply = PROTOCOL.answer(read_request(BASIC_INFO), lambda a: good(firmware="2.1"))[0]
    info = parse_basic(parse_frame(reply).data)
    assert info.values["production_date"] == 0 and info.balance == 0
    assert info.values["software_version"] == 0x21
    assert info.values["protection"] == 0b10  # low_voltage -> bit 1 (cell under-voltage)
    assert info.values["fet_status"] == 0x01
    assert (info.cell_count, info.values["ntc_count"], info.extra) == (16, 4, b"")
    assert reply[-1] == 0x77 and checksum(reply[2:-3]) == int.from_bytes(reply[-3:-1], "big")


def test_general_is_served_as_bit_13_and_hardware_wins_over_product():
    state = good(alarms=["general", "bms_internal"], hardware="JBD-AP21S001")
    reply = PROTOCOL.answer(read_request(BASIC_INFO), lambda a: state)[0]
    assert parse_basic(parse_frame(reply).data).values["protection"] == 1 << 13 | 1 << 11
    model = PROTOCOL.answer(read_request(HARDWARE), lambda a: state)[0]
    assert model == build_reply(HARDWARE, b"JBD-AP21S001")


def test_the_kelvin_option_applies_when_serving_too():
    protocol = JbdProtocol(BmsOptions(kelvin_offset_raw=2730))
    reply = protocol.answer(read_request(BASIC_INFO), lambda a: good(temperatures_c=[0.0]))[0]
    assert parse_basic(parse_frame(reply).data).ntc_raw == (2730,)


@pytest.mark.parametrize(
    "request_",
    [
        bytes.fromhex(MOSFET_WRITE),  # writes: read-only device
        read_request(0xAA),  # a register the simulated device does not serve
        read_request(0x03)[:-2] + b"\x00\x77",  # bad checksum
        build_frame(0xA5, 0x03, b"\x00"),  # a read with data
        build_reply(0x03, b""),  # a reply, not a request
        b"",
        b"\xdd\xa5\x03",
    ],
)
def test_the_device_ignores_what_is_not_a_read_it_serves(request_):
    assert PROTOCOL.answer(request_, lambda a: good()) == []


def test_a_silent_source_gives_silence():
    assert PROTOCOL.answer(read_request(BASIC_INFO), lambda a: None) == []


@pytest.mark.parametrize(
    ("register", "key"),
    [
        (BASIC_INFO, "voltage_v"),
        (BASIC_INFO, "current_a"),
        (BASIC_INFO, "remaining_ah"),
        (BASIC_INFO, "capacity_ah"),
        (BASIC_INFO, "cycles"),
        (BASIC_INFO, "soc_pct"),
        (BASIC_INFO, "charge_enable"),
        (BASIC_INFO, "discharge_enable"),
        (BASIC_INFO, "alarms"),
        (BASIC_INFO, "cells_v"),
        (BASIC_INFO, "temperatures_c"),
        (CELL_VOLTAGES, "cells_v"),
    ],
)
def test_a_missing_key_is_named(register, key):
    with pytest.raises(EncodeError, match=f"missing {key}: JBD 0x0{register}"):
        PROTOCOL.answer(read_request(register), lambda a: good(**{key: None}))


def test_a_missing_model_is_named():
    with pytest.raises(EncodeError, match=r"missing hardware \(or product\)"):
        PROTOCOL.answer(read_request(HARDWARE), lambda a: good(product=None))


@pytest.mark.parametrize(
    ("register", "changes", "message"),
    [
        (BASIC_INFO, {"current_a": 400.0}, "current_a 400 is outside -327.68..327.67"),
        (BASIC_INFO, {"voltage_v": -1.0}, "voltage_v -1 is outside 0..655.35"),
        (BASIC_INFO, {"capacity_ah": 700.0}, "capacity_ah 700 is outside 0..655.35"),
        (BASIC_INFO, {"cycles": 70000}, "cycles 70000 is outside 0..65535"),
        (BASIC_INFO, {"soc_pct": 100.5}, "soc_pct 100.5 is outside 0..100"),
        (BASIC_INFO, {"temperatures_c": [21.0, 7000.0]}, "temperatures_c[1] 7000 is outside"),
        (BASIC_INFO, {"alarms": ["contactor"]}, "alarms: 'contactor' has no JBD protection bit"),
        (BASIC_INFO, {"firmware": "11.XW"}, "firmware '11.XW'"),
        (BASIC_INFO, {"firmware": "16.0"}, "firmware '16.0'"),
        (BASIC_INFO, {"cells_v": [3.3] * 33}, "cells_v: JBD serves 1..32 cells, got 33"),
        (CELL_VOLTAGES, {"cells_v": []}, "cells_v: JBD serves 1..32 cells, got 0"),
        (CELL_VOLTAGES, {"cells_v": [3.3, 70.0]}, "cells_v[1] 70 is outside 0..65.535"),
        (HARDWARE, {"hardware": "X" * 32}, "hardware 'XXXX"),
        (HARDWARE, {"hardware": "JBD\x01"}, "printable ASCII only"),
        (HARDWARE, {"hardware": "JBDé"}, "printable ASCII only"),
    ],
)
def test_values_the_wire_cannot_carry_are_refused(register, changes, message):
    with pytest.raises(EncodeError, match=message.replace("[", r"\[").replace("(", r"\(")):
        PROTOCOL.answer(read_request(register), lambda a: good(**changes))


# -- round trips ----------------------------------------------------------------------------------

FIRMWARE = st.tuples(st.integers(0, 15), st.integers(0, 15)).map(lambda v: f"{v[0]}.{v[1]}")
STATES = st.builds(
    BatteryState,
    voltage_v=st.floats(0, 655.35),
    current_a=st.floats(-327.68, 327.67),
    soc_pct=st.floats(0, 100),
    remaining_ah=st.floats(0, 655.35),
    capacity_ah=st.floats(0, 655.35),
    cycles=st.integers(0, 0xFFFF),
    charge_enable=st.booleans(),
    discharge_enable=st.booleans(),
    cells_v=st.lists(st.floats(2.5, 3.65), min_size=1, max_size=32),
    temperatures_c=st.lists(st.floats(-40, 100), max_size=8),
    alarms=st.lists(st.sampled_from(EXPRESSIBLE_ALARMS), unique=True),
    warnings=ALARM_LISTS,
    firmware=st.none() | FIRMWARE,
    hardware=st.text(alphabet=TEXT_ALPHABET + " .", max_size=31),
)


@settings(max_examples=150, deadline=None)
@given(STATES, st.booleans())
def test_round_trip_through_the_simulated_device(sent, identity):
    got = PROTOCOL.decode(poll(PROTOCOL, sent, identity=identity))
    for key, step in [
        ("voltage_v", 0.01),
        ("current_a", 0.01),
        ("remaining_ah", 0.01),
        ("capacity_ah", 0.01),
        ("soc_pct", 1),
    ]:
        assert getattr(got, key) == pytest.approx(getattr(sent, key), abs=step / 2 + 1e-9), key
    assert got.cycles == sent.cycles
    assert (got.charge_enable, got.discharge_enable) == (sent.charge_enable, sent.discharge_enable)
    assert got.cells_v == pytest.approx(sent.cells_v, abs=0.0005 + 1e-9)
    assert got.cell_min_v == min(got.cells_v) and got.cell_max_v == max(got.cells_v)
    assert got.cells_v[int(got.cell_min_id) - 1] == got.cell_min_v
    assert got.cells_v[int(got.cell_max_id) - 1] == got.cell_max_v
    if sent.temperatures_c:
        assert got.temperatures_c == pytest.approx(sent.temperatures_c, abs=0.05 + 1e-9)
        assert got.cell_temp_min_c == min(got.temperatures_c)
        assert got.cell_temp_max_c == max(got.temperatures_c)
        mean = sum(got.temperatures_c) / len(got.temperatures_c)
        assert got.temperature_c == pytest.approx(mean, abs=0.05 + 1e-9)
    else:
        assert got.temperatures_c is None and got.temperature_c is None
    assert got.alarms == [n for n in ALARM_NAMES if n in sent.alarms]
    assert got.warnings == []  # JBD has no warning level
    assert got.firmware == (sent.firmware or "8.0")
    if identity:
        assert got.hardware == (sent.hardware.rstrip(" ") or None)
    else:
        assert got.hardware is None


# -- the framer -----------------------------------------------------------------------------------


def test_framer_skips_garbage_and_reassembles_split_frames():
    framer = PROTOCOL.reply_framer()
    a, b = frames(JBD_02, JBD_03)
    stream = b"\x00\x55\xaa" + a + b"\x13\x37" + b
    got = []
    for i in range(len(stream)):
        got += framer.feed(stream[i : i + 1])
    assert got == [a, b]
    assert framer.noise_bytes == 5
    assert framer.bad_frames == 0


def test_framer_drops_a_bad_checksum_frame_and_keeps_the_good_one():
    framer = PROTOCOL.reply_framer()
    good_frame = frames(JBD_03)[0]
    bad = bytearray(good_frame)
    bad[-2] ^= 0x01
    assert framer.feed(bytes(bad) + good_frame) == [good_frame]
    assert framer.bad_frames == 1
    assert framer.noise_bytes == len(bad)


def test_framer_does_not_wait_on_a_stray_start_byte():
    framer = PROTOCOL.reply_framer()
    good_frame = frames(JBD_03)[0]
    # DD then a status byte no reply has and a length of 255: not a frame start
    assert framer.feed(b"\xdd\x03\x42\xff" + good_frame) == [good_frame]
    assert framer.noise_bytes == 4


def test_framer_keeps_a_truncated_frame_out():
    framer = PROTOCOL.reply_framer()
    a, b = frames(JBD_02, JBD_03)
    assert framer.feed(a[:20] + b) == []  # might still be the 36-byte frame a
    assert framer.feed(b) == [b, b]  # now it is not: hunted past, both b kept
    assert framer.bad_frames == 1


def test_request_framer_cuts_host_requests():
    framer = PROTOCOL.request_framer()
    stream = b"\xff" + read_request(3) + bytes.fromhex(MOSFET_WRITE) + read_request(4)[:3]
    assert framer.feed(stream) == [read_request(3), bytes.fromhex(MOSFET_WRITE)]
    assert framer.feed(read_request(4)[3:]) == [read_request(4)]


# -- fuzzing --------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_framer_never_raises_and_emits_only_checked_frames(data):
    for frame in PROTOCOL.reply_framer().feed(data):
        parse_frame(frame)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=4))
def test_decode_of_arbitrary_bytes_raises_only_decode_error(raw):
    with contextlib.suppress(DecodeError):
        PROTOCOL.decode(raw)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0x03, 0x04, 0x05, 0xAA, 0xA5, 0x5A, 0xE1, 0x00]),
            st.sampled_from([0x00, 0x80, 0x03, 0x04]),
            st.binary(max_size=60),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_decode_of_well_framed_random_payloads_raises_only_decode_error(parts):
    """The checksum is right, so the payload parsers get the random bytes."""
    with contextlib.suppress(DecodeError):
        PROTOCOL.decode([build_frame(*part) for part in parts])


VALID_REPLIES = [frames(t)[0] for t in (JBD_02, JBD_03, JBD_12, JBD_13)]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(VALID_REPLIES), st.data())
def test_truncated_frames_are_rejected_naming_the_length(frame, data):
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(DecodeError, match="wrong length"):
        PROTOCOL.decode([frame[:cut]])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(VALID_REPLIES), st.data())
def test_bit_flips_under_the_checksum_are_rejected(frame, data):
    """Bytes 2 .. end-1 are covered by the length or the checksum; byte 1 is not (docstring)."""
    at = data.draw(st.integers(2, len(frame) - 2))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(frame)
    flipped[at] ^= 1 << bit
    with pytest.raises(DecodeError, match=r"checksum mismatch|wrong length"):
        PROTOCOL.decode([bytes(flipped)])


@pytest.mark.parametrize("frame", VALID_REPLIES)
@pytest.mark.parametrize("bit", range(8))
def test_flips_of_the_start_end_and_register_bytes_never_escape(frame, bit):
    for at, match in [(0, "expected DD"), (len(frame) - 1, "expected 77"), (1, None)]:
        flipped = bytearray(frame)
        flipped[at] ^= 1 << bit
        if match is None:
            # the register echo is not checksummed: another register, or refused
            with contextlib.suppress(DecodeError):
                PROTOCOL.decode([bytes(flipped)])
        else:
            with pytest.raises(DecodeError, match=match):
                PROTOCOL.decode([bytes(flipped)])


def test_module_facts_are_consistent():
    assert jbd.BASIC_FIXED == 23
    assert jbd.MAX_FRAME == 262
