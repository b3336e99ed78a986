"""The per-line path: one line's bytes in, alerts (or why it is unusable) out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from detector.alerts import build_alert
from detector.lines import Block, LineError, RawLine, decode
from detector.model import Alert, BadLine
from detector.narrow import SHAPE, NarrowReader
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

    def merge(self, other: Counters) -> None:
        """Add what another detector counted (a scan worker's part) to these."""
        for name in self.__slots__:
            mine = getattr(self, name)
            if isinstance(mine, Counter):
                mine.update(getattr(other, name))
            else:
                setattr(self, name, mine + getattr(other, name))


class Detector:
    """Evaluate every loaded rule on every line handed to it.

    With `every_line` false, blocks of lines go through a `Prefilter` first and
    only its candidates are looked at; see that module for what it lets go. Of
    those, the lines holding none of the narrow reader's guard strings are first
    decoded narrowly (`NarrowReader`, only the fields the rules read), and fully
    parsed only if that cannot clear them. A block the prefilter hands on whole
    is decoded narrowly in one call.
    """

    def __init__(self, rules: list[Rule], every_line: bool = False):
        self.rules = rules
        self.counters = Counters()
        self.narrow = None if every_line else NarrowReader(rules)
        self.prefilter = (
            None
            if every_line
            else Prefilter.for_rules(rules, MADE_UP_FIELDS, self.narrow.guard_strings)
        )
        if self.prefilter is None:
            self.narrow = None

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
            for raw in self.lines_to_check(item):
                outcome = self.check(raw, path, origin)
                if type(outcome) is BadLine:
                    bad.append(outcome)
                else:
                    alerts.extend(outcome)

    def lines_to_check(self, item: RawLine | Block) -> Iterable[RawLine]:
        """The lines of `item` that need `check`: a single line itself; of a
        block, all its lines, or only those the prefilter and the narrow reader
        could not clear (the others only counted). A single line (one that lay
        across two reads) goes through them as a block of one."""
        if self.prefilter is None:
            return (item,) if type(item) is not Block else self._every_line(item)
        if type(item) is not Block:
            if item.oversize:
                return (item,)
            item = Block(item.number, item.offset, item.data + b"\n", 1)
        return self._uncleared_lines(item)

    def _every_line(self, block: Block) -> Iterator[RawLine]:
        data, offset, number = block.data, block.offset, block.number
        for line in data.split(b"\n")[:-1]:
            yield RawLine(number, offset, line)
            number += 1
            offset += len(line) + 1

    def _uncleared_lines(self, block: Block) -> Iterator[RawLine]:
        data, offset, number = block.data, block.offset, block.number
        counters = self.counters
        starts = self.prefilter.candidates(data, block.lines)
        guarded = self.prefilter.guarded
        no_match = self.narrow.no_match
        shapes: Counter = Counter()
        pending = self.narrow.uncleared(data, block.lines) if starts is None else None
        if pending is not None:  # every line a candidate, decoded in one call
            given = 0
            for raw in self._lines_at(block, pending, guarded):
                given += 1
                yield raw
            shapes[SHAPE] += block.lines - given
        elif starts is None:  # every line a candidate, to be read one by one
            start = 0
            for line in data.split(b"\n")[:-1]:
                # A line holding no guard string (see detector.narrow) that the
                # narrow reader clears is counted as an event, never parsed.
                shape = None if start in guarded else no_match(line)
                if shape is None:
                    yield RawLine(number, offset + start, line)
                else:
                    shapes[shape] += 1
                number += 1
                start += len(line) + 1
        else:
            let_go = block.lines - len(starts)
            counters.lines += let_go
            counters.events += let_go
            counters.skipped += let_go
            position = 0  # line `number` starts here; counted on only when needed
            for start in starts:
                line = data[start : data.index(b"\n", start)]
                shape = None if start in guarded else no_match(line)
                if shape is None:
                    number += data.count(b"\n", position, start)
                    position = start
                    yield RawLine(number, offset + start, line)
                else:
                    shapes[shape] += 1
        cleared = shapes.total()
        counters.lines += cleared
        counters.events += cleared
        counters.shapes.update(shapes)

    def _lines_at(
        self, block: Block, indexes: list[int], guarded: set[int]
    ) -> Iterator[RawLine]:
        """The lines of `block` at `indexes` (ascending, from 0) or starting at
        an offset in `guarded`."""
        data, wanted = block.data, set(indexes)
        last_index = indexes[-1] if indexes else -1
        last_start = max(guarded, default=-1)
        index = start = 0
        while index <= last_index or start <= last_start:
            end = data.index(b"\n", start)
            if index in wanted or start in guarded:
                yield RawLine(
                    block.number + index, block.offset + start, data[start:end]
                )
            index += 1
            start = end + 1

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
