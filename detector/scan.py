"""Scan files once, start to end: the headless batch path behind `winlogwatch scan`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from detector.detect import Detector
from detector.lines import LineSplitter
from detector.model import Alert, BadLine
from detector.paths import expand

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


@dataclass(slots=True)
class ScanResult:
    """What a scan read, and what it could not."""

    files: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "path: reason"


def scan_paths(
    paths: Iterable[str],
    detector: Detector,
    on_alert: Callable[[Alert], None],
    on_bad_line: Callable[[BadLine], None],
) -> ScanResult:
    """Read every file `paths` name (`-` is stdin) and hand on alerts and bad lines."""
    result = ScanResult()
    for path in paths:
        if path == "-":
            result.files.append("-")
            scan_stream(sys.stdin.buffer, "-", "stdin", detector, on_alert, on_bad_line)
            continue
        files = expand(path)
        if not files:
            result.unreadable.append(f"{path}: no such file, or no event files in it")
            continue
        for name in files:
            try:
                with open(name, "rb") as stream:
                    info = os.fstat(stream.fileno())
                    origin = f"{info.st_dev}:{info.st_ino}"
                    scan_stream(stream, name, origin, detector, on_alert, on_bad_line)
            except OSError as error:
                result.unreadable.append(f"{name}: {error.strerror or error}")
                continue
            result.files.append(name)
    return result


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
