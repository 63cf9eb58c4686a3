"""Roles wire a bus to a profile on a schedule: be the battery, or be the inverter."""

from bmslink.roles.battery import BatteryRole, safety_escalation
from bmslink.roles.inverter import InverterRole

__all__ = ["BatteryRole", "InverterRole", "safety_escalation"]
