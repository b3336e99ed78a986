"""Replay recorded events into a growing file, the way winlogbeat's file output writes.

Behind `winlogwatch demo`: the sample logs are written line by line, one write
per event, at the pace their timestamps give (times `speed`), with the rotation
winlogbeat 7.x does (`winlogbeat.ndjson` renamed to `winlogbeat.ndjson.1`), so the
demo exercises the real follower and detector rather than a canned screen.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

#: The longest pause between two events, in replayed seconds: a quiet minute in a
#: recording should not leave the demo silent.
MAX_GAP = 1.5


def sample_files(folder: Path) -> list[Path]:
    """The sample logs to replay, in a fixed order."""
    return sorted(folder.glob("*.ndjson"))


def event_time(line: bytes) -> float | None:
    """The event's `@timestamp` as epoch seconds, or None when it has none."""
    try:
        stamp = orjson.loads(line).get("@timestamp")
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None


class Replayer:
    """Write `sources` into `target` at a realistic pace until done or stopped."""

    def __init__(
        self,
        sources: list[Path],
        target: Path,
        speed: float = 1.0,
        rotate_bytes: int = 2 * 1024 * 1024,
        loop: bool = True,
    ):
        if speed <= 0:
            raise ValueError("speed must be above zero")
        self.sources = sources
        self.target = target
        self.speed = speed
        self.rotate_bytes = rotate_bytes
        self.loop = loop
        self.written = 0

    def run(self, stop: threading.Event) -> None:
        """Blocking; returns once all is written (unless looping) or on stop."""
        while not stop.is_set():
            for source in self.sources:
                if not self._replay(source, stop):
                    return
            if not self.loop:
                return

    def _replay(self, source: Path, stop: threading.Event) -> bool:
        previous = None
        with open(source, "rb") as lines:
            for line in lines:
                if not line.endswith(b"\n"):
                    line += b"\n"
                stamp = event_time(line)
                if previous is not None and stamp is not None:
                    gap = min(max(stamp - previous, 0.0), MAX_GAP) / self.speed
                    if gap and stop.wait(gap):
                        return False
                if stamp is not None:
                    previous = stamp
                elif stop.is_set():
                    return False
                self._write(line)
        return True

    def _write(self, line: bytes) -> None:
        try:
            size = self.target.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(line) > self.rotate_bytes:
            self._rotate()
        # One write call per event, appended, as winlogbeat does: a reader never
        # sees half a line unless it reads in the middle of that call.
        with open(self.target, "ab") as out:
            out.write(line)
        self.written += 1

    def _rotate(self, keep: int = 3) -> None:
        """Shift `name.1` to `name.2` ..., `name` to `name.1`, dropping the oldest."""

        def numbered(n: int) -> Path:
            return self.target.with_name(f"{self.target.name}.{n}")

        for n in range(keep - 1, 0, -1):
            if numbered(n).exists():
                os.replace(numbered(n), numbered(n + 1))
        os.replace(self.target, numbered(1))
        log.debug("rotated %s", self.target)
