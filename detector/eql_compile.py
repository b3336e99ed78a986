"""From an EQL parse tree to leaves (field, operator, test) and boolean nodes.

Every check that can fail on a rule happens here, at load time: unsupported
functions, fields compared with fields, bad escapes, bad regular expressions.
What is left for run time is calling the tests this module builds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lark import Token, Tree

from detector import eql_literals, eql_ops
from detector.eql_fields import Getter, compile_getter
from detector.eql_grammar import KEYWORDS, EqlError, error_at

_MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

# Lower-cased name -> (name as Elastic spells it, builder of the text check).
_FUNCTIONS = {
    "startswith": ("startsWith", eql_ops.starts_with),
    "endswith": ("endsWith", eql_ops.ends_with),
    "stringcontains": ("stringContains", eql_ops.contains),
}

# Deeper `not`/`and`/`or` nesting is refused: compiling, matching and explaining
# all recurse once per level, and no rule needs more than a handful.
MAX_NESTING = 100

_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r"}
_ESCAPE = re.compile(r"\\(?:u\{([0-9A-Fa-f]{2,8})\}|(.))")


@dataclass(slots=True, frozen=True)
class Leaf:
    """One comparison: where its values come from, how they are tested, and what
    every event it holds for must contain as text."""

    field: str
    operator: str
    expected: str
    get: Getter
    test: eql_ops.Test
    literals: eql_literals.Groups


@dataclass(slots=True, frozen=True)
class Node:
    """`and`, `or`, `not`, or a constant `true`/`false` above the leaves."""

    kind: str
    children: tuple = ()
    value: bool = False


@dataclass(slots=True, frozen=True)
class _Constant:
    kind: str  # "string", "number", "bool" or "null"
    value: Any
    written: str
    token: Token

    @property
    def text(self) -> str:
        """The keyword text this constant equals (a number's decimal text)."""
        if self.kind == "number":
            return eql_ops.text_of(self.value)
        return self.value if self.kind == "string" else str(self.value).lower()


@dataclass(slots=True, frozen=True)
class _Field:
    name: str
    token: Token


class Compiler:
    """Turns the parse tree into leaves and nodes, collecting fields in order."""

    def __init__(self) -> None:
        self.leaves: list[Leaf] = []
        self.fields: list[str] = []
        self._getters: dict[str, Getter] = {}

    def node(self, tree: Tree, depth: int = 0) -> Leaf | Node:
        if depth > MAX_NESTING:
            raise error_at(
                _first_token(tree), f"condition nested deeper than {MAX_NESTING} levels"
            )
        kind = tree.data
        if kind in ("and_expr", "or_expr"):
            children = tuple(self.node(child, depth + 1) for child in tree.children)
            return Node("and" if kind == "and_expr" else "or", children)
        if kind == "negation":
            return Node("not", (self.node(tree.children[1], depth + 1),))
        if kind == "bare":
            return self._bare(tree.children[0])
        build = {
            "comparison": self._comparison,
            "match": self._match,
            "membership": self._membership,
        }[kind]
        leaf = build(tree.children)
        self.leaves.append(leaf)
        return leaf

    def _leaf(self, target: _Field, operator: str, expected: str, test, literals):
        self.fields.append(target.name)
        getter = self._getters.get(target.name)
        if getter is None:
            getter = self._getters[target.name] = compile_getter(target.name)
        return Leaf(target.name, operator, expected, getter, test, literals)

    def _bare(self, item) -> Leaf | Node:
        if isinstance(item, Tree) and item.data == "call":
            leaf = self._function(item.children)
            self.leaves.append(leaf)
            return leaf
        value = _operand(item)
        if isinstance(value, _Constant) and value.kind == "bool":
            return Node("constant", value=value.value)
        if isinstance(value, _Field):
            raise error_at(
                value.token,
                f"`{value.name}` alone is not a condition; compare it, "
                f"e.g. `{value.name} != null`",
            )
        raise error_at(value.token, "a constant alone is not a condition")

    def _comparison(self, children) -> Leaf:
        left, operator_token, right = children
        operator = operator_token.value
        left, right = _operand(left), _operand(right)
        if isinstance(left, _Constant) and isinstance(right, _Field):
            left, right, operator = right, left, _MIRRORED[operator]
        if isinstance(right, _Field):
            raise error_at(operator_token, "comparing two fields is not supported")
        if isinstance(left, _Constant):
            raise error_at(left.token, "a comparison needs a field on one side")

        if right.kind == "null":
            if operator not in ("==", "!="):
                raise error_at(right.token, f"null cannot be compared with {operator}")
            test = eql_ops.is_null if operator == "==" else eql_ops.is_present
            return self._leaf(left, operator, right.written, test, [])

        if operator in ("==", "!="):
            texts, numbers = _equality_sets([right])
            builder = eql_ops.equals if operator == "==" else eql_ops.differs
            literals = []
            if operator == "==" and right.kind != "number":
                literals = eql_literals.required(
                    eql_literals.for_value(right.text, False)
                )
            test = builder(texts, numbers, fold=False)
            return self._leaf(left, operator, right.written, test, literals)

        if right.kind == "bool":
            raise error_at(right.token, f"a boolean cannot be compared with {operator}")
        test = eql_ops.orders(operator, right.value)
        return self._leaf(left, operator, right.written, test, [])

    def _match(self, children) -> Leaf:
        left, operator_token, patterns_tree = children
        operator = operator_token.value.lower()
        target = _field_operand(left, operator)
        constants = [_operand(item) for item in patterns_tree.children]
        for item in constants:
            _require_text(item, operator, numbers_too=operator == ":")
        patterns = [item.text for item in constants]
        fold = operator == ":" or operator.endswith("~")

        if operator.startswith("regex"):
            try:
                check = eql_ops.regex_check(patterns, fold)
            except eql_ops.RegexError as exc:
                raise error_at(constants[exc.index].token, str(exc)) from None
            literals = []
            # RE2 does the folding; lower-casing first could change lengths.
            test = eql_ops.text_test(check, fold=False)
        else:
            lowered = [pattern.lower() for pattern in patterns] if fold else patterns
            check = eql_ops.wildcard_check(lowered)
            found = [eql_literals.for_pattern(pattern, fold) for pattern in patterns]
            literals = _groups_for(found)
            test = eql_ops.text_test(check, fold)

        return self._leaf(target, operator, _written(constants), test, literals)

    def _membership(self, children) -> Leaf:
        negated = isinstance(children[1], Token) and children[1].type == "NOT"
        operator_token = children[2] if negated else children[1]
        items = children[3:] if negated else children[2:]
        operator = ("not " if negated else "") + operator_token.value.lower()
        target = _field_operand(children[0], operator)
        constants = [_operand(item) for item in items]
        for item in constants:
            if not isinstance(item, _Constant):
                raise error_at(item.token, "lists may hold only constants")
            if item.kind == "null":
                raise error_at(
                    item.token,
                    "null in a list is not supported; use `field == null`",
                )
        fold = operator.endswith("~")
        texts, numbers = _equality_sets(constants)
        builder = eql_ops.differs if negated else eql_ops.equals
        literals = []
        if not negated:
            found = [
                [] if c.kind == "number" else eql_literals.for_value(c.text, fold)
                for c in constants
            ]
            literals = _groups_for(found)
        test = builder(texts, numbers, fold)
        return self._leaf(target, operator, _written(constants), test, literals)

    def _function(self, children) -> Leaf:
        name_token, *arguments = children
        fold = name_token.value.endswith("~")
        known = _FUNCTIONS.get(name_token.value.rstrip("~").lower())
        if known is None:
            raise error_at(name_token, f"unsupported function {name_token.value}")
        name, builder = known
        operator = name + ("~" if fold else "")
        if len(arguments) != 2:
            raise error_at(name_token, f"{name} takes a field and a string")
        target = _field_operand(arguments[0], operator)
        argument = _operand(arguments[1])
        _require_text(argument, operator, numbers_too=False)
        needle = argument.text.lower() if fold else argument.text
        test = eql_ops.text_test(builder([needle]), fold)
        # A substring need not be a whole value: treat it as `*needle*`.
        found = eql_literals.for_pattern(f"*{argument.text}*", fold)
        literals = eql_literals.required(found)
        return self._leaf(target, operator, argument.written, test, literals)


def _operand(item) -> _Field | _Constant:
    if isinstance(item, Tree):
        if item.data == "call":
            raise _misplaced_call(item.children[0])
        return _field(item)
    return constant_of(item)


def _misplaced_call(name: Token) -> EqlError:
    if name.value.rstrip("~").lower() not in _FUNCTIONS:
        return error_at(name, f"unsupported function {name.value}")
    message = f"{name.value} is a condition on its own; its result cannot be compared"
    return error_at(name, message)


def _field(tree: Tree) -> _Field:
    first = tree.children[0]
    if first.type == "NAME" and first.value.lower() in KEYWORDS:
        raise error_at(first, f"unexpected keyword `{first.value}`")
    parts = []
    for token in tree.children:
        if token.type == "NAME":
            parts.append(token.value)
        elif token.type == "QUOTED_NAME":
            parts.append(token.value[1:-1].replace("``", "`"))
    return _Field(".".join(parts), tree.children[0])


def constant_of(token: Token) -> _Constant:
    kind = token.type
    if kind == "STRING":
        return _Constant("string", _unescape(token), token.value, token)
    if kind == "RAW_STRING":
        return _Constant("string", token.value[3:-3], token.value, token)
    if kind == "NUMBER":
        text = token.value
        try:
            value = int(text) if text.lstrip("-").isdigit() else float(text)
        except ValueError:
            raise error_at(token, "number has too many digits") from None
        return _Constant("number", value, text, token)
    if kind in ("TRUE", "FALSE"):
        return _Constant("bool", kind == "TRUE", token.value.lower(), token)
    if kind == "NULL":
        return _Constant("null", None, token.value.lower(), token)
    # A category name given as an identifier.
    return _Constant("string", token.value, token.value, token)


def _unescape(token: Token) -> str:
    def escape_error(found: re.Match, message: str) -> EqlError:
        # Strings never span lines, so the offset inside the token is a column offset.
        return EqlError(message, token.line, token.column + 1 + found.start())

    def replace(found: re.Match) -> str:
        code, char = found.groups()
        if code is not None:
            point = int(code, 16)
            if point > 0x10FFFF:
                raise escape_error(found, "unicode escape out of range")
            return chr(point)
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char in "\"'\\":
            return char
        raise escape_error(found, f"invalid escape \\{char} in string")

    return _ESCAPE.sub(replace, token.value[1:-1])


def _field_operand(item, operator: str) -> _Field:
    value = _operand(item)
    if not isinstance(value, _Field):
        raise error_at(value.token, f"the left side of `{operator}` must be a field")
    return value


def _require_text(value, operator: str, numbers_too: bool) -> None:
    if isinstance(value, _Field):
        raise error_at(value.token, f"`{operator}` takes constants, not fields")
    allowed = ("string", "number") if numbers_too else ("string",)
    if value.kind not in allowed:
        raise error_at(value.token, f"`{operator}` needs a string, not {value.written}")


def _equality_sets(constants: list[_Constant]) -> tuple[list[str], list[float]]:
    texts = [item.text for item in constants]
    numbers = [item.value for item in constants if item.kind == "number"]
    return texts, numbers


def _groups_for(found: list[list[str]]) -> eql_literals.Groups:
    if len(found) == 1:
        return eql_literals.required(found[0])
    return eql_literals.one_of(found)


def _written(constants: list[_Constant]) -> str:
    if len(constants) == 1:
        return constants[0].written
    return "(" + ", ".join(item.written for item in constants) + ")"


def _first_token(tree: Tree) -> Token:
    """The token a subtree starts with, found without recursion (it may be deep)."""
    node = tree
    while isinstance(node, Tree):
        node = node.children[0]
    return node
