"""Recognise the JSON layout of a Windows event and give the rules their ECS view.

Analysts hold Sysmon events in many layouts; the EQL rules are written against what
winlogbeat 7.x with its Sysmon module stores. `to_ecs` names the layout (the shape)
and returns that view: winlogbeat 7 documents as they are, everything else mapped
into winlogbeat's `winlog.*` layout, and Sysmon events given the fields the module
derives client-side (`event.category`, `process.*`, ...).

The view is for the rules only; the original line travels elsewhere untouched. The
view may share nested objects with the input, which it never changes.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson

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

_SYSMON_PROVIDER = "microsoft-windows-sysmon"
_SYSMON_CHANNEL = "microsoft-windows-sysmon/operational"

# event.category and event.type per Sysmon event id: the table of winlogbeat's 8.x
# Sysmon ingest pipeline, which agrees with the 7.x module's script where that one
# categorises (early 7.x scripts leave 8, 9 and 19-21 without a category).
_CATEGORIES: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    1: (("process",), ("start",)),
    2: (("file",), ("change",)),
    3: (("network",), ("start", "connection", "protocol")),
    4: (("process",), ("change",)),
    5: (("process",), ("end",)),
    6: (("driver",), ("start",)),
    7: (("process",), ("change",)),
    8: (("process",), ("change",)),
    9: (("process",), ("access",)),
    10: (("process",), ("access",)),
    11: (("file",), ("creation",)),
    12: (("configuration", "registry"), ("change",)),
    13: (("configuration", "registry"), ("change",)),
    14: (("configuration", "registry"), ("change",)),
    15: (("file",), ("access",)),
    16: (("configuration",), ("change",)),
    17: (("file",), ("creation",)),
    18: (("file",), ("access",)),
    19: (("process",), ("info",)),
    20: (("process",), ("change",)),
    21: (("process",), ("access",)),
    22: (("network",), ("connection", "protocol", "info")),
    23: (("file",), ("deletion",)),
    24: ((), ("change",)),
    25: (("process",), ("change",)),
    26: (("file",), ("deletion",)),
    27: (("file",), ("creation",)),
    28: (("file",), ("deletion",)),
    29: (("file",), ("creation",)),
    255: (("process",), ()),
}

# The events for which the module turns the User field and the SID into `user.*`.
_USER_EVENTS = frozenset({1, 3, 19, 20, 21, 23, 24, 25})

# Objects whose keys are event data names, not ECS paths: never split at the dots.
_OPAQUE = frozenset({"event_data", "EventData", "user_data", "UserData"})

# ECS fields that are arrays in their own right, kept as arrays in the fields view.
_ARRAY_FIELDS = frozenset(
    """
    event.category event.type tags related.hash related.hosts related.ip related.user
    process.args process.parent.args
    """.split()
)

# Top-level keys of NXLog/Logstash flat records that describe the record, not the
# event: everything else at the top level is event data.
_FLAT_SYSTEM_KEYS = frozenset(
    """
    @timestamp @version AccountName AccountType ActivityID Category Channel Computer
    Domain EventData EventID EventReceivedTime EventRecordID EventTime EventType
    ExecutionProcessID Hostname Keywords Level Message Opcode OpcodeValue ProcessID
    ProviderGuid ProviderName RecordNumber RelatedActivityID Severity SeverityValue
    SourceModuleName SourceModuleType SourceName Task ThreadID TimeCreated UserID
    Version agent ecs host log port tags type
    """.split()
)
_FLAT_MARKERS = frozenset(
    {"Channel", "SourceName", "Hostname", "ProviderGuid", "RecordNumber", "SourceImage"}
)

# HELK's Logstash names for Sysmon event data. `process_*` names the acting process:
# the source for events 8 and 10, the process itself for the others.
_HELK_FIELDS = {
    "process_target_guid": "TargetProcessGUID",
    "process_target_id": "TargetProcessId",
    "process_target_path": "TargetImage",
    "process_granted_access": "GrantedAccess",
    "process_call_trace": "CallTrace",
    "process_command_line": "CommandLine",
    "process_current_directory": "CurrentDirectory",
    "process_integrity_level": "IntegrityLevel",
    "process_parent_guid": "ParentProcessGuid",
    "process_parent_id": "ParentProcessId",
    "process_parent_path": "ParentImage",
    "process_parent_command_line": "ParentCommandLine",
}
_HELK_ACTOR = {
    8: {
        "process_guid": "SourceProcessGuid",
        "process_id": "SourceProcessId",
        "process_path": "SourceImage",
    },
    10: {
        "process_guid": "SourceProcessGUID",
        "process_id": "SourceProcessId",
        "process_path": "SourceImage",
        "thread_id": "SourceThreadId",
    },
}
_HELK_SELF = {
    "process_guid": "ProcessGuid",
    "process_id": "ProcessId",
    "process_path": "Image",
}
_HELK_MARKERS = frozenset(
    """
    process_granted_access process_call_trace process_target_name process_target_path
    process_path process_name process_guid
    """.split()
)

_MAX_DEPTH = 16
_UTC_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z?", re.ASCII
)


def to_ecs(obj: dict) -> tuple[str, dict]:
    """Return (shape name, ECS view) for one parsed event.

    Never raises: a layout not recognised, or anything that trips the mapping,
    comes back as ("unknown", obj).
    """
    try:
        return _map(obj)
    except Exception:
        # Backstop for the per-line path: one odd event must not stop a scan.
        log.debug("shape mapping failed; treating the event as unknown", exc_info=True)
        return "unknown", obj


def _map(obj: Any) -> tuple[str, dict]:
    if not isinstance(obj, dict):
        return "unknown", obj

    # Search hits: the event is under _source, or only in the "fields" view.
    if "_source" in obj or "_id" in obj or "_index" in obj:
        source = obj.get("_source")
        if type(source) is dict:
            return _via("es-hit", _nested(source), obj)
        fields = obj.get("fields")
        if type(fields) is dict:
            return _via("kibana-fields", _nested(_unwrap(fields, "", 0)), obj)

    if _is_fields_view(obj):
        return _via("kibana-fields", _nested(_unwrap(obj, "", 0)), obj)
    return _map_document(_nested(obj)) or ("unknown", obj)


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
        return "evtx", _from_evtx(wrapped)
    if type(doc.get("System")) is dict and ("EventData" in doc or "UserData" in doc):
        return "evtx", _from_evtx(doc)

    if "EventID" in doc:
        if "EventData" in doc and (
            "Provider" in doc or "Computer" in doc or doc.get("Type") == "WindowsEvent"
        ):
            return "sentinel", _from_sentinel(doc)
        if not _FLAT_MARKERS.isdisjoint(doc):
            return "flat-sysmon", _from_flat(doc)

    if not _HELK_MARKERS.isdisjoint(doc) and (
        "event_id" in doc or "log_name" in doc or "source_name" in doc
    ):
        return "helk", _from_helk(doc)

    winlog = doc.get("winlog")
    if type(winlog) is dict and (
        "provider_name" in winlog or "event_data" in winlog or "event_id" in winlog
    ):
        return "winlogbeat8", _from_winlogbeat8(doc, winlog)
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


# --- the layouts ----------------------------------------------------------------


def _from_winlogbeat8(doc: dict, winlog: dict) -> dict:
    provider = _str(winlog.get("provider_name"))
    if not _is_sysmon(provider, _str(winlog.get("channel"))):
        return doc
    event_id = _int(winlog.get("event_id"))
    if event_id is None:
        event = doc.get("event")
        if type(event) is dict:
            event_id = _int(event.get("code"))
    user = winlog.get("user")
    user_id = user.get("identifier") if type(user) is dict else None

    view = dict(doc)
    _derive_sysmon(view, event_id, winlog.get("event_data"), user_id)
    return view


def _from_flat(doc: dict) -> dict:
    data: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _FLAT_SYSTEM_KEYS:
            continue
        text = _as_data(value)
        if text is not None:
            data[key] = text
    nested = doc.get("EventData")
    if type(nested) is dict:
        _add_data(data, nested)

    return _assemble(
        event_id=_int(doc.get("EventID")),
        provider=_str(doc.get("SourceName")) or _str(doc.get("ProviderName")),
        provider_guid=_str(doc.get("ProviderGuid")),
        channel=_str(doc.get("Channel")),
        computer=_str(doc.get("Hostname")) or _str(doc.get("Computer")),
        record_id=_int(doc.get("RecordNumber", doc.get("EventRecordID"))),
        pid=_int(doc.get("ExecutionProcessID", doc.get("ProcessID"))),
        tid=_int(doc.get("ThreadID")),
        user=_user(
            doc.get("UserID"),
            doc.get("AccountName"),
            doc.get("Domain"),
            doc.get("AccountType"),
        ),
        data=data,
        timestamp=_str(doc.get("@timestamp")),
        message=_str(doc.get("Message")),
    )


def _from_sentinel(doc: dict) -> dict:
    raw = doc.get("EventData")
    if type(raw) is str:
        try:
            raw = orjson.loads(raw)
        except ValueError:
            # Limitation: only JSON EventData is read; the XML form is left out.
            raw = None
    data: dict[str, Any] = {}
    if type(raw) is dict:
        _add_data(data, raw)

    return _assemble(
        event_id=_int(doc.get("EventID")),
        provider=_str(doc.get("Provider")),
        channel=_str(doc.get("Channel")),
        computer=_str(doc.get("Computer")),
        record_id=_int(doc.get("EventRecordId")),
        pid=_int(doc.get("SystemProcessId")),
        tid=_int(doc.get("SystemThreadId")),
        user=_user(doc.get("SystemUserId")),
        data=data,
        timestamp=_str(doc.get("TimeGenerated")),
    )


def _from_evtx(event: dict) -> dict:
    system = event.get("System")
    if type(system) is not dict:
        system = {}
    event_id = system.get("EventID")
    if type(event_id) is dict:
        event_id = event_id.get("#text", event_id.get("Value"))

    return _assemble(
        event_id=_int(event_id),
        provider=_str(_xml_attr(system, "Provider", "Name")),
        provider_guid=_str(_xml_attr(system, "Provider", "Guid")),
        channel=_str(_xml_text(system.get("Channel"))),
        computer=_str(_xml_text(system.get("Computer"))),
        record_id=_int(_xml_text(system.get("EventRecordID"))),
        pid=_int(_xml_attr(system, "Execution", "ProcessID")),
        tid=_int(_xml_attr(system, "Execution", "ThreadID")),
        # Limitation: only the SID is known; winlogbeat also resolves name and domain.
        user=_user(_xml_attr(system, "Security", "UserID")),
        data=_evtx_data(event.get("EventData")),
        timestamp=_str(_xml_attr(system, "TimeCreated", "SystemTime")),
    )


def _from_helk(doc: dict) -> dict:
    winlog = doc.get("winlog")
    if type(winlog) is not dict:
        winlog = {}
    event_id = _int(doc.get("event_id"))
    if event_id is None:
        event_id = _int(winlog.get("event_id"))

    # Limitation: only the process-access and process-creation renames are mapped;
    # HELK's other renames (files, registry, network) stay out of the view.
    data: dict[str, Any] = {}
    for names in (_HELK_FIELDS, _HELK_ACTOR.get(event_id, _HELK_SELF)):
        for helk_name, name in names.items():
            if helk_name in doc:
                text = _as_data(doc[helk_name])
                if text is not None:
                    data[name] = text

    process = winlog.get("process")
    if type(process) is not dict:
        process = {}
    thread = process.get("thread")
    return _assemble(
        event_id=event_id,
        provider=_str(doc.get("source_name")) or _str(winlog.get("provider_name")),
        channel=_str(doc.get("log_name")) or _str(winlog.get("channel")),
        computer=_str(doc.get("host_name")) or _str(winlog.get("computer_name")),
        record_id=_int(doc.get("record_number", winlog.get("record_id"))),
        pid=_int(process.get("pid")),
        tid=_int(thread.get("id")) if type(thread) is dict else None,
        user=_user(
            doc.get("user_reporter_sid"),
            doc.get("user_reporter_name"),
            doc.get("user_reporter_domain"),
            doc.get("user_reporter_type"),
        ),
        data=data,
        timestamp=_str(doc.get("@timestamp")),
    )


# --- building the winlogbeat view -------------------------------------------------


def _assemble(
    *,
    event_id: int | None,
    provider: str | None,
    channel: str | None,
    computer: str | None,
    record_id: int | None,
    pid: int | None,
    tid: int | None,
    user: dict[str, str],
    data: dict[str, Any],
    timestamp: str | None,
    provider_guid: str | None = None,
    message: str | None = None,
) -> dict:
    """The document winlogbeat 7 would have written for these record values."""
    event: dict[str, Any] = {"kind": "event"}
    winlog: dict[str, Any] = {}
    view: dict[str, Any] = {"event": event, "winlog": winlog}

    if event_id is not None:
        # winlogbeat writes the id as text since 7.13 (beats #25176).
        event["code"] = winlog["event_id"] = str(event_id)
    if provider is not None:
        event["provider"] = winlog["provider_name"] = provider
    if provider_guid is not None:
        winlog["provider_guid"] = provider_guid
    if channel is not None:
        winlog["channel"] = channel
    if computer is not None:
        winlog["computer_name"] = computer
        view["host"] = {"name": computer}
    if record_id is not None:
        winlog["record_id"] = record_id
    if pid is not None or tid is not None:
        process: dict[str, Any] = {}
        if pid is not None:
            process["pid"] = pid
        if tid is not None:
            process["thread"] = {"id": tid}
        winlog["process"] = process
    if user:
        winlog["user"] = user
    if data:
        winlog["event_data"] = data
    if message is not None:
        view["message"] = message

    if _is_sysmon(provider, channel):
        _derive_sysmon(view, event_id, data, user.get("identifier"))
    if timestamp is not None and "@timestamp" not in view:
        view["@timestamp"] = timestamp
    return view


def _derive_sysmon(view: dict, event_id: int | None, data: Any, user_id: Any) -> None:
    """Add what winlogbeat 7's Sysmon module derives, never replacing a field.

    Unlike the module, the event data is left whole: the fields it moves out
    (SourceImage, RuleName, ...) stay under winlog.event_data as well.
    """
    # Limitation: file.*, registry.*, network and dns fields, hashes, process.args
    # and rule.name are not derived; rules on them match winlogbeat 7 input only.
    event: dict[str, Any] = {"module": "sysmon"}
    kinds = _CATEGORIES.get(event_id) if event_id is not None else None
    if kinds is not None:
        if kinds[0]:
            event["category"] = list(kinds[0])
        if kinds[1]:
            event["type"] = list(kinds[1])
    _merge(view, "event", event)
    if kinds is None or type(data) is not dict:
        return

    utc = data.get("UtcTime")
    if type(utc) is str and "@timestamp" not in view:
        match = _UTC_TIME.fullmatch(utc)
        if match:
            date, clock, fraction = match.groups()
            view["@timestamp"] = f"{date}T{clock}.{(fraction or '').ljust(3, '0')[:3]}Z"

    if event_id == 8 or event_id == 10:
        process = _process(
            data.get("SourceImage"),
            data.get("SourceProcessId"),
            data.get("SourceProcessGUID", data.get("SourceProcessGuid")),
        )
        thread = _int(data.get("SourceThreadId"))
        if thread is not None:
            process["thread"] = {"id": thread}
    elif event_id == 20:
        process = _process(data.get("Destination"), None, None)
    else:
        process = _process(
            data.get("Image"), data.get("ProcessId"), data.get("ProcessGuid")
        )
        for name, field in (
            ("CommandLine", "command_line"),
            ("CurrentDirectory", "working_directory"),
        ):
            if type(data.get(name)) is str:
                process[field] = data[name]
        if event_id != 7 and type(data.get("OriginalFileName")) is str:
            process["pe"] = {"original_file_name": data["OriginalFileName"]}
        parent = _process(
            data.get("ParentImage"),
            data.get("ParentProcessId"),
            data.get("ParentProcessGuid"),
        )
        if type(data.get("ParentCommandLine")) is str:
            parent["command_line"] = data["ParentCommandLine"]
        if parent:
            process["parent"] = parent
    _merge(view, "process", process)

    if event_id in _USER_EVENTS:
        user: dict[str, Any] = {}
        if type(user_id) is str:
            user["id"] = user_id
        account = data.get("User")
        if type(account) is str and account.count("\\") == 1:
            user["domain"], user["name"] = account.split("\\")
        _merge(view, "user", user)


def _process(executable: Any, pid: Any, entity_id: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if type(executable) is str:
        fields["executable"] = executable
        fields["name"] = _basename(executable)
    number = _int(pid)
    if number is not None:
        fields["pid"] = number
    if type(entity_id) is str:
        fields["entity_id"] = entity_id
    return fields


def _merge(view: dict, key: str, fields: dict) -> None:
    """Put fields under view[key], keeping every value already there.

    The object at view[key] may belong to the caller's input: it is copied, never
    changed. A non-object already at view[key] wins over the derived fields.
    """
    if not fields:
        return
    current = view.get(key)
    if current is None and key not in view:
        view[key] = fields
        return
    if type(current) is not dict:
        return
    merged = dict(current)
    for name, value in fields.items():
        if name not in merged:
            merged[name] = value
        elif type(value) is dict and type(merged[name]) is dict:
            merged[name] = {**value, **merged[name]}
    view[key] = merged


def _basename(path: str) -> str:
    """The file name at the end of a Windows path, as winlogbeat's process.name."""
    # \\?\ and \??\ prefixes, drive letters and either slash all occur in Sysmon
    # images; none of them is part of the name.
    if path.startswith(("\\\\?\\", "\\??\\")):
        path = path[4:]
    if len(path) >= 2 and path[1] == ":":
        path = path[2:]
    path = path.rstrip("\\/")
    return path[max(path.rfind("\\"), path.rfind("/")) + 1 :]


def _is_sysmon(provider: str | None, channel: str | None) -> bool:
    return (provider is not None and provider.lower() == _SYSMON_PROVIDER) or (
        channel is not None and channel.lower() == _SYSMON_CHANNEL
    )


def _user(
    identifier: Any, name: Any = None, domain: Any = None, kind: Any = None
) -> dict[str, str]:
    """winlog.user from whichever of its parts the layout carries as text."""
    user = {}
    for field, value in (
        ("identifier", identifier),
        ("name", name),
        ("domain", domain),
        ("type", kind),
    ):
        if type(value) is str:
            user[field] = value
    return user


# --- values -----------------------------------------------------------------------


def _add_data(data: dict[str, Any], source: dict) -> None:
    for key, value in source.items():
        text = _as_data(value)
        if text is not None:
            data[key] = text


def _as_data(value: Any) -> Any:
    """An event data value as winlogbeat writes it: text, ints in decimal.

    Arrays of plain values stay arrays of text (the rules match any element);
    objects and anything else that is not a plain value give None.
    """
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return _decimal(value)
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        return _decimal(int(value)) if value.is_integer() else repr(value)
    if kind is list:
        texts = [_as_data(item) for item in value if type(item) not in (list, dict)]
        return [text for text in texts if text is not None]
    return None


def _decimal(number: int) -> str | None:
    try:
        return str(number)
    except ValueError:
        # Past Python's limit on digits: no real event field is this long.
        return None


def _int(value: Any) -> int | None:
    """A non-negative integer from an int or decimal text, else None."""
    kind = type(value)
    if kind is int:
        return value if 0 <= value < 1 << 64 else None
    if kind is str:
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 20:
            number = int(text)
            return number if number < 1 << 64 else None
        return None
    if kind is float and value.is_integer() and 0 <= value < 2.0**64:
        return int(value)
    return None


def _str(value: Any) -> str | None:
    return value if type(value) is str else None


def _xml_text(value: Any) -> Any:
    """The text of an XML element as JSON converters write it (#text or plain)."""
    if type(value) is dict:
        return value.get("#text")
    return value


def _xml_attr(parent: dict, element: str, name: str) -> Any:
    """An attribute of a child element in any of the evtx JSON conventions.

    The `evtx` parser nests attributes under "#attributes" (or beside the element
    as "<element>_attributes"); xmltodict writes "@Name"; golang-evtx inlines them.
    """
    value = _attribute(parent.get(element), name)
    if value is None:
        attributes = parent.get(element + "_attributes")
        if type(attributes) is dict:
            value = attributes.get(name)
    return value


def _attribute(node: Any, name: str) -> Any:
    if type(node) is not dict:
        return None
    attributes = node.get("#attributes")
    if type(attributes) is dict and name in attributes:
        return attributes[name]
    return node.get(name, node.get("@" + name))


def _evtx_data(node: Any) -> dict[str, Any]:
    """EventData as name -> text, from named members or <Data Name=...> elements."""
    data: dict[str, Any] = {}
    if type(node) is not dict:
        return data
    for key, value in node.items():
        if key != "Data":
            if type(key) is str and not key.startswith(("#", "@")):
                if type(value) is dict:
                    value = value.get("#text", value)
                text = _as_data(value)
                if text is not None:
                    data[key] = text
            continue
        elements = value if type(value) is list else [value]
        for index, element in enumerate(elements, 1):
            name = _attribute(element, "Name")
            if type(element) is dict:
                element = element.get("#text")
            text = _as_data(element)
            if text is not None:
                # Unnamed data elements get winlogbeat's positional names.
                data[name if type(name) is str else f"param{index}"] = text
    return data


# --- dotted names and the fields view --------------------------------------------


def _has_dotted_keys(node: dict, depth: int) -> bool:
    """True if a key of node, or of an object inside it, holds a dot."""
    # This runs on every event and almost always finds nothing, so it only looks.
    # It also looks inside event data, where dots are kept: that only costs the
    # rare event an expansion pass that changes nothing there.
    try:
        if "." in "".join(node):
            return True
    except TypeError:
        return True
    if depth < _MAX_DEPTH:
        for value in node.values():
            if type(value) is dict and _has_dotted_keys(value, depth + 1):
                return True
    return False


def _nested(doc: dict, depth: int = 0) -> dict:
    """doc with its dotted keys expanded; doc itself when it has none."""
    if depth > _MAX_DEPTH or not _has_dotted_keys(doc, depth):
        return doc
    return _undot(doc, depth)


def _undot(node: dict, depth: int) -> dict:
    """A copy of node with dotted keys turned into nested objects.

    `{"winlog.event_data.GrantedAccess": x}` means what the nested form means. Where
    both spell a field, the nested one wins; where a plain value already holds a
    name on the path, the dotted key stays as it came.
    """
    out: dict = {}
    dotted = []
    for key, value in node.items():
        path = _path(key) if type(key) is str and "." in key else None
        if path is not None:
            dotted.append((key, path, value))
            continue
        if type(value) is dict and key not in _OPAQUE:
            value = _nested(value, depth + 1)
        out[key] = value

    made: set[int] = set()  # objects built here, free to fill in
    for key, (parents, leaf), value in dotted:
        target = out
        for part in parents:
            child = target.get(part)
            if type(child) is dict:
                if id(child) not in made:
                    child = target[part] = dict(child)
                    made.add(id(child))
            elif child is None and part not in target:
                child = target[part] = {}
                made.add(id(child))
            else:
                target = None
                break
            target = child
        if target is None:
            out[key] = value
            continue
        if type(value) is dict and leaf not in _OPAQUE:
            # Depth counts the levels the key itself spelled, so that dotted keys
            # nested in dotted keys cannot build a view too deep to serialise.
            value = _nested(value, depth + len(parents) + 1)
        target.setdefault(leaf, value)
    return out


# Split dotted keys, by key: a file repeats the same few dozen names on every line.
# Bounded, so a stream of made-up names cannot grow it without end.
_PATHS: dict[str, tuple[tuple[str, ...], str] | None] = {}
_PATHS_LIMIT = 4096


def _path(key: str) -> tuple[tuple[str, ...], str] | None:
    """The parent names and leaf name a dotted key spells, or None to keep it whole."""
    path = _PATHS.get(key, False)
    if path is not False:
        return path
    parts = key.split(".")
    if "" in parts:
        # A key with an empty part ("a..b", "a.") names no path.
        path = None
    else:
        for index, part in enumerate(parts[:-1]):
            if part in _OPAQUE:
                # Event data names keep their dots: the rest of the key is one name.
                parts[index + 1 :] = [".".join(parts[index + 1 :])]
                break
        # More parts than any field has would nest the view past what orjson can
        # write back: a thousand overflowed the stack in the CLI's `dump`.
        path = None if len(parts) > _MAX_DEPTH else (tuple(parts[:-1]), parts[-1])
    if len(_PATHS) < _PATHS_LIMIT:
        _PATHS[key] = path
    return path


def _unwrap(node: dict, prefix: str, depth: int) -> dict:
    """The fields view as a document: one-element arrays become their value."""
    out: dict[Any, Any] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if type(value) is list:
            keep = len(value) != 1 or path in _ARRAY_FIELDS
            out[key] = value if keep else value[0]
        elif type(value) is dict and depth < _MAX_DEPTH:
            out[key] = _unwrap(value, path + ".", depth + 1)
        else:
            out[key] = value
    return out
