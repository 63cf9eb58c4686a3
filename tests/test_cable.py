"""`bmslink cable`: the BMS port registry loads and refuses bad data, every registry pair gets
the verdict its pin data implies, and the command prints, exits and suggests as documented."""

import json

import pytest
import typer
from typer.testing import CliRunner

from bmslink.cli.cable import register
from bmslink.diagnose.cable import (
    VERDICTS,
    bms_profiles,
    diagram,
    pinout_advice,
    plan_cable,
    termination_advice,
)
from bmslink.profiles import PROFILES
from bmslink.registry import (
    CONFIDENCE_LEVELS,
    PIN_SIGNALS,
    RegistryError,
    default_registry,
    load_bms_ports,
    load_registry,
)

REGISTRY = default_registry()
PAIRS = [(b, i) for b in REGISTRY.bmss for i in REGISTRY.inverters]
NEEDED = {"can": ("CAN_H", "CAN_L"), "rs485": ("RS485_A", "RS485_B")}

# --- the expectation, computed from the pin tables alone ---------------------------------------


def stated(pinout):
    """Pin -> signal label for the pins a pinout states (registry '-' = not stated)."""
    return {pin: signal for pin, signal in pinout.pins().items() if signal != "-"}


def inverter_has(inverter, bus):
    """The rule of the module docstring, restated: RS485-only entries have no CAN port."""
    if bus == "can":
        return bool(
            inverter.profiles or inverter.bitrate or inverter.pinout.can_h or not inverter.rs485
        )
    return bool(inverter.rs485 or inverter.pinout.rs485_a)


def expected_verdict(bms, inverter, bus):
    port = next((p for p in bms.ports if p.bus == bus), None)
    if port is None or not inverter_has(inverter, bus):
        return "no_port", set()
    ours, theirs = stated(port.pinout), stated(inverter.pinout)
    needed = set(NEEDED[bus])
    if not needed <= set(ours.values()) or not needed <= set(theirs.values()):
        return "unknown", set()
    wanted = needed | ({"GND"} if "GND" in ours.values() and "GND" in theirs.values() else set())
    straight = all(
        ours.get(pin) == theirs.get(pin) and (ours.get(pin) in wanted or ours.get(pin) is None)
        for pin in range(1, 9)
    )
    return ("straight" if straight else "custom"), wanted


@pytest.mark.parametrize("bus", ["can", "rs485"])
@pytest.mark.parametrize(("bms", "inverter"), PAIRS, ids=[f"{b.name}-{i.name}" for b, i in PAIRS])
def test_every_pair_follows_the_pin_data(bms, inverter, bus):
    plan = plan_cable(bms, inverter, bus)
    verdict, wanted = expected_verdict(bms, inverter, bus)
    assert plan.verdict == verdict
    assert plan.ok == (verdict in ("straight", "custom"))
    if verdict in ("unknown", "no_port"):
        assert plan.wires == ()  # never a guessed (or half-known) cable
    if verdict == "unknown":
        port = bms.port_for(bus)
        for item in plan.missing:
            pinout = port.pinout if item.side == "bms" else inverter.pinout
            assert item.signal not in stated(pinout).values()
        assert plan.missing
    if verdict in ("straight", "custom"):
        port = bms.port_for(bus)
        assert {w.signal for w in plan.wires} == wanted
        assert len(plan.wires) == len(wanted)
        for wire in plan.wires:
            assert stated(port.pinout)[wire.bms_pin] == wire.signal
            assert stated(inverter.pinout)[wire.inverter_pin] == wire.signal
            if verdict == "straight":
                assert wire.bms_pin == wire.inverter_pin


def test_the_registry_exercises_every_verdict():
    seen = {plan_cable(b, i, bus).verdict for b, i in PAIRS for bus in ("can", "rs485")}
    assert seen == set(VERDICTS)


# --- the shipped BMS data ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["jk", "jk-pb", "seplos", "seplos-v3", "pylontech", "pace", "daly-can"]
)
def test_every_bms_of_the_issue_is_there(name):
    bms = REGISTRY.find_bms(name)
    assert bms.title and bms.source and bms.ports
    assert set(bms.profiles) <= set(PROFILES)
    assert set(bms.settings) <= set(bms.profiles)
    assert bms.termination.builtin in ("always", "switch", "none", "unknown")


def test_every_pin_has_a_source_and_only_rj45_ports_have_pins():
    for bms in REGISTRY.bmss:
        for port in bms.ports:
            assert port.pinout.confidence in CONFIDENCE_LEVELS
            if port.pinout.known:
                assert port.rj45
                assert port.pinout.source and port.pinout.confidence != "unknown"
            else:
                assert port.pinout.confidence == "unknown"


def test_lookup_by_alias_and_suggestions():
    assert REGISTRY.find_bms(" US5000 ").name == "pylontech"
    assert REGISTRY.find_bms("daly").name == "daly-can"
    with pytest.raises(RegistryError, match=r"unknown BMS 'sepols' \(did you mean seplos"):
        REGISTRY.find_bms("sepols")
    assert bms_profiles("jk-pb")[0] == "pylontech"
    assert bms_profiles("pace") == ()


def test_custom_inverters_text_brings_no_shipped_bms():
    assert load_registry(INVERTERS).bmss == ()
    assert [b.name for b in load_registry(INVERTERS, bms_text=BMSS).bmss] == [
        "straight-bms",
        "odd-bms",
    ]


# --- rules on a small hand-made registry ------------------------------------------------------

INVERTERS = """\
schema = 1

[[inverter]]
name = "inv-a"
title = "A: CAN on 4/5, GND 2, self-terminated"
voltage = "lv"
profiles = ["victron", "pylontech"]
source = "test"

[inverter.pinout]
can_h = 4
can_l = 5
gnd = [2]
confidence = "documented"
source = "test manual"

[[inverter.quirks]]
code = "builtin_termination"
text = "terminated"
source = "test"

[[inverter]]
name = "inv-b"
title = "B: CAN on 7/8, RS485 on 1/2"
voltage = "lv"
profiles = ["sma"]
rs485 = ["pylontech-rs485"]
source = "test"

[inverter.pinout]
can_h = 7
can_l = 8
rs485_a = [2]
rs485_b = [1]
confidence = "single-source"
source = "test forum"

[[inverter.quirks]]
code = "needs_termination"
text = "Terminate here."
source = "test"

[[inverter]]
name = "inv-c"
title = "C: RS485 only, pins unknown"
voltage = "hv"
profiles = []
rs485 = ["byd-modbus"]
source = "test"

[[inverter]]
name = "inv-d"
title = "D: CAN 4/5 only"
voltage = "lv"
profiles = ["pylontech"]
source = "test"

[inverter.pinout]
can_h = 4
can_l = 5
confidence = "community"
source = "two forums"
"""

BMSS = """\
schema = 1

[[bms]]
name = "straight-bms"
title = "Straight BMS"
aliases = ["sb"]
profiles = ["pylontech", "victron"]
profiles_source = "test list"
bridge = "jk-pb"
source = "test"

[bms.settings]
victron = "menu 4"

[bms.termination]
builtin = "switch"
notes = "DIP 8 on the front"
source = "test manual"

[[bms.ports]]
name = "CAN port"
bus = "can"
can_h = 4
can_l = 5
gnd = [2]
confidence = "documented"
source = "test manual"

[[bms.ports]]
name = "RS485 port"
bus = "rs485"
rs485_a = [7]
rs485_b = [8]
confidence = "single-source"
source = "test forum"

[[bms]]
name = "odd-bms"
title = "Odd BMS"
profiles = []
source = "test"

[[bms.ports]]
name = "CAN port"
bus = "can"
confidence = "unknown"
"""


@pytest.fixture(scope="module")
def small():
    return load_registry(INVERTERS, bms_text=BMSS)


def plan(registry, bms, inverter, bus="can"):
    return plan_cable(registry.find_bms(bms), registry.find_inverter(inverter), bus)


def test_same_pins_and_grounds_is_straight(small):
    result = plan(small, "sb", "inv-a")
    assert result.verdict == "straight"
    assert [(w.bms_pin, w.inverter_pin, w.signal) for w in result.wires] == [
        (4, 4, "CAN_H"),
        (5, 5, "CAN_L"),
        (2, 2, "GND"),
    ]
    assert result.profiles.common == ("victron", "pylontech")
    assert "victron (menu 4)" in result.profiles.advice


def test_a_ground_on_one_side_only_makes_it_custom_without_a_ground_wire(small):
    result = plan(small, "sb", "inv-d")
    assert result.verdict == "custom"
    assert [w.signal for w in result.wires] == ["CAN_H", "CAN_L"]
    assert any("pin 2 (GND)" in note and "use not stated" in note for note in result.notes)
    assert any(note.startswith("GND: only the BMS") for note in result.notes)


def test_moved_pins_are_drawn_pin_to_pin(small):
    result = plan(small, "sb", "inv-b")
    assert result.verdict == "custom"
    assert [(w.bms_pin, w.inverter_pin) for w in result.wires] == [(4, 7), (5, 8)]
    lines = diagram(result)
    assert lines[1].startswith("pin 4  CAN_H") and lines[1].endswith("pin 7  CAN_H    white-brown")
    assert "------" in lines[2]
    assert all(line.isascii() for line in lines)
    assert "no common profile known: use bmslink bridge" in result.profiles.advice
    assert "--bms jk-pb:PORT --inverter sma:socketcan:can0" in result.profiles.advice
    assert any("single-source" in note for note in result.notes)


def test_rs485_pair_and_missing_sides(small):
    assert plan(small, "sb", "inv-b", "rs485").verdict == "custom"  # 7/8 to 2/1
    unknown = plan(small, "sb", "inv-c", "rs485")
    assert unknown.verdict == "unknown"
    assert {(m.side, m.signal) for m in unknown.missing} == {
        ("inverter", "RS485_A"),
        ("inverter", "RS485_B"),
    }
    assert any("inverter inv-c battery port" in note for note in unknown.notes)
    odd = plan(small, "odd-bms", "inv-a")
    assert odd.verdict == "unknown" and odd.wires == ()
    assert {m.side for m in odd.missing} == {"bms"}


def test_no_port_on_either_side(small):
    assert plan(small, "odd-bms", "inv-a", "rs485").verdict == "no_port"
    no_can = plan(small, "sb", "inv-c")
    assert no_can.verdict == "no_port"
    assert "only RS485 protocols" in no_can.notes[0]
    assert "bmslink bridge cannot help either" in no_can.profiles.advice


def test_termination_uses_quirks_and_the_bms_switch(small):
    a = " ".join(plan(small, "sb", "inv-a").termination)
    assert "60 ohm" in a
    assert "inv-a: already terminated" in a and "do not add" in a
    assert "terminator switch. DIP 8 on the front" in a
    b = " ".join(plan(small, "odd-bms", "inv-b").termination)
    assert "inv-b: its end must be terminated. Terminate here." in b
    assert "Odd BMS: whether it terminates its end is not recorded" in b
    rs485 = " ".join(plan(small, "sb", "inv-b", "rs485").termination)
    assert "10 m" in rs485 and "swap" in rs485


def test_doctor_helpers(small):
    lines = pinout_advice("sb", "inv-b", registry=small)
    assert lines == [
        "inv-b battery port: CAN_H pin 7, CAN_L pin 8 (single-source)",
        "straight-bms CAN port: CAN_H pin 4, CAN_L pin 5, GND pin 2 (documented)",
        "see `bmslink cable sb inv-b`",
    ]
    assert pinout_advice("odd-bms", None, registry=small) == []
    assert pinout_advice("odd-bms", "inv-a", registry=small)[1] == (
        "odd-bms CAN port: CAN pins not recorded; measure before wiring"
    )
    assert pinout_advice("sb", "inv-c", "rs485", registry=small)[-1] == (
        "see `bmslink cable sb inv-c --bus rs485`"
    )
    assert termination_advice(None, "inv-a", registry=small)[1].startswith("inv-a: already")
    assert any("DIP 8" in line for line in termination_advice("sb", "inv-d", registry=small))
    assert termination_advice("sb", None, registry=small)[1] == (
        "Straight BMS: has a terminator switch. DIP 8 on the front. Turn it on only on the pack at "
        "the end of the bus (the one wired to the inverter when the inverter is the other end)."
    )
    with pytest.raises(RegistryError, match="unknown BMS"):
        pinout_advice("nope", None, registry=small)


# --- loader refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "can_h = 4\ncan_l = 5\ngnd = [2]",
            "can_h = 9\ncan_l = 5\ngnd = [2]",
            "bms_ports.toml: bms 'straight-bms': ports[1].can_h must be 1..8",
        ),
        (
            "gnd = [2]",
            "gnd = [0]",
            "bms_ports.toml: bms 'straight-bms': ports[1].gnd must be 1..8",
        ),
        (
            "gnd = [2]",
            "gnd = [5]",
            "bms_ports.toml: bms 'straight-bms': ports[1].gnd reuses pin 5, already ports[1].can_l",
        ),
        (
            'confidence = "documented"',
            'confidence = "unknown"',
            "bms_ports.toml: bms 'straight-bms': ports[1].confidence is 'unknown' but pins are given",
        ),
        (
            'profiles = ["pylontech", "victron"]',
            'profiles = ["pylontech", "victorn"]',
            "bms_ports.toml: bms 'straight-bms': profiles names unknown profile 'victorn' (did you mean victron?)",
        ),
        (
            'bus = "rs485"',
            'bus = "rs232"',
            "bms_ports.toml: bms 'straight-bms': ports[2].bus must be one of can, rs485",
        ),
        (
            'name = "RS485 port"\nbus = "rs485"',
            'name = "RS485 port"\nbus = "rs485"\nconnector = "JST"',
            "bms_ports.toml: bms 'straight-bms': ports[2].connector is 'JST': pins may only be given for RJ45",
        ),
        (
            'bridge = "jk-pb"',
            'bridge = "jkpb"',
            "bms_ports.toml: bms 'straight-bms': bridge 'jkpb' is not a bmslink bridge BMS type",
        ),
        (
            'victron = "menu 4"',
            'sma = "menu 9"',
            "bms_ports.toml: bms 'straight-bms': settings.sma is not one of this entry's profiles",
        ),
        (
            'builtin = "switch"',
            'builtin = "maybe"',
            "bms_ports.toml: bms 'straight-bms': termination.builtin must be one of",
        ),
        (
            'profiles_source = "test list"\n',
            "",
            "bms_ports.toml: bms 'straight-bms': profiles_source is missing",
        ),
        (
            'name = "odd-bms"',
            'name = "odd-bms"\naliases = ["sb"]',
            "bms_ports.toml: bms 'odd-bms': aliases 'sb' is already used by bms 'straight-bms'",
        ),
        (
            'name = "CAN port"\nbus = "can"\nconfidence = "unknown"',
            'name = "CAN port"\nbus = "can"\ncan_h = 3\ncan_l = 4\nconfidence = "single-source"',
            "bms_ports.toml: bms 'odd-bms': ports[1].source is missing (every pin needs a source)",
        ),
        (
            'source = "test"\n\n[[bms.ports]]\nname = "CAN port"\nbus = "can"\nconfidence = "unknown"',
            'source = "test"',
            "bms_ports.toml: bms 'odd-bms': ports must be a non-empty array",
        ),
        (
            "rs485_a = [7]",
            "rs485_a = [7]\ncan_x = 3",
            "bms_ports.toml: bms 'straight-bms': ports[2].can_x is not a known key",
        ),
        ("schema = 1", "schema = 2", "bms_ports.toml: schema must be 1"),
    ],
)
def test_bad_bms_data_names_file_entry_and_key(old, new, message):
    assert old in BMSS
    with pytest.raises(RegistryError) as info:
        load_bms_ports(BMSS.replace(old, new, 1))
    assert str(info.value).startswith(message)


def test_bms_file_not_toml():
    with pytest.raises(RegistryError, match=r"bms_ports\.toml: not valid TOML"):
        load_bms_ports("schema = = 1")


def test_shipped_bms_file_is_the_default():
    assert load_bms_ports() == REGISTRY.bmss
    assert set(PIN_SIGNALS) == {"can_h", "can_l", "gnd", "rs485_a", "rs485_b"}


# --- CLI --------------------------------------------------------------------------------------


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:
        """Second command, so `cable` must be called by name."""

    return app


runner = CliRunner()


def run(*args: str):
    return runner.invoke(make_app(), list(args))


def test_cli_straight_pair_draws_the_cable():
    result = run("cable", "pylontech", "solis-lv")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pylontech -> solis-lv over CAN: straight"
    assert "pin 4  CAN_H    blue        ------  pin 4  CAN_H    blue" in lines
    assert "pin 5  CAN_L    white-blue  ------  pin 5  CAN_L    white-blue" in lines
    assert "set the BMS to send pylontech" in result.stdout
    drawing = [line for line in lines if "------" in line]
    assert len(drawing) == 2 and all(line.isascii() for line in drawing)


def test_cli_custom_pair_draws_pin_to_pin():
    result = run("cable", "US5000", "cerbo")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pylontech -> victron-gx over CAN: custom"
    assert "pin 4  CAN_H    blue        ------  pin 7  CAN_H    white-brown" in lines
    assert "pin 5  CAN_L    white-blue  ------  pin 8  CAN_L    brown" in lines
    assert "the blue wire into pin 7" in result.stdout


def test_cli_json_shape():
    result = run("cable", "seplos", "victron", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert {
        "bms",
        "bms_port",
        "inverter",
        "bus",
        "verdict",
        "wires",
        "missing",
        "notes",
        "termination",
        "profiles",
        "confidence",
        "sources",
        "port_notes",
    } <= set(data)
    assert (data["bms"], data["inverter"], data["bus"], data["verdict"]) == (
        "seplos",
        "victron-gx",
        "can",
        "custom",
    )
    assert data["wires"][0] == {"bms_pin": 4, "inverter_pin": 7, "signal": "CAN_H"}
    assert data["profiles"]["common"] == ["victron", "pylontech"]
    assert data["confidence"] == {"bms": "single-source", "inverter": "community"}
    assert data["sources"]["bms"].startswith("privatecoder/seplos-mqtt-rs485-add-on")


def test_cli_unknown_and_no_port_exit_1():
    unknown = run("cable", "jk-pb", "deye-lv", "--json")
    assert unknown.exit_code == 1
    data = json.loads(unknown.stdout)
    assert data["verdict"] == "unknown" and data["wires"] == []
    assert {"side": "bms", "signal": "CAN_H"} in data["missing"]
    no_port = run("cable", "pylontech", "fronius")
    assert no_port.exit_code == 1
    assert "over CAN: no_port" in no_port.stdout


def test_cli_bad_input_exits_2_with_one_line():
    for args, text in [
        (("cable", "sepols", "deye-lv"), "unknown BMS 'sepols' (did you mean seplos"),
        (("cable", "seplos", "deye-l"), "unknown inverter 'deye-l' (did you mean deye-lv"),
        (("cable", "seplos", "deye-lv", "--bus", "lin"), "--bus 'lin': must be one of can, rs485"),
        (("cable", "seplos"), "give a BMS and an INVERTER"),
    ]:
        result = run(*args)
        assert result.exit_code == 2, args
        assert result.stdout == ""
        assert text in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_cli_rs485_bus_and_list():
    result = run("cable", "pylontech", "deye-lv", "--bus", "RS485")
    assert result.exit_code == 0, result.stderr
    assert "pin 7  RS485_A" in result.stdout and "pin 2  RS485_A" in result.stdout
    listing = run("cable", "--list")
    assert listing.exit_code == 0
    assert {line.split()[0] for line in listing.stdout.splitlines()[1:] if line[:1].isalpha()} >= {
        b.name for b in REGISTRY.bmss
    }
    data = json.loads(run("cable", "--list", "--json").stdout)
    assert [d["name"] for d in data] == [b.name for b in REGISTRY.bmss]


@pytest.mark.parametrize(
    ("args", "first_line", "code"),
    [
        (("us5000", "deye-lv"), "pylontech -> deye-lv over CAN: custom", 0),
        (("force-h2", "deye-hv"), "pylontech-force-h -> deye-hv over CAN: custom", 0),
        (("byd-lv", "victron"), "byd-lvs -> victron-gx over CAN: custom", 0),
        (("byd-hvm", "goodwe-hv"), "byd-hvs -> goodwe-hv over CAN: unknown", 1),
    ],
)
def test_former_battery_names_work_in_the_cli(args, first_line, code):
    """The names of inverters.toml's old [[battery]] entries now find their merged BMS entry."""
    result = run("cable", *args)
    assert result.exit_code == code, result.stderr
    assert result.stdout.splitlines()[0] == first_line


def test_byd_lvs_port_b_to_victron_moves_both_can_wires():
    result = plan_cable(REGISTRY.find_bms("byd-lv"), REGISTRY.find_inverter("victron"))
    assert [(w.bms_pin, w.inverter_pin, w.signal) for w in result.wires] == [
        (4, 7, "CAN_H"),
        (5, 8, "CAN_L"),
    ]
    assert result.profiles.common == ("victron",)


def test_a_signal_on_several_pins_uses_the_shared_pin():
    registry = load_registry(INVERTERS, bms_text=BMSS.replace("gnd = [2]", "gnd = [6, 2]", 1))
    result = plan(registry, "sb", "inv-a")
    assert result.verdict == "custom"  # pin 6 is GND on the BMS only
    assert [(w.bms_pin, w.inverter_pin) for w in result.wires if w.signal == "GND"] == [(2, 2)]
