"""Help lists the keys bound where it was asked for; the palette offers the actions."""

from __future__ import annotations

from conftest import dashboard, screen_text, until
from textual.binding import Binding
from textual.command import CommandPalette

from tui.detail import DetailScreen
from tui.dialogs import ExportScreen
from tui.help import HelpScreen
from tui.main_screen import MainScreen


async def help_rows(app, pilot, key):
    await pilot.press(key)
    await until(lambda: isinstance(app.screen, HelpScreen))
    rows = dict((does, keys) for keys, does in app.screen.rows)
    await pilot.press("escape")
    await until(lambda: not isinstance(app.screen, HelpScreen))
    return rows


async def test_question_mark_and_f1_list_the_main_screen_keys():
    app, alerts, _ = dashboard()
    app.sink.on_alerts(alerts)
    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.pause()
        rows = await help_rows(app, pilot, "question_mark")
        for does, keys in [
            ("Filter", "/"),
            ("Newest", "f"),
            ("Acknowledge", "a"),
            ("Close…", "c"),
            ("Reopen", "o"),
            ("Export", "e"),
            ("Unusable lines", "b"),
            ("Open", "⏎"),
        ]:
            assert rows[does] == keys
        assert await help_rows(app, pilot, "f1") == rows


async def test_help_follows_the_live_bindings_of_the_screen_it_was_asked_on():
    app, alerts, _ = dashboard()
    app.sink.on_alerts(alerts)
    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, DetailScreen))
        rows = await help_rows(app, pilot, "f1")
        assert rows["Back"] == "esc"
        assert "Export" not in rows
        assert rows["Acknowledge"] == "a"


async def test_the_command_palette_offers_the_screen_actions_and_runs_them():
    app, alerts, _ = dashboard()
    app.sink.on_alerts(alerts)
    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.pause()
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for action in ("Filter", "Newest", "Acknowledge", "Close…", "Export", "Help"):
            assert action in titles

        await pilot.press("ctrl+p")
        await until(
            lambda: isinstance(app.screen, CommandPalette) and app.screen.focused
        )
        await pilot.press(*"export")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, ExportScreen))
        await pilot.press("escape")
        await until(lambda: isinstance(app.screen, MainScreen))
        assert "FOLLOWING" in screen_text(app)


def test_every_main_screen_binding_says_what_it_does():
    for binding in MainScreen.BINDINGS:
        assert isinstance(binding, Binding) and binding.description


async def test_help_draws_its_key_rows_on_screen():
    """Regression: the rows were listed but the table was drawn zero lines tall."""
    app, alerts, _ = dashboard()
    app.sink.on_alerts(alerts)
    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await until(lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause()
        dialog = screen_text(app).split("Keys", 1)[1].split("Ctrl+P opens", 1)[0]
        for does in ("Filter", "Acknowledge", "Export", "Unusable lines", "Quit"):
            assert does in dialog
