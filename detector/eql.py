"""Elasticsearch EQL event queries, compiled once into fast Python predicates.

`compile_query` parses a rule's query (see `eql_grammar`) and turns every
comparison into a closure over a precompiled field lookup and a precompiled test,
so matching an event walks no syntax tree. Semantics follow Elasticsearch, not the
Endgame `eql` package: `==` is exact, `:` folds case and takes wildcards, numbers
in events compare as their decimal text, and a missing field satisfies nothing but
`== null`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from detector import eql_literals
from detector.eql_compile import Compiler, Leaf, Node, constant_of
from detector.eql_fields import compile_getter, lookup
from detector.eql_grammar import EqlError, parse
from detector.model import Condition

__all__ = ["EqlError", "Query", "compile_query", "lookup"]

Predicate = Callable[[dict], bool]

CATEGORY_FIELD = "event.category"


@dataclass
class Query:
    """A compiled event query. Build it with `compile_query`."""

    text: str
    category: str | None
    fields: list[str]
    _predicate: Predicate = field(repr=False, compare=False)
    _leaves: list[Leaf] = field(repr=False, compare=False)
    _root: Leaf | Node = field(repr=False, compare=False)

    def matches(self, event: dict) -> bool:
        """Whether the event is of the query's category and meets its condition."""
        return self._predicate(event)

    def explain(self, event: dict) -> list[Condition]:
        """Each comparison of the query, in query order, as evaluated on `event`.

        A leaf under `not` reports its own result, before the negation.
        """
        conditions = []
        for leaf in self._leaves:
            values = leaf.get(event)
            if not values:
                actual = None
            else:
                actual = values[0] if len(values) == 1 else list(values)
            met = bool(leaf.test(values))
            conditions.append(
                Condition(leaf.field, leaf.operator, leaf.expected, actual, met)
            )
        return conditions

    def literals(self, unless: frozenset[str] = frozenset()) -> list[list[str]]:
        """Lower-case strings the JSON text of every matching event contains.

        Each inner list is a set of alternatives, one of which is always present;
        [] when nothing safe can be said. Derived from the condition only (not the
        category, which a later stage may fill in). Comparisons on the fields in
        `unless` give nothing: a caller looking at text other than the event's
        own JSON names the fields whose values that text need not hold.
        """
        return eql_literals.unique_groups(_literal_groups(self._root, unless))


def compile_query(text: str) -> Query:
    """Parse and compile one EQL event query; raises EqlError with its position."""
    tree = parse(text)
    category_tree, condition_tree = tree.children
    compiler = Compiler()
    root = compiler.node(condition_tree)
    condition = _predicate(root)

    category_token = category_tree.children[0]
    if category_token.type == "ANY":
        category = None
        predicate = condition
    else:
        category = constant_of(category_token).value
        predicate = _category_check(category, condition)
        compiler.fields.insert(0, CATEGORY_FIELD)

    return Query(
        text=text,
        category=category,
        fields=list(dict.fromkeys(compiler.fields)),
        _predicate=predicate,
        _leaves=compiler.leaves,
        _root=root,
    )


def _category_check(category: str, condition: Predicate) -> Predicate:
    get_category = compile_getter(CATEGORY_FIELD)

    def matches(event: dict) -> bool:
        return category in get_category(event) and condition(event)

    return matches


def _predicate(node: Leaf | Node) -> Predicate:
    if isinstance(node, Leaf):
        get, test = node.get, node.test

        def leaf(event: dict) -> bool:
            return test(get(event))

        return leaf
    if node.kind == "constant":
        value = node.value
        return lambda event: value
    if node.kind == "not":
        inner = _predicate(node.children[0])
        return lambda event: not inner(event)
    parts = [_predicate(child) for child in node.children]
    return _all(parts) if node.kind == "and" else _any(parts)


def _all(parts: list[Predicate]) -> Predicate:
    # Unrolled for the common sizes: a loop costs more than the comparisons.
    if len(parts) == 2:
        a, b = parts
        return lambda event: a(event) and b(event)
    if len(parts) == 3:
        a, b, c = parts
        return lambda event: a(event) and b(event) and c(event)
    if len(parts) == 4:
        a, b, c, d = parts
        return lambda event: a(event) and b(event) and c(event) and d(event)
    # Halves, not first-and-rest: a chain one call deep per term overflows the
    # stack on a long list, at load time and again on every event.
    half = len(parts) // 2
    head, tail = _all(parts[:half]), _all(parts[half:])
    return lambda event: head(event) and tail(event)


def _any(parts: list[Predicate]) -> Predicate:
    if len(parts) == 2:
        a, b = parts
        return lambda event: a(event) or b(event)
    if len(parts) == 3:
        a, b, c = parts
        return lambda event: a(event) or b(event) or c(event)
    half = len(parts) // 2
    head, tail = _any(parts[:half]), _any(parts[half:])
    return lambda event: head(event) or tail(event)


def _literal_groups(node: Leaf | Node, unless: frozenset[str]) -> eql_literals.Groups:
    if isinstance(node, Leaf):
        return [] if node.field in unless else node.literals
    if node.kind == "and":
        return [
            group for child in node.children for group in _literal_groups(child, unless)
        ]
    if node.kind == "or":
        return eql_literals.either([_literal_groups(c, unless) for c in node.children])
    return []
