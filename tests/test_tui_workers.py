"""Work in threads never blocks the UI, never kills it, and is slowed down rather
than buffered without bound; its problems reach the analyst as notices."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import dashboard, detect_file, screen_text, until

from detector.model import Notice
from tui.bad_lines import BadLinesScreen
from tui.launch import launch_main
from tui.sink import BufferedSink


def test_a_full_sink_makes_the_follower_wait_until_the_ui_drains_it():
    alerts, _, _ = detect_file("semantics.ndjson")
    sink = BufferedSink(limit=6)
    sink.on_alerts(alerts)
    second = threading.Thread(target=sink.on_alerts, args=(alerts,))
    second.start()
    time.sleep(0.3)
    assert second.is_alive()  # held back: the UI has not caught up

    assert len(sink.drain().alerts) == 6
    second.join(2)
    assert not second.is_alive()
    assert len(sink.drain().alerts) == 6


def test_closing_the_sink_releases_a_waiting_follower():
    alerts, _, _ = detect_file("semantics.ndjson")
    sink = BufferedSink(limit=1)
    sink.on_alerts(alerts)
    waiting = threading.Thread(target=sink.on_alerts, args=(alerts,))
    waiting.start()
    sink.close()
    waiting.join(2)
    assert not waiting.is_alive()


def test_a_notice_repeated_before_the_ui_read_it_is_kept_once():
    sink = BufferedSink()
    for _ in range(3):
        sink.on_notice(Notice("warning", "file gone", "a.ndjson"))
    assert len(sink.drain().notices) == 1


class Exploding:
    def run(self, stop):
        raise OSError("disk on fire")


async def test_a_failed_follower_is_a_notice_and_the_app_runs_on():
    app, alerts, _ = dashboard(follower_factory=lambda sink: Exploding())
    app.sink.on_alerts(alerts)
    async with app.run_test(size=(130, 30)) as pilot:
        await until(lambda: app._notifications)
        (notice,) = app._notifications
        assert notice.message == "follower stopped: OSError: disk on fire"
        assert notice.severity == "error"
        await pilot.press("down", "a")
        await pilot.pause()
        assert app.view.by_status["acknowledged"] == 1


async def test_follower_notices_and_markup_in_them_reach_the_analyst_as_text():
    app, _, _ = dashboard()
    async with app.run_test(size=(130, 30)) as pilot:
        app.sink.on_notice(Notice("warning", "rotated [/x] away", "[bold]a.ndjson"))
        app.drain()
        await pilot.pause()
        (notice,) = app._notifications
        assert (notice.message, notice.title) == ("rotated [/x] away", "[bold]a.ndjson")
        assert notice.severity == "warning"


async def test_unusable_lines_are_listed_with_file_line_and_reason():
    app, _, bad = dashboard()
    app.sink.on_bad_lines(bad)
    async with app.run_test(size=(130, 30)) as pilot:
        await pilot.press("b")
        await until(lambda: isinstance(app.screen, BadLinesScreen))
        await pilot.pause()
        text = screen_text(app)
        assert "1 line could not be used" in text
        assert "logs/winlogbeat.ndjson" in text
        assert "11" in text
        assert "not JSON: unexpected character" in text

        app.sink.on_bad_lines(bad)  # more arrive while the panel is open
        app.drain()
        await pilot.pause()
        assert "2 lines could not be used" in screen_text(app)


def test_a_bad_demo_speed_prints_usage_and_exits_2(capsys):
    with pytest.raises(SystemExit) as stop:
        launch_main(["demo", "--speed", "0"])
    assert stop.value.code == 2
    assert "usage: winlogwatch demo" in capsys.readouterr().err


def test_options_without_a_path_say_a_path_is_needed(capsys):
    """Regression: `winlogwatch --state F` fell into the demo's parser and blamed
    the demo for an unknown option."""
    with pytest.raises(SystemExit) as stop:
        launch_main(["--state", "/tmp/s.sqlite3"])
    assert stop.value.code == 2
    assert "give a PATH to follow" in capsys.readouterr().err


def test_a_state_file_that_cannot_be_used_stops_before_the_screen(tmp_path, caplog):
    notes = tmp_path / "notes.txt"
    notes.write_text("somebody's notes\n" * 40)
    assert launch_main([str(tmp_path), "--state", str(notes)]) == 2
    assert str(notes) in caplog.text
    assert notes.read_text() == "somebody's notes\n" * 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no lock


def test_a_dashboard_on_a_state_another_process_follows_with_refuses(tmp_path, caplog):
    from detector.store import FollowLock

    state = tmp_path / "state.sqlite3"
    with FollowLock(state):
        assert launch_main([str(tmp_path), "--state", str(state)]) == 2
    assert "is following with the state file" in caplog.text
