"""BatteryState: the one shape every protocol decodes into and encodes from.

The JSON keys, units and sign convention are fixed by shared/contract.md and
must only ever grow. A field the source did not carry stays ``None`` and is left
out of the JSON: bmslink never fills in a guessed default.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

from bmslink.errors import EncodeError, StateError

#: Alarm and warning names shared by every protocol (contract.md).
ALARM_NAMES: tuple[str, ...] = (
    "high_voltage",
    "low_voltage",
    "high_temperature",
    "low_temperature",
    "high_temperature_charge",
    "low_temperature_charge",
    "high_charge_current",
    "high_discharge_current",
    "short_circuit",
    "contactor",
    "bms_internal",
    "cell_imbalance",
    "general",
)
_ALARM_SET = frozenset(ALARM_NAMES)


@dataclass(slots=True)
class BatteryState:
    """One battery (or one aggregated bank) at one instant; current is + when charging."""

    voltage_v: float | None = None
    current_a: float | None = None
    temperature_c: float | None = None
    soc_pct: float | None = None
    soh_pct: float | None = None
    charge_voltage_v: float | None = None
    charge_current_a: float | None = None
    discharge_current_a: float | None = None
    discharge_voltage_v: float | None = None
    charge_enable: bool | None = None
    discharge_enable: bool | None = None
    force_charge: bool | None = None
    full_charge_request: bool | None = None
    cells_v: list[float] | None = None
    cell_min_v: float | None = None
    cell_max_v: float | None = None
    cell_min_id: str | None = None
    cell_max_id: str | None = None
    temperatures_c: list[float] | None = None
    cell_temp_min_c: float | None = None
    cell_temp_max_c: float | None = None
    capacity_ah: float | None = None
    remaining_ah: float | None = None
    installed_capacity_ah: float | None = None
    cycles: int | None = None
    modules: int | None = None
    modules_blocking_charge: int | None = None
    modules_blocking_discharge: int | None = None
    modules_offline: int | None = None
    charged_kwh: float | None = None
    discharged_kwh: float | None = None
    manufacturer: str | None = None
    product: str | None = None
    serial: str | None = None
    firmware: str | None = None
    hardware: str | None = None
    alarms: list[str] | None = None
    warnings: list[str] | None = None
    packs: list[BatteryState] | None = field(default=None)

    # -- conversion -------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON object: absent fields are omitted, never defaulted."""
        out: dict[str, Any] = {}
        for name in FIELD_NAMES:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "packs":
                out[name] = [p.to_dict() for p in value]
            elif isinstance(value, list):
                out[name] = list(value)
            else:
                out[name] = value
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "") -> BatteryState:
        """Validate and build; a bad key or type raises StateError naming it."""
        if not isinstance(data, dict):
            raise StateError(
                f"{where or 'state'}: expected a JSON object, got {type(data).__name__}"
            )
        values: dict[str, Any] = {}
        for key, raw in data.items():
            path = f"{where}.{key}" if where else key
            kind = _FIELD_KINDS.get(key)
            if kind is None:
                raise StateError(f"unknown key {path!r}")
            if raw is None:
                continue
            values[key] = _coerce(kind, raw, path)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> BatteryState:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(f"invalid JSON: {exc}") from exc
        return cls.from_dict(data)

    def merged(self, updates: dict[str, Any]) -> BatteryState:
        """A copy with the given contract keys replaced (non-contract keys ignored)."""
        result = BatteryState(*_all_values(self))
        for key, value in updates.items():
            if key in _FIELD_KINDS:
                setattr(result, key, value)
        return result


def required(state: BatteryState, key: str, what: str) -> Any:
    """``state.key`` for an encoder that cannot do without it; EncodeError naming both."""
    value = getattr(state, key)
    if value is None:
        raise EncodeError(f"{what}: {key} is missing")
    return value


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(BatteryState))
_all_values = attrgetter(*FIELD_NAMES)  # a shallow copy without copy.copy's slow path

# Value kinds per key: float, int, bool, str, list of float, list of alarm name, packs.
_FLOAT, _INT, _BOOL, _STR, _FLOATS, _ALARMS, _PACKS = range(7)
_FIELD_KINDS: dict[str, int] = {}
for _f in fields(BatteryState):
    _t = str(_f.type)
    if _f.name == "packs":
        _FIELD_KINDS[_f.name] = _PACKS
    elif _f.name in ("alarms", "warnings"):
        _FIELD_KINDS[_f.name] = _ALARMS
    elif _t.startswith("list[float]"):
        _FIELD_KINDS[_f.name] = _FLOATS
    elif _t.startswith("float"):
        _FIELD_KINDS[_f.name] = _FLOAT
    elif _t.startswith("int"):
        _FIELD_KINDS[_f.name] = _INT
    elif _t.startswith("bool"):
        _FIELD_KINDS[_f.name] = _BOOL
    elif _t.startswith("str"):
        _FIELD_KINDS[_f.name] = _STR
    else:  # pragma: no cover - guards against a new field of an unknown type
        raise TypeError(f"no JSON kind for BatteryState.{_f.name}: {_t}")

STATE_KEYS: frozenset[str] = frozenset(_FIELD_KINDS)


def _number(raw: Any, path: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise StateError(f"{path}: expected a number, got {raw!r}")
    value = float(raw)
    if not math.isfinite(value):
        raise StateError(f"{path}: expected a finite number, got {raw!r}")
    return value


def _coerce(kind: int, raw: Any, path: str) -> Any:
    if kind == _FLOAT:
        return _number(raw, path)
    if kind == _INT:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise StateError(f"{path}: expected an integer, got {raw!r}")
        return raw
    if kind == _BOOL:
        if not isinstance(raw, bool):
            raise StateError(f"{path}: expected true or false, got {raw!r}")
        return raw
    if kind == _STR:
        if not isinstance(raw, str):
            raise StateError(f"{path}: expected a string, got {raw!r}")
        return raw
    if not isinstance(raw, list):
        raise StateError(f"{path}: expected a list, got {raw!r}")
    if kind == _FLOATS:
        return [_number(v, f"{path}[{i}]") for i, v in enumerate(raw)]
    if kind == _ALARMS:
        for i, name in enumerate(raw):
            if name not in _ALARM_SET:
                raise StateError(f"{path}[{i}]: unknown alarm name {name!r}")
        return list(raw)
    return [BatteryState.from_dict(p, where=f"{path}[{i}]") for i, p in enumerate(raw)]
