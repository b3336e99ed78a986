"""How winlogbeat writes a Sysmon record: 7.17 with its Sysmon module, or 8.x raw.

7.17 ran the Sysmon module on the client, so its events carry ECS fields
(`event.category`, `process.*`, `file.*` ...) and lose the EventData they came from.
8.x moved that work into Elasticsearch ingest pipelines: its file output keeps all of
EventData under `winlog.event_data` and has no `event.category` and no `process.*`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Callable

from sysmon import HOST_FQDN, Event, basename, iso

PROVIDER = "Microsoft-Windows-Sysmon"
PROVIDER_GUID = "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}"
CHANNEL = "Microsoft-Windows-Sysmon/Operational"
SYSMON_PID = 3316

# Task name and schema version Sysmon gives each event id.
TASKS = {
    1: ("Process Create (rule: ProcessCreate)", 5),
    3: ("Network connection detected (rule: NetworkConnect)", 5),
    5: ("Process terminated (rule: ProcessTerminate)", 3),
    7: ("Image loaded (rule: ImageLoad)", 3),
    10: ("Process accessed (rule: ProcessAccess)", 3),
    11: ("File created (rule: FileCreate)", 2),
    12: ("Registry object added or deleted (rule: RegistryEvent)", 2),
    13: ("Registry value set (rule: RegistryEvent)", 2),
    22: ("Dns query (rule: DnsQuery)", 5),
}
# event.category and event.type the 7.x Sysmon module sets for each event id.
ECS_EVENT = {
    1: (["process"], ["start", "process_start"]),
    3: (["network"], ["connection", "start", "protocol"]),
    5: (["process"], ["end", "process_end"]),
    7: (["process"], ["change"]),
    10: (["process"], ["access"]),
    11: (["file"], ["creation"]),
    12: (["configuration", "registry"], ["change"]),
    13: (["configuration", "registry"], ["change"]),
    22: (["network"], ["connection", "protocol", "info"]),
}
HOST_FIELDS = {
    "name": HOST_FQDN,
    "hostname": "ws-042",
    "os": {
        "type": "windows",
        "family": "windows",
        "platform": "windows",
        "name": "Windows 10 Enterprise",
        "build": "19045.3570",
    },
}
AGENT_ID = "0b7c7c2e-8a44-4c1e-9a57-2d4f0c5a1e11"
SYSMON_USER = {
    "identifier": "S-1-5-18",
    "name": "SYSTEM",
    "domain": "NT AUTHORITY",
    "type": "User",
}
DNS_STATUS = {"0": "SUCCESS", "9003": "DNS_ERROR_RCODE_NAME_ERROR"}
HIVES = ("HKLM", "HKU", "HKCR", "HKCU")
DWORD = re.compile(r"DWORD \((0x[0-9a-fA-F]{8})\)")


def agent(version: str) -> dict[str, str]:
    """The agent block winlogbeat `version` adds to each event on ws-042."""
    return {
        "type": "winlogbeat",
        "version": version,
        "hostname": "WS-042",
        "name": "WS-042",
        "id": AGENT_ID,
    }


def winlog(event: Event, record_id: int, event_data: dict[str, str]) -> dict:
    """The winlog block: where the record came from, and what is left of EventData."""
    task, version = TASKS[event.code]
    # Sysmon writes network and DNS events from a thread of their own.
    thread = 3464 if event.code in (3, 22) else 4020
    return {
        "channel": CHANNEL,
        "computer_name": HOST_FQDN,
        "event_id": str(event.code),
        "provider_name": PROVIDER,
        "provider_guid": PROVIDER_GUID,
        "record_id": record_id,
        "api": "wineventlog",
        "opcode": "Info",
        "task": task,
        "version": version,
        "user": SYSMON_USER,
        "process": {"pid": SYSMON_PID, "thread": {"id": thread}},
        "event_data": event_data,
    }


def shape_raw_8(event: Event, record_id: int, created: int, published: int) -> dict:
    """winlogbeat 8.x file output: raw event data, no ECS enrichment on the client.

    `published` is when Windows wrote the record (8.x's @timestamp), `created` when
    winlogbeat read it.
    """
    return {
        "@timestamp": iso(published),
        "agent": agent("8.11.3"),
        "ecs": {"version": "8.0.0"},
        "host": HOST_FIELDS,
        "event": {
            "code": str(event.code),
            "kind": "event",
            "provider": PROVIDER,
            "action": TASKS[event.code][0],
            "created": iso(created),
        },
        "log": {"level": "information"},
        "winlog": winlog(event, record_id, dict(event.data)),
    }


def shape_ecs_7(event: Event, record_id: int, created: int, published: int) -> dict:
    """winlogbeat 7.17 after its Sysmon module: ECS fields set, their sources removed.

    As in the project's semantics cases (shared/cases/semantics.ndjson), RuleName,
    UtcTime and, for event 10, SourceThreadId stay in event_data. @timestamp is
    Sysmon's UtcTime, as the module sets it.
    """
    data = dict(event.data)
    groups = ECS_GROUPS[event.code](data)
    category, kind = ECS_EVENT[event.code]
    doc = {
        "@timestamp": iso(event.ms),
        "agent": agent("7.17.9"),
        "ecs": {"version": "1.12.0"},
        "host": HOST_FIELDS,
        "event": {
            "code": str(event.code),
            "kind": "event",
            "provider": PROVIDER,
            "category": category,
            "type": kind,
            "module": "sysmon",
            "action": TASKS[event.code][0],
            "created": iso(created),
        },
        "log": {"level": "information"},
    }
    doc |= groups
    doc["winlog"] = winlog(event, record_id, data)
    return doc


def _process(data: dict[str, str], prefix: str = "", guid: str = "Guid") -> dict:
    """Move the acting process's fields out of event_data into ECS process.*."""
    image = data.pop(f"{prefix}Image")
    return {
        "executable": image,
        "name": basename(image),
        "pid": int(data.pop(f"{prefix}ProcessId")),
        "entity_id": data.pop(f"{prefix}Process{guid}"),
    }


def _user(data: dict[str, str]) -> dict[str, str]:
    domain, name = data.pop("User").split("\\", 1)
    # The module copies the Sysmon service's own SID into user.id, not the user's.
    return {"id": SYSMON_USER["identifier"], "domain": domain, "name": name}


def _hashes(data: dict[str, str]) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in data.pop("Hashes").split(","))
    return {kind.lower(): value.lower() for kind, value in pairs}


def _pe(data: dict[str, str], imphash: str) -> dict[str, str]:
    return {
        "original_file_name": data.pop("OriginalFileName"),
        "company": data["Company"],
        "description": data["Description"],
        "file_version": data["FileVersion"],
        "product": data["Product"],
        "imphash": imphash,
    }


def _file(path: str) -> dict[str, str]:
    folder, _, name = path.rpartition("\\")
    fields = {"path": path, "name": name, "directory": folder}
    if "." in name:
        fields["extension"] = name.rsplit(".", 1)[1]
    return fields


def split_args(command_line: str) -> list[str]:
    """Split a Windows command line into arguments (quotes group, then vanish)."""
    args, current, quoted, pending = [], [], False, False
    for char in command_line:
        if char == '"':
            quoted, pending = not quoted, True
        elif char in " \t" and not quoted:
            if current or pending:
                args.append("".join(current))
            current, pending = [], False
        else:
            current.append(char)
    if current or pending:
        args.append("".join(current))
    return args


def ecs_process_create(data: dict[str, str]) -> dict:
    """Event 1: process.*, its parent, PE and hashes; user.* from User."""
    process = _process(data)
    command_line = data.pop("CommandLine")
    parent = _process(data, "Parent")
    parent_command_line = data.pop("ParentCommandLine")
    parent |= {
        "command_line": parent_command_line,
        "args": split_args(parent_command_line),
    }
    hashes = _hashes(data)
    imphash = hashes.pop("imphash")
    process |= {
        "command_line": command_line,
        "args": split_args(command_line),
        "working_directory": data.pop("CurrentDirectory"),
        "parent": parent,
        "pe": _pe(data, imphash),
        "hash": hashes,
    }
    user = _user(data)
    related = {"user": [user["name"]], "hash": [*hashes.values(), imphash]}
    return {"process": process, "user": user, "related": related}


def ecs_image_load(data: dict[str, str]) -> dict:
    """Event 7: the loading process, and file.* for the loaded image."""
    process = _process(data)
    file = _file(data.pop("ImageLoaded"))
    hashes = _hashes(data)
    imphash = hashes.pop("imphash")
    file["pe"] = _pe(data, imphash)
    file["code_signature"] = {
        "subject_name": data["Signature"],
        "status": data["SignatureStatus"],
        "signed": data["Signed"] == "true",
        "valid": data["SignatureStatus"] == "Valid",
    }
    file["hash"] = hashes
    return {"process": process, "file": file, "related": {"hash": [*hashes.values()]}}


def ecs_network(data: dict[str, str]) -> dict:
    """Event 3: process.*, source.*, destination.*, network.* and user.*."""
    process = _process(data)
    transport = data.pop("Protocol")
    source = {
        "ip": data.pop("SourceIp"),
        "domain": data.pop("SourceHostname"),
        "port": int(data.pop("SourcePort")),
    }
    destination = {
        "ip": data.pop("DestinationIp"),
        "domain": data.pop("DestinationHostname"),
        "port": int(data.pop("DestinationPort")),
    }
    network = {
        "transport": transport,
        "protocol": data.pop("DestinationPortName"),
        "direction": "egress" if data.pop("Initiated") == "true" else "ingress",
        "type": "ipv6" if data.pop("SourceIsIpv6") == "true" else "ipv4",
        "community_id": community_id(source, destination, transport),
    }
    data.pop("DestinationIsIpv6")
    user = _user(data)
    related = {"ip": [source["ip"], destination["ip"]], "user": [user["name"]]}
    return {
        "process": process,
        "network": network,
        "source": source,
        "destination": destination,
        "user": user,
        "related": related,
    }


def community_id(source: dict, destination: dict, transport: str) -> str:
    """Community ID v1 of a flow: seed 0, SHA-1, base64, lower endpoint first."""
    ends = [
        (bytes(int(part) for part in end["ip"].split(".")), end["port"])
        for end in (source, destination)
    ]
    (ip_a, port_a), (ip_b, port_b) = sorted(ends)
    proto = 17 if transport == "udp" else 6
    packed = (
        struct.pack("!H", 0)
        + ip_a
        + ip_b
        + struct.pack("!BBHH", proto, 0, port_a, port_b)
    )
    return "1:" + base64.b64encode(hashlib.sha1(packed).digest()).decode()


def ecs_dns(data: dict[str, str]) -> dict:
    """Event 22: process.*, dns.question and the answers parsed from QueryResults."""
    process = _process(data)
    name = data.pop("QueryName")
    labels = name.split(".")
    question = {
        "name": name,
        "registered_domain": ".".join(labels[-2:]),
        "top_level_domain": labels[-1],
    }
    if len(labels) > 2:
        question["subdomain"] = ".".join(labels[:-2])
    dns: dict = {"question": question}
    answers, addresses = [], []
    for answer in filter(None, data.pop("QueryResults").split(";")):
        if answer.startswith("type:"):
            answers.append({"type": "CNAME", "data": answer.split()[-1]})
        elif answer != "-":
            address = answer.removeprefix("::ffff:")
            answers.append({"type": "A", "data": address})
            addresses.append(address)
    if answers:
        dns["answers"] = answers
    if addresses:
        dns["resolved_ip"] = addresses
    status = data.pop("QueryStatus")
    return {
        "process": process,
        "dns": dns,
        "network": {"protocol": "dns"},
        "sysmon": {"dns": {"status": DNS_STATUS.get(status, status)}},
    }


def ecs_file_create(data: dict[str, str]) -> dict:
    """Event 11: process.* and file.*."""
    process = _process(data)
    return {"process": process, "file": _file(data.pop("TargetFilename"))}


def ecs_registry(data: dict[str, str]) -> dict:
    """Events 12 and 13: process.* and registry.* (TargetObject stays too)."""
    process = _process(data)
    path = data["TargetObject"]
    tokens = path.split("\\")
    fields: dict = {"path": path}
    if tokens[0] in HIVES:
        fields |= {"hive": tokens[0], "key": "\\".join(tokens[1:])}
    fields["value"] = tokens[-1]
    match = DWORD.search(data.get("Details", ""))
    if match:
        fields["data"] = {"strings": [str(int(match[1], 16))], "type": "SZ_DWORD"}
    return {"process": process, "registry": fields}


def ecs_process_end(data: dict[str, str]) -> dict:
    """Event 5: process.*."""
    return {"process": _process(data)}


def ecs_process_access(data: dict[str, str]) -> dict:
    """Event 10: the SOURCE process as process.*; the target stays in event_data."""
    process = _process(data, "Source", "GUID")
    process["thread"] = {"id": int(data["SourceThreadId"])}
    return {"process": process}


ECS_GROUPS: dict[int, Callable[[dict[str, str]], dict]] = {
    1: ecs_process_create,
    3: ecs_network,
    5: ecs_process_end,
    7: ecs_image_load,
    10: ecs_process_access,
    11: ecs_file_create,
    12: ecs_registry,
    13: ecs_registry,
    22: ecs_dns,
}
