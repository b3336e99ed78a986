"""Help built from the key bindings active where it was asked for."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from tui.virtual_table import Column, VirtualTable


def binding_rows(bindings: dict[str, ActiveBinding], app) -> list[tuple[str, str]]:
    """(keys, what they do) for every described binding, keys joined per action."""
    keys_by_action: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    for active in bindings.values():
        binding = active.binding
        if not binding.description or binding.system:
            continue
        action = f"{active.node.__class__.__name__}.{binding.action}"
        keys_by_action.setdefault(action, []).append(app.get_key_display(binding))
        descriptions[action] = binding.description
    return [
        (" ".join(keys), descriptions[action])
        for action, keys in keys_by_action.items()
    ]


class HelpScreen(ModalScreen[None]):
    """The keys of the screen below, as they are bound now."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close help"),
    ]

    def __init__(self, rows: list[tuple[str, str]]):
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help"):
            yield Label("Keys", classes="dialog-title")
            table = VirtualTable(
                (Column("key", "key", 12), Column("action", "does", 24, flex=1)),
                self.rows,
                id="help-keys",
            )
            # The table draws only the rows it has room for, so it cannot size
            # itself to its content: give it one line a binding plus its header.
            table.styles.height = min(len(self.rows) + 1, 30)
            yield table
            yield Label(
                "Ctrl+P opens the command palette: every action, by name.",
                classes="dialog-hint",
            )

    async def action_dismiss(self, result=None) -> None:
        self.dismiss(None)
