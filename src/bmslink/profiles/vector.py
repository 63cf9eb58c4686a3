"""Decode many frames of one FrameSpec at once with numpy: the columns of a capture.

The per-frame decoder builds a dict per frame, which is right for a gateway and
far too slow for a gigabyte capture. Here each numeric field and flag of a
frame becomes one array over all rows: NaN where the row is too short for the
field or carries the protocol's invalid marker. Text, alarm and cell fields
are left to the per-frame decoder (captures have few distinct payloads of them).
"""

from __future__ import annotations

import numpy as np

from bmslink.profiles.base import INT_CODES, Coded, Flag, FrameSpec, Num


def raw_column(spec: FrameSpec, f: Num, data: np.ndarray) -> np.ndarray:
    """The raw integers of ``f`` in every 8-byte row of ``data``, signed as on the wire."""
    order = "<" if (f.byteorder or spec.byteorder) == "little" else ">"
    dtype = np.dtype(order + INT_CODES[(f.size, f.signed)])  # struct codes numpy reads
    window = np.ascontiguousarray(data[:, f.start : f.end])
    return window.view(dtype).reshape(-1).astype(np.int64)


def decode_columns(spec: FrameSpec, data: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Physical values per key for every row; NaN where a row does not carry the field."""
    out: dict[str, np.ndarray] = {}
    for f in spec.fields:
        if isinstance(f, Num) and not f.as_text:
            raw = raw_column(spec, f, data)
            values = raw.astype(np.float64)
            if f.magnitude:
                values = np.abs(values)
            values = values * f.scale + f.offset
            missing = lengths < f.end
            if f.invalid is not None:
                missing |= raw == f.invalid_raw
            values[missing] = np.nan
            if f.key in out:  # a second field for one key (hi-res SoC) wins where present
                values = np.where(np.isnan(values), out[f.key], values)
            out[f.key] = values
        elif isinstance(f, Flag):
            values = ((data[:, f.byte] >> f.bit) & 1).astype(np.float64)
            values[lengths <= f.byte] = np.nan
            key = f.into or f.key
            if key in out and f.into:
                values = np.fmax(out[key], values)
            out[key] = values
        elif isinstance(f, Coded) and isinstance(f.otherwise, bool | int):
            lookup = np.full(256, float(f.otherwise), dtype=np.float64)
            for raw_value, value in f.values.items():
                lookup[raw_value] = float(value)
            values = lookup[data[:, f.byte]]
            values[lengths <= f.byte] = np.nan
            out[f.key] = values
    return out
