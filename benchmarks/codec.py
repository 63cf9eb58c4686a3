"""Decode throughput of the Pylontech frame set: bmslink vs cantools, same frames, same run.

cantools decodes with the DBC that ``bmslink dbc pylontech`` exports, so both
sides extract the same signals from the same bytes. Last line:
``codec: bmslink=N frames/s cantools=M frames/s ratio=R``.
"""

from __future__ import annotations

import argparse
import platform
import random
import time

import cantools

from bmslink.dbc import dbc_text
from bmslink.profiles import get_profile
from bmslink.state import BatteryState


def make_frames(count: int, seed: int = 7) -> list[tuple[int, bytes]]:
    """A realistic capture: the full battery frame set from a drifting state."""
    profile = get_profile("pylontech")
    rng = random.Random(seed)
    frames: list[tuple[int, bytes]] = []
    while len(frames) < count:
        state = BatteryState(
            voltage_v=round(rng.uniform(48, 56), 2),
            current_a=round(rng.uniform(-150, 150), 1),
            temperature_c=round(rng.uniform(-5, 45), 1),
            soc_pct=float(rng.randint(0, 100)),
            soh_pct=float(rng.randint(80, 100)),
            charge_voltage_v=55.2,
            charge_current_a=round(rng.uniform(0, 140), 1),
            discharge_current_a=round(rng.uniform(0, 140), 1),
            discharge_voltage_v=46.4,
            charge_enable=rng.random() > 0.1,
            discharge_enable=rng.random() > 0.1,
            force_charge=rng.random() < 0.05,
            full_charge_request=False,
            modules=rng.randint(1, 8),
            manufacturer="PYLON",
            alarms=rng.sample(["high_voltage", "low_voltage", "bms_internal"], rng.randint(0, 1)),
            warnings=[],
        )
        frames.extend((spec.id, data) for spec, data in profile.encode(state))
    return frames[:count]


def best_rate(label: str, decode, frames: list[tuple[int, bytes]], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for can_id, data in frames:
            decode(can_id, data)
        best = min(best, time.perf_counter() - start)
    rate = len(frames) / best
    print(f"  {label:10s} {rate:>12,.0f} frames/s  ({best * 1e9 / len(frames):.0f} ns/frame)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    profile = get_profile("pylontech")
    db = cantools.database.load_string(dbc_text(profile), "dbc")
    frames = make_frames(args.frames)
    print(
        f"{args.frames:,} Pylontech frames, best of {args.repeats}; "
        f"Python {platform.python_version()} on {platform.machine()}"
    )
    ours = best_rate("bmslink", profile.decode, frames, args.repeats)
    theirs = best_rate(
        "cantools", lambda i, d: db.decode_message(i, d, decode_choices=False), frames, args.repeats
    )
    print(
        f"codec: bmslink={ours:.0f} frames/s cantools={theirs:.0f} frames/s "
        f"ratio={ours / theirs:.2f}"
    )


if __name__ == "__main__":
    main()
