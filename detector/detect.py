"""The per-line path: one line's bytes in, alerts (or why it is unusable) out."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from detector.alerts import build_alert
from detector.lines import LineError, RawLine, decode
from detector.model import Alert, BadLine
from detector.rules import Rule
from detector.shapes import to_ecs


@dataclass(slots=True)
class Counters:
    """What the detector has seen, for summaries and the dashboard's header."""

    lines: int = 0
    events: int = 0
    alerts: int = 0
    bad: int = 0
    repaired: int = 0
    shapes: Counter = field(default_factory=Counter)


class Detector:
    """Evaluate every loaded rule on every line handed to it."""

    def __init__(self, rules: list[Rule]):
        self.rules = rules
        self.counters = Counters()

    def check(self, raw: RawLine, path: str, origin: str) -> list[Alert] | BadLine:
        """Evaluate one line of `path`. `origin` identifies the file (see event_key)."""
        counters = self.counters
        counters.lines += 1
        try:
            obj, repaired = decode(raw)
        except LineError as error:
            counters.bad += 1
            return BadLine(path, raw.number, raw.offset, str(error))
        if obj is None:
            return []

        counters.events += 1
        if repaired:
            counters.repaired += 1
        shape, view = to_ecs(obj)
        counters.shapes[shape] += 1

        matched = [rule for rule in self.rules if rule.query.matches(view)]
        if not matched:
            return []
        # The line as written, less its line ending and the file's BOM.
        text = raw.data.decode("utf-8", errors="replace")
        text = text.removeprefix("\ufeff").removesuffix("\r")
        counters.alerts += len(matched)
        return [
            build_alert(rule, view, text, path, raw.offset, raw.number, origin, shape)
            for rule in matched
        ]
