"""Speed of the demo's closed loop without the live view.

The whole chain runs as in ``bmslink demo``: simulated pack + BMS -> battery
role -> python-can virtual bus -> inverter role -> simulated inverter. Prints
the figure for a few step sizes, then the demo default. Last line:
``sim: X simulated hours per wall second``.
"""

from __future__ import annotations

import argparse
import platform
import time

from bmslink.sim.chain import Chain, ChainConfig

DEFAULT = ChainConfig()


def hours_per_second(hours: float, step_s: float, physics_dt_s: float, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        config = ChainConfig(hours=hours, step_s=step_s, physics_dt_s=physics_dt_s)
        with Chain(config) as chain:
            start = time.perf_counter()
            chain.run()
            best = min(best, time.perf_counter() - start)
    return hours / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{args.hours:g} simulated hours, best of {args.repeats}; "
        f"Python {platform.python_version()} on {platform.machine()}"
    )
    variants = [(1.0, 1.0), (5.0, 5.0), (DEFAULT.step_s, 2.0)]
    for step, physics in variants:
        rate = hours_per_second(args.hours, step, physics, args.repeats)
        print(
            f"  CAN round every {step:g} s, physics every {physics:g} s: "
            f"{rate:6.1f} simulated h per wall s ({rate * 3600 / step:,.0f} CAN rounds/s)"
        )
    rate = hours_per_second(args.hours, DEFAULT.step_s, DEFAULT.physics_dt_s, args.repeats)
    print(
        f"  CAN round every {DEFAULT.step_s:g} s, physics every {DEFAULT.physics_dt_s:g} s "
        f"(demo default): {rate:6.1f} simulated h per wall s"
    )
    print(f"sim: {rate:.1f} simulated hours per wall second")


if __name__ == "__main__":
    main()
