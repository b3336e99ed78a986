"""The ECS fields winlogbeat 7's Sysmon module derives from a Sysmon event.

The module fills `event.category`, `event.type`, `process.*` and `user.*` on the
client; layouts written without it get the same fields here, so that rules on
them match whatever wrote the event.
"""

from __future__ import annotations

import re
from typing import Any

from detector.shape_fields import as_int

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

_UTC_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z?", re.ASCII
)


def is_sysmon(provider: str | None, channel: str | None) -> bool:
    """True if the provider or the channel names Sysmon, in any letter case."""
    return (provider is not None and provider.lower() == _SYSMON_PROVIDER) or (
        channel is not None and channel.lower() == _SYSMON_CHANNEL
    )


def derive_sysmon(view: dict, event_id: int | None, data: Any, user_id: Any) -> None:
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
        thread = as_int(data.get("SourceThreadId"))
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
    number = as_int(pid)
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
