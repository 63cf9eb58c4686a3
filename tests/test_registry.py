"""The inverter registry: shipped data loads and says what it must, bad data is refused with the
entry and key named, and `bmslink inverters` shows it. Battery/BMS ports live in bms_ports.toml
(tests/test_cable.py tests that file's loader); here: every former `[[battery]]` entry of
inverters.toml still answers under its old name with the same pin facts."""

import json

import pytest
import typer
from typer.testing import CliRunner

from bmslink.cli.inverters import register
from bmslink.errors import BmslinkError
from bmslink.profiles import PROFILES
from bmslink.registry import (
    CONFIDENCE_LEVELS,
    QUIRK_CODES,
    Registry,
    RegistryError,
    default_registry,
    load_registry,
)

# Every family the registry must cover, by name or alias.
FAMILIES = [
    "givenergy",
    "victron",
    "cerbo",
    "sma-si",
    "sunny-island",
    "deye-lv",
    "sunsynk",
    "deye-hv",
    "growatt-lv",
    "growatt-hv",
    "goodwe-lv",
    "goodwe-hv",
    "solis-lv",
    "solis-hv",
    "sofar-lv",
    "sofar-hv",
    "solax",
    "luxpower",
    "eg4",
    "solark-lv",
    "fronius-gen24",
    "sungrow",
    "felicity-hv",
    "foxess",
    "schneider",
    "vevor-lv",
]

# Every former [[battery]] entry (name or alias) -> the BMS entry it was merged into, and the bus
# of the port it described.
BATTERIES = {
    "pylontech-us-can": ("pylontech", "can"),
    "us5000": ("pylontech", "can"),
    "us3000": ("pylontech", "can"),
    "us2000": ("pylontech", "can"),
    "pylontech-us-rs485": ("pylontech", "rs485"),
    "pylontech-rs485": ("pylontech", "rs485"),
    "us5000-rs485": ("pylontech", "rs485"),
    "pylontech-force-h": ("pylontech-force-h", "can"),
    "force-h2": ("pylontech-force-h", "can"),
    "force-h3": ("pylontech-force-h", "can"),
    "pylontech-hv": ("pylontech-force-h", "can"),
    "jk-pb-can": ("jk-pb", "can"),
    "jk-pb": ("jk-pb", "can"),
    "jk-inverter-bms": ("jk-pb", "can"),
    "jk-pb-rs485": ("jk-pb", "rs485"),
    "jk-pb-485": ("jk-pb", "rs485"),
    "seplos-v2-can": ("seplos", "can"),
    "seplos": ("seplos", "can"),
    "seplos-v2": ("seplos", "can"),
    "seplos-v16": ("seplos", "can"),
    "seplos-v2-rs485": ("seplos", "rs485"),
    "seplos-rs485": ("seplos", "rs485"),
    "seplos-v3": ("seplos-v3", "rs485"),
    "seplos-v3-rs485": ("seplos-v3", "rs485"),
    "pace": ("pace", "can"),
    "pace-bms": ("pace", "can"),
    "daly-can": ("daly-can", "can"),
    "daly": ("daly-can", "can"),
    "byd-lvs": ("byd-lvs", "can"),
    "byd-lv": ("byd-lvs", "can"),
    "byd-premium-lvs": ("byd-lvs", "can"),
    "byd-hvs": ("byd-hvs", "can"),
    "byd-hvm": ("byd-hvs", "can"),
    "byd-premium-hvs": ("byd-hvs", "can"),
}

# The pin facts of the former [[battery]] entries, now on the merged entry's port:
# (entry, bus) -> (can_h, can_l, gnd, rs485_a, rs485_b, confidence). Pylontech US CAN differs from
# the old entry on purpose: its ground (6 in the US5000 manual, 2 in the US3000 Plus manual) and
# the RS485 pair on the CAN socket (US5000 only) are two vendor manuals disagreeing, so left out.
PORT_FACTS = {
    ("pylontech", "can"): (4, 5, (), (), (), "documented"),
    ("pylontech", "rs485"): (None, None, (6,), (7,), (8,), "documented"),
    ("pylontech-force-h", "can"): (4, 5, (2,), (), (), "documented"),
    ("pylontech-force-h", "rs485"): (None, None, (), (7,), (8,), "documented"),
    ("jk-pb", "can"): (None, None, (), (), (), "unknown"),
    ("jk-pb", "rs485"): (None, None, (3,), (), (), "community"),
    ("seplos", "can"): (4, 5, (3, 6), (2, 7), (1, 8), "single-source"),
    ("seplos", "rs485"): (None, None, (3,), (2,), (1,), "single-source"),
    ("seplos-v3", "rs485"): (None, None, (5,), (2, 7), (1, 8), "single-source"),
    ("seplos-v3", "can"): (None, None, (), (), (), "unknown"),
    ("pace", "can"): (None, None, (), (), (), "unknown"),
    ("daly-can", "can"): (None, None, (), (), (), "unknown"),
    ("byd-lvs", "can"): (4, 5, (), (), (), "documented"),
    ("byd-hvs", "can"): (None, None, (), (), (), "unknown"),
    ("byd-hvs", "rs485"): (None, None, (), (), (), "unknown"),
}

# A minimal valid file; the validation tests break one thing at a time.
GOOD = """\
schema = 1

[[inverter]]
name = "alpha"
title = "Alpha"
aliases = ["a1"]
voltage = "lv"
profiles = ["pylontech"]
bitrate = 500000
source = "somewhere"

[inverter.pinout]
can_h = 4
can_l = 5
gnd = [2]
confidence = "documented"
source = "a manual"

[[inverter.quirks]]
code = "name_prefix"
value = "PYLON"
text = "needs PYLON"
source = "somewhere"

[[inverter]]
name = "beta"
title = "Beta"
aliases = ["b1"]
voltage = "hv"
profiles = []
source = "somewhere"
"""

# A minimal bms_ports.toml to go with GOOD (the BMS loader's refusals are in test_cable.py).
CELL = """\
schema = 1

[[bms]]
name = "cell"
title = "Cell"
profiles = []
source = "somewhere"

[[bms.ports]]
name = "CAN port"
bus = "can"
can_h = 4
can_l = 5
confidence = "single-source"
source = "a forum"
"""


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


# --- the shipped data -------------------------------------------------------------------------


def test_shipped_registry_loads_and_is_cached(registry):
    assert len(registry.inverters) >= 20
    assert len(registry.bmss) >= 10
    assert load_registry() is default_registry() is registry


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_is_findable(registry, name):
    inverter = registry.find_inverter(name)
    assert inverter.title
    assert inverter.source
    assert set(inverter.profiles) <= set(PROFILES)


@pytest.mark.parametrize(("name", "merged"), sorted(BATTERIES.items()))
def test_every_former_battery_port_is_findable_under_its_old_name(registry, name, merged):
    entry, bus = merged
    bms = registry.find_bms(name)
    assert bms.name == entry
    assert bms.port_for(bus) is not None


@pytest.mark.parametrize(("key", "facts"), sorted(PORT_FACTS.items()))
def test_merged_ports_keep_the_pin_facts(registry, key, facts):
    port = registry.find_bms(key[0]).port_for(key[1])
    assert port is not None
    pinout = port.pinout
    got = (pinout.can_h, pinout.can_l, pinout.gnd, pinout.rs485_a, pinout.rs485_b)
    assert (*got, pinout.confidence) == facts


def test_merged_entries_keep_protocols_and_warnings(registry):
    assert registry.find_bms("force-h2").profiles == ("pylontech-hv",)
    assert registry.find_bms("byd-lv").profiles == ("victron",)
    assert registry.find_bms("byd-hvm").profiles == ("byd-hvs",)
    assert "13 V" in registry.find_bms("byd-hvs").notes
    assert "12 V" in registry.find_bms("force-h2").notes
    assert not registry.find_bms("daly").ports[0].rj45
    assert not registry.find_bms("byd-hvs").port_for("can").rj45
    pylon_can = registry.find_bms("us5000").port_for("can").pinout.notes
    assert "pin 6" in pylon_can and "pin 2" in pylon_can  # both manuals named, neither kept


def test_lookup_is_case_insensitive_and_uses_aliases(registry):
    assert registry.find_inverter("  Victron ").name == "victron-gx"
    assert registry.find_inverter("SUNSYNK").name == "deye-lv"
    assert registry.find_bms("US5000").name == "pylontech"


def test_unknown_name_suggests_close_matches(registry):
    with pytest.raises(RegistryError, match=r"unknown inverter 'deye-l'.*deye-lv"):
        registry.find_inverter("deye-l")
    with pytest.raises(BmslinkError, match="unknown BMS"):
        registry.find_bms("no-such-battery")


def test_victron_quirks(registry):
    victron = registry.find_inverter("victron")
    assert victron.quirk("ignores_dvl") is not None
    assert victron.quirk("cvl_zero_forbidden") is not None
    assert victron.quirk("name_prefix") is None
    assert victron.recommended_profile == "victron"
    assert (victron.pinout.can_h, victron.pinout.can_l, victron.pinout.gnd) == (7, 8, (3,))


def test_deye_lv_needs_pylon_name(registry):
    quirk = registry.find_inverter("deye-lv").quirk("name_prefix")
    assert quirk is not None and quirk.value == "PYLON"


def test_sma_sunny_island_pinout_and_timing(registry):
    sma = registry.find_inverter("sma-si")
    assert sma.profiles == ("sma",)
    assert (sma.pinout.can_h, sma.pinout.can_l, sma.pinout.gnd) == (4, 5, (2,))
    assert sma.pinout.confidence == "documented"
    assert sma.quirk("min_frame_interval_s").value == pytest.approx(0.2)
    assert sma.quirk("battery_timeout_s").value == 60
    pins = sma.pinout.pins()
    assert [pins[p] for p in range(1, 9)] == ["-", "GND", "-", "CAN_H", "CAN_L", "-", "-", "-"]


def test_deye_hv_ignores_zero_limit(registry):
    assert registry.find_inverter("deye-hv").quirk("ignores_zero_current_limit") is not None


def test_solax_has_no_profile(registry):
    solax = registry.find_inverter("solax")
    assert solax.profiles == ()
    assert solax.recommended_profile is None
    assert solax.quirk("needs_own_can_channel") is not None


def test_every_pin_has_a_source_and_confidence_matches(registry):
    ports = [i.pinout for i in registry.inverters]
    ports += [port.pinout for bms in registry.bmss for port in bms.ports]
    for pinout in ports:
        assert pinout.confidence in CONFIDENCE_LEVELS
        if pinout.known:
            assert pinout.source and pinout.confidence != "unknown"
        else:
            assert pinout.confidence == "unknown"


def test_every_quirk_is_documented(registry):
    for inverter in registry.inverters:
        for quirk in inverter.quirks:
            assert quirk.code in QUIRK_CODES
            assert quirk.text and quirk.source


def test_inverters_for_profile(registry):
    names = {inv.name for inv in registry.inverters_for_profile("byd-hvs")}
    assert {"deye-hv", "goodwe-hv", "solis-hv", "sungrow"} <= names
    assert "victron-gx" not in names
    with pytest.raises(RegistryError, match="unknown profile 'bydhvs'"):
        registry.inverters_for_profile("bydhvs")


# --- validation -------------------------------------------------------------------------------


def test_minimal_file_is_valid():
    registry = load_registry(GOOD)
    assert [i.name for i in registry.inverters] == ["alpha", "beta"]
    assert registry.find_inverter("a1").quirk("name_prefix").value == "PYLON"
    assert registry.bmss == ()  # a test's own inverters never mix with the shipped BMSs
    assert load_registry(GOOD, bms_text=CELL).find_bms("cell").port_for("can").pinout.can_h == 4


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "can_h = 4\ncan_l = 5\ngnd = [2]",
            "can_h = 9\ncan_l = 5\ngnd = [2]",
            "inverters.toml: inverter 'alpha': pinout.can_h must be 1..8",
        ),
        (
            "gnd = [2]",
            "gnd = [0]",
            "inverters.toml: inverter 'alpha': pinout.gnd must be 1..8",
        ),
        (
            "gnd = [2]",
            "gnd = [5]",
            "inverters.toml: inverter 'alpha': pinout.gnd reuses pin 5, already pinout.can_l",
        ),
        (
            'profiles = ["pylontech"]',
            'profiles = ["pylontec"]',
            "inverters.toml: inverter 'alpha': profiles names unknown profile 'pylontec'",
        ),
        (
            'code = "name_prefix"',
            'code = "name_prefx"',
            "inverters.toml: inverter 'alpha': quirks[1].code 'name_prefx' is not a documented",
        ),
        (
            'aliases = ["b1"]',
            'aliases = ["a1"]',
            "inverters.toml: inverter 'beta': aliases 'a1' is already used by inverter 'alpha'",
        ),
        (
            'name = "beta"',
            'name = "alpha"',
            "inverters.toml: inverter 'alpha': name 'alpha' is already used by inverter 'alpha'",
        ),
        (
            'name = "alpha"\n',
            "",
            "inverters.toml: inverter #1: name is missing",
        ),
        (
            'value = "PYLON"\n',
            "",
            "inverters.toml: inverter 'alpha': quirks[1].value is required for 'name_prefix'",
        ),
        (
            'confidence = "documented"',
            'confidence = "unknown"',
            "inverters.toml: inverter 'alpha': pinout.confidence is 'unknown' but pins are given",
        ),
        (
            'confidence = "documented"',
            'confidence = "sure"',
            "inverters.toml: inverter 'alpha': pinout.confidence must be one of",
        ),
        (
            "can_h = 4\ncan_l = 5\ngnd = [2]",
            "can_h = 4\ngnd = [2]",
            "inverters.toml: inverter 'alpha': pinout.can_h and pinout.can_l must be given",
        ),
        (
            'voltage = "lv"',
            'voltage = "48v"',
            "inverters.toml: inverter 'alpha': voltage must be one of lv, hv",
        ),
        (
            'title = "Alpha"',
            'title = "Alpha"\ncolour = "red"',
            "inverters.toml: inverter 'alpha': colour is not a known key",
        ),
        (
            "schema = 1\n",
            'schema = 1\n\n[[battery]]\nname = "cell"\n',
            "inverters.toml: [[battery]] entries are no longer read here: battery/BMS ports "
            "live in bms_ports.toml",
        ),
        (
            "schema = 1",
            "schema = 2",
            "inverters.toml: schema must be 1",
        ),
    ],
)
def test_bad_data_names_entry_and_key(old, new, message):
    assert old in GOOD
    with pytest.raises(RegistryError) as info:
        load_registry(GOOD.replace(old, new, 1))
    assert str(info.value).startswith(message)


def test_not_toml_is_a_registry_error():
    with pytest.raises(RegistryError, match=r"inverters\.toml: not valid TOML"):
        load_registry("schema = = 1")


def test_known_profiles_can_be_passed_in():
    with pytest.raises(RegistryError, match="unknown profile 'pylontech'"):
        load_registry(GOOD, known_profiles=["victron"])
    text = GOOD.replace('profiles = ["pylontech"]', 'profiles = ["newproto"]')
    assert load_registry(text, known_profiles=["newproto"]).inverters[0].profiles == ("newproto",)


# --- CLI --------------------------------------------------------------------------------------


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:
        """Second command, so `inverters` must be called by name."""

    return app


runner = CliRunner()


def run(*args: str):
    return runner.invoke(make_app(), list(args))


def test_cli_lists_every_family(registry):
    result = run("inverters")
    assert result.exit_code == 0, result.stderr
    for inverter in registry.inverters:
        assert inverter.name in result.stdout


def test_cli_json_one_inverter_has_pinout():
    result = run("inverters", "victron", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "victron-gx"
    assert data["pinout"]["can_h"] == 7
    assert data["pinout"]["can_l"] == 8
    assert data["pinout"]["gnd"] == [3]
    assert data["pinout"]["pins"]["7"] == "CAN_H"
    assert {q["code"] for q in data["quirks"]} >= {"ignores_dvl", "cvl_zero_forbidden"}


def test_cli_json_list(registry):
    result = run("inverters", "--json")
    assert result.exit_code == 0
    assert [d["name"] for d in json.loads(result.stdout)] == [i.name for i in registry.inverters]


def test_cli_detail_draws_the_rj45(registry):
    result = run("inverters", "SMA-SI")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  pin 2  GND" in lines
    assert "  pin 4  CAN_H" in lines
    assert "  pin 5  CAN_L" in lines
    assert "  pin 1  -" in lines
    assert "min_frame_interval_s = 0.2" in result.stdout


def test_cli_warns_on_weak_pinout():
    result = run("inverters", "deye-hv")
    assert result.exit_code == 0
    assert "WARNING" in result.stdout and "meter" in result.stdout


def test_cli_says_when_bmslink_has_no_profile():
    result = run("inverters", "solax")
    assert result.exit_code == 0
    assert "bmslink has no profile" in result.stdout


def test_cli_unknown_name_exits_2_with_message_on_stderr():
    result = run("inverters", "no-such-inverter")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "unknown inverter 'no-such-inverter'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_profile_filter(registry):
    result = run("inverters", "--profile", "byd-hvs", "--json")
    assert result.exit_code == 0, result.stderr
    names = [d["name"] for d in json.loads(result.stdout)]
    expected = [i.name for i in registry.inverters if "byd-hvs" in i.profiles]
    assert names == expected and names
    assert all("byd-hvs" in d["profiles"] for d in json.loads(result.stdout))

    table = run("inverters", "--profile", "byd-hvs")
    assert table.exit_code == 0
    listed = {line.split()[0] for line in table.stdout.splitlines()[1:] if line and line[0] != "'"}
    assert listed == set(expected)


def test_cli_unknown_profile_exits_2():
    result = run("inverters", "--profile", "nope")
    assert result.exit_code == 2
    assert "unknown profile 'nope'" in result.stderr
