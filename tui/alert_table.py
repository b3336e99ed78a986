"""The alert table: newest first, severity in the theme's colours, follow or pause.

The cursor on the newest row, scrolled to the top, means "follow": new alerts
appear above and the view stays on them. Moving away means "pause": the rows
stand still and the app counts what waits. The table only reports which of the
two the user chose; the app keeps the alerts.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.message import Message

from detector.rules import SEVERITIES
from tui.rows import AlertRow
from tui.text import safe
from tui.virtual_table import Column, VirtualTable

ALERT_COLUMNS = (
    Column("time", "time (UTC)", 19),
    Column("host", "host", 12, flex=2),
    Column("rule", "rule", 16, flex=3),
    Column("severity", "severity", 8),
    Column("risk", "risk", 4),
    Column("source", "source process", 14, flex=2),
    Column("target", "target process", 14, flex=2),
    Column("access", "access", 8),
    Column("status", "status", 12),
)


#: Close reasons as analysts abbreviate them, so the status column stays narrow.
REASON_SHORT = {
    "false_positive": "FP",
    "true_positive": "TP",
    "benign_positive": "BP",
    "duplicate": "dup",
    "other": "other",
}


class AlertTable(VirtualTable):
    """The main screen's table of alerts."""

    COMPONENT_CLASSES: ClassVar[set[str]] = VirtualTable.COMPONENT_CLASSES | {
        "alert-table--low",
        "alert-table--medium",
        "alert-table--high",
        "alert-table--critical",
        "alert-table--acknowledged",
        "alert-table--closed",
    }

    class FollowChanged(Message):
        """The user moved to the newest row (following) or away from it (paused)."""

        def __init__(self, following: bool):
            super().__init__()
            self.following = following

    def __init__(self, *, id: str | None = None):
        super().__init__(ALERT_COLUMNS, id=id)
        self._at_newest = True

    def cells(self, item: AlertRow) -> list[Text]:
        severity = (
            self.get_component_rich_style(f"alert-table--{item.severity}", partial=True)
            if item.severity in SEVERITIES
            else ""
        )
        status = item.status
        status_style = (
            self.get_component_rich_style(f"alert-table--{status}", partial=True)
            if status in ("acknowledged", "closed")
            else ""
        )
        label = status
        if status == "closed" and item.close_reason:
            label = f"closed · {REASON_SHORT.get(item.close_reason, item.close_reason)}"
        return [
            Text(item.time),
            Text(item.host),
            Text(item.rule),
            Text(item.severity, style=severity),
            Text(item.risk),
            Text(item.source),
            Text(item.target),
            Text(item.access),
            safe(label, status_style),
        ]

    def version(self, item: AlertRow) -> object:
        return item.status, item.close_reason

    def go_to_newest(self) -> None:
        """Cursor to the newest row, scrolled to the top: following again."""
        self.scroll_to(y=0, animate=False, immediate=True)
        self.cursor = 0
        self._report_position()

    def watch_cursor(self, old: int, new: int) -> None:
        super().watch_cursor(old, new)
        self._report_position()

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._report_position()

    def _report_position(self) -> None:
        at_newest = self.cursor == 0 and round(self.scroll_y) == 0
        if at_newest != self._at_newest:
            self._at_newest = at_newest
            self.post_message(self.FollowChanged(at_newest))
