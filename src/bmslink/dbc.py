"""Export a profile's frame table as a DBC database (SavvyCAN, cantools, CANdb++).

The table is the single source: every numeric field becomes a scaled signal,
every flag and alarm bit a 1-bit signal, text a run of 8-bit character signals.
What DBC cannot say is noted in the signal comment (DCL taken as magnitude).
"""

from __future__ import annotations

from typing import Literal

from cantools.database.can import Database, Message, Node, Signal
from cantools.database.conversion import BaseConversion

from bmslink.profiles.base import AlarmBits, Const, Flag, FrameSpec, Num, Profile, Text

NODES = {"battery": "BMS", "inverter": "INVERTER"}


def signal_name(*parts: str) -> str:
    """DBC identifiers: letters, digits and underscores only."""
    return "_".join(p for p in parts if p).replace(" ", "_").replace("-", "_")


def _num_signal(spec: FrameSpec, f: Num) -> Signal:
    order = f.byteorder or spec.byteorder
    byte_order: Literal["little_endian", "big_endian"]
    if order == "little":
        start, byte_order = f.start * 8, "little_endian"
    else:
        start, byte_order = f.start * 8 + 7, "big_endian"
    notes = [f.doc] if f.doc else []
    if f.magnitude:
        notes.append("receivers take the magnitude; some senders write it negative")
    return Signal(
        name=signal_name(f.key),
        start=start,
        length=f.size * 8,
        byte_order=byte_order,
        is_signed=f.signed,
        conversion=BaseConversion.factory(scale=f.scale, offset=f.offset),
        minimum=round(f.raw_min * f.scale + f.offset, f.decimals),
        maximum=round(f.raw_max * f.scale + f.offset, f.decimals),
        unit=f.unit or None,
        comment="; ".join(notes) or None,
    )


def _bit_signal(name: str, byte: int, bit: int, comment: str | None = None) -> Signal:
    return Signal(name=name, start=byte * 8 + bit, length=1, comment=comment)


def frame_signals(spec: FrameSpec) -> list[Signal]:
    signals: list[Signal] = []
    for f in spec.fields:
        if isinstance(f, Num):
            signals.append(_num_signal(spec, f))
        elif isinstance(f, Flag):
            signals.append(_bit_signal(signal_name(f.key), f.byte, f.bit, f.doc or None))
        elif isinstance(f, AlarmBits):
            prefix = "protection" if f.target == "alarms" else "warning"
            seen: dict[str, int] = {}
            for bit in sorted(f.bits):
                name = f.bits[bit]
                seen[name] = seen.get(name, 0) + 1
                suffix = "" if seen[name] == 1 else f"alt{seen[name]}"
                signals.append(
                    _bit_signal(
                        signal_name(prefix, name, suffix), f.byte, bit, f"{f.target}: {name}"
                    )
                )
        elif isinstance(f, Text | Const):
            size = f.size if isinstance(f, Text) else len(f.value)
            for i in range(size):
                signals.append(
                    Signal(
                        name=signal_name(f.key, f"char{i}"),
                        start=(f.start + i) * 8,
                        length=8,
                        comment=f"ASCII character {i} of {f.key}",
                    )
                )
    return signals


def to_database(profile: Profile) -> Database:
    messages = [
        Message(
            frame_id=spec.id,
            name=signal_name(spec.name.upper()),
            length=spec.length,
            signals=frame_signals(spec),
            senders=[NODES[spec.sender]],
            cycle_time=round(spec.period_s * 1000),
            comment=spec.doc or None,
            is_extended_frame=spec.extended,
        )
        for spec in profile.frames
    ]
    return Database(messages=messages, nodes=[Node(n) for n in NODES.values()])


def dbc_text(profile: Profile) -> str:
    return str(to_database(profile).as_dbc_string())
