"""Pylontech RS485 commands: public vectors, round trips as properties, refusals, fuzz."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslink.bank import bank_of
from bmslink.errors import DecodeError, EncodeError
from bmslink.rs485.frame import AsciiFrame, parse_frame
from bmslink.rs485.pylontech import (
    COMMANDS,
    Command,
    Identity,
    ResponseError,
    SystemParameters,
    decode_alarm,
    decode_analog,
    decode_manufacturer,
    decode_parameters,
    decode_response,
    decode_serial,
    decode_software_version,
    decode_system_alarm,
    decode_system_analog,
    decode_system_basic,
    encode_alarm,
    encode_analog,
    encode_manufacturer,
    encode_parameters,
    encode_serial,
    encode_software_version,
    encode_system_alarm,
    encode_system_analog,
    encode_system_basic,
    request,
)
from bmslink.rs485.pylontech import _decode_management as decode_management
from bmslink.rs485.pylontech import _encode_management as encode_management
from bmslink.state import ALARM_NAMES, BatteryState

E2_RESPONSE = (
    "~20014600C06E11010F0D450D440D450D440D450D440D3E0D450D4A0D4A0D4B0D4A0D4A0D4A0D4A"
    "050BC30BC30BC30BCD0BCD0000C725BF6802C3500002E553\r"
)


def decode(raw: str, command: int) -> Any:
    return decode_response(parse_frame(raw), command)


def test_e2_analog_values_as_stated_in_the_v28_document() -> None:
    state = decode(E2_RESPONSE, 0x42)
    assert state.cells_v == [
        3.397, 3.396, 3.397, 3.396, 3.397, 3.396, 3.390, 3.397,
        3.402, 3.402, 3.403, 3.402, 3.402, 3.402, 3.402,
    ]  # fmt: skip
    assert state.temperatures_c == [28.0, 28.0, 28.0, 29.0, 29.0]
    assert state.current_a == 0.0
    assert state.voltage_v == 50.981
    assert state.remaining_ah == 49.0
    assert state.capacity_ah == 50.0
    assert state.cycles == 2
    assert state.soc_pct == 98.0  # remaining / total
    assert (state.cell_min_v, state.cell_min_id, state.cell_max_v, state.cell_max_id) == (
        3.390, "7", 3.403, "11",
    )  # fmt: skip
    assert state.packs is None


def test_e10_management_info_from_python_pylontech_fixture() -> None:
    state = decode("~20024600B014026EF05AA0022BFDD5C0F915\r", 0x92)
    assert state.to_dict() == {
        "charge_voltage_v": 28.4,
        "discharge_voltage_v": 23.2,
        "charge_current_a": 55.5,
        "discharge_current_a": 55.5,  # sent as -55.5 A; the contract keeps a magnitude
        "charge_enable": True,
        "discharge_enable": True,
        "force_charge": False,
        "full_charge_request": False,
    }


def test_jk_capture_of_system_management_0x63() -> None:
    """A JK BMS in Pylon LV mode (dnc392/rs485-bms-probe): 28.8 / 21.6 V, 160 / 170 A, C0."""
    state = decode("~20024600D01270805460064006A4C0F9E5\r", 0x63)
    assert (state.charge_voltage_v, state.discharge_voltage_v) == (28.8, 21.6)
    assert (state.charge_current_a, state.discharge_current_a) == (160.0, 170.0)
    assert state.charge_enable and state.discharge_enable and not state.force_charge


def test_jk_capture_of_system_alarm_0x62_all_clear() -> None:
    state = decode("~20024600800800000000FC22\r", 0x62)
    assert (state.alarms, state.warnings) == ([], [])


def test_a_non_zero_return_code_is_an_error_naming_it() -> None:
    frame = AsciiFrame(0x20, 2, 0x46, 0x02, b"")
    with pytest.raises(ResponseError, match="command 42 with RTN 02 \\(CHKSUM error\\)"):
        decode_response(frame, 0x42)


def test_unknown_command() -> None:
    with pytest.raises(DecodeError, match="unknown command 77"):
        decode_response(AsciiFrame(0x20, 2, 0x46, 0, b""), 0x77)


def test_requests_match_published_strings() -> None:
    assert request(0x42, 2).encode() == b"~20024642E00202FD33\r"
    assert request(0x42, 1).encode() == b"~20014642E00201FD35\r"
    assert request(0x61, 0x12).encode() == b"~201246610000FDAA\r"
    assert request(0x63, 2).encode() == b"~200246630000FDA9\r"  # scapone tests/inverter.py


def test_analog_refuses_other_user_defined_counts() -> None:
    info = bytearray.fromhex(E2_RESPONSE[13:-5])
    count_at = len(info) - 5  # ... remaining(2) count(1) total(2) cycles(2)
    info[count_at] = 3
    with pytest.raises(DecodeError, match="user-defined item count is 3"):
        decode_analog(bytes(info))


def test_analog_truncated_names_the_field() -> None:
    info = bytes.fromhex(E2_RESPONSE[13:-5])
    with pytest.raises(DecodeError, match="module 1 cycle count"):
        decode_analog(info[:-1])


# -- strategies --------------------------------------------------------------------------------

mv = st.integers(2500, 3650).map(lambda x: x / 1000)
deci = st.integers(-1000, 1000).map(lambda x: x / 10)
temps = st.integers(-300, 700).map(lambda x: x / 10)
alarm_lists = st.lists(st.sampled_from(ALARM_NAMES), unique=True).map(sorted)


@st.composite
def modules(draw: st.DrawFn, big: bool | None = None) -> BatteryState:
    cells = draw(st.lists(mv, min_size=1, max_size=16))
    capacity_mah = draw(
        st.integers(65536, 0xFFFFFF)
        if big
        else st.integers(1000, 65535)
        if big is False
        else st.integers(1000, 400_000)
    )
    return BatteryState(
        voltage_v=round(sum(cells), 3),
        current_a=draw(deci),
        cells_v=cells,
        temperatures_c=draw(st.lists(temps, min_size=0, max_size=6)),
        capacity_ah=capacity_mah / 1000,
        remaining_ah=draw(st.integers(0, capacity_mah)) / 1000,
        cycles=draw(st.integers(0, 65535)),
    )


ANALOG_KEYS = ("voltage_v", "current_a", "cells_v", "capacity_ah", "remaining_ah", "cycles")


@given(modules())
def test_analog_round_trip(module: BatteryState) -> None:
    back = decode_analog(encode_analog([module], 2))
    for key in ANALOG_KEYS:
        assert getattr(back, key) == getattr(module, key), key
    assert back.temperatures_c == (module.temperatures_c or None)
    assert back.cell_max_v == max(module.cells_v or [])


@given(modules(big=True))
def test_analog_above_65_ah_uses_the_three_byte_capacities(module: BatteryState) -> None:
    info = encode_analog([module], 2)
    assert info.count(b"\xff\xff") >= 2  # capacity 1 and total 1 marked unused
    back = decode_analog(info)
    assert (back.capacity_ah, back.remaining_ah) == (module.capacity_ah, module.remaining_ah)


@given(st.lists(modules(), min_size=2, max_size=4))
def test_all_modules_answer_decodes_to_a_bank_with_its_packs(mods: list[BatteryState]) -> None:
    bank = decode_analog(encode_analog(mods, len(mods)))
    assert bank.modules == len(mods)
    assert bank.packs is not None and len(bank.packs) == len(mods)
    assert bank.current_a == pytest.approx(sum(m.current_a or 0 for m in mods))
    assert bank.capacity_ah == pytest.approx(sum(m.capacity_ah or 0 for m in mods))
    assert bank.cell_max_v == max(max(m.cells_v or []) for m in mods)
    assert bank.cell_max_id is not None and bank.cell_max_id.startswith("m")


def test_all_modules_count_must_match_the_blocks() -> None:
    mods = [
        BatteryState(
            voltage_v=50, current_a=0, cells_v=[3.3], capacity_ah=50, remaining_ah=25, cycles=1
        )
    ] * 2
    info = bytearray(encode_analog(mods, 2))
    info[1] = 3
    with pytest.raises(DecodeError, match="2 module blocks, the module count byte says 3"):
        decode_analog(bytes(info))


def test_bank_leaves_out_what_a_module_did_not_send() -> None:
    a = BatteryState(current_a=1.0, capacity_ah=50.0, remaining_ah=10.0)
    b = BatteryState(current_a=2.0)
    bank = bank_of([a, b])
    assert bank.current_a == 3.0
    assert bank.capacity_ah is None and bank.soc_pct is None


def test_analog_refuses_a_state_without_current() -> None:
    with pytest.raises(EncodeError, match="current_a is missing"):
        encode_analog([BatteryState(voltage_v=50.0, capacity_ah=50.0, remaining_ah=1.0)], 2)


def test_analog_refuses_out_of_range_values() -> None:
    state = BatteryState(voltage_v=70.0, current_a=0.0, capacity_ah=50.0, remaining_ah=1.0)
    with pytest.raises(EncodeError, match=r"voltage_v 70 is outside 0\.\.65\.535"):
        encode_analog([state], 2)


# -- 0x44 --------------------------------------------------------------------------------------


@st.composite
def alarm_states(draw: st.DrawFn) -> BatteryState:
    return BatteryState(
        cells_v=draw(st.lists(mv, min_size=1, max_size=16)),
        temperatures_c=draw(st.lists(temps, min_size=1, max_size=6)),
        current_a=draw(deci),
        alarms=draw(alarm_lists),
        warnings=draw(alarm_lists),
        charge_enable=draw(st.booleans()),
        discharge_enable=draw(st.booleans()),
    )


@given(alarm_states())
def test_alarm_info_keeps_every_alarm_visible(state: BatteryState) -> None:
    back = decode_alarm(encode_alarm(state, 2))
    assert (back.charge_enable, back.discharge_enable) == (
        state.charge_enable,
        state.discharge_enable,
    )
    seen = set(back.alarms or []) | set(back.warnings or [])
    raised = set(state.alarms or []) - {"cell_imbalance"}
    assert bool(seen) == bool(raised | (set(state.warnings or []) - {"cell_imbalance"}))
    # alarms with a protection bit come back as the same alarm
    for name in raised & {
        "high_voltage",
        "low_voltage",
        "high_charge_current",
        "high_discharge_current",
        "high_temperature",
        "high_temperature_charge",
    }:
        assert name in (back.alarms or [])
    # and encoding what was decoded changes nothing on the wire
    assert encode_alarm(
        back.merged(
            {
                "cells_v": state.cells_v,
                "temperatures_c": state.temperatures_c,
                "current_a": state.current_a,
            }
        ),
        2,
    ) == encode_alarm(state, 2)


def test_alarm_info_layout() -> None:
    state = BatteryState(
        cells_v=[3.3, 3.7, 3.3],
        temperatures_c=[20.0, 50.0],
        alarms=["high_voltage"],
        warnings=["high_temperature"],
        charge_enable=False,
        discharge_enable=True,
        current_a=-5.0,
    )
    info = encode_alarm(state, 2)
    assert info.hex().upper() == ("1102030002000200020002000104400000")
    back = decode_alarm(info)
    assert back.alarms == ["high_voltage"] and back.warnings == ["high_temperature"]


def test_alarm_info_refuses_unknown_alarms() -> None:
    with pytest.raises(EncodeError, match="alarms is missing"):
        encode_alarm(BatteryState(cells_v=[3.3]), 2)


def test_alarm_info_other_error_state_is_a_general_alarm() -> None:
    info = bytearray(encode_alarm(BatteryState(alarms=[], cells_v=[3.3]), 2))
    info[5] = 0xF0  # charge current state
    assert decode_alarm(bytes(info)).alarms == ["general"]


# -- 0x92 / 0x63 / 0x47 ------------------------------------------------------------------------

limits = st.builds(
    BatteryState,
    charge_voltage_v=st.integers(40000, 60000).map(lambda x: x / 1000),
    discharge_voltage_v=st.integers(40000, 60000).map(lambda x: x / 1000),
    charge_current_a=st.integers(0, 3000).map(lambda x: x / 10),
    discharge_current_a=st.integers(0, 3000).map(lambda x: x / 10),
    charge_enable=st.booleans(),
    discharge_enable=st.booleans(),
    force_charge=st.booleans(),
    full_charge_request=st.booleans(),
)


@pytest.mark.parametrize("command", [Command.MANAGEMENT, Command.SYSTEM_MANAGEMENT])
@given(state=limits)
def test_management_round_trip(command: Command, state: BatteryState) -> None:
    with_byte = command == Command.MANAGEMENT
    info = encode_management(state, command, 2 if with_byte else None)
    assert decode_management(info, command, with_byte) == state


def test_management_sign_of_the_discharge_limit() -> None:
    state = BatteryState(
        charge_voltage_v=53.2, discharge_voltage_v=48.0, charge_current_a=50.0,
        discharge_current_a=55.5, charge_enable=True, discharge_enable=True,
    )  # fmt: skip
    assert encode_management(state, Command.MANAGEMENT, 2)[7:9] == bytes.fromhex("FDD5")  # -55.5
    assert encode_management(state, Command.SYSTEM_MANAGEMENT, None)[6:8] == bytes.fromhex("022B")


def test_management_limits_round_toward_safety() -> None:
    state = BatteryState(
        charge_voltage_v=53.2999, discharge_voltage_v=48.0001, charge_current_a=50.09,
        discharge_current_a=55.59, charge_enable=True, discharge_enable=True,
    )  # fmt: skip
    back = decode_management(
        encode_management(state, Command.MANAGEMENT, 2), Command.MANAGEMENT, True
    )
    assert back.charge_voltage_v == 53.299 and back.discharge_voltage_v == 48.001
    assert back.charge_current_a == 50.0 and back.discharge_current_a == 55.5


def test_management_refuses_missing_limits_and_flags() -> None:
    with pytest.raises(EncodeError, match="charge_enable is missing"):
        encode_management(BatteryState(charge_voltage_v=53.0), Command.MANAGEMENT, 2)
    partial = BatteryState(charge_enable=True, discharge_enable=True, charge_voltage_v=53.0)
    with pytest.raises(EncodeError, match="discharge_voltage_v is missing"):
        encode_management(partial, Command.MANAGEMENT, 2)


def test_management_refuses_a_negative_charge_limit_on_the_wire() -> None:
    info = bytearray(encode_management(
        BatteryState(charge_voltage_v=53.0, discharge_voltage_v=48.0, charge_current_a=10.0,
                     discharge_current_a=10.0, charge_enable=True, discharge_enable=True),
        Command.MANAGEMENT, 2,
    ))  # fmt: skip
    info[5:7] = (-100).to_bytes(2, "big", signed=True)
    with pytest.raises(DecodeError, match="charge_current_a is negative"):
        decode_management(bytes(info), Command.MANAGEMENT, True)


PARAMS = SystemParameters(
    cell_high_voltage_v=3.65, cell_low_voltage_v=2.9, cell_under_voltage_v=2.5,
    charge_high_temperature_c=45.0, charge_low_temperature_c=0.0, charge_current_a=100.0,
    module_high_voltage_v=58.4, module_low_voltage_v=46.4, module_under_voltage_v=40.0,
    discharge_high_temperature_c=60.0, discharge_low_temperature_c=-20.0,
    discharge_current_a=100.0,
)  # fmt: skip


def test_system_parameters_round_trip() -> None:
    info = encode_parameters(PARAMS)
    assert len(info) == 25
    assert decode_parameters(info) == PARAMS.as_dict()


# -- identity commands and V3.5 ----------------------------------------------------------------


def test_identity_commands_round_trip() -> None:
    ident = Identity(device_name="US3000C", manufacturer="PYLON", software_version=(2, 3))
    assert decode_manufacturer(encode_manufacturer(ident)).to_dict() == {
        "manufacturer": "PYLON", "product": "US3000C", "firmware": "2.3",
    }  # fmt: skip
    assert decode_serial(encode_serial("PPTBH0240001", 2)).serial == "PPTBH0240001"
    assert decode_software_version(encode_software_version(ident, 2)) == {
        "firmware": "0.1.0", "manufacturer_version": "1.0",
    }  # fmt: skip
    basic = decode_system_basic(
        encode_system_basic(ident, [BatteryState(serial="A1"), BatteryState(serial="B2")])
    )
    assert basic.modules == 2 and [p.serial for p in basic.packs or []] == ["A1", "B2"]


def test_identity_refuses_text_that_does_not_fit() -> None:
    with pytest.raises(EncodeError, match="longer than 10 characters"):
        encode_manufacturer(Identity(device_name="A-VERY-LONG-NAME"))
    with pytest.raises(EncodeError, match="not ASCII"):
        encode_serial("SÉRIE", 2)


@st.composite
def system_states(draw: st.DrawFn) -> BatteryState:
    cells = draw(st.lists(mv, min_size=1, max_size=16))
    lo, hi = min(cells), max(cells)
    t = draw(st.lists(temps, min_size=2, max_size=2))
    return BatteryState(
        voltage_v=round(sum(cells), 3),
        current_a=draw(st.integers(-30000, 30000)) / 100,
        soc_pct=float(draw(st.integers(0, 100))),
        soh_pct=float(draw(st.integers(0, 100))),
        cycles=draw(st.integers(0, 65535)),
        cell_min_v=lo, cell_max_v=hi,
        cell_min_id=str(cells.index(lo) + 1), cell_max_id=str(cells.index(hi) + 1),
        cell_temp_min_c=min(t), cell_temp_max_c=max(t), temperature_c=min(t),
    )  # fmt: skip


@given(system_states())
def test_system_analog_round_trip(state: BatteryState) -> None:
    info = encode_system_analog(state)
    assert len(info) == 49  # as every implementation and the JK capture
    assert decode_system_analog(info) == state


def test_system_analog_module_qualified_ids() -> None:
    state = BatteryState(cell_max_id="m2 c5")
    from bmslink.rs485.pylontech import _id_raw, _id_text

    assert _id_raw(state.cell_max_id, "t") == 0x0205 and _id_text(0x0205) == "m2 c5"
    assert _id_text(0x0005) == "5"
    with pytest.raises(EncodeError, match="neither 'N' nor 'mM cN'"):
        _id_raw("cell five", "t")


@given(alarm_lists, alarm_lists)
def test_system_alarm_keeps_every_alarm_visible(alarms: list[str], warnings: list[str]) -> None:
    back = decode_system_alarm(encode_system_alarm(BatteryState(alarms=alarms, warnings=warnings)))
    assert bool(back.alarms) == bool(set(alarms) - {"cell_imbalance"})  # a warning bit only
    assert bool(back.alarms or back.warnings) == bool(alarms or warnings)


# -- fuzz --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
@given(info=st.binary(max_size=120))
def test_fuzz_every_decoder_raises_only_decode_error(command: int, info: bytes) -> None:
    with contextlib.suppress(DecodeError):
        COMMANDS[command].decode(info)
