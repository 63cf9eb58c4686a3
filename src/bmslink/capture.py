"""Read and write CAN captures as column batches, fast enough for gigabyte files.

Text captures (candump ``-L`` as python-can's ``.log`` writes it, candump's
default output, bare ``id#data``) are parsed here; candump ``-L`` lines are
parsed a block at a time with numpy, column by column, and everything else goes
through :func:`bmslink.canlines.parse_line`. Binary and vendor formats (``.asc``,
``.blf``, ``.csv``, ``.trc``, ``.mf4``) are read with python-can's LogReader.

Frames come out in :class:`FrameBatch` chunks of numpy columns so detection,
conformance and analysis work per chunk in constant memory. A line that cannot
be parsed is counted and the first few are kept with their line numbers; error
frames (CAN_ERR_FLAG) are counted separately, since they are a diagnosis too.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from bmslink.canlines import CAN_ERR_FLAG, parse_line
from bmslink.errors import BmslinkError, DecodeError

#: Suffixes python-can reads; everything else is read as candump text.
PYTHON_CAN_SUFFIXES = frozenset({".asc", ".blf", ".csv", ".trc", ".mf4", ".db"})
CHUNK_FRAMES = 262_144
KEEP_ERRORS = 5


class CaptureError(BmslinkError):
    """The capture cannot be read at all (missing file, no frames, unknown format)."""


@dataclass
class FrameBatch:
    """A chunk of frames as columns; ``data`` rows are zero-padded to 8 bytes."""

    timestamps: np.ndarray  # float64 seconds; NaN where the capture has none
    ids: np.ndarray  # uint32
    extended: np.ndarray  # bool
    lengths: np.ndarray  # uint8
    data: np.ndarray  # (n, 8) uint8

    def __len__(self) -> int:
        return len(self.ids)

    def payload(self, row: int) -> bytes:
        return bytes(self.data[row, : self.lengths[row]])

    @classmethod
    def from_frames(cls, frames: Iterable[tuple[float | None, int, bool, bytes]]) -> FrameBatch:
        rows = list(frames)
        n = len(rows)
        data = np.zeros((n, 8), dtype=np.uint8)
        if n:
            padded = b"".join(bytes(d).ljust(8, b"\0") for _, _, _, d in rows)
            data[:] = np.frombuffer(padded, dtype=np.uint8).reshape(n, 8)
        return cls(
            timestamps=np.array(
                [np.nan if t is None else t for t, _, _, _ in rows], dtype=np.float64
            ),
            ids=np.array([i for _, i, _, _ in rows], dtype=np.uint32),
            extended=np.array([e for _, _, e, _ in rows], dtype=bool),
            lengths=np.array([len(d) for _, _, _, d in rows], dtype=np.uint8),
            data=data,
        )


@dataclass
class CaptureReport:
    """What reading a capture found besides frames."""

    source: str
    frames: int = 0
    lines: int = 0
    bad_lines: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, with line numbers
    error_frames: int = 0
    #: Bytes of a text capture read so far (a progress bar's position); 0 for binary formats.
    bytes_read: int = 0

    def bad(self, line_number: int, message: str) -> None:
        self.bad_lines += 1
        if len(self.errors) < KEEP_ERRORS:
            self.errors.append(f"line {line_number}: {message}")


def read_capture(
    source: str, report: CaptureReport | None = None, chunk_frames: int = CHUNK_FRAMES
) -> Iterator[FrameBatch]:
    """Frames of a capture file ('-' = stdin) in column batches.

    Raises CaptureError when the file cannot be opened or holds no frame at all.
    """
    report = report if report is not None else CaptureReport(source)
    suffix = Path(source).suffix.lower() if source != "-" else ""
    if suffix in PYTHON_CAN_SUFFIXES:
        batches = _read_python_can(source, report, chunk_frames)
    else:
        batches = _read_text(source, report, chunk_frames)
    for batch in batches:
        report.frames += len(batch)
        yield batch
    if report.frames == 0:
        detail = f"; {report.errors[0]}" if report.errors else ""
        raise CaptureError(f"no CAN frames in {source}{detail}")


def _open_binary(source: str) -> IO[bytes]:
    if source == "-":
        return sys.stdin.buffer
    try:
        return open(source, "rb")  # closed by the caller
    except OSError as exc:
        raise CaptureError(f"cannot read {source}: {exc.strerror or exc}") from None


_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789ABCDEF"):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"abcdef"):
    _NIBBLE[_c] = 10 + _i
_DIGIT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789"):
    _DIGIT[_c] = _i
_POWERS = 10.0 ** np.arange(25)


def parse_candump_block(
    block: bytes,
) -> tuple[FrameBatch, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised candump ``-L`` parsing of whole lines.

    Returns the frames of the lines that parsed, their line indexes, and the
    start/end offsets of every line: the lines not kept are left for the
    per-line parser (other formats, comments, errors to be named).
    """
    buf = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    if len(buf) and (len(ends) == 0 or ends[-1] != len(buf) - 1):
        ends = np.append(ends, len(buf))
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    trimmed = ends.copy()
    for _ in range(4):  # trailing CR/spaces, then a python-can " R"/" T" direction flag
        last = buf[np.clip(trimmed - 1, 0, None)] if len(buf) else trimmed
        strip = (trimmed > starts) & np.isin(last, (13, 32, 9))
        flag = (
            (trimmed - 2 > starts)
            & np.isin(last, (82, 84))
            & (buf[np.clip(trimmed - 2, 0, None)] == 32)
        )
        if not strip.any() and not flag.any():
            break
        trimmed = trimmed - strip - 2 * flag
    padded = np.concatenate([buf, np.zeros(32, dtype=np.uint8)])  # reads never run off the end
    regular = _parse_regular_block(padded, starts, trimmed)
    if regular is not None:
        return regular, np.arange(len(starts)), starts, ends
    ok = (trimmed > starts) & (buf[np.clip(starts, 0, max(len(buf) - 1, 0))] == 40)  # "("
    close_pos = np.flatnonzero(buf == 41)
    hash_pos = np.flatnonzero(buf == 35)
    space_pos = np.flatnonzero((buf == 32) | (buf == 9))
    if not len(close_pos) or not len(hash_pos) or not len(space_pos):
        ok[:] = False
        close = hashes = id_start = trimmed
    else:
        close = close_pos[np.clip(np.searchsorted(close_pos, starts), 0, len(close_pos) - 1)]
        at = np.searchsorted(hash_pos, starts)
        hashes = hash_pos[np.clip(at, 0, len(hash_pos) - 1)]
        second = hash_pos[np.clip(at + 1, 0, len(hash_pos) - 1)]
        one_hash = (hashes < trimmed) & ((second >= trimmed) | (second == hashes))
        before = np.searchsorted(space_pos, hashes) - 1
        id_start = space_pos[np.clip(before, 0, len(space_pos) - 1)] + 1
        ok &= (close < trimmed) & one_hash & (id_start > close) & (before >= 0)
    id_len = hashes - id_start
    data_chars = trimmed - hashes - 1
    ok &= ((id_len == 3) | (id_len == 8)) & (data_chars % 2 == 0) & (data_chars <= 16)
    # at most 18 digits and a dot: the timestamp is summed in int64; longer ones (rare)
    # go to the per-line parser instead of overflowing
    ok &= (data_chars >= 0) & (close - starts - 1 >= 1) & (close - starts - 1 <= 19)
    good = np.flatnonzero(ok)
    hash_good, id_len_good, chars = hashes[good], id_len[good], data_chars[good]
    start_good = starts[good] + 1
    ts_len = close[good] - start_good
    # Lines of one shape (one writer: same timestamp width) go through whole matrices at
    # once; anything else one column at a time. Both give the same frames.
    fast = _uniform_columns(padded, hash_good, id_len_good, chars, start_good, ts_len)
    if fast is not None:
        ids, data, timestamps, bad = fast
    else:
        bad = np.zeros(len(good), dtype=bool)
        # One column at a time over all lines, in place: no per-line Python work.
        ids = np.zeros(len(good), dtype=np.int64)
        for column in range(8):  # the 8 characters before '#', of which the last id_len count
            nibble = _NIBBLE[padded[hash_good - 8 + column]]
            active = id_len_good > 7 - column
            bad |= active & (nibble == 255)
            np.multiply(ids, 16, out=ids, where=active)
            np.add(ids, nibble, out=ids, where=active)
        data = np.zeros((len(good), 8), dtype=np.uint8)
        for column in range(int(chars.max(initial=0))):  # hex characters after '#'
            nibble = _NIBBLE[padded[hash_good + 1 + column]]
            active = chars > column
            bad |= active & (nibble == 255)
            nibble[~active] = 0
            data[:, column >> 1] |= nibble << (4 if column % 2 == 0 else 0)
        whole = np.zeros(len(good), dtype=np.int64)
        decimals = np.zeros(len(good), dtype=np.int64)
        seen_dot = np.zeros(len(good), dtype=bool)
        for column in range(int(ts_len.max(initial=0))):  # digits and at most one dot
            char = padded[start_good + column]
            active = ts_len > column
            is_dot = active & (char == 46)
            bad |= is_dot & seen_dot
            seen_dot |= is_dot
            digit = _DIGIT[char]
            is_digit = active & ~is_dot
            bad |= is_digit & (digit == 255)
            np.multiply(whole, 10, out=whole, where=is_digit)
            np.add(whole, digit, out=whole, where=is_digit)
            decimals += is_digit & seen_dot
        timestamps = whole / _POWERS[decimals]
    extended = id_len_good == 8
    valid = ~bad & _ids_valid(ids, extended)
    kept = good[valid]
    batch = FrameBatch(
        timestamps[valid],
        ids[valid].astype(np.uint32),
        extended[valid],
        (chars[valid] // 2).astype(np.uint8),
        np.ascontiguousarray(data[valid]),
    )
    return batch, kept, starts, ends


#: The first line of a regular block: "(timestamp) channel id#data", nothing else.
_FIRST_LINE = re.compile(
    rb"\((\d*\.\d*)\) ([^\s#()]+) (?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{8})#[0-9A-Fa-f]*"
)


def _ids_valid(ids: np.ndarray, extended: np.ndarray) -> np.ndarray:
    """Ids that fit 11 or 29 bits, or are error frames (counted apart by the caller)."""
    ids_ok = np.where(extended, ids <= 0x1FFFFFFF, ids <= 0x7FF)
    return np.asarray(ids_ok | (extended & ((ids & CAN_ERR_FLAG) != 0)))


def _parse_regular_block(
    padded: np.ndarray, starts: np.ndarray, trimmed: np.ndarray
) -> FrameBatch | None:
    """Every line of a block shaped like its first, as one writer makes them: the frames.

    ``padded``: the block's bytes followed by 32 zeros, so fixed offsets never run off.

    The shape (timestamp width, channel) is learnt from the first line and checked on
    every line at fixed offsets, so the buffer is not searched for delimiters. All or
    nothing: any line that differs, or any character out of place, returns None and
    the general parser reads the block, with the same result for every regular line.
    """
    n = len(starts)
    if n == 0:
        return None
    first = _FIRST_LINE.fullmatch(bytes(padded[starts[0] : trimmed[0]]))
    if first is None:
        return None
    width = len(first.group(1))
    channel = first.group(2)
    close = 1 + width  # offsets from the line start
    id_at = close + 2 + len(channel) + 1
    if int((trimmed - starts).min()) < id_at + 4:
        return None
    for offset, char in ((0, 40), (close, 41), (close + 1, 32), (id_at - 1, 32)):
        if not (padded[starts + offset] == char).all():
            return None
    expected = np.frombuffer(channel, dtype=np.uint8)
    seen = np.lib.stride_tricks.sliding_window_view(padded, len(channel))[starts + close + 2]
    if not (seen == expected).all():
        return None
    short = padded[starts + id_at + 3] == 35  # "#" after a 3-character id
    if not (short | (padded[starts + id_at + 8] == 35)).all():
        return None
    id_len = np.where(short, 3, 8)
    hashes = starts + id_at + id_len
    chars = trimmed - hashes - 1
    if int(chars.min()) < 0 or int(chars.max()) > 16 or (chars % 2).any():
        return None
    columns = _uniform_columns(
        padded, hashes, id_len, chars, starts + 1, np.full(n, width, dtype=np.int64)
    )
    if columns is None:
        return None
    ids, data, timestamps, bad = columns
    extended = id_len == 8
    if bad.any() or not _ids_valid(ids, extended).all():
        return None
    return FrameBatch(
        timestamps, ids.astype(np.uint32), extended, (chars // 2).astype(np.uint8), data
    )


def _dot(small: np.ndarray, weights: np.ndarray, rows: int = 32_768) -> np.ndarray:
    """``small @ weights`` as int64, exact while every sum stays below 2**53.

    Converted to floats a slice of rows at a time: the float copy of a whole
    block's digits would be the largest array of the parse.
    """
    out = np.empty((len(small), *weights.shape[1:]), dtype=np.int64)
    for lo in range(0, len(small), rows):
        out[lo : lo + rows] = small[lo : lo + rows].astype(np.float64) @ weights
    return out


def _rows_where(matrix: np.ndarray) -> np.ndarray:
    """Rows with any True; the whole-matrix test first, as bad characters are rare."""
    if not matrix.any():
        return np.zeros(len(matrix), dtype=bool)
    return np.asarray(matrix.any(axis=1))


_ID_WEIGHTS = 16.0 ** np.arange(7, -1, -1)  # the 8 hex characters before '#'
_ID_ACTIVE = np.array([[False] * 5 + [True] * 3, [True] * 8])  # 11-bit, 29-bit
_DATA_ACTIVE = np.arange(16) < np.arange(17)[:, None]  # row k: the first k characters


def _hex_values(chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hex digits to 0..15 by arithmetic (a table lookup is several times slower), and
    where a character is not a hex digit."""
    values = (chars & 15) + 9 * (chars >> 6)
    digit = (chars - 48) < 10  # uint8: anything below "0" wraps high
    letter = ((chars | 32) - 97) < 6  # a-f, either case
    return values, ~(digit | letter)


def _uniform_columns(
    padded: np.ndarray,
    hashes: np.ndarray,
    id_len: np.ndarray,
    chars: np.ndarray,
    ts_start: np.ndarray,
    ts_len: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Ids, data, timestamps and bad rows when every timestamp has one width and one dot.

    That is every file one writer produced. Each line's characters are then copied
    as rows of (lines x columns) matrices, one row per line from a sliding window, and
    converted in a few whole-matrix steps. None when the lines differ: the caller
    goes column by column. Integers are summed exactly: at most 9 digits per float
    product.
    """
    n = len(hashes)
    if n == 0 or int(hashes.min()) < 8:  # the id window must not start before the block
        return None
    width = int(ts_len[0])
    if not 3 <= width <= 19 or not (ts_len == width).all():
        return None
    windows = np.lib.stride_tricks.sliding_window_view
    digits = windows(padded, width)[ts_start]  # a copy: changed in place below
    point = int(np.flatnonzero(digits[0] == 46)[0]) if (digits[0] == 46).any() else -1
    if point < 0 or not (digits[:, point] == 46).all():
        return None
    digits[:, point] = 48
    digits -= 48  # ASCII digits to 0..9; anything else wraps above 9
    bad = _rows_where(digits > 9)
    place = np.zeros(width, dtype=np.int64)  # power of ten of each column; the dot has none
    place[:point] = np.arange(width - 2, width - 2 - point, -1)
    place[point + 1 :] = np.arange(width - point - 2, -1, -1)
    is_digit = np.arange(width) != point
    weights = np.stack(
        [
            np.where(is_digit & (place >= 9), 10.0 ** (place - 9), 0.0),
            np.where(is_digit & (place < 9), 10.0**place, 0.0),
        ],
        axis=1,
    )
    parts = _dot(digits, weights)
    timestamps = (parts[:, 0] * 10**9 + parts[:, 1]) / _POWERS[width - 1 - point]
    nibbles, invalid = _hex_values(windows(padded, 8)[hashes - 8])
    active = _ID_ACTIVE[(id_len == 8).astype(np.intp)]  # the last 3 or all 8 characters
    nibbles *= active
    bad |= _rows_where(invalid & active)
    ids = _dot(nibbles, _ID_WEIGHTS)
    hex_chars, invalid = _hex_values(windows(padded, 16)[hashes + 1])
    active = _DATA_ACTIVE[chars]  # the first `chars` characters after "#"
    hex_chars *= active
    bad |= _rows_where(invalid & active)
    data = (hex_chars[:, 0::2] << 4) | hex_chars[:, 1::2]
    return ids, data, timestamps, bad


def _read_text(source: str, report: CaptureReport, chunk_frames: int) -> Iterator[FrameBatch]:
    handle = _open_binary(source)
    block_bytes = chunk_frames * 48
    carry = b""
    try:
        while True:
            block = handle.read(block_bytes)
            report.bytes_read += len(block)
            if not block and not carry:
                break
            data = carry + block
            if block:
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # one line longer than a block: read on
                    carry = data
                    continue
                data, carry = data[:cut], data[cut:]
            else:
                carry = b""
            batch = _parse_text_block(data, report)
            if len(batch):
                yield batch
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def _parse_text_block(data: bytes, report: CaptureReport) -> FrameBatch:
    """Whole lines: vectorised for candump -L, per line for anything else."""
    first = report.lines
    batch, kept, starts, ends = parse_candump_block(data)
    report.lines += len(starts)
    rest = np.ones(len(starts), dtype=bool)
    rest[kept] = False  # lines handled here, error frames included
    error_rows = batch.extended & ((batch.ids & CAN_ERR_FLAG) != 0)
    if error_rows.any():
        report.error_frames += int(error_rows.sum())
        batch, kept = take(batch, ~error_rows), kept[~error_rows]
    if not rest.any():
        return batch
    slow: list[tuple[float | None, int, bool, bytes]] = []
    slow_rows: list[int] = []
    for index in np.flatnonzero(rest).tolist():
        text = data[starts[index] : ends[index]].decode("utf-8", "replace")
        try:
            frame = parse_line(text)
        except DecodeError as exc:
            if "error frame" in str(exc):
                report.error_frames += 1
            else:
                report.bad(first + index + 1, str(exc))
            continue
        if frame is not None:
            slow.append((frame.timestamp, frame.can_id, frame.extended, frame.data))
            slow_rows.append(index)
    if not slow:
        return batch
    other = FrameBatch.from_frames(slow)
    if not len(batch):
        return other
    # a file mixing line formats: keep the frames in line order
    order = np.argsort(np.concatenate([kept, np.array(slow_rows)]), kind="stable")
    return take(concat([batch, other]), order)


def _read_python_can(source: str, report: CaptureReport, chunk_frames: int) -> Iterator[FrameBatch]:
    import can

    try:
        reader: Iterable[Any] = can.LogReader(source)
    except (OSError, ValueError) as exc:
        raise CaptureError(f"cannot read {source}: {exc}") from None
    rows: list[tuple[float | None, int, bool, bytes]] = []
    try:
        for msg in reader:
            report.lines += 1
            if msg.is_error_frame:
                report.error_frames += 1
                continue
            if msg.is_remote_frame or (msg.is_fd and len(msg.data) > 8):
                report.bad(report.lines, "remote or CAN FD frame skipped")
                continue
            rows.append((msg.timestamp, msg.arbitration_id, msg.is_extended_id, bytes(msg.data)))
            if len(rows) >= chunk_frames:
                yield FrameBatch.from_frames(rows)
                rows = []
    except (ValueError, IndexError, KeyError, UnicodeDecodeError) as exc:
        report.bad(report.lines + 1, f"python-can could not read on: {exc}")
    finally:
        stop = getattr(reader, "stop", None)
        if stop is not None:
            stop()
    if rows:
        yield FrameBatch.from_frames(rows)


def concat(batches: list[FrameBatch]) -> FrameBatch:
    return FrameBatch(
        np.concatenate([b.timestamps for b in batches]),
        np.concatenate([b.ids for b in batches]),
        np.concatenate([b.extended for b in batches]),
        np.concatenate([b.lengths for b in batches]),
        np.concatenate([b.data for b in batches]),
    )


def take(batch: FrameBatch, index: np.ndarray) -> FrameBatch:
    return FrameBatch(
        batch.timestamps[index],
        batch.ids[index],
        batch.extended[index],
        batch.lengths[index],
        batch.data[index],
    )


# -- writers ---------------------------------------------------------------------------------------


def candump_line(timestamp: float, can_id: int, extended: bool, data: bytes, channel: str) -> str:
    ident = f"{can_id:08X}" if extended else f"{can_id:03X}"
    return f"({timestamp:.6f}) {channel} {ident}#{data.hex().upper()}\n"


def write_capture(
    path: str, frames: Iterable[tuple[float, int, bool, bytes]], channel: str = "can0"
) -> int:
    """Write frames in the format the suffix names; returns the count.

    python-can's suffixes (``.asc``, ``.blf``, ...) go through its Logger; any
    other name gets candump -L text. The file appears only when complete: it
    is written beside and renamed.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    count = 0
    if suffix in PYTHON_CAN_SUFFIXES:
        import can

        temporary = target.with_name(f".{target.stem}.partial{target.suffix}")
        with can.Logger(str(temporary)) as logger:
            for timestamp, can_id, extended, data in frames:
                logger.on_message_received(
                    can.Message(
                        timestamp=timestamp,
                        arbitration_id=can_id,
                        is_extended_id=extended,
                        data=data,
                        channel=channel,
                    )
                )
                count += 1
        temporary.replace(target)
        return count
    temporary = target.with_name(f".{target.name}.partial")
    with open(temporary, "w", encoding="ascii") as handle:
        for timestamp, can_id, extended, data in frames:
            handle.write(candump_line(timestamp, can_id, extended, data, channel))
            count += 1
    temporary.replace(target)
    return count
