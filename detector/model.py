"""The plain values that travel between the detector's stages and its consumers.

Nothing here knows about files, JSON parsing or Textual; every stage hands these on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Line:
    """One complete line read from a file, before it is parsed.

    `offset` is the byte offset at which the line starts in `path`; `number` is
    1-based. `text` is already decoded (bad UTF-8 replaced, BOM and CR removed).
    """

    path: str
    number: int
    offset: int
    text: str
    repaired: bool = False


@dataclass(slots=True, frozen=True)
class BadLine:
    """A line that could not be used, and why. Counted and shown, never fatal."""

    path: str
    number: int
    offset: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.number}: {self.reason}"


@dataclass(slots=True, frozen=True)
class Condition:
    """One comparison of a rule's query, as evaluated against one event."""

    field: str
    operator: str
    expected: str
    actual: Any
    met: bool


@dataclass(slots=True)
class Alert:
    """A rule matched an event.

    `document` is the ECS alert document printed by `scan`/`follow` and stored;
    `raw` is the original line exactly as read, for the analyst to see untouched.
    `key` identifies the event (host, channel, record id, or file and offset) so
    that the same event never raises the same rule's alert twice.
    """

    document: dict[str, Any]
    raw: str
    path: str
    offset: int
    line_number: int
    rule_id: str
    key: str
    shape: str
    conditions: list[Condition] = field(default_factory=list)
    status: str = "open"
    close_reason: str | None = None
    seen_at: float = 0.0
    store_id: int | None = None


@dataclass(slots=True, frozen=True)
class Notice:
    """Something the user should read: a rotation, a truncation, a file gone."""

    level: str  # "info", "warning" or "error"
    message: str
    path: str | None = None
