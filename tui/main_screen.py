"""The main screen: summary, filter, the alert table, and the follow/pause badge."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Input, Label

from tui.alert_table import AlertTable
from tui.filters import FilterError, parse_filter
from tui.rows import AlertRow
from tui.summary import FeedStats, Summary
from tui.text import plain
from tui.virtual_table import VirtualTable

if TYPE_CHECKING:
    from tui.app import WinlogwatchApp

FILTER_HINT = "/ to filter: words  severity:high,critical  status:open  host:ws-042"


def _update(label: Label, text: str, layout: bool) -> None:
    """Change a label only when its text changes; the UI is redrawn four times a
    second under load and most of the time nothing here has changed."""
    if str(label.content) != text:
        label.update(Text(text), layout=layout)


#: Seconds after a new alert takes the cursor during which triage keys are refused,
#: so that a key pressed for the alert being read never lands on the newcomer.
ARRIVAL_GRACE = 0.7


class MainScreen(Screen):
    """Alerts as they arrive, newest first."""

    app: WinlogwatchApp

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("f", "newest", "Newest"),
        Binding("a", "triage('acknowledged')", "Acknowledge"),
        Binding("c", "close_alert", "Close…"),
        Binding("o", "triage('open')", "Reopen"),
        Binding("e", "export", "Export"),
    ]

    def __init__(self) -> None:
        super().__init__()
        # Kept, not queried: the drain timer may still fire while the app closes
        # and the screen's children are already gone.
        self.summary = Summary(id="summary")
        self.filter_box = Input(placeholder=FILTER_HINT, id="filter")
        self.table = AlertTable(id="alerts")
        self.badge = Label("", id="badge")
        self.view_info = Label("", id="view-info")
        self._cursor_taken_at = 0.0  # when an arrival last moved the cursor
        self._before_arrival: AlertRow | None = None

    def compose(self) -> ComposeResult:
        yield self.summary
        yield self.filter_box
        yield self.table
        with Horizontal(id="status-bar"):
            yield self.badge
            yield self.view_info
        yield Footer()

    def on_mount(self) -> None:
        self.table.show(self.app.view.newest_first)
        self.table.focus()
        self.app.drain()

    def alerts_arriving(self) -> None:
        """Call before new alerts join the view: note what the cursor is on."""
        if self.is_mounted:
            self._before_arrival = self.table.current

    def show_state(self, stats: FeedStats, rows_changed: bool) -> None:
        """Bring the summary, the table and the badge up to date."""
        if not self.is_mounted:
            return  # the app drains from its own mount, before this screen exists
        view = self.app.view
        if rows_changed:
            before, self._before_arrival = self._before_arrival, None
            self.table.rows_changed()
            if before is not None and self.table.current is not before:
                self._cursor_taken_at = time.monotonic()
        self.summary.show(view, stats)

        badge = self.badge
        badge.set_class(view.following, "-following")
        badge.set_class(not view.following, "-paused")
        if view.following:
            _update(badge, "● FOLLOWING", layout=True)
        else:
            waiting = f"❚❚ PAUSED · {len(view.waiting):,} new · f: newest"
            _update(badge, waiting, layout=True)

        info = f"{len(view.shown):,} of {len(view.rows):,} alerts in view"
        if not view.filter.empty:
            info += f" · filter: {plain(view.filter.text)}"
        _update(self.view_info, info, layout=False)

    # Follow / pause --------------------------------------------------------

    def on_alert_table_follow_changed(self, event: AlertTable.FollowChanged) -> None:
        view = self.app.view
        if event.following:
            view.follow()
        else:
            view.pause()
        self.app.refresh_screen(rows_changed=True)

    def action_newest(self) -> None:
        self.table.go_to_newest()
        self.table.focus()

    # Filter ----------------------------------------------------------------

    def action_filter(self) -> None:
        self.filter_box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        try:
            alert_filter = parse_filter(event.value)
        except FilterError as error:
            self.notify(
                str(error), title="Filter not applied", severity="warning", markup=False
            )
            return
        self.app.view.apply(alert_filter)
        self.table.go_to_newest()
        self.table.focus()
        self.app.refresh_screen(rows_changed=True)

    def key_escape(self) -> None:
        # Escape in the filter box puts back the filter in force and leaves it.
        if self.filter_box.has_focus:
            self.filter_box.value = self.app.view.filter.text
            self.table.focus()

    # Triage, drill-down, export --------------------------------------------

    def on_virtual_table_row_chosen(self, event: VirtualTable.RowChosen) -> None:
        self.app.open_detail(event.item)

    def _current(self) -> AlertRow | None:
        """The alert a triage key is for; None (and a notice) when it is unclear."""
        row = self.table.current
        if row is None:
            self.notify("No alert selected.", severity="warning")
        elif time.monotonic() - self._cursor_taken_at < ARRIVAL_GRACE:
            # The key was most likely meant for the alert the analyst was reading.
            self.notify(
                "A new alert just took the cursor: press the key again to act on it.",
                severity="warning",
            )
            return None
        return row

    def action_triage(self, status: str) -> None:
        if (row := self._current()) is not None:
            self.app.triage(row, status)

    def action_close_alert(self) -> None:
        if (row := self._current()) is not None:
            self.app.ask_close_reason(row)

    def action_export(self) -> None:
        self.app.ask_export()
