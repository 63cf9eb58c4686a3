"""BMS-facing codecs (pure) and drivers."""
