"""Acknowledge, close with Elastic's reasons, reopen: from the table and the
drill-down, saved in the state database so a restart finds them."""

from __future__ import annotations

import asyncio

from conftest import TUI_DATA, dashboard, screen_text, until
from textual.widgets import OptionList

from detector.store import Store
from tui.alert_table import AlertTable
from tui.detail import DetailScreen
from tui.dialogs import CloseReasonScreen
from tui.launch import follow_app


def saved_statuses(state) -> list[str]:
    """Statuses as stored, oldest alert first, read on a connection of our own."""
    store = Store(state)
    try:
        return [alert.status for alert in store.load_alerts()]
    finally:
        store.close()


def reason_list_ready(app) -> bool:
    screen = app.screen
    if not isinstance(screen, CloseReasonScreen):
        return False
    reasons = screen.query_one(OptionList)
    return reasons.has_focus and reasons.highlighted == 0


async def close_as(pilot, reason_index):
    await pilot.press("c")
    await until(lambda: reason_list_ready(pilot.app))
    await pilot.press(*["down"] * reason_index, "enter")
    await until(lambda: not isinstance(pilot.app.screen, CloseReasonScreen))
    await pilot.pause()


async def test_acknowledge_close_and_reopen_from_the_table():
    app, alerts, _ = dashboard()
    app.sink.on_alerts(alerts)
    async with app.run_test(size=(130, 30)) as pilot:
        await pilot.pause()
        table = app.query_one(AlertTable)
        row = table.current

        await pilot.press("a")
        await pilot.pause()
        assert row.status == "acknowledged"
        assert "acknowledged 1" in screen_text(app)

        await close_as(pilot, 1)  # the second reason: duplicate
        assert (row.status, row.close_reason) == ("closed", "duplicate")
        assert "closed 1" in screen_text(app)

        await pilot.press("o")
        await pilot.pause()
        assert (row.status, row.close_reason) == ("open", None)
        assert "open 6" in screen_text(app)


async def test_escape_in_the_reason_list_closes_nothing():
    app, alerts, _ = dashboard()
    app.sink.on_alerts(alerts)
    async with app.run_test(size=(130, 30)) as pilot:
        await pilot.pause()
        await pilot.press("c")
        await until(lambda: isinstance(app.screen, CloseReasonScreen))
        await pilot.press("escape")
        await until(lambda: not isinstance(app.screen, CloseReasonScreen))
        assert app.query_one(AlertTable).current.status == "open"


async def test_triage_from_the_drill_down_shows_at_once():
    app, alerts, _ = dashboard()
    app.sink.on_alerts(alerts)
    async with app.run_test(size=(130, 30)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, DetailScreen))
        await close_as(pilot, 0)
        assert "closed (false positive)" in screen_text(app)
        await pilot.press("o")
        await pilot.pause()
        assert "·  open" in screen_text(app)


async def test_triage_survives_a_restart_on_the_same_state(tmp_path):
    state = str(tmp_path / "state.sqlite3")
    _, alerts, _ = dashboard()
    store = Store(state)
    stored = store.commit(alerts, [])  # as the follower stores what it raises
    store.close()

    app, _, _ = dashboard(store_path=state)
    async with app.run_test(size=(130, 30)) as pilot:
        await until(lambda: len(app.view.rows) == len(stored))
        app.drain()
        await pilot.pause()
        await pilot.press("a", "down")
        await close_as(pilot, 2)  # true positive
        await pilot.press("down", "a", "o")  # acknowledged, then reopened
        await until(lambda: saved_statuses(state).count("open") == 4)

    again, _, _ = dashboard(store_path=state)
    async with again.run_test(size=(130, 30)) as pilot:
        await until(lambda: len(again.view.rows) == len(stored))
        again.drain()
        await pilot.pause()
        newest_first = list(again.query_one(AlertTable).rows)
        assert [(r.status, r.close_reason) for r in newest_first[:3]] == [
            ("acknowledged", None),
            ("closed", "true_positive"),
            ("open", None),
        ]
        assert "acknowledged 1" in screen_text(again)


async def test_a_followed_file_shows_its_alert_and_a_restart_keeps_its_triage(
    tmp_path,
):
    """The real follower, detector and store, on a file that grows."""
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(b"")
    state = str(tmp_path / "state.sqlite3")
    first_line = (TUI_DATA / "semantics.ndjson").read_bytes().split(b"\n")[0] + b"\n"
    rules = dashboard()[0].rules.values()

    app = follow_app(list(rules), [str(log)], state)
    async with app.run_test(size=(130, 30)) as pilot:
        with open(log, "ab") as out:
            out.write(first_line)
        await until(lambda: len(app.view.rows) == 1)  # the timer drains the sink
        await pilot.pause()
        assert app.query_one(AlertTable).current.source == "lsass.exe (744)"
        await pilot.press("a")
        await until(lambda: saved_statuses(state) == ["acknowledged"])

    again = follow_app(list(rules), [str(log)], state)
    async with again.run_test(size=(130, 30)) as pilot:
        await until(lambda: len(again.view.rows) == 1)
        await asyncio.sleep(0.5)  # time enough for a second alert, were there one
        assert [row.status for row in again.view.rows] == ["acknowledged"]


async def test_a_triage_key_pressed_as_a_new_alert_arrives_does_not_hit_the_newcomer():
    """Regression: pressing `a` just as an alert arrived acknowledged the new alert
    instead of the one being read."""
    app, alerts, _ = dashboard()
    async with app.run_test(size=(130, 30)) as pilot:
        app.sink.on_alerts(alerts[:1])
        app.drain()
        await pilot.pause(1.0)
        app.sink.on_alerts(alerts[1:2])
        app.drain()
        await pilot.press("a")
        await pilot.pause()
        assert [row.status for row in app.view.rows] == ["open", "open"]
        assert any("just took the cursor" in n.message for n in app._notifications)

        await asyncio.sleep(1.0)  # real time: the grace is about the analyst
        await pilot.press("a")
        await pilot.pause()
        newest = app.query_one(AlertTable).current
        assert newest.status == "acknowledged"
