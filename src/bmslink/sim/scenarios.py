"""Named simulation scenarios for ``bmslink simulate``: data, turned into ``ChainConfig`` runs.

Why a table: a scenario is a claim about the world (a winter morning, a weak cell, a
BMS that goes quiet), and its numbers should be read and argued with in one place,
not hidden in code paths. Each scenario is a set of ``ChainConfig`` overrides shared by
its runs, one entry per run (most have one run, ``comms``), a default number of days
and, for link faults, the hours of each day during which the BMS is silent.

Choices the brief and the reference leave open (all assumptions, documented here):

- ``winter-cold``: the summer temperature curve shifted by −18 K (−6 °C at 05:00,
  +6 °C at 15:00, below 0 °C from 22:00 to 10:00), PV peak cut to 4 kW for the low sun.
  The pack starts at the night's temperature and follows ambient with its ~1 h thermal
  time constant, so it is below 0 °C through the morning while the sun already shines.
- ``weak-cell``: cell 5 is weak with ``Pack.lfp``'s default factors (85 % capacity,
  1.5 × resistance).
- ``imbalanced-pack``: σ 4 % in starting cell SoC (draws clipped to ±12 %), against the
  default 1 %; reference §1.5 reports tens of mV of spread at the knees in DIY packs.
- ``bms-link-drop``: the BMS is silent 11:00–11:30 (while charging) and 19:00–19:30
  (while discharging into the evening peak) every day.
- ``cloudy-week``: cloudiness 0.7 (up to 70 % of clear-sky PV lost), seeded per day.
- ``voltage-only-vs-comms``: the same days (same seed, same weather) twice, once with an
  inverter that obeys the BMS over CAN, once with one that only sees the voltage.
- ``soc-estimate``: the same days twice, the second with ``soc = "estimate"`` as a bridge
  would run it: until the estimate has a basis (a rest, full, or a steep part of the
  curve) there is no SoC, so the Pylontech broadcast stays silent and the inverter neither
  charges nor discharges, which is itself the rest that gives the first basis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bmslink.sim.chain import ChainConfig
from bmslink.sim.day import DAY_S


def _comms_only() -> Mapping[str, Mapping[str, Any]]:
    return {"comms": {}}


@dataclass(frozen=True)
class Scenario:
    """One named scenario: ChainConfig overrides, its runs and its default length."""

    name: str
    description: str
    days: int
    #: ChainConfig overrides shared by every run.
    config: Mapping[str, Any] = field(default_factory=dict)
    #: Run name -> ChainConfig overrides of that run (on top of ``config``).
    runs: Mapping[str, Mapping[str, Any]] = field(default_factory=_comms_only)
    #: (start hour, end hour) of each day while the BMS is silent.
    silent_hours: tuple[tuple[float, float], ...] = ()

    def configs(
        self, days: int | None = None, step_s: float | None = None
    ) -> dict[str, ChainConfig]:
        """One ChainConfig per run, for ``days`` days (default: the scenario's own)."""
        n = self.days if days is None else days
        if n < 1:
            raise ValueError(f"days must be at least 1, got {n}")
        silent = tuple(
            (day * DAY_S + start * 3600.0, day * DAY_S + end * 3600.0)
            for day in range(n)
            for start, end in self.silent_hours
        )
        out: dict[str, ChainConfig] = {}
        for run, overrides in self.runs.items():
            values: dict[str, Any] = {"hours": 24.0 * n, **self.config, **overrides}
            if silent:
                values["bms_silent"] = silent
            if step_s is not None:
                values["step_s"] = step_s
            out[run] = ChainConfig(**values)
        return out


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "sunny-day",
            "One clear day: charge in the sun to full, discharge into the evening load.",
            days=1,
        ),
        Scenario(
            "cloudy-week",
            "Seven days under broken clouds (70 % cloudiness): shallow cycles, rarely full.",
            days=7,
            config={"cloudiness": 0.7},
        ),
        Scenario(
            "winter-cold",
            "Ambient 18 K colder (below 0 °C from 22:00 to 10:00), 4 kW of low sun: "
            "charging must be refused while the cells are below 0 °C.",
            days=2,
            config={"ambient_offset_c": -18.0, "pv_peak_w": 4000.0, "start_soc_pct": 30.0},
        ),
        Scenario(
            "weak-cell",
            "Cell 5 has 85 % of the capacity and 1.5 x the resistance: it reaches the knees "
            "first and must set the limits.",
            days=2,
            config={"weak_cell": 5},
        ),
        Scenario(
            "imbalanced-pack",
            "Cells start with a 4 % (σ) SoC spread: one cell is full while others are not.",
            days=2,
            config={"soc_spread": 0.04},
        ),
        Scenario(
            "bms-link-drop",
            "The BMS falls silent 11:00-11:30 and 19:00-19:30: limits go to 0, then the "
            "broadcast stops and the inverter declares the battery lost.",
            days=1,
            silent_hours=((11.0, 11.5), (19.0, 19.5)),
        ),
        Scenario(
            "voltage-only-vs-comms",
            "The same days twice: an inverter obeying the BMS over CAN, and one that only "
            "sees the battery voltage (its SoC from voltage, on a flat LFP curve).",
            days=2,
            runs={"comms": {}, "voltage-only": {"inverter_mode": "voltage-only"}},
        ),
        Scenario(
            "soc-estimate",
            "The same days twice: the inverter shown the BMS's SoC, and bmslink's own estimate "
            "from voltage and current (for a BMS that sends none, or a badly calibrated one).",
            days=3,
            runs={"bms-soc": {}, "estimated-soc": {"soc": "estimate"}},
        ),
    )
}


class UnknownScenarioError(KeyError):
    """A scenario name that is not in SCENARIOS; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; UnknownScenarioError naming the known ones otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise UnknownScenarioError(f"unknown scenario {name!r}; known: {known}") from None
