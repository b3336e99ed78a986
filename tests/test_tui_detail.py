"""Enter on an alert opens its drill-down: overview, event, fields, ATT&CK, guide."""

from __future__ import annotations

from conftest import dashboard, screen_text, until

from tui.detail import DetailScreen
from tui.main_screen import MainScreen
from tui.virtual_table import VirtualTable


async def open_newest(app, pilot):
    await pilot.pause()
    await pilot.press("enter")
    await until(lambda: isinstance(app.screen, DetailScreen))
    await pilot.pause()


def fed_dashboard():
    app, alerts, bad = dashboard()
    app.sink.on_alerts(alerts)
    return app, alerts


async def test_overview_says_what_fired_why_and_each_condition_met():
    app, alerts = fed_dashboard()
    async with app.run_test(size=(130, 40)) as pilot:
        await open_newest(app, pilot)
        text = screen_text(app)
        for expected in (
            "Potential Credential Access via DuplicateHandle in LSASS",
            "Identifies suspicious access to a Local Security Authority",
            "lsass.exe opened C:\\Users\\jdoe\\Downloads\\MirrorDump.exe",
            "medium",
            "47",
            "ws-042.corp.example",
            "NT AUTHORITY\\SYSTEM",
            "2026-11-30 10:15:02 UTC",
            "2026-11-30 10:15:04 UTC",
            "Credential Access (TA0006)",
            "OS Credential Dumping (T1003)",
            "LSASS Memory (T1003.001)",
            'process.name : "lsass.exe"',
            'winlog.event_data.GrantedAccess == "0x40"  →  0x40',
        ):
            assert expected in text, expected
        assert text.count("✓ met") == 4


async def test_event_tab_shows_the_original_line_and_the_ecs_view():
    app, alerts = fed_dashboard()
    async with app.run_test(size=(130, 40)) as pilot:
        await open_newest(app, pilot)
        await pilot.press("2")
        await pilot.pause()
        text = screen_text(app)
        assert "Original line (logs/winlogbeat.ndjson:12, byte 14996)" in text
        assert '"@timestamp": "2026-11-30T10:15:02.123Z"' in text

        body = app.screen.query_one("#event-body")
        body.scroll_end(animate=False)
        await pilot.pause()
        assert (
            "ECS view the rule evaluated (input shape winlogbeat7)" in screen_text(app)
            or body.max_scroll_y > 0
        )


async def test_fields_tab_is_a_flat_table_the_analyst_can_filter():
    app, alerts = fed_dashboard()
    async with app.run_test(size=(130, 40)) as pilot:
        await open_newest(app, pilot)
        await pilot.press("3")
        await pilot.pause()
        table = app.screen.query_one("#fields-table", VirtualTable)
        fields = dict(table.rows)
        assert fields["winlog.event_data.GrantedAccess"] == "0x40"
        assert fields["event.category"] == "process"
        assert fields["threat.technique.subtechnique.id"] == "T1003.001"

        app.screen.query_one("#fields-filter").focus()
        await pilot.press(*"granted")
        await pilot.pause()
        assert [field for field, _ in table.rows] == ["winlog.event_data.GrantedAccess"]


async def test_attack_tab_walks_tactic_technique_sub_technique_with_links():
    app, alerts = fed_dashboard()
    async with app.run_test(size=(130, 40)) as pilot:
        await open_newest(app, pilot)
        await pilot.press("4")
        await pilot.pause()
        lines = screen_text(app).splitlines()
        order = [
            "tactic: Credential Access  TA0006",
            "https://attack.mitre.org/tactics/TA0006/",
            "technique: OS Credential Dumping  T1003",
            "https://attack.mitre.org/techniques/T1003/",
            "sub-technique: LSASS Memory  T1003.001",
            "https://attack.mitre.org/techniques/T1003/001/",
        ]
        found = [next(i for i, ln in enumerate(lines) if part in ln) for part in order]
        assert found == sorted(found)


async def test_guide_tab_renders_the_investigation_guide_and_references():
    app, alerts = fed_dashboard()
    async with app.run_test(size=(130, 40)) as pilot:
        await open_newest(app, pilot)
        await pilot.press("5")
        await pilot.pause()
        text = screen_text(app)
        assert "Investigation guide" in text
        assert "add a custom" in text
        assert "References" in text
        assert "https://github.com/CCob/MirrorDump" in text


async def test_escape_goes_back_to_the_table_where_it_was():
    app, alerts = fed_dashboard()
    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.pause()
        await pilot.press("down", "down", "enter")
        await until(lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.alert.key == alerts[-3].key
        await pilot.press("escape")
        await until(lambda: isinstance(app.screen, MainScreen))
        assert app.main.table.cursor == 2
