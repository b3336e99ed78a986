"""Every JSON layout of a Sysmon event becomes the ECS view the rules read."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector import shapes
from detector.shapes import SHAPES, to_ecs

DATA = Path(__file__).parent / "data" / "shapes"


def record(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def field(view: dict, path: str):
    """The value at a dotted path of a nested view, or None."""
    node = view
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def flattened(doc: dict, prefix: str = "") -> dict:
    """A document as Kibana's "fields" view shows it: dotted names, array values."""
    out = {}
    for key, value in doc.items():
        if isinstance(value, dict) and key != "event_data":
            out.update(flattened(value, f"{prefix}{key}."))
        elif isinstance(value, dict):
            for name, data in value.items():
                out[f"{prefix}{key}.{name}"] = [data]
        else:
            out[prefix + key] = value if isinstance(value, list) else [value]
    return out


def evtx_record(event_id=10, source_image="C:\\Windows\\system32\\lsass.exe") -> dict:
    """A Sysmon event 10 as the PyPI `evtx` parser writes it."""
    return {
        "Event": {
            "#attributes": {
                "xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"
            },
            "System": {
                "Provider": {
                    "#attributes": {
                        "Name": "Microsoft-Windows-Sysmon",
                        "Guid": "5770385F-C22A-43E0-BF4C-06F5698FFBD9",
                    }
                },
                "EventID": event_id,
                "Version": 3,
                "Level": 4,
                "Task": 10,
                "Opcode": 0,
                "Keywords": "0x8000000000000000",
                "TimeCreated": {
                    "#attributes": {"SystemTime": "2026-11-30T10:15:02.123456Z"}
                },
                "EventRecordID": 1010,
                "Correlation": None,
                "Execution": {"#attributes": {"ProcessID": 3172, "ThreadID": 4048}},
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "ws-042.corp.example",
                "Security": {"#attributes": {"UserID": "S-1-5-18"}},
            },
            "EventData": {
                "RuleName": "-",
                "UtcTime": "2026-11-30 10:15:02.120",
                "SourceProcessGUID": "{b34bc01c-226a-5f69-0c00-000000000900}",
                "SourceProcessId": 744,
                "SourceThreadId": 2588,
                "SourceImage": source_image,
                "TargetProcessGUID": "{b34bc01c-61c0-5f69-cb01-000000000900}",
                "TargetProcessId": 7320,
                "TargetImage": "C:\\Users\\jdoe\\Downloads\\MirrorDump.exe",
                "GrantedAccess": "0x40",
                "CallTrace": "C:\\Windows\\SYSTEM32\\ntdll.dll+9d234"
                "|UNKNOWN(00000000001C119B)",
                "SourceUser": "NT AUTHORITY\\SYSTEM",
                "TargetUser": "CORP\\jdoe",
            },
        }
    }


def flat_event(**changes) -> dict:
    """The h10 flat record, changed as a test needs."""
    doc = record("flat_h10.json")
    doc.update(changes)
    return doc


# --- one test per layout ----------------------------------------------------------


def test_winlogbeat7_document_is_used_as_it_is():
    doc = record("winlogbeat7_h01.json")

    shape, view = to_ecs(doc)

    assert shape == "winlogbeat7"
    assert view is doc
    assert field(view, "event.code") == "10"
    assert field(view, "process.name") == "lsass.exe"
    assert field(view, "winlog.event_data.GrantedAccess") == "0x40"


def test_winlogbeat7_integer_event_code_stays_an_integer():
    shape, view = to_ecs(record("winlogbeat7_h05_integer_code.json"))

    assert shape == "winlogbeat7"
    assert field(view, "event.code") == 10


def test_winlogbeat8_output_gets_what_the_sysmon_module_derives():
    doc = record("winlogbeat8_h07.json")
    before = copy.deepcopy(doc)

    shape, view = to_ecs(doc)

    assert shape == "winlogbeat8"
    assert doc == before
    assert field(view, "event.code") == "10"
    assert field(view, "event.category") == ["process"]
    assert field(view, "event.type") == ["access"]
    assert field(view, "event.module") == "sysmon"
    assert field(view, "event.action") == "Process accessed (rule: ProcessAccess)"
    assert field(view, "process.name") == "lsass.exe"
    assert field(view, "process.executable") == "C:\\Windows\\system32\\lsass.exe"
    assert field(view, "process.pid") == 744
    assert field(view, "process.thread.id") == 2588
    assert field(view, "host.name") == "ws-042.corp.example"
    assert field(view, "@timestamp") == "2026-11-30T10:15:02.123Z"
    assert field(view, "winlog.event_data") == before["winlog"]["event_data"]


def test_flat_sysmon_record_is_mapped_into_the_winlog_layout():
    shape, view = to_ecs(record("flat_otrf_powershell_to_lsass.json"))

    assert shape == "flat-sysmon"
    assert field(view, "event.code") == "10"
    assert field(view, "event.category") == ["process"]
    assert field(view, "event.kind") == "event"
    assert field(view, "process.name") == "powershell.exe"
    assert field(view, "process.pid") == 5972
    assert field(view, "process.thread.id") == 7956
    assert field(view, "process.entity_id") == "{b34bc01c-a92a-5f69-7e02-000000000900}"
    assert field(view, "winlog.event_data.GrantedAccess") == "0x40"
    assert field(view, "winlog.event_data.CallTrace").endswith(
        "|UNKNOWN(0000017C418A9649)"
    )
    assert field(view, "winlog.event_data.TargetImage").endswith("\\lsass.exe")
    assert field(view, "host.name") == "WORKSTATION5.theshire.local"
    assert field(view, "winlog.channel") == "Microsoft-Windows-Sysmon/Operational"
    assert field(view, "winlog.provider_name") == "Microsoft-Windows-Sysmon"
    assert field(view, "winlog.record_id") == 3362859
    assert field(view, "winlog.process.pid") == 3172
    assert field(view, "winlog.user.identifier") == "S-1-5-18"
    # Sysmon's UtcTime, as the module sets it, not the shipper's arrival time.
    assert field(view, "@timestamp") == "2020-09-22T08:11:49.506Z"


def test_flat_record_keeps_only_event_data_under_event_data():
    shape, view = to_ecs(record("flat_otrf_lsass_samsrv.json"))

    data = field(view, "winlog.event_data")
    assert shape == "flat-sysmon"
    assert field(view, "process.name") == "lsass.exe"
    assert data["GrantedAccess"] == "0x40"
    assert "UNKNOWN" not in data["CallTrace"]
    assert not {"EventID", "Channel", "Hostname", "Message", "SourceName"} & set(data)


def test_semantics_flat_case_matches_the_canonical_winlogbeat7_view():
    _, flat = to_ecs(record("flat_h10.json"))
    _, canonical = to_ecs(record("winlogbeat7_h01.json"))

    for path in ("event.code", "event.category", "process.name", "process.pid"):
        assert field(flat, path) == field(canonical, path), path
    assert field(flat, "winlog.event_data.CallTrace") == field(
        canonical, "winlog.event_data.CallTrace"
    )


def test_sentinel_event_data_string_is_read_as_event_data():
    shape, view = to_ecs(record("sentinel_otrf.json"))

    assert shape == "sentinel"
    assert field(view, "event.code") == "10"
    assert field(view, "event.category") == ["process"]
    assert field(view, "process.name") == "Tomcat9.exe"
    assert field(view, "process.pid") == 3936
    assert field(view, "winlog.event_data.GrantedAccess") == "0x1fffff"
    assert field(view, "winlog.event_data.CallTrace").endswith(
        "|UNKNOWN(000000000173951B)"
    )
    assert field(view, "host.name") == "WORKSTATION5"
    assert field(view, "@timestamp") == "2022-05-13T08:54:08.421Z"


def test_evtx_parser_record_is_mapped_with_ints_in_decimal():
    shape, view = to_ecs(evtx_record())

    assert shape == "evtx"
    assert field(view, "event.code") == "10"
    assert field(view, "event.category") == ["process"]
    assert field(view, "event.provider") == "Microsoft-Windows-Sysmon"
    assert field(view, "process.name") == "lsass.exe"
    assert field(view, "process.pid") == 744
    assert field(view, "winlog.event_data.SourceProcessId") == "744"
    assert field(view, "winlog.event_data.GrantedAccess") == "0x40"
    assert "UNKNOWN(" in field(view, "winlog.event_data.CallTrace")
    assert field(view, "host.name") == "ws-042.corp.example"
    assert field(view, "winlog.record_id") == 1010
    assert field(view, "winlog.process") == {"pid": 3172, "thread": {"id": 4048}}
    assert field(view, "winlog.user.identifier") == "S-1-5-18"


def test_evtx_event_id_with_qualifiers_is_read_from_its_text():
    doc = evtx_record(event_id={"#attributes": {"Qualifiers": 0}, "#text": 10})

    shape, view = to_ecs(doc)

    assert shape == "evtx"
    assert field(view, "event.code") == "10"
    assert field(view, "process.name") == "lsass.exe"


def test_evtx_unnamed_and_named_data_elements_are_both_read():
    doc = evtx_record()
    doc["Event"]["EventData"] = {
        "Data": [
            {"#attributes": {"Name": "SourceImage"}, "#text": "C:\\x\\lsass.exe"},
            {"#attributes": {"Name": "GrantedAccess"}, "#text": "0x40"},
            "unnamed",
        ]
    }

    _, view = to_ecs(doc)

    assert field(view, "winlog.event_data") == {
        "SourceImage": "C:\\x\\lsass.exe",
        "GrantedAccess": "0x40",
        "param3": "unnamed",
    }
    assert field(view, "process.name") == "lsass.exe"


def test_es_hit_of_a_helk_event_maps_its_source():
    shape, view = to_ecs(record("es_hit_helk_car.json"))

    assert shape == "es-hit"
    assert field(view, "event.code") == "10"
    assert field(view, "event.category") == ["process"]
    assert field(view, "process.name") == "taskmgr.exe"
    assert field(view, "process.pid") == 2408
    assert field(view, "winlog.event_data.TargetImage").endswith("lsass.exe")
    assert field(view, "winlog.event_data.CallTrace").startswith("C:\\\\Windows")
    assert field(view, "host.name") == "it001.shire.com"


def test_helk_decimal_granted_access_is_kept_as_decimal():
    source = record("es_hit_helk_car.json")["_source"]

    shape, view = to_ecs(source)

    assert shape == "helk"
    # HELK converted 0x1410 to decimal; it must never read as another hex mask.
    assert field(view, "winlog.event_data.GrantedAccess") == "5136"
    assert field(view, "winlog.event_data.GrantedAccess") != "0x40"


def test_es_hit_of_a_winlogbeat7_event_is_its_source():
    source = record("winlogbeat7_h01.json")
    hit = {"_index": "winlogbeat-7.17.9", "_id": "a1", "_source": source}

    shape, view = to_ecs(hit)

    assert shape == "es-hit"
    assert view is source


def test_kibana_fields_view_is_turned_back_into_a_document():
    hit = {"_id": "a1", "fields": flattened(record("winlogbeat8_h07.json"))}

    shape, view = to_ecs(hit)

    assert shape == "kibana-fields"
    assert field(view, "event.code") == "10"
    assert field(view, "event.category") == ["process"]
    assert field(view, "process.name") == "lsass.exe"
    assert field(view, "process.pid") == 744
    assert field(view, "winlog.event_data.GrantedAccess") == "0x40"
    assert "UNKNOWN(" in field(view, "winlog.event_data.CallTrace")
    assert field(view, "host.name") == "ws-042.corp.example"


def test_kibana_fields_view_without_a_hit_around_it_is_recognised():
    shape, view = to_ecs(flattened(record("winlogbeat7_h01.json")))

    assert shape == "kibana-fields"
    assert field(view, "event.category") == ["process"]
    assert field(view, "process.name") == "lsass.exe"


# --- rules of the mapping ---------------------------------------------------------


def test_dotted_keys_mean_the_same_as_nested_ones():
    doc = {
        "@timestamp": "2026-11-30T10:15:02.123Z",
        "event.code": "10",
        "winlog.provider_name": "Microsoft-Windows-Sysmon",
        "winlog.event_id": "10",
        "winlog.event_data.SourceImage": "C:\\Windows\\system32\\lsass.exe",
        "winlog.event_data.GrantedAccess": "0x40",
        "winlog": {"event_data.SourceProcessId": "744"},
    }

    shape, view = to_ecs(doc)

    assert shape == "winlogbeat8"
    assert field(view, "process.name") == "lsass.exe"
    assert field(view, "process.pid") == 744
    assert field(view, "winlog.event_data.GrantedAccess") == "0x40"


def test_dotted_winlogbeat7_document_is_given_nested():
    shape, view = to_ecs({"event.category": ["process"], "process.name": "lsass.exe"})

    assert shape == "winlogbeat7"
    assert view == {
        "event": {"category": ["process"]},
        "process": {"name": "lsass.exe"},
    }


def test_event_data_names_are_never_split_at_dots():
    doc = flat_event()
    doc["EventData"] = {"Some.Name": "x"}

    _, view = to_ecs(doc)

    assert field(view, "winlog.event_data")["Some.Name"] == "x"


@pytest.mark.parametrize(
    "provider, channel",
    [
        ("Microsoft-Windows-Security-Auditing", "Security"),
        ("Microsoft-Windows-Kernel-Process", "System"),
    ],
)
def test_event_10_of_another_provider_gets_no_process_fields(provider, channel):
    doc = flat_event(SourceName=provider, Channel=channel)

    shape, view = to_ecs(doc)

    assert shape == "flat-sysmon"
    assert field(view, "event.code") == "10"
    assert field(view, "winlog.event_data.SourceImage").endswith("lsass.exe")
    assert "process" not in view
    assert field(view, "event.category") is None
    assert field(view, "event.module") is None


def test_winlogbeat8_event_of_another_provider_is_left_alone():
    doc = record("winlogbeat8_h07.json")
    doc["winlog"]["provider_name"] = "Microsoft-Windows-Security-Auditing"
    doc["winlog"]["channel"] = "Security"

    shape, view = to_ecs(doc)

    assert shape == "winlogbeat8"
    assert view is doc
    assert "process" not in view


@pytest.mark.parametrize(
    "image, name",
    [
        ("\\\\?\\C:\\x\\lsass.exe", "lsass.exe"),
        ("\\??\\C:\\Windows\\System32\\lsass.exe", "lsass.exe"),
        ("C:/Windows/System32/lsass.exe", "lsass.exe"),
        ("C:lsass.exe", "lsass.exe"),
        ("lsass.exe", "lsass.exe"),
        ("C:\\Program Files\\a b\\tool.exe", "tool.exe"),
        ("", ""),
    ],
)
def test_process_name_is_the_last_part_of_the_image(image, name):
    _, view = to_ecs(flat_event(SourceImage=image))

    assert field(view, "process.executable") == image
    assert field(view, "process.name") == name


def test_process_creation_gets_parent_and_command_line():
    doc = flat_event(
        EventID=1,
        Image="C:\\Windows\\System32\\cmd.exe",
        ProcessId="4242",
        ProcessGuid="{b34bc01c-0000-0000-0000-000000000001}",
        CommandLine="cmd.exe /c whoami",
        ParentImage="C:\\Windows\\explorer.exe",
        ParentProcessId="1000",
        ParentCommandLine="C:\\Windows\\Explorer.EXE",
        User="CORP\\jdoe",
    )

    _, view = to_ecs(doc)

    assert field(view, "event.category") == ["process"]
    assert field(view, "event.type") == ["start"]
    assert field(view, "process.name") == "cmd.exe"
    assert field(view, "process.pid") == 4242
    assert field(view, "process.command_line") == "cmd.exe /c whoami"
    assert field(view, "process.parent.name") == "explorer.exe"
    assert field(view, "process.parent.pid") == 1000
    assert field(view, "user.name") == "jdoe"
    assert field(view, "user.domain") == "CORP"


def test_mapping_never_changes_its_input():
    docs = [record(path.name) for path in sorted(DATA.glob("*.json"))]
    docs += [evtx_record(), {"_id": "x", "fields": flattened(docs[0])}]
    for doc in docs:
        before = copy.deepcopy(doc)
        to_ecs(doc)
        assert doc == before


def test_every_shape_returned_is_described():
    for path in sorted(DATA.glob("*.json")):
        shape, _ = to_ecs(record(path.name))
        assert shape in SHAPES and shape != "unknown", path.name


# --- hostile input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        flat_event(EventID={"#text": "10", "x": [1]}),
        flat_event(SourceImage=["C:\\x\\lsass.exe"]),
        flat_event(SourceProcessId=2**200, SourceThreadId=-1, RecordNumber=10**5000),
        flat_event(EventID=10**5000, GrantedAccess=10**5000),
        flat_event(EventID=float("nan"), UtcTime=7, Channel=None, SourceName=["x"]),
        flat_event(EventData="not a dict", Hostname={"name": "x"}),
        {**record("sentinel_otrf.json"), "EventData": "{not json"},
        {**record("sentinel_otrf.json"), "EventData": "[1, 2]"},
        {**record("sentinel_otrf.json"), "EventData": None, "EventID": [10]},
        {"_source": "a string", "_id": 1},
        {"_source": None, "fields": "nope", "_index": "x"},
        {"_source": {"_source": {"_source": {}}}},
        {"Event": {"System": "x", "EventData": ["a"]}},
        {"Event": {"System": {"Provider": "x", "EventID": {"#text": None}}}},
        {"System": {"Execution": {"#attributes": None}}, "EventData": 5},
        {"winlog": {"provider_name": "Microsoft-Windows-Sysmon", "event_data": []}},
        {
            "winlog": {
                "channel": "Microsoft-Windows-Sysmon/Operational",
                "event_id": "10",
                "event_data": {"SourceImage": 5, "SourceProcessId": "7" * 50},
            },
            "event": "10",
            "process": 7,
        },
        {"event": {"category": None}, "process": {"name": None}},
        {"process_name": 1, "event_id": {"a": 1}, "winlog": "x"},
        {"": 1, ".": 2, "a.": 3, ".b": 4, "a..b": 5, "c": {"d.e": {"f.g": None}}},
        {"a.b": 1, "a": 2},
        {1: "x", None: {"y.z": 1}},
        {},
    ],
)
def test_hostile_values_never_raise(doc):
    shape, view = shapes._map(doc, undotted=False)

    assert shape in SHAPES
    assert isinstance(view, dict)


def test_hostile_values_fall_back_to_what_can_be_read():
    _, bad_id = to_ecs(flat_event(EventID={"x": 1}))
    _, list_image = to_ecs(flat_event(SourceImage=["C:\\x\\lsass.exe"]))
    shape, bad_json = to_ecs({**record("sentinel_otrf.json"), "EventData": "{nope"})

    assert field(bad_id, "event.code") is None
    assert field(bad_id, "winlog.event_data.GrantedAccess") == "0x40"
    assert field(list_image, "process.name") is None
    assert field(list_image, "event.code") == "10"
    assert shape == "sentinel"
    assert field(bad_json, "winlog.event_data") is None
    assert field(bad_json, "host.name") == "WORKSTATION5"


def test_a_string_source_with_nothing_else_is_unknown():
    hit = {"_id": "x", "_source": '{"event": 1}'}

    assert to_ecs(hit) == ("unknown", hit)


def test_non_dict_input_is_unknown():
    assert to_ecs([1, 2]) == ("unknown", [1, 2])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
REAL_KEYS = [
    "EventID",
    "EventData",
    "Event",
    "System",
    "Provider",
    "Computer",
    "Channel",
    "Hostname",
    "SourceName",
    "SourceImage",
    "GrantedAccess",
    "CallTrace",
    "UtcTime",
    "Type",
    "_source",
    "_id",
    "fields",
    "winlog",
    "event",
    "process",
    "event_data",
    "provider_name",
    "category",
    "module",
    "code",
    "#text",
    "#attributes",
    "winlog.event_data.SourceImage",
    "winlog.provider_name",
    "event.code",
    "event.category",
    "process.name",
    "event_id",
    "log_name",
    "process_path",
    "process_granted_access",
    "@timestamp",
]
REAL_VALUES = JSON_VALUES | st.sampled_from(
    [
        "Microsoft-Windows-Sysmon",
        "Microsoft-Windows-Sysmon/Operational",
        "WindowsEvent",
        "sysmon",
        10,
        "10",
        1,
        8,
        20,
        "\\\\?\\C:\\x\\lsass.exe",
        '{"SourceImage": "C:\\\\x.exe"}',
        "2026-11-30 10:15:02.120",
    ]
)
REAL_MIXTURES = st.recursive(
    st.dictionaries(st.sampled_from(REAL_KEYS), REAL_VALUES, max_size=8),
    lambda children: st.dictionaries(
        st.sampled_from(REAL_KEYS), children | REAL_VALUES, max_size=6
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=12), JSON_VALUES) | REAL_MIXTURES)
def test_any_json_object_maps_without_raising(doc):
    before = copy.deepcopy(doc)

    # _map is to_ecs without its last-resort guard, which would hide a crash here.
    shape, view = shapes._map(doc, undotted=False)

    assert shape in SHAPES
    assert isinstance(view, dict)
    assert doc == before


def test_keys_with_an_empty_part_are_kept_whole():
    shape, view = shapes._map(
        {"a..b": 1, "c.": 2, ".d": 3, "event.category": ["process"]}, undotted=False
    )

    assert shape == "winlogbeat7"
    assert view == {"a..b": 1, "c.": 2, ".d": 3, "event": {"category": ["process"]}}


def test_deeply_nested_dotted_objects_do_not_exhaust_the_stack():
    doc: dict = {"x": 1}
    for _ in range(3000):
        doc = {"a.b": doc}

    shape, view = shapes._map(doc, undotted=False)

    assert shape == "unknown"
    assert view is doc


def test_dotted_and_nested_spellings_merge_without_touching_the_input():
    doc = {
        "winlog": {
            "provider_name": "Microsoft-Windows-Sysmon",
            "event_data": {"GrantedAccess": "0x40", "SourceImage": "C:\\x\\a.exe"},
        },
        "winlog.event_id": "10",
        "winlog.event_data.SourceImage": "C:\\x\\b.exe",
        "winlog.event_data.CallTrace": "UNKNOWN(00000000001C119B)",
    }
    before = copy.deepcopy(doc)

    shape, view = to_ecs(doc)

    assert doc == before
    assert shape == "winlogbeat8"
    assert field(view, "winlog.event_data") == {
        "GrantedAccess": "0x40",
        "SourceImage": "C:\\x\\a.exe",
        "CallTrace": "UNKNOWN(00000000001C119B)",
    }
    assert field(view, "process.name") == "a.exe"
