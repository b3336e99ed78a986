"""Shared fixtures: where the data is, and how to run the real `winlogwatch` command."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent
SHARED = REPO.parent / "shared"

# Parser tables and Hyperscan databases the tests build are kept apart from the
# user's (detector/build_cache.py); every `winlogwatch` a test starts inherits it.
if "WINLOGWATCH_CACHE" not in os.environ:
    os.environ["WINLOGWATCH_CACHE"] = tempfile.mkdtemp(prefix="winlogwatch-cache-")
    atexit.register(shutil.rmtree, os.environ["WINLOGWATCH_CACHE"], True)


def winlogwatch_command() -> list[str]:
    """The installed console script beside this Python, as a user would run it."""
    script = Path(sys.executable).with_name("winlogwatch")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "tui.cli"]


def run_winlogwatch(*args: str, stdin: bytes | None = None, timeout: float = 60):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [*winlogwatch_command(), *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture
def data_dir() -> Path:
    return DATA


# The dashboard's tests (tests/test_tui*.py). Animations off before Textual is
# imported anywhere: snapshots must not catch a transition half-way.
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")

TUI_DATA = DATA / "tui"

#: The dashboard's clock in tests: 2026-11-30 10:15:04 UTC, two seconds after the
#: events in tests/data/tui were written.
FROZEN_NOW = 1796033704.0


def detect_file(name: str, path: str = "logs/winlogbeat.ndjson"):
    """Run the real detector over tests/data/tui/NAME as the follower would.

    Returns (alerts, bad lines, detector). Each alert's times are pinned to
    FROZEN_NOW, so screens that show them are the same on every run.
    """
    from detector.detect import Detector
    from detector.lines import LineSplitter
    from detector.rules import load_rules

    rules, errors = load_rules()
    assert not errors, errors
    detector = Detector(rules)
    splitter = LineSplitter()
    data = (TUI_DATA / name).read_bytes()
    alerts, bad = [], []
    for raw in [*splitter.feed(data), *splitter.flush()]:
        outcome = detector.check(raw, path, "test-origin")
        if isinstance(outcome, list):
            alerts.extend(outcome)
        else:
            bad.append(outcome)
    for alert in alerts:
        alert.seen_at = FROZEN_NOW
        alert.document["@timestamp"] = "2026-11-30T10:15:04.000+00:00"
    return alerts, bad, detector


def dashboard(name: str = "semantics.ndjson", **options):
    """A dashboard on the alerts of tests/data/tui/NAME, not yet fed or running.

    Returns (app, alerts, bad lines); feed them as the follower would, through
    `app.sink`, then `app.drain()`.
    """
    from tui.app import WinlogwatchApp

    alerts, bad, detector = detect_file(name)
    options.setdefault("counters", lambda: detector.counters)
    options.setdefault("files", lambda: 1)
    options.setdefault("clock", lambda: FROZEN_NOW)
    return WinlogwatchApp(detector.rules, **options), alerts, bad


def screen_text(app) -> str:
    """What the terminal shows now, as plain text lines (styles dropped)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


async def until(condition, timeout: float = 10.0) -> None:
    """Let the app run until `condition()` holds: screens take a while to switch,
    and `pilot.pause()` does not wait for thread workers."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)
