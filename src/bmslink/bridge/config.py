"""The bridge's TOML configuration, validated on start with errors that name the bad key.

``examples/bridge.toml`` is the commented reference. The short command-line
form (``--bms jk:/dev/ttyUSB0 --inverter pylontech:socketcan:can0``) builds the
same model, so both paths are validated alike.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bmslink.bms.base import BmsOptions
from bmslink.bms.registry import BMS_TYPES, protocol_class
from bmslink.bridge.aggregate import BankSettings, PackSettings
from bmslink.bridge.core import LinkLossSettings
from bmslink.control import ControlSettings
from bmslink.control.controller import discharge_voltage
from bmslink.control.soc import PackSocSettings
from bmslink.errors import BmslinkError
from bmslink.limits import HardwareLimits
from bmslink.profiles import PROFILES

Positive = Annotated[float, Field(gt=0)]


class ConfigError(BmslinkError):
    """A configuration that cannot be run; the message names the file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BankConfig(_Strict):
    series_cells: int = Field(16, ge=1, le=400)
    charge_voltage_v: Positive | None = None
    discharge_voltage_v: Positive | None = None
    charge_voltage_per_cell_v: float = Field(3.45, gt=2.0, le=4.3)
    discharge_voltage_per_cell_v: float = Field(2.90, gt=1.5, le=4.0)
    max_voltage_difference_v: float = Field(1.0, ge=0)
    soh_pct_if_unknown: float | None = Field(100.0, ge=0, le=100)

    def settings(self) -> BankSettings:
        n = self.series_cells
        return BankSettings(
            series_cells=n,
            charge_voltage_v=self.charge_voltage_v or round(n * self.charge_voltage_per_cell_v, 2),
            discharge_voltage_v=self.discharge_voltage_v
            or round(n * self.discharge_voltage_per_cell_v, 2),
            max_voltage_difference_v=self.max_voltage_difference_v,
            soh_pct_if_unknown=self.soh_pct_if_unknown,
        )


class HardwareConfig(_Strict):
    max_charge_current_a: Positive
    max_discharge_current_a: Positive
    max_charge_voltage_v: Positive | None = None
    min_discharge_voltage_v: float | None = Field(None, ge=0)
    max_cell_v: float = Field(3.55, gt=2.0, le=4.3)
    min_cell_v: float = Field(2.80, gt=1.5, le=4.0)


class LinkLossConfig(_Strict):
    silent_after_s: float = Field(10.0, ge=0)
    safe_hold_s: float = Field(30.0, ge=0)
    pack_stale_s: float = Field(5.0, gt=0)


class BmsConfig(_Strict):
    name: str = Field(min_length=1, max_length=32)
    type: str
    #: A serial port, or "sim" for a simulated device of this type on a PTY.
    port: str = Field(min_length=1)
    addresses: list[int] | None = None
    baudrate: int | None = Field(None, gt=0)
    poll_interval_s: Positive = 1.0
    timeout_s: Positive = 0.5
    retries: int = Field(2, ge=0, le=10)
    max_charge_current_a: Positive
    max_discharge_current_a: Positive
    invert_current: bool = False
    kelvin_offset_raw: float | None = None
    jk_current: Literal["auto", "sign-bit", "offset"] = "auto"
    #: Where the packs' SoC comes from: "auto" (the BMS's, else bmslink's voltage estimate),
    #: "estimate" (always bmslink's: for a badly calibrated BMS SoC), "bms" (never estimate).
    soc: Literal["auto", "estimate", "bms"] = "auto"
    #: Per pack, for the estimate's coulomb counting when the BMS reports no capacity.
    capacity_ah: Positive | None = None

    @model_validator(mode="after")
    def _soc_capacity_used(self) -> BmsConfig:
        if self.soc == "bms" and self.capacity_ah is not None:
            raise ValueError(
                'capacity_ah is used only by the SoC estimate, and soc = "bms" never estimates: '
                'drop capacity_ah or set soc = "auto"'
            )
        return self

    @model_validator(mode="after")
    def _known_type(self) -> BmsConfig:
        if self.type not in BMS_TYPES:
            raise ValueError(f"unknown BMS type {self.type!r}; known: {', '.join(BMS_TYPES)}")
        protocol = protocol_class(self.type)
        for address in self.addresses or [protocol.default_address]:
            if address not in protocol.addresses:
                r = protocol.addresses
                raise ValueError(
                    f"address {address} is not a {self.type} address ({r.start}..{r.stop - 1})"
                )
        if self.addresses is not None and len(set(self.addresses)) != len(self.addresses):
            raise ValueError(f"addresses repeat: {self.addresses}")
        return self

    def options(self) -> BmsOptions:
        return BmsOptions(
            invert_current=self.invert_current,
            kelvin_offset_raw=self.kelvin_offset_raw,
            jk_current=self.jk_current,
        )

    def pack_names(self) -> list[tuple[int, str]]:
        """(address, pack name) per address: ``name``, or ``name/ADDR`` when there are several."""
        addresses = self.addresses or [protocol_class(self.type).default_address]
        if len(addresses) == 1:
            return [(addresses[0], self.name)]
        return [(a, f"{self.name}/{a}") for a in addresses]

    def soc_settings(self) -> PackSocSettings:
        """The SoC source of every pack of this entry."""
        return PackSocSettings(self.soc, self.capacity_ah)

    def pack_settings(self) -> list[PackSettings]:
        return [
            PackSettings(name, self.max_charge_current_a, self.max_discharge_current_a)
            for _, name in self.pack_names()
        ]


class CanInverter(_Strict):
    kind: Literal["can"]
    profile: str
    interface: str = "socketcan"
    channel: str = "can0"
    bitrate: int = Field(500_000, gt=0)
    keepalive_timeout_s: Positive = 10.0

    @model_validator(mode="after")
    def _known_profile(self) -> CanInverter:
        if self.profile not in PROFILES:
            raise ValueError(
                f"unknown profile {self.profile!r}; known: {', '.join(sorted(PROFILES))}"
            )
        return self


class PylontechRs485Inverter(_Strict):
    kind: Literal["pylontech-rs485"]
    port: str
    address: int = Field(2, ge=0, le=255)
    baudrate: int = Field(9600, gt=0)
    keepalive_timeout_s: Positive = 10.0


class ModbusInverter(_Strict):
    kind: Literal["modbus"]
    port: str
    slave: int = Field(1, ge=1, le=247)
    baudrate: int = Field(19200, gt=0)
    keepalive_timeout_s: Positive = 10.0


InverterConfig = Annotated[
    CanInverter | PylontechRs485Inverter | ModbusInverter, Field(discriminator="kind")
]


class BridgeConfig(_Strict):
    bank: BankConfig = BankConfig()
    hardware: HardwareConfig
    link_loss: LinkLossConfig = LinkLossConfig()
    bms: list[BmsConfig] = Field(min_length=1)
    inverter: list[InverterConfig] = Field(min_length=1)
    #: The charge-control brain (docs/control.md). Left out, ``series_cells`` comes from
    #: [bank] and the current ceilings from [hardware].
    control: ControlSettings = ControlSettings()

    @model_validator(mode="after")
    def _consistent(self) -> BridgeConfig:
        names = [name for b in self.bms for _, name in b.pack_names()]
        if len(set(names)) != len(names):
            raise ValueError(f"pack names repeat: {names}")
        ports = [b.port for b in self.bms if b.port != "sim"]
        if len(set(ports)) != len(ports):
            raise ValueError(
                "two [[bms]] entries share a port: put several packs of one bus in one entry "
                "with addresses = [...]"
            )
        for b in self.bms:
            worst = b.poll_interval_s + (b.retries + 1) * b.timeout_s
            if self.link_loss.pack_stale_s < worst:
                raise ValueError(
                    f"link_loss.pack_stale_s {self.link_loss.pack_stale_s:g} s is shorter than "
                    f"one poll of {b.name} can take ({worst:g} s: interval + tries x timeout)"
                )
        hardware = self.hardware_limits()  # raises on inconsistent voltages
        cells = self.control.series_cells
        if "series_cells" in self.control.model_fields_set and cells != self.bank.series_cells:
            raise ValueError(
                f"control.series_cells {cells} differs from bank.series_cells "
                f"{self.bank.series_cells}: set it once, in [bank]"
            )
        # the controller's own check, here so the file is refused on load, not on start
        discharge_voltage(self.control_settings(), hardware)
        return self

    def hardware_limits(self) -> HardwareLimits:
        h, n = self.hardware, self.bank.series_cells
        max_v = h.max_charge_voltage_v or round(n * h.max_cell_v, 2)
        min_v = (
            h.min_discharge_voltage_v
            if h.min_discharge_voltage_v is not None
            else round(n * h.min_cell_v, 2)
        )
        return HardwareLimits(h.max_charge_current_a, h.max_discharge_current_a, max_v, min_v)

    def control_settings(self) -> ControlSettings:
        """[control] with what it left out taken from [bank] (cells) and [hardware] (currents)."""
        given = self.control.model_fields_set
        fill: dict[str, object] = {"series_cells": self.bank.series_cells}
        if "max_charge_current_a" not in given:
            fill["max_charge_current_a"] = self.hardware.max_charge_current_a
        if "max_discharge_current_a" not in given:
            fill["max_discharge_current_a"] = self.hardware.max_discharge_current_a
        return ControlSettings.model_validate({**self.control.model_dump(), **fill})

    def pack_soc_settings(self) -> dict[str, PackSocSettings]:
        """Per pack name, where its SoC comes from ([[bms]] ``soc`` and ``capacity_ah``)."""
        return {name: b.soc_settings() for b in self.bms for _, name in b.pack_names()}

    def link_loss_settings(self) -> LinkLossSettings:
        ll = self.link_loss
        return LinkLossSettings(ll.silent_after_s, ll.safe_hold_s, ll.pack_stale_s)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("can", "pylontech-rs485", "modbus"):
            continue  # the discriminator's branch, not a key the user wrote
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def validate(data: dict[str, object], where: str) -> BridgeConfig:
    """A checked config; ConfigError naming ``where`` and every bad key."""
    try:
        return BridgeConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{_location(tuple(err['loc']))}: {message}")
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None
    except ValueError as exc:  # HardwareLimits' own checks
        raise ConfigError(f"{where}: {exc}") from None


def load(path: str | Path) -> BridgeConfig:
    """Read and validate a TOML file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return validate(data, str(path))
