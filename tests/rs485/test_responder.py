"""The battery role on RS485: return codes, silence, and the same guards as on CAN."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.limits import HardwareLimits
from bmslink.roles.rs485_battery import PylonResponder, system_state
from bmslink.rs485.frame import AsciiFrame, Rtn, chksum, parse_frame
from bmslink.rs485.pylontech import COMMANDS, Command, decode_response, request
from bmslink.state import BatteryState

GOOD = BatteryState(
    voltage_v=52.8,
    current_a=-12.5,
    soc_pct=60.0,
    soh_pct=98.0,
    cells_v=[3.3] * 16,
    temperatures_c=[22.0, 21.0, 21.5, 21.0, 22.0],
    capacity_ah=100.0,
    remaining_ah=60.0,
    cycles=12,
    charge_voltage_v=55.2,
    discharge_voltage_v=46.4,
    charge_current_a=50.0,
    discharge_current_a=50.0,
    charge_enable=True,
    discharge_enable=True,
    alarms=[],
    warnings=[],
)


def responder(states: dict[int, BatteryState | None] | None = None, **kw: Any) -> PylonResponder:
    table = {2: GOOD} if states is None else states
    return PylonResponder(sorted(table), table.get, **kw)


def ask(r: PylonResponder, frame: AsciiFrame | bytes, command: int | None = None) -> Any:
    raw = frame.encode() if isinstance(frame, AsciiFrame) else frame
    answer = r.handle(raw)
    if answer is None:
        return None
    parsed = parse_frame(answer)
    if command is None:
        return parsed
    return decode_response(parsed, command)


def test_answers_analog_values_with_the_state() -> None:
    state = ask(responder(), request(0x42, 2), 0x42)
    assert state.voltage_v == 52.8 and state.current_a == -12.5 and state.cells_v == [3.3] * 16


def test_answer_keeps_the_request_address() -> None:
    r = responder({0x12: GOOD})
    assert ask(r, request(0x42, 0x12)).adr == 0x12


@pytest.mark.parametrize("ver", [0x20, 0x25, 0x28, 0x35])
def test_any_protocol_version_is_answered(ver: int) -> None:
    assert ask(responder(), request(0x92, 2, ver=ver), 0x92).charge_current_a == 50.0


def test_other_addresses_get_silence() -> None:
    r = responder()
    assert r.handle(request(0x42, 3).encode()) is None
    assert r.not_ours == 1 and r.requests == 0


def test_bad_checksum_for_our_address_gets_rtn_02() -> None:
    raw = bytearray(request(0x42, 2).encode())
    raw[-2] ^= 0x01  # last checksum digit
    answer = ask(responder(), bytes(raw))
    assert answer.cid2 == Rtn.CHKSUM_ERROR and answer.adr == 2 and answer.info == b""


def test_bad_checksum_for_another_address_gets_silence() -> None:
    raw = bytearray(request(0x42, 3).encode())
    raw[-2] ^= 0x01
    assert responder().handle(bytes(raw)) is None


def test_bad_lchksum_gets_rtn_03() -> None:
    body = b"20024642F00202"
    raw = b"~" + body + b"%04X\r" % chksum(body)
    assert ask(responder(), raw).cid2 == Rtn.LCHKSUM_ERROR


def test_unknown_command_gets_rtn_04() -> None:
    assert ask(responder(), AsciiFrame(0x20, 2, 0x46, 0x77, b"\x02")).cid2 == Rtn.CID2_INVALID
    assert ask(responder(), AsciiFrame(0x20, 2, 0x47, 0x42, b"\x02")).cid2 == Rtn.CID2_INVALID


def test_setting_commands_are_refused_with_rtn_04() -> None:
    """0x94 (set limits) and 0x95 (turn off) would let the bus change the battery."""
    for cid2 in (0x94, 0x95):
        assert ask(responder(), AsciiFrame(0x20, 2, 0x46, cid2, b"\x02")).cid2 == Rtn.CID2_INVALID


def test_malformed_info_gets_rtn_05() -> None:
    assert ask(responder(), AsciiFrame(0x20, 2, 0x46, 0x42, b"\x02\x02")).cid2 == (
        Rtn.COMMAND_FORMAT_ERROR
    )


def test_a_module_not_served_gets_rtn_90() -> None:
    assert ask(responder(), request(0x42, 2, module=5)).cid2 == Rtn.ADR_ERROR


def test_all_modules_from_the_group_master() -> None:
    second = GOOD.merged({"current_a": -7.5, "capacity_ah": 50.0, "remaining_ah": 30.0})
    bank = ask(responder({2: GOOD, 3: second}), request(0x42, 2, module=0xFF), 0x42)
    assert bank.modules == 2 and bank.current_a == -20.0 and bank.capacity_ah == 150.0
    # a slave is not asked for all modules; commands without FF refuse it
    assert ask(responder({2: GOOD, 3: second}), request(0x42, 3, module=0xFF)).cid2 == 5
    assert ask(responder({2: GOOD, 3: second}), request(0x92, 2, module=0xFF)).cid2 == 5


def test_no_fresh_state_means_silence_counted_with_the_reason() -> None:
    r = responder({2: None})
    assert r.handle(request(0x42, 2).encode()) is None
    assert r.last_silence == "no fresh state for address 02"
    assert sum(r.silent.values()) == 1


def test_a_zero_cvl_is_never_sent() -> None:
    r = responder({2: GOOD.merged({"charge_voltage_v": 0.0})})
    assert r.handle(request(0x92, 2).encode()) is None
    assert r.last_silence is not None and "never sent" in r.last_silence


def test_unknown_alarms_are_refused() -> None:
    r = responder({2: GOOD.merged({"alarms": None})})
    assert r.handle(request(0x42, 2).encode()) is None
    assert r.last_silence is not None and "alarms are missing" in r.last_silence


def test_a_missing_limit_means_silence_not_a_made_up_value() -> None:
    r = responder({2: GOOD.merged({"charge_current_a": None})})
    assert r.handle(request(0x92, 2).encode()) is None
    assert r.last_silence is not None and "charge_current_a is missing" in r.last_silence
    assert ask(r, request(0x42, 2), 0x42) is not None  # what can be answered still is


def test_a_counter_without_an_unknown_value_is_refused_when_absent() -> None:
    r = responder({2: GOOD.merged({"cycles": None, "soh_pct": None})})
    assert r.handle(request(0x42, 2).encode()) is None
    assert r.last_silence is not None and "cycles is missing" in r.last_silence
    assert r.handle(request(0x61, 2).encode()) is None
    assert r.last_silence is not None and "cycles_avg is missing" in r.last_silence


def test_limits_are_clamped_to_the_hardware() -> None:
    hw = HardwareLimits(40.0, 30.0, 54.0, 44.0)
    limits = ask(responder(hardware=hw), request(0x92, 2), 0x92)
    assert (limits.charge_current_a, limits.discharge_current_a) == (40.0, 30.0)
    assert (limits.charge_voltage_v, limits.discharge_voltage_v) == (54.0, 46.4)


@pytest.mark.parametrize(
    ("alarm", "ccl", "dcl"),
    [("high_voltage", 0.0, 50.0), ("low_voltage", 50.0, 0.0), ("general", 0.0, 0.0),
     ("cell_imbalance", 50.0, 50.0)],
)  # fmt: skip
def test_alarms_also_zero_the_limits_an_inverter_polls(alarm: str, ccl: float, dcl: float) -> None:
    limits = ask(responder({2: GOOD.merged({"alarms": [alarm]})}), request(0x92, 2), 0x92)
    assert (limits.charge_current_a, limits.discharge_current_a) == (ccl, dcl)


def test_system_parameters_need_configuration() -> None:
    r = responder()
    assert r.handle(request(0x47, 2).encode()) is None
    assert r.last_silence is not None and "none configured" in r.last_silence


def test_serial_is_the_emulated_identity_when_the_source_has_none() -> None:
    assert ask(responder(), request(0x93, 2), 0x93).serial == "BMSLINK002"
    with_serial = responder({2: GOOD.merged({"serial": "PPTA0001"})})
    assert ask(with_serial, request(0x93, 2), 0x93).serial == "PPTA0001"


def test_system_commands_answer_for_the_whole_group() -> None:
    second = GOOD.merged(
        {"charge_current_a": 20.0, "charge_voltage_v": 54.0, "alarms": ["high_voltage"]}
    )
    r = responder({2: GOOD, 3: second})
    limits = ask(r, request(0x63, 2), 0x63)
    assert limits.charge_voltage_v == 54.0  # the lowest CVL
    assert limits.charge_current_a == 0.0  # a module's alarm stops the bank's charging
    assert limits.discharge_current_a == 100.0  # summed over parallel modules
    assert ask(r, request(0x62, 2), 0x62).alarms == ["high_voltage"]


def test_system_state_of_one_module_is_that_module() -> None:
    assert system_state([GOOD]) is GOOD


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_fuzz_random_input_never_raises(data: bytes) -> None:
    r = responder()
    answer = r.handle(data)
    if answer is not None:
        assert parse_frame(answer).adr == 2


@given(st.sampled_from(sorted(COMMANDS)), st.sampled_from([2, 3]))
def test_every_command_is_answered_or_refused_cleanly(command: int, adr: int) -> None:
    r = responder({2: GOOD, 3: GOOD})
    answer = ask(r, request(command, adr))
    if command == Command.SYSTEM_PARAMETERS:
        assert answer is None  # none configured here
    else:
        assert answer is not None and answer.cid2 == 0
        decode_response(answer, command)


def test_the_bank_of_the_system_commands_is_clamped_to_the_hardware_too() -> None:
    hw = HardwareLimits(60.0, 70.0, 56.0, 44.0)
    limits = ask(responder({2: GOOD, 3: GOOD}, hardware=hw), request(0x63, 2), 0x63)
    assert (limits.charge_current_a, limits.discharge_current_a) == (60.0, 70.0)  # not 2 x 50


def test_system_parameter_currents_are_clamped_to_the_hardware() -> None:
    from .test_pylontech_commands import PARAMS

    hw = HardwareLimits(40.0, 30.0, 58.4, 40.0)
    params = ask(responder(hardware=hw, parameters=PARAMS), request(0x47, 2), 0x47)
    assert (params["charge_current_a"], params["discharge_current_a"]) == (40.0, 30.0)
    assert params["cell_high_voltage_v"] == PARAMS.cell_high_voltage_v
