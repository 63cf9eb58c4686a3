"""The bridge fills a pack's missing SoC from bmslink's voltage estimate (issue 6).

Readings are hand-made 16S states fed once a second on a ManualClock. Expected values come
from the anchors' definitions (full = 100 %, counted Ah / capacity) or from the simulator's
forward OCV function, not from the estimator's own output; the property test compares with
an independent estimator fed only the good readings.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.bridge.aggregate import BankSettings, PackSettings
from bmslink.bridge.config import ConfigError, load, validate
from bmslink.bridge.core import Bridge
from bmslink.clock import ManualClock
from bmslink.control.soc import PackSoc, PackSocSettings, SocMode, VoltageSocEstimator
from bmslink.limits import HardwareLimits
from bmslink.sim.ocv import ocv
from bmslink.state import BatteryState

CELLS = 16
HW = HardwareLimits.for_cells(CELLS, 150.0, 150.0)
EXAMPLE = Path(__file__).parents[2] / "examples" / "bridge.toml"


def reading(
    cell_v: float = 3.30,
    current: float = 0.0,
    soc: float | None = None,
    capacity: float | None = 100.0,
    **extra: object,
) -> BatteryState:
    """A 16S pack at ``cell_v`` per cell; ``soc`` None: the BMS sends no SoC."""
    values: dict[str, object] = {
        "voltage_v": round(CELLS * cell_v, 4),
        "current_a": current,
        "soc_pct": soc,
        "capacity_ah": capacity,
        "cells_v": [cell_v] * CELLS,
        "temperature_c": 20.0,
        "charge_enable": True,
        "discharge_enable": True,
        "alarms": [],
        "warnings": [],
    }
    values.update(extra)
    return BatteryState().merged(values)


class Rig:
    """A bridge over packs ``names`` (no sinks, no controller) on a manual clock."""

    def __init__(self, soc: dict[str, PackSocSettings] | None = None, names: str = "a") -> None:
        self.clock = ManualClock(1000.0)
        self.bridge = Bridge(
            [PackSettings(n, 100.0, 100.0) for n in names],
            BankSettings(series_cells=CELLS),
            HW,
            self.clock,
            soc=soc,
        )

    def feed(self, seconds: float, **kwargs: object) -> None:
        """One reading a second for ``seconds`` to every pack, each as ``reading(**kwargs)``."""
        for _ in range(round(seconds)):
            self.clock.advance(1.0)
            for name in self.bridge.pack_soc:
                self.bridge.on_reading(name, reading(**kwargs))  # type: ignore[arg-type]

    def fail(self, seconds: float, pack: str = "a") -> None:
        for _ in range(round(seconds)):
            self.clock.advance(1.0)
            self.bridge.on_reading(pack, None, "no valid answer")

    def pack_state(self, name: str = "a") -> BatteryState:
        (state,) = [r.state for r in self.bridge.pack_readings() if r.settings.name == name]
        assert state is not None
        return state

    def soc(self, name: str = "a") -> float | None:
        return self.pack_state(name).soc_pct

    def bank_soc(self) -> float | None:
        state = self.bridge.bank.state
        assert state is not None
        return state.soc_pct

    def soc_events(self) -> list[str]:
        return [e.detail for e in self.bridge.events if e.kind == "soc_source"]

    def full_charge(self) -> None:
        """Highest cell 3.50 V at a 1 A tail (< 0.04 C of 100 Ah) for the 180 s hold, and more."""
        self.feed(185, cell_v=3.50, current=1.0)


def test_a_pack_without_soc_gets_the_estimate_once_it_has_a_basis() -> None:
    rig = Rig()
    rig.feed(10, cell_v=3.30, current=0.0)  # plateau, 10 s of rest: no basis
    assert rig.soc() is None and rig.bank_soc() is None
    assert rig.bridge.soc_sources == {"a": "none:no-basis"}
    rig.full_charge()
    assert rig.soc() == 100.0 and rig.bank_soc() == 100.0
    assert rig.bridge.soc_sources == {"a": "estimate:full"}
    rig.feed(36, cell_v=3.30, current=-50.0)  # 0.5 Ah out of 100 Ah
    assert rig.soc() == pytest.approx(99.5)
    assert rig.pack_state().remaining_ah == pytest.approx(99.5)
    assert rig.bridge.soc_sources == {"a": "estimate:coulomb"}
    # one event per change of source (the first basis was the steep top of the OCV curve,
    # after 30 s), none for the basis moving on to full and to coulomb
    assert rig.soc_events() == [
        "a: no soc yet: the voltage estimate has no basis (it needs a rest of 30 min, "
        "a full charge, or a voltage near full or empty)",
        "a: soc from voltage estimate (basis ocv)",
    ]


def test_a_30_minute_rest_gives_the_ocv_reading() -> None:
    rig = Rig()
    cell_v = ocv(0.20)  # rested cells at 20 % on the mean curve (no current seen yet)
    rig.feed(1799, cell_v=cell_v, current=0.0)
    assert rig.soc() is None
    rig.feed(2, cell_v=cell_v, current=0.0)
    soc = rig.soc()
    assert soc is not None and soc == pytest.approx(20.0, abs=0.5)
    assert rig.bridge.soc_sources == {"a": "estimate:ocv"}


def test_bms_mode_never_estimates() -> None:
    rig = Rig({"a": PackSocSettings("bms")})
    rig.full_charge()
    assert rig.soc() is None and rig.bank_soc() is None
    assert rig.bridge.pack_soc["a"].estimator is None
    assert rig.bridge.soc_sources == {"a": "none:bms"}
    assert rig.soc_events() == ['a: no soc: the BMS sends none (soc = "bms" never estimates)']


def test_bms_mode_passes_the_bms_soc_through() -> None:
    rig = Rig({"a": PackSocSettings("bms")})
    rig.feed(5, soc=42.0, remaining_ah=42.0)
    assert rig.soc() == 42.0 and rig.pack_state().remaining_ah == 42.0
    assert rig.bridge.soc_sources == {"a": "bms"}


def test_estimate_mode_overrides_the_bms_soc_and_remaining() -> None:
    rig = Rig({"a": PackSocSettings("estimate")})
    rig.feed(10, soc=80.0, remaining_ah=80.0)
    # no basis yet: absent, not the distrusted BMS value (nor remaining / capacity from it)
    assert rig.soc() is None and rig.pack_state().remaining_ah is None
    assert rig.bank_soc() is None
    rig.feed(185, cell_v=3.50, current=1.0, soc=80.0, remaining_ah=80.0)
    assert rig.soc() == 100.0 and rig.bank_soc() == 100.0
    assert rig.pack_state().remaining_ah == 100.0


def test_auto_uses_the_bms_soc_while_sent_and_the_running_estimate_after() -> None:
    rig = Rig()
    rig.feed(185, cell_v=3.50, current=1.0, soc=55.0)
    assert rig.soc() == 55.0 and rig.bridge.soc_sources == {"a": "bms"}
    rig.feed(3, cell_v=3.50, current=1.0)  # the BMS stops sending its SoC
    assert rig.soc() == 100.0  # the estimator ran meanwhile: its full anchor is ready
    rig.feed(3, cell_v=3.50, current=1.0, soc=56.0)
    assert rig.soc() == 56.0
    assert rig.soc_events() == [
        "a: soc from the BMS",
        "a: soc from voltage estimate (basis full)",
        "a: soc from the BMS",
    ]


def test_auto_counts_remaining_and_capacity_as_the_bms_soc() -> None:
    rig = Rig()
    rig.feed(5, remaining_ah=30.0)
    assert rig.soc() is None and rig.pack_state().remaining_ah == 30.0
    assert rig.bank_soc() == 30.0  # the bank's remaining / capacity, as before
    assert rig.bridge.soc_sources == {"a": "bms"}


def test_without_a_capacity_there_is_no_estimate_and_one_note_says_why() -> None:
    rig = Rig()
    rig.feed(185, cell_v=3.50, current=1.0, capacity=None)
    assert rig.soc() is None and rig.bank_soc() is None
    assert rig.bridge.soc_sources == {"a": "none:no-capacity"}
    assert rig.soc_events() == [
        "a: no soc: the voltage estimate needs the pack's capacity and the BMS reports none; "
        "set capacity_ah for this pack"
    ]


def test_a_configured_capacity_stands_in_for_the_bms_one() -> None:
    rig = Rig({"a": PackSocSettings("auto", capacity_ah=50.0)})
    rig.feed(185, cell_v=3.50, current=1.0, capacity=None)  # 1 A < 0.04 C of 50 Ah
    assert rig.soc() == 100.0
    rig.feed(36, cell_v=3.30, current=-50.0, capacity=None)  # 0.5 Ah of 50 Ah = 1 %
    assert rig.soc() == pytest.approx(99.0)


def test_the_reported_capacity_wins_and_a_change_restarts_the_estimate() -> None:
    rig = Rig({"a": PackSocSettings("auto", capacity_ah=50.0)})
    rig.full_charge()  # the state says 100 Ah
    est = rig.bridge.pack_soc["a"].estimator
    assert est is not None and est.capacity_ah == 100.0
    rig.feed(2, cell_v=3.50, current=1.0, capacity=None)  # a reading without: kept
    assert rig.soc() == 100.0
    rig.feed(1, cell_v=3.50, current=1.0, capacity=101.0)  # within 2 %: kept
    assert rig.soc() == 100.0
    rig.feed(1, cell_v=3.50, current=1.0, capacity=280.0)  # another pack size: restart
    assert rig.soc() is None
    assert rig.bridge.soc_sources == {"a": "none:no-basis"}


def test_failed_polls_feed_nothing_and_a_long_gap_drops_the_estimate() -> None:
    rig = Rig()
    rig.full_charge()
    rig.fail(30)  # a short outage: the count bridges it
    rig.feed(1, cell_v=3.50, current=1.0)
    assert rig.soc() == 100.0
    rig.fail(61)  # longer than max_gap_s (60 s): fed zeros would have kept it alive
    assert rig.bridge.pack_readings()[0].state is None
    rig.feed(1, cell_v=3.50, current=1.0)
    assert rig.soc() is None
    assert rig.bridge.soc_sources == {"a": "none:no-basis"}
    assert rig.soc_events()[-1].startswith("a: no soc yet")


def test_a_silent_pack_loses_its_estimate_too() -> None:
    rig = Rig()
    rig.full_charge()
    rig.clock.advance(61.0)  # no poll result at all (a driver stuck on a dead port)
    rig.feed(1, cell_v=3.50, current=1.0)
    assert rig.soc() is None


def test_two_packs_have_their_own_estimators() -> None:
    rig = Rig(names="ab")
    for _ in range(185):
        rig.clock.advance(1.0)
        # the same bus voltage; a's highest cell at 3.50 V marks it full, b's are all 3.33 V
        rig.bridge.on_reading("a", reading(cell_v=3.33, current=1.0, cell_max_v=3.50))
        rig.bridge.on_reading("b", reading(cell_v=3.33, current=1.0))
    assert rig.soc("a") == 100.0 and rig.soc("b") is None
    assert rig.bridge.soc_sources == {"a": "estimate:full", "b": "none:no-basis"}
    assert rig.bank_soc() is None  # one pack without a SoC: the bank has none
    est_a, est_b = (rig.bridge.pack_soc[n].estimator for n in "ab")
    assert est_a is not None and est_b is not None and est_a is not est_b


def test_soc_settings_for_an_unknown_pack_are_refused() -> None:
    with pytest.raises(ValueError, match=r"soc settings for unknown packs: \['x'\]"):
        Rig({"x": PackSocSettings()})


def test_pack_soc_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="soc mode must be one of"):
        PackSocSettings("sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capacity_ah must be finite and > 0"):
        PackSocSettings("auto", 0.0)


# -- config --------------------------------------------------------------------------------------


def config(**bms: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": "a",
        "type": "jk-pb",
        "port": "/dev/ttyUSB0",
        "max_charge_current_a": 50,
        "max_discharge_current_a": 50,
    }
    entry.update(bms)
    return {
        "hardware": {"max_charge_current_a": 100, "max_discharge_current_a": 100},
        "bms": [entry],
        "inverter": [{"kind": "can", "profile": "pylontech"}],
    }


def test_config_soc_defaults_to_auto_and_applies_to_every_address() -> None:
    assert validate(config(), "x").pack_soc_settings() == {"a": PackSocSettings()}
    cfg = validate(config(soc="estimate", capacity_ah=280, addresses=[1, 2]), "x")
    assert cfg.pack_soc_settings() == {
        "a/1": PackSocSettings("estimate", 280.0),
        "a/2": PackSocSettings("estimate", 280.0),
    }


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"soc": "sometimes"}, "bms[0].soc: Input should be 'auto', 'estimate' or 'bms'"),
        ({"capacity_ah": 0}, "bms[0].capacity_ah: Input should be greater than 0"),
        ({"capacity_ah": "big"}, "bms[0].capacity_ah"),
        (
            {"soc": "bms", "capacity_ah": 100},
            'bms[0]: capacity_ah is used only by the SoC estimate, and soc = "bms" never estimates',
        ),
    ],
)
def test_bad_soc_config_names_the_key(changes: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(config(**changes), "bridge.toml")
    assert named in str(err.value)


def test_the_examples_commented_soc_keys_validate(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for key in ("soc", "capacity_ah"):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"# {key} = "))
        text = text.replace(line, line.removeprefix("# "), 1)
    path = tmp_path / "bridge.toml"
    path.write_text(text, encoding="utf-8")
    assert load(path).pack_soc_settings()["rack1"] == PackSocSettings("auto", 280.0)


def test_the_runner_gives_the_bridge_the_configured_soc_sources() -> None:
    from bmslink.bridge.runner import BridgeRunner

    data = config(soc="estimate", capacity_ah=120, port="sim")
    data["inverter"] = [{"kind": "can", "profile": "pylontech", "interface": "virtual"}]
    runner = BridgeRunner(validate(data, "x"), clock=ManualClock())
    try:
        assert runner.bridge.pack_soc["a"].settings == PackSocSettings("estimate", 120.0)
    finally:
        runner.close()


# -- property ------------------------------------------------------------------------------------

step = st.tuples(
    st.floats(0.5, 90.0),  # seconds since the previous poll
    st.one_of(st.none(), st.floats(2.6, 3.65)),  # cell voltage; None: the poll failed
    st.floats(-120.0, 120.0),  # current
    st.one_of(st.none(), st.floats(0.0, 100.0)),  # the BMS's own SoC
)


@settings(max_examples=80, deadline=None)
@given(
    mode=st.sampled_from(["auto", "estimate"]),
    steps=st.lists(step, min_size=1, max_size=60),
    start=st.sampled_from([3.50, 3.0, 3.30]),
)
def test_the_filled_soc_is_the_estimate_and_never_without_a_basis(
    mode: SocMode, steps: list[tuple[float, float | None, float, float | None]], start: float
) -> None:
    rig = Rig({"a": PackSocSettings(mode)})
    twin = VoltageSocEstimator(100.0, CELLS)  # fed only the good readings, as the bridge must
    # a start that can reach a basis: a full anchor, a steep OCV reading or nothing
    for _ in range(200):
        rig.clock.advance(1.0)
        r = reading(cell_v=start, current=1.0 if start > 3.4 else 0.0)
        twin.update(rig.clock.now(), r.voltage_v, r.current_a, start, start)
        rig.bridge.on_reading("a", r)
    for dt, cell_v, current, bms_soc in steps:
        rig.clock.advance(dt)
        if cell_v is None:
            rig.bridge.on_reading("a", None, "no valid answer")
            continue
        r = reading(cell_v=cell_v, current=current, soc=bms_soc)
        twin.update(rig.clock.now(), r.voltage_v, r.current_a, cell_v, cell_v)
        rig.bridge.on_reading("a", r)
        soc = rig.soc()
        assert soc is None or 0.0 <= soc <= 100.0
        if mode == "auto" and bms_soc is not None:
            assert soc == bms_soc and rig.bridge.soc_sources["a"] == "bms"
            continue
        assert soc == twin.soc_pct
        if twin.basis == "none":
            assert soc is None and rig.bridge.soc_sources["a"] == "none:no-basis"
        else:
            assert soc is not None
            assert rig.bridge.soc_sources["a"] == f"estimate:{twin.basis}"


def test_pack_soc_alone_serves_other_callers() -> None:
    """The glue the simulator is to share: no bridge needed."""
    pack = PackSoc(PackSocSettings("estimate", 100.0))
    t = 0.0
    for _ in range(185):
        t += 1.0
        out = pack.apply(reading(cell_v=3.5, current=1.0, soc=10.0, capacity=None), t)
    assert out.soc_pct == 100.0 and pack.source == "estimate:full"
