"""The drill-down on one alert: overview, event, fields, ATT&CK and guide tabs.

Triage works here as on the table; the status line follows it. Values from the
event are always `Text` or highlighted JSON built from inert text.
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.highlight import highlight
from textual.screen import Screen
from textual.widgets import (
    Footer,
    Input,
    Label,
    Markdown,
    Static,
    TabbedContent,
    TabPane,
    Tree,
)

from detector.model import Alert
from detector.rules import SEVERITIES, Rule
from tui.describe import (
    AttackStep,
    attack_line,
    attack_steps,
    conditions_of,
    ecs_view,
    flat_fields,
    guide_markdown,
    json_text,
    original_json,
    user_of,
    utc_text,
)
from tui.rows import AlertRow, first
from tui.text import plain, safe
from tui.virtual_table import Column, VirtualTable


class Overview(Static):
    """What fired and why, with each condition of the query shown as met or not."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "overview--label",
        "overview--met",
        "overview--unmet",
        "overview--low",
        "overview--medium",
        "overview--high",
        "overview--critical",
    }

    def __init__(self, row: AlertRow, alert: Alert, rule: Rule | None, **kwargs):
        super().__init__(**kwargs)
        self.row = row
        self.alert = alert
        self.rule = rule

    def render(self) -> Table:
        alert, doc = self.alert, self.alert.document
        label = self.get_component_rich_style("overview--label", partial=True)
        severity = (
            self.get_component_rich_style(
                f"overview--{self.row.severity}", partial=True
            )
            if self.row.severity in SEVERITIES
            else ""
        )

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style=label, no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_row("rule", Text(self.row.rule, style="bold"))
        description = first(doc, "kibana.alert.rule.description")
        grid.add_row("description", safe_block(description or ""))
        grid.add_row("reason", safe_block(first(doc, "kibana.alert.reason") or ""))
        grid.add_row("severity", Text(self.row.severity, style=severity))
        grid.add_row("risk score", Text(self.row.risk))
        grid.add_row("status", Text(status_text(self.row)))
        grid.add_row("host", Text(self.row.host))
        grid.add_row("user", safe(user_of(doc) or "—"))
        grid.add_row("event time", Text(f"{self.row.time} UTC"))
        grid.add_row("seen", Text(utc_text(alert.seen_at)))
        threat = self.rule.threat if self.rule else doc.get("threat")
        grid.add_row("ATT&CK", safe_block(attack_line(attack_steps(threat)) or "—"))
        grid.add_row("", "")

        met = self.get_component_rich_style("overview--met", partial=True)
        unmet = self.get_component_rich_style("overview--unmet", partial=True)
        grid.add_row(Text("query tested", style="bold"), "")
        for condition in conditions_of(alert, self.rule):
            mark = Text("✓ met" if condition.met else "✗ not met")
            mark.stylize(met if condition.met else unmet)
            test = Text(no_wrap=False)
            test.append(plain(condition.field), style="bold")
            test.append(f" {plain(condition.operator)} {plain(condition.expected)}")
            test.append("  →  ", style=label)
            test.append(
                plain(condition.actual) if condition.actual is not None else "null"
            )
            grid.add_row(mark, test)
        return grid


def safe_block(value: object) -> Text:
    """A value that may wrap and hold newlines, still shown as inert text."""
    return Text(plain(value, lines=True), no_wrap=False)


def status_text(row: AlertRow) -> str:
    if row.status == "closed" and row.close_reason:
        return f"closed ({row.close_reason.replace('_', ' ')})"
    return row.status


class AttackTree(Tree[str]):
    """Tactic → technique → sub-technique, with IDs and reference links."""

    def __init__(self, steps: list[AttackStep], **kwargs):
        super().__init__(Text("MITRE ATT&CK"), **kwargs)
        self.show_root = False
        for step in steps:
            self._add(self.root, step)
        self.root.expand_all()

    def _add(self, parent, step: AttackStep) -> None:
        label = Text(no_wrap=True)
        label.append(f"{step.level}: ", style="italic")
        label.append(plain(step.name), style="bold")
        label.append(f"  {plain(step.id)}")
        node = parent.add(label, expand=True)
        if step.reference:
            node.add_leaf(safe(step.reference))
        for child in step.children:
            self._add(node, child)


class DetailScreen(Screen):
    """Everything about one alert, in tabs; Escape goes back to the table."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("1", "show_tab('overview')", "Overview", show=False),
        Binding("2", "show_tab('event')", "Event", show=False),
        Binding("3", "show_tab('fields')", "Fields", show=False),
        Binding("4", "show_tab('attack')", "ATT&CK", show=False),
        Binding("5", "show_tab('guide')", "Guide", show=False),
        Binding("a", "triage('acknowledged')", "Acknowledge"),
        Binding("c", "close_alert", "Close…"),
        Binding("o", "triage('open')", "Reopen"),
    ]

    def __init__(self, row: AlertRow, rule: Rule | None):
        super().__init__()
        self.row = row
        self.alert = row.unpack()
        self.rule = rule

    def compose(self) -> ComposeResult:
        alert = self.alert
        yield Label(self._title(), id="detail-title")
        with TabbedContent(id="detail-tabs", initial="overview"):
            with TabPane("Overview", id="overview"):
                with VerticalScroll():
                    yield Overview(self.row, alert, self.rule, id="overview-body")
            with TabPane("Event", id="event"):
                with VerticalScroll(id="event-body"):
                    where = f"{alert.path}:{alert.line_number}, byte {alert.offset}"
                    yield Label(safe(f"Original line ({where})"), classes="heading")
                    yield Static(highlight(original_json(alert), language="json"))
                    yield Label(
                        safe(
                            f"ECS view the rule evaluated (input shape {alert.shape})"
                        ),
                        classes="heading",
                    )
                    yield Static(highlight(json_text(ecs_view(alert)), language="json"))
            with TabPane("Fields", id="fields"):
                yield Input(placeholder="filter fields and values", id="fields-filter")
                yield VirtualTable(
                    (
                        Column("field", "field", 24, flex=1),
                        Column("value", "value", 30, flex=2),
                    ),
                    flat_fields(alert.document),
                    id="fields-table",
                )
            with TabPane("ATT&CK", id="attack"):
                threat = self.rule.threat if self.rule else alert.document.get("threat")
                yield AttackTree(attack_steps(threat), id="attack-tree")
            with TabPane("Guide", id="guide"):
                with VerticalScroll():
                    yield Markdown(
                        guide_markdown(self.rule, alert.document), id="guide-body"
                    )
        yield Footer()

    def _title(self) -> Text:
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(self.row.rule, style="bold")
        title.append(f"  ·  {self.row.host}  ·  {self.row.time} UTC  ·  ")
        title.append(status_text(self.row))
        return title

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_triage(self, status: str) -> None:
        self.app.triage(self.row, status)

    def action_close_alert(self) -> None:
        self.app.ask_close_reason(self.row)

    def status_changed(self) -> None:
        """The app recorded triage on this alert: show the new status."""
        self.query_one("#detail-title", Label).update(self._title())
        self.query_one(Overview).refresh()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "fields-filter":
            return
        needle = event.value.lower()
        rows = flat_fields(self.alert.document)
        if needle:
            rows = [
                (field, value)
                for field, value in rows
                if needle in field.lower() or needle in plain(value).lower()
            ]
        self.query_one("#fields-table", VirtualTable).show(rows)
