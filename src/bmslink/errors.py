"""The project's own exceptions: callers catch these, never a stray struct.error."""


class BmslinkError(Exception):
    """Base of every error bmslink raises on purpose."""


class DecodeError(BmslinkError, ValueError):
    """Bytes from the wire (or a text line) could not be decoded; the message names why."""


class EncodeError(BmslinkError, ValueError):
    """A state cannot be put on the wire as asked (missing or out-of-range value)."""


class StateError(BmslinkError, ValueError):
    """A BatteryState JSON object has an unknown key or a value of the wrong type."""
