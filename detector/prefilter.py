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

Where most lines of a block are candidates (a stream in which every line names
lsass), looking for the rules' strings costs more than it saves: a probe of the
block's start decides to hand it on whole (`DENSE`), which only adds candidates.

The same pass lists, in `guarded`, the lines holding a caller's guard strings or
an escape; `detector.narrow` needs to know which lines may hide a key from it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from detector import build_cache
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

#: When more than this share of the lines in a block's first PROBE_BYTES (at
#: least DENSE_MIN_LINES of them) are candidates, all its lines are.
DENSE = 0.5
DENSE_MIN_LINES = 16
PROBE_BYTES = 64 * 1024

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

    def __init__(self, needs: list[list[list[str]]], guard: Iterable[str] = ()):
        """`needs`: per rule, the groups a line must hold one string of each of.
        `guard`: strings (case counts) that put a line in `guarded`."""
        literal_sets: dict[tuple[str, ...], int] = {}
        self._needs: list[list[int]] = []
        for groups in needs:
            ids = [literal_sets.setdefault(tuple(g), len(literal_sets)) for g in groups]
            self._needs.append(ids)
        # Two databases. For most blocks: the rules' strings, then what makes any
        # line a candidate (the escape first). For dense blocks, where every line
        # is a candidate: those last patterns, then the guard strings. Both look
        # for the escape: `guarded` lists its lines.
        groups = [b"|".join(map(_escaped, group)) for group in literal_sets]
        self._first_always = len(groups)
        caseless = [hyperscan.HS_FLAG_CASELESS] * len(groups)
        self._sparse = _database(groups + _ALWAYS, caseless + [0] * len(_ALWAYS))
        self._guard = sorted({text.encode() for text in guard})
        guard_pattern = [b"|".join(_escaped(text.decode()) for text in self._guard)]
        dense = _ALWAYS + (guard_pattern if self._guard else [])
        self._dense = _database(dense, [0] * len(dense))
        self._matches: list[tuple[int, int]] = []
        #: After `candidates`: starts of the candidate lines (all lines, when it
        #: gave None) that hold a guard string or a `\\u00XX` escape.
        self.guarded: set[int] = set()

    @classmethod
    def for_rules(
        cls,
        rules: Iterable[Rule],
        unless: frozenset[str] = frozenset(),
        guard: Iterable[str] = (),
    ) -> Prefilter | None:
        """A prefilter for `rules`, or None when every line must be parsed.

        `unless` names the fields whose values a line's text need not hold;
        lines holding a `guard` string are listed in `guarded`.
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
        return cls(needs, guard)

    def candidates(self, block: bytes, lines: int) -> list[int] | None:
        """Start offsets, ascending, of the lines of `block` to parse; None for
        all of them.

        `block` is `lines` whole lines, each ending with a newline. Where most
        lines are candidates (every line of a stream may name lsass), finding the
        rules' strings costs more than it saves, every occurrence being a call
        into Python. So the rules' strings are first looked for in the block's
        first PROBE_BYTES only; when more than DENSE of those lines are
        candidates, the whole block is handed on. The choice depends on the
        block's bytes alone, never on the blocks before it.
        """
        guarded: set[int] = set()
        if lines >= DENSE_MIN_LINES:
            probe = block[: block.rfind(b"\n", 0, PROBE_BYTES) + 1]
            probed = probe.count(b"\n")
            starts = self._sparse_candidates(probe, None)
            if probed >= DENSE_MIN_LINES and len(starts) > DENSE * probed:
                seen = self._seen(self._dense, block)
                self.guarded = seen.get(0, set()) | seen.get(len(_ALWAYS), set())
                return None
        # The probe's lines are looked at again: cheaper than copying the rest.
        starts = self._sparse_candidates(block, guarded)
        self.guarded = guarded
        return sorted(starts)

    def _sparse_candidates(self, block: bytes, guarded: set[int] | None) -> set[int]:
        """Candidates among the lines of block, found by the rules' strings and
        what every line is looked at for; those holding a guard string or an
        escape are added to `guarded` (unless None)."""
        seen = self._seen(self._sparse, block)
        starts: set[int] = set()
        for pattern, found in seen.items():
            if pattern >= self._first_always:
                starts |= found
        for ids in self._needs:
            if all(pattern in seen for pattern in ids):
                starts |= set.intersection(*(seen[pattern] for pattern in ids))
        if not block.startswith(b"{"):
            starts.add(0)
        if guarded is None:
            return starts
        escaped = seen.get(self._first_always, set())
        for start in starts:
            if start in escaped or self._holds_guard(block, start):
                guarded.add(start)
        return starts

    def _holds_guard(self, block: bytes, start: int) -> bool:
        end = block.find(b"\n", start)
        find = block.find
        return any(find(text, start, end) >= 0 for text in self._guard)

    def _seen(self, database, block: bytes) -> dict[int, set[int]]:
        """Pattern id: starts of the lines of block it is found on."""
        matches = self._matches
        matches.clear()
        database.scan(block, match_event_handler=self._on_match)
        seen: dict[int, set[int]] = {}
        rfind = block.rfind
        for pattern, end in matches:
            start = rfind(b"\n", 0, end - 1) + 1
            seen.setdefault(pattern, set()).add(start)
        return seen

    def _on_match(self, pattern: int, _start: int, end: int, _flags: int, _ctx):
        self._matches.append((pattern, end))


def _database(patterns: list[bytes], flags: list[int]):
    def build():
        database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        database.compile(
            expressions=patterns,
            ids=list(range(len(patterns))),
            elements=len(patterns),
            flags=flags,
        )
        return database

    def load(data: bytes):
        database = hyperscan.loadb(data, hyperscan.HS_MODE_BLOCK)
        database.scratch = hyperscan.Scratch(database)
        # A database built for another CPU (a home folder shared between
        # machines) fails here, not in the middle of a scan: built anew.
        database.scan(b"{}\n", match_event_handler=lambda *_: None)
        return database

    inputs = [hyperscan.__version__.encode(), repr(flags).encode(), *patterns]
    return build_cache.load_or_build("hyperscan", inputs, build, hyperscan.dumpb, load)


def chosen_groups(groups: list[list[str]]) -> list[list[str]]:
    """The most selective groups (longest shortest string), MAX_GROUPS at most:
    each costs a callback for every place its strings occur."""
    ranked = sorted(groups, key=lambda group: min(map(len, group)), reverse=True)
    return ranked[:MAX_GROUPS]


def _escaped(text: str) -> bytes:
    # Every byte as \xHH: no character can mean anything to the pattern parser.
    return "".join(f"\\x{byte:02x}" for byte in text.encode()).encode()
