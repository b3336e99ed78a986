"""Recognise the JSON layout of a Windows event and give the rules their ECS view.

Analysts hold Sysmon events in many layouts; the EQL rules are written against what
winlogbeat 7.x with its Sysmon module stores. `to_ecs` names the layout (the shape)
and returns that view: winlogbeat 7 documents as they are, everything else mapped
into winlogbeat's `winlog.*` layout, and Sysmon events given the fields the module
derives client-side (`event.category`, `process.*`, ...).

The view is for the rules only; the original line travels elsewhere untouched. The
view may share nested objects with the input, which it never changes.

This module tells the layouts apart; `shape_layouts` maps each one, `sysmon_ecs`
derives the Sysmon fields and `shape_fields` reads keys and values in every form.
"""

from __future__ import annotations

import logging
from typing import Any

from detector.shape_fields import nested, unwrap
from detector.shape_layouts import (
    from_evtx,
    from_flat,
    from_helk,
    from_sentinel,
    from_winlogbeat8,
)

log = logging.getLogger(__name__)

SHAPES: dict[str, str] = {
    "winlogbeat7": "winlogbeat 7.x with the Sysmon module: ECS fields used as they are",
    "winlogbeat8": "winlogbeat 8.x file output, no ingest pipeline: Sysmon ECS added",
    "es-hit": "Elasticsearch/Kibana search hit: its _source mapped by its own layout",
    "kibana-fields": "Kibana 'fields' view: dotted field names holding arrays",
    "flat-sysmon": "NXLog/Logstash flat JSON: EventID, Channel, SourceImage on top",
    "sentinel": "Azure Sentinel WindowsEvent: EventData as a JSON string",
    "evtx": "evtx parser JSON: Event.System and Event.EventData (#attributes)",
    "helk": "HELK Logstash renames: process_path, process_granted_access (decimal)",
    "unknown": "no known layout: passed on as is, nothing derived",
}

#: Fields whose values the mapping makes up (from the event id, or reformatted)
#: rather than copies from the event: a line's text need not hold them.
MADE_UP_FIELDS = frozenset(
    {"event.category", "event.type", "event.module", "event.kind", "@timestamp"}
)

#: Keys that make a document a search hit (its event under `_source`).
HIT_KEYS = ("_source", "_id", "_index")

#: The fields `to_ecs` reads of a document that is no search hit before it names it
#: winlogbeat 7 (the first layout `_map_document` tries). A reader that decodes
#: only some fields (`narrow`) decodes these so that `to_ecs` names the shape as
#: it would for the whole document. Keep in step with `_map`, `_is_fields_view`
#: and the start of `_map_document`.
WINLOGBEAT7_SIGNS = (
    "@timestamp",
    "event.category",
    "event.code",
    "event.module",
    "process.name",
    "winlog.event_id",
)

# Top-level keys that, beside an EventID, mark an NXLog/Logstash flat record.
_FLAT_MARKERS = frozenset(
    {"Channel", "SourceName", "Hostname", "ProviderGuid", "RecordNumber", "SourceImage"}
)

# Keys only HELK's Logstash renames write; with an event id, log name or source
# name beside them they mark a HELK record.
_HELK_MARKERS = frozenset(
    """
    process_granted_access process_call_trace process_target_name process_target_path
    process_path process_name process_guid
    """.split()
)


def to_ecs(obj: dict, undotted: bool = False) -> tuple[str, dict]:
    """Return (shape name, ECS view) for one parsed event.

    `undotted`: the caller knows that no key of obj holds a dot, so they are not
    looked for. Never raises: a layout not recognised, or anything that trips
    the mapping, comes back as ("unknown", obj).
    """
    try:
        return _map(obj, undotted)
    except Exception:
        # Backstop for the per-line path: one odd event must not stop a scan.
        log.debug("shape mapping failed; treating the event as unknown", exc_info=True)
        return "unknown", obj


def _map(obj: Any, undotted: bool) -> tuple[str, dict]:
    if not isinstance(obj, dict):
        return "unknown", obj

    # Search hits: the event is under _source, or only in the "fields" view.
    if "_source" in obj or "_id" in obj or "_index" in obj:  # HIT_KEYS
        source = obj.get("_source")
        if type(source) is dict:
            return _via("es-hit", nested(source), obj)
        fields = obj.get("fields")
        if type(fields) is dict:
            return _via("kibana-fields", nested(unwrap(fields, "", 0)), obj)

    if _is_fields_view(obj):
        return _via("kibana-fields", nested(unwrap(obj, "", 0)), obj)
    return _map_document(obj if undotted else nested(obj)) or ("unknown", obj)


def _via(shape: str, inner: dict, obj: dict) -> tuple[str, dict]:
    """Map the event inside a wrapper; the wrapper names the shape."""
    mapped = _map_document(inner)
    if mapped is None:
        return "unknown", obj
    return shape, mapped[1]


def _map_document(doc: dict) -> tuple[str, dict] | None:
    """Shape and view of a bare event document, or None for an unknown layout."""
    event = doc.get("event")
    if type(event) is dict and ("category" in event or event.get("module") == "sysmon"):
        return "winlogbeat7", doc
    process = doc.get("process")
    if type(process) is dict and "name" in process:
        return "winlogbeat7", doc

    wrapped = doc.get("Event")
    if type(wrapped) is dict and "System" in wrapped:
        return "evtx", from_evtx(wrapped)
    if type(doc.get("System")) is dict and ("EventData" in doc or "UserData" in doc):
        return "evtx", from_evtx(doc)

    if "EventID" in doc:
        if "EventData" in doc and (
            "Provider" in doc or "Computer" in doc or doc.get("Type") == "WindowsEvent"
        ):
            return "sentinel", from_sentinel(doc)
        if not _FLAT_MARKERS.isdisjoint(doc):
            return "flat-sysmon", from_flat(doc)

    if not _HELK_MARKERS.isdisjoint(doc) and (
        "event_id" in doc or "log_name" in doc or "source_name" in doc
    ):
        return "helk", from_helk(doc)

    winlog = doc.get("winlog")
    if type(winlog) is dict and (
        "provider_name" in winlog or "event_data" in winlog or "event_id" in winlog
    ):
        return "winlogbeat8", from_winlogbeat8(doc, winlog)
    return None


def _is_fields_view(doc: dict) -> bool:
    """True for a Kibana fields view at the top level: values that are never arrays
    in a stored document come as one-element arrays."""
    for name in ("@timestamp", "event.code", "winlog.event_id", "winlog.channel"):
        if type(doc.get(name)) is list:
            return True
    event = doc.get("event")
    if type(event) is dict and type(event.get("code")) is list:
        return True
    winlog = doc.get("winlog")
    return type(winlog) is dict and type(winlog.get("event_id")) is list
