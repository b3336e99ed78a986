"""The alert table follows the newest alert, pauses when the analyst looks away,
counts what waits, and returns to the newest on one key."""

from __future__ import annotations

from conftest import dashboard, detect_file, screen_text

from tui.alert_table import AlertTable
from tui.main_screen import MainScreen
from tui.rows import alert_row


def key(row) -> str:
    """Which event a row is about (rows hold their alert packed, not the object)."""
    return row.unpack().key


async def feed(app, pilot, alerts=(), bad=()):
    if alerts:
        app.sink.on_alerts(list(alerts))
    if bad:
        app.sink.on_bad_lines(list(bad))
    app.drain()
    await pilot.pause()


async def test_alerts_arrive_newest_first_and_the_cursor_stays_on_the_newest():
    app, alerts, _ = dashboard()
    async with app.run_test(size=(130, 30)) as pilot:
        await feed(app, pilot, alerts[:3])
        table = app.query_one(AlertTable)
        assert key(table.current) == alerts[2].key

        await feed(app, pilot, alerts[3:])
        assert table.cursor == 0
        assert key(table.current) == alerts[-1].key
        assert [key(row) for row in table.rows] == [a.key for a in alerts[::-1]]
        assert "● FOLLOWING" in screen_text(app)


async def test_moving_off_the_newest_pauses_and_counts_what_waits():
    app, alerts, _ = dashboard()
    later, _, _ = detect_file("hostile.ndjson")
    async with app.run_test(size=(130, 30)) as pilot:
        await feed(app, pilot, alerts)
        await pilot.press("down")
        await pilot.pause()
        table = app.query_one(AlertTable)
        looked_at = table.current

        await feed(app, pilot, later)
        assert not app.view.following
        assert len(table.rows) == len(alerts)  # the rows did not move
        assert table.current is looked_at
        assert "PAUSED · 2 new" in screen_text(app)


async def test_one_key_returns_to_the_newest_with_what_waited():
    app, alerts, _ = dashboard()
    later, _, _ = detect_file("hostile.ndjson")
    async with app.run_test(size=(130, 30)) as pilot:
        await feed(app, pilot, alerts)
        await pilot.press("down", "down")
        await feed(app, pilot, later)

        await pilot.press("f")
        await pilot.pause()
        table = app.query_one(AlertTable)
        assert app.view.following
        assert table.cursor == 0
        assert key(table.current) == later[-1].key
        assert len(table.rows) == len(alerts) + len(later)
        assert "● FOLLOWING" in screen_text(app)


async def test_scrolling_back_up_to_the_newest_follows_again():
    app, alerts, _ = dashboard()
    later, _, _ = detect_file("hostile.ndjson")
    async with app.run_test(size=(130, 30)) as pilot:
        await feed(app, pilot, alerts)
        await pilot.press("down")
        await feed(app, pilot, later)
        await pilot.press("up")
        await pilot.pause()
        assert app.view.following
        assert key(app.query_one(AlertTable).current) == later[-1].key


async def test_summary_counts_severity_status_files_events_and_unusable_lines():
    app, alerts, bad = dashboard()
    async with app.run_test(size=(130, 30)) as pilot:
        await feed(app, pilot, alerts, bad)
        text = screen_text(app)
        assert "alerts 6" in text
        assert "medium 6" in text
        assert "open 6" in text
        assert "1 file followed" in text
        assert "11 events" in text
        assert "1 unusable line" in text
        assert "last event 0s ago" in text
        assert "6 of 6 alerts in view" in text


async def test_a_hundred_thousand_alerts_cost_the_table_only_the_rows_on_screen():
    app, alerts, _ = dashboard()
    async with app.run_test(size=(130, 30)) as pilot:
        # Rows are made once and repeated: making rows is the sink's cost, and
        # this is about the table's.
        app.view.add([alert_row(alert) for alert in alerts] * 20_000)
        app.refresh_screen(rows_changed=True)
        await pilot.pause()
        table = app.query_one(AlertTable)
        assert len(table.rows) == 120_000
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor == 119_999
        assert isinstance(app.screen, MainScreen)
