"""Options shared by the commands that open a live bus (sniff, doctor).

Each function returns a fresh ``typer.Option`` for use as a parameter default,
so the flags, short names and help read the same in every command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from bmslink.cli.common import fail

if TYPE_CHECKING:
    from bmslink.diagnose.live import BusSpec


def interface_option() -> Any:
    return typer.Option(
        ...,
        "--interface",
        "-I",
        help="python-can interface: socketcan, slcan, gs_usb, pcan, kvaser, vector, virtual, ...",
    )


def channel_option() -> Any:
    return typer.Option(
        None,
        "--channel",
        "-c",
        help="Channel: can0 (socketcan), /dev/ttyACM0 or COM5 (slcan), PCAN_USBBUS1 (pcan)...",
    )


def bitrate_option() -> Any:
    return typer.Option(
        None,
        "--bitrate",
        "-b",
        min=1,
        help="Bit rate in bit/s (most battery profiles: 500000). Default: the adapter's own. "
        "socketcan takes it from the link (ip link), not from here.",
    )


def bus_options_option() -> Any:
    return typer.Option(
        [],
        "--bus-option",
        "-o",
        metavar="KEY=VALUE",
        help="Extra python-can argument, repeatable: -o tty_baudrate=115200 -o sleep_after_open=0.",
    )


def bus_spec_or_exit(
    interface: str,
    channel: str | None,
    bitrate: int | None,
    options: list[str],
    listen_only: bool = False,
) -> BusSpec:
    """The BusSpec the options describe; a bad option or mode is a usage error (exit 2)."""
    from bmslink.diagnose.live import (  # python-can loads only for live commands
        BusSpec,
        LiveBusError,
        listen_only_options,
        parse_bus_options,
    )

    try:
        kwargs = parse_bus_options(options)
        if listen_only:
            kwargs.update(listen_only_options(interface))
    except LiveBusError as exc:
        fail(str(exc), code=2)
    return BusSpec(interface, channel, bitrate, kwargs)
