"""Turn a rule match into an alert document in the spirit of Elastic's alerts index.

The document is the event as the rule saw it (its ECS view) with `kibana.alert.*`,
`threat` and `log.*` added: what fired, why, and exactly where the line came from.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from detector.eql import lookup
from detector.model import Alert
from detector.rules import Rule


def first(event: dict[str, Any], field: str) -> Any:
    """The first value a field names in an event, or None."""
    values = lookup(event, field)
    return values[0] if values else None


def event_key(view: dict[str, Any], origin: str, offset: int) -> str:
    """Identify an event so that re-reading it never raises its alert twice.

    Windows gives every event a record id per channel and host; where the event
    carries those, they identify it wherever it is read from. Otherwise the file
    (by identity, not name) and the byte offset do.
    """
    record = first(view, "winlog.record_id")
    host = first(view, "winlog.computer_name") or first(view, "host.name")
    channel = first(view, "winlog.channel")
    if record is not None and host is not None and channel is not None:
        return f"{str(host).lower()}|{channel}|{record}"
    return f"{origin}@{offset}"


def reason(rule: Rule, view: dict[str, Any]) -> str:
    """One sentence saying what happened, in the words of the event."""
    process = (
        first(view, "process.name")
        or first(view, "process.executable")
        or "unknown process"
    )
    host = (
        first(view, "host.name")
        or first(view, "winlog.computer_name")
        or "unknown host"
    )
    target = first(view, "winlog.event_data.TargetImage")
    access = first(view, "winlog.event_data.GrantedAccess")
    user = first(view, "user.name") or first(view, "winlog.user.name")

    words = [f"{process}"]
    if target is not None:
        words.append(f"opened {target}")
        if access is not None:
            words.append(f"with access {access}")
    if user:
        words.append(f"as {user}")
    words.append(f"on {host}, matching {rule.severity} rule {rule.name}.")
    return " ".join(words)


def build_alert(
    rule: Rule,
    view: dict[str, Any],
    raw: str,
    path: str,
    offset: int,
    line_number: int,
    origin: str,
    shape: str,
) -> Alert:
    """Make the alert for `rule` matching `view`, read from `path` at `offset`."""
    now = time.time()
    document = dict(view)
    document["log"] = {
        **(view["log"] if isinstance(view.get("log"), dict) else {}),
        "file": {"path": path, "line": line_number},
        "offset": offset,
    }
    document["threat"] = rule.threat
    document["kibana"] = {
        "alert": {
            "rule": {
                "name": rule.name,
                "rule_id": rule.rule_id,
                "severity": rule.severity,
                "risk_score": rule.risk_score,
                "version": rule.version,
                "description": rule.description,
                "tags": rule.tags,
            },
            "severity": rule.severity,
            "risk_score": rule.risk_score,
            "reason": reason(rule, view),
            "status": "active",
            "workflow_status": "open",
            "original_time": first(view, "@timestamp"),
            "input_shape": shape,
        }
    }
    document["@timestamp"] = datetime.fromtimestamp(now, UTC).isoformat(
        timespec="milliseconds"
    )
    return Alert(
        document=document,
        raw=raw,
        path=path,
        offset=offset,
        line_number=line_number,
        rule_id=rule.rule_id,
        key=event_key(view, origin, offset),
        shape=shape,
        conditions=rule.query.explain(view),
        seen_at=now,
    )
