"""The EQL event-query grammar, and parse errors that point into the query text.

Only the part of Elasticsearch's EQL that single-event detection rules use is
accepted: `<category> where <condition>`. Sequences, joins, samples and pipes are
refused with a message and a position, never silently ignored.
"""

from __future__ import annotations

import io
import re

import lark
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from detector import build_cache

# Keywords are regexes with `\b` and a priority above NAME: lark's case-insensitive
# string terminals would otherwise lose to NAME and `and` would lex as a field.
# Elasticsearch tokens are case-sensitive lower case; we also take upper case.
_GRAMMAR = r"""
start: category _WHERE _expr

category: ANY | NAME | STRING

_expr: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: NOT not_expr -> negation
    | atom

?atom: "(" _expr ")"
    | value COMPARE value -> comparison
    | value MATCH patterns -> match
    | value NOT? IN "(" value ("," value)* ")" -> membership
    | value -> bare

patterns: value | "(" value ("," value)* ")"

// Calls are values so that `length(x) > 1` parses and can be refused by name.
?value: field | call | STRING | RAW_STRING | NUMBER | TRUE | FALSE | NULL
call: (NAME | TILDE_NAME) "(" (value ("," value)*)? ")"
field: OPTIONAL? _part ("." _part)*
_part: NAME | QUOTED_NAME

_WHERE.2: /where\b/i
_AND.2: /and\b/i
_OR.2: /or\b/i
NOT.2: /not\b/i
ANY.2: /any\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
NULL.2: /null\b/i
IN.3: /in~|in\b(?!~)/i
MATCH.3: ":" | /like~|like\b(?!~)/i | /regex~|regex\b(?!~)/i
COMPARE: "==" | "!=" | "<=" | ">=" | "<" | ">"

TILDE_NAME.3: /[A-Za-z][A-Za-z0-9_]*~/
NAME: /[A-Za-z_@][A-Za-z0-9_]*/
QUOTED_NAME: /`(?:[^`]|``)*`/
OPTIONAL: "?"

RAW_STRING.3: /\"\"\"[^\r\n]*?\"\"\"\"{0,2}/
STRING.2: /"(?:[^"\\\r\n]|\\.)*"/
NUMBER: /-?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/

%ignore /[ \t\r\n]+/
%ignore /\/\*(?:.|\n)*?\*\//
%ignore /\/\/[^\n]*/
"""


def _build_parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", lexer="contextual", maybe_placeholders=False)


def _dumped(parser: Lark) -> bytes:
    stream = io.BytesIO()
    parser.save(stream)
    return stream.getvalue()


_PARSER = build_cache.load_or_build(
    "eql-parser",
    [_GRAMMAR.encode(), lark.__version__.encode()],
    _build_parser,
    _dumped,
    lambda data: Lark.load(io.BytesIO(data)),
)

_LEADING_NOISE = re.compile(r"(?:\s+|/\*.*?\*/|//[^\n]*)*", re.DOTALL)
_MULTI_EVENT = re.compile(r"(sequence|join|sample)\b", re.IGNORECASE)

# What a lark terminal is called in a message a rule author reads.
_TERMINAL_WORDS = {
    "_WHERE": "`where`",
    "_AND": "`and`",
    "_OR": "`or`",
    "NOT": "`not`",
    "ANY": "`any`",
    "IN": "`in`",
    "MATCH": "`:`, `like` or `regex`",
    "COMPARE": "a comparison",
    "NAME": "a field name",
    "TILDE_NAME": "a function",
    "QUOTED_NAME": "a field name",
    "OPTIONAL": "a field name",
    "STRING": "a string",
    "RAW_STRING": "a string",
    "NUMBER": "a number",
    "TRUE": "`true`",
    "FALSE": "`false`",
    "NULL": "`null`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "COMMA": "`,`",
    "DOT": "`.`",
    "$END": "the end of the query",
}

# Words that lex as a field name where a keyword cannot stand, as in `a and or b`.
KEYWORDS = frozenset(
    "and or not where any in like regex true false null sequence join sample".split()
)

# Characters that cannot start any token, with the reason a user most likely typed them.
_CHARACTER_HINTS = {
    "'": "single-quoted strings are not supported in EQL; use double quotes",
    "|": "pipes (| head, | tail, ...) are not supported",
    "=": "`=` is not an operator; use `==` (exact) or `:` (case-insensitive)",
    "[": "sequences, joins and array indexes are not supported",
    "+": "arithmetic is not supported",
    "-": "arithmetic is not supported",
    "/": "arithmetic is not supported",
    "%": "arithmetic is not supported",
    "*": "unexpected `*`: patterns go in double quotes; arithmetic is not supported",
}


class EqlError(Exception):
    """A query that cannot be used, with the 1-based position the problem starts at."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message, line, column)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


def error_at(token: Token, message: str) -> EqlError:
    """An EqlError positioned at the start of `token`."""
    return EqlError(message, token.line or 1, token.column or 1)


def parse(text: str) -> Tree:
    """Parse one event query into a lark tree, or raise EqlError."""
    _refuse_multi_event_queries(text)
    try:
        return _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _translate(text, exc) from None


def _refuse_multi_event_queries(text: str) -> None:
    start = _LEADING_NOISE.match(text).end()
    found = _MULTI_EVENT.match(text, start)
    if found:
        line, column = position(text, start)
        kind = found.group(1).lower()
        message = f"{kind} queries are not supported; only `<category> where` is"
        raise EqlError(message, line, column)


def position(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of a character offset in `text`."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _translate(text: str, exc: UnexpectedInput) -> EqlError:
    if isinstance(exc, UnexpectedCharacters):
        line, column = position(text, exc.pos_in_stream)
        return EqlError(_character_message(text, exc.pos_in_stream), line, column)

    if isinstance(exc, UnexpectedToken):
        token = exc.token
        # `accepts` replays the parse and is exact; `expected` over-approximates.
        expected = _expected_words(exc.accepts or exc.expected)
        if token.type == "$END":
            # lark gives $END the position of the last token; point just past it.
            line, column = position(text, len(text.rstrip()))
            return EqlError(f"query ends too early; expected {expected}", line, column)
        message = f"unexpected {token.value!r}; expected {expected}"
        return EqlError(message, token.line, token.column)

    return EqlError(str(exc), exc.line or 1, exc.column or 1)


def _character_message(text: str, offset: int) -> str:
    char = text[offset]
    if text.startswith("/*", offset):
        return "comment is never closed (missing */)"
    if char == '"':
        return "string is never closed (strings may not span lines)"
    if char == "`":
        return "quoted field name is never closed"
    if char == "!" and text.startswith("!:", offset):
        return "`!:` is not supported; use `not field : ...`"
    return _CHARACTER_HINTS.get(char, f"unexpected character {char!r}")


def _expected_words(names: set[str]) -> str:
    # Where any condition or any value may start, name the kind, not every token.
    if "NOT" in names:
        return "a condition"
    if {"STRING", "NUMBER", "NAME"} <= names:
        return "a field or a constant"
    words = list(
        dict.fromkeys(_TERMINAL_WORDS.get(name, name) for name in sorted(names))
    )
    if len(words) > 5:
        return ", ".join(words[:5]) + ", ..."
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
