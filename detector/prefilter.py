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
does not hold the strings of any one rule (all of them: `lsass.exe` alone is not
enough) is counted as an event, not reported as bad; so are bytes that are not
UTF-8 in such a line left unrepaired and uncounted. `--every-line` parses every
line and reports every bad one.

A rule that gives no literal at all (`process where true`) needs every line,
and so turns the prefilter off; so does Hyperscan not being installed.

Cost. Every place a searched string occurs is a call back into Python, and
every extra pattern slows Hyperscan's pass. So a block longer than PROBE_BYTES
is first probed: its start is searched for all the rules' strings, and for each
rule the group seen on the fewest probed lines becomes its *anchor*. The whole
block is then searched for the anchors only (and for what makes any line a
candidate); a line holding a rule's anchor is checked for its other groups by a
plain search of the lowered line (ASCII case ignored, as Hyperscan's caseless
mode does). Same candidates, a fraction of the calls: on a busy host `lsass.exe`
is on one line in six, `unknown` on few. A poor anchor only costs time.

Where most lines of a block are candidates (a stream in which every line names
lsass), looking for the rules' strings costs more than it saves: the probe then
hands the block on whole (`DENSE`), which only adds candidates.

Every choice depends on the block's own bytes, never on the blocks before it,
so a file checked in parts by several processes gets the same candidates.

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

#: Literal groups per rule that are looked for. More would be more selective, but
#: every group is a pattern in each probe and each short block.
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

#: Anchor choices (one group per rule) a prefilter builds a database for. With
#: many rules the choices a stream leads to could be many; past this many, a
#: block whose choice is new is searched for every group instead (same lines).
MAX_ANCHORINGS = 16

#: When more than this share of the lines in a block's first PROBE_BYTES (at
#: least DENSE_MIN_LINES of them) are candidates, all its lines are.
DENSE = 0.5
DENSE_MIN_LINES = 16
PROBE_BYTES = 64 * 1024

# Characters of a number's text as the shapes write it (`repr` of a float too).
# A string made only of these is never required; that also drops a few words
# (`fine`, `nine`), which costs only selectivity.
_NUMBERISH = frozenset("0123456789.e+-infa")


class Prefilter:
    """Candidate lines of a block, for a fixed set of rules. Build with `for_rules`.

    Each chosen literal group is its own Hyperscan pattern, a plain set of
    strings; the lines that hold one of every group of some rule are found here,
    by intersecting the lines each group was seen on (a short block) or by
    looking for the other groups on the lines of an anchor. Chaining the groups in one
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
        # is a candidate already: only the escape and the guard strings, which
        # `guarded` lists the lines of.
        groups = [b"|".join(map(_escaped, group)) for group in literal_sets]
        self._groups = groups
        self._lowered = [
            tuple(text.encode().lower() for text in g) for g in literal_sets
        ]
        self._first_always = len(groups)
        caseless = [hyperscan.HS_FLAG_CASELESS] * len(groups)
        self._sparse = _database(groups + _ALWAYS, caseless + [0] * len(_ALWAYS))
        # Anchor choice (one group id per rule): a database of those groups and
        # _ALWAYS, built when a block first needs it.
        self._anchored: dict[tuple[int, ...], object] = {}
        self._guard = sorted({text.encode() for text in guard})
        guard_pattern = [b"|".join(_escaped(text.decode()) for text in self._guard)]
        dense = _ALWAYS[:1] + (guard_pattern if self._guard else [])
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

        `block` is `lines` whole lines, each ending with a newline. A block of
        at most PROBE_BYTES is searched for every string at once. A longer one
        is probed first (see the module's notes): handed on whole when most
        probed lines are candidates, else searched for the rules' anchors.
        """
        if len(block) <= PROBE_BYTES:
            seen = self._seen(self._sparse, block)
            return self._finish(block, seen, self._candidates(block, seen))
        probe = block[: block.rfind(b"\n", 0, PROBE_BYTES) + 1]
        probed = probe.count(b"\n")
        seen = self._seen(self._sparse, probe)
        if (
            probed >= DENSE_MIN_LINES
            and len(self._candidates(probe, seen)) > DENSE * probed
        ):
            seen = self._seen(self._dense, block)
            self.guarded = seen.get(0, set()) | seen.get(1, set())
            return None
        # Ties go to the earlier group: the longer string (see chosen_groups).
        anchors = tuple(
            min(ids, key=lambda g: len(seen.get(g, ()))) for ids in self._needs
        )
        database = self._anchored_database(anchors)
        if database is None:
            seen = self._seen(self._sparse, block)
            return self._finish(block, seen, self._candidates(block, seen))
        seen = self._seen(database, block)
        return self._finish(block, seen, self._candidates(block, seen, anchors))

    def _candidates(
        self, block: bytes, seen: dict[int, set[int]], anchors: tuple[int, ...] = ()
    ) -> set[int]:
        """Candidate lines of block, from where each pattern was `seen`: every
        group's lines, or (given `anchors`) only each rule's anchor's lines,
        whose other groups are looked for here."""
        starts: set[int] = set()
        for pattern, found in seen.items():
            if pattern >= self._first_always:
                starts |= found
        if not block.startswith(b"{"):
            starts.add(0)
        if not anchors:
            for ids in self._needs:
                if all(pattern in seen for pattern in ids):
                    starts |= set.intersection(*(seen[pattern] for pattern in ids))
            return starts
        lowered: dict[int, bytes] = {}
        for anchor, ids in zip(anchors, self._needs, strict=True):
            others = [self._lowered[pattern] for pattern in ids if pattern != anchor]
            for start in seen.get(anchor, ()):
                if start in starts:
                    continue
                line = lowered.get(start)
                if line is None:
                    line = block[start : block.index(b"\n", start)].lower()
                    lowered[start] = line
                if all(any(text in line for text in group) for group in others):
                    starts.add(start)
        return starts

    def _finish(
        self, block: bytes, seen: dict[int, set[int]], starts: set[int]
    ) -> list[int]:
        """Set `guarded` for these candidates; their starts, ascending."""
        escaped = seen.get(self._first_always, set())
        self.guarded = {
            start
            for start in starts
            if start in escaped or self._holds_guard(block, start)
        }
        return sorted(starts)

    def _anchored_database(self, anchors: tuple[int, ...]):
        """The database for this choice of anchors; None past MAX_ANCHORINGS."""
        database = self._anchored.get(anchors)
        if database is None and len(self._anchored) < MAX_ANCHORINGS:
            ids = sorted(set(anchors))
            always = range(self._first_always, self._first_always + len(_ALWAYS))
            database = _database(
                [self._groups[i] for i in ids] + _ALWAYS,
                [hyperscan.HS_FLAG_CASELESS] * len(ids) + [0] * len(_ALWAYS),
                ids + list(always),
            )
            self._anchored[anchors] = database
        return database

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


def _database(patterns: list[bytes], flags: list[int], ids: list[int] | None = None):
    """A Hyperscan block-mode database; pattern i is reported as ids[i] (i by
    default). Kept in the build cache."""
    ids = list(range(len(patterns))) if ids is None else ids

    def build():
        database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        database.compile(
            expressions=patterns,
            ids=ids,
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

    inputs = [hyperscan.__version__.encode(), repr((flags, ids)).encode(), *patterns]
    return build_cache.load_or_build("hyperscan", inputs, build, hyperscan.dumpb, load)


def chosen_groups(groups: list[list[str]]) -> list[list[str]]:
    """The groups most likely selective (longest shortest string), MAX_GROUPS at
    most, longest first: each is a pattern in every probe."""
    ranked = sorted(groups, key=lambda group: min(map(len, group)), reverse=True)
    return ranked[:MAX_GROUPS]


def _escaped(text: str) -> bytes:
    # Every byte as \xHH: no character can mean anything to the pattern parser.
    return "".join(f"\\x{byte:02x}" for byte in text.encode()).encode()
