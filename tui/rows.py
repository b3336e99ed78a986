"""What the dashboard holds for one alert: the table's cells, and the alert packed.

A row is made once, in the thread that delivers the alert, so the UI thread only
slices strings it already has. The alert itself is kept packed (JSON, compressed)
and unpacked when the analyst drills down or exports. Measured with 100,000
alerts held: as live objects their documents made ~1.8 million containers for
Python's cycle collector, whose full passes froze the UI for two seconds, and took
~15 KB each; packed, an alert is one ~2.3 KB bytes object the collector never
visits, for ~70 µs of packing in the follower's thread.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from detector.eql_fields import Getter, compile_getter
from detector.model import Alert, Condition
from tui.text import plain

# Compiled once: a general field lookup per cell made a row cost ~130 µs, too
# much for the follower's thread at twenty thousand events a second.
_GETTERS: dict[str, Getter] = {}


def first(doc: dict[str, Any], field: str) -> Any:
    """The first value of a field in an alert document, or None."""
    get = _GETTERS.get(field)
    if get is None:
        get = _GETTERS[field] = compile_getter(field)
    values = get(doc)
    return values[0] if values else None


# Compared by identity: two alerts with equal cells are still two alerts.
@dataclass(slots=True, eq=False)
class AlertRow:
    """One alert as the dashboard holds it.

    `status` and `close_reason` are the triage now; the packed alert keeps the
    values it had when it arrived, and `unpack` puts the current ones in.
    """

    time: str
    host: str
    rule: str
    severity: str
    risk: str
    source: str
    target: str
    access: str
    haystack: str  # lower-case text the filter searches
    rule_id: str
    store_id: int | None
    status: str
    close_reason: str | None
    packed: bytes

    def unpack(self) -> Alert:
        """The full alert, with its triage as it is now."""
        text = zlib.decompress(self.packed)
        try:
            fields = orjson.loads(text)
        except orjson.JSONDecodeError:
            fields = json.loads(text)  # packed by `json`: see `pack`
        fields["conditions"] = [Condition(**c) for c in fields["conditions"]]
        alert = Alert(**fields)
        alert.status, alert.close_reason = self.status, self.close_reason
        return alert


def alert_row(alert: Alert) -> AlertRow:
    """The row for `alert`."""
    doc = alert.document
    time = event_time(doc)
    host = plain(first(doc, "host.name") or first(doc, "winlog.computer_name"))
    rule = plain(first(doc, "kibana.alert.rule.name") or alert.rule_id)
    severity = plain(first(doc, "kibana.alert.severity")).lower()
    risk = plain(first(doc, "kibana.alert.risk_score"))
    source = process_label(
        first(doc, "process.name") or basename(first(doc, "process.executable")),
        first(doc, "process.pid"),
    )
    target = process_label(
        first(doc, "Target.process.name")
        or basename(first(doc, "winlog.event_data.TargetImage")),
        first(doc, "Target.process.pid")
        or first(doc, "winlog.event_data.TargetProcessId"),
    )
    access = plain(first(doc, "winlog.event_data.GrantedAccess"))
    # The reason names the process, the target, the access and the user too.
    reason = plain(first(doc, "kibana.alert.reason"))
    haystack = "\n".join(
        (time, host, rule, severity, risk, source, target, access, reason)
    ).lower()
    return AlertRow(
        time,
        host,
        rule,
        severity,
        risk,
        source,
        target,
        access,
        haystack,
        alert.rule_id,
        alert.store_id,
        alert.status,
        alert.close_reason,
        pack(alert),
    )


def pack(alert: Alert) -> bytes:
    """The alert as compressed JSON. Level 1: documents repeat their keys, and the
    fastest level already takes them to about a third."""
    try:
        text = orjson.dumps(alert)
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library does not.
        text = json.dumps(asdict(alert), default=str, ensure_ascii=False).encode()
    return zlib.compress(text, 1)


def event_time(doc: dict[str, Any]) -> str:
    """When the event happened, as `YYYY-MM-DD HH:MM:SS` (UTC, as ECS records it).

    The alert's own `@timestamp` is when it was raised; the event's is kept in
    `kibana.alert.original_time`.
    """
    stamp = first(doc, "kibana.alert.original_time") or first(doc, "@timestamp")
    text = plain(stamp)
    if len(text) >= 19 and text[4] == "-" and text[10] in "T ":
        return f"{text[:10]} {text[11:19]}"
    return text


def basename(path: Any) -> str | None:
    """The last part of a Windows or POSIX path, without parsing anything else."""
    if not isinstance(path, str) or not path:
        return None
    return path.replace("/", "\\").rsplit("\\", 1)[-1] or path


def process_label(name: Any, pid: Any) -> str:
    """`lsass.exe (744)`, or whichever half is known."""
    name_text, pid_text = plain(name), plain(pid)
    if name_text and pid_text:
        return f"{name_text} ({pid_text})"
    return name_text or (f"pid {pid_text}" if pid_text else "")
