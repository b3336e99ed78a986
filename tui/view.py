"""Every alert the app holds, the ones the filter lets through, and follow/pause.

Kept apart from the widgets so that a hundred thousand alerts cost the table
nothing: the table reads `shown` through `NewestFirst` and draws only the rows on
screen. While paused, matching arrivals wait in `waiting` so the rows under the
analyst's cursor stay still.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from tui.filters import AlertFilter
from tui.rows import AlertRow


class NewestFirst(Sequence[AlertRow]):
    """A read-only view of a list in arrival order, newest first, without copying."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[AlertRow]):
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._rows)))]
        if index < 0:
            index += len(self._rows)
        if not 0 <= index < len(self._rows):
            raise IndexError(index)
        return self._rows[len(self._rows) - 1 - index]


class AlertView:
    """The alerts held, the filtered list the table shows, and counts by kind."""

    def __init__(self) -> None:
        self.rows: list[AlertRow] = []
        self.shown: list[AlertRow] = []
        self.waiting: list[AlertRow] = []
        self.following = True
        self.filter = AlertFilter()
        self.by_severity: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.newest_first = NewestFirst(self.shown)

    def add(self, rows: Iterable[AlertRow]) -> int:
        """Take new arrivals; returns how many of them the filter lets through."""
        rows = list(rows)
        self.rows.extend(rows)
        self.by_severity.update(row.severity for row in rows)
        self.by_status.update(row.status for row in rows)
        matches = self.filter.matches
        matching = [row for row in rows if matches(row)]
        (self.shown if self.following else self.waiting).extend(matching)
        return len(matching)

    def pause(self) -> None:
        self.following = False

    def follow(self) -> None:
        """Show what waited and go back to following the newest."""
        self.shown.extend(self.waiting)
        self.waiting.clear()
        self.following = True

    def apply(self, alert_filter: AlertFilter) -> None:
        """Show only what `alert_filter` lets through, and follow the newest again."""
        self.filter = alert_filter
        matches = alert_filter.matches
        # Replace the contents, not the list: NewestFirst holds on to it.
        self.shown[:] = [row for row in self.rows if matches(row)]
        self.waiting.clear()
        self.following = True

    def set_status(self, row: AlertRow, status: str, reason: str | None) -> None:
        """Record triage; a row the filter no longer lets through leaves the view."""
        self.by_status[row.status] -= 1
        self.by_status[status] += 1
        row.status = status
        row.close_reason = reason if status == "closed" else None
        if not self.filter.matches(row):
            for rows in (self.shown, self.waiting):
                if row in rows:
                    rows.remove(row)
