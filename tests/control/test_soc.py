"""The voltage-based SoC estimator: against a simulated pack, and on hand-made samples.

Simulated-pack tests compare with ``Pack.soc_pct`` (the model's true SoC). Hand-made tests
build terminal voltages from the simulator's forward OCV function (``ocv`` and
``hysteresis_max``), so the estimator's table inversion is checked against an independent
computation, not against its own output.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslink.control.soc import SocSettings, VoltageSocEstimator
from bmslink.sim.ocv import HYSTERESIS_PLATEAU_V, hysteresis_max, ocv
from bmslink.sim.pack import Pack

CELLS = 16
CAP_AH = 100.0
REST_S = SocSettings().rest_time_s


class Rig:
    """A simulated 16S 100 Ah pack and an estimator fed from it once a second."""

    def __init__(
        self,
        soc: float,
        measured: Callable[[float], float] = lambda i: i,
        est_settings: SocSettings | None = None,
    ) -> None:
        self.pack = Pack.lfp(CELLS, capacity_ah=CAP_AH, soc=soc)
        self.est = VoltageSocEstimator(CAP_AH, CELLS, est_settings)
        self.measured = measured
        self.t = 0.0
        self.current = 0.0
        self.est.update(self.t, *self._sample())

    def _sample(self) -> tuple[float, float, float, float]:
        cells = self.pack.cell_voltages(self.current)
        return sum(cells), self.measured(self.current), min(cells), max(cells)

    def step(self, current: float) -> float | None:
        self.current = current
        self.pack.apply(current, 1.0, 25.0)
        self.t += 1.0
        return self.est.update(self.t, *self._sample())

    def run(self, current: float, seconds: float) -> float | None:
        result = self.est.soc_pct
        for _ in range(round(seconds)):
            result = self.step(current)
        return result

    def error(self) -> float:
        assert self.est.soc_pct is not None
        return self.est.soc_pct - self.pack.soc_pct


def feed(
    est: VoltageSocEstimator,
    t: float,
    seconds: float,
    cell_v: float | None,
    current: float | None,
    cell_min_v: float | None = None,
    cell_max_v: float | None = None,
) -> float:
    """Hand-made samples once a second: pack voltage = 16 × ``cell_v``. Returns the end time."""
    v = None if cell_v is None else CELLS * cell_v
    for _ in range(round(seconds)):
        t += 1.0
        est.update(t, v, current, cell_min_v, cell_max_v)
    return t


def bases_seen(
    est: VoltageSocEstimator,
    t: float,
    seconds: float,
    cell_v: float | None,
    current: float | None,
    cell_min_v: float | None = None,
    cell_max_v: float | None = None,
) -> tuple[float, set[str]]:
    """Like ``feed``, also returning every basis the estimator showed on the way."""
    seen: set[str] = set()
    for _ in range(round(seconds)):
        t = feed(est, t, 1, cell_v, current, cell_min_v, cell_max_v)
        seen.add(est.basis)
    return t, seen


def rested_cell_v(soc: float, direction: int) -> float:
    """Rested cell OCV at ``soc`` on the charge (+1), mean (0) or discharge (-1) branch."""
    return ocv(soc) + direction * hysteresis_max(soc, HYSTERESIS_PLATEAU_V)


# -- no basis, no number ---------------------------------------------------------------------


def test_none_until_a_rest_of_rest_time_on_the_plateau() -> None:
    rig = Rig(0.55)
    assert rig.run(-30.0, 1200) is None
    basis_while_working = rig.est.basis
    assert rig.run(0.0, REST_S - 10) is None
    assert rig.run(0.0, 20) is not None
    assert (basis_while_working, rig.est.basis) == ("none", "ocv")
    # on the plateau the first reading is coarse, but the simulator's curve is the table's
    assert abs(rig.error()) < 5.0


def test_plateau_idle_gives_no_estimate_before_the_rest_is_complete() -> None:
    rig = Rig(0.50)
    assert rig.run(0.0, 600) is None
    assert rig.est.basis == "none"


# -- first estimate on the steep parts ----------------------------------------------------------


@pytest.mark.parametrize("true_soc", [0.04, 0.08, 0.12])
def test_rested_estimate_on_the_lower_knee_is_within_two_percent(true_soc: float) -> None:
    rig = Rig(true_soc + 0.05)
    rig.run(-30.0, 0.05 * 3600 * CAP_AH / 30.0)  # 5 % out at 0.3 C: no immediate estimate
    rig.run(0.0, REST_S + 5)
    assert rig.est.soc_pct is not None
    assert abs(rig.error()) < 2.0


def test_rested_estimate_on_the_upper_knee_is_within_two_percent() -> None:
    rig = Rig(0.93)
    rig.run(20.0, 0.04 * 3600 * CAP_AH / 20.0)  # 4 % in at 0.2 C
    rig.run(0.0, REST_S + 5)
    assert rig.est.soc_pct is not None
    assert rig.pack.soc_pct > 95.0
    assert abs(rig.error()) < 2.0


def test_steep_reading_is_taken_at_once_after_the_confirm_time() -> None:
    confirm = SocSettings().steep_confirm_s
    rig = Rig(0.05)
    assert rig.run(0.0, confirm - 2) is None
    rig.run(0.0, 4)
    assert rig.est.basis == "ocv"
    assert abs(rig.error()) < 2.0


def test_steep_reading_under_heavy_current_waits() -> None:
    rig = Rig(0.08)
    assert rig.run(-20.0, 180) is None  # 0.2 C > steep_max_current_c (0.1 C)


def test_ir_compensation_uses_the_sign_convention() -> None:
    r_pack = 0.05
    s = SocSettings(pack_resistance_ohm=r_pack)
    for current in (8.0, -8.0):
        est = VoltageSocEstimator(CAP_AH, CELLS, s)
        # terminal = OCV + I·R: charging raises it, discharging lowers it (mean branch: a
        # current under 0.1 C but above the rest current also sets the branch, so use that one)
        direction = 1 if current > 0 else -1
        cell_v = rested_cell_v(0.05, direction) + current * r_pack / CELLS
        feed(est, 0.0, 40, cell_v, current)
        assert est.soc_pct == pytest.approx(5.0, abs=0.05)
        assert est.ocv_soc_pct(CELLS * cell_v, 0.0) != pytest.approx(5.0, abs=1.0)


# -- coulomb counting ---------------------------------------------------------------------------


def test_coulomb_counting_tracks_a_long_discharge() -> None:
    rig = Rig(0.97)
    rig.run(0.0, 40)  # steep: immediate basis
    start_basis = rig.est.basis
    start_error = rig.error()
    assert abs(start_error) < 2.0
    assert start_basis == "ocv"
    for _ in range(9):  # 0.5 C for 90 min: 97 % → ~22 %
        rig.run(-50.0, 600)
        assert rig.est.basis == "coulomb"
        assert abs(rig.error() - start_error) < 1.0
        assert abs(rig.error()) < 2.0
    assert rig.pack.soc_pct < 25.0


def test_counting_clamps_to_0_and_100() -> None:
    est = VoltageSocEstimator(CAP_AH, CELLS)
    t = feed(est, 0.0, 40, ocv(0.03), 0.0)
    assert est.soc_pct is not None and est.soc_pct < 5.0
    t = feed(est, t, 600, None, -100.0)  # no voltage: counting goes on, nothing else
    assert est.soc_pct == 0.0
    feed(est, t, 2 * 3600, None, 100.0)
    assert est.soc_pct == 100.0


def test_short_current_dropouts_are_bridged_with_the_last_reading() -> None:
    est = VoltageSocEstimator(CAP_AH, CELLS)
    t = feed(est, 0.0, 40, ocv(0.97), 0.0)
    start = est.soc_pct
    assert start is not None
    for k in range(3600):
        t += 1.0
        est.update(t, None, None if k % 3 else -50.0)
    assert est.soc_pct == pytest.approx(start - 50.0, abs=0.01)


# -- corrections --------------------------------------------------------------------------------


def test_rest_correction_fixes_a_wrong_count_on_the_lower_knee() -> None:
    rig = Rig(0.50, measured=lambda i: 0.85 * i)  # current sensor reads 15 % low
    rig.run(0.0, REST_S + 5)
    assert rig.est.soc_pct is not None
    rig.run(-40.0, 0.42 * 3600 * CAP_AH / 40.0)  # ~50 % → ~8 %
    before = rig.error()
    assert before > 4.0  # the count lagged behind by roughly 0.15 × 42 %
    rig.run(0.0, REST_S + 5)
    assert rig.est.basis == "ocv"
    assert abs(rig.error()) < 1.5


def _at_plateau_after_discharge(count_to: float) -> tuple[VoltageSocEstimator, float]:
    """An estimator that counted from a rested 55 % down to ``count_to`` %."""
    est = VoltageSocEstimator(CAP_AH, CELLS)
    t = feed(est, 0.0, REST_S + 5, rested_cell_v(0.55, 0), 0.0)
    assert est.soc_pct == pytest.approx(55.0, abs=0.1)
    current = -50.0
    t = feed(est, t, (55.0 - count_to) / 100.0 * CAP_AH * 3600 / 50.0, ocv(0.3), current)
    assert est.soc_pct == pytest.approx(count_to, abs=0.1)
    return est, t


def test_rest_correction_hardly_moves_the_count_on_the_plateau() -> None:
    est, t = _at_plateau_after_discharge(50.0)
    # the rested voltage says 60 % (discharge branch): on the plateau that is worth little
    feed(est, t, REST_S + 5, rested_cell_v(0.60, -1), 0.0)
    assert est.basis == "ocv"
    assert est.soc_pct is not None
    assert 50.0 < est.soc_pct < 51.0


def test_rest_correction_pulls_a_count_that_contradicts_the_voltage() -> None:
    est, t = _at_plateau_after_discharge(5.0)
    # rested cells on the plateau cannot be at 5 %: the estimate is clamped into the band of
    # SoCs within ocv_tolerance_v (20 mV) of the reading: 3.243 V on the discharge branch is
    # above 30 %
    feed(est, t, REST_S + 5, rested_cell_v(0.50, -1), 0.0)
    assert est.soc_pct is not None
    assert 30.0 < est.soc_pct < 50.0


def test_rest_correction_applies_once_per_rest() -> None:
    est, t = _at_plateau_after_discharge(5.0)
    t = feed(est, t, REST_S + 5, rested_cell_v(0.50, -1), 0.0)
    first = est.soc_pct
    feed(est, t, 5 * REST_S, rested_cell_v(0.50, -1), 0.0)
    assert est.soc_pct == first


@pytest.mark.parametrize(("direction", "current"), [(1, 20.0), (-1, -20.0), (0, 0.0)])
def test_hysteresis_branch_follows_the_last_current_direction(
    direction: int, current: float
) -> None:
    est = VoltageSocEstimator(CAP_AH, CELLS)
    t = feed(est, 0.0, 60, ocv(0.5), current)  # sets the direction (no basis on the plateau)
    assert est.soc_pct is None
    feed(est, t, REST_S + 5, rested_cell_v(0.50, direction), 0.0)
    assert est.soc_pct == pytest.approx(50.0, abs=0.05)


def test_the_same_voltage_reads_lower_after_charging_than_after_discharging() -> None:
    results = []
    for current in (20.0, 0.0, -20.0):
        est = VoltageSocEstimator(CAP_AH, CELLS)
        t = feed(est, 0.0, 60, ocv(0.5), current)
        feed(est, t, REST_S + 5, ocv(0.5), 0.0)
        results.append(est.soc_pct)
    charged, unknown, discharged = results
    assert charged is not None and unknown is not None and discharged is not None
    assert charged < unknown < discharged
    assert unknown == pytest.approx(50.0, abs=0.05)


def test_full_fires_after_a_taper_and_fixes_a_lagging_count() -> None:
    rig = Rig(0.85, measured=lambda i: 0.8 * i)  # the count lags while charging
    rig.run(0.0, REST_S + 5)
    assert rig.est.soc_pct is not None
    current = 30.0
    before = None
    for _ in range(6 * 3600):
        if max(rig.pack.cell_voltages(current)) > 3.55:
            current *= 0.9  # a crude CV phase: the charger backs off at 3.55 V per cell
        last = rig.est.soc_pct
        rig.step(current)
        if rig.est.basis == "full":
            before = last
            break
    assert before is not None, "full never fired"
    assert before < 97.0  # it did correct something
    assert rig.est.soc_pct == 100.0
    assert rig.pack.soc_pct > 97.0


def test_empty_fires_on_a_low_cell_and_fixes_an_optimistic_count() -> None:
    rig = Rig(0.20, measured=lambda i: 0.8 * i)  # the count lags while discharging
    rig.run(0.0, REST_S + 5)
    assert rig.est.soc_pct is not None
    before = None
    for _ in range(3 * 3600):
        last = rig.est.soc_pct
        rig.step(-30.0)
        if rig.est.basis == "empty":
            before = last
            break
    assert before is not None, "empty never fired"
    assert before > 3.0
    assert rig.est.soc_pct == 0.0
    # the lowest cell is empty; the others sit at most the seeded spread (3σ = 3 %) above it
    assert rig.pack.soc_pct < 4.0


def _with_basis() -> tuple[VoltageSocEstimator, float]:
    est = VoltageSocEstimator(CAP_AH, CELLS)
    t = feed(est, 0.0, REST_S + 5, rested_cell_v(0.60, 0), 0.0)
    assert est.soc_pct is not None
    return est, t


def test_full_needs_the_whole_hold_time_below_the_tail_current() -> None:
    hold = SocSettings().full_hold_s
    est, t = _with_basis()
    t, seen = bases_seen(est, t, 3600, 3.40, 10.0, cell_max_v=3.50)  # above the 4 A tail
    assert "full" not in seen
    t, seen = bases_seen(est, t, hold - 2, 3.40, 2.0, cell_max_v=3.50)
    t, seen2 = bases_seen(est, t, 1, 3.40, 2.0, cell_max_v=3.44)  # a dip restarts the hold
    t, seen3 = bases_seen(est, t, hold - 2, 3.40, 2.0, cell_max_v=3.50)
    assert "full" not in seen | seen2 | seen3
    assert est.soc_pct is not None and est.soc_pct < 75.0
    _, seen = bases_seen(est, t, 4, 3.40, 2.0, cell_max_v=3.50)
    assert "full" in seen
    assert est.soc_pct == 100.0


def test_empty_needs_discharge_and_the_whole_hold_time() -> None:
    hold = SocSettings().empty_hold_s
    est, t = _with_basis()
    t, seen = bases_seen(est, t, 600, 3.2, 5.0, cell_min_v=2.80)  # charging: never "empty"
    t, seen2 = bases_seen(est, t, hold - 2, 3.2, -5.0, cell_min_v=2.85)
    assert "empty" not in seen | seen2
    assert est.soc_pct is not None and est.soc_pct > 50.0
    _, seen = bases_seen(est, t, 4, 3.2, -5.0, cell_min_v=2.85)
    assert "empty" in seen
    assert est.soc_pct == 0.0


def test_average_cell_voltage_stands_in_for_missing_cell_voltages() -> None:
    hold = SocSettings().full_hold_s
    est, t = _with_basis()
    # an average of 3.44 V proves nothing about the top cell
    t, seen = bases_seen(est, t, 2 * hold, 3.44, 2.0)
    assert "full" not in seen
    _, seen = bases_seen(est, t, hold + 2, 3.46, 2.0)  # average 3.46 V: the top cell is higher
    assert "full" in seen


# -- missing data -------------------------------------------------------------------------------


def test_missing_current_pauses_the_rest_timer() -> None:
    est = VoltageSocEstimator(CAP_AH, CELLS)
    t = 0.0
    for k in range(round(REST_S) * 2 - 10):  # every other sample lacks the current
        t += 1.0
        est.update(t, CELLS * ocv(0.5), None if k % 2 else 0.0)
    assert est.soc_pct is None  # only ~REST_S - 5 s of measured rest so far
    for k in range(40):
        t += 1.0
        est.update(t, CELLS * ocv(0.5), None if k % 2 else 0.0)
    assert est.soc_pct == pytest.approx(50.0, abs=0.1)


def test_missing_voltage_delays_the_rest_reading_without_losing_it() -> None:
    est = VoltageSocEstimator(CAP_AH, CELLS)
    t = feed(est, 0.0, REST_S + 100, None, 0.0)
    assert est.soc_pct is None
    feed(est, t, 1, ocv(0.5), 0.0)
    assert est.soc_pct == pytest.approx(50.0, abs=0.1)


def test_current_missing_longer_than_max_gap_drops_the_estimate() -> None:
    max_gap = SocSettings().max_gap_s
    est, t = _with_basis()
    t = feed(est, t, max_gap - 1, 3.27, None)
    assert est.soc_pct is not None
    feed(est, t, 2, 3.27, None)
    assert est.soc_pct is None
    assert est.basis == "none"


@pytest.mark.parametrize("jump", [SocSettings().max_gap_s + 1.0, -1.0])
def test_a_gap_or_time_going_backwards_drops_the_estimate(jump: float) -> None:
    est, t = _with_basis()
    est.update(t + jump, CELLS * 3.27, 0.0)
    assert est.soc_pct is None
    assert est.basis == "none"


def test_non_finite_inputs_count_as_missing() -> None:
    est, t = _with_basis()
    soc = est.soc_pct
    est.update(t + 1.0, math.nan, math.inf, math.nan, -math.inf)
    est.update(math.nan, 52.0, 0.0)
    assert est.soc_pct == soc


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rest_time_s": -1.0},
        {"rest_current_c": 0.0},
        {"max_gap_s": math.nan},
        {"pack_resistance_ohm": -0.01},
        {"steep_below_pct": 96.0, "steep_above_pct": 95.0},
        {"full_cell_v": 2.8},
    ],
)
def test_settings_reject_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SocSettings(**kwargs)


def test_estimator_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        VoltageSocEstimator(0.0)
    with pytest.raises(ValueError):
        VoltageSocEstimator(100.0, 0)
    with pytest.raises(ValueError, match="non-monotonic"):
        VoltageSocEstimator(100.0, settings=SocSettings(hysteresis_v=0.1))


def test_default_resistance_scales_with_cells_and_capacity() -> None:
    # 0.55 mΩ per 280 Ah cell (R0 0.30 + R1 0.15 + busbar 0.10 mΩ, reference §1.3)
    assert VoltageSocEstimator(280.0, 16).pack_resistance_ohm == pytest.approx(16 * 0.55e-3)
    assert VoltageSocEstimator(140.0, 8).pack_resistance_ohm == pytest.approx(8 * 1.1e-3)


# -- properties ---------------------------------------------------------------------------------

_FAST = SocSettings(
    rest_time_s=5.0, steep_confirm_s=2.0, full_hold_s=3.0, empty_hold_s=3.0, max_gap_s=20.0
)
_any_float = st.floats(allow_nan=True, allow_infinity=True)
_voltages = st.one_of(st.none(), st.floats(40.0, 60.0), _any_float)
_cell_voltages = st.one_of(st.none(), st.floats(2.5, 3.7), _any_float)
_currents = st.one_of(st.none(), st.floats(-300.0, 300.0), st.sampled_from([0.0, 1.0]), _any_float)
_steps = st.tuples(
    st.one_of(st.floats(0.0, 30.0), st.sampled_from([1.0, 0.0, -1.0, 1e9]), _any_float),
    _voltages,
    _currents,
    _cell_voltages,
    _cell_voltages,
)


@settings(max_examples=300, deadline=None)
@given(
    start_soc=st.sampled_from([None, 0.03, 0.5, 0.98]),
    fast=st.booleans(),
    steps=st.lists(_steps, max_size=80),
)
def test_estimate_is_in_range_or_none_and_never_raises(
    start_soc: float | None,
    fast: bool,
    steps: list[tuple[float, float | None, float | None, float | None, float | None]],
) -> None:
    est = VoltageSocEstimator(CAP_AH, CELLS, _FAST if fast else None)
    t = 0.0
    if start_soc is not None:
        t = feed(est, t, 40, ocv(start_soc), 0.0)
    for dt, v, i, cmin, cmax in steps:
        t = t + dt
        result = est.update(t, v, i, cmin, cmax)
        assert result == est.soc_pct
        if result is None:
            assert est.basis == "none"
        else:
            assert 0.0 <= result <= 100.0
            assert est.basis != "none"
        if not math.isfinite(t):
            t = 0.0
