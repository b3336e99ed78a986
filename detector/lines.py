"""Split a byte stream into lines with their offsets, and turn each into a JSON object.

Both `scan` (whole files) and `follow` (growing files) feed bytes in chunks to a
`LineSplitter`; it keeps the unfinished tail between chunks, so a line split across
writes is seen once, whole, with the byte offset at which it starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

#: A line longer than this is reported and skipped, its bytes never held in memory.
MAX_LINE_BYTES = 8 * 1024 * 1024

#: Deeper JSON is refused: orjson cannot serialise it back (its limit is 254) and
#: no event format nests anywhere near this.
MAX_DEPTH = 64

_BOM = b"\xef\xbb\xbf"

# A `\u` escape of half a UTF-16 surrogate pair, alone. Windows strings may hold
# one (an NTFS file name, a command line: both the attacker's to choose), a shipper
# that escapes it writes JSON orjson refuses, and the event would go unread.
# An escaped backslash is matched first, so `\\ud800` (a backslash, then text) is
# not taken for an escape; a whole pair is matched as one and kept.
_SURROGATE_ESCAPE = re.compile(
    r"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    r"|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)


@dataclass(slots=True)
class RawLine:
    """A complete line's bytes, without its line ending."""

    number: int
    offset: int
    data: bytes
    oversize: bool = False  # data is empty: the line was longer than MAX_LINE_BYTES


@dataclass(slots=True)
class Block:
    """Whole lines read together: `data` ends with a newline, and its first line
    is line `number`, starting at byte `offset` of the file."""

    number: int
    offset: int
    data: bytes
    lines: int


class LineSplitter:
    """Accumulate chunks of a file and hand out its complete lines.

    `offset` and `number` say where the next line starts, so a caller can save a
    checkpoint after any line and resume from it later.
    """

    def __init__(
        self, offset: int = 0, number: int = 0, max_line: int = MAX_LINE_BYTES
    ):
        self.offset = offset  # byte offset of the first byte not yet handed out
        self.number = number  # lines handed out so far (the next line is number + 1)
        self.max_line = max_line
        self._tail = bytearray()
        self._skipped = 0  # bytes of an over-long line dropped so far

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held (or skipped) since the last newline."""
        return len(self._tail) + self._skipped

    def feed(self, chunk: bytes) -> Iterator[RawLine]:
        """Yield every line that `chunk` completes."""
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            yield self._complete(chunk[start:end], newline=True)
            start = end + 1
        if start < len(chunk):
            self._hold(chunk[start:] if start else chunk)

    def feed_blocks(self, chunk: bytes) -> Iterator[RawLine | Block]:
        """Like `feed`, but the lines that lie wholly inside `chunk` come as one
        `Block`, for a caller that looks at many lines at once before parsing any.

        The line the held tail completes comes first, on its own.
        """
        if len(chunk) > self.max_line:
            # A block's lines are never checked against the cap: keep them shorter.
            yield from self.feed(chunk)
            return
        start = 0
        if self._tail or self._skipped:
            end = chunk.find(b"\n")
            if end < 0:
                self._hold(chunk)
                return
            yield self._complete(chunk[:end], newline=True)
            start = end + 1
        last = chunk.rfind(b"\n", start)
        if last >= 0:
            data = chunk[start : last + 1]  # the chunk itself when it is all lines
            # Faster than data.count(b"\n"): replace finds newlines with memchr.
            lines = len(data) - len(data.replace(b"\n", b""))
            yield Block(self.number + 1, self.offset, data, lines)
            self.number += lines
            self.offset += len(data)
            start = last + 1
        if start < len(chunk):
            self._hold(chunk[start:])

    def flush(self) -> Iterator[RawLine]:
        """Hand out a final line that has no newline (end of a scanned file)."""
        if self._tail or self._skipped:
            yield self._complete(b"", newline=False)

    def _hold(self, piece: bytes) -> None:
        if self._skipped:
            self._skipped += len(piece)
        elif len(self._tail) + len(piece) > self.max_line:
            # Too long to be an event: remember only how many bytes it spans.
            self._skipped = len(self._tail) + len(piece)
            self._tail.clear()
        else:
            self._tail += piece

    def _complete(self, piece: bytes, newline: bool) -> RawLine:
        self.number += 1
        offset = self.offset
        if self._skipped:
            self.offset += self._skipped + len(piece) + newline
            self._skipped = 0
            return RawLine(self.number, offset, b"", oversize=True)
        if self._tail:
            self._tail += piece
            piece = bytes(self._tail)
            self._tail.clear()
        self.offset += len(piece) + newline
        if len(piece) > self.max_line:
            return RawLine(self.number, offset, b"", oversize=True)
        return RawLine(self.number, offset, piece)


class LineError(ValueError):
    """Why a line cannot be used; the message is shown to the user as is."""


def decode(raw: RawLine) -> tuple[Any, bool]:
    """Parse one line into a JSON object.

    Returns (object, repaired) where repaired says bad UTF-8, or an escaped lone
    UTF-16 surrogate, was replaced by U+FFFD; or (None, False) for a line that is
    blank and so is no event at all. Raises `LineError` with a reason a person can
    act on.
    """
    if raw.oversize:
        raise LineError(
            f"line longer than the {MAX_LINE_BYTES // (1024 * 1024)} MiB cap"
        )
    data = raw.data
    if raw.offset == 0 and data.startswith(_BOM):
        data = data[3:]
    if data.endswith(b"\r"):
        data = data[:-1]
    if not data or data.isspace():  # no copy of the line, unlike strip()
        return None, False

    repaired = False
    # Limitation: a number past a double's range (a 310-digit integer) makes the
    # whole line unusable: orjson refuses it, and no repair is attempted.
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if "UTF-8" not in str(error) and "surrogate" not in str(error):
            raise LineError(f"not JSON: {error}") from None
        # Bytes that are not UTF-8 (a collector that wrote cp1252, a torn write)
        # or half a surrogate pair: keep the event, with U+FFFD in their place.
        repaired = True
        text = data.decode("utf-8", errors="replace")
        text = _SURROGATE_ESCAPE.sub(_replace_lone_surrogate, text)
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as error2:
            raise LineError(f"not JSON: {error2}") from None

    if not isinstance(obj, dict):
        raise LineError(f"JSON {type(obj).__name__}, not an object")
    if data.count(b"{") + data.count(b"[") > MAX_DEPTH and _depth(obj) > MAX_DEPTH:
        raise LineError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return obj, repaired


def _replace_lone_surrogate(found: re.Match) -> str:
    return "\\ufffd" if found.group(1) else found.group(0)


def _depth(obj: Any) -> int:
    """Nesting depth of a parsed value, without recursion (the input is hostile)."""
    deepest = 0
    stack = [(obj, 1)]
    while stack:
        value, level = stack.pop()
        if level > deepest:
            deepest = level
            if deepest > MAX_DEPTH:
                return deepest
        if isinstance(value, dict):
            stack.extend(
                (v, level + 1) for v in value.values() if isinstance(v, dict | list)
            )
        elif isinstance(value, list):
            stack.extend((v, level + 1) for v in value if isinstance(v, dict | list))
    return deepest
