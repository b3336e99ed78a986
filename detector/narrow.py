"""Clear a line of every rule by decoding only the fields the rules read.

Parsing a whole 2 KB event costs most of what checking it costs, yet a rule reads
five or six of its hundred-odd fields. On a stream where many lines hold the
rules' strings (the prefilter's candidates) but few match, most of the time went
into building objects no rule looks at. `NarrowReader` decodes a line with
msgspec into nested dicts that hold only the fields the loaded rules read, plus
the few `shapes.to_ecs` reads to name a winlogbeat 7 document, and runs the
same `to_ecs` and the same compiled queries on that.

It only ever answers "no rule matches this winlogbeat 7 event"; anything else
(a match, another layout, a type it did not expect, a decoding error) sends the
line to the full path, which then decides as it always did. Alerts are always
built from the full parse. The answer is the full path's answer as long as the
narrow document holds every field the full one would give the rules, which fails
in three ways, each kept away:

- a dotted key (`"winlog.event_data.GrantedAccess": ...`) that the full path
  would expand onto a field read here: the caller sends only lines holding none
  of `guard_strings` (`"name.` for every name on a path read here);
- a key spelled with an escape (`"pro\\u0063ess"`): the same caller sends no
  line holding an escape of a printable ASCII character;
- a search hit's wrapper (`_source`, `_id`, `_index`): seen here, and sent on.

A line holding bytes that are not UTF-8 goes to the full path too, which repairs
and counts it (msgspec does not look inside strings it skips).

Known shortcoming: what orjson refuses but msgspec reads in a skipped field (a
number past a double's range such as `1e400`; arrays nested past `lines.MAX_DEPTH`)
leaves such a line counted as an event here, where `--every-line` reports it as
unusable. Neither can hide or change a field a rule reads.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec

from detector.rules import Rule
from detector.shapes import HIT_KEYS, WINLOGBEAT7_SIGNS, to_ecs

_SHAPE = "winlogbeat7"

#: Verdicts kept at most; all are forgotten when it is reached.
MEMO_LIMIT = 4096

# A key whose presence alone is read: its value is kept undecoded.
_PRESENCE = "presence"


class NarrowReader:
    """Decode the rules' fields of a line and evaluate the rules on them."""

    def __init__(self, rules: list[Rule]):
        self._queries = [rule.query for rule in rules]
        paths = {field for rule in rules for field in rule.query.fields}
        paths.update(WINLOGBEAT7_SIGNS)
        tree: dict[str, Any] = {}
        for path in sorted(paths):
            _add_path(tree, path.split("."))
        for key in HIT_KEYS:
            tree.setdefault(key, _PRESENCE)
        self._no_hit_keys = frozenset(HIT_KEYS).isdisjoint
        self._decode = msgspec.json.Decoder(_typed(tree, "Narrow")).decode
        self._encode = msgspec.json.Encoder().encode
        # The narrow document, as JSON: whether it is cleared (see `no_match`).
        self._cleared: dict[bytes, bool] = {}
        self._timestamp_unread = "@timestamp" not in paths - set(WINLOGBEAT7_SIGNS)
        names = set(_names(tree))
        #: A line holding one of these may have a dotted key the full path would
        #: expand onto a field read here: it must not be given to `no_match`.
        self.guard_strings = sorted(f'"{name}.' for name in names)

    def no_match(self, data: bytes) -> str | None:
        """The shape name when `data`, a line with none of `guard_strings` and no
        escape of a printable ASCII character, is a winlogbeat 7 event no rule
        matches; None when only the full path can tell."""
        try:
            doc = self._decode(data)
        except Exception:  # malformed, a type not expected, RecursionError
            return None
        if not data.isascii():
            try:
                data.decode()
            except UnicodeDecodeError:
                return None
        if not self._no_hit_keys(doc):
            return None
        if self._timestamp_unread and type(doc.get("@timestamp")) is str:
            # Read by no rule; `to_ecs` only asks whether it is a list. Dropped,
            # it no longer makes every line's document a different one.
            del doc["@timestamp"]
        # A stream repeats the few values rules read (the same process asking for
        # the same access from the same code): the verdict on a document is kept.
        key = self._encode(doc)
        cleared = self._cleared.get(key)
        if cleared is None:
            cleared = self._clears(doc)
            if len(self._cleared) >= MEMO_LIMIT:
                self._cleared.clear()
            self._cleared[key] = cleared
        return _SHAPE if cleared else None

    def _clears(self, doc: dict) -> bool:
        """True when `to_ecs` calls doc winlogbeat 7 and no rule matches it."""
        shape, view = to_ecs(doc, undotted=True)
        if shape != _SHAPE:
            return False
        return not any(query.matches(view) for query in self._queries)


def _add_path(tree: dict[str, Any], parts: list[str]) -> None:
    """Add one field path to a tree of names; None marks a leaf (any value)."""
    node = tree
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        child = node.get(part, False)
        if last:
            if child is False:
                node[part] = None
            # A name both read whole and descended into is read whole: no-op.
            return
        if child is None:
            return  # a parent read whole already holds this path
        if child is False:
            child = node[part] = {}
        node = child


def _typed(tree: dict[str, Any], name: str) -> type:
    """A TypedDict for `tree`: every key optional, leaves Any, unknown keys
    skipped by the decoder."""
    fields: dict[str, Any] = {}
    for index, (key, child) in enumerate(sorted(tree.items())):
        if child is None:
            fields[key] = Any
        elif child is _PRESENCE:
            fields[key] = msgspec.Raw
        else:
            fields[key] = _typed(child, f"{name}_{index}")
    return TypedDict(name, fields, total=False)  # type: ignore[operator]


def _names(tree: dict[str, Any]):
    for key, child in tree.items():
        yield key
        if type(child) is dict:
            yield from _names(child)
