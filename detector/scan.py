"""Scan files once, start to end: the headless batch path behind `winlogwatch scan`.

Files are read in chunks of `CHUNK_BYTES` and checked line by line in this
process. With `jobs` > 1, a regular file of at least `parallel_min_bytes` is
instead split into parts that forked worker processes check side by side
(`detector.scan_parts`, which says how the output stays the sequential scan's).
Stdin and smaller files are always read here, one chunk after another.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO

from detector.detect import Detector
from detector.lines import LineSplitter
from detector.model import Alert, BadLine
from detector.paths import expand, why_empty
from detector.scan_parts import (
    CHUNK_BYTES,
    PARALLEL_MIN_BYTES,
    PART_BYTES,
    PartScanner,
    keep_freed_buffers,
    parallel_available,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ScanResult:
    """What a scan read, and what it could not."""

    files: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "path: reason"


def default_jobs() -> int:
    """How many processes a scan may use: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux: no affinity to ask about
        return os.cpu_count() or 1


def scan_paths(
    paths: Iterable[str],
    detector: Detector,
    on_alert: Callable[[Alert], None],
    on_bad_line: Callable[[BadLine], None],
    jobs: int = 1,
    *,
    part_bytes: int = PART_BYTES,
    parallel_min_bytes: int = PARALLEL_MIN_BYTES,
) -> ScanResult:
    """Read every file `paths` name (`-` is stdin) and hand on alerts and bad lines.

    With `jobs` > 1 (and fork available), regular files of `parallel_min_bytes` or
    more are scanned in parts of about `part_bytes` by `jobs` worker processes;
    alerts, bad lines and `detector.counters` come out as a sequential scan's.
    """
    keep_freed_buffers()
    result = ScanResult()
    parts = PartScanner(detector, jobs, part_bytes) if _parallel(jobs) else None
    finished = False
    try:
        for path in paths:
            _scan_path(
                path, detector, on_alert, on_bad_line, parts, parallel_min_bytes, result
            )
        finished = True
    finally:
        if parts is not None:
            parts.close(abort=not finished)
    return result


def _parallel(jobs: int) -> bool:
    if jobs <= 1:
        return False
    if not parallel_available():
        log.debug("no fork on this platform: files are read one chunk at a time")
        return False
    return True


def _scan_path(
    path: str,
    detector: Detector,
    on_alert: Callable[[Alert], None],
    on_bad_line: Callable[[BadLine], None],
    parts: PartScanner | None,
    parallel_min_bytes: int,
    result: ScanResult,
) -> None:
    """Scan what one of the paths given names; a big regular file in parts."""
    if path == "-":
        result.files.append("-")
        scan_stream(sys.stdin.buffer, "-", "stdin", detector, on_alert, on_bad_line)
        return
    files = expand(path)
    if not files:
        result.unreadable.append(f"{path}: {why_empty(path)}")
        return
    for name in files:
        try:
            with open(name, "rb") as stream:
                info = os.fstat(stream.fileno())
                origin = f"{info.st_dev}:{info.st_ino}"
                if (
                    parts is not None
                    and stat.S_ISREG(info.st_mode)
                    and info.st_size >= parallel_min_bytes
                ):
                    deliver = partial(
                        _deliver, on_alert=on_alert, on_bad_line=on_bad_line
                    )
                    parts.scan(stream, name, origin, info.st_size, deliver)
                else:
                    scan_stream(stream, name, origin, detector, on_alert, on_bad_line)
        except OSError as error:
            result.unreadable.append(f"{name}: {error.strerror or error}")
            continue
        result.files.append(name)


def scan_stream(
    stream: BinaryIO,
    path: str,
    origin: str,
    detector: Detector,
    on_alert: Callable[[Alert], None],
    on_bad_line: Callable[[BadLine], None],
) -> None:
    """Run every line of an open binary stream through the detector."""
    splitter = LineSplitter()
    alerts: list[Alert] = []
    bad: list[BadLine] = []
    while chunk := stream.read(CHUNK_BYTES):
        detector.check_lines(splitter.feed_blocks(chunk), path, origin, alerts, bad)
        _deliver(alerts, bad, on_alert, on_bad_line)
    detector.check_lines(splitter.flush(), path, origin, alerts, bad)
    _deliver(alerts, bad, on_alert, on_bad_line)


def _deliver(alerts: list[Alert], bad: list[BadLine], on_alert, on_bad_line) -> None:
    """Hand on, in file order, what one chunk gave; leave both lists empty."""
    # Alerts and bad lines of one chunk come in two lists; merge them by offset
    # so a reader of stderr and stdout together sees them as the file has them.
    if bad and alerts:
        for item in sorted(alerts + bad, key=_offset_of):
            (on_bad_line if type(item) is BadLine else on_alert)(item)
    else:
        for line in bad:
            on_bad_line(line)
        for alert in alerts:
            on_alert(alert)
    alerts.clear()
    bad.clear()


def _offset_of(item: Alert | BadLine) -> int:
    return item.offset
