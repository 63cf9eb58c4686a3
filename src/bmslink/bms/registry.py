"""The BMS types bmslink reads, by their ``--type`` name; modules load on first use."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the protocols load on first use; the CLI's start-up needs only the names
    from bmslink.bms.base import BmsOptions, BmsProtocol

#: ``--type`` name -> (module, class). One protocol per module.
BMS_TYPES: dict[str, tuple[str, str]] = {
    "jk": ("bmslink.bms.jk", "JkProtocol"),
    "jk-pb": ("bmslink.bms.jk_pb", "JkPbProtocol"),
    "jbd": ("bmslink.bms.jbd", "JbdProtocol"),
    "daly": ("bmslink.bms.daly", "DalyProtocol"),
    "seplos": ("bmslink.bms.seplos_v2", "SeplosV2Protocol"),
    "seplos-v3": ("bmslink.bms.seplos_v3", "SeplosV3Protocol"),
    "pace": ("bmslink.bms.pace", "PaceProtocol"),
}


class UnknownBmsType(ValueError):
    """A ``--type`` that is not one of BMS_TYPES; the message lists the known ones."""


def protocol_class(name: str) -> type[BmsProtocol]:
    try:
        module, cls = BMS_TYPES[name]
    except KeyError:
        known = ", ".join(BMS_TYPES)
        raise UnknownBmsType(f"unknown BMS type {name!r}; known: {known}") from None
    found: type[BmsProtocol] = getattr(importlib.import_module(module), cls)
    return found


def get_bms(name: str, options: BmsOptions | None = None) -> BmsProtocol:
    """A protocol instance for ``name`` with the installation's reading options."""
    return protocol_class(name)(options)
