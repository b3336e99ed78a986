"""The lines that could not be used: file, line number and why."""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Label

from detector.model import BadLine
from tui.virtual_table import Column, VirtualTable

#: The newest this many are kept for the panel; the summary counts them all.
KEEP = 10_000


class BadLineLog:
    """The newest unusable lines, and how many there were in all."""

    def __init__(self, keep: int = KEEP):
        self.lines: deque[BadLine] = deque(maxlen=keep)
        self.total = 0

    def add(self, bad: list[BadLine]) -> None:
        self.lines.extend(bad)
        self.total += len(bad)

    def rows(self) -> list[tuple[str, int, str]]:
        """Newest first, as (file, line, reason)."""
        return [(bad.path, bad.number, bad.reason) for bad in reversed(self.lines)]


class BadLinesScreen(Screen):
    """A table of unusable lines; Escape goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back")
    ]

    def __init__(self, bad_lines: BadLineLog):
        super().__init__()
        self.bad_lines = bad_lines

    def compose(self) -> ComposeResult:
        yield Label(self._note(), id="bad-lines-title")
        yield VirtualTable(
            (
                Column("file", "file", 30, flex=2),
                Column("line", "line", 8),
                Column("reason", "reason", 30, flex=3),
            ),
            self.bad_lines.rows(),
            id="bad-lines-table",
        )
        yield Footer()

    def lines_changed(self) -> None:
        """More unusable lines arrived while the panel is open."""
        self.query_one("#bad-lines-title", Label).update(self._note())
        self.query_one(VirtualTable).show(self.bad_lines.rows())

    def _note(self) -> str:
        shown = len(self.bad_lines.lines)
        total = self.bad_lines.total
        note = f"{total:,} {'line' if total == 1 else 'lines'} could not be used"
        if shown < self.bad_lines.total:
            note += f"; the newest {shown:,} are listed"
        return note
