"""The bridge's TOML: the example validates; every bad key is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from bmslink.bridge.config import ConfigError, load, validate

EXAMPLE = Path(__file__).parents[2] / "examples" / "bridge.toml"


def minimal(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "hardware": {"max_charge_current_a": 100, "max_discharge_current_a": 100},
        "bms": [
            {
                "name": "a",
                "type": "jk",
                "port": "/dev/ttyUSB0",
                "max_charge_current_a": 50,
                "max_discharge_current_a": 50,
            }
        ],
        "inverter": [{"kind": "can", "profile": "pylontech"}],
    }
    data.update(changes)
    return data


def test_the_example_config_validates_as_shipped() -> None:
    cfg = load(EXAMPLE)
    assert [name for b in cfg.bms for _, name in b.pack_names()] == ["rack1", "rack2/1", "rack2/2"]
    hw = cfg.hardware_limits()
    assert hw.max_charge_voltage_v == pytest.approx(56.8)
    assert cfg.bank.settings().charge_voltage_v == pytest.approx(55.2)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        (
            {
                "bms": [
                    {
                        "name": "a",
                        "type": "jkk",
                        "port": "x",
                        "max_charge_current_a": 1,
                        "max_discharge_current_a": 1,
                    }
                ]
            },
            "bms[0]: unknown BMS type 'jkk'",
        ),
        (
            {
                "bms": [
                    {
                        "name": "a",
                        "type": "jk",
                        "port": "x",
                        "max_charge_current_a": 1,
                        "max_discharge_current_a": 1,
                        "speed": 3,
                    }
                ]
            },
            "bms[0].speed: Extra inputs are not permitted",
        ),
        (
            {
                "bms": [
                    {
                        "name": "a",
                        "type": "jk",
                        "port": "x",
                        "max_charge_current_a": -5,
                        "max_discharge_current_a": 1,
                    }
                ]
            },
            "bms[0].max_charge_current_a",
        ),
        (
            {
                "bms": [
                    {
                        "name": "a",
                        "type": "jbd",
                        "port": "x",
                        "addresses": [3],
                        "max_charge_current_a": 1,
                        "max_discharge_current_a": 1,
                    }
                ]
            },
            "address 3 is not a jbd address",
        ),
        (
            {"inverter": [{"kind": "can", "profile": "pylontek"}]},
            "inverter[0]: Value error, unknown profile 'pylontek'".replace("Value error, ", ""),
        ),
        ({"inverter": [{"kind": "mqtt"}]}, "inverter[0]"),
        (
            {"hardware": {"max_charge_current_a": 100}},
            "hardware.max_discharge_current_a: Field required",
        ),
        ({"link_loss": {"pack_stale_s": 0.5}}, "pack_stale_s 0.5 s is shorter than one poll of a"),
        ({"bms": []}, "bms: List should have at least 1 item"),
        (
            # the controller's DVL (2.90 V × 16 = 46.4 V) leaves no room below this CVL
            {
                "hardware": {
                    "max_charge_current_a": 100,
                    "max_discharge_current_a": 100,
                    "max_charge_voltage_v": 46,
                }
            },
            "hardware max_charge_voltage_v 46 V must be above min_cell_v × series_cells (46.4 V)",
        ),
    ],
)
def test_a_bad_config_names_the_key(changes: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(minimal(**changes), "bridge.toml")
    assert str(err.value).startswith("bridge.toml: ")
    assert named in str(err.value)


def test_two_entries_on_one_port_are_refused_with_the_fix(tmp_path: Path) -> None:
    entry = {
        "name": "a",
        "type": "jk-pb",
        "port": "/dev/ttyUSB0",
        "max_charge_current_a": 1,
        "max_discharge_current_a": 1,
    }
    with pytest.raises(ConfigError, match=r"share a port: .*addresses = \[...\]"):
        validate(minimal(bms=[entry, {**entry, "name": "b"}]), "x")


def test_unreadable_and_invalid_toml_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[bank\nseries_cells = 16\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        load(bad)


def test_the_example_control_section_states_the_defaults_and_its_comments_validate() -> None:
    """The example shows the controller's defaults, so copying it changes nothing by accident."""
    import tomllib

    from bmslink.control import ControlSettings

    cfg = load(EXAMPLE)
    settings = cfg.control_settings()
    defaults = ControlSettings(
        series_cells=16,
        max_charge_current_a=settings.max_charge_current_a,
        max_discharge_current_a=settings.max_discharge_current_a,
    )
    assert settings == defaults
    # the commented keys, uncommented, are valid and are the defaults too
    text = EXAMPLE.read_text(encoding="utf-8")
    section = text.split("[control]", 1)[1].split("\n[", 1)[0]
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and " = " in line.split("#")[1] else line
        for line in section.splitlines()[1:]
    )
    extra = tomllib.loads(uncommented)
    assert "charge_cell_voltage_table" in extra and "soc_cap_until_full" in extra
    tables = ControlSettings(**{**extra, "soc_cap_until_full": False})
    assert tables.charge_cell_voltage_table == defaults.charge_cell_voltage_table
