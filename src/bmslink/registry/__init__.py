"""The inverter registry: which bmslink profiles each inverter family accepts, its battery-port
pinout and its known quirks.

The facts live in ``inverters.toml`` (data, with a source for each); this module only loads and
checks them, so a typo in the data fails loudly with the entry and key named instead of
reaching a user as a wrong wiring instruction. An entry may only name profiles bmslink has
(``bmslink.profiles.PROFILES``, looked up when the registry is first loaded), or the names
passed in.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any, Final, Protocol, TypeVar

from bmslink.errors import BmslinkError

__all__ = [
    "CONFIDENCE_LEVELS",
    "PIN_SIGNALS",
    "QUIRK_CODES",
    "BatteryPort",
    "Inverter",
    "Pinout",
    "Quirk",
    "Registry",
    "RegistryError",
    "default_registry",
    "load_registry",
    "registered_profiles",
]

FILE_NAME: Final = "inverters.toml"
SCHEMA_VERSION: Final = 1


def registered_profiles() -> tuple[str, ...]:
    """The profile names an entry may list: the profiles bmslink registers."""
    from bmslink.profiles import PROFILES  # loaded on first use: the CLI starts faster

    return tuple(PROFILES)


CONFIDENCE_LEVELS: Final[tuple[str, ...]] = ("documented", "community", "single-source", "unknown")
"""How far a pinout can be trusted: vendor manual, several community sources that agree, one
source, or nothing found (then no pin may be given)."""

VOLTAGES: Final[tuple[str, ...]] = ("lv", "hv")

PIN_SIGNALS: Final[tuple[str, ...]] = ("can_h", "can_l", "gnd", "rs485_a", "rs485_b")
"""Signal keys of a pinout, in the order they are shown."""

SIGNAL_LABELS: Final[Mapping[str, str]] = {key: key.upper() for key in PIN_SIGNALS}


@dataclass(frozen=True)
class QuirkSpec:
    """What a quirk code means and what kind of ``value`` it carries."""

    meaning: str
    value: str | None = None  # None: no value allowed; "number", "int" or "str": value required


QUIRK_CODES: Final[Mapping[str, QuirkSpec]] = {
    "name_prefix": QuirkSpec(
        "the 0x35E manufacturer name must start with `value` (e.g. PYLON)", "str"
    ),
    "ignores_dvl": QuirkSpec("the inverter ignores the discharge voltage limit (0x351 bytes 6-7)"),
    "cvl_zero_forbidden": QuirkSpec(
        "a charge voltage limit of 0 is read as over-voltage; never send CVL = 0"
    ),
    "stops_charging_at_full_soc": QuirkSpec(
        "charging only stops when the reported SoC reaches 100 % (a source says so)"
    ),
    "dcl_positive": QuirkSpec("the discharge current limit must be sent as a positive value"),
    "ignores_zero_current_limit": QuirkSpec(
        "a 0 A current limit (BYD 0x110) is ignored; stopping needs another signal"
    ),
    "min_frame_interval_s": QuirkSpec(
        "battery frames must not be sent more often than every `value` seconds", "number"
    ),
    "battery_timeout_s": QuirkSpec(
        "the inverter faults or stops after `value` seconds without battery frames", "number"
    ),
    "ignores_extended_ids": QuirkSpec("the inverter ignores extended (29-bit) frames"),
    "needs_own_can_channel": QuirkSpec(
        "the inverter must have a CAN channel of its own (it faults on other traffic)"
    ),
    "needs_send_group": QuirkSpec(
        "Pylon HV answers must use send group `value` (response ids ending in that digit)", "int"
    ),
    "needs_termination": QuirkSpec("the inverter's bus lines must be terminated at its end"),
    "builtin_termination": QuirkSpec(
        "the inverter already terminates the bus; do not add a terminator at its end"
    ),
    "needs_isolation": QuirkSpec(
        "the inverter's CAN lines can sit at a high voltage against earth; isolate the interface"
    ),
    "slow_heartbeat": QuirkSpec(
        "the inverter's own frames are slow; use a long inverter-missing timeout"
    ),
    "force_charge_bit": QuirkSpec(
        "only 0x35C bit `value` triggers a force charge on this inverter", "int"
    ),
}
"""The closed set of quirk codes a checker can act on; an entry with another code is refused."""

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class RegistryError(BmslinkError, ValueError):
    """The registry data is malformed, or a name asked for is not in it; the message says which."""


@dataclass(frozen=True)
class Pinout:
    """A battery/BMS port on an RJ45 socket: which of pins 1..8 carries which signal.

    An empty pinout (confidence ``unknown``) means no public statement was found; callers must
    then tell the user to measure, never assume a layout.
    """

    can_h: int | None = None
    can_l: int | None = None
    gnd: tuple[int, ...] = ()
    rs485_a: tuple[int, ...] = ()
    rs485_b: tuple[int, ...] = ()
    confidence: str = "unknown"
    source: str = ""
    notes: str = ""

    def pins(self) -> dict[int, str]:
        """Pin number 1..8 -> signal label (CAN_H, GND ...) or ``-`` for a pin with no signal."""
        table = {pin: "-" for pin in range(1, 9)}
        for key in PIN_SIGNALS:
            for pin in self.signal_pins(key):
                table[pin] = SIGNAL_LABELS[key]
        return table

    def signal_pins(self, key: str) -> tuple[int, ...]:
        """The pins of one signal key (``can_h``, ``gnd`` ...), empty if not known."""
        value = getattr(self, key)
        if value is None:
            return ()
        if isinstance(value, int):
            return (value,)
        return tuple(value)

    @property
    def known(self) -> bool:
        """True when at least one pin is given."""
        return any(self.signal_pins(key) for key in PIN_SIGNALS)

    @property
    def needs_checking(self) -> bool:
        """True when the pinout is too weakly sourced to wire without a meter."""
        return self.confidence in ("single-source", "unknown")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, including a ``pins`` map "1".."8" -> signal."""
        return {
            "can_h": self.can_h,
            "can_l": self.can_l,
            "gnd": list(self.gnd),
            "rs485_a": list(self.rs485_a),
            "rs485_b": list(self.rs485_b),
            "confidence": self.confidence,
            "source": self.source,
            "notes": self.notes,
            "pins": {str(pin): signal for pin, signal in self.pins().items()},
        }


@dataclass(frozen=True)
class Quirk:
    """A known deviation of one inverter, by a stable code (see ``QUIRK_CODES``)."""

    code: str
    text: str
    source: str
    value: str | int | float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"code": self.code, "value": self.value, "text": self.text, "source": self.source}


@dataclass(frozen=True)
class Inverter:
    """One inverter family: accepted profiles, bit rate, menu setting, battery port, quirks."""

    name: str
    title: str
    voltage: str
    profiles: tuple[str, ...]
    source: str
    aliases: tuple[str, ...] = ()
    rs485: tuple[str, ...] = ()
    bitrate: int | None = None
    setting: str | None = None
    notes: str = ""
    pinout: Pinout = field(default_factory=Pinout)
    quirks: tuple[Quirk, ...] = ()

    @property
    def recommended_profile(self) -> str | None:
        """The profile to try first (profiles are listed best first); None if bmslink has none."""
        return self.profiles[0] if self.profiles else None

    def quirk(self, code: str) -> Quirk | None:
        """The quirk with this code, or None when the inverter is not known to have it."""
        return next((q for q in self.quirks if q.code == code), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.name,
            "title": self.title,
            "aliases": list(self.aliases),
            "voltage": self.voltage,
            "profiles": list(self.profiles),
            "recommended_profile": self.recommended_profile,
            "rs485": list(self.rs485),
            "bitrate": self.bitrate,
            "setting": self.setting,
            "notes": self.notes,
            "source": self.source,
            "pinout": self.pinout.to_dict(),
            "quirks": [q.to_dict() for q in self.quirks],
        }


@dataclass(frozen=True)
class BatteryPort:
    """One battery/BMS communication port, for choosing or making the cable to an inverter."""

    name: str
    title: str
    port: str
    source: str
    aliases: tuple[str, ...] = ()
    notes: str = ""
    pinout: Pinout = field(default_factory=Pinout)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.name,
            "title": self.title,
            "aliases": list(self.aliases),
            "port": self.port,
            "notes": self.notes,
            "source": self.source,
            "pinout": self.pinout.to_dict(),
        }


@dataclass(frozen=True)
class Registry:
    """The loaded, checked registry: look families up by name or alias, case-insensitive."""

    inverters: tuple[Inverter, ...]
    batteries: tuple[BatteryPort, ...]
    known_profiles: tuple[str, ...] = field(default_factory=registered_profiles)

    def find_inverter(self, name: str) -> Inverter:
        """The inverter family called ``name`` (or one of its aliases)."""
        return _find(self.inverters, name, "inverter")

    def find_battery(self, name: str) -> BatteryPort:
        """The battery port called ``name`` (or one of its aliases)."""
        return _find(self.batteries, name, "battery")

    def inverters_for_profile(self, profile: str) -> list[Inverter]:
        """Families that accept ``profile``, in file order; an unknown profile is an error."""
        wanted = profile.strip().lower()
        if wanted not in self.known_profiles:
            raise RegistryError(
                f"unknown profile {profile!r}{_suggest(wanted, self.known_profiles)}; "
                f"known: {', '.join(self.known_profiles)}"
            )
        return [inv for inv in self.inverters if wanted in inv.profiles]


class _Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...


_Entry = TypeVar("_Entry", bound=_Named)


def _find(entries: tuple[_Entry, ...], name: str, kind: str) -> _Entry:
    wanted = name.strip().lower()
    for entry in entries:
        if wanted == entry.name or wanted in entry.aliases:
            return entry
    keys = [key for item in entries for key in (item.name, *item.aliases)]
    raise RegistryError(f"unknown {kind} {name!r}{_suggest(wanted, keys)}")


def _suggest(wanted: str, keys: Iterable[str]) -> str:
    close = difflib.get_close_matches(wanted, list(keys), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------

# The keys an entry may have are exactly the fields of the class it becomes.
_INVERTER_KEYS: Final = frozenset(f.name for f in fields(Inverter))
_BATTERY_KEYS: Final = frozenset(f.name for f in fields(BatteryPort))
_PINOUT_KEYS: Final = frozenset(f.name for f in fields(Pinout))
_QUIRK_KEYS: Final = frozenset(f.name for f in fields(Quirk))


def load_registry(text: str | None = None, known_profiles: Iterable[str] | None = None) -> Registry:
    """Parse and check registry TOML; ``None`` loads the shipped ``inverters.toml`` (cached).

    ``known_profiles`` defaults to the profiles bmslink registers.
    """
    if known_profiles is None and text is None:
        return default_registry()
    profiles = registered_profiles() if known_profiles is None else tuple(known_profiles)
    if text is None:
        text = _shipped_text()
    return _parse(text, profiles)


@functools.cache
def default_registry() -> Registry:
    """The shipped registry, parsed once per process."""
    return _parse(_shipped_text(), registered_profiles())


def _shipped_text() -> str:
    try:
        return resources.files(__name__).joinpath(FILE_NAME).read_text(encoding="utf-8")
    except OSError as exc:  # a broken install: say which file is missing
        raise RegistryError(f"{FILE_NAME}: cannot read the shipped registry: {exc}") from exc


def _parse(text: str, known_profiles: tuple[str, ...]) -> Registry:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{FILE_NAME}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"schema", "inverter", "battery"})
    if unknown:
        raise RegistryError(f"{FILE_NAME}: unknown top-level key {unknown[0]!r}")
    if data.get("schema") != SCHEMA_VERSION:
        raise RegistryError(
            f"{FILE_NAME}: schema must be {SCHEMA_VERSION}, got {data.get('schema')!r}"
        )
    inverters = tuple(
        _inverter(_Ctx("inverter", i, raw), known_profiles)
        for i, raw in enumerate(_table_list(data, "inverter"), start=1)
    )
    batteries = tuple(
        _battery(_Ctx("battery", i, raw))
        for i, raw in enumerate(_table_list(data, "battery"), start=1)
    )
    _check_unique("inverter", inverters)
    _check_unique("battery", batteries)
    return Registry(inverters=inverters, batteries=batteries, known_profiles=known_profiles)


def _table_list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise RegistryError(f"{FILE_NAME}: {key} must be an array of tables ([[{key}]])")
    return value


class _Ctx:
    """One entry being read: builds error messages that name the entry and the key."""

    def __init__(self, kind: str, index: int, raw: object) -> None:
        self.kind = kind
        if not isinstance(raw, dict):
            raise RegistryError(f"{FILE_NAME}: {kind} #{index}: must be a table")
        self.raw: dict[str, Any] = raw
        name = raw.get("name")
        self.label = f"{kind} {name!r}" if isinstance(name, str) and name else f"{kind} #{index}"

    def error(self, key: str, problem: str) -> RegistryError:
        return RegistryError(f"{FILE_NAME}: {self.label}: {key} {problem}")

    def check_keys(self, table: Mapping[str, Any], allowed: frozenset[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.error(f"{prefix}{key}", "is not a known key")

    def string(
        self,
        key: str,
        *,
        required: bool,
        table: Mapping[str, Any] | None = None,
        prefix: str = "",
    ) -> str | None:
        source = self.raw if table is None else table
        value = source.get(key)
        if value is None:
            if required:
                raise self.error(f"{prefix}{key}", "is missing")
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.error(f"{prefix}{key}", "must be a non-empty string")
        return value.strip()

    def strings(self, key: str, *, required: bool) -> tuple[str, ...]:
        value = self.raw.get(key)
        if value is None:
            if required:
                raise self.error(key, "is missing (use [] for none)")
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, "must be a list of non-empty strings")
        if len(set(value)) != len(value):
            raise self.error(key, "lists the same item twice")
        return tuple(value)


def _name_and_aliases(ctx: _Ctx) -> tuple[str, tuple[str, ...]]:
    name = ctx.string("name", required=True)
    assert name is not None
    if not _SLUG.match(name):
        raise ctx.error("name", "must be lower-case letters, digits and '-'")
    aliases = ctx.strings("aliases", required=False)
    for alias in aliases:
        if not _SLUG.match(alias):
            raise ctx.error("aliases", f"{alias!r} must be lower-case letters, digits and '-'")
        if alias == name:
            raise ctx.error("aliases", f"{alias!r} repeats the name")
    return name, aliases


def _inverter(ctx: _Ctx, known_profiles: tuple[str, ...]) -> Inverter:
    ctx.check_keys(ctx.raw, _INVERTER_KEYS, "")
    name, aliases = _name_and_aliases(ctx)
    title = ctx.string("title", required=True)
    voltage = ctx.string("voltage", required=True)
    if voltage not in VOLTAGES:
        raise ctx.error("voltage", f"must be one of {', '.join(VOLTAGES)}")
    profiles = ctx.strings("profiles", required=True)
    for profile in profiles:
        if profile not in known_profiles:
            raise ctx.error(
                "profiles",
                f"names unknown profile {profile!r}{_suggest(profile, known_profiles)}; "
                f"known: {', '.join(known_profiles)}",
            )
    bitrate = ctx.raw.get("bitrate")
    if bitrate is not None and (
        not isinstance(bitrate, int) or isinstance(bitrate, bool) or bitrate <= 0
    ):
        raise ctx.error("bitrate", "must be a positive integer (bit/s)")
    source = ctx.string("source", required=True)
    assert title is not None and voltage is not None and source is not None
    quirks_raw = ctx.raw.get("quirks", [])
    if not isinstance(quirks_raw, list):
        raise ctx.error("quirks", "must be an array of tables ([[inverter.quirks]])")
    quirks = tuple(_quirk(ctx, i, q) for i, q in enumerate(quirks_raw, start=1))
    codes = [q.code for q in quirks]
    for code in codes:
        if codes.count(code) > 1:
            raise ctx.error("quirks", f"lists code {code!r} twice")
    return Inverter(
        name=name,
        title=title,
        aliases=aliases,
        voltage=voltage,
        profiles=profiles,
        rs485=ctx.strings("rs485", required=False),
        bitrate=bitrate,
        setting=ctx.string("setting", required=False),
        notes=ctx.string("notes", required=False) or "",
        source=source,
        pinout=_pinout(ctx),
        quirks=quirks,
    )


def _battery(ctx: _Ctx) -> BatteryPort:
    ctx.check_keys(ctx.raw, _BATTERY_KEYS, "")
    name, aliases = _name_and_aliases(ctx)
    title = ctx.string("title", required=True)
    port = ctx.string("port", required=True)
    source = ctx.string("source", required=True)
    assert title is not None and port is not None and source is not None
    return BatteryPort(
        name=name,
        title=title,
        aliases=aliases,
        port=port,
        notes=ctx.string("notes", required=False) or "",
        source=source,
        pinout=_pinout(ctx),
    )


def _pin(ctx: _Ctx, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8:
        raise ctx.error(f"pinout.{key}", "must be 1..8")
    return value


def _pins(ctx: _Ctx, key: str, value: object) -> tuple[int, ...]:
    """A signal that may sit on several pins: an int or a list of ints."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ctx.error(f"pinout.{key}", "must not be an empty list (leave the key out)")
    pins = tuple(_pin(ctx, key, item) for item in items)
    if len(set(pins)) != len(pins):
        raise ctx.error(f"pinout.{key}", "lists the same pin twice")
    return pins


def _pinout(ctx: _Ctx) -> Pinout:
    raw = ctx.raw.get("pinout")
    if raw is None:
        return Pinout()
    if not isinstance(raw, dict):
        raise ctx.error("pinout", "must be a table")
    ctx.check_keys(raw, _PINOUT_KEYS, "pinout.")
    can_h = None if raw.get("can_h") is None else _pin(ctx, "can_h", raw["can_h"])
    can_l = None if raw.get("can_l") is None else _pin(ctx, "can_l", raw["can_l"])
    pinout = Pinout(
        can_h=can_h,
        can_l=can_l,
        gnd=_pins(ctx, "gnd", raw.get("gnd")),
        rs485_a=_pins(ctx, "rs485_a", raw.get("rs485_a")),
        rs485_b=_pins(ctx, "rs485_b", raw.get("rs485_b")),
        confidence=ctx.string("confidence", required=True, table=raw, prefix="pinout.") or "",
        source=ctx.string("source", required=False, table=raw, prefix="pinout.") or "",
        notes=ctx.string("notes", required=False, table=raw, prefix="pinout.") or "",
    )
    if pinout.confidence not in CONFIDENCE_LEVELS:
        raise ctx.error("pinout.confidence", f"must be one of {', '.join(CONFIDENCE_LEVELS)}")
    seen: dict[int, str] = {}
    for key in PIN_SIGNALS:
        for pin in pinout.signal_pins(key):
            if pin in seen:
                raise ctx.error(f"pinout.{key}", f"reuses pin {pin}, already {seen[pin]}")
            seen[pin] = f"pinout.{key}"
    if (pinout.can_h is None) != (pinout.can_l is None):
        raise ctx.error("pinout.can_h", "and pinout.can_l must be given together")
    if bool(pinout.rs485_a) != bool(pinout.rs485_b):
        raise ctx.error("pinout.rs485_a", "and pinout.rs485_b must be given together")
    if pinout.confidence == "unknown" and pinout.known:
        raise ctx.error("pinout.confidence", "is 'unknown' but pins are given")
    if pinout.confidence != "unknown" and not pinout.known:
        raise ctx.error("pinout.confidence", "must be 'unknown' when no pin is given")
    if pinout.known and not pinout.source:
        raise ctx.error("pinout.source", "is missing (every pin needs a source)")
    return pinout


def _quirk(ctx: _Ctx, index: int, raw: object) -> Quirk:
    where = f"quirks[{index}]"
    if not isinstance(raw, dict):
        raise ctx.error(where, "must be a table")
    ctx.check_keys(raw, _QUIRK_KEYS, f"{where}.")
    code = ctx.string("code", required=True, table=raw, prefix=f"{where}.")
    assert code is not None
    spec = QUIRK_CODES.get(code)
    if spec is None:
        raise ctx.error(
            f"{where}.code",
            f"{code!r} is not a documented quirk code{_suggest(code, QUIRK_CODES)}",
        )
    text = ctx.string("text", required=True, table=raw, prefix=f"{where}.")
    source = ctx.string("source", required=True, table=raw, prefix=f"{where}.")
    assert text is not None and source is not None
    value = raw.get("value")
    if spec.value is None and value is not None:
        raise ctx.error(f"{where}.value", f"is not allowed for {code!r}")
    if spec.value is not None and value is None:
        raise ctx.error(f"{where}.value", f"is required for {code!r}")
    if spec.value == "str" and not (isinstance(value, str) and value):
        raise ctx.error(f"{where}.value", f"must be a non-empty string for {code!r}")
    if spec.value == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        raise ctx.error(f"{where}.value", f"must be an integer for {code!r}")
    if spec.value == "number" and (
        not isinstance(value, int | float) or isinstance(value, bool) or value <= 0
    ):
        raise ctx.error(f"{where}.value", f"must be a positive number for {code!r}")
    assert value is None or isinstance(value, str | int | float)
    return Quirk(code=code, text=text, source=source, value=value)


def _check_unique(kind: str, entries: Iterable[_Named]) -> None:
    owner: dict[str, str] = {}
    for entry in entries:
        for key, what in [(entry.name, "name"), *((a, "aliases") for a in entry.aliases)]:
            if key in owner:
                raise RegistryError(
                    f"{FILE_NAME}: {kind} {entry.name!r}: {what} {key!r} is already used by "
                    f"{kind} {owner[key]!r}"
                )
            owner[key] = entry.name
