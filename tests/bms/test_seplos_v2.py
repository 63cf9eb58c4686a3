"""Seplos V2 ASCII protocol (and the ASCII machinery Pace shares): vectors SEP2-01/02, real
frames, layout recognition, alarm tables, the simulated device, round trips and fuzzing."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.bms import seplos_v2 as sep
from bmslink.bms.base import BmsOptions, hex_frames
from bmslink.bms.seplos_v2 import EXPRESSIBLE, FLAGS, SeplosV2Protocol
from bmslink.errors import DecodeError, EncodeError
from bmslink.rs485.frame import AsciiFrame, parse_frame
from bmslink.sim.bms import SimBms
from bmslink.sim.pack import Pack
from bmslink.state import ALARM_NAMES, BatteryState

P = SeplosV2Protocol()

# SEP2-01
REQ_42_ADR0 = b"~20004642E00200FD37\r"
REQ_44_ADR0 = b"~20004644E00200FD35\r"
REQ_51 = b"~200046510000FDAE\r"
REQ_47 = b"~200046470000FDA9\r"
REQ_4F = b"~2000464F0000FD9A\r"
REQ_42_ADR1 = b"~20014642E00201FD35\r"
# SEP2-02
SEP2_02 = (
    "~2000460010960001100CD70CE90CF40CD60CEF0CE50CE10CDC0CE90CF00CE80CEF0CEA0CDA0CDE0CD806"
    "0BA60BA00B970BA60BA50BA2FD5C14A0344E0A426803134650004603E8149F0000000000000000DC6C"
)
# Real replies served by esphome-seplos-bms's emulator config (tests/esp8266-seplos-emulator.yaml),
# the repository the reference §4a cites: 0x44 (15 cells, both switches on), 0x51.
REAL_44 = (
    "~20004600A06000010F000000000000000000000000000000060000000000000000140000000000000300"
    "000200000000000000000002EB74"
)
REAL_51 = "~20004600C040313130312D5A4832362002062020202020202020202020202020202020202020F116"


def frame(cid2, info=b"", adr=0, ver=0x20, cid1=0x46):
    return AsciiFrame(ver, adr, cid1, cid2, info).encode()


def info_of(text):
    return parse_frame(hex_frames([text])[0]).info


def state(**changes):
    """A complete 16-cell state as SimBms gives it, with ``changes``."""
    return SimBms(Pack.lfp(16, 280.0, soc=0.6)).state().merged(changes)


def run_cycle(protocol, source, address, identity=True):
    """Drive ``conversation`` with ``answer`` as the device; every frame in wire order."""
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


def alarm_info(
    cells=(0,) * 16,
    temps=(0,) * 6,
    current=0,
    voltage=0,
    fields=None,
    count=20,
):
    """A 0x44 INFO: ``fields`` maps bit-field names to values (on-off 03 by default)."""
    values = {"on-off state": 0x03, **(fields or {})}
    names = [*sep.BIT_FIELDS, *(f"bit field {k + 1}" for k in range(20, count))][:count]
    return bytes(
        [0, 1, len(cells), *cells, len(temps), *temps, current, voltage, count]
        + [values.get(name, 0) for name in names]
    )


def decode_alarm(**kwargs):
    return P.decode([REQ_44_ADR0, frame(0, alarm_info(**kwargs))])


# -- SEP2-01: requests ----------------------------------------------------------------------------


def test_sep2_01_poll_requests_are_byte_exact():
    requests = list(P.conversation(0, identity=True))
    assert [r.data for r in requests] == [REQ_42_ADR0, REQ_44_ADR0, REQ_51]
    assert [r.optional for r in requests] == [False, False, True]
    assert all(r.reply_prefix == b"~200046" for r in requests)
    assert next(P.conversation(1, identity=False)).data == REQ_42_ADR1


def test_sep2_01_other_listed_requests_are_the_same_framing():
    assert frame(0x47) == REQ_47
    assert frame(0x4F) == REQ_4F


@pytest.mark.parametrize("address", range(16))
def test_requests_for_every_address_carry_it_in_adr_and_info(address):
    requests = list(P.conversation(address, identity=False))
    assert [parse_frame(r.data) for r in requests] == [
        AsciiFrame(0x20, address, 0x46, cid2, bytes([address])) for cid2 in (0x42, 0x44)
    ]


def test_address_outside_0_to_15_is_refused():
    with pytest.raises(ValueError, match=r"seplos: address 16 outside 0\.\.15"):
        next(P.conversation(16, identity=False))


# -- SEP2-02 and real replies ---------------------------------------------------------------------

SEP2_02_VALUES = {
    "cells_v": [
        3.287,
        3.305,
        3.316,
        3.286,
        3.311,
        3.301,
        3.297,
        3.292,
        3.305,
        3.312,
        3.304,
        3.311,
        3.306,
        3.290,
        3.294,
        3.288,
    ],
    "cell_min_v": 3.286,
    "cell_min_id": "4",
    "cell_max_v": 3.316,
    "cell_max_id": "3",
    "temperatures_c": [25.1, 24.5, 23.6, 25.1, 25.0, 24.7],
    "cell_temp_min_c": 23.6,
    "cell_temp_max_c": 25.1,
    "temperature_c": 24.6,  # mean of the four cell sensors, 24.575
    "current_a": -6.76,
    "voltage_v": 52.8,
    "remaining_ah": 133.9,
    "capacity_ah": 170.0,
    "soc_pct": 78.7,
    "installed_capacity_ah": 180.0,
    "cycles": 70,
    "soh_pct": 100.0,
}


@pytest.mark.parametrize("with_request", [True, False])
def test_sep2_02_decodes_to_the_stated_values(with_request):
    frames = hex_frames(["~20004642E00200FD37", SEP2_02] if with_request else [SEP2_02])
    assert P.decode(frames).to_dict() == SEP2_02_VALUES  # port voltage 52.79 V: no contract key


def test_sep2_02_layout_counts_and_port_voltage():
    info = info_of(SEP2_02)
    assert len(info) == 75 and info[2] == 16 and info[35] == 6
    assert info[54] == 10  # custom count
    assert int.from_bytes(info[65:67], "big") == 5279  # port voltage, not decoded


def test_kelvin_offset_option_changes_temperatures():
    p = SeplosV2Protocol(BmsOptions(kelvin_offset_raw=2730))
    got = p.decode(hex_frames([SEP2_02]))
    assert got.temperatures_c == [25.2, 24.6, 23.7, 25.2, 25.1, 24.8]
    half = SeplosV2Protocol(BmsOptions(kelvin_offset_raw=2731.5)).decode(hex_frames([SEP2_02]))
    assert half.temperatures_c[0] == 25.05


def test_invert_current_option_applies_once():
    p = SeplosV2Protocol(BmsOptions(invert_current=True))
    assert p.decode(hex_frames([SEP2_02])).current_a == 6.76


def test_real_0x44_reply_all_clear_both_switches_on():
    got = P.decode(hex_frames([REAL_44]))  # recognised by layout: no request before it
    assert got.to_dict() == {
        "alarms": [],
        "warnings": [],
        "charge_enable": True,
        "discharge_enable": True,
    }


def test_real_0x51_reply_blank_manufacturer_is_absent():
    got = P.decode(hex_frames([REAL_51]))
    assert got.to_dict() == {"product": "1101-ZH26", "firmware": "2.6"}
    assert P.decode([REQ_51, hex_frames([REAL_51])[0]]).product == "1101-ZH26"


def test_real_emulator_exchange_decodes_as_one_state():
    frames = [REQ_51, *hex_frames([REAL_51]), REQ_42_ADR0, *hex_frames([SEP2_02])]
    frames += [REQ_44_ADR0, *hex_frames([REAL_44])]
    got = P.decode(frames)
    assert got.voltage_v == 52.8 and got.product == "1101-ZH26" and got.alarms == []
    assert P.keys <= {k for k, v in got.to_dict().items() if v is not None}


# -- decoding choices ---------------------------------------------------------------------------


def _telemetry(temps, custom=None, cells=(3300, 3301)):
    custom = [17000, 787, 18000, 70, 1000, 5279, 0, 0, 0, 0] if custom is None else custom
    out = bytes([0, 1, len(cells)]) + b"".join(c.to_bytes(2, "big") for c in cells)
    out += bytes([len(temps)]) + b"".join(t.to_bytes(2, "big") for t in temps)
    out += (-676).to_bytes(2, "big", signed=True) + (5280).to_bytes(2, "big")
    out += (13390).to_bytes(2, "big") + bytes([len(custom)])
    return out + b"".join(c.to_bytes(2, "big") for c in custom)


def test_last_two_sensors_are_board_sensors_and_raw_zero_is_no_reading():
    got = P.decode([REQ_42_ADR0, frame(0, _telemetry([2931, 0, 3031, 2831, 3131, 0]))])
    assert got.temperatures_c == [20.0, 30.0, 10.0, 40.0]
    assert (got.cell_temp_min_c, got.cell_temp_max_c, got.temperature_c) == (10.0, 30.0, 20.0)


def test_two_sensors_only_are_board_sensors():
    got = P.decode([REQ_42_ADR0, frame(0, _telemetry([2931, 3031]))])
    assert got.temperatures_c == [20.0, 30.0]
    assert got.cell_temp_min_c is None and got.temperature_c is None


def test_more_custom_items_are_skipped_fewer_than_five_refused():
    got = P.decode(
        [REQ_42_ADR0, frame(0, _telemetry([2931] * 6, [17000, 787, 18000, 70, 1000] + [9] * 7))]
    )
    assert (got.soh_pct, got.cycles) == (100.0, 70)
    assert (
        P.decode(
            [REQ_42_ADR0, frame(0, _telemetry([2931] * 6, [17000, 787, 18000, 70, 1000]))]
        ).soh_pct
        == 100.0
    )
    with pytest.raises(
        DecodeError,
        match=r"frame 2: 0x42 telemetry: user-defined item count is 4 \(byte 26\), at least 5 needed",
    ):
        P.decode([REQ_42_ADR0, frame(0, _telemetry([2931] * 6, [17000, 787, 18000, 70]))])


# -- 0x44 tables ------------------------------------------------------------------------------------


def test_flags_alarm_level_and_warning_level():
    got = decode_alarm(
        fields={
            "alarm event 2": 0b0000_0011,  # cell high voltage alarm + cell OVP
            "alarm event 3": 0b0100_0001,  # charge high temp alarm, discharge low temp alarm
            "alarm event 5": 0b0010_0100,  # discharge OC alarm, output short circuit protection
        }
    )
    assert got.alarms == ["high_voltage", "short_circuit"]
    assert got.warnings == ["low_temperature", "high_temperature_charge", "high_discharge_current"]


@pytest.mark.parametrize(
    ("fields", "alarms", "warnings"),
    [
        ({"alarm event 1": 0x01}, ["bms_internal"], []),
        ({"alarm event 1": 0x20}, ["contactor"], []),
        ({"alarm event 4": 0x10}, ["high_temperature"], []),  # power over-temperature
        ({"alarm event 4": 0x20}, [], ["high_temperature"]),  # power high temperature alarm
        ({"alarm event 4": 0x40}, [], []),  # cell heating: a state
        ({"alarm event 6": 0x04}, [], ["low_voltage"]),  # residual capacity alarm
        ({"alarm event 6": 0x18}, ["low_voltage"], []),
        ({"alarm event 6": 0x02}, [], []),  # intermittent recharge waiting
        ({"alarm event 6": 0x20}, ["general"], []),  # reverse polarity
        ({"disconnection state 2": 0x80}, ["bms_internal"], []),  # cell 16 wire
        ({"alarm event 7": 0x30}, [], []),  # charging waiting
        ({"alarm event 8": 0x01}, ["bms_internal"], []),  # EEPROM
        ({"alarm event 8": 0x1E}, [], ["bms_internal"]),  # RTC, calibration
        ({"equilibrium state 1": 0xFF, "system state": 0x37}, [], []),
    ],
)
def test_flag_table_rows(fields, alarms, warnings):
    got = decode_alarm(fields=fields)
    assert (got.alarms, got.warnings) == (alarms, warnings)


def test_item_bytes_are_warnings_and_alarm_names_are_not_repeated():
    cells = [0] * 16
    cells[2], cells[5] = 0x02, 0x01
    got = decode_alarm(cells=cells, temps=(0, 0, 0, 0, 0x01, 0), current=0x02, voltage=0xF0)
    assert got.alarms == []
    assert got.warnings == [
        "high_voltage",
        "low_voltage",
        "low_temperature",
        "high_charge_current",
        "general",
    ]
    got = decode_alarm(current=0x01, voltage=0x02, fields={"alarm event 2": 0x02})
    assert (got.alarms, got.warnings) == (["high_voltage"], ["high_discharge_current"])
    assert decode_alarm(cells=(0x85,) + (0,) * 15).warnings == ["general"]


@pytest.mark.parametrize(
    ("on_off", "charge", "discharge"),
    [(0, False, False), (1, False, True), (2, True, False), (0x0F, True, True)],
)
def test_on_off_bit0_is_discharge_bit1_is_charge(on_off, charge, discharge):
    got = decode_alarm(fields={"on-off state": on_off})
    assert (got.charge_enable, got.discharge_enable) == (charge, discharge)


def test_bit_field_count_from_7_accepted_below_refused():
    assert decode_alarm(count=7).charge_enable is True
    assert decode_alarm(count=24, fields={"bit field 24": 0xFF}).alarms == []
    with pytest.raises(
        DecodeError,
        match=r"frame 2: 0x44 telesignalling: bit-field count is 6 \(byte 28\), at least 7 needed",
    ):
        decode_alarm(count=6)


def test_every_flag_names_a_contract_alarm_and_a_real_bit_field():
    for flag in FLAGS:
        assert flag.name in ALARM_NAMES and flag.field in sep.BIT_FIELDS and 0 <= flag.bit <= 7
    assert set(EXPRESSIBLE["alarm"]) == set(ALARM_NAMES) - {"cell_imbalance"}
    assert set(EXPRESSIBLE["warning"]) == set(ALARM_NAMES) - {
        "short_circuit",
        "contactor",
        "cell_imbalance",
    }


# -- context, recognition and errors ------------------------------------------------------------


def test_request_gives_the_reply_its_command_and_unknown_commands_are_skipped():
    reply_47 = frame(0, bytes(range(30)))
    assert P.decode([REQ_47, reply_47]).to_dict() == {}
    assert P.decode([REQ_4F, frame(0)]).to_dict() == {}
    with pytest.raises(
        DecodeError,
        match=r"frame 1: a reply without its request \(0 INFO bytes\) fits no seplos reply layout",
    ):
        P.decode([frame(0)])


def test_ambiguous_reply_needs_its_request():
    info = bytes([0, 0, 0, 0, 0, 0, 25]) + b"A" * 25  # fits 0x44 (P = 25) and 0x51 (32 bytes)
    with pytest.raises(
        DecodeError,
        match="fits 0x44 telesignalling and 0x51 vendor info; give the request before it",
    ):
        P.decode([frame(0, info)])
    assert P.decode([REQ_51, frame(0, info)]).firmware == "65.65"
    assert P.decode([REQ_44_ADR0, frame(0, info)]).discharge_enable is True  # on-off "A"


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (
            [REQ_42_ADR0, frame(0x02)],
            r"frame 2: address 00 answered command 0x42 telemetry with RTN 02 \(CHKSUM error\)",
        ),
        (
            [frame(0xE2, adr=3)],
            r"frame 1: address 03 answered a request with RTN E2 \(execution failure\)",
        ),
        (
            [frame(0x33)],
            "frame 1: CID2 33 is neither a seplos command nor a return code it defines",
        ),
        ([REQ_42_ADR0, frame(0, ver=0x25)], "frame 2: VER 25, seplos frames carry 20"),
        ([frame(0x42, b"\x00", cid1=0x4A)], "frame 1: CID1 4A, seplos uses 46"),
        ([b"~20004642E00200FD38\r"], "frame 1: checksum mismatch: expected FD37, got FD38"),
        (
            [REQ_42_ADR0, b"~20004642F00200FD36\r"],
            r"frame 2: LCHKSUM mismatch in LENGTH F002: expected E, got F",
        ),
        ([b"~20004642C00400FD37\r"], "frame 1: LENID says 4 INFO characters, the frame has 2"),
        ([b"20004642E00200FD37\r"], r"frame 1: frame must start with '~' \(7E\), got 32"),
        ([b"~2000464G\r"], "frame 1: byte 8 of the frame .* is b'G', not a hex digit"),
        ([b"~200046\r"], "frame 1: frame too short: 6 characters after '~'"),
    ],
)
def test_decode_errors_name_the_frame_and_the_fault(frames, message):
    with pytest.raises(DecodeError, match=message):
        P.decode(frames)


def test_truncated_and_padded_info_name_field_and_length():
    info = info_of(SEP2_02)
    with pytest.raises(
        DecodeError,
        match=r"frame 2: 0x42 telemetry: INFO ends after 74 bytes, reading reserved 4 needs bytes 73..74",
    ):
        P.decode([REQ_42_ADR0, frame(0, info[:-1])])
    with pytest.raises(
        DecodeError,
        match=r"frame 2: 0x42 telemetry: 1 unexpected bytes after the last field \(INFO has 76 bytes, the layout ends at 75\)",
    ):
        P.decode([REQ_42_ADR0, frame(0, info + b"\x00")])


def test_vendor_text_must_be_ascii():
    info = b"\xff" + b"A" * 31
    with pytest.raises(
        DecodeError, match=r"frame 2: 0x51 vendor info: device name is not ASCII \(byte 0\)"
    ):
        P.decode([REQ_51, frame(0, info)])


# -- framers --------------------------------------------------------------------------------------


def test_reply_framer_skips_garbage_and_bad_frames_and_joins_split_frames():
    good = hex_frames([SEP2_02])[0]
    bad = good[:-3] + (b"0" if good[-3:-2] != b"0" else b"1") + good[-2:]
    framer = P.reply_framer()
    assert framer.feed(b"\x00\xff" + bad + b"zz" + good[:40]) == []
    assert framer.feed(good[40:100]) == []
    assert framer.feed(good[100:] + b"~20") == [good]
    assert framer.bad_frames == 1
    assert framer.noise_bytes == 4  # 00 FF before the bad frame, "zz" between


def test_reply_framer_counts_exactly():
    good = hex_frames([SEP2_02])[0]
    bad = good[:-2] + (b"D" if good[-2:-1] != b"D" else b"E") + b"\r"
    framer = P.reply_framer()
    assert framer.feed(b"xy" + bad + good) == [good]
    assert (framer.bad_frames, framer.noise_bytes) == (1, 2)


def test_request_framer_passes_answerable_bad_requests_and_counts_them():
    framer = P.request_framer()
    bad = b"~20004642E00200FD38\r"
    assert framer.feed(b"\x00" + bad + b"~ZZ\r" + REQ_42_ADR0) == [bad, REQ_42_ADR0]
    assert framer.bad_frames == 2  # the bad checksum (passed on) and the unreadable one
    assert framer.noise_bytes == 1


# -- the simulated device -------------------------------------------------------------------------


def test_answer_serves_0x42_from_a_state():
    s = state()
    (reply,) = P.answer(REQ_42_ADR0, lambda a: s)
    parsed = parse_frame(reply)
    assert (parsed.ver, parsed.adr, parsed.cid1, parsed.cid2) == (0x20, 0, 0x46, 0)
    info = parsed.info
    assert info[:3] == bytes([0x00, 0x00, 16]) and len(info) == 75
    assert info[-8:] == bytes(8)  # reserved
    got = P.decode([REQ_42_ADR0, reply])
    assert got.cells_v == s.cells_v and got.soc_pct == s.soc_pct
    assert got.temperatures_c == s.temperatures_c  # 4 cell sensors; board sensors sent as raw 0


def test_answer_echoes_the_command_group_and_answers_only_its_addresses():
    s = state()
    (reply,) = P.answer(frame(0x42, b"\x01", adr=5), lambda a: s if a == 5 else None)
    assert parse_frame(reply).adr == 5 and parse_frame(reply).info[1] == 1
    assert P.answer(REQ_42_ADR1, lambda a: s if a == 5 else None) == []
    assert P.answer(frame(0x42, b"\x10", adr=0x10), lambda a: s) == []


@pytest.mark.parametrize(
    "request_",
    [
        frame(0x47),  # a command the device does not serve
        frame(0x42, b""),  # malformed INFO
        frame(0x42, b"\x00\x00"),
        frame(0x51, b"\x00"),
        frame(0x42, b"\x00", ver=0x25),  # another protocol
        frame(0x42, b"\x00", cid1=0x4A),
        frame(0x00),  # a reply, not a request
        b"~ZZ\r",
        b"",
    ],
)
def test_answer_is_silent_for_what_it_does_not_serve(request_):
    assert P.answer(request_, lambda a: state()) == []


def test_answer_source_none_is_silence():
    assert P.answer(REQ_42_ADR0, lambda a: None) == []
    assert P.answer(b"~20004642E00200FD38\r", lambda a: None) == []


@pytest.mark.parametrize(
    ("request_", "rtn"),
    [
        (b"~20004642E00200FD38\r", 0x02),  # CHKSUM
        (b"~20004642F00200FD36\r", 0x03),  # LCHKSUM
    ],
)
def test_bad_requests_get_the_rtn_the_protocol_defines(request_, rtn):
    replies = P.answer(request_, lambda a: state())
    assert replies == [AsciiFrame(0x20, 0, 0x46, rtn).encode()]
    with pytest.raises(DecodeError, match=f"RTN {rtn:02X}"):
        P.decode([REQ_42_ADR0, *replies])


def test_lenid_mismatch_gets_rtn_05():
    bad = b"~20004642C00400FD37\r"  # checksum right, LENID 4 for 2 INFO characters
    assert P.answer(bad, lambda a: state()) == [b"~200046050000FDAF\r"]
    assert parse_frame(b"~200046050000FDAF\r").cid2 == 0x05


def test_answer_serves_vendor_info_and_blank_for_absent_names():
    (reply,) = P.answer(REQ_51, lambda a: state(product="ZH26", firmware="2.6"))
    info = parse_frame(reply).info
    assert info == b"ZH26      \x02\x06bmslink-sim         "
    (reply,) = P.answer(REQ_51, lambda a: BatteryState())
    assert P.decode([REQ_51, reply]).to_dict() == {}


@pytest.mark.parametrize(
    ("request_", "key"),
    [
        (REQ_42_ADR0, "cells_v"),
        (REQ_42_ADR0, "temperatures_c"),
        (REQ_42_ADR0, "current_a"),
        (REQ_42_ADR0, "voltage_v"),
        (REQ_42_ADR0, "remaining_ah"),
        (REQ_42_ADR0, "capacity_ah"),
        (REQ_42_ADR0, "soc_pct"),
        (REQ_42_ADR0, "installed_capacity_ah"),
        (REQ_42_ADR0, "cycles"),
        (REQ_42_ADR0, "soh_pct"),
        (REQ_44_ADR0, "alarms"),
        (REQ_44_ADR0, "charge_enable"),
        (REQ_44_ADR0, "discharge_enable"),
        (REQ_44_ADR0, "cells_v"),
    ],
)
def test_missing_key_is_refused_by_name(request_, key):
    with pytest.raises(EncodeError, match=f": {key} is missing"):
        P.answer(request_, lambda a: state(**{key: None}))


@pytest.mark.parametrize(
    ("request_", "changes", "message"),
    [
        (
            REQ_42_ADR0,
            {"current_a": 400.0},
            "0x42 telemetry: current_a 400 is outside -327.68..327.67",
        ),
        (REQ_42_ADR0, {"voltage_v": 700.0}, "voltage_v 700 is outside 0..655.35"),
        (REQ_42_ADR0, {"remaining_ah": -1.0}, "remaining_ah -1 is outside 0..655.35"),
        (REQ_42_ADR0, {"soc_pct": 100.1}, "0x42 telemetry: soc_pct 100.1 is outside 0..100"),
        (REQ_42_ADR0, {"soh_pct": -0.5}, "soh_pct -0.5 is outside 0..100"),
        (REQ_42_ADR0, {"cycles": 70000}, "cycles 70000 is outside 0..65535"),
        (REQ_42_ADR0, {"cells_v": [3.3] * 17}, "cells_v: Seplos V2 carries 1..16 cells, got 17"),
        (REQ_42_ADR0, {"cells_v": [3.3, 70.0]}, r"cells_v\[1\] 70 is outside 0..65.535"),
        (REQ_42_ADR0, {"temperatures_c": [20.0] * 5}, "temperatures_c has 5 sensors"),
        (
            REQ_42_ADR0,
            {"temperatures_c": [20.0, -300.0]},
            r"temperatures_c\[1\] = -300 °C is outside -273",
        ),
        (
            REQ_42_ADR0,
            {"temperatures_c": [float("nan")]},
            r"temperatures_c\[0\] must be a finite number",
        ),
        (
            REQ_44_ADR0,
            {"alarms": ["cell_imbalance"]},
            "alarm 'cell_imbalance' has no Seplos V2 0x44 flag",
        ),
        (
            REQ_51,
            {"product": "ELEVEN-CHARS"},
            "product 'ELEVEN-CHARS' is longer than 10 characters",
        ),
        (REQ_51, {"manufacturer": "Seplös"}, "manufacturer 'Seplös' is not ASCII"),
        (REQ_51, {"firmware": "a.ff"}, "firmware 'a.ff' is not 'major.minor', each 0-255"),
        (REQ_51, {"firmware": "1.256"}, "firmware '1.256'"),
    ],
)
def test_values_the_reply_cannot_carry_are_refused_by_field(request_, changes, message):
    with pytest.raises(EncodeError, match=message):
        P.answer(request_, lambda a: state(**changes))


def test_warnings_without_a_flag_are_not_sent_and_general_rides_on_an_item():
    s = state(alarms=[], warnings=["short_circuit", "contactor", "cell_imbalance", "general"])
    (reply,) = P.answer(REQ_44_ADR0, lambda a: s)
    info = parse_frame(reply).info
    assert info[3 + 16 + 1 + 6] == 0xF0  # the current item, the first one normal
    assert P.decode([REQ_44_ADR0, reply]).warnings == ["general"]


def test_alarm_sets_its_flag_and_the_item_of_the_extreme_cell():
    cells = [3.30] * 16
    cells[6] = 3.66
    s = state(cells_v=cells, alarms=["high_voltage"], warnings=["low_temperature"], current_a=-5.0)
    (reply,) = P.answer(REQ_44_ADR0, lambda a: s)
    info = parse_frame(reply).info
    assert info[3 + 6] == 0x02  # cell 7 above its upper limit
    temps = info[20:26]
    assert temps[s.temperatures_c.index(min(s.temperatures_c))] == 0x01
    fields = info[29:49]
    assert fields[1] == 0x02  # alarm event 2 bit 1: cell OVP
    assert fields[2] == 0x40  # alarm event 3 bit 6: discharge low temperature alarm
    assert fields[6] == 0x03 and fields[9] == 0x01  # both switches on; discharging
    got = P.decode([REQ_44_ADR0, reply])
    assert (got.alarms, got.warnings) == (["high_voltage"], ["low_temperature"])


# -- the whole cycle against the simulated device --------------------------------------------------


def test_poll_cycle_with_the_simulated_device():
    s = state()
    frames = run_cycle(P, lambda a: s if a == 3 else None, 3)
    assert len(frames) == 6
    got = P.decode(frames)
    present = {k for k, v in got.to_dict().items() if v is not None}
    assert P.keys <= present
    assert (got.product, got.manufacturer, got.firmware) == ("SIM-16S280", "bmslink-sim", None)
    assert got.voltage_v == round(s.voltage_v, 2)
    assert got.cells_v == s.cells_v and got.temperatures_c == s.temperatures_c
    assert (got.alarms, got.warnings) == ([], [])
    plain = run_cycle(P, lambda a: s, 3, identity=False)
    assert len(plain) == 4 and P.decode(plain).product is None


# -- round trip -----------------------------------------------------------------------------------


def grid(low, high, step):
    return st.integers(low, high).map(lambda v: round(v * step, 4))


@st.composite
def seplos_states(draw):
    cells = draw(st.lists(grid(2500, 3650, 0.001), min_size=1, max_size=16))
    sensors = draw(st.sampled_from([1, 2, 3, 4, 6]))
    return BatteryState(
        cells_v=cells,
        temperatures_c=draw(st.lists(grid(-200, 600, 0.1), min_size=sensors, max_size=sensors)),
        current_a=draw(grid(-32768, 32767, 0.01)),
        voltage_v=draw(grid(0, 65535, 0.01)),
        remaining_ah=draw(grid(0, 65535, 0.01)),
        capacity_ah=draw(grid(0, 65535, 0.01)),
        installed_capacity_ah=draw(grid(0, 65535, 0.01)),
        soc_pct=draw(grid(0, 1000, 0.1)),
        soh_pct=draw(grid(0, 1000, 0.1)),
        cycles=draw(st.integers(0, 0xFFFF)),
        charge_enable=draw(st.booleans()),
        discharge_enable=draw(st.booleans()),
        alarms=draw(st.lists(st.sampled_from(EXPRESSIBLE["alarm"]), unique=True)),
        warnings=draw(st.none() | st.lists(st.sampled_from(ALARM_NAMES), unique=True)),
        product=draw(st.none() | st.text("ABCZ-019 ", min_size=1, max_size=10).filter(str.strip)),
        manufacturer=draw(st.none() | st.text("abcz-019", min_size=1, max_size=20)),
        firmware=draw(
            st.none()
            | st.tuples(st.integers(0, 255), st.integers(1, 255)).map(lambda t: f"{t[0]}.{t[1]}")
        ),
    )


def close(got, want, step):
    assert got is not None and abs(got - want) <= step / 2 + 1e-9, (got, want)


@settings(max_examples=150)
@given(seplos_states(), st.integers(0, 15))
def test_round_trip_through_the_simulated_device(s, address):
    got = P.decode(run_cycle(P, lambda a: s, address))
    for key, step in [
        ("current_a", 0.01),
        ("voltage_v", 0.01),
        ("remaining_ah", 0.01),
        ("capacity_ah", 0.01),
        ("installed_capacity_ah", 0.01),
        ("soc_pct", 0.1),
        ("soh_pct", 0.1),
    ]:
        close(getattr(got, key), getattr(s, key), step)
    assert got.cycles == s.cycles
    assert got.cells_v == s.cells_v
    assert got.cell_min_v == min(s.cells_v) and got.cell_max_id == str(
        s.cells_v.index(max(s.cells_v)) + 1
    )
    assert len(got.temperatures_c) == len(s.temperatures_c)
    for g, w in zip(got.temperatures_c, s.temperatures_c, strict=True):
        close(g, w, 0.1)
    cell_sensors = got.temperatures_c[:4]
    assert (got.cell_temp_min_c, got.cell_temp_max_c) == (min(cell_sensors), max(cell_sensors))
    assert (got.charge_enable, got.discharge_enable) == (s.charge_enable, s.discharge_enable)
    assert got.alarms == [n for n in ALARM_NAMES if n in s.alarms]
    sent = set(s.warnings or []) & set(EXPRESSIBLE["warning"])
    assert got.warnings == [n for n in ALARM_NAMES if n in sent and n not in s.alarms]
    assert (got.product, got.manufacturer) == (
        s.product.rstrip() if s.product else None,
        s.manufacturer,
    )
    assert got.firmware == s.firmware


# -- fuzz -----------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(st.binary(max_size=300), st.integers(1, 40))
def test_framers_never_raise(data, cut):
    for framer in (P.reply_framer(), P.request_framer()):
        for at in range(0, len(data), cut):
            for got in framer.feed(data[at : at + cut]):
                assert got.startswith(b"~") and got.endswith(b"\r")


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_decode_of_arbitrary_bytes_raises_only_decode_error(data):
    with contextlib.suppress(DecodeError):
        P.decode([data])


@settings(max_examples=200)
@given(st.binary(max_size=120), st.sampled_from([None, 0x42, 0x44, 0x51, 0x47]))
def test_decode_of_well_framed_random_info_raises_only_decode_error(info, cid2):
    frames = ([] if cid2 is None else [frame(cid2)]) + [frame(0, info)]
    with contextlib.suppress(DecodeError):
        P.decode(frames)


@settings(max_examples=150)
@given(st.data())
def test_bit_flips_and_truncation_are_named(data):
    good = hex_frames([SEP2_02])[0]
    at = data.draw(st.integers(1, len(good) - 2))
    old = good[at : at + 1]
    new = data.draw(st.sampled_from([c for c in b"0123456789ABCDEF" if bytes([c]) != old]))
    flipped = good[:at] + bytes([new]) + good[at + 1 :]
    with pytest.raises(DecodeError, match="checksum mismatch"):
        P.decode([flipped])
    cut = data.draw(st.integers(1, len(good) - 2))
    with pytest.raises(DecodeError, match=r"checksum mismatch|too short"):
        P.decode([good[:cut] + b"\r"])
