"""Which cable joins a BMS to an inverter: pure functions from registry data to a verdict.

A wrong cable can put a signal on a supply or enable pin, so the rules only ever draw a pin that
the registry states on both sides; anything else is reported as ``unknown`` with the side and
signal named and how to measure it.

Verdicts (``VERDICTS``):

- ``no_port``: one side has no port of the bus. A BMS has one when a ``[[bms.ports]]`` entry is
  of that bus (the first such port is used: ports are listed best first). The inverter registry
  has one port per family and no bus list, so it is read from the entry: an inverter has a CAN
  port unless its entry lists RS485 protocols only (no bmslink profile, bit rate or CAN pin:
  Fronius GEN24, Vevor); it has an RS485 port when it lists an RS485 protocol or RS485 pins.
- ``unknown``: a needed signal (CAN_H and CAN_L, or RS485 A and B) has no pin on one side; no
  wire is drawn at all, not even the known ones, so a half-guessed cable is never shown.
- ``straight`` or ``custom`` otherwise. GND is wired only when both sides state a ground pin.

Straight versus custom (the issue leaves the edge cases open; decided here): a standard
straight-through patch cable joins every pin n to pin n. It is ``straight`` only when that
joins nothing the custom cable would not: every needed signal (and GND, when wired) shares a
pin on both sides, and every pin that either side states is the same wired signal on both
sides. Anything else makes it ``custom``, with one note per pin saying what a straight cable
would also join:

- a pin with two different known signals (CAN_H to CAN_L, RS485_B to GND ...);
- a pin stated on one side only: the other side's use of that pin is merely unstated, but it is
  exactly where sockets hide enable lines, SYNC pairs and supplies (SMA's pins 3/6 carry SYNC,
  Pylontech wants pins 1-3 left free), so it is treated as a conflict, not a caution;
- a pin that carries the same signal on both sides but is not part of this cable (the pack-chain
  RS485 of a Seplos CAN socket meeting an inverter's RS485 pins in a CAN cable).

Termination advice uses the inverter's ``builtin_termination`` / ``needs_termination`` quirks and
the BMS's ``termination`` entry; what nobody states is left to the 60-ohm measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from bmslink.registry import Bms, BmsPort, Inverter, Pinout, Registry

__all__ = [
    "BUS_LABELS",
    "RS485_TERMINATION",
    "T568B",
    "VERDICTS",
    "CablePlan",
    "Missing",
    "ProfileAdvice",
    "Wire",
    "bms_profiles",
    "build_hint",
    "diagram",
    "inverter_has_bus",
    "pinout_advice",
    "plan_cable",
    "profile_advice",
    "termination_advice",
    "termination_lines",
]

VERDICTS: Final[tuple[str, ...]] = ("straight", "custom", "unknown", "no_port")
"""Possible verdicts; ``straight`` and ``custom`` mean a cable can be made (exit status 0)."""

NEEDED: Final[dict[str, tuple[str, ...]]] = {
    "can": ("can_h", "can_l"),
    "rs485": ("rs485_a", "rs485_b"),
}
"""The signals a working link of each bus cannot do without."""

BUS_LABELS: Final[dict[str, str]] = {"can": "CAN", "rs485": "RS485"}

T568B: Final[dict[int, str]] = {
    1: "white-orange",
    2: "orange",
    3: "white-green",
    4: "blue",
    5: "white-blue",
    6: "green",
    7: "white-brown",
    8: "brown",
}
"""Wire colour at each pin of a T-568B patch cable (the usual one)."""

MEASURE: Final[dict[str, str]] = {
    "can": (
        "with the device on and its bus active, measure DC against the port's GND pin: CAN_H "
        "sits about 2.5-3.5 V, CAN_L about 1.5-2.5 V (both about 2.5 V when idle); a pin above "
        "about 5 V is a supply or enable line and must not meet a CAN transceiver"
    ),
    "rs485": (
        "with the device on and the bus idle, measure DC between the two candidate pins: a few "
        "hundred mV, the more positive one is usually B (D+); vendors swap the A/B labels, and "
        "swapping A and B does no harm, so if the link stays silent swap them"
    ),
}

CAN_60_OHM: Final = (
    "CAN needs 120 ohm at each of the two ends of the bus: with everything powered off, CAN_H to "
    "CAN_L should read about 60 ohm (about 120 ohm: one end lacks its terminator; open or "
    "kilo-ohms: neither end is terminated)."
)

RS485_TERMINATION: Final[tuple[str, ...]] = (
    "RS485: a short run (a few metres) usually works unterminated; on long runs (more than "
    "about 10 m) put 120 ohm across A and B at both ends of the line.",
    "Wire A to A and B to B. Vendors swap the A/B labels: if the link stays silent, swap the two "
    "wires (this does no harm).",
)


@dataclass(frozen=True)
class Wire:
    """One wire of the cable: BMS pin to inverter pin, carrying ``signal`` (CAN_H, GND ...)."""

    bms_pin: int
    inverter_pin: int
    signal: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"bms_pin": self.bms_pin, "inverter_pin": self.inverter_pin, "signal": self.signal}


@dataclass(frozen=True)
class Missing:
    """A needed signal with no recorded pin on one side (``bms`` or ``inverter``)."""

    side: str
    signal: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready view."""
        return {"side": self.side, "signal": self.signal}


@dataclass(frozen=True)
class ProfileAdvice:
    """The CAN profiles both sides share (inverter's preference order) and what to set."""

    common: tuple[str, ...]
    bms: tuple[str, ...]
    inverter: tuple[str, ...]
    advice: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "common": list(self.common),
            "bms": list(self.bms),
            "inverter": list(self.inverter),
            "advice": self.advice,
        }


@dataclass(frozen=True)
class CablePlan:
    """Everything ``bmslink cable`` says about one BMS / inverter / bus triple."""

    bms: Bms
    inverter: Inverter
    bus: str
    port: BmsPort | None
    verdict: str
    wires: tuple[Wire, ...] = ()
    missing: tuple[Missing, ...] = ()
    notes: tuple[str, ...] = ()
    termination: tuple[str, ...] = ()
    profiles: ProfileAdvice = field(default_factory=lambda: ProfileAdvice((), (), (), ""))

    @property
    def ok(self) -> bool:
        """True when a cable can be made from what is recorded."""
        return self.verdict in ("straight", "custom")

    def confidence(self) -> dict[str, str | None]:
        """The confidence of each side's pinout (None: that side has no port of the bus)."""
        return {
            "bms": self.port.pinout.confidence if self.port else None,
            "inverter": self.inverter.pinout.confidence
            if inverter_has_bus(self.inverter, self.bus)
            else None,
        }

    def sources(self) -> dict[str, str]:
        """Where each side's pins (or, lacking a pin source, the entry) come from."""
        bms = (self.port.pinout.source if self.port else "") or self.bms.source
        return {"bms": bms, "inverter": self.inverter.pinout.source or self.inverter.source}

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape documented in docs/wiring.md."""
        return {
            "bms": self.bms.name,
            "bms_port": self.port.name if self.port else None,
            "inverter": self.inverter.name,
            "bus": self.bus,
            "verdict": self.verdict,
            "wires": [wire.to_dict() for wire in self.wires],
            "missing": [item.to_dict() for item in self.missing],
            "notes": list(self.notes),
            "termination": list(self.termination),
            "profiles": self.profiles.to_dict(),
            "confidence": self.confidence(),
            "sources": self.sources(),
            "port_notes": {
                "bms": self.port.pinout.notes if self.port else "",
                "inverter": self.inverter.pinout.notes,
            },
        }


def _label(key: str) -> str:
    from bmslink.registry import SIGNAL_LABELS

    return SIGNAL_LABELS[key]


def _stated(pinout: Pinout) -> dict[int, str]:
    """Pin -> signal key, for the pins the pinout states."""
    from bmslink.registry import PIN_SIGNALS

    return {pin: key for key in PIN_SIGNALS for pin in pinout.signal_pins(key)}


def inverter_has_bus(inverter: Inverter, bus: str) -> bool:
    """Whether the inverter entry implies a battery port of ``bus`` (rule in the docstring)."""
    pinout = inverter.pinout
    if bus == "can":
        says_can = (
            bool(inverter.profiles) or inverter.bitrate is not None or pinout.can_h is not None
        )
        return says_can or not inverter.rs485
    if bus == "rs485":
        return bool(inverter.rs485) or bool(pinout.rs485_a)
    raise ValueError(f"unknown bus {bus!r}; known: {', '.join(NEEDED)}")


def _pins_text(pinout: Pinout, keys: Sequence[str]) -> str:
    parts = []
    for key in keys:
        pins = pinout.signal_pins(key)
        if pins:
            parts.append(f"{_label(key)} pin {'/'.join(str(p) for p in pins)}")
    return ", ".join(parts)


def profile_advice(bms: Bms, inverter: Inverter, bus: str = "can") -> ProfileAdvice:
    """What to set the BMS to: a shared CAN profile, or the bridge when there is none."""
    common = tuple(p for p in inverter.profiles if p in bms.profiles)
    if bus == "rs485":
        accepted = ", ".join(inverter.rs485) or "none recorded"
        advice = (
            "bmslink profiles are CAN frame sets; for RS485 set both sides to the same RS485 "
            f"protocol (the inverter accepts: {accepted})."
        )
    elif common:
        first = common[0]
        setting = bms.settings.get(first)
        how = f" ({setting})" if setting else ""
        advice = f"set the BMS to send {first}{how}."
        if len(common) > 1:
            advice += f" Also shared: {', '.join(common[1:])}."
    else:
        advice = (
            "no common profile known: use bmslink bridge (bmslink reads the BMS and talks to "
            "the inverter)."
        )
        if not inverter.profiles:
            advice = (
                "no common profile known, and bmslink has no profile this inverter accepts, so "
                "bmslink bridge cannot help either."
            )
        elif bms.bridge:
            advice += (
                f" e.g. bmslink bridge --bms {bms.bridge}:PORT --inverter "
                f"{inverter.profiles[0]}:socketcan:can0"
            )
        else:
            advice += " bmslink has no bridge type that reads this BMS."
    return ProfileAdvice(common, bms.profiles, inverter.profiles, advice)


def termination_lines(bms: Bms, inverter: Inverter, bus: str = "can") -> tuple[str, ...]:
    """Termination advice for this pair on ``bus``, from both entries' facts."""
    if bus == "rs485":
        return RS485_TERMINATION
    lines = [
        CAN_60_OHM,
        _inverter_termination(inverter)
        or f"{inverter.name}: whether it terminates its end is not recorded; measure as above.",
        _bms_termination(bms),
    ]
    inverter_terminated = inverter.quirk("builtin_termination") is not None
    if not inverter_terminated and bms.termination.builtin in ("unknown", "none"):
        lines.append(
            "If you measure about 120 ohm, add a 120 ohm resistor across CAN_H and CAN_L at the "
            "end that lacks one (or turn on that device's terminator switch, if its manual names "
            "one)."
        )
    return tuple(lines)


def _inverter_termination(inverter: Inverter) -> str | None:
    """What the inverter's termination quirks say about its end; None when they say nothing."""
    if inverter.quirk("builtin_termination") is not None:
        return (
            f"{inverter.name}: already terminated at its end (quirk builtin_termination); do "
            "not add a second terminator there."
        )
    needs = inverter.quirk("needs_termination")
    if needs is not None:
        return f"{inverter.name}: its end must be terminated. {needs.text}"
    return None


def _bms_termination(bms: Bms) -> str:
    """What the BMS entry's ``termination`` says about its end (also when nothing is known)."""
    term = bms.termination
    note = f". {term.notes.rstrip('.')}" if term.notes else ""
    if term.builtin == "always":
        return f"{bms.title}: terminates its end of the bus{note}."
    if term.builtin == "switch":
        return (
            f"{bms.title}: has a terminator switch{note}. Turn it on only on the pack at the "
            "end of the bus (the one wired to the inverter when the inverter is the other end)."
        )
    if term.builtin == "none":
        return f"{bms.title}: does not terminate; add 120 ohm across CAN_H/CAN_L at its end{note}."
    return f"{bms.title}: whether it terminates its end is not recorded{note}."


def plan_cable(bms: Bms, inverter: Inverter, bus: str = "can") -> CablePlan:
    """The verdict, wires and advice for joining ``bms`` to ``inverter`` on ``bus``."""
    if bus not in NEEDED:
        raise ValueError(f"unknown bus {bus!r}; known: {', '.join(NEEDED)}")
    label = BUS_LABELS[bus]
    port = bms.port_for(bus)
    profiles = profile_advice(bms, inverter, bus)
    termination = termination_lines(bms, inverter, bus)
    notes: list[str] = []
    inverter_port = inverter_has_bus(inverter, bus)
    if port is None or not inverter_port:
        if port is None:
            have = ", ".join(f"{p.name} ({BUS_LABELS[p.bus]})" for p in bms.ports)
            notes.append(f"{bms.title} has no {label} port in the registry (ports: {have}).")
        if not inverter_port:
            notes.append(
                f"{inverter.name}: no {label} battery port is recorded for this inverter "
                f"({_bus_evidence(inverter)})."
            )
        return CablePlan(bms, inverter, bus, port, "no_port", notes=tuple(notes), profiles=profiles)
    bms_pins, inv_pins = port.pinout, inverter.pinout
    needed = NEEDED[bus]
    missing = tuple(
        Missing(side, _label(key))
        for key in needed
        for side, pinout in (("bms", bms_pins), ("inverter", inv_pins))
        if not pinout.signal_pins(key)
    )
    if missing:
        if not port.rj45:
            notes.append(
                f"BMS {bms.name} {port.name}: the connector is {port.connector}, not an RJ45 "
                "socket, so no RJ45 pin applies."
            )
        for side, where in (
            ("bms", f"BMS {bms.name} {port.name}"),
            ("inverter", f"inverter {inverter.name} battery port"),
        ):
            signals = [item.signal for item in missing if item.side == side]
            if signals:
                them = "them" if len(signals) > 1 else "it"
                notes.append(
                    f"{where}: no pin is recorded for {' or '.join(signals)}. Find {them} in the "
                    f"manual of your model, or measure {them} (below); never guess."
                )
        notes.append(f"How to measure: {MEASURE[bus]}.")
        isolation = inverter.quirk("needs_isolation")
        if isolation is not None:
            notes.append(f"{inverter.name}: {isolation.text}")
        return CablePlan(
            bms,
            inverter,
            bus,
            port,
            "unknown",
            missing=missing,
            notes=tuple(notes),
            termination=termination,
            profiles=profiles,
        )
    keys = list(needed)
    both_gnd = bool(bms_pins.gnd) and bool(inv_pins.gnd)
    if both_gnd:
        keys.append("gnd")
    wires = tuple(_wire(bms_pins, inv_pins, key) for key in keys)
    reasons = _straight_conflicts(bms_pins, inv_pins, keys)
    aligned = all(set(bms_pins.signal_pins(k)) & set(inv_pins.signal_pins(k)) for k in keys)
    verdict = "straight" if aligned and not reasons else "custom"
    if verdict == "custom":
        swapped = _swap_note(bms_pins, inv_pins, needed)
        if swapped:
            notes.append(swapped)
        notes.extend(reasons)
        notes.append("Make a cable with only the wires drawn; leave every other pin unconnected.")
    if not both_gnd:
        notes.append(_gnd_note(bms_pins, inv_pins, bus))
    notes.extend(_port_notes(bms, port, inverter))
    return CablePlan(
        bms,
        inverter,
        bus,
        port,
        verdict,
        wires=wires,
        notes=tuple(notes),
        termination=termination,
        profiles=profiles,
    )


def _bus_evidence(inverter: Inverter) -> str:
    if inverter.rs485 and not inverter.profiles:
        return f"it lists only RS485 protocols: {', '.join(inverter.rs485)}"
    if inverter.profiles:
        return f"it lists CAN profiles only: {', '.join(inverter.profiles)}"
    return "it lists no RS485 protocol and no RS485 pin"


def _wire(bms_pins: Pinout, inv_pins: Pinout, key: str) -> Wire:
    """Prefer a pin both sides share (a straight wire); else each side's first pin."""
    ours, theirs = bms_pins.signal_pins(key), inv_pins.signal_pins(key)
    shared = sorted(set(ours) & set(theirs))
    if shared:
        return Wire(shared[0], shared[0], _label(key))
    return Wire(ours[0], theirs[0], _label(key))


def _straight_conflicts(bms_pins: Pinout, inv_pins: Pinout, keys: Sequence[str]) -> list[str]:
    """One note per pin where a straight cable joins something the custom cable would not."""
    ours, theirs = _stated(bms_pins), _stated(inv_pins)
    reasons = []
    for pin in range(1, 9):
        mine, other = ours.get(pin), theirs.get(pin)
        if mine is None and other is None:
            continue
        if mine == other and mine in keys:
            continue
        left = f"BMS pin {pin} ({_label(mine)})" if mine else f"BMS pin {pin} (use not stated)"
        right = (
            f"inverter pin {pin} ({_label(other)})"
            if other
            else f"inverter pin {pin} (use not stated)"
        )
        if mine is not None and mine == other:
            why = f"a line this {'CAN' if 'can_h' in keys else 'RS485'} cable does not need"
        elif mine is None or other is None:
            why = "a pin whose use on the other side no source states"
        else:
            why = "two different signals"
        reasons.append(f"A straight cable would also join {left} to {right}: {why}.")
    return reasons


def _swap_note(bms_pins: Pinout, inv_pins: Pinout, needed: Sequence[str]) -> str | None:
    first, second = needed
    if set(bms_pins.signal_pins(first)) & set(inv_pins.signal_pins(second)) and set(
        bms_pins.signal_pins(second)
    ) & set(inv_pins.signal_pins(first)):
        return f"A straight cable swaps {_label(first)} and {_label(second)}."
    return None


def _gnd_note(bms_pins: Pinout, inv_pins: Pinout, bus: str) -> str:
    usual = (
        "CAN usually works without it"
        if bus == "can"
        else "RS485 wants a common reference or an isolated adapter"
    )
    if bms_pins.gnd:
        return (
            f"GND: only the BMS states a ground pin ({'/'.join(map(str, bms_pins.gnd))}); the "
            f"inverter's is not recorded, so no ground wire is drawn ({usual}; find the "
            "inverter's ground pin before adding one)."
        )
    if inv_pins.gnd:
        return (
            f"GND: only the inverter states a ground pin ({'/'.join(map(str, inv_pins.gnd))}); the "
            f"BMS's is not recorded, so no ground wire is drawn ({usual}; find the BMS's ground "
            "pin before adding one)."
        )
    return f"GND: neither side states a ground pin, so none is drawn ({usual})."


def _port_notes(bms: Bms, port: BmsPort, inverter: Inverter) -> list[str]:
    notes = []
    weak = [
        f"{side} pins are {pinout.confidence}"
        for side, pinout in (("the BMS", port.pinout), ("the inverter", inverter.pinout))
        if pinout.needs_checking
    ]
    if weak:
        notes.append(
            f"Check with a meter before connecting ({' and '.join(weak)}): {MEASURE[port.bus]}."
        )
    isolation = inverter.quirk("needs_isolation")
    if isolation is not None:
        notes.append(f"{inverter.name}: {isolation.text}")
    return notes


# --------------------------------------------------------------------------------------------
# Presentation (plain ASCII) and the name-based helpers `bmslink doctor` calls
# --------------------------------------------------------------------------------------------


def diagram(plan: CablePlan) -> list[str]:
    """The pin-to-pin drawing, plain ASCII: one row per wire with T-568B colours."""
    if not plan.wires or plan.port is None:
        return []
    left_head = f"BMS {plan.bms.name}, {plan.port.name}"
    right_head = f"inverter {plan.inverter.name}, battery port"
    rows = []
    for wire in plan.wires:
        left = f"pin {wire.bms_pin}  {wire.signal:<7}  {T568B[wire.bms_pin]}"
        right = f"pin {wire.inverter_pin}  {wire.signal:<7}  {T568B[wire.inverter_pin]}"
        rows.append((left, right))
    width = max(len(left_head), *(len(left) for left, _ in rows))
    lines = [f"{left_head:<{width}}          {right_head}"]
    lines.extend(f"{left:<{width}}  ------  {right}" for left, right in rows)
    return lines


def build_hint(plan: CablePlan) -> str | None:
    """How to make a custom cable from a T-568B patch cable; None unless the verdict is custom."""
    if plan.verdict != "custom":
        return None
    moved = [w for w in plan.wires if w.bms_pin != w.inverter_pin]
    hint = "Build it from a T-568B patch cable: crimp only the wires drawn"
    if moved:
        steps = ", ".join(f"the {T568B[w.bms_pin]} wire into pin {w.inverter_pin}" for w in moved)
        hint += f"; the BMS plug as usual, and at the inverter plug {steps}"
    else:
        hint += " at both plugs"
    return hint + "; leave every other wire out."


def _registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from bmslink.registry import default_registry

    return default_registry()


def bms_profiles(name: str, registry: Registry | None = None) -> tuple[str, ...]:
    """The bmslink profiles the named BMS can be set to send (empty when no source says);
    an unknown name raises ``RegistryError`` with suggestions."""
    return _registry(registry).find_bms(name).profiles


def pinout_advice(
    bms: str | None, inverter: str | None, bus: str = "can", registry: Registry | None = None
) -> list[str]:
    """Short lines naming the pins to check on each named side; empty when nothing is known.

    Names are looked up like ``bmslink cable`` does; an unknown name raises ``RegistryError``.
    """
    reg = _registry(registry)
    needed = [*NEEDED[bus], "gnd"]
    label = BUS_LABELS[bus]
    lines: list[str] = []
    unknown: list[str] = []
    if inverter is not None:
        inv = reg.find_inverter(inverter)
        text = _pins_text(inv.pinout, needed) if inverter_has_bus(inv, bus) else ""
        if text and all(inv.pinout.signal_pins(k) for k in NEEDED[bus]):
            lines.append(f"{inv.name} battery port: {text} ({inv.pinout.confidence})")
        else:
            unknown.append(f"{inv.name} battery port")
    if bms is not None:
        found = reg.find_bms(bms)
        port = found.port_for(bus)
        text = _pins_text(port.pinout, needed) if port else ""
        if port and text and all(port.pinout.signal_pins(k) for k in NEEDED[bus]):
            lines.append(f"{found.name} {port.name}: {text} ({port.pinout.confidence})")
        else:
            unknown.append(
                f"{found.name} {port.name}" if port else f"{found.name} ({label}: no port)"
            )
    if not lines:
        return []
    lines.extend(f"{what}: {label} pins not recorded; measure before wiring" for what in unknown)
    if bms is not None and inverter is not None:
        flag = " --bus rs485" if bus == "rs485" else ""
        lines.append(f"see `bmslink cable {bms} {inverter}{flag}`")
    return lines


def termination_advice(
    bms: str | None, inverter: str | None, bus: str = "can", registry: Registry | None = None
) -> list[str]:
    """Termination lines for the named sides (either may be None); names as in pinout_advice."""
    reg = _registry(registry)
    found = reg.find_bms(bms) if bms is not None else None
    inv = reg.find_inverter(inverter) if inverter is not None else None
    if found is not None and inv is not None:
        return list(termination_lines(found, inv, bus))
    if bus == "rs485":
        return list(RS485_TERMINATION)
    lines = [CAN_60_OHM]  # one side named: only what is recorded about it
    inverter_line = _inverter_termination(inv) if inv is not None else None
    if inverter_line is not None:
        lines.append(inverter_line)
    if found is not None and found.termination.builtin != "unknown":
        lines.append(_bms_termination(found))
    return lines
