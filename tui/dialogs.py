"""Small modal questions: why an alert is closed, and where to export."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from detector.store import CLOSE_REASONS


class CloseReasonScreen(ModalScreen[str | None]):
    """Pick one of Elastic's reasons for closing; Escape closes nothing."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Close the alert because it is…", classes="dialog-title")
            yield OptionList(
                *(
                    Option(reason.replace("_", " "), id=reason)
                    for reason in CLOSE_REASONS
                ),
                id="close-reasons",
            )
            yield Label("Enter chooses, Esc cancels.", classes="dialog-hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportScreen(ModalScreen[str | None]):
    """Ask for the file to export the current view to."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, suggestion: str, count: int):
        super().__init__()
        self.suggestion = suggestion
        self.count = count

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(
                f"Export the {self.count:,} alerts in view", classes="dialog-title"
            )
            yield Input(self.suggestion, id="export-path", select_on_focus=False)
            yield Label(
                "A name ending in .csv writes CSV; any other, NDJSON. Enter to write.",
                classes="dialog-hint",
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        self.dismiss(path or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
