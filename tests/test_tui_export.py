"""Export the alerts in view to NDJSON or CSV, at a path the analyst types."""

from __future__ import annotations

import csv

import orjson
from conftest import dashboard, detect_file, until
from textual.widgets import Input

from tui.dialogs import ExportScreen
from tui.export import export, neutralise
from tui.rows import alert_row


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tmp_path):
    alerts, _, _ = detect_file("hostile.ndjson")
    path = tmp_path / "view.csv"
    assert export([alert_row(alert) for alert in alerts], str(path)) == 2

    with open(path, newline="", encoding="utf-8") as table:
        rows = list(csv.DictReader(table))
    assert rows[1]["host"] == '\'=HYPERLINK("https://evil.example","x")'
    assert rows[1]["target_process"] == "'+SUM(1;2)|calc.exe (7320)"
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_neutralise_leaves_ordinary_text_alone():
    assert neutralise("lsass.exe (744)") == "lsass.exe (744)"
    assert neutralise("-1") == "'-1"
    assert neutralise("@SUM(A1)") == "'@SUM(A1)"


def test_ndjson_holds_each_alert_document_with_its_triage(tmp_path):
    alerts, _, _ = detect_file("semantics.ndjson")
    rows = [alert_row(alert) for alert in alerts]
    rows[0].status, rows[0].close_reason = "closed", "duplicate"
    path = tmp_path / "view.ndjson"
    export(rows, str(path))

    documents = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [d["log"]["offset"] for d in documents] == [a.offset for a in alerts]
    assert documents[0]["kibana"]["alert"]["workflow_status"] == "closed"
    assert documents[0]["kibana"]["alert"]["workflow_reason"] == "duplicate"
    assert documents[1]["kibana"]["alert"]["workflow_status"] == "open"
    assert alerts[0].document["kibana"]["alert"]["workflow_status"] == "open"


def export_box_ready(app) -> bool:
    screen = app.screen
    return isinstance(screen, ExportScreen) and screen.query_one(Input).has_focus


async def test_e_exports_the_filtered_view_to_the_path_typed(tmp_path):
    app, alerts, _ = dashboard()
    app.sink.on_alerts(alerts)
    target = tmp_path / "md.csv"
    async with app.run_test(size=(130, 30)) as pilot:
        await pilot.press("slash", *"md.exe", "enter")
        await pilot.press("e")
        await until(lambda: export_box_ready(app))
        box = app.screen.query_one("#export-path")
        assert box.value.endswith(".ndjson")
        box.value = str(target)
        await pilot.press("enter")
        await until(lambda: target.exists() and not app.workers)
        await until(
            lambda: any("Wrote 1 alerts" in n.message for n in app._notifications)
        )

    with open(target, newline="", encoding="utf-8") as table:
        (row,) = list(csv.DictReader(table))
    assert row["target_process"] == "md.exe (7320)"


async def test_an_export_that_cannot_be_written_is_a_notice_not_a_crash(tmp_path):
    app, alerts, _ = dashboard()
    app.sink.on_alerts(alerts)
    async with app.run_test(size=(130, 30)) as pilot:
        await pilot.pause()
        await pilot.press("e")
        await until(lambda: export_box_ready(app))
        app.screen.query_one("#export-path").value = str(tmp_path / "no" / "x.csv")
        await pilot.press("enter")
        await until(lambda: any("failed" in n.title for n in app._notifications))
        assert app.is_running
