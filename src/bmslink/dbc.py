"""Export a profile's frame table as a DBC database (SavvyCAN, cantools, CANdb++).

The table is the single source: every numeric field becomes a scaled signal,
every flag and alarm bit a 1-bit signal, alarm pairs 2-bit signals with their
value table, text a run of 8-bit character signals, multiplexed frames (BYD's
product name) one message with a multiplexer. What DBC cannot say is noted in
the signal comment (DCL taken as magnitude, invalid markers, cell ids as text).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from cantools.database.can import Database, Message, Node, Signal
from cantools.database.conversion import BaseConversion

from bmslink.profiles.base import (
    AlarmBits,
    AlarmPairs,
    Bits,
    Cells,
    Coded,
    Const,
    Flag,
    FrameSpec,
    Num,
    Profile,
    Text,
    Version,
)

NODES = {"battery": "BMS", "inverter": "INVERTER"}
PAIR_CHOICES: OrderedDict[int, Any] = OrderedDict(
    {0: "not_supported", 1: "active", 2: "ok", 3: "reserved"}
)


def signal_name(*parts: str) -> str:
    """DBC identifiers: letters, digits and underscores only."""
    return "_".join(p for p in parts if p).replace(" ", "_").replace("-", "_")


def _placement(spec: FrameSpec, start: int, order: str | None) -> tuple[int, Any]:
    if (order or spec.byteorder) == "little":
        return start * 8, "little_endian"
    return start * 8 + 7, "big_endian"


def _num_signal(spec: FrameSpec, f: Num) -> Signal:
    start, byte_order = _placement(spec, f.start, f.byteorder)
    notes = [f.doc] if f.doc else []
    if f.magnitude:
        notes.append("receivers take the magnitude; some senders write it negative")
    if f.invalid is not None:
        notes.append(f"raw 0x{f.invalid:X} = not sent")
    if f.as_text:
        notes.append("a cell/module number; 0 = unknown")
    ends = f.physical_range
    return Signal(
        name=signal_name(f.key),
        start=start,
        length=f.size * 8,
        byte_order=byte_order,
        is_signed=f.signed,
        conversion=BaseConversion.factory(scale=f.scale, offset=f.offset),
        minimum=ends[0],
        maximum=ends[1],
        unit=f.unit or None,
        comment="; ".join(notes) or None,
    )


def _bits_signal(name: str, byte: int, bit: int, length: int = 1, **kwargs: Any) -> Signal:
    return Signal(name=name, start=byte * 8 + bit, length=length, **kwargs)


def _alarm_signals(f: AlarmBits | AlarmPairs) -> list[Signal]:
    prefix = "protection" if f.target == "alarms" else "warning"
    seen: dict[str, int] = {}
    out: list[Signal] = []
    slots = f.bits if isinstance(f, AlarmBits) else f.pairs
    for slot in sorted(slots):
        name = slots[slot]
        seen[name] = seen.get(name, 0) + 1
        suffix = "" if seen[name] == 1 else f"alt{seen[name]}"
        if isinstance(f, AlarmBits):
            out.append(
                _bits_signal(
                    signal_name(prefix, name, suffix), f.byte, slot, comment=f"{f.target}: {name}"
                )
            )
        else:
            out.append(
                _bits_signal(
                    signal_name(prefix, name, suffix),
                    f.byte,
                    2 * slot,
                    2,
                    conversion=BaseConversion.factory(scale=1, offset=0, choices=PAIR_CHOICES),
                    comment=f"{f.target}: {name} (1 = active, 2 = OK)",
                )
            )
    return out


def _char_signals(key: str, start: int, size: int) -> list[Signal]:
    return [
        Signal(
            name=signal_name(key, f"char{i}"),
            start=(start + i) * 8,
            length=8,
            comment=f"ASCII character {i} of {key}",
        )
        for i in range(size)
    ]


def frame_signals(spec: FrameSpec) -> list[Signal]:
    """The frame's signals; a name used twice (SMA's SOC and HiResSOC) gets ``_2``."""
    signals = _field_signals(spec)
    seen: dict[str, int] = {}
    for signal in signals:
        seen[signal.name] = seen.get(signal.name, 0) + 1
        if seen[signal.name] > 1:
            signal.name = f"{signal.name}_{seen[signal.name]}"
    return signals


def _field_signals(spec: FrameSpec) -> list[Signal]:
    signals: list[Signal] = []
    for f in spec.fields:
        if isinstance(f, Num):
            signals.append(_num_signal(spec, f))
        elif isinstance(f, Flag):
            signals.append(_bits_signal(signal_name(f.key), f.byte, f.bit, comment=f.doc or None))
        elif isinstance(f, Coded):
            choices: OrderedDict[int, Any] = OrderedDict(
                (raw, str(value).lower()) for raw, value in f.values.items()
            )
            signals.append(
                _bits_signal(
                    signal_name(f.key),
                    f.byte,
                    0,
                    8,
                    conversion=BaseConversion.factory(scale=1, offset=0, choices=choices),
                    comment=f.doc or None,
                )
            )
        elif isinstance(f, Bits):
            signals.append(
                _bits_signal(signal_name(f.key), f.byte, f.lsb, f.width, comment=f.doc or None)
            )
        elif isinstance(f, AlarmBits | AlarmPairs):
            signals.extend(_alarm_signals(f))
        elif isinstance(f, Text):
            signals.extend(_char_signals(f.decoded_key, f.start, f.size))
        elif isinstance(f, Const):
            signals.extend(_char_signals(f.key, f.start, len(f.value)))
        elif isinstance(f, Cells):
            for i in range(f.count):
                number = f.part * f.count + i + 1
                start, byte_order = _placement(spec, f.start + i * f.size, None)
                signals.append(
                    Signal(
                        name=signal_name(f"cell{number}_v"),
                        start=start,
                        length=f.size * 8,
                        byte_order=byte_order,
                        conversion=BaseConversion.factory(scale=f.scale, offset=0),
                        unit=f.unit,
                        comment="0 = no such cell",
                    )
                )
        elif isinstance(f, Version):
            for i, part in enumerate(("major", "minor")):
                signals.append(
                    _bits_signal(signal_name(f.key, part), f.start + i, 0, 8, comment=f.doc or None)
                )
    return signals


def _message(specs: list[FrameSpec], can_id: int) -> Message:
    first = specs[0]
    if first.mux is None:
        signals = frame_signals(first)
    else:
        index = signal_name(first.name.upper(), "INDEX")
        signals = [_bits_signal(index, first.mux[0], 0, 8, is_multiplexer=True)]
        for spec in specs:
            assert spec.mux is not None
            for signal in frame_signals(spec):
                signal.multiplexer_ids = [spec.mux[1]]
                signal.multiplexer_signal = index
                signals.append(signal)
    period = first.period_s
    return Message(
        frame_id=can_id,
        name=signal_name(first.name.upper(), "" if can_id == first.id else f"{can_id:X}"),
        length=max(s.length for s in specs),
        signals=signals,
        senders=[NODES[first.sender]],
        cycle_time=None if period is None else round(period * 1000),
        comment=first.doc or None,
        is_extended_frame=first.extended,
    )


def to_database(profile: Profile) -> Database:
    wire = dict.fromkeys((i, s.extended) for s in profile.frames for i in s.wire_ids)
    messages = [_message(list(profile.specs_with_id(i, ext)), i) for i, ext in wire]
    return Database(messages=messages, nodes=[Node(n) for n in NODES.values()])


def dbc_text(profile: Profile) -> str:
    return str(to_database(profile).as_dbc_string())
