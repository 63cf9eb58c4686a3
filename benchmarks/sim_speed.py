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

DEMO_STEP_S = ChainConfig().step_s


def hours_per_second(hours: float, step_s: float, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        with Chain(ChainConfig(hours=hours, step_s=step_s)) as chain:
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
    for step in (1.0, 5.0):
        rate = hours_per_second(args.hours, step, args.repeats)
        print(
            f"  step {step:4g} s: {rate:6.1f} simulated h per wall s "
            f"({rate * 3600 / step:,.0f} steps/s, one CAN round each)"
        )
    rate = hours_per_second(args.hours, DEMO_STEP_S, args.repeats)
    print(f"  step {DEMO_STEP_S:4g} s (demo default): {rate:6.1f} simulated h per wall s")
    print(f"sim: {rate:.1f} simulated hours per wall second")


if __name__ == "__main__":
    main()
