"""Pictures that are the contract: the main screen and each drill-down tab, on the
alerts of tests/data/tui/semantics.ndjson with the clock frozen.

After an intended change of look: `pytest tests/test_tui_snapshots.py
--snapshot-update`, then review the SVGs in tests/__snapshots__/.
"""

from __future__ import annotations

import pytest
from conftest import dashboard, until

from tui.detail import DetailScreen

SIZE = (130, 34)


def fed_dashboard():
    app, alerts, bad = dashboard()
    app.sink.on_alerts(alerts)
    app.sink.on_bad_lines(bad)
    return app


def test_main_screen(snap_compare):
    app = fed_dashboard()

    async def triage(pilot):
        await pilot.pause()
        app.drain()
        rows = list(app.view.newest_first)
        app.triage(rows[1], "acknowledged")
        app.triage(rows[2], "closed", "false_positive")

    assert snap_compare(app, terminal_size=SIZE, run_before=triage)


@pytest.mark.parametrize("tab", ["overview", "event", "fields", "attack", "guide"])
def test_drill_down_tab(snap_compare, tab):
    app = fed_dashboard()

    async def open_tab(pilot):
        await pilot.pause()
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, DetailScreen))
        app.screen.action_show_tab(tab)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_tab)


@pytest.mark.parametrize("tab", [None, "overview", "event"])
def test_hostile_values_show_as_themselves(snap_compare, tab):
    """Markup, closing tags and escape bytes from a log, on screen as plain text."""
    app, alerts, bad = dashboard("hostile.ndjson")
    app.sink.on_alerts(alerts)
    app.sink.on_bad_lines(bad)

    async def open_tab(pilot):
        await pilot.pause()
        app.drain()
        await pilot.pause()
        if tab:
            await pilot.press("enter")
            await until(lambda: isinstance(app.screen, DetailScreen))
            app.screen.action_show_tab(tab)
            await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_tab)
