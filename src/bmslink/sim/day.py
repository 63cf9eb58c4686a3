"""A deterministic household day: PV production, house load and outdoor temperature.

Why pure functions of time: the closed-loop simulator may step with any dt, skip
ahead, or replay; each quantity must be reproducible from ``(seed, t_s)`` alone, with
no hidden state that depends on how it was sampled before.

Time ``t_s`` is seconds since the start of the simulation, which is midnight of day 0;
the daily shapes repeat every 86 400 s. The cloud pattern uses the absolute time, so
each day has its own (seeded) clouds.

Scenario knobs: ``ambient_offset_c`` shifts the whole temperature curve (a winter day is
the same shape, colder; the reference gives no seasonal curve, so the shape is kept and
only the level moves), ``pv_peak_w`` scales the PV bell, ``cloudiness`` dims it.
"""

from __future__ import annotations

import math

DAY_S = 86_400.0

_SUNRISE_H = 6.0
_SUNSET_H = 20.0  # sin² bell between them, so it peaks at 13:00
_MORNING = (7.0, 9.0, 1200.0)  # start h, end h, peak W above base
_EVENING = (17.5, 22.0, 2500.0)
_T_MIN_H, _T_MIN_C = 5.0, 12.0
_T_MAX_H, _T_MAX_C = 15.0, 24.0

# Cloud noise: knots every _SLOW_S (weather) and _FAST_S (passing clouds), weighted.
_SLOW_S = 1200.0
_FAST_S = 180.0
_SLOW_WEIGHT = 0.7
_MASK64 = (1 << 64) - 1


def _hash_unit(seed: int, salt: int, k: int) -> float:
    """A uniform value in [0, 1) from (seed, salt, k): splitmix64, stateless."""
    z = (seed * 0x9E3779B97F4A7C15 + salt * 0xD1B54A32D192ED03 + k * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return (z >> 11) / float(1 << 53)


def _value_noise(seed: int, salt: int, x: float) -> float:
    """Smooth noise in [0, 1): random knots at integers, cosine-interpolated between."""
    k = math.floor(x)
    f = x - k
    a = _hash_unit(seed, salt, k)
    b = _hash_unit(seed, salt, k + 1)
    w = (1.0 - math.cos(math.pi * f)) * 0.5
    return a + (b - a) * w


def _bump(h: float, start: float, end: float, peak: float) -> float:
    """A sin² bump of height ``peak`` between hours ``start`` and ``end``, else 0."""
    if h <= start or h >= end:
        return 0.0
    return peak * math.sin(math.pi * (h - start) / (end - start)) ** 2


class DayProfile:
    """PV, load and ambient temperature as pure functions of simulation time."""

    def __init__(
        self,
        seed: int = 1,
        pv_peak_w: float = 7000.0,
        base_load_w: float = 350.0,
        cloudiness: float = 0.0,
        ambient_offset_c: float = 0.0,
    ) -> None:
        if not 0.0 <= cloudiness <= 1.0:
            raise ValueError(f"cloudiness must be within 0..1, got {cloudiness}")
        if pv_peak_w < 0.0 or base_load_w < 0.0:
            raise ValueError("pv_peak_w and base_load_w must not be negative")
        if not math.isfinite(ambient_offset_c):
            raise ValueError(f"ambient_offset_c must be finite, got {ambient_offset_c}")
        self.seed = seed
        self.pv_peak_w = pv_peak_w
        self.base_load_w = base_load_w
        self.cloudiness = cloudiness
        self.ambient_offset_c = ambient_offset_c

    @staticmethod
    def hour_of_day(t_s: float) -> float:
        """Hours since midnight (0 ≤ h < 24) for simulation time ``t_s``."""
        return (t_s % DAY_S) / 3600.0

    def cloud_factor(self, t_s: float) -> float:
        """Fraction of clear-sky PV that gets through (1.0 when cloudiness is 0)."""
        if self.cloudiness <= 0.0:
            return 1.0
        slow = _value_noise(self.seed, 1, t_s / _SLOW_S)
        fast = _value_noise(self.seed, 2, t_s / _FAST_S)
        cover = _SLOW_WEIGHT * slow + (1.0 - _SLOW_WEIGHT) * fast
        return 1.0 - self.cloudiness * cover

    def pv_w(self, t_s: float) -> float:
        """PV power (W): sin² bell from 06:00 to 20:00 peaking at 13:00, times clouds."""
        h = self.hour_of_day(t_s)
        clear = _bump(h, _SUNRISE_H, _SUNSET_H, self.pv_peak_w)
        if clear == 0.0:
            return 0.0
        return clear * self.cloud_factor(t_s)

    def load_w(self, t_s: float) -> float:
        """House load (W): base plus smooth morning (07–09 h) and evening (17:30–22 h) peaks."""
        h = self.hour_of_day(t_s)
        return self.base_load_w + _bump(h, *_MORNING) + _bump(h, *_EVENING)

    def ambient_c(self, t_s: float) -> float:
        """Outdoor temperature (°C): 12 °C at 05:00 rising to 24 °C at 15:00 and back.

        Two half-cosines (10 h rising, 14 h falling) so that both extremes fall at
        the stated hours with a smooth curve; ``ambient_offset_c`` is added to both.
        """
        h = self.hour_of_day(t_s)
        mid = 0.5 * (_T_MIN_C + _T_MAX_C) + self.ambient_offset_c
        amp = 0.5 * (_T_MAX_C - _T_MIN_C)
        if _T_MIN_H <= h < _T_MAX_H:
            phase = (h - _T_MIN_H) / (_T_MAX_H - _T_MIN_H)  # 0 → 1 while rising
            return mid - amp * math.cos(math.pi * phase)
        falling = (h - _T_MAX_H) % 24.0 / (24.0 - (_T_MAX_H - _T_MIN_H))
        return mid + amp * math.cos(math.pi * falling)
