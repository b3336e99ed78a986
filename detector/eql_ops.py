"""Comparison tests for one EQL leaf, built once per query and run on every event.

Each builder returns `test(values) -> bool` over the values a field names. Event
values are compared as Elasticsearch compares keyword fields: an integer is its
decimal text, a boolean is `true`/`false`, a float is its shortest repr, and an
object matches nothing. A leaf holds when any one value satisfies it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import re2

Test = Callable[[Sequence[Any]], bool]
TextCheck = Callable[[str], Any]

# One way to read each numeric text: `\d+\.?\d*` would split a long run of digits
# every possible way before failing, quadratic on a hostile value.
_NUMERIC_TEXT = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def text_of(value: Any) -> str | None:
    """The keyword text Elasticsearch would index for a scalar; None for objects."""
    kind = value.__class__
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return repr(value)
    return None


def number_of(text: str) -> int | float | None:
    """The number a numeric string spells, or None when it spells none."""
    if not _NUMERIC_TEXT.fullmatch(text):
        return None
    if text.lstrip("-").isdigit():
        try:
            return int(text)
        except ValueError:
            # More digits than Python converts to int: a float (inf) still orders.
            return float(text)
    return float(text)


def equals(texts: Iterable[str], numbers: Iterable[float], fold: bool) -> Test:
    """`==` and `in` (and their `~` forms): any value equal to one of the constants.

    `texts` are the string constants plus the decimal text of numeric ones; an event
    number also equals a numeric constant of the same value (10 == 10.0).
    """
    texts = frozenset(text.lower() for text in texts) if fold else frozenset(texts)
    numbers = frozenset(numbers)

    def test(values: Sequence[Any]) -> bool:
        for value in values:
            # Strings are nearly every value seen; test them without a call.
            if value.__class__ is str:
                if (value.lower() if fold else value) in texts:
                    return True
            elif _equal(value, texts, numbers, fold):
                return True
        return False

    return test


def differs(texts: Iterable[str], numbers: Iterable[float], fold: bool) -> Test:
    """`!=` and `not in`: any scalar value equal to none of the constants."""
    # Limitation: on a list-valued field this is "some element differs" (the
    # any-element rule every operator follows); Elasticsearch leaves arrays undefined.
    texts = frozenset(text.lower() for text in texts) if fold else frozenset(texts)
    numbers = frozenset(numbers)

    def test(values: Sequence[Any]) -> bool:
        for value in values:
            if text_of(value) is not None and not _equal(value, texts, numbers, fold):
                return True
        return False

    return test


def _equal(value: Any, texts: frozenset, numbers: frozenset, fold: bool) -> bool:
    kind = value.__class__
    if kind is str:
        return (value.lower() if fold else value) in texts
    if (kind is int or kind is float) and value in numbers:
        return True
    text = text_of(value)
    return text is not None and (text.lower() if fold else text) in texts


def is_null(values: Sequence[Any]) -> bool:
    """`field == null`: the field is missing or null."""
    return not values


def is_present(values: Sequence[Any]) -> bool:
    """`field != null`: the field holds something."""
    return bool(values)


def orders(symbol: str, constant: str | int | float) -> Test:
    """`<`, `<=`, `>`, `>=`: numeric when both sides are numbers, else as text."""
    compare = {
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
    }[symbol]
    if isinstance(constant, str):
        constant_text, constant_number = constant, number_of(constant)
    else:
        constant_text, constant_number = text_of(constant), constant

    def test(values: Sequence[Any]) -> bool:
        for value in values:
            kind = value.__class__
            if kind is int or kind is float:
                number = value
            elif kind is str:
                number = number_of(value)
            else:
                number = None
            if number is not None and constant_number is not None:
                if compare(number, constant_number):
                    return True
                continue
            text = text_of(value)
            if text is not None and compare(text, constant_text):
                return True
        return False

    return test


def text_test(check: TextCheck, fold: bool) -> Test:
    """A test that applies `check` to each value's text (lower-cased when folding)."""
    # Limitation: folding is Python's `str.lower`; Lucene's case-insensitive
    # matching can differ on a few non-ASCII characters.
    if fold:

        def test(values: Sequence[Any]) -> bool:
            for value in values:
                text = value if value.__class__ is str else text_of(value)
                if text is not None and check(text.lower()):
                    return True
            return False

    else:

        def test(values: Sequence[Any]) -> bool:
            for value in values:
                text = value if value.__class__ is str else text_of(value)
                if text is not None and check(text):
                    return True
            return False

    return test


def wildcard_check(patterns: Sequence[str]) -> TextCheck:
    """Whole-value match against any of `patterns` (`*` any run, `?` one character).

    Patterns must already be lower-cased when the comparison folds case. Plain
    values become a set lookup, `x*`/`*x`/`*x*` string methods, the rest `_glob`.
    """
    # Limitation: `*` and `?` are always wildcards; there is no way to match them
    # literally with `:` or `like` (use `==` or `in`).
    exact: set[str] = set()
    prefixes: list[str] = []
    suffixes: list[str] = []
    inner: list[str] = []
    general: list[str] = []
    for pattern in patterns:
        core = pattern.strip("*")
        if "*" in core or "?" in core:
            general.append(pattern)
        elif core == pattern:
            exact.add(pattern)
        elif not core:
            return _any_text
        elif pattern == "*" + core + "*":
            inner.append(core)
        elif pattern.startswith("*") and not pattern.endswith("*"):
            suffixes.append(core)
        elif pattern.endswith("*") and not pattern.startswith("*"):
            prefixes.append(core)
        else:
            general.append(pattern)

    checks: list[TextCheck] = []
    if exact:
        checks.append(frozenset(exact).__contains__)
    if prefixes:
        starts = tuple(prefixes)
        checks.append(lambda text: text.startswith(starts))
    if suffixes:
        ends = tuple(suffixes)
        checks.append(lambda text: text.endswith(ends))
    if inner:
        checks.append(_contains_any(inner))
    checks.extend(_glob(pattern) for pattern in general)
    return _first_of(checks)


class RegexError(ValueError):
    """A rule's regular expression that cannot be used; `index` says which one."""

    def __init__(self, message: str, index: int):
        super().__init__(message)
        self.index = index


def regex_check(patterns: Sequence[str], fold: bool) -> TextCheck:
    """Whole-value regular-expression match against any of `patterns`.

    The match runs on RE2, in time linear in the value: a rule's `(a+)+b` cannot
    stall on an attacker's `aaaa…c`, as it can with a backtracking engine such as
    Python's `re` (Lucene, behind Elasticsearch, runs regexps as automata too).
    Raises `RegexError` for a pattern that cannot be used.
    """
    # Limitation: RE2's syntax (Perl's, like Python's) stands in for Lucene's;
    # they agree on common patterns but differ in corners (Lucene's `<1-10>`,
    # `@`, `&`, `~`, character classes, and its lack of lazy quantifiers and
    # anchors). `\w`, `\d`, `\s` are ASCII-only in both.
    options = re2.Options()
    options.dot_nl = True  # DOTALL: Lucene's `.` takes a newline too
    options.case_sensitive = not fold
    options.never_capture = True  # only whether it matches is asked
    options.log_errors = False  # RE2 would print refused patterns on stderr
    for index, pattern in enumerate(patterns):
        _check_regex(pattern, options, index)
    joined = "|".join(f"(?:{pattern})" for pattern in patterns)
    try:
        fullmatch = re2.compile(joined, options).fullmatch
    except re2.error as error:  # each fits RE2's memory budget, all together not
        raise RegexError(_re2_message(error), 0) from None

    def check(text: str) -> bool:
        try:
            return fullmatch(text) is not None
        except UnicodeEncodeError:
            # Half a surrogate pair has no UTF-8 form for RE2: match it as U+FFFD.
            return fullmatch(_without_lone_surrogates(text)) is not None

    return check


def _check_regex(pattern: str, options: re2.Options, index: int) -> None:
    """Refuse a pattern RE2 cannot run, or Python's `re` cannot parse."""
    try:
        re2.compile(pattern, options)
    except re2.error as error:
        raise RegexError(_re2_message(error), index) from None
    # RE2 silently reads a repeat count it cannot take (`a{4294967296}`) as the
    # literal text `{4294967296}`; Python's parser refuses it, as Lucene does.
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as error:
        raise RegexError(f"invalid regular expression: {error}", index) from None


def _re2_message(error: Exception) -> str:
    detail = error.args[0] if error.args else ""
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    message = f"invalid regular expression: {detail}"
    if "perl operator" in detail or re.search(r"escape sequence: \\[1-9]", detail):
        message += (
            " (backreferences and lookaround are not supported: regexes run as"
            " automata, as in Elasticsearch)"
        )
    return message


def _without_lone_surrogates(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def starts_with(prefixes: Sequence[str]) -> TextCheck:
    """`startsWith`: the text begins with one of `prefixes`."""
    starts = tuple(prefixes)
    return lambda text: text.startswith(starts)


def ends_with(suffixes: Sequence[str]) -> TextCheck:
    """`endsWith`: the text ends with one of `suffixes`."""
    ends = tuple(suffixes)
    return lambda text: text.endswith(ends)


def contains(needles: Sequence[str]) -> TextCheck:
    """`stringContains`: the text contains one of `needles`."""
    return _contains_any(list(needles))


def _glob(pattern: str) -> TextCheck:
    """Whole-value match of one pattern with `*` and `?` in it.

    A backtracking regex (`.*a.*b`) takes polynomial time in the value's length,
    and values come from the attacker: a few hundred characters stalled it for
    minutes. Instead the runs between the stars are placed in turn: the first at
    the start, the last at the end, each one between at its leftmost place after
    the one before, which finds a match whenever there is one.
    """
    runs = pattern.split("*")
    if len(runs) == 1:
        whole = _run(pattern)
        return lambda text: len(text) == len(pattern) and bool(whole.match(text))
    head, tail = _run(runs[0]), _run(runs[-1])
    head_length, tail_length = len(runs[0]), len(runs[-1])
    middle = [_run(run) for run in runs[1:-1]]
    least = sum(map(len, runs))

    def check(text: str) -> bool:
        end = len(text) - tail_length
        if len(text) < least or not head.match(text) or not tail.match(text, end):
            return False
        at = head_length
        for run in middle:
            found = run.search(text, at, end)
            if found is None:
                return False
            at = found.end()
        return True

    return check


def _run(text: str) -> re.Pattern:
    """A run between stars as a regex without quantifiers: at each place it is
    tried it costs at most its own length."""
    return re.compile(
        "".join("." if char == "?" else re.escape(char) for char in text), re.DOTALL
    )


def _any_text(text: str) -> bool:
    return True


def _contains_any(needles: list[str]) -> TextCheck:
    if len(needles) == 1:
        needle = needles[0]
        return lambda text: needle in text
    return lambda text: any(needle in text for needle in needles)


def _first_of(checks: list[TextCheck]) -> TextCheck:
    if len(checks) == 1:
        return checks[0]
    return lambda text: any(check(text) for check in checks)
