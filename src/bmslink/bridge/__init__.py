"""The bridge: BMS sources -> bank -> link-loss safety -> inverter sinks."""
