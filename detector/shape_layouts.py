"""Map each known event layout into the document winlogbeat 7 would have written.

Each `from_*` function takes an event already recognised as its layout and returns
the winlogbeat view: the record values under `winlog.*`, the event data as text
under `winlog.event_data`, and for Sysmon events the fields the module derives.
"""

from __future__ import annotations

from typing import Any

import orjson

from detector.shape_fields import add_data, as_data, as_int, as_str
from detector.sysmon_ecs import derive_sysmon, is_sysmon

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


# --- the layouts ----------------------------------------------------------------


def from_winlogbeat8(doc: dict, winlog: dict) -> dict:
    """A winlogbeat 8 document, with the Sysmon ECS fields added to Sysmon events."""
    provider = as_str(winlog.get("provider_name"))
    if not is_sysmon(provider, as_str(winlog.get("channel"))):
        return doc
    event_id = as_int(winlog.get("event_id"))
    if event_id is None:
        event = doc.get("event")
        if type(event) is dict:
            event_id = as_int(event.get("code"))
    user = winlog.get("user")
    user_id = user.get("identifier") if type(user) is dict else None

    view = dict(doc)
    derive_sysmon(view, event_id, winlog.get("event_data"), user_id)
    return view


def from_flat(doc: dict) -> dict:
    """The view of an NXLog/Logstash flat record, its event data at the top level."""
    data: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _FLAT_SYSTEM_KEYS:
            continue
        text = as_data(value)
        if text is not None:
            data[key] = text
    nested = doc.get("EventData")
    if type(nested) is dict:
        add_data(data, nested)

    return _assemble(
        event_id=as_int(doc.get("EventID")),
        provider=as_str(doc.get("SourceName")) or as_str(doc.get("ProviderName")),
        provider_guid=as_str(doc.get("ProviderGuid")),
        channel=as_str(doc.get("Channel")),
        computer=as_str(doc.get("Hostname")) or as_str(doc.get("Computer")),
        record_id=as_int(doc.get("RecordNumber", doc.get("EventRecordID"))),
        pid=as_int(doc.get("ExecutionProcessID", doc.get("ProcessID"))),
        tid=as_int(doc.get("ThreadID")),
        user=_user(
            doc.get("UserID"),
            doc.get("AccountName"),
            doc.get("Domain"),
            doc.get("AccountType"),
        ),
        data=data,
        timestamp=as_str(doc.get("@timestamp")),
        message=as_str(doc.get("Message")),
    )


def from_sentinel(doc: dict) -> dict:
    """The view of an Azure Sentinel WindowsEvent row."""
    raw = doc.get("EventData")
    if type(raw) is str:
        try:
            raw = orjson.loads(raw)
        except ValueError:
            # Limitation: only JSON EventData is read; the XML form is left out.
            raw = None
    data: dict[str, Any] = {}
    if type(raw) is dict:
        add_data(data, raw)

    return _assemble(
        event_id=as_int(doc.get("EventID")),
        provider=as_str(doc.get("Provider")),
        channel=as_str(doc.get("Channel")),
        computer=as_str(doc.get("Computer")),
        record_id=as_int(doc.get("EventRecordId")),
        pid=as_int(doc.get("SystemProcessId")),
        tid=as_int(doc.get("SystemThreadId")),
        user=_user(doc.get("SystemUserId")),
        data=data,
        timestamp=as_str(doc.get("TimeGenerated")),
    )


def from_evtx(event: dict) -> dict:
    """The view of an evtx-to-JSON event: the object holding System and EventData."""
    system = event.get("System")
    if type(system) is not dict:
        system = {}
    event_id = system.get("EventID")
    if type(event_id) is dict:
        event_id = event_id.get("#text", event_id.get("Value"))

    return _assemble(
        event_id=as_int(event_id),
        provider=as_str(_xml_attr(system, "Provider", "Name")),
        provider_guid=as_str(_xml_attr(system, "Provider", "Guid")),
        channel=as_str(_xml_text(system.get("Channel"))),
        computer=as_str(_xml_text(system.get("Computer"))),
        record_id=as_int(_xml_text(system.get("EventRecordID"))),
        pid=as_int(_xml_attr(system, "Execution", "ProcessID")),
        tid=as_int(_xml_attr(system, "Execution", "ThreadID")),
        # Limitation: only the SID is known; winlogbeat also resolves name and domain.
        user=_user(_xml_attr(system, "Security", "UserID")),
        data=_evtx_data(event.get("EventData")),
        timestamp=as_str(_xml_attr(system, "TimeCreated", "SystemTime")),
    )


def from_helk(doc: dict) -> dict:
    """The view of a HELK Logstash record, its renames given their Sysmon names."""
    winlog = doc.get("winlog")
    if type(winlog) is not dict:
        winlog = {}
    event_id = as_int(doc.get("event_id"))
    if event_id is None:
        event_id = as_int(winlog.get("event_id"))

    # Limitation: only the process-access and process-creation renames are mapped;
    # HELK's other renames (files, registry, network) stay out of the view.
    data: dict[str, Any] = {}
    for names in (_HELK_FIELDS, _HELK_ACTOR.get(event_id, _HELK_SELF)):
        for helk_name, name in names.items():
            if helk_name in doc:
                text = as_data(doc[helk_name])
                if text is not None:
                    data[name] = text

    process = winlog.get("process")
    if type(process) is not dict:
        process = {}
    thread = process.get("thread")
    return _assemble(
        event_id=event_id,
        provider=as_str(doc.get("source_name")) or as_str(winlog.get("provider_name")),
        channel=as_str(doc.get("log_name")) or as_str(winlog.get("channel")),
        computer=as_str(doc.get("host_name")) or as_str(winlog.get("computer_name")),
        record_id=as_int(doc.get("record_number", winlog.get("record_id"))),
        pid=as_int(process.get("pid")),
        tid=as_int(thread.get("id")) if type(thread) is dict else None,
        user=_user(
            doc.get("user_reporter_sid"),
            doc.get("user_reporter_name"),
            doc.get("user_reporter_domain"),
            doc.get("user_reporter_type"),
        ),
        data=data,
        timestamp=as_str(doc.get("@timestamp")),
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

    if is_sysmon(provider, channel):
        derive_sysmon(view, event_id, data, user.get("identifier"))
    if timestamp is not None and "@timestamp" not in view:
        view["@timestamp"] = timestamp
    return view


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


# --- evtx JSON -------------------------------------------------------------------


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
                text = as_data(value)
                if text is not None:
                    data[key] = text
            continue
        elements = value if type(value) is list else [value]
        for index, element in enumerate(elements, 1):
            name = _attribute(element, "Name")
            if type(element) is dict:
                element = element.get("#text")
            text = as_data(element)
            if text is not None:
                # Unnamed data elements get winlogbeat's positional names.
                data[name if type(name) is str else f"param{index}"] = text
    return data
