"""Speed of the closed loop with the charge controller, without any view.

The whole chain runs as in ``bmslink demo`` and ``bmslink simulate``: simulated pack +
BMS -> controller -> battery role -> python-can virtual bus -> inverter role ->
simulated inverter. First a table of step sizes over one simulated day, then the
headline: one pack with the full controller, 7 simulated days at 1 s steps (one CAN
round and one physics step per simulated second), over the ``virtual`` CAN bus and
over the in-process link (``ChainConfig(link="in-process")``: the same roles and the
same profile encoding and decoding, frames passed through a plain in-memory queue
instead of python-can's virtual interface). ``--profile`` adds the top 10 functions
of a cProfile run at 1 s steps. Before the headline, the per-step budget: what each part
of one 1 s step costs on its own (µs), to show where the time goes. Last line:
``sim: X simulated hours per wall second`` (7 days, 1 s steps, controller, virtual CAN bus).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import platform
import pstats
import time
from collections.abc import Callable

from bmslink.sim.chain import Chain, ChainConfig, LinkKind

DEFAULT = ChainConfig()


def hours_per_second(
    hours: float,
    step_s: float,
    physics_dt_s: float,
    repeats: int,
    link: LinkKind = "can",
) -> float:
    """Best of ``repeats`` runs of ``hours`` simulated hours, in simulated hours per wall s."""
    best = float("inf")
    for _ in range(repeats):
        config = ChainConfig(hours=hours, step_s=step_s, physics_dt_s=physics_dt_s, link=link)
        with Chain(config) as chain:
            start = time.perf_counter()
            chain.run()
            best = min(best, time.perf_counter() - start)
    return hours / best


def step_budget(calls: int = 20_000) -> list[tuple[str, float]]:
    """µs per call of each part of a 1 s step, measured on a chain warmed up for 10 minutes."""
    config = ChainConfig(hours=1.0, step_s=1.0, physics_dt_s=1.0, link="in-process")
    with Chain(config) as chain:
        for _ in range(600):
            chain.step()
        pack, bms, inverter, role = chain.pack, chain.bms, chain.inverter, chain.battery_role
        controller = chain.controller
        assert controller is not None
        seen = chain.inverter_role.state()
        state = bms.state()
        now = chain.clock.now()
        out = controller.step(state, now)
        parts: list[tuple[str, Callable[[], object]]] = [
            ("pack physics (apply, 16 cells)", lambda: pack.apply(0.0, 1.0, 20.0)),
            ("BMS model (protection, balancing)", lambda: bms.update(0.0, 1.0)),
            ("BMS state -> BatteryState", bms.state),
            ("inverter decision", lambda: inverter.decide(seen, 3000.0, 500.0, 53.0, 1.0)),
            ("controller.step", lambda: controller.step(state, now)),
            ("ControlOutput.apply", lambda: out.apply(state)),
            ("battery role update (guard, clamp)", lambda: role.update(out.apply(state))),
            ("whole step, in-process link", chain.step),
        ]
        budget = []
        for name, call in parts:
            start = time.perf_counter()
            for _ in range(calls):
                call()
            budget.append((name, (time.perf_counter() - start) / calls * 1e6))
    return budget


def profile_top(hours: float, link: LinkKind, top: int = 10) -> str:
    """cProfile of ``hours`` at 1 s steps: the ``top`` functions by own time, then cumulative."""
    config = ChainConfig(hours=hours, step_s=1.0, physics_dt_s=1.0, link=link)
    profiler = cProfile.Profile()
    with Chain(config) as chain:
        profiler.runcall(chain.run)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumtime").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="length of the table's runs")
    parser.add_argument("--repeats", type=int, default=2, help="best of, for the table")
    parser.add_argument("--days", type=float, default=7.0, help="length of the headline runs")
    parser.add_argument("--profile", action="store_true", help="print a cProfile top 10")
    args = parser.parse_args()
    print(
        f"{args.hours:g} simulated hours, best of {args.repeats}; controller on; "
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
    print("per-step budget at 1 s steps (µs per call; 50 h/s needs about 5.6 µs per step):")
    for name, micros in step_budget():
        print(f"  {name:38s} {micros:7.1f} µs")
    hours = 24.0 * args.days
    print(f"{args.days:g} simulated days at 1 s steps, one pack, full controller:")
    in_process = hours_per_second(hours, 1.0, 1.0, 1, link="in-process")
    print(
        f"  in-process link (encode + decode, no python-can bus): "
        f"{in_process:6.2f} simulated h per wall s"
    )
    can_rate = hours_per_second(hours, 1.0, 1.0, 1, link="can")
    print(f"  python-can virtual bus: {can_rate:6.2f} simulated h per wall s")
    if args.profile:
        links: tuple[LinkKind, ...] = ("can", "in-process")
        for link in links:
            print(f"profile, 6 simulated hours at 1 s steps, link {link}:")
            print(profile_top(6.0, link))
    print(f"sim: {can_rate:.2f} simulated hours per wall second")


if __name__ == "__main__":
    main()
