"""Strings every matching event's JSON text must contain, for a byte prefilter.

A literal is only claimed when no matching event could lack it. Three traps make
that harder than "the quoted constant":

- JSON escapes `\\`, `"`, control characters, and may escape `/` and anything
  outside ASCII, so such characters split a constant into runs that are safe.
- A float's text (`repr`) need not be how the line spelled it (`1e5` is
  `100000.0`), so runs that could be part of a number's text are left out.
- Case folding with `str.lower` maps two non-ASCII characters onto ASCII letters
  (U+0130 to `i`, KELVIN SIGN to `k`), which an ASCII-only case-insensitive scan of
  the raw bytes would not see; for folding comparisons `i` and `k` split runs too.

Groups are lists of alternatives, all lower case: each group needs one member.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Groups = list[list[str]]

_MIN_RUN = 3
_FLOAT_TEXT = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")
_NUMBER_CHARS = frozenset("0123456789.e+-")
_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\/]')
_UNSAFE_FOLDED = re.compile(r'[^\x20-\x7e]|["\\/iIkK]')
_WILDCARDS = re.compile(r"[*?]")


def for_value(text: str, fold: bool) -> list[str]:
    """Strings a value equal to `text`, or containing it, must contain.

    The whole constant when JSON would write it verbatim; otherwise its long safe
    runs. Each returned string is required on its own.
    """
    if not text or (_FLOAT_TEXT.fullmatch(text) and not text.lstrip("-").isdigit()):
        return []
    unsafe = _UNSAFE_FOLDED if fold else _UNSAFE
    if not unsafe.search(text):
        return [text.lower()]
    return _runs(unsafe.split(text))


def for_pattern(pattern: str, fold: bool) -> list[str]:
    """Strings any value matching the wildcard `pattern` must contain."""
    if not _WILDCARDS.search(pattern):
        return for_value(pattern, fold)
    unsafe = _UNSAFE_FOLDED if fold else _UNSAFE
    pieces = [run for piece in _WILDCARDS.split(pattern) for run in unsafe.split(piece)]
    return _runs(pieces)


def required(found: list[str]) -> Groups:
    """Groups for one constant: every string found is needed."""
    return [[run] for run in found]


def one_of(alternatives: Sequence[list[str]]) -> Groups:
    """One group for a list of constants, any of which may be the one that matched.

    Empty when some alternative gives nothing: that one could match without any.
    """
    if not alternatives or not all(alternatives):
        return []
    return [_unique(max(found, key=len) for found in alternatives)]


def either(branches: Sequence[Groups]) -> Groups:
    """One group for `or`: each branch's most selective group, merged."""
    if not branches or not all(branches):
        return []
    picks = [max(groups, key=lambda group: min(map(len, group))) for groups in branches]
    return [_unique(text for group in picks for text in group)]


def unique_groups(groups: Groups) -> Groups:
    """Drop repeated groups, keeping the first of each."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for group in groups:
        key = tuple(sorted(group))
        if key not in seen:
            seen.add(key)
            kept.append(list(group))
    return kept


def _runs(pieces: list[str]) -> list[str]:
    return _unique(
        piece.lower()
        for piece in pieces
        if len(piece) >= _MIN_RUN and not set(piece.lower()) <= _NUMBER_CHARS
    )


def _unique(texts) -> list[str]:
    return list(dict.fromkeys(texts))
