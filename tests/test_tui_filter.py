"""`/` filters the table by text, severity, status and host, and the filter holds
for alerts that arrive after it."""

from __future__ import annotations

import pytest
from conftest import dashboard, detect_file, screen_text

from tui.alert_table import AlertTable
from tui.filters import FilterError, parse_filter
from tui.rows import alert_row


def rows_of(name):
    alerts, _, _ = detect_file(name)
    return [alert_row(alert) for alert in alerts]


def test_words_and_terms_must_all_hold():
    rows = rows_of("semantics.ndjson")
    assert sum(parse_filter("mirrordump").matches(row) for row in rows) == 5
    assert sum(parse_filter("md.exe sev:med").matches(row) for row in rows) == 1
    assert not any(parse_filter("mirrordump severity:high").matches(r) for r in rows)
    assert all(parse_filter("status:op host:WS-042").matches(row) for row in rows)
    assert all(parse_filter("").matches(row) for row in rows)


def test_names_may_be_shortened_and_listed():
    chosen = parse_filter("sev:crit,hi status:ack")
    assert chosen.severities == {"critical", "high"}
    assert chosen.statuses == {"acknowledged"}


def test_quoted_words_keep_their_spaces():
    assert parse_filter('"process accessed" lsass').words == (
        "process accessed",
        "lsass",
    )


@pytest.mark.parametrize("text", ["severity:urgent", "status:", "status:gone"])
def test_an_unknown_name_is_refused_with_a_reason(text):
    with pytest.raises(FilterError):
        parse_filter(text)


async def apply_filter(pilot, text):
    await pilot.press("slash")
    await pilot.press(*text)
    await pilot.press("enter")
    await pilot.pause()


async def test_slash_filters_the_table_and_new_arrivals_obey_the_filter():
    app, alerts, _ = dashboard()
    later, _, _ = detect_file("hostile.ndjson")
    async with app.run_test(size=(130, 30)) as pilot:
        app.sink.on_alerts(alerts)
        app.drain()
        await apply_filter(pilot, "md.exe")
        table = app.query_one(AlertTable)
        assert [row.target for row in table.rows] == ["md.exe (7320)"]
        assert "1 of 6 alerts in view · filter: md.exe" in screen_text(app)
        assert table.has_focus

        app.sink.on_alerts(later + alerts[:1])  # none of these is md.exe
        app.drain()
        await pilot.pause()
        assert [row.target for row in table.rows] == ["md.exe (7320)"]

        app.sink.on_alerts(alerts[4:5])  # the flat Sysmon line: md.exe again
        app.drain()
        await pilot.pause()
        assert [row.target for row in table.rows] == ["md.exe (7320)"] * 2


async def test_status_filter_drops_a_row_once_it_is_triaged_away():
    app, alerts, _ = dashboard()
    async with app.run_test(size=(130, 30)) as pilot:
        app.sink.on_alerts(alerts)
        app.drain()
        await apply_filter(pilot, "status:open")
        await pilot.press("a")
        await pilot.pause()
        assert len(app.query_one(AlertTable).rows) == 5
        assert app.view.by_status["acknowledged"] == 1


async def test_host_filter_and_escape_puts_back_the_filter_in_force():
    app, alerts, _ = dashboard()
    later, _, _ = detect_file("hostile.ndjson")
    async with app.run_test(size=(130, 30)) as pilot:
        app.sink.on_alerts(alerts + later)
        app.drain()
        await apply_filter(pilot, "host:666")
        assert len(app.query_one(AlertTable).rows) == 1

        await pilot.press("slash", "x", "y", "escape")
        await pilot.pause()
        assert app.query_one("#filter").value == "host:666"
        assert len(app.query_one(AlertTable).rows) == 1


async def test_a_bad_filter_is_explained_and_the_old_one_stays():
    app, alerts, _ = dashboard()
    async with app.run_test(size=(130, 30)) as pilot:
        app.sink.on_alerts(alerts)
        app.drain()
        await apply_filter(pilot, "severity:[/x]")
        assert app.view.filter.empty
        assert len(app.query_one(AlertTable).rows) == 6
        assert any("severity:[/x]" in n.message for n in app._notifications)
