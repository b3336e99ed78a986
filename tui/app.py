"""The winlogwatch dashboard: wiring between the follower, the store and the screens.

Two thread workers do all the I/O. "follower" runs the `Follower`, which hands
alerts to a `BufferedSink`; "store" loads the alerts of earlier sessions and then
saves triage, in that order, on its own SQLite connection. A timer drains the sink
four times a second, so the screen is updated in batches whatever the event rate,
and the UI thread never waits on a file or the database.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import ClassVar, Protocol

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from detector.detect import Counters
from detector.model import Notice
from detector.rules import Rule
from detector.store import Store
from tui.bad_lines import BadLineLog, BadLinesScreen
from tui.detail import DetailScreen
from tui.dialogs import CloseReasonScreen, ExportScreen
from tui.export import export, suggested_path
from tui.help import HelpScreen, binding_rows
from tui.main_screen import MainScreen
from tui.rows import AlertRow
from tui.sink import BufferedSink
from tui.summary import FeedStats, RateMeter
from tui.view import AlertView

#: Seconds between two drains of the sink into the screen.
DRAIN_INTERVAL = 0.25

#: Alerts of earlier sessions are handed to the UI in slices this big, so the
#: table fills while the rest loads instead of the UI stalling on one huge batch.
HISTORY_SLICE = 5_000

#: How many stored alerts a session starts with, newest first. Each one held costs
#: a few kilobytes; months of alerts would not fit.
# Limitation: older stored alerts are not shown (they stay in the state database).
HISTORY_LIMIT = 100_000


class Runnable(Protocol):
    """What a follower factory makes: something that runs until `stop` is set."""

    def run(self, stop: threading.Event) -> None: ...


FollowerFactory = Callable[[BufferedSink], Runnable]


class WinlogwatchApp(App[None]):
    """Live alerts from followed winlogbeat files, with drill-down and triage.

    Args:
        rules: the loaded rules, for the drill-down's guide and ATT&CK tabs.
        follower_factory: makes the follower given the sink it must deliver to;
            None runs no follower (tests feed `app.sink` directly).
        counters: the detector's counters, for events read and their rate.
        files: how many files are followed now, for the summary.
        store_path: the state database: earlier alerts are loaded from it and
            triage is saved to it. None keeps triage for this session only.
        clock: epoch seconds now; injectable so snapshots are stable.
    """

    CSS_PATH = "winlogwatch.tcss"
    TITLE = "winlogwatch"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1", "help", "Help"),
        Binding("b", "bad_lines", "Unusable lines"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        follower_factory: FollowerFactory | None = None,
        counters: Callable[[], Counters] | None = None,
        files: Callable[[], int] | None = None,
        store_path: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__()
        self.rules = {rule.rule_id: rule for rule in rules}
        self.follower_factory = follower_factory
        self.counters = counters
        self.files = files
        self.store_path = store_path
        self.clock = clock

        self.sink = BufferedSink()
        self.view = AlertView()
        self.bad_lines = BadLineLog()
        self.rate = RateMeter()
        self.main = MainScreen()
        self._stop = threading.Event()
        self._history_loaded = threading.Event()
        self._triage_queue: queue.Queue[tuple[int, str, str | None] | None] = (
            queue.Queue()
        )

    def get_default_screen(self) -> Screen:
        return self.main

    def on_mount(self) -> None:
        self.set_interval(DRAIN_INTERVAL, self.drain, name="drain")
        if self.store_path is not None:
            self.run_store()
        else:
            self._history_loaded.set()
        if self.follower_factory is not None:
            self.run_follower()

    def on_unmount(self) -> None:
        # Thread workers cannot be cancelled; tell each to return, and release
        # anything they may be waiting on, or the process would hang on exit.
        self._stop.set()
        self._history_loaded.set()
        self.sink.close()
        self._triage_queue.put(None)

    # Workers ---------------------------------------------------------------

    @work(thread=True, name="follower", group="follow", exit_on_error=False)
    def run_follower(self) -> None:
        # Alerts of earlier sessions first, so the table stays in arrival order.
        self._history_loaded.wait()
        if self._stop.is_set():
            return
        self.follower_factory(self.sink).run(self._stop)

    @work(thread=True, name="store", group="store", exit_on_error=False)
    def run_store(self) -> None:
        try:
            store = Store(self.store_path)
            history = store.load_alerts(limit=HISTORY_LIMIT)
            for start in range(0, len(history), HISTORY_SLICE):
                self.sink.on_alerts(history[start : start + HISTORY_SLICE])
            del history
        finally:
            # Even when loading failed, the follower must not wait for ever.
            self._history_loaded.set()
        try:
            while (request := self._triage_queue.get()) is not None:
                self._save_triage(store, *request)
        finally:
            store.close()

    def _save_triage(
        self, store: Store, store_id: int, status: str, reason: str | None
    ) -> None:
        try:
            store.set_status(store_id, status, reason)
        except Exception as error:
            # One failed write is reported; the worker lives on for the next.
            # Limitation: the table keeps showing the status that was not saved
            # (a full disk, say) until it is set again or the dashboard restarts.
            message = f"Triage of alert {store_id} was not saved: {error}"
            self.sink.on_notice(Notice("error", message))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR and worker.group == "export":
            self.notify(
                f"Nothing was written to {worker.name}: {worker.error}",
                title="Export failed",
                severity="error",
                timeout=30,
                markup=False,
            )
        elif event.state == WorkerState.ERROR:
            self.notify(
                f"{worker.name} stopped: {type(worker.error).__name__}: {worker.error}",
                title="Background work failed",
                severity="error",
                timeout=30,
                markup=False,
            )
        elif event.state == WorkerState.SUCCESS and worker.group == "export":
            self.notify(
                f"Wrote {worker.result:,} alerts to {worker.name}", markup=False
            )

    # Batches ---------------------------------------------------------------

    def drain(self) -> None:
        """Move what the sink holds onto the screen: the timer's work."""
        if not self.is_running:
            return  # closing: the screens may already be taken apart
        batch = self.sink.drain()
        if batch.alerts:
            self.main.alerts_arriving()
            self.view.add(batch.alerts)
        if batch.bad_lines:
            self.bad_lines.add(batch.bad_lines)
            if isinstance(self.screen, BadLinesScreen):
                self.screen.lines_changed()
        for notice in batch.notices:
            self.notify(
                notice.message,
                title=notice.path or "",
                severity=_SEVERITY.get(notice.level, "information"),
                markup=False,
            )
        self.refresh_screen(rows_changed=bool(batch.alerts))

    def refresh_screen(self, rows_changed: bool = False) -> None:
        self.main.show_state(self.feed_stats(), rows_changed)

    def feed_stats(self) -> FeedStats:
        now = self.clock()
        counters = self.counters() if self.counters else None
        events = counters.events if counters else 0
        rate, age = self.rate.update(events, now)
        return FeedStats(
            files=self.files() if self.files else 0,
            events=events,
            events_per_second=rate,
            bad_lines=self.bad_lines.total,
            last_event_age=age,
        )

    # User intent -----------------------------------------------------------

    def triage(self, row: AlertRow, status: str, reason: str | None = None) -> None:
        """Set an alert's status on screen now and in the state database soon."""
        self.view.set_status(row, status, reason)
        store_id = row.store_id
        if self.store_path is not None and store_id is not None:
            self._triage_queue.put((store_id, status, reason))
        elif self.store_path is not None:
            # Limitation: an alert shown while the state file was full has no store
            # id here, even once the follower stored it later.
            self.notify(
                "This alert is not in the state database; its status will not "
                "survive a restart.",
                severity="warning",
            )
        self.refresh_screen(rows_changed=True)
        if isinstance(self.screen, DetailScreen) and self.screen.row is row:
            self.screen.status_changed()

    def ask_close_reason(self, row: AlertRow) -> None:
        def close(reason: str | None) -> None:
            if reason is not None:
                self.triage(row, "closed", reason)

        self.push_screen(CloseReasonScreen(), close)

    def ask_export(self) -> None:
        rows = list(self.view.shown)

        def write(path: str | None) -> None:
            if path:
                self.run_worker(
                    partial(export, rows, path),
                    name=path,
                    group="export",
                    thread=True,
                    exit_on_error=False,
                )

        self.push_screen(ExportScreen(suggested_path(self.clock()), len(rows)), write)

    def open_detail(self, row: AlertRow) -> None:
        self.push_screen(DetailScreen(row, self.rules.get(row.rule_id)))

    def action_bad_lines(self) -> None:
        if not isinstance(self.screen, BadLinesScreen):
            self.push_screen(BadLinesScreen(self.bad_lines))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(
                HelpScreen(binding_rows(self.screen.active_bindings, self))
            )

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette offers every described action of the screen it opened on."""
        seen = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or binding.system or binding.action in seen:
                continue
            seen.add(binding.action)
            key = self.get_key_display(binding)
            yield SystemCommand(
                binding.description,
                binding.tooltip or f"Key: {key}",
                partial(self.run_action, binding.action, active.node),
            )
        yield from super().get_system_commands(screen)


_SEVERITY = {"info": "information", "warning": "warning", "error": "error"}
