"""JK-PB over Modbus RTU: PB-01, real 55AA captures, the byte-offset image, round trips, errors."""

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.bms import jk_pb
from bmslink.bms.base import BmsOptions, hex_frames
from bmslink.bms.jk_pb import (
    ABOUT,
    EXPRESSIBLE,
    LIVE,
    REQUIRED_KEYS,
    SYNC,
    JkPbProtocol,
    block_frame,
    block_image,
    sum8,
)
from bmslink.bms.modbus_rtu import (
    build_exception_reply,
    build_read_request,
    build_register_reply,
    parse_register_reply,
    with_crc,
)
from bmslink.errors import DecodeError, EncodeError
from bmslink.sim.bms import SimBms
from bmslink.sim.pack import Pack
from bmslink.state import ALARM_NAMES, BatteryState

PROTOCOL = JkPbProtocol()

#: PB-01: read pack voltage, 2 registers at 0x1290, slave 1 (esphome-jk-bms issue #390).
PB_01 = "01 03 12 90 00 02 C1 5E"

#: Real JK-PB2A16S15P frames after the FC16 triggers, each followed by its acknowledgement
#: (jblance/mpp-solar mppsolar/protocols/jkpb.py, "Cell Readings" and "BMS Info").
CELL_INFO_CAPTURE = (
    "55AAEB9002051D0D1D0D1D0D1C0D1C0D1D0D1C0D1C0D00000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000FF0000001D0D01000400420042004E005200"
    "5700570064006600000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000002C0100000000E4680000604F0700B1450000280126010000000000000058B9F3"
    "0200605B030065000000E0135601640000007A0BCE0001010000000000000000000000000000FF0001000000"
    "E8032F00000066F43F40000000007D0A000000010101000600001E020000000000002C011E011E01B503ED19"
    "ED08AE1C00008051010000000000000000000000000000FEFF7FDD0F0100B007000000B5011016200001044B"
)
ABOUT_CAPTURE = (
    "55AAEB9003054A4B5F5042324131365331355000000031352E584100000031352E3130000000450BCE00C401"
    "000041545220424D530000000000000000003132333400000000000000000000000032343035313000003331"
    "3231333438303038350030303000000000000000000000000000000000003430393600000000000000000000"
    "000000000000000000000000000000000000FEFFFFFF2FE9010200000000901F00000000C0D8E7FE1F000001"
    "00000000000000000100CF030000000000000000000000000000DF07000000000000000000000000000001CF"
    "03000000000000000000000000000A0000010100000000000000000000000000000000000000000000000807"
    "0000323201000000000000000000000000000000000000FE9FE9FF07000000000000005F0110161C0001C447"
)


def good(**changes):
    """A complete 16-cell JK-PB-like state; ``changes`` override."""
    values = dict(
        voltage_v=53.12,
        current_a=-12.345,
        soc_pct=83.0,
        soh_pct=97.0,
        remaining_ah=232.4,
        capacity_ah=280.0,
        cycles=12,
        cells_v=[3.32] * 15 + [3.335],
        temperatures_c=[21.5, 22.0, 30.5],  # T1, T2, MOSFET
        charge_enable=True,
        discharge_enable=False,
        alarms=[],
        warnings=[],
    )
    values.update(changes)
    return BatteryState(**values)


def read(start, count, slave=1):
    return build_read_request(slave, 0x03, start, count)


def serve(state, request):
    return PROTOCOL.answer(request, lambda a: state if a == 1 else None)


def modbus_cycle(state, *, identity=False):
    """A whole poll cycle with ``answer`` as the device: every frame on the wire, in order."""
    wire = []
    conversation = PROTOCOL.conversation(1, identity=identity)
    request = next(conversation)
    while True:
        replies = serve(state, request.data)
        assert replies, request.what
        assert all(reply.startswith(request.reply_prefix) for reply in replies)
        # what the host's framer makes of the bytes on the line
        framer = PROTOCOL.reply_framer()
        assert framer.feed(b"".join(replies)) == replies
        wire += [request.data, *replies]
        try:
            request = conversation.send(replies)
        except StopIteration:
            return wire


def decode_hex(*texts):
    return PROTOCOL.decode(hex_frames(list(texts)))


def image_of(state):
    return block_image(LIVE, state)


# -- public vector PB-01 and the requests -------------------------------------------------------


def test_pb_01_request_is_byte_exact():
    assert read(0x1290, 2) == bytes.fromhex(PB_01)


def test_pb_01_reply_decodes_only_the_pack_voltage():
    reply = build_register_reply(1, 0x03, [0x0000, 0xD1C4])  # 53700 mV, high word first
    state = PROTOCOL.decode([bytes.fromhex(PB_01), reply])
    assert state.to_dict() == {"voltage_v": 53.7}


def test_pb_01_answered_by_the_simulated_device():
    (reply,) = serve(good(voltage_v=53.7), bytes.fromhex(PB_01))
    assert reply == with_crc(bytes.fromhex("01 03 04 00 00 D1 C4"))
    assert PROTOCOL.decode([bytes.fromhex(PB_01), reply]).voltage_v == 53.7


def test_poll_cycle_requests_cover_the_live_block_and_the_about_block():
    conversation = PROTOCOL.conversation(3, identity=True)
    requests = list(conversation)
    assert [r.data for r in requests] == [
        with_crc(bytes.fromhex("03 03 12 00 00 40")),  # live: bytes 0..127
        with_crc(bytes.fromhex("03 03 12 80 00 40")),  # live: bytes 128..255 (T5 at 252)
        with_crc(bytes.fromhex("03 03 14 00 00 2E")),  # about: bytes 0..91
    ]
    assert all(r.reply_prefix == b"\x03" for r in requests)
    assert [r.optional for r in requests] == [False, False, True]
    assert [r.data for r in PROTOCOL.conversation(3, identity=False)] == [
        r.data for r in requests[:2]
    ]
    with pytest.raises(ValueError, match=r"jk-pb: address 0 outside 1\.\.15"):
        next(PROTOCOL.conversation(0, identity=False))


@pytest.mark.parametrize(
    ("register", "crc"), [("1620", "D6F1"), ("161E", "D22F"), ("161C", "D3CD")]
)
def test_fc16_trigger_requests_match_the_reference(register, crc):
    request = bytes.fromhex(f"01 10 {register} 00 01 02 00 00 {crc}")
    assert with_crc(request[:-2]) == request


def test_class_facts():
    assert (PROTOCOL.name, PROTOCOL.baudrate, PROTOCOL.request_gap_s) == ("jk-pb", 115200, 0.12)
    assert PROTOCOL.addresses == range(1, 16) and PROTOCOL.default_address == 1


# -- real 55AA captures ---------------------------------------------------------------------------


def test_real_cell_info_frame_decodes_by_the_live_table():
    state = decode_hex(CELL_INFO_CAPTURE)  # frame, then its FC16 acknowledgement
    assert state.to_dict() == {
        "voltage_v": 26.852,
        "current_a": 17.841,  # charging
        "soc_pct": 88.0,
        "soh_pct": 100.0,
        "remaining_ah": 193.465,
        "capacity_ah": 220.0,
        "cycles": 101,
        "cells_v": [3.357, 3.357, 3.357, 3.356, 3.356, 3.357, 3.356, 3.356],  # bitmask 0xFF
        "cell_min_v": 3.356,
        "cell_max_v": 3.357,
        "cell_min_id": "4",
        "cell_max_id": "1",
        # T1, T2, T3, T4, T5, MOSFET: all six bits of the sensor byte (0xFF) are set
        "temperatures_c": [29.6, 29.4, 30.0, 28.6, 28.6, 30.0],
        "cell_temp_min_c": 28.6,
        "cell_temp_max_c": 30.0,
        "temperature_c": 29.2,  # mean of T1..T5, 292.4 raw steps
        "charge_enable": True,
        "discharge_enable": True,
        "alarms": [],
        "warnings": [],
    }


def test_real_about_frame_gives_the_identity():
    state = decode_hex(ABOUT_CAPTURE)
    assert state.to_dict() == {
        "product": "JK_PB2A16S15P",
        "hardware": "15.XA",
        "firmware": "15.10",
        "serial": "31213480085",  # frame offset 86; offset 46 holds the name "ATR BMS"
    }


def test_frame_and_modbus_forms_decode_the_same():
    frame = bytes.fromhex(CELL_INFO_CAPTURE)[:300]
    # the same structure as Modbus would return it: big-endian, at offset - 6
    state_from_frame = PROTOCOL.decode([frame])
    image = bytearray(256)
    for f in LIVE.fields:
        f.write(image, 0, "big", f.read(frame, 6, "little"))
    wire = []
    for start in (0, 128):
        wire += [read(0x1200 + start, 64), build_register_reply(1, 3, regs(image[start:][:128]))]
    assert PROTOCOL.decode(wire) == state_from_frame


def regs(data):
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


# -- the byte image -------------------------------------------------------------------------------


def test_live_image_layout_at_byte_offsets():
    state = good(cells_v=[3.301, 3.302, 3.299], alarms=["high_voltage"], warnings=["general"])
    image = image_of(state)
    assert len(image) == 256
    assert image[0:6] == bytes.fromhex("0CE5 0CE6 0CE3")  # cells in mV, big-endian
    assert image[6:64] == bytes(58)
    assert image[64:68] == bytes.fromhex("00000007")  # three cells present
    assert image[68:74] == bytes.fromhex("0CE5 0003 01 02")  # average, delta, max/min index
    assert image[138:140] == (305).to_bytes(2, "big")  # MOSFET 30.5 °C
    assert image[144:148] == (53120).to_bytes(4, "big")  # u32 mV, high word first
    assert image[148:152] == (655_766).to_bytes(4, "big")  # |V x I| in mW
    assert image[152:156] == (-12345).to_bytes(4, "big", signed=True)
    assert image[156:160] == bytes.fromhex("00D7 00DC")  # T1 21.5, T2 22.0
    assert image[160:164] == (1 << 4 | 1 << 0).to_bytes(4, "big")  # cell OVP, wire resistance
    assert image[166:168] == bytes((0, 83))  # 0x12A6: balancing state (high) / SoC (low)
    assert image[168:180] == bytes.fromhex("00038BD0 000445C0 0000000C")
    assert image[184] == 97  # SoH
    assert image[192:194] == bytes((1, 0))  # charge FET on, discharge FET off
    assert image[208] == 0b111  # MOSFET, T1, T2 fitted
    assert image[228:230] == (5312).to_bytes(2, "big")  # 10 mV copy
    assert image[248:254] == bytes(6)  # T3..T5 not fitted
    everything_else = set(range(256)) - {
        *range(0, 6), *range(64, 74), *range(138, 140), *range(144, 164), 167,
        *range(168, 180), 184, 192, 208, *range(228, 230),
    }  # fmt: skip
    assert all(image[i] == 0 for i in everything_else)


def test_cell_info_frame_is_the_same_table_little_endian():
    state = good()
    frame = block_frame(LIVE, state)
    assert len(frame) == 300 and frame[:6] == SYNC + b"\x02\x00"
    assert frame[299] == sum8(frame[:299])
    assert frame[150:154] == (53120).to_bytes(4, "little")
    assert frame[173] == 83 and frame[198:200] == bytes((1, 0))
    assert PROTOCOL.decode([frame]) == PROTOCOL.decode(modbus_cycle(state))


def test_a_u32_split_over_two_replies_is_put_together():
    image = image_of(good(voltage_v=70.0))  # 70000 mV = 0x00011170
    wire = [read(0x1290, 1), build_register_reply(1, 3, regs(image[144:146]))]
    assert PROTOCOL.decode(wire).voltage_v is None  # half a field is no value
    wire += [read(0x1292, 1), build_register_reply(1, 3, regs(image[146:148]))]
    assert PROTOCOL.decode(wire).voltage_v == 70.0


def test_the_10mv_copy_is_used_only_without_the_mv_value():
    image = image_of(good(voltage_v=53.126))
    copy = [read(0x12E4, 1), build_register_reply(1, 3, regs(image[228:230]))]
    assert PROTOCOL.decode(copy).voltage_v == 53.13
    both = [*copy, read(0x1290, 2), build_register_reply(1, 3, regs(image[144:148]))]
    assert PROTOCOL.decode(both).voltage_v == 53.126
    assert PROTOCOL.decode(both[2:] + copy).voltage_v == 53.126


def test_cells_need_the_bitmask_and_every_present_cell():
    image = image_of(good())
    cells_only = [read(0x1200, 32), build_register_reply(1, 3, regs(image[0:64]))]
    assert PROTOCOL.decode(cells_only).cells_v is None
    mask_only = [read(0x1240, 2), build_register_reply(1, 3, regs(image[64:68]))]
    assert PROTOCOL.decode(mask_only).cells_v is None
    assert len(PROTOCOL.decode(cells_only + mask_only).cells_v) == 16


def test_a_gap_in_the_bitmask_keeps_the_cell_numbers():
    image = bytearray(image_of(good(cells_v=[3.3, 3.2, 3.4])))
    image[64:68] = (0b101).to_bytes(4, "big")  # cell 2 not present
    state = PROTOCOL.decode([read(0x1200, 64), build_register_reply(1, 3, regs(image[:128]))])
    assert state.cells_v == [3.3, 3.4]
    assert (state.cell_min_id, state.cell_max_id) == ("1", "3")


def test_sensor_byte_set_bit_means_fitted():
    state = good(temperatures_c=[10.0, 11.0, 12.0, 13.0, 14.0, 40.0])
    image = bytearray(image_of(state))
    assert image[208] == 0b111111
    image[208] = 0b100101  # MOSFET, T2, T5
    wire = []
    for start in (0, 128):
        wire += [read(0x1200 + start, 64), build_register_reply(1, 3, regs(image[start:][:128]))]
    got = PROTOCOL.decode(wire)
    assert got.temperatures_c == [11.0, 14.0, 40.0]
    assert (got.cell_temp_min_c, got.cell_temp_max_c, got.temperature_c) == (11.0, 14.0, 12.5)


def test_mosfet_alone_is_no_battery_temperature():
    got = PROTOCOL.decode(modbus_cycle(good(temperatures_c=[35.2])))
    assert got.temperatures_c == [35.2]
    assert got.temperature_c is None and got.cell_temp_min_c is None


def test_without_the_sensor_byte_every_temperature_read_is_listed():
    image = image_of(good(temperatures_c=[-5.5, 25.0]))
    wire = [read(0x129C, 2), build_register_reply(1, 3, regs(image[156:160]))]
    assert PROTOCOL.decode(wire).temperatures_c == [-5.5, 0.0]  # T1, T2 (T2 sent as 0)


def test_temperature_mean_rounds_half_up_in_raw_steps():
    got = PROTOCOL.decode(modbus_cycle(good(temperatures_c=[20.0, 20.1, 0.0])))
    assert got.temperature_c == 20.1  # 200.5 raw steps


def test_soh_zero_is_absent_both_ways():
    assert image_of(good(soh_pct=None))[184] == 0
    assert PROTOCOL.decode(modbus_cycle(good(soh_pct=None))).soh_pct is None


def test_fet_bytes_follow_the_limits_without_enable_flags():
    state = good(charge_enable=None, discharge_enable=None, charge_current_a=0.0)
    image = image_of(state.merged({"discharge_current_a": 50.0}))
    assert image[192:194] == bytes((0, 1))


# -- alarms ---------------------------------------------------------------------------------------


def alarm_state(bits):
    image = bytearray(image_of(good()))
    image[160:164] = bits.to_bytes(4, "big")
    return PROTOCOL.decode([read(0x12A0, 2), build_register_reply(1, 3, regs(image[160:164]))])


@pytest.mark.parametrize(
    ("bit", "alarms", "warnings"),
    [
        (0, [], ["general"]),
        (1, ["bms_internal"], []),
        (4, ["high_voltage"], []),
        (5, ["high_voltage"], []),
        (6, ["high_charge_current"], []),
        (7, ["short_circuit"], []),
        (8, ["high_temperature_charge"], []),
        (9, ["low_temperature_charge"], []),
        (11, ["low_voltage"], []),
        (13, ["high_discharge_current"], []),
        (15, ["high_temperature"], []),
        (16, ["contactor"], []),
        (21, [], ["high_temperature"]),
        (22, ["general"], []),  # reserved: reported, not hidden
        (31, ["general"], []),
    ],
)
def test_alarm_bits(bit, alarms, warnings):
    state = alarm_state(1 << bit)
    assert (state.alarms, state.warnings) == (alarms, warnings)


def test_no_alarm_bit_is_an_empty_list_and_no_alarm_read_is_none():
    assert (alarm_state(0).alarms, alarm_state(0).warnings) == ([], [])
    assert PROTOCOL.decode([bytes.fromhex(PB_01)]).alarms is None


def test_alarm_and_warning_of_one_name_is_listed_once_in_contract_order():
    state = alarm_state(1 << 21 | 1 << 15 | 1 << 4 | 1 << 0)
    assert state.alarms == ["high_voltage", "high_temperature"]
    assert state.warnings == ["general"]


def test_alarm_without_a_bit_is_refused_and_warning_without_a_bit_dropped():
    with pytest.raises(EncodeError, match="alarm 'low_temperature' has no JK-PB alarm bit"):
        image_of(good(alarms=["low_temperature"]))
    image = image_of(good(warnings=["high_voltage", "cell_imbalance", "high_temperature"]))
    assert image[160:164] == (1 << 21).to_bytes(4, "big")


def test_preferred_bits_when_sending():
    image = image_of(good(alarms=["bms_internal", "short_circuit", "contactor"]))
    assert int.from_bytes(image[160:164], "big") == 1 << 3 | 1 << 14 | 1 << 16


def test_every_contract_name_is_decodable_or_refused_by_name():
    expressible = set(EXPRESSIBLE["alarm"]) | set(EXPRESSIBLE["warning"])
    assert set(ALARM_NAMES) - expressible == {"low_temperature", "cell_imbalance"}


# -- the simulated device -------------------------------------------------------------------------


def test_a_simulated_pack_survives_a_whole_poll_cycle():
    sent = SimBms(Pack.lfp(16, 280.0, soc=0.6)).state()
    wire = modbus_cycle(sent, identity=True)
    assert len(wire) == 6
    got = PROTOCOL.decode(wire)
    assert got.cells_v == [round(v, 3) for v in sent.cells_v]
    assert got.voltage_v == pytest.approx(sent.voltage_v, abs=0.0005)
    assert got.current_a == pytest.approx(sent.current_a, abs=0.0005)
    assert got.soc_pct == round(sent.soc_pct)
    assert got.remaining_ah == pytest.approx(sent.remaining_ah, abs=0.0005)
    assert (got.capacity_ah, got.cycles, got.soh_pct) == (280.0, sent.cycles, 100.0)
    # the simulator's four sensors: T1, T2, T3, and the last one as the MOSFET
    assert got.temperatures_c == [round(t, 1) for t in sent.temperatures_c]
    assert (got.charge_enable, got.discharge_enable) == (sent.charge_enable, sent.discharge_enable)
    assert got.alarms == sent.alarms
    assert got.product == sent.product and got.serial is None
    plain = PROTOCOL.decode(modbus_cycle(sent))
    assert {k for k in PROTOCOL.keys if getattr(plain, k) is None} == set()
    assert plain.product is None


def test_fc16_triggers_answer_a_frame_and_the_acknowledgement():
    state = good(product="JK_PB2A16S20P", firmware="15.38", hardware="19A", serial="4036502101")
    request = with_crc(bytes.fromhex("01 10 16 20 00 01 02 00 00"))
    frame, ack = serve(state, request)
    assert ack == with_crc(bytes.fromhex("01 10 16 20 00 01"))
    assert frame == block_frame(LIVE, state)
    about, _ = serve(state, with_crc(bytes.fromhex("01 10 16 1C 00 01 02 00 00")))
    assert about[4] == 0x03
    both = PROTOCOL.decode([request, frame, ack, about])
    assert both == PROTOCOL.decode(modbus_cycle(state, identity=True))
    assert both.product == "JK_PB2A16S20P" and both.serial == "4036502101"


@pytest.mark.parametrize(
    ("request_hex", "code"),
    [
        ("01 03 13 00 00 01", 0x02),  # between the blocks
        ("01 03 12 FE 00 02", 0x02),  # runs past the live block
        ("01 03 10 00 00 02", 0x02),  # settings: not served
        ("01 03 14 5A 00 02", 0x02),  # past the served about bytes (0..91)
        ("01 03 12 00 00 00", 0x03),  # count 0
        ("01 06 10 70 00 00", 0x01),  # a write
        ("01 10 16 1E 00 01 02 00 00", 0x01),  # settings frame: not served
        ("01 04 12 00 00 01", 0x01),  # input registers
    ],
)
def test_requests_outside_the_map_get_an_exception(request_hex, code):
    request = with_crc(bytes.fromhex(request_hex))
    assert serve(good(), request) == [build_exception_reply(1, request[1], code)]


def test_reads_inside_the_map_at_any_start_and_count():
    image = image_of(good())
    for start, count in ((0x1200, 1), (0x1201, 3), (0x12A6, 1), (0x12FC, 2), (0x1280, 64)):
        (reply,) = serve(good(), read(start, count))
        _, registers = parse_register_reply(reply, 3, count)
        assert registers == regs(image[start - 0x1200 :][: 2 * count])


@pytest.mark.parametrize(
    "request_bytes",
    [
        read(0x1290, 2, slave=2),  # another slave, not served
        read(0x1290, 2, slave=0),  # bus-master address
        b"",
        b"\x01\x03",
        read(0x1290, 2)[:-1] + b"\x00",  # bad CRC
        with_crc(b"\x01\x83\x02"),  # function byte with bit 7
    ],
)
def test_silence(request_bytes):
    assert serve(good(), request_bytes) == []


def test_source_none_is_silence():
    assert PROTOCOL.answer(bytes.fromhex(PB_01), lambda a: None) == []


@pytest.mark.parametrize("key", [key for key, _ in REQUIRED_KEYS])
def test_missing_required_key_is_refused_by_name(key):
    with pytest.raises(EncodeError, match=f"^missing {key}: JK-PB needs it"):
        serve(good(**{key: None}), bytes.fromhex(PB_01))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"charge_enable": None}, "missing charge_enable: .* neither charge_enable nor charge_"),
        ({"cells_v": [3.3] * 33}, "cells_v: JK-PB carries 1..32 cells, got 33"),
        ({"cells_v": []}, "cells_v: JK-PB carries 1..32 cells, got 0"),
        ({"cells_v": [3.3, 65.536]}, r"cells_v\[1\] = 65.536 is outside 0..65.535 \(offset 2, "),
        ({"soc_pct": 100.4}, r"soc_pct = 100.4 is outside 0..100 \(offset 167, register 0x12A7\)"),
        ({"soh_pct": 0.0}, r"soh_pct = 0 is outside 1..100 \(offset 184"),
        ({"voltage_v": -0.001}, r"voltage_v = -0.001 is outside 0..4294967.295 \(offset 144"),
        ({"voltage_v": 700.0}, r"voltage_v = 700 is outside 0..655.35 \(offset 228"),
        ({"current_a": 2147484.0}, "current_a = 2147484 is outside -2147483.648..2147483.647"),
        ({"current_a": math.nan}, "current_a = nan is not a number"),
        ({"cycles": 1 << 32}, "cycles = 4294967296 is outside 0..4294967295"),
        ({"temperatures_c": [20.0] * 7}, r"temperatures_c: .* \(0-6 values\), got 7"),
        ({"temperatures_c": [20.0, 3276.8]}, r"temperatures_c\[1\] = 3276.8 is outside"),
        ({"product": "JK_PB2A16S20P-EXTRA"}, "product = 'JK_PB2A16S20P-EXTRA' is 19 bytes, the"),
        ({"serial": "Nº1"}, r"serial = 'Nº1' is not ASCII \(offset 80, register 0x1450\)"),
    ],
)
def test_values_out_of_range_are_refused_by_key(changes, message):
    state = good(**changes)
    with pytest.raises(EncodeError, match=message):
        serve(state, read(0x1200, 64))
        serve(state, read(0x1400, 46))


# -- round trip -----------------------------------------------------------------------------------


def grid(low, high, step):
    return st.integers(low, high).map(lambda v: round(v * step, 4))


CELLS = st.lists(grid(2500, 3650, 0.001), min_size=1, max_size=32)
CELSIUS = grid(-400, 1000, 0.1)


@st.composite
def jk_states(draw):
    """States a JK-PB carries; optional keys present or absent."""
    return BatteryState(
        voltage_v=draw(grid(0, 150_000, 0.001)),
        current_a=draw(grid(-500_000, 500_000, 0.001)),
        soc_pct=float(draw(st.integers(0, 100))),
        soh_pct=draw(st.none() | st.integers(1, 100).map(float)),
        remaining_ah=draw(grid(0, 1_000_000, 0.001)),
        capacity_ah=draw(grid(0, 1_000_000, 0.001)),
        cycles=draw(st.integers(0, 0xFFFF_FFFF)),
        cells_v=draw(CELLS),
        temperatures_c=draw(st.none() | st.lists(CELSIUS, max_size=6)),
        charge_enable=draw(st.none() | st.booleans()),
        discharge_enable=draw(st.none() | st.booleans()),
        charge_current_a=draw(grid(0, 2000, 0.1)),
        discharge_current_a=draw(grid(0, 2000, 0.1)),
        alarms=draw(st.lists(st.sampled_from(EXPRESSIBLE["alarm"]), unique=True)),
        warnings=draw(st.none() | st.lists(st.sampled_from(ALARM_NAMES), unique=True)),
        product=draw(st.none() | st.text("ABCDEFGHJKP0123456789_", min_size=1, max_size=16)),
        firmware=draw(st.none() | st.sampled_from(["15.10", "15.38"])),
    )


def check_roundtrip(state, got):
    assert got.voltage_v == state.voltage_v and got.current_a == state.current_a
    assert (got.soc_pct, got.soh_pct, got.cycles) == (state.soc_pct, state.soh_pct, state.cycles)
    assert (got.remaining_ah, got.capacity_ah) == (state.remaining_ah, state.capacity_ah)
    assert got.cells_v == state.cells_v
    for key, value in jk_pb.cell_extremes(state.cells_v).items():
        assert getattr(got, key) == value, key
    temps = state.temperatures_c or []
    assert got.temperatures_c == (temps or None)
    battery = temps[:-1]
    assert got.cell_temp_min_c == (min(battery) if battery else None)
    assert got.cell_temp_max_c == (max(battery) if battery else None)
    if battery:
        raws = [round(t * 10) for t in battery]
        assert got.temperature_c == math.floor(sum(raws) / len(raws) + 0.5) / 10
    else:
        assert got.temperature_c is None
    alarms = [n for n in ALARM_NAMES if n in state.alarms]
    warnings = set(state.warnings or []) & set(EXPRESSIBLE["warning"])
    assert got.alarms == alarms
    assert got.warnings == [n for n in ALARM_NAMES if n in warnings - set(alarms)]
    ce, de = state.charge_enable, state.discharge_enable
    assert got.charge_enable == (state.charge_current_a > 0 if ce is None else ce)
    assert got.discharge_enable == (state.discharge_current_a > 0 if de is None else de)


@given(jk_states())
def test_round_trip_through_modbus_reads(state):
    check_roundtrip(state, PROTOCOL.decode(modbus_cycle(state)))


@given(jk_states())
def test_round_trip_through_the_fc16_frames(state):
    frames = []
    for register in ("1620", "161C"):
        frames += serve(state, with_crc(bytes.fromhex(f"01 10 {register} 00 01 02 00 00")))
    got = PROTOCOL.decode(frames)
    check_roundtrip(state, got)
    assert (got.product, got.firmware) == (state.product, state.firmware)


def test_invert_current_option_applies_once():
    inverted = JkPbProtocol(BmsOptions(invert_current=True))
    assert inverted.decode(modbus_cycle(good())).current_a == 12.345


# -- framing --------------------------------------------------------------------------------------


def test_framer_skips_garbage_and_bad_checksums_and_joins_split_frames():
    frame = bytes.fromhex(CELL_INFO_CAPTURE)[:300]
    ack = bytes.fromhex(CELL_INFO_CAPTURE)[300:]
    (reply,) = serve(good(), bytes.fromhex(PB_01))
    bad = bytearray(frame)
    bad[100] ^= 0x01
    framer = PROTOCOL.reply_framer()
    stream = b"\x00\xff\x55" + bytes(bad) + frame + ack + b"\x13\x37" + reply
    out = framer.feed(stream[:150]) + framer.feed(stream[150:460]) + framer.feed(stream[460:])
    assert out == [frame, ack, reply]
    assert framer.bad_frames >= 1 and framer.noise_bytes >= 300


def test_request_framer_takes_reads_and_triggers():
    trigger = with_crc(bytes.fromhex("01 10 16 20 00 01 02 00 00"))
    framer = PROTOCOL.request_framer()
    assert framer.feed(b"\x00" + bytes.fromhex(PB_01) + trigger[:5]) == [bytes.fromhex(PB_01)]
    assert framer.feed(trigger[5:]) == [trigger]


@given(st.binary(max_size=700), st.integers(1, 50))
def test_reply_framer_never_raises_and_only_yields_checked_frames(data, chunk):
    framer = PROTOCOL.reply_framer()
    for i in range(0, len(data), chunk):
        for frame in framer.feed(data[i : i + chunk]):
            if frame.startswith(SYNC):
                assert len(frame) == 300 and sum8(frame[:299]) == frame[299]
            else:
                assert jk_pb.modbus_crc_ok(frame)


# -- fuzzing and errors ---------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=320), max_size=4))
def test_random_frames_raise_only_decode_errors(frames):
    with contextlib.suppress(DecodeError):
        PROTOCOL.decode(frames)


@given(st.integers(0, 299), st.integers(1, 255))
def test_a_flipped_byte_in_a_frame_is_named_by_checksum(at, flip):
    frame = bytearray(bytes.fromhex(CELL_INFO_CAPTURE)[:300])
    frame[at] ^= flip
    if frame[:4] != SYNC:
        with pytest.raises(DecodeError):
            PROTOCOL.decode([bytes(frame)])
        return
    with pytest.raises(DecodeError, match=r"frame 1: (checksum mismatch|unknown JK frame type)"):
        PROTOCOL.decode([bytes(frame)])


@given(st.data())
def test_truncated_or_flipped_modbus_replies_are_rejected(data):
    (reply,) = serve(good(), read(0x1280, 64))
    cut = data.draw(st.integers(5, len(reply) - 1))
    with pytest.raises(DecodeError, match=r"frame 2: (length mismatch|CRC mismatch)"):
        PROTOCOL.decode([read(0x1280, 64), reply[:cut]])
    at = data.draw(st.integers(0, len(reply) - 1))
    flipped = bytearray(reply)
    flipped[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(DecodeError, match="frame 2: "):
        PROTOCOL.decode([read(0x1280, 64), bytes(flipped)])


def reply_for(start, count, state=None):
    (reply,) = serve(state or good(), read(start, count))
    return reply


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (
            [bytes.fromhex(CELL_INFO_CAPTURE)[:299] + b"\x00"],
            "frame 1: checksum mismatch: expected B5, got 00",
        ),
        (
            [bytes.fromhex(CELL_INFO_CAPTURE)[:299]],
            "frame 1: a 55 AA EB 90 frame is 300 bytes, got 299",
        ),
        (
            [SYNC + b"\x07" + bytes(294) + bytes([sum8(SYNC + b"\x07")])],
            "frame 1: unknown JK frame type 0x07 (01 settings, 02 cell info, 03 about)",
        ),
        (
            [reply_for(0x1290, 2)],
            "frame 1: a JK-PB register reply does not say which registers it holds: give the read request before it",
        ),
        (
            [read(0x1290, 2), with_crc(bytes.fromhex("02 03 04 00 00 D1 C4"))],
            "frame 2: reply from slave 2 to a request to slave 1",
        ),
        (
            [read(0x1200, 64), reply_for(0x1290, 2)],
            "frame 2: byte count 4 is 2 registers, expected 64",
        ),
        (
            [read(0x1290, 2), reply_for(0x1290, 2)[:-4] + reply_for(0x1290, 2)[-2:]],
            "frame 2: length mismatch: byte count 4 needs a 9-byte frame, got 7 bytes",
        ),
        (
            [read(0x1290, 2), reply_for(0x1290, 2)[:-1] + b"\x00"],
            "frame 2: CRC mismatch: expected ",
        ),
        ([read(0x1290, 2)[:-1] + b"\x00"], "frame 1: CRC mismatch: expected C15E, got C100"),
        ([with_crc(bytes.fromhex("01 03 12 00 00 00"))], "frame 1: count 0 is outside 1..125"),
        (
            [with_crc(bytes.fromhex("01 04 12 00 00 01"))],
            "frame 1: function 04 is not a JK-PB function",
        ),
        (
            [read(0x1290, 2), build_exception_reply(1, 3, 2)],
            "frame 2: slave 1 answered function 03 with exception 02 (illegal data address)",
        ),
        (
            [build_exception_reply(1, 3, 2) + b"\x00"],
            "frame 1: exception reply (function byte 83) is 5 bytes, got 6",
        ),
        ([b"\x01\x03\x00"], "frame 1: 3 bytes is too short for a Modbus RTU frame"),
        (
            [with_crc(bytes.fromhex("01 10 16 20 00 01 02 00"))],
            "frame 1: function 10 frame is 10 bytes: an acknowledgement is 8, this request would be 11",
        ),
        (
            [read(0x1240, 2), with_crc(bytes.fromhex("01 03 04 00 00 00 00"))],
            "frame 2: cell-present bitmask (offset 64, register 0x1240) is 0: no cell is present",
        ),
    ],
)
def test_errors_name_frame_and_cause(frames, message):
    with pytest.raises(DecodeError) as err:
        PROTOCOL.decode(frames)
    assert str(err.value).startswith(message), str(err.value)


def test_exception_to_the_identity_read_is_tolerated():
    wire = [read(0x1400, 46), build_exception_reply(1, 3, 2), *modbus_cycle(good())]
    state = PROTOCOL.decode(wire)
    assert state.product is None and state.voltage_v == 53.12


def test_reads_outside_the_mapped_blocks_are_checked_and_ignored():
    settings = [read(0x1000, 2), with_crc(bytes.fromhex("01 03 04 00 00 0A 28"))]
    rcv_time = [read(0x1504, 1), with_crc(bytes.fromhex("01 03 02 05 0A"))]
    assert PROTOCOL.decode(settings + rcv_time) == BatteryState()
    with pytest.raises(DecodeError, match="frame 4: CRC mismatch"):
        PROTOCOL.decode([*settings, rcv_time[0], rcv_time[1][:-1] + b"\x00"])


def test_settings_frame_is_accepted_and_ignored():
    frame = bytearray(300)
    frame[:6] = SYNC + b"\x01\x05"
    frame[299] = sum8(frame[:299])
    assert PROTOCOL.decode([bytes(frame)]) == BatteryState()


def test_about_block_by_modbus_matches_the_frame():
    state = good(product="JK_PB2A16S20P", hardware="19A", firmware="19.20", serial="123456789AB")
    about = ABOUT.served
    assert len(block_image(ABOUT, state)) == about == 92
    got = PROTOCOL.decode([read(0x1400, 46), reply_for(0x1400, 46, state)])
    assert got.to_dict() == {
        "product": "JK_PB2A16S20P",
        "hardware": "19A",
        "firmware": "19.20",
        "serial": "123456789AB",
    }
