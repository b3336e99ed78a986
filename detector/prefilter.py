"""Find, in a block of whole lines, the few that need parsing.

Almost no line of a real stream can satisfy a rule, and parsing JSON is most of
what checking a line costs. Every compiled query can name strings that the JSON
text of any event it matches must contain (`Query.literals`); one pass of
Hyperscan over a whole read buffer finds the lines holding them, and only those
lines are parsed and evaluated. Every other line is counted and let go.

Sound first. A line is handed on for the full check whenever text could hide a
required string from a byte search, or whenever it may not be a well-formed
event (so that bad lines are still reported). A line is a *candidate* when:

- for some rule, it holds one alternative of each of that rule's most selective
  literal groups (anywhere on the line, ASCII case ignored);
- it holds a `\\u00XX` escape of a printable ASCII character (`\\u006csass` is
  `lsass`; required strings are ASCII, so no other escape can hide one);
- its outline is not that of one JSON object: it does not start with `{` or end
  with `}` (before an optional `\\r`): a torn write, a blank line, a BOM, a list;
- it holds what no JSON text holds and broken lines often do: a raw control
  character (NUL padding after a crash), two objects run together (`}{`), a
  quote right after an empty string (three quotes in a row).

Strings made only of digits, `.`, `e`, `+`, `-` (and `inf`, `nan`) are never
required: the event's value may come from a JSON number the line spells another
way (`1e1` is read as 10.0 and written "10" by the shapes). Values the shape
mapping makes up rather than copies (`event.category` from the event id, a
reformatted `@timestamp`) are not in the line's text either; the caller names
those fields, and comparisons on them give no literal.

Known shortcoming: a line shaped `{...}` but broken inside in some other way
(`{"a": nope}`, a missing comma, nesting deeper than the reader accepts) that
holds none of the rules' strings is counted as an event, not reported as bad.
`--every-line` parses every line and reports every bad one.

A rule that gives no literal at all (`process where true`) needs every line,
and so turns the prefilter off; so does Hyperscan not being installed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from detector.rules import Rule

log = logging.getLogger(__name__)

try:  # Wheels exist for Linux and macOS; elsewhere every line is parsed.
    import hyperscan
except ImportError:  # pragma: no cover - depends on the platform
    hyperscan = None

#: Literal groups per rule that Hyperscan looks for. More would be more selective,
#: but every occurrence of every string costs a call back into Python.
MAX_GROUPS = 3

# Each of these makes a line a candidate whatever the rules (see above).
_ALWAYS = [
    # A `\u` escape of a character from space to `~`.
    rb"\\u00[2-7][0-9a-fA-F]",
    # A line that does not start with `{`, or does not end with `}` before its
    # newline. The first line of a block has no newline before it: checked apart.
    rb"\n[^{]|[^}\r]\n|[^}]\r\n",
    # Control characters other than tab, CR and LF are never raw in JSON text.
    rb"[\x00-\x08\x0b\x0c\x0e-\x1f]",
    # Two objects on one line, or three quotes in a row: neither is JSON (inside
    # a string `}{` is, and only costs that line a parse).
    rb"}[ \t]*{",
    rb'""[^,}\]:\s]',
]

# Characters of a number's text as the shapes write it (`repr` of a float too).
_NUMBERISH = frozenset("0123456789.e+-infa")


class Prefilter:
    """Candidate lines of a block, for a fixed set of rules. Build with `for_rules`.

    Each chosen literal group is its own Hyperscan pattern, a plain set of
    strings; the lines that hold one of every group of some rule are found here,
    by intersecting the lines each group was seen on. Chaining the groups in one
    pattern (`a[^\\n]*b|b[^\\n]*a`) was faster, but Hyperscan 5.4 (the wheel's
    Vectorscan) missed such caseless patterns with alternatives once the strings
    lay some 30 bytes apart: tests/test_prefilter.py keeps that line.

    Not thread-safe: Hyperscan's scratch space belongs to the database, so give
    each thread its own (each `Detector` builds one).
    """

    def __init__(self, needs: list[list[list[str]]]):
        """`needs`: per rule, the groups a line must hold one string of each of."""
        literal_sets: dict[tuple[str, ...], int] = {}
        self._needs: list[list[int]] = []
        for groups in needs:
            ids = [literal_sets.setdefault(tuple(g), len(literal_sets)) for g in groups]
            self._needs.append(ids)
        patterns = [b"|".join(map(_escaped, group)) for group in literal_sets]
        self._first_always = len(patterns)
        patterns += _ALWAYS
        flags = [hyperscan.HS_FLAG_CASELESS] * self._first_always
        flags += [0] * len(_ALWAYS)
        self._database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._database.compile(
            expressions=patterns,
            ids=list(range(len(patterns))),
            elements=len(patterns),
            flags=flags,
        )
        self._matches: list[tuple[int, int]] = []

    @classmethod
    def for_rules(
        cls, rules: Iterable[Rule], unless: frozenset[str] = frozenset()
    ) -> Prefilter | None:
        """A prefilter for `rules`, or None when every line must be parsed.

        `unless` names the fields whose values a line's text need not hold.
        """
        if hyperscan is None:
            log.debug("hyperscan is not installed: every line is parsed")
            return None
        needs = []
        for rule in rules:
            groups = [
                group
                for group in rule.query.literals(unless)
                if not any(set(text) <= _NUMBERISH for text in group)
            ]
            if not groups:
                log.debug("rule %r names no literal: every line is parsed", rule.name)
                return None
            needs.append(chosen_groups(groups))
        if not needs:
            return None
        return cls(needs)

    def candidates(self, block: bytes) -> list[int]:
        """Start offsets, ascending, of the lines of `block` to parse.

        `block` is whole lines, each ending with a newline.
        """
        matches = self._matches
        matches.clear()
        self._database.scan(block, match_event_handler=self._on_match)
        seen: dict[int, set[int]] = {}  # pattern id: starts of the lines it is on
        rfind = block.rfind
        for pattern, end in matches:
            start = rfind(b"\n", 0, end - 1) + 1
            seen.setdefault(pattern, set()).add(start)

        starts: set[int] = set()
        for pattern, lines in seen.items():
            if pattern >= self._first_always:
                starts |= lines
        for ids in self._needs:
            if all(pattern in seen for pattern in ids):
                starts |= set.intersection(*(seen[pattern] for pattern in ids))
        if not block.startswith(b"{"):
            starts.add(0)
        return sorted(starts)

    def _on_match(self, pattern: int, _start: int, end: int, _flags: int, _ctx):
        self._matches.append((pattern, end))


def chosen_groups(groups: list[list[str]]) -> list[list[str]]:
    """The most selective groups (longest shortest string), MAX_GROUPS at most:
    each costs a callback for every place its strings occur."""
    ranked = sorted(groups, key=lambda group: min(map(len, group)), reverse=True)
    return ranked[:MAX_GROUPS]


def _escaped(text: str) -> bytes:
    # Every byte as \xHH: no character can mean anything to the pattern parser.
    return "".join(f"\\x{byte:02x}" for byte in text.encode()).encode()
