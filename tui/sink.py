"""Where the follower thread hands over alerts, and the UI takes them in batches.

The follower calls the `Sink` methods from its own thread. They only append to
lists under a lock; the app drains them a few times a second. When the UI falls
behind, `on_alerts` and `on_bad_lines` wait for room, so the follower slows down
instead of memory growing without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from detector.model import Alert, BadLine, Notice
from tui.rows import AlertRow, alert_row


@dataclass(slots=True)
class Batch:
    """Everything that arrived since the last drain."""

    alerts: list[AlertRow] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.alerts or self.bad_lines or self.notices)


class BufferedSink:
    """A thread-safe inbox between the follower and the UI, with back-pressure."""

    def __init__(self, limit: int = 20_000):
        self.limit = limit
        self._room = threading.Condition()
        self._batch = Batch()
        self._closed = False

    def on_alerts(self, alerts: list[Alert]) -> None:
        # Cells are worked out here, in the caller's thread, not in the UI's.
        rows = [alert_row(alert) for alert in alerts]
        with self._room:
            self._wait_for_room(lambda: len(self._batch.alerts))
            self._batch.alerts.extend(rows)

    def on_bad_lines(self, bad: list[BadLine]) -> None:
        with self._room:
            self._wait_for_room(lambda: len(self._batch.bad_lines))
            self._batch.bad_lines.extend(bad)

    def on_notice(self, notice: Notice) -> None:
        with self._room:
            notices = self._batch.notices
            # A notice repeated before the UI read the first says nothing new.
            if not notices or notices[-1] != notice:
                notices.append(notice)

    def drain(self) -> Batch:
        """Take everything waiting, and let blocked callers go on."""
        with self._room:
            batch, self._batch = self._batch, Batch()
            self._room.notify_all()
        return batch

    def close(self) -> None:
        """Stop making callers wait: the app is going away."""
        with self._room:
            self._closed = True
            self._room.notify_all()

    def _wait_for_room(self, held: Callable[[], int]) -> None:
        # Called with the lock held; `wait` releases it while sleeping. `held` is
        # read afresh each time because a drain swaps the batch for a new one.
        while held() >= self.limit and not self._closed:
            self._room.wait(0.25)
