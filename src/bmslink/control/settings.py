"""ControlSettings: every knob of the charge-control brain, validated like the bridge's TOML.

The bridge's ``[control]`` section is validated with this model, so a typo or a
value out of range fails on start with an error that names the key. Defaults
are for a 16S LiFePO4 pack and follow dbus-serialbattery's defaults
(battery-model-and-control.md §2.1) where it has one; docs/control.md explains
every field, its default and why.

Choices where the reference is silent or where this model differs (all
documented in docs/control.md):

- Current ceilings 100 A / 100 A (the reference's 50/60 A suit a smaller pack;
  the hardware clamp is applied after these anyway).
- Pack-level rates (``float_ramp_v_per_s``, ``cvl_recovery_v_per_s``) are volts
  per second on the pack's CVL, as in the reference; the absorption start margin
  and the absorption exit drop are per cell so they scale with the cell count
  (0.03 V × 16 ≈ the reference's 0.5 V).
- ``cvl_floor_cell_v`` (3.20 V): the lowest CVL ever sent, per cell. The
  reference clamps at MIN_CELL_VOLTAGE × cells; a CVL that low is close to the
  DVL, and inverters read a CVL far below the pack voltage as over-voltage.
- Temperature windows 0..55 °C (charge) and −10..55 °C (discharge): where the
  default tables reach 0, so the window only adds the latch with hysteresis.
- ``charge_cell_hold_s`` 600 s: the charge cell-voltage table reads the
  highest cell of the last 10 minutes, so the CCL does not cycle near full
  (300 s was enough in the simulator, whose cells relax within a minute; real
  cells relax more slowly). ``discharge_cell_hold_s`` 0 (off): the default
  discharge table does not cycle, and a held dip would cut DCL for a window.
- Tables must derate monotonically (charge by cell voltage falls as the
  voltage rises, discharge falls as it falls, temperature rises then falls,
  SoC tables alike): a table that allows more current closer to a limit is
  refused, because the controller's safety properties rest on it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bmslink.control.tables import Table, TableMode, check_points

Points = tuple[tuple[float, float], ...]

DEFAULT_CHARGE_CELL_VOLTAGE_TABLE: Points = (
    (3.375, 1.0),
    (3.400, 0.25),
    (3.425, 0.05),
    (3.450, 0.005),
    (3.500, 0.0),
)
DEFAULT_DISCHARGE_CELL_VOLTAGE_TABLE: Points = (
    (3.190, 1.0),
    (3.100, 0.25),
    (3.000, 0.05),
    (2.900, 0.005),
    (2.800, 0.0),
)
DEFAULT_CHARGE_TEMPERATURE_TABLE: Points = (
    (0.0, 0.0),
    (2.0, 0.25),
    (5.0, 0.5),
    (10.0, 1.0),
    (40.0, 1.0),
    (45.0, 0.5),
    (50.0, 0.25),
    (55.0, 0.0),
)
DEFAULT_DISCHARGE_TEMPERATURE_TABLE: Points = (
    (-10.0, 0.0),
    (0.0, 0.25),
    (5.0, 0.5),
    (10.0, 1.0),
    (40.0, 1.0),
    (45.0, 0.5),
    (50.0, 0.25),
    (55.0, 0.0),
)

#: Which way each table must derate, by ascending x (see Table.is_monotone).
TABLE_SHAPES: dict[str, Literal["falling", "rising", "peak"]] = {
    "charge_cell_voltage_table": "falling",
    "discharge_cell_voltage_table": "rising",
    "charge_temperature_table": "peak",
    "discharge_temperature_table": "peak",
    "charge_soc_table": "falling",
    "discharge_soc_table": "rising",
}
_SHAPE_WORDS = {
    "falling": "must not rise as x rises (less current closer to the limit)",
    "rising": "must not rise as x falls (less current closer to the limit)",
    "peak": "must rise then fall (less current towards both ends)",
}


class ControlSettings(BaseModel):
    """What the controller aims for and how it derates; defaults for a 16S LFP pack."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # -- pack and ceilings ---------------------------------------------------
    series_cells: int = Field(
        16, ge=1, le=400, description="Cells in series; used when the BMS sends no cell list."
    )
    max_charge_current_a: float = Field(
        100.0, gt=0, description="Controller's charge current ceiling (A)."
    )
    max_discharge_current_a: float = Field(
        100.0, gt=0, description="Controller's discharge current ceiling (A)."
    )

    # -- cell voltages -------------------------------------------------------
    bulk_cell_v: float = Field(
        3.45, gt=2.0, le=4.3, description="Bulk/absorption target per cell (V)."
    )
    float_cell_v: float = Field(3.375, gt=2.0, le=4.3, description="Float target per cell (V).")
    min_cell_v: float = Field(2.90, gt=1.5, le=4.0, description="DVL per cell (V).")
    cvl_floor_cell_v: float = Field(
        3.20, gt=1.5, le=4.3, description="Lowest CVL ever sent, per cell (V)."
    )
    cell_over_voltage_v: float = Field(
        3.65, gt=2.0, le=4.5, description="BMS cell OVP: no charge current at or above it (V)."
    )
    cell_under_voltage_v: float = Field(
        2.50, gt=1.0, le=4.0, description="BMS cell UVP: no discharge current at or below it (V)."
    )

    # -- absorption and float ------------------------------------------------
    absorption_start_margin_cell_v: float = Field(
        0.003,
        ge=0,
        le=0.1,
        description="Absorption starts when the cell sum is within this × cells of the target (V).",
    )
    absorption_exit_drop_cell_v: float = Field(
        0.03,
        gt=0,
        le=0.5,
        description="Back to bulk when the cell sum falls this × cells below the target (V).",
    )
    absorption_time_s: float = Field(
        900.0, ge=0, description="Absorption hold once the pack is at target and balanced (s)."
    )
    absorption_max_spread_v: float = Field(
        0.010, gt=0, le=0.5, description="Cell spread at or below which absorption time counts (V)."
    )
    absorption_spread_hysteresis_v: float = Field(
        0.003,
        ge=0,
        le=0.5,
        description="The absorption timer restarts when the spread exceeds max + this (V).",
    )
    float_ramp_v_per_s: float = Field(
        0.001, gt=0, description="CVL ramp from absorption down to float, pack volts per second."
    )
    rebulk_soc_pct: float = Field(
        80.0, ge=0, le=100, description="From float back to bulk below this SoC (%)."
    )
    rebulk_spread_v: float = Field(
        0.080, gt=0, le=1.0, description="From float back to bulk at or above this cell spread (V)."
    )

    # -- per-cell over-voltage control of CVL --------------------------------
    cell_ovp_control: bool = Field(
        True, description="Cut CVL by the cells' excess over bulk_cell_v (P-controller)."
    )
    cvl_recovery_hold_s: float = Field(
        60.0, ge=0, description="Hold a cell-OVP-reduced CVL this long before ramping up (s)."
    )
    cvl_recovery_v_per_s: float = Field(
        0.001, gt=0, description="CVL recovery ramp after a cell-OVP cut, pack volts per second."
    )

    # -- derating tables -----------------------------------------------------
    charge_cell_voltage_table: Points = Field(
        DEFAULT_CHARGE_CELL_VOLTAGE_TABLE,
        description="(highest cell V, fraction of max charge current) points.",
    )
    discharge_cell_voltage_table: Points = Field(
        DEFAULT_DISCHARGE_CELL_VOLTAGE_TABLE,
        description="(lowest cell V, fraction of max discharge current) points.",
    )
    charge_temperature_table: Points = Field(
        DEFAULT_CHARGE_TEMPERATURE_TABLE,
        description="(cell °C, fraction of max charge current); min and max temperature apply.",
    )
    discharge_temperature_table: Points = Field(
        DEFAULT_DISCHARGE_TEMPERATURE_TABLE,
        description="(cell °C, fraction of max discharge current); min and max apply.",
    )
    charge_soc_table: Points | None = Field(
        None, description="(SoC %, fraction of max charge current); None = off."
    )
    discharge_soc_table: Points | None = Field(
        None, description="(SoC %, fraction of max discharge current); None = off."
    )
    table_mode: TableMode = Field(
        "linear", description="'linear' interpolation or 'step' (breakpoint last passed)."
    )

    # -- temperature windows -------------------------------------------------
    charge_temp_min_c: float = Field(0.0, description="No charging at or below (°C).")
    charge_temp_max_c: float = Field(55.0, description="No charging at or above (°C).")
    discharge_temp_min_c: float = Field(-10.0, description="No discharging at or below (°C).")
    discharge_temp_max_c: float = Field(55.0, description="No discharging at or above (°C).")
    temp_hysteresis_k: float = Field(
        2.0, ge=0, description="A blocked direction resumes this far inside its window (K)."
    )

    # -- current recovery ----------------------------------------------------
    current_recovery_threshold_pct: float = Field(
        1.5, ge=0, le=100, description="A limit rises only once its target exceeds this % of max."
    )
    current_recovery_hold_s: float = Field(
        30.0, ge=0, description="Hold after a cut before the limit may rise (s)."
    )
    current_recovery_a_per_s: float = Field(
        5.0, gt=0, description="Ramp rate of a rising current limit (A/s)."
    )
    charge_cell_hold_s: float = Field(
        600.0,
        ge=0,
        le=3600,
        description="The charge cell-voltage table reads the highest cell of this many "
        "seconds back (s); 0 = the live value.",
    )
    discharge_cell_hold_s: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="The discharge cell-voltage table reads the lowest cell of this many "
        "seconds back (s); 0 = the live value.",
    )

    # -- SoC-based flags -----------------------------------------------------
    force_charge_on_soc_pct: float = Field(
        5.0, ge=0, le=100, description="Request force charge at or below this SoC (%)."
    )
    force_charge_off_soc_pct: float = Field(
        10.0, ge=0, le=100, description="Stop requesting force charge at or above this SoC (%)."
    )
    soc_cap_until_full: bool = Field(
        False, description="Present at most soc_cap_pct until a full charge (absorption→float)."
    )
    soc_cap_pct: float = Field(
        99.0, ge=0, le=100, description="The cap while soc_cap_until_full waits for a full (%)."
    )
    soc_cap_release_pct: float = Field(
        95.0, ge=0, le=100, description="A SoC below this re-arms the cap (%)."
    )

    # -- input freshness -----------------------------------------------------
    stale_after_s: float = Field(
        10.0, gt=0, description="An input older than this gives the safe output (s)."
    )

    # -- validation ----------------------------------------------------------

    @field_validator(*TABLE_SHAPES)
    @classmethod
    def _table_points(cls, value: Points | None, info: ValidationInfo) -> Points | None:
        if value is None:
            return None
        points = check_points(value)
        shape = TABLE_SHAPES[str(info.field_name)]
        if not Table(points).is_monotone(shape):
            raise ValueError(f"fractions {_SHAPE_WORDS[shape]}")
        return points

    @model_validator(mode="after")
    def _consistent(self) -> ControlSettings:
        problems: list[str] = []
        order = (
            ("cell_under_voltage_v", "min_cell_v"),
            ("min_cell_v", "cvl_floor_cell_v"),
            ("cvl_floor_cell_v", "float_cell_v", "<="),
            ("float_cell_v", "bulk_cell_v"),
            ("bulk_cell_v", "cell_over_voltage_v"),
            ("force_charge_on_soc_pct", "force_charge_off_soc_pct"),
            ("soc_cap_release_pct", "soc_cap_pct"),
        )
        for low, high, *rel in order:
            a, b = getattr(self, low), getattr(self, high)
            if rel and not a <= b:
                problems.append(f"{low} ({a:g}) must not exceed {high} ({b:g})")
            elif not rel and not a < b:
                problems.append(f"{low} ({a:g}) must be below {high} ({b:g})")
        hysteresis = self.temp_hysteresis_k
        for way in ("charge", "discharge"):
            lo, hi = getattr(self, f"{way}_temp_min_c"), getattr(self, f"{way}_temp_max_c")
            if not hi - lo > 2 * hysteresis:
                problems.append(
                    f"{way}_temp_min_c ({lo:g}) and {way}_temp_max_c ({hi:g}) must be more "
                    f"than 2 × temp_hysteresis_k ({hysteresis:g}) apart"
                )
        top = self.absorption_max_spread_v + self.absorption_spread_hysteresis_v
        if not self.rebulk_spread_v > top:
            problems.append(
                f"rebulk_spread_v ({self.rebulk_spread_v:g}) must exceed absorption_max_spread_v "
                f"+ absorption_spread_hysteresis_v ({top:g})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def table(self, key: str) -> Table | None:
        """The named table built with ``table_mode`` (None for a table that is off)."""
        if key not in TABLE_SHAPES:
            raise KeyError(f"no table setting {key!r}")
        points = getattr(self, key)
        return None if points is None else Table(points, self.table_mode)
