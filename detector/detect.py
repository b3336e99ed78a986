"""The per-line path: one line's bytes in, alerts (or why it is unusable) out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from detector.alerts import build_alert
from detector.lines import Block, LineError, RawLine, decode
from detector.model import Alert, BadLine
from detector.prefilter import Prefilter
from detector.rules import Rule
from detector.shapes import MADE_UP_FIELDS, to_ecs


@dataclass(slots=True)
class Counters:
    """What the detector has seen, for summaries and the dashboard's header."""

    lines: int = 0
    events: int = 0
    alerts: int = 0
    bad: int = 0
    repaired: int = 0
    skipped: int = 0  # lines the prefilter let go unparsed: no rule could match
    shapes: Counter = field(default_factory=Counter)


class Detector:
    """Evaluate every loaded rule on every line handed to it.

    With `every_line` false, blocks of lines go through a `Prefilter` first and
    only its candidates are parsed; see that module for what it lets go.
    """

    def __init__(self, rules: list[Rule], every_line: bool = False):
        self.rules = rules
        self.counters = Counters()
        self.prefilter = (
            None if every_line else Prefilter.for_rules(rules, MADE_UP_FIELDS)
        )

    def check_lines(
        self,
        items: Iterable[RawLine | Block],
        path: str,
        origin: str,
        alerts: list[Alert],
        bad: list[BadLine],
    ) -> None:
        """Check what `LineSplitter.feed_blocks` gave; add to `alerts` and `bad`."""
        for item in items:
            lines = self._lines_to_parse(item) if type(item) is Block else (item,)
            for raw in lines:
                outcome = self.check(raw, path, origin)
                if type(outcome) is BadLine:
                    bad.append(outcome)
                else:
                    alerts.extend(outcome)

    def _lines_to_parse(self, block: Block) -> Iterator[RawLine]:
        """The lines of a block to check: all of them, or the prefilter's
        candidates (the others only counted)."""
        data, offset, number = block.data, block.offset, block.number
        if self.prefilter is None:
            for line in data.split(b"\n")[:-1]:
                yield RawLine(number, offset, line)
                number += 1
                offset += len(line) + 1
            return
        starts = self.prefilter.candidates(data)
        let_go = block.lines - len(starts)
        counters = self.counters
        counters.lines += let_go
        counters.events += let_go
        counters.skipped += let_go
        position = 0
        for start in starts:
            number += data.count(b"\n", position, start)
            position = start
            end = data.index(b"\n", start)
            yield RawLine(number, offset + start, data[start:end])

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
