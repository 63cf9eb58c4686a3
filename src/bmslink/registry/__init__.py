"""The inverter registry: which bmslink profiles each inverter family accepts, its battery-port
pinout and its known quirks; and the BMS side: each BMS's communication ports.

The facts live in ``inverters.toml`` and ``bms_ports.toml`` (data, with a source for each); this
module only loads and checks them, so a typo in the data fails loudly with the file, entry and
key named instead of reaching a user as a wrong wiring instruction. An entry may only name
profiles bmslink has (``bmslink.profiles.PROFILES``, looked up when the registry is first
loaded), or the names passed in.

Choices for ``bms_ports.toml`` (the issue is silent): one ``[[bms]]`` entry per BMS family with
its ports as ``[[bms.ports]]`` (listed best first: the port meant for the inverter comes first
for its bus); a port's pins use the same keys and rules as an inverter's ``pinout`` and may only
be given for an RJ45 connector (pins are RJ45 positions); ``bridge`` names the ``bmslink bridge
--bms`` type that reads the BMS, checked against ``bmslink.bms.registry.BMS_TYPES``.

``bms_ports.toml`` is the one place for battery/BMS ports: the ``[[battery]]`` entries that
``inverters.toml`` once held were merged into it, and a file that still has them is refused with
a message saying where they went (not silently ignored, so no port is lost unnoticed).
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
    "BMS_FILE_NAME",
    "BUSES",
    "CONFIDENCE_LEVELS",
    "CONFIDENCE_TEXT",
    "PIN_SIGNALS",
    "QUIRK_CODES",
    "TERMINATION_KINDS",
    "Bms",
    "BmsPort",
    "Inverter",
    "Pinout",
    "Quirk",
    "Registry",
    "RegistryError",
    "Termination",
    "default_registry",
    "load_bms_ports",
    "load_registry",
    "registered_bridge_types",
    "registered_profiles",
]

FILE_NAME: Final = "inverters.toml"
BMS_FILE_NAME: Final = "bms_ports.toml"
SCHEMA_VERSION: Final = 1


def registered_profiles() -> tuple[str, ...]:
    """The profile names an entry may list: the profiles bmslink registers."""
    from bmslink.profiles import PROFILES  # loaded on first use: the CLI starts faster

    return tuple(PROFILES)


def registered_bridge_types() -> tuple[str, ...]:
    """The BMS types ``bmslink bridge --bms TYPE:PORT`` can read (a BMS entry's ``bridge``)."""
    from bmslink.bms.registry import BMS_TYPES  # names only; the protocols load on use

    return tuple(BMS_TYPES)


CONFIDENCE_TEXT: Final[Mapping[str, str]] = {
    "documented": "documented (vendor manual)",
    "community": "community (several public sources agree)",
    "single-source": "single source only",
    "unknown": "unknown (no public statement found)",
}
"""How far a pinout can be trusted, each level as the CLI explains it (with ``unknown`` no pin
may be given)."""

CONFIDENCE_LEVELS: Final[tuple[str, ...]] = tuple(CONFIDENCE_TEXT)

VOLTAGES: Final[tuple[str, ...]] = ("lv", "hv")

PIN_SIGNALS: Final[tuple[str, ...]] = ("can_h", "can_l", "gnd", "rs485_a", "rs485_b")
"""Signal keys of a pinout, in the order they are shown."""

SIGNAL_LABELS: Final[Mapping[str, str]] = {key: key.upper() for key in PIN_SIGNALS}

BUSES: Final[tuple[str, ...]] = ("can", "rs485")
"""The buses a BMS port is for (``bmslink cable --bus``)."""

RJ45: Final = "RJ45"

TERMINATION_KINDS: Final[tuple[str, ...]] = ("always", "switch", "none", "unknown")
"""Whether a BMS terminates its end of the CAN bus: always (built in), switch (a DIP switch or
jumper, said where in ``notes``), none (add a resistor), unknown (nothing found: measure)."""


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
class BmsPort:
    """One communication port of a BMS: its bus, connector and (for RJ45) pins."""

    name: str
    bus: str
    connector: str = RJ45
    pinout: Pinout = field(default_factory=Pinout)

    @property
    def rj45(self) -> bool:
        """True when the pins are RJ45 positions (other connectors never carry pins here)."""
        return self.connector == RJ45

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: the pinout's keys flattened into the port."""
        return {"name": self.name, "bus": self.bus, "connector": self.connector} | (
            self.pinout.to_dict()
        )


@dataclass(frozen=True)
class Termination:
    """What is known about a BMS's own CAN terminator (see ``TERMINATION_KINDS``)."""

    builtin: str = "unknown"
    notes: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"builtin": self.builtin, "notes": self.notes, "source": self.source}


@dataclass(frozen=True)
class Bms:
    """One BMS family: its ports, the bmslink profiles it can be set to send, termination."""

    name: str
    title: str
    source: str
    ports: tuple[BmsPort, ...]
    aliases: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    profiles_source: str = ""
    settings: Mapping[str, str] = field(default_factory=dict)
    bridge: str | None = None
    notes: str = ""
    termination: Termination = field(default_factory=Termination)

    def port_for(self, bus: str) -> BmsPort | None:
        """The first (preferred) port of ``bus``, or None when the BMS has none."""
        return next((port for port in self.ports if port.bus == bus), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.name,
            "title": self.title,
            "aliases": list(self.aliases),
            "profiles": list(self.profiles),
            "profiles_source": self.profiles_source,
            "settings": dict(self.settings),
            "bridge": self.bridge,
            "notes": self.notes,
            "source": self.source,
            "termination": self.termination.to_dict(),
            "ports": [port.to_dict() for port in self.ports],
        }


@dataclass(frozen=True)
class Registry:
    """The loaded, checked registry: look families up by name or alias, case-insensitive."""

    inverters: tuple[Inverter, ...]
    known_profiles: tuple[str, ...] = field(default_factory=registered_profiles)
    bmss: tuple[Bms, ...] = ()

    def find_inverter(self, name: str) -> Inverter:
        """The inverter family called ``name`` (or one of its aliases)."""
        return _find(self.inverters, name, "inverter")

    def find_bms(self, name: str) -> Bms:
        """The BMS family called ``name`` (or one of its aliases), from ``bms_ports.toml``."""
        return _find(self.bmss, name, "BMS")

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
_PINOUT_KEYS: Final = frozenset(f.name for f in fields(Pinout))
_QUIRK_KEYS: Final = frozenset(f.name for f in fields(Quirk))
_BMS_KEYS: Final = frozenset(f.name for f in fields(Bms))
_BMS_PORT_KEYS: Final = frozenset({"name", "bus", "connector"} | set(_PINOUT_KEYS))
_TERMINATION_KEYS: Final = frozenset(f.name for f in fields(Termination))


def load_registry(
    text: str | None = None,
    known_profiles: Iterable[str] | None = None,
    bms_text: str | None = None,
) -> Registry:
    """Parse and check registry TOML; all ``None`` loads the shipped files (cached).

    ``text`` is ``inverters.toml``, ``bms_text`` is ``bms_ports.toml``. The shipped BMS file is
    used only when ``text`` is the shipped one too: a test's own inverters never mix with the
    shipped BMSs (given ``text`` and no ``bms_text``, the registry has no BMS). ``known_profiles``
    defaults to the profiles bmslink registers.
    """
    if known_profiles is None and text is None and bms_text is None:
        return default_registry()
    profiles = registered_profiles() if known_profiles is None else tuple(known_profiles)
    if text is None:
        text = _shipped_text(FILE_NAME)
        if bms_text is None:
            bms_text = _shipped_text(BMS_FILE_NAME)
    return _build(text, bms_text, profiles)


def load_bms_ports(
    text: str | None = None, known_profiles: Iterable[str] | None = None
) -> tuple[Bms, ...]:
    """Parse and check ``bms_ports.toml`` text alone; ``None`` loads the shipped file."""
    if text is None and known_profiles is None:
        return default_registry().bmss
    profiles = registered_profiles() if known_profiles is None else tuple(known_profiles)
    return _parse_bms(_shipped_text(BMS_FILE_NAME) if text is None else text, profiles)


@functools.cache
def default_registry() -> Registry:
    """The shipped registry (both files), parsed once per process."""
    return _build(_shipped_text(FILE_NAME), _shipped_text(BMS_FILE_NAME), registered_profiles())


def _build(text: str, bms_text: str | None, known_profiles: tuple[str, ...]) -> Registry:
    """A registry from ``inverters.toml`` text and (None: no BMS) ``bms_ports.toml`` text."""
    inverters = _parse(text, known_profiles)
    bmss = () if bms_text is None else _parse_bms(bms_text, known_profiles)
    return Registry(inverters=inverters, known_profiles=known_profiles, bmss=bmss)


def _shipped_text(file_name: str = FILE_NAME) -> str:
    try:
        return resources.files(__name__).joinpath(file_name).read_text(encoding="utf-8")
    except OSError as exc:  # a broken install: say which file is missing
        raise RegistryError(f"{file_name}: cannot read the shipped registry: {exc}") from exc


def _parse(text: str, known_profiles: tuple[str, ...]) -> tuple[Inverter, ...]:
    inverters = tuple(
        _inverter(_Ctx("inverter", i, raw), known_profiles)
        for i, raw in enumerate(_entries(text, FILE_NAME, "inverter"), start=1)
    )
    _check_unique("inverter", inverters)
    return inverters


def _parse_bms(text: str, known_profiles: tuple[str, ...]) -> tuple[Bms, ...]:
    bridges = registered_bridge_types()
    bmss = tuple(
        _bms(_Ctx("bms", i, raw, BMS_FILE_NAME), known_profiles, bridges)
        for i, raw in enumerate(_entries(text, BMS_FILE_NAME, "bms"), start=1)
    )
    _check_unique("bms", bmss, BMS_FILE_NAME)
    return bmss


def _entries(text: str, file_name: str, key: str) -> list[Any]:
    """The ``[[key]]`` tables of a registry file, once it is TOML of this schema with no other
    top-level key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{file_name}: not valid TOML: {exc}") from exc
    if file_name == FILE_NAME and "battery" in data:
        raise RegistryError(
            f"{FILE_NAME}: [[battery]] entries are no longer read here: battery/BMS ports live "
            f"in {BMS_FILE_NAME} as [[bms]] entries with [[bms.ports]]"
        )
    unknown = sorted(set(data) - {"schema", key})
    if unknown:
        raise RegistryError(f"{file_name}: unknown top-level key {unknown[0]!r}")
    if data.get("schema") != SCHEMA_VERSION:
        raise RegistryError(
            f"{file_name}: schema must be {SCHEMA_VERSION}, got {data.get('schema')!r}"
        )
    value = data.get(key, [])
    if not isinstance(value, list):
        raise RegistryError(f"{file_name}: {key} must be an array of tables ([[{key}]])")
    return value


class _Ctx:
    """One entry being read: builds error messages that name the entry and the key."""

    def __init__(self, kind: str, index: int, raw: object, file_name: str = FILE_NAME) -> None:
        self.kind = kind
        self.file_name = file_name
        if not isinstance(raw, dict):
            raise RegistryError(f"{file_name}: {kind} #{index}: must be a table")
        self.raw: dict[str, Any] = raw
        name = raw.get("name")
        self.label = f"{kind} {name!r}" if isinstance(name, str) and name else f"{kind} #{index}"

    def error(self, key: str, problem: str) -> RegistryError:
        return RegistryError(f"{self.file_name}: {self.label}: {key} {problem}")

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


def _profiles(ctx: _Ctx, known_profiles: tuple[str, ...]) -> tuple[str, ...]:
    """An entry's ``profiles``: each must be one bmslink has (a close name is suggested)."""
    profiles = ctx.strings("profiles", required=True)
    for profile in profiles:
        if profile not in known_profiles:
            raise ctx.error(
                "profiles",
                f"names unknown profile {profile!r}{_suggest(profile, known_profiles)}; "
                f"known: {', '.join(known_profiles)}",
            )
    return profiles


def _no_repeats(ctx: _Ctx, key: str, what: str, values: list[str]) -> None:
    """Refuse a sub-table list (``key``) where two items share a code or name."""
    for value in values:
        if values.count(value) > 1:
            raise ctx.error(key, f"{what} {value!r} twice")


def _inverter(ctx: _Ctx, known_profiles: tuple[str, ...]) -> Inverter:
    ctx.check_keys(ctx.raw, _INVERTER_KEYS, "")
    name, aliases = _name_and_aliases(ctx)
    title = ctx.string("title", required=True)
    voltage = ctx.string("voltage", required=True)
    if voltage not in VOLTAGES:
        raise ctx.error("voltage", f"must be one of {', '.join(VOLTAGES)}")
    profiles = _profiles(ctx, known_profiles)
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
    _no_repeats(ctx, "quirks", "lists code", [q.code for q in quirks])
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


def _pin(ctx: _Ctx, where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8:
        raise ctx.error(where, "must be 1..8")
    return value


def _pins(ctx: _Ctx, where: str, value: object) -> tuple[int, ...]:
    """A signal that may sit on several pins: an int or a list of ints."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ctx.error(where, "must not be an empty list (leave the key out)")
    pins = tuple(_pin(ctx, where, item) for item in items)
    if len(set(pins)) != len(pins):
        raise ctx.error(where, "lists the same pin twice")
    return pins


def _pinout(ctx: _Ctx) -> Pinout:
    raw = ctx.raw.get("pinout")
    if raw is None:
        return Pinout()
    if not isinstance(raw, dict):
        raise ctx.error("pinout", "must be a table")
    ctx.check_keys(raw, _PINOUT_KEYS, "pinout.")
    return _pinout_fields(ctx, raw, "pinout.")


def _pinout_fields(ctx: _Ctx, raw: Mapping[str, Any], prefix: str) -> Pinout:
    """The pin keys of ``raw`` (a pinout table or a BMS port), checked; keys named with
    ``prefix`` (``pinout.`` or ``ports[2].``) in errors."""
    can_h = None if raw.get("can_h") is None else _pin(ctx, f"{prefix}can_h", raw["can_h"])
    can_l = None if raw.get("can_l") is None else _pin(ctx, f"{prefix}can_l", raw["can_l"])
    pinout = Pinout(
        can_h=can_h,
        can_l=can_l,
        gnd=_pins(ctx, f"{prefix}gnd", raw.get("gnd")),
        rs485_a=_pins(ctx, f"{prefix}rs485_a", raw.get("rs485_a")),
        rs485_b=_pins(ctx, f"{prefix}rs485_b", raw.get("rs485_b")),
        confidence=ctx.string("confidence", required=True, table=raw, prefix=prefix) or "",
        source=ctx.string("source", required=False, table=raw, prefix=prefix) or "",
        notes=ctx.string("notes", required=False, table=raw, prefix=prefix) or "",
    )
    if pinout.confidence not in CONFIDENCE_LEVELS:
        raise ctx.error(f"{prefix}confidence", f"must be one of {', '.join(CONFIDENCE_LEVELS)}")
    seen: dict[int, str] = {}
    for key in PIN_SIGNALS:
        for pin in pinout.signal_pins(key):
            if pin in seen:
                raise ctx.error(f"{prefix}{key}", f"reuses pin {pin}, already {seen[pin]}")
            seen[pin] = f"{prefix}{key}"
    if (pinout.can_h is None) != (pinout.can_l is None):
        raise ctx.error(f"{prefix}can_h", f"and {prefix}can_l must be given together")
    if bool(pinout.rs485_a) != bool(pinout.rs485_b):
        raise ctx.error(f"{prefix}rs485_a", f"and {prefix}rs485_b must be given together")
    if pinout.confidence == "unknown" and pinout.known:
        raise ctx.error(f"{prefix}confidence", "is 'unknown' but pins are given")
    if pinout.confidence != "unknown" and not pinout.known:
        raise ctx.error(f"{prefix}confidence", "must be 'unknown' when no pin is given")
    if pinout.known and not pinout.source:
        raise ctx.error(f"{prefix}source", "is missing (every pin needs a source)")
    return pinout


def _bms(ctx: _Ctx, known_profiles: tuple[str, ...], bridges: tuple[str, ...]) -> Bms:
    ctx.check_keys(ctx.raw, _BMS_KEYS, "")
    name, aliases = _name_and_aliases(ctx)
    title = ctx.string("title", required=True)
    source = ctx.string("source", required=True)
    assert title is not None and source is not None
    profiles = _profiles(ctx, known_profiles)
    profiles_source = ctx.string("profiles_source", required=bool(profiles)) or ""
    settings_raw = ctx.raw.get("settings", {})
    if not isinstance(settings_raw, dict):
        raise ctx.error("settings", "must be a table of profile = menu text")
    settings: dict[str, str] = {}
    for profile, text in settings_raw.items():
        if profile not in profiles:
            raise ctx.error(f"settings.{profile}", "is not one of this entry's profiles")
        if not isinstance(text, str) or not text.strip():
            raise ctx.error(f"settings.{profile}", "must be a non-empty string")
        settings[profile] = text.strip()
    bridge = ctx.string("bridge", required=False)
    if bridge is not None and bridge not in bridges:
        raise ctx.error(
            "bridge", f"{bridge!r} is not a bmslink bridge BMS type; known: {', '.join(bridges)}"
        )
    ports_raw = ctx.raw.get("ports")
    if not isinstance(ports_raw, list) or not ports_raw:
        raise ctx.error("ports", "must be a non-empty array of tables ([[bms.ports]])")
    ports = tuple(_bms_port(ctx, i, raw) for i, raw in enumerate(ports_raw, start=1))
    _no_repeats(ctx, "ports", "names port", [port.name for port in ports])
    return Bms(
        name=name,
        title=title,
        aliases=aliases,
        source=source,
        ports=ports,
        profiles=profiles,
        profiles_source=profiles_source,
        settings=settings,
        bridge=bridge,
        notes=ctx.string("notes", required=False) or "",
        termination=_termination(ctx),
    )


def _bms_port(ctx: _Ctx, index: int, raw: object) -> BmsPort:
    where = f"ports[{index}]."
    if not isinstance(raw, dict):
        raise ctx.error(f"ports[{index}]", "must be a table")
    ctx.check_keys(raw, _BMS_PORT_KEYS, where)
    name = ctx.string("name", required=True, table=raw, prefix=where)
    bus = ctx.string("bus", required=True, table=raw, prefix=where)
    connector = ctx.string("connector", required=False, table=raw, prefix=where) or RJ45
    assert name is not None and bus is not None
    if bus not in BUSES:
        raise ctx.error(f"{where}bus", f"must be one of {', '.join(BUSES)}")
    pinout = _pinout_fields(ctx, raw, where)
    if pinout.known and connector != RJ45:
        raise ctx.error(f"{where}connector", f"is {connector!r}: pins may only be given for RJ45")
    return BmsPort(name=name, bus=bus, connector=connector, pinout=pinout)


def _termination(ctx: _Ctx) -> Termination:
    raw = ctx.raw.get("termination")
    if raw is None:
        return Termination()
    if not isinstance(raw, dict):
        raise ctx.error("termination", "must be a table")
    ctx.check_keys(raw, _TERMINATION_KEYS, "termination.")
    builtin = ctx.string("builtin", required=True, table=raw, prefix="termination.")
    if builtin not in TERMINATION_KINDS:
        raise ctx.error("termination.builtin", f"must be one of {', '.join(TERMINATION_KINDS)}")
    source = ctx.string("source", required=builtin != "unknown", table=raw, prefix="termination.")
    return Termination(
        builtin=builtin,
        notes=ctx.string("notes", required=False, table=raw, prefix="termination.") or "",
        source=source or "",
    )


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


def _check_unique(kind: str, entries: Iterable[_Named], file_name: str = FILE_NAME) -> None:
    owner: dict[str, str] = {}
    for entry in entries:
        for key, what in [(entry.name, "name"), *((a, "aliases") for a in entry.aliases)]:
            if key in owner:
                raise RegistryError(
                    f"{file_name}: {kind} {entry.name!r}: {what} {key!r} is already used by "
                    f"{kind} {owner[key]!r}"
                )
            owner[key] = entry.name
