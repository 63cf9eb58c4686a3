"""Small helpers shared by the CLI modules: input files and error exits."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer

from bmslink.profiles import UnknownProfileError, get_profile
from bmslink.profiles.base import Profile

if TYPE_CHECKING:
    from bmslink.capture import CaptureReport, FrameBatch
    from bmslink.registry import Bms, Inverter, Registry

T = TypeVar("T")

#: Width the text commands (inverters, cable) wrap to.
WIDTH = 100


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and a non-zero exit: the contract for bad input."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def read_lines(source: str) -> Iterator[tuple[int, str]]:
    """Numbered lines of a file, or of stdin for '-'."""
    if source == "-":
        yield from enumerate(sys.stdin, start=1)
        return
    path = Path(source)
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror or exc}")
    with handle:
        yield from enumerate(handle, start=1)


def profile_or_exit(name: str) -> Profile:
    try:
        return get_profile(name)
    except UnknownProfileError as exc:
        fail(str(exc), code=2)


def consume_capture(
    source: str, consume: Callable[[Iterator[FrameBatch]], T]
) -> tuple[T, CaptureReport]:
    """Feed a capture's batches to ``consume``; an unreadable capture exits 1, named."""
    from bmslink.capture import CaptureError, CaptureReport, read_capture  # numpy: load on use

    report = CaptureReport(source)
    try:
        return consume(read_capture(source, report)), report
    except CaptureError as exc:
        fail(str(exc))


def registry_or_exit() -> Registry:
    """The shipped registry; broken data is an install fault, not the user's: exit 1, named."""
    from bmslink.registry import RegistryError, default_registry

    try:
        return default_registry()
    except RegistryError as exc:
        fail(str(exc))


def inverter_or_exit(name: str) -> Inverter:
    """An inverter family by name or alias; an unknown one is a usage error (exit 2)."""
    from bmslink.registry import RegistryError

    try:
        return registry_or_exit().find_inverter(name)
    except RegistryError as exc:
        fail(str(exc), code=2)


def bms_or_exit(name: str) -> Bms:
    """A BMS by name or alias; an unknown one is a usage error (exit 2)."""
    from bmslink.registry import RegistryError

    try:
        return registry_or_exit().find_bms(name)
    except RegistryError as exc:
        fail(str(exc), code=2)


def align_columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Rows of cells as lines, each column padded to its widest cell."""
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def wrap_field(label: str, text: str, indent: int = 14) -> list[str]:
    """``label`` padded to ``indent`` columns, then ``text`` wrapped to WIDTH."""
    first = f"{label:<{indent}}"
    return textwrap.wrap(
        " ".join(text.split()),
        width=WIDTH,
        initial_indent=first,
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]
