"""Derating tables: an input (cell voltage, temperature, SoC) to a fraction of the maximum current.

Why tables as data: the breakpoints are what a user tunes for their cells, and
the same numbers must read the same in the TOML file, in docs/control.md and in
the code. A ``Table`` is built once from the settings and then only evaluated
(bisect over a handful of floats), because the controller calls it every step.

Semantics (battery-model-and-control.md §2.1.2):

- ``linear``: straight lines between neighbouring breakpoints, held flat beyond
  the first and the last breakpoint.
- ``step``: no interpolation; the value of the breakpoint last *passed* when
  walking the list in the order it is written. Written tables run in the
  direction the input travels into derating: the charge table by rising cell
  voltage (so the breakpoint at or below the input counts), the discharge
  table by falling cell voltage (the breakpoint at or above the input). Before
  the first written breakpoint the first value holds.

Choices where the reference is silent: x must be strictly monotone (no two
breakpoints at one x, which would make a step undefined); fractions must lie in
0..1; at least two points; every x and fraction must be finite.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

TableMode = Literal["linear", "step"]
TABLE_MODES: tuple[TableMode, ...] = ("linear", "step")


def check_points(points: Sequence[Sequence[float]]) -> tuple[tuple[float, float], ...]:
    """The points as float pairs, or ValueError saying what is wrong with them."""
    if len(points) < 2:
        raise ValueError(f"a table needs at least 2 points, got {len(points)}")
    pairs: list[tuple[float, float]] = []
    for i, point in enumerate(points):
        if len(point) != 2:
            raise ValueError(f"point {i + 1} must be (x, fraction), got {tuple(point)!r}")
        x, y = float(point[0]), float(point[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"point {i + 1} ({x:g}, {y:g}) is not finite")
        if not 0.0 <= y <= 1.0:
            raise ValueError(f"point {i + 1}: fraction {y:g} is outside 0..1")
        pairs.append((x, y))
    xs = [x for x, _ in pairs]
    rising = all(a < b for a, b in itertools.pairwise(xs))
    falling = all(a > b for a, b in itertools.pairwise(xs))
    if not (rising or falling):
        listed = ", ".join(f"{x:g}" for x in xs)
        raise ValueError(f"x values must be strictly ascending or descending, got {listed}")
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class Table:
    """A fraction (0..1) of a maximum current for an input value; call it: ``table(x)``."""

    points: tuple[tuple[float, float], ...]
    mode: TableMode = "linear"
    _xs: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _ys: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _written_descending: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in TABLE_MODES:
            raise ValueError(f"table mode must be 'linear' or 'step', got {self.mode!r}")
        points = check_points(self.points)
        descending = points[0][0] > points[1][0]
        ordered = tuple(reversed(points)) if descending else points
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "_xs", tuple(x for x, _ in ordered))
        object.__setattr__(self, "_ys", tuple(y for _, y in ordered))
        object.__setattr__(self, "_written_descending", descending)

    def __call__(self, x: float) -> float:
        xs, ys = self._xs, self._ys
        if self.mode == "step":
            if self._written_descending:
                # walking down from the top: the breakpoint at or above x was passed last
                i = bisect_left(xs, x)
                return ys[i] if i < len(xs) else ys[-1]
            i = bisect_right(xs, x) - 1
            return ys[i] if i >= 0 else ys[0]
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        i = bisect_right(xs, x)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0)

    def is_monotone(self, shape: Literal["falling", "rising", "peak"]) -> bool:
        """Whether the fractions (by ascending x) never rise / never fall / rise then fall."""
        ys = self._ys
        steps = list(itertools.pairwise(ys))
        if shape == "falling":
            return all(b <= a for a, b in steps)
        if shape == "rising":
            return all(b >= a for a, b in steps)
        falling = False
        for a, b in steps:
            if b < a:
                falling = True
            elif b > a and falling:
                return False
        return True
