"""What the drill-down says about one alert, as plain values, before any widget.

Everything here reads the alert document and the rule; nothing reads a file or
parses a log line (pretty-printing `alert.raw` is display: it alerted, so it is
JSON). Kept free of Textual so the wording can be tested on its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from detector.model import Alert, Condition
from detector.rules import Rule
from tui.rows import first

# Left as they are by json.dumps(ensure_ascii=False), yet acted on by a terminal:
# DEL, the C1 controls and the direction marks. Spelt as JSON escapes instead.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

#: Fields the rule machinery adds to the event; the rest is the ECS view.
ALERT_ADDITIONS = ("kibana", "threat")


@dataclass(slots=True, frozen=True)
class AttackStep:
    """One level of an ATT&CK mapping: tactic, technique or sub-technique."""

    level: str
    name: str
    id: str
    reference: str
    children: tuple[AttackStep, ...] = ()


def json_text(value: Any) -> str:
    """Indented JSON that shows every character of every string as inert text."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return _UNSAFE_IN_JSON.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def original_json(alert: Alert) -> str:
    """The original line, pretty-printed; as it is when it does not load."""
    try:
        return json_text(json.loads(alert.raw))
    except ValueError:
        return alert.raw


def ecs_view(alert: Alert) -> dict[str, Any]:
    """The event as the rule saw it: the document without what alerting added.

    The document's `@timestamp` is when the alert was raised; the event's own is
    kept in `kibana.alert.original_time` and is put back here.
    """
    view = {
        key: value
        for key, value in alert.document.items()
        if key not in ALERT_ADDITIONS and key != "@timestamp"
    }
    original = first(alert.document, "kibana.alert.original_time")
    if original is not None:
        view = {"@timestamp": original, **view}
    return view


def utc_text(epoch: float) -> str:
    """Epoch seconds as `YYYY-MM-DD HH:MM:SS UTC`."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def user_of(doc: dict[str, Any]) -> str | None:
    """`DOMAIN\\name` of the user the event names, or None."""
    for prefix in ("user", "winlog.user"):
        name = first(doc, f"{prefix}.name")
        if name is not None:
            domain = first(doc, f"{prefix}.domain")
            return f"{domain}\\{name}" if domain else str(name)
    return None


def conditions_of(alert: Alert, rule: Rule | None) -> list[Condition]:
    """The query's comparisons as tested on this event.

    An alert carries them from detection; for one stored before they were kept,
    the loaded rule explains the event again.
    """
    if alert.conditions or rule is None:
        return alert.conditions
    return rule.query.explain(ecs_view(alert))


def attack_steps(threat: Any) -> list[AttackStep]:
    """The ATT&CK mapping of a rule, tactic first, from its `threat` entries."""
    steps = []
    for entry in threat if isinstance(threat, list) else []:
        if not isinstance(entry, dict):
            continue
        techniques = tuple(
            _step(
                "technique",
                technique,
                tuple(
                    _step("sub-technique", sub)
                    for sub in _dicts(technique.get("subtechnique"))
                ),
            )
            for technique in _dicts(entry.get("technique"))
        )
        tactic = entry.get("tactic")
        if isinstance(tactic, dict):
            steps.append(_step("tactic", tactic, techniques))
        else:
            steps.extend(techniques)
    return steps


def _dicts(value: Any) -> list[dict]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def _step(level: str, entry: dict, children: tuple[AttackStep, ...] = ()) -> AttackStep:
    return AttackStep(
        level,
        str(entry.get("name", "")),
        str(entry.get("id", "")),
        str(entry.get("reference", "")),
        children,
    )


def attack_line(steps: list[AttackStep]) -> str:
    """`Credential Access (TA0006) › OS Credential Dumping (T1003) › ...`."""
    chains = []
    for tactic in steps:
        names = [f"{tactic.name} ({tactic.id})"]
        step = tactic
        while step.children:
            step = step.children[0]
            names.append(f"{step.name} ({step.id})")
        chains.append(" › ".join(names))
    return "; ".join(chains)


def flat_fields(document: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every leaf of a document as (dotted field, value), sorted by field.

    Arrays of objects are flattened the way Elasticsearch indexes them: the
    values of one field across the array become one list.
    """
    found: dict[str, list[Any]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            for item in value:
                walk(prefix, item)
        elif isinstance(value, list):
            found.setdefault(prefix, []).extend(value)
        else:
            found.setdefault(prefix, []).append(value)

    walk("", document)
    return [
        (field, values[0] if len(values) == 1 else values)
        for field, values in sorted(found.items())
    ]


def guide_markdown(rule: Rule | None, document: dict[str, Any]) -> str:
    """The rule's investigation guide, setup notes and references, as Markdown."""
    if rule is None:
        name = first(document, "kibana.alert.rule.name") or "this rule"
        return (
            f"# {name}\n\nThe rule is not loaded now, so its investigation guide "
            "cannot be shown. Start winlogwatch with `--rules DIR` to load it.\n"
        )
    parts = [f"# {rule.name}\n", rule.description + "\n"]
    parts.append("## Investigation guide\n")
    parts.append(
        (rule.note.strip() or "_This rule has no investigation guide._") + "\n"
    )
    if rule.setup.strip() and rule.setup.strip() not in rule.note:
        parts.append("## Setup\n")
        parts.append(rule.setup.strip() + "\n")
    if rule.references:
        parts.append("## References\n")
        parts.extend(f"- <{reference}>" for reference in rule.references)
    return "\n".join(parts) + "\n"
