"""Values from logs are text: markup, escape sequences and direction overrides in
an event show as the characters they are, everywhere, and crash nothing."""

from __future__ import annotations

import io

from conftest import dashboard, detect_file, screen_text, until
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from tui.describe import ecs_view, json_text, original_json
from tui.detail import DetailScreen
from tui.text import plain, safe

TERMINAL_ACTS_ON = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} | set(
    "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


@given(st.text())
def test_any_text_comes_out_with_nothing_a_terminal_would_act_on(value):
    shown = plain(value)
    assert not TERMINAL_ACTS_ON & set(shown)
    assert not (TERMINAL_ACTS_ON - {"\n"}) & set(plain(value, lines=True))
    assert safe(value).plain == shown  # never read as markup

    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(safe(value))
    assert not (TERMINAL_ACTS_ON - {"\n"}) & set(out.getvalue())


def test_escapes_are_spelt_out():
    assert plain("a\x1b[31mb\x07") == "a\\x1b[31mb\\x07"
    assert plain("\u202eexe.evil") == "\\u202eexe.evil"
    assert plain(["[bold]", None, 3]) == "[bold], , 3"
    assert plain("line\nnext\x1b", lines=True) == "line\nnext\\x1b"


def test_pretty_json_keeps_escapes_as_json_escapes():
    alerts, _, _ = detect_file("hostile.ndjson")
    for alert in alerts:
        for text in (original_json(alert), json_text(ecs_view(alert))):
            assert not TERMINAL_ACTS_ON - {"\n"} & set(text)
    assert "[/x]\\u001b[31mred\\u001b[0m.exe" in original_json(alerts[0])
    assert "\\u202eexe.evil" in original_json(alerts[1])


async def test_hostile_alerts_show_their_characters_in_the_table():
    app, alerts, _ = dashboard("hostile.ndjson")
    app.sink.on_alerts(alerts)
    async with app.run_test(size=(200, 30)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "ws-[bold]666[/bold][/x]" in text
        # The target's name is what follows its last separator, "/" included.
        assert "x]\\x1b[31mred\\x1b[0m.exe (7320)" in text
        assert '=HYPERLINK("https://evil.exam' in text
        assert "\x1b" not in text


async def test_every_drill_down_tab_renders_a_hostile_alert():
    app, alerts, _ = dashboard("hostile.ndjson")
    app.sink.on_alerts(alerts)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await pilot.press("down", "enter")
        await until(lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause()
        overview = screen_text(app)
        assert "[link=https://evil.example]click[/link]" in overview
        assert "UNKNOWN(\\x1b]0;owned\\x07)" in overview

        await pilot.press("2")
        await pilot.pause()
        event = screen_text(app)
        assert '"name": "ws-[bold]666[/bold][/x]"' in event

        await pilot.press("3")
        await pilot.pause()
        fields = screen_text(app)
        assert "[/x]\\x1b[31mred\\x1b[0m.exe" in fields

        for tab in "45":
            await pilot.press(tab)
            await pilot.pause()
        assert all("\x1b" not in text for text in (overview, event, fields))
        assert app.is_running


async def test_markup_typed_into_the_filter_is_text_too():
    app, alerts, _ = dashboard("hostile.ndjson")
    later, _, _ = detect_file("semantics.ndjson")
    app.sink.on_alerts(alerts + later)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.press("slash", *"[/bold]", "enter")
        await pilot.pause()
        assert len(app.view.shown) == 1
        assert "filter: [/bold]" in screen_text(app)
