"""Field names and values of event JSON, spelled the way winlogbeat writes them.

Layouts differ in how they write a field: dotted keys or nested objects, Kibana's
one-element arrays, ints or decimal text. These helpers bring each to one form.
"""

from __future__ import annotations

from typing import Any

# Objects whose keys are event data names, not ECS paths: never split at the dots.
_OPAQUE = frozenset({"event_data", "EventData", "user_data", "UserData"})

# ECS fields that are arrays in their own right, kept as arrays in the fields view.
_ARRAY_FIELDS = frozenset(
    """
    event.category event.type tags related.hash related.hosts related.ip related.user
    process.args process.parent.args
    """.split()
)

_MAX_DEPTH = 16


# --- values -----------------------------------------------------------------------


def add_data(data: dict[str, Any], source: dict) -> None:
    """Copy the plain values of source into data as event data text."""
    for key, value in source.items():
        text = as_data(value)
        if text is not None:
            data[key] = text


def as_data(value: Any) -> Any:
    """An event data value as winlogbeat writes it: text, ints in decimal.

    Arrays of plain values stay arrays of text (the rules match any element);
    objects and anything else that is not a plain value give None.
    """
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return _decimal(value)
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        return _decimal(int(value)) if value.is_integer() else repr(value)
    if kind is list:
        texts = [as_data(item) for item in value if type(item) not in (list, dict)]
        return [text for text in texts if text is not None]
    return None


def _decimal(number: int) -> str | None:
    try:
        return str(number)
    except ValueError:
        # Past Python's limit on digits: no real event field is this long.
        return None


def as_int(value: Any) -> int | None:
    """A non-negative integer from an int or decimal text, else None."""
    kind = type(value)
    if kind is int:
        return value if 0 <= value < 1 << 64 else None
    if kind is str:
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 20:
            number = int(text)
            return number if number < 1 << 64 else None
        return None
    if kind is float and value.is_integer() and 0 <= value < 2.0**64:
        return int(value)
    return None


def as_str(value: Any) -> str | None:
    """value if it is text, else None."""
    return value if type(value) is str else None


# --- dotted names and the fields view --------------------------------------------


def _has_dotted_keys(node: dict, depth: int) -> bool:
    """True if a key of node, or of an object inside it, holds a dot."""
    # This runs on every event and almost always finds nothing, so it only looks.
    # It also looks inside event data, where dots are kept: that only costs the
    # rare event an expansion pass that changes nothing there.
    try:
        if "." in "".join(node):
            return True
    except TypeError:
        return True
    if depth < _MAX_DEPTH:
        for value in node.values():
            if type(value) is dict and _has_dotted_keys(value, depth + 1):
                return True
    return False


def nested(doc: dict, depth: int = 0) -> dict:
    """doc with its dotted keys expanded; doc itself when it has none."""
    if depth > _MAX_DEPTH or not _has_dotted_keys(doc, depth):
        return doc
    return _undot(doc, depth)


def _undot(node: dict, depth: int) -> dict:
    """A copy of node with dotted keys turned into nested objects.

    `{"winlog.event_data.GrantedAccess": x}` means what the nested form means. Where
    both spell a field, the nested one wins; where a plain value already holds a
    name on the path, the dotted key stays as it came.
    """
    out: dict = {}
    dotted = []
    for key, value in node.items():
        path = _path(key) if type(key) is str and "." in key else None
        if path is not None:
            dotted.append((key, path, value))
            continue
        if type(value) is dict and key not in _OPAQUE:
            value = nested(value, depth + 1)
        out[key] = value

    made: set[int] = set()  # objects built here, free to fill in
    for key, (parents, leaf), value in dotted:
        target = out
        for part in parents:
            child = target.get(part)
            if type(child) is dict:
                if id(child) not in made:
                    child = target[part] = dict(child)
                    made.add(id(child))
            elif child is None and part not in target:
                child = target[part] = {}
                made.add(id(child))
            else:
                target = None
                break
            target = child
        if target is None:
            out[key] = value
            continue
        if type(value) is dict and leaf not in _OPAQUE:
            # Depth counts the levels the key itself spelled, so that dotted keys
            # nested in dotted keys cannot build a view too deep to serialise.
            value = nested(value, depth + len(parents) + 1)
        target.setdefault(leaf, value)
    return out


# Split dotted keys, by key: a file repeats the same few dozen names on every line.
# Bounded, so a stream of made-up names cannot grow it without end.
_PATHS: dict[str, tuple[tuple[str, ...], str] | None] = {}
_PATHS_LIMIT = 4096


def _path(key: str) -> tuple[tuple[str, ...], str] | None:
    """The parent names and leaf name a dotted key spells, or None to keep it whole."""
    path = _PATHS.get(key, False)
    if path is not False:
        return path
    parts = key.split(".")
    if "" in parts:
        # A key with an empty part ("a..b", "a.") names no path.
        path = None
    else:
        for index, part in enumerate(parts[:-1]):
            if part in _OPAQUE:
                # Event data names keep their dots: the rest of the key is one name.
                parts[index + 1 :] = [".".join(parts[index + 1 :])]
                break
        # More parts than any field has would nest the view past what orjson can
        # write back: a thousand overflowed the stack in the CLI's `dump`.
        path = None if len(parts) > _MAX_DEPTH else (tuple(parts[:-1]), parts[-1])
    if len(_PATHS) < _PATHS_LIMIT:
        _PATHS[key] = path
    return path


def unwrap(node: dict, prefix: str, depth: int) -> dict:
    """The fields view as a document: one-element arrays become their value."""
    out: dict[Any, Any] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if type(value) is list:
            keep = len(value) != 1 or path in _ARRAY_FIELDS
            out[key] = value if keep else value[0]
        elif type(value) is dict and depth < _MAX_DEPTH:
            out[key] = unwrap(value, path + ".", depth + 1)
        else:
            out[key] = value
    return out
