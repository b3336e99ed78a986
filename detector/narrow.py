"""Clear a line of every rule by decoding only the fields the rules read.

Parsing a whole 2 KB event costs most of what checking it costs, yet a rule reads
five or six of its hundred-odd fields. On a stream where many lines hold the
rules' strings (the prefilter's candidates) but few match, most of the time went
into building objects no rule looks at. `NarrowReader` decodes a line with
msgspec into a frozen Struct that holds only the fields the loaded rules read,
plus the few `shapes.to_ecs` reads to name a winlogbeat 7 document, and runs the
same `to_ecs` and the same compiled queries on it, turned into plain dicts.

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

Values read here are strings, integers within int64 (orjson turns integers past
64 bits into floats), null, and arrays of those. A boolean, a float, an object,
or a bigger integer where a rule reads sends the line to the full path: so no
value kept here equals one of another type (in Python `1 == 1.0 == True`), and
the verdict kept for one narrow document (see below) is never reused for another
that only compares equal to it.

A stream repeats the few values rules read (the same process asking for the same
access from the same code): the verdict on each narrow document is kept, keyed
by its values.

A block of many candidate lines is decoded in one call (`uncleared`), as one JSON
array with an element per line. The array is only used if each element provably
came from one line, in order: joining lines can pair a broken line that opens a
string or an array with the next one (one element from two lines) and a line of
two objects can make up the count. So each line becomes `[MARK, line]`, the lines
still on lines of their own (a string cannot hold a raw newline), where MARK is a
number drawn at random for each block: an element from two lines lowers the
count, and an extra element needs a line that spells MARK, which no line can know.
Anything else (a blank line, a value of an unexpected type) fails the decode, and
the block is then read line by line. Such a block costs up to twice the decoding:
a file with a blank line or an odd value in every block is read about a third
slower than one without.

Known shortcoming: what orjson refuses but msgspec reads in a skipped field (a
number past a double's range such as `1e400`; arrays nested past `lines.MAX_DEPTH`)
leaves such a line counted as an event here, where `--every-line` reports it as
unusable. Neither can hide or change a field a rule reads.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.structs import astuple

from detector.rules import Rule
from detector.shapes import HIT_KEYS, WINLOGBEAT7_SIGNS, to_ecs

#: The only shape the narrow reader clears lines of.
SHAPE = "winlogbeat7"

#: Verdicts kept at most; all are forgotten when it is reached.
MEMO_LIMIT = 4096

_TIMESTAMP = "@timestamp"

# What orjson surely reads as an int too (past 64 bits it gives a float; msgspec
# takes no bound past int64, so unsigned values above it go to the full path).
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Scalar = str | _Int | None
# A value a rule may read, when it is one the narrow path can keep a verdict on.
_Value = _Scalar | tuple[_Scalar, ...] | UnsetType


class _Frozen(msgspec.Struct, frozen=True, gc=False):
    """Base of the generated Structs: hashable (verdicts are kept per document)
    and left out of the cycle collector (they hold no cycles)."""


class NarrowReader:
    """Decode the rules' fields of a line and evaluate the rules on them."""

    def __init__(self, rules: list[Rule]):
        self._queries = [rule.query for rule in rules]
        paths = {field for rule in rules for field in rule.query.fields}
        paths.update(WINLOGBEAT7_SIGNS)
        tree: dict[str, Any] = {}
        for path in sorted(paths):
            _add_path(tree, path.split("."))
        # A plain @timestamp that no rule reads only matters to `to_ecs` for
        # whether it is a list; its value would make every line's document a
        # different one, so it is kept out of the key (see `_cleared_doc`).
        self._timestamp_unread = _TIMESTAMP not in paths - set(WINLOGBEAT7_SIGNS)
        # Order: @timestamp first, the search hit's keys last (see `_cleared_doc`).
        keys = sorted(tree, key=lambda key: (key != _TIMESTAMP, key))
        top = {key: tree[key] for key in keys}
        for key in HIT_KEYS:
            top.pop(key, None)
            top[key] = msgspec.Raw
        self._fields = len(top) - len(HIT_KEYS)
        self._struct = _struct(top, "Narrow")
        self._decode = msgspec.json.Decoder(self._struct).decode
        self._decode_marked = msgspec.json.Decoder(
            list[tuple[int, self._struct]]
        ).decode
        self._cleared: dict[tuple, bool] = {}
        self._no_hit = (UNSET,) * len(HIT_KEYS)
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
        return SHAPE if self._cleared_doc(doc) else None

    def uncleared(self, block: bytes, lines: int) -> list[int] | None:
        """Indexes (from 0) of the lines of `block` that `no_match` would not
        clear, found by decoding the block in one call; None when the block does
        not decode as `lines` objects of the expected types, and must be read a
        line at a time. `block` is whole lines, each ending with a newline; the
        same conditions as for `no_match` apply to each line cleared."""
        if not block.isascii():
            try:
                block.decode()
            except UnicodeDecodeError:
                return None
        mark = secrets.randbits(62)
        opening = b"[%d," % mark
        # Every newline closes its line's element and opens the next: the last
        # opens one of ours, `{}` (two copies of the block in all, not four).
        marked = block.replace(b"\n", b"],\n" + opening)
        try:
            docs = self._decode_marked(b"".join((b"[", opening, marked, b"{}]]")))
        except Exception:
            return None
        if len(docs) != lines + 1:  # two lines made one element (see the module)
            return None
        if docs.pop()[0] != mark:  # ours, after the last line
            return None
        cleared = self._cleared_doc
        pending = []
        for index, (seen, doc) in enumerate(docs):
            if seen != mark:  # a line spelled an element of its own
                return None
            if not cleared(doc):
                pending.append(index)
        return pending

    def _cleared_doc(self, doc) -> bool:
        """True when doc is a winlogbeat 7 event no rule matches."""
        values = astuple(doc)
        if values[self._fields :] != self._no_hit:
            return False
        key = values[: self._fields]
        if self._timestamp_unread and type(key[0]) is not tuple:
            key = key[1:]  # (one shorter: never equal to a key that kept it)
        cleared = self._cleared.get(key)
        if cleared is None:
            cleared = self._clears(doc)
            if len(self._cleared) >= MEMO_LIMIT:
                self._cleared.clear()
            self._cleared[key] = cleared
        return cleared

    def _clears(self, doc) -> bool:
        """True when `to_ecs` calls doc winlogbeat 7 and no rule matches it."""
        plain = _plain(doc)
        if self._timestamp_unread and type(plain.get(_TIMESTAMP)) is not list:
            plain.pop(_TIMESTAMP, None)  # `to_ecs` only asks whether it is a list
        shape, view = to_ecs(plain, undotted=True)
        if shape != SHAPE:
            return False
        return not any(query.matches(view) for query in self._queries)


_encode = msgspec.json.Encoder().encode
_decode_plain = msgspec.json.Decoder().decode


def _plain(doc) -> dict:
    """doc as the dicts and lists a full parse gives, keys spelled as in JSON."""
    return _decode_plain(_encode(doc))


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


def _struct(tree: dict[str, Any], name: str) -> type:
    """A frozen Struct for `tree`, in its order: every field optional (UNSET when
    absent), leaves `_Value`, subtrees Structs; keys not named are skipped by the
    decoder. Fields are named f0, f1, ...: JSON keys need not be identifiers."""
    fields = []
    rename = {}
    for index, (key, child) in enumerate(tree.items()):
        if child is None:
            kind: Any = _Value
        elif child is msgspec.Raw:
            kind = msgspec.Raw | UnsetType
        else:
            kind = _struct(child, f"{name}_{index}") | UnsetType
        fields.append((f"f{index}", kind, UNSET))
        rename[f"f{index}"] = key
    return msgspec.defstruct(name, fields, bases=(_Frozen,), rename=rename)


def _names(tree: dict[str, Any]):
    for key, child in tree.items():
        yield key
        if type(child) is dict:
            yield from _names(child)
