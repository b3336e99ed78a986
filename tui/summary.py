"""The two summary lines over the table: alerts by severity and status, and the feed.

alerts 1,234  critical 0  high 2  medium 1,232  low 0 │ open 1,200  ack… 30  …
2 files  1,204,332 events  20,114/s  12 unusable lines  last event 0s ago
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

from detector.rules import SEVERITIES
from detector.store import STATUSES
from tui.view import AlertView

#: How far back the events-per-second figure looks.
RATE_WINDOW = 5.0


@dataclass(slots=True, frozen=True)
class FeedStats:
    """What the follower and the detector have done so far."""

    files: int
    events: int
    events_per_second: float
    bad_lines: int
    last_event_age: float | None  # seconds since the event count last grew


class RateMeter:
    """Events per second over the last few seconds, and when the last one came."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()
        self._last_growth: float | None = None
        self._last_count = 0

    def update(self, events: int, now: float) -> tuple[float, float | None]:
        """Record the count at `now`; returns (events per second, age of last)."""
        if events > self._last_count:
            self._last_growth = now
        self._last_count = events
        samples = self._samples
        samples.append((now, events))
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW:
            samples.popleft()
        then, count = samples[0]
        rate = (events - count) / (now - then) if now > then else 0.0
        age = None if self._last_growth is None else max(now - self._last_growth, 0.0)
        return rate, age


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "no event yet"
    if seconds < 90:
        return f"last event {seconds:.0f}s ago"
    if seconds < 5400:
        return f"last event {seconds / 60:.0f}m ago"
    return f"last event {seconds / 3600:.1f}h ago"


class Summary(Static):
    """Counts over the table; colours come from the theme through the TCSS."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "summary--label",
        "summary--low",
        "summary--medium",
        "summary--high",
        "summary--critical",
    }

    _shown: Text | None = None

    def show(self, view: AlertView, stats: FeedStats) -> None:
        label = self.get_component_rich_style("summary--label", partial=True)
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"alerts {len(view.rows):,}", style="bold")
        for severity in reversed(SEVERITIES):
            style = self.get_component_rich_style(f"summary--{severity}", partial=True)
            line.append(f"  {severity} ", style=label)
            line.append(f"{view.by_severity[severity]:,}", style=style)
        line.append("  │ ", style=label)
        for status in STATUSES:
            line.append(f" {status} ", style=label)
            line.append(f"{view.by_status[status]:,} ")

        line.append("\n")
        line.append(f"{stats.files:,}", style="bold")
        line.append(" file" if stats.files == 1 else " files", style=label)
        line.append(" followed  ", style=label)
        line.append(f"{stats.events:,}", style="bold")
        line.append(" events  ", style=label)
        line.append(f"{stats.events_per_second:,.0f}", style="bold")
        line.append("/s  ", style=label)
        line.append(f"{stats.bad_lines:,}", style="bold")
        line.append(
            " unusable line  " if stats.bad_lines == 1 else " unusable lines  ",
            style=label,
        )
        line.append(age_text(stats.last_event_age), style=label)
        if line != self._shown:
            # Two lines, always: no layout pass is needed, only a repaint.
            self._shown = line
            self.update(line, layout=False)
