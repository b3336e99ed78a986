"""Finding the values a field name stands for in one event.

winlogbeat writes nested objects, other shippers write dotted keys
(`"process.name"`), and some mix both (`"winlog.event_data": {"GrantedAccess": ..}`).
Elasticsearch indexes all of these as the same field, and flattens arrays of
objects, so a field may name several values; every one of them is a candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Getter = Callable[[dict], Any]

# Shared, never mutated: a missing field costs no allocation.
_NOTHING: tuple = ()


def lookup(event: dict, field: str) -> list:
    """Every value `field` names in `event`, lists flattened, nulls dropped.

    Returns [] when the field is missing or null.
    """
    parts = field.split(".")
    found: list = []
    _resolve(event, parts, _joined_keys(parts), 0, found)
    return found


def compile_getter(field: str) -> Getter:
    """A function giving the same values as `lookup(event, field)`, as a sequence.

    The common fully nested layout is walked with plain `dict.get`; only when a
    dotted key could also spell the field, or a list sits along the path, does the
    general resolver run.
    """
    parts = field.split(".")
    keys = _joined_keys(parts)

    def resolve_all(event: dict) -> list:
        found: list = []
        _resolve(event, parts, keys, 0, found)
        return found

    if len(parts) == 1:
        return _one_part(parts[0])
    if len(parts) == 2:
        return _two_parts(parts, keys, resolve_all)
    if len(parts) == 3:
        return _three_parts(parts, keys, resolve_all)
    return _many_parts(parts, keys, resolve_all)


# The getters below are the same walk unrolled for the usual depths: ECS fields
# have two or three parts, and a loop costs more than the dictionary lookups.
# Before descending by one part they check the longer dotted keys that could
# also spell the rest of the field; if one exists, the general resolver runs.


def _one_part(key: str) -> Getter:
    def get(event: dict) -> Any:
        value = event.get(key)
        if value is None:
            return _NOTHING
        if value.__class__ is list:
            return _flat(value)
        return (value,)

    return get


def _two_parts(parts: list[str], keys: list, resolve_all: Getter) -> Getter:
    first, second = parts
    whole = keys[0][2]

    def get(event: dict) -> Any:
        if whole in event:
            return resolve_all(event)
        node = event.get(first)
        if node.__class__ is not dict:
            return _NOTHING if node is None else resolve_all(event)
        value = node.get(second)
        if value is None:
            return _NOTHING
        if value.__class__ is list:
            return _flat(value)
        return (value,)

    return get


def _three_parts(parts: list[str], keys: list, resolve_all: Getter) -> Getter:
    first, second, third = parts
    whole, head, tail = keys[0][3], keys[0][2], keys[1][3]

    def get(event: dict) -> Any:
        if whole in event or head in event:
            return resolve_all(event)
        node = event.get(first)
        if node.__class__ is not dict:
            return _NOTHING if node is None else resolve_all(event)
        if tail in node:
            return resolve_all(event)
        node = node.get(second)
        if node.__class__ is not dict:
            return _NOTHING if node is None else resolve_all(event)
        value = node.get(third)
        if value is None:
            return _NOTHING
        if value.__class__ is list:
            return _flat(value)
        return (value,)

    return get


def _many_parts(parts: list[str], keys: list, resolve_all: Getter) -> Getter:
    # For each level: the part to descend by, and the dotted keys spelling more.
    steps = tuple(
        (parts[i], tuple(keys[i][j] for j in range(len(parts), i + 1, -1)))
        for i in range(len(parts))
    )

    def get(event: dict) -> Any:
        node: Any = event
        for part, dotted in steps:
            if node.__class__ is not dict:
                return _NOTHING if node is None else resolve_all(event)
            for key in dotted:
                if key in node:
                    return resolve_all(event)
            node = node.get(part)
        if node is None:
            return _NOTHING
        if node.__class__ is list:
            return _flat(node)
        return (node,)

    return get


def _flat(values: list) -> list:
    """The list itself when it holds plain values (the usual case), else a copy
    with nested lists flattened and nulls dropped. Callers never mutate it."""
    for item in values:
        if item is None or item.__class__ is list:
            found: list = []
            _flatten(values, found)
            return found
    return values


def _joined_keys(parts: list[str]) -> list[list[str]]:
    """keys[i][j] is parts[i:j] joined with dots, computed once per field."""
    count = len(parts)
    return [
        [".".join(parts[i:j]) if j > i else "" for j in range(count + 1)]
        for i in range(count)
    ]


def _resolve(node: Any, parts: list[str], keys: list, at: int, found: list) -> None:
    if at == len(parts):
        _flatten(node, found)
        return
    if node.__class__ is list:
        for item in node:
            _resolve(item, parts, keys, at, found)
        return
    if node.__class__ is not dict:
        return
    # Longest dotted spelling first, so the order of values is stable.
    for end in range(len(parts), at, -1):
        key = keys[at][end]
        if key in node:
            _resolve(node[key], parts, keys, end, found)


def _flatten(value: Any, found: list) -> None:
    if value is None:
        return
    if value.__class__ is list:
        for item in value:
            _flatten(item, found)
        return
    found.append(value)
