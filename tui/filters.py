"""The `/` filter: words to find anywhere in a row, and `key:value` terms.

    lsass severity:high,critical status:open host:ws-042

Words match case-insensitively anywhere in the row's text. `severity:` and
`status:` take a comma list of names or their beginnings (`sev:crit`,
`status:ack`); `host:` takes part of a host name. All terms must hold.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from detector.rules import SEVERITIES
from detector.store import STATUSES
from tui.rows import AlertRow

_KEYS = {
    "severity": "severity",
    "sev": "severity",
    "status": "status",
    "host": "host",
}


class FilterError(ValueError):
    """A filter the user typed that cannot mean anything; the message says why."""


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """A parsed filter; the empty filter matches every row."""

    text: str = ""
    words: tuple[str, ...] = ()
    severities: frozenset[str] = field(default_factory=frozenset)
    statuses: frozenset[str] = field(default_factory=frozenset)
    hosts: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.words or self.severities or self.statuses or self.hosts)

    def matches(self, row: AlertRow) -> bool:
        if self.severities and row.severity not in self.severities:
            return False
        if self.statuses and row.status not in self.statuses:
            return False
        if self.hosts:
            host = row.host.lower()
            if not any(part in host for part in self.hosts):
                return False
        haystack = row.haystack
        return all(word in haystack for word in self.words)


def parse_filter(text: str) -> AlertFilter:
    """Read what the user typed; raises `FilterError` for an unknown name."""
    try:
        terms = shlex.split(text)
    except ValueError:
        # An unbalanced quote: take the words as typed rather than refuse them.
        terms = text.split()

    words: list[str] = []
    severities: set[str] = set()
    statuses: set[str] = set()
    hosts: list[str] = []
    for term in terms:
        key, colon, value = term.partition(":")
        kind = _KEYS.get(key.lower()) if colon else None
        if kind is None:
            words.append(term.lower())
            continue
        values = [part for part in value.lower().split(",") if part]
        if not values:
            raise FilterError(f"{key}: needs a value")
        if kind == "severity":
            severities.update(_complete(values, SEVERITIES, key))
        elif kind == "status":
            statuses.update(_complete(values, STATUSES, key))
        else:
            hosts.extend(values)
    return AlertFilter(
        text.strip(),
        tuple(words),
        frozenset(severities),
        frozenset(statuses),
        tuple(hosts),
    )


def _complete(values: list[str], names: tuple[str, ...], key: str) -> set[str]:
    chosen = set()
    for value in values:
        found = [name for name in names if name.startswith(value)]
        if not found:
            raise FilterError(f"{key}:{value} is not one of {', '.join(names)}")
        chosen.update(found)
    return chosen
