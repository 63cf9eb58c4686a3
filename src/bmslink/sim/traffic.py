"""Synthetic bus traffic of any profile: captures for tests, detection and benchmarks.

The traffic follows the profile's table the way the roles send it: battery
frames on their periods (or in answer to the inverter's requests), inverter
frames on theirs, with timing jitter and randomly dropped frames, from a
battery whose state drifts plausibly (SoC ramps, current swings). It is
deterministic for a seed.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterator

from bmslink.errors import EncodeError
from bmslink.limits import LimitError
from bmslink.profiles.base import FrameSpec, Profile
from bmslink.roles.battery import guard
from bmslink.state import BatteryState

Frame = tuple[float, int, bool, bytes]


def drifting_state(voltage_class: str = "lv") -> Callable[[float], BatteryState]:
    """A battery state as a function of seconds since start: a slow charge/discharge cycle."""
    cells = 16
    series = 1 if voltage_class == "lv" else 8  # HV: 8 modules of 16 cells

    def state_at(t: float) -> BatteryState:
        phase = math.sin(t / 3600.0)
        soc = 50.0 + 40.0 * phase
        cell_v = round(3.20 + 0.0015 * soc + 0.02 * phase, 3)
        volts = cell_v * cells * series
        current = round(60.0 * math.cos(t / 3600.0) / series, 1)
        return BatteryState(
            voltage_v=round(volts, 2),
            current_a=current,
            temperature_c=round(22.0 + 3.0 * phase, 1),
            soc_pct=round(soc, 1),
            soh_pct=99.0,
            charge_voltage_v=round(3.45 * cells * series, 1),
            charge_current_a=100.0 / series if soc < 95 else 20.0 / series,
            discharge_current_a=120.0 / series,
            discharge_voltage_v=round(2.9 * cells * series, 1),
            charge_enable=True,
            discharge_enable=True,
            force_charge=False,
            full_charge_request=False,
            cells_v=[round(cell_v + 0.001 * (i % 3), 3) for i in range(cells)],
            cell_min_v=cell_v,
            cell_max_v=round(cell_v + 0.002, 3),
            cell_min_id="1",
            cell_max_id="3",
            cell_temp_min_c=20.0,
            cell_temp_max_c=24.0,
            capacity_ah=280.0,
            remaining_ah=round(2.8 * soc, 1),
            installed_capacity_ah=280.0,
            cycles=42,
            modules=series,
            modules_blocking_charge=0,
            modules_blocking_discharge=0,
            modules_offline=0,
            charged_kwh=1234.5,
            discharged_kwh=1100.2,
            manufacturer="BMSLINK",
            product="SIM16S",
            serial="BL0001",
            firmware="1.2",
            alarms=[],
            warnings=[],
        )

    return state_at


def profile_traffic(
    profile: Profile,
    seconds: float,
    *,
    seed: int = 0,
    start: float = 1_700_000_000.0,
    jitter_s: float = 0.02,
    drop_rate: float = 0.0,
    inverter: bool = True,
    state_at: Callable[[float], BatteryState] | None = None,
) -> Iterator[Frame]:
    """Frames in time order for ``seconds`` of traffic; ``inverter=False`` leaves its side out."""
    rng = random.Random(seed)
    state_at = state_at or drifting_state(profile.voltage_class)
    battery = [s for s in profile.frames_from("battery") if s.emit]
    outgoing = [s for s in profile.frames_from("inverter") if s.emit]  # period None: once
    encoded: dict[int, bytes | None] = {}
    encoded_second = -1
    state = BatteryState()
    queue: list[tuple[float, int, FrameSpec]] = []
    sequence = 0

    def schedule(at: float, spec: FrameSpec) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(queue, (at, sequence, spec))

    for spec in battery:
        if spec.period_s is not None:
            schedule(rng.uniform(0, min(spec.period_s, 1.0)), spec)
    if inverter:
        for spec in outgoing:
            schedule(rng.uniform(0, 1.0), spec)
    heard_inverter = not profile.battery_waits_for_inverter
    while queue:
        at, _, spec = heapq.heappop(queue)
        if at > seconds:
            break
        if spec.period_s is not None:
            schedule(at + spec.period_s + rng.uniform(-jitter_s, jitter_s), spec)
        second = int(at)
        if second != encoded_second:  # the state moves once a second; so do the payloads
            encoded_second = second
            state = state_at(float(second))
            encoded = _encode_all(profile, state)
        if spec.sender == "inverter":
            data = _inverter_payload(profile, spec, state)
            if data is None:
                continue
            heard_inverter = True
            for n, answer in enumerate(profile.answer_specs(spec.id, spec.extended, data)):
                schedule(at + 0.006 + 0.001 * n, answer)
        elif not heard_inverter:
            continue
        else:
            data = encoded.get(id(spec))
            if data is None:
                continue
        if drop_rate and rng.random() < drop_rate:
            continue
        yield (start + at, spec.id, spec.extended, data)


def _encode_all(profile: Profile, state: BatteryState) -> dict[int, bytes | None]:
    """What the battery role would send for this state: nothing if it cannot send it all."""
    try:
        state, _ = guard(state.merged(dict(profile.identity)), profile, None)
        encoded = profile.encode_round(state)
    except (EncodeError, LimitError):
        return {}
    return {id(spec): data for spec, data in encoded.frames}


def _inverter_payload(profile: Profile, spec: FrameSpec, state: BatteryState) -> bytes | None:
    try:
        return profile.encode_frame(spec, state)
    except EncodeError:
        return None
