"""The narrow reader clears lines without a full parse, and never one that alerts.

Each case is a line the default path (prefilter, narrow reader, full parse) must
judge exactly as `--every-line` (full parse of every line) does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.detect import Detector
from detector.lines import Block, RawLine
from detector.narrow import NarrowReader
from detector.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_logs" / "ws-042.winlogbeat7.ndjson"
RULES, _ = load_rules()

# Line 25 of the sample log alerts (lsass.exe, 0x40, an UNKNOWN frame).
HIT = json.loads(SAMPLE.read_bytes().splitlines()[24])
# The same kind of event as winlogbeat 8 writes it, without the Sysmon module.
SAMPLE8 = ROOT / "sample_logs" / "ws-042.winlogbeat8.ndjson"
HIT8 = SAMPLE8.read_bytes().splitlines()[392]


def _check(line: bytes, every_line: bool) -> tuple[list[str], Detector]:
    """Rule ids alerted, and the detector (for its counters)."""
    detector = Detector(RULES, every_line=every_line)
    alerts: list = []
    bad: list = []
    block = Block(1, 0, line + b"\n", 1)
    detector.check_lines([block], "t.ndjson", "t", alerts, bad)
    return [alert.rule_id for alert in alerts], detector


def _both_ways(line: bytes) -> list[str]:
    """The alerts, after checking that both paths agree on them and on counts."""
    default, fast = _check(line, every_line=False)
    full, slow = _check(line, every_line=True)
    assert default == full, line
    assert fast.counters.events == slow.counters.events
    assert fast.counters.repaired == slow.counters.repaired
    if not fast.counters.skipped:  # lines the prefilter lets go get no shape
        assert fast.counters.shapes == slow.counters.shapes
    return default


def _miss(doc: dict) -> dict:
    """The hit as a Sysmon event 11: a near miss that holds all the rule's strings."""
    doc = json.loads(json.dumps(doc))
    doc["event"]["code"] = doc["winlog"]["event_id"] = "11"
    return doc


def test_the_hit_alerts_and_a_near_miss_is_cleared_narrowly():
    assert _both_ways(json.dumps(HIT).encode()) == [RULES[0].rule_id]
    reader = NarrowReader(RULES)
    assert reader.no_match(json.dumps(_miss(HIT)).encode()) == "winlogbeat7"
    # The hit itself is never cleared: only the full path may decide it.
    assert reader.no_match(json.dumps(HIT).encode()) is None


def test_only_the_fields_the_rules_read_are_decoded():
    reader = NarrowReader(RULES)
    names = {text.strip('"').rstrip(".") for text in reader.guard_strings}
    assert {"winlog", "event_data", "GrantedAccess", "CallTrace", "process"} <= names
    assert "agent" not in names and "host" not in names


def _clean_trace(doc: dict) -> dict:
    """The hit with a call trace that has no UNKNOWN frame."""
    doc = json.loads(json.dumps(doc))
    doc["winlog"]["event_data"]["CallTrace"] = r"C:\Windows\SYSTEM32\ntdll.dll+9d4c4"
    return doc


def _dotted_only(doc: dict, field: str) -> dict:
    """doc with `field` moved out of its nested object into one dotted key."""
    doc = json.loads(json.dumps(doc))
    node = doc
    parts = field.split(".")
    for part in parts[:-1]:
        node = node[part]
    doc[field] = node.pop(parts[-1])
    return doc


@pytest.mark.parametrize(
    "field",
    ["winlog.event_data.CallTrace", "process.name", "event.code"],
)
def test_a_field_only_a_dotted_key_spells_still_alerts(field):
    line = json.dumps(_dotted_only(HIT, field)).encode()
    assert _both_ways(line) == [RULES[0].rule_id]


def test_a_dotted_key_that_spoils_the_match_is_seen():
    # The nested trace has no UNKNOWN frame, a dotted key adds one: winlogbeat's
    # nested form wins where both spell a field, so neither path alerts.
    doc = _clean_trace(HIT)
    doc["winlog.event_data.CallTrace"] = "x|UNKNOWN(1)"
    assert _both_ways(json.dumps(doc).encode()) == []


def test_a_key_spelled_with_an_escape_still_alerts():
    line = json.dumps(HIT).encode().replace(b'"CallTrace"', b'"Call\\u0054race"')
    assert _both_ways(line) == [RULES[0].rule_id]


@pytest.mark.parametrize("wrapper", ["_source", "_id", "_index"])
def test_a_search_hit_goes_to_the_full_path(wrapper):
    doc = {"_index": "winlogbeat-7", "_id": "x", "_source": HIT}
    if wrapper != "_source":
        doc = {wrapper: "x", **HIT}
    assert _both_ways(json.dumps(doc).encode()) == [RULES[0].rule_id]


def test_duplicate_keys_mean_what_the_last_one_says():
    clean = _clean_trace(HIT)

    def then_winlog(doc: dict, winlog: dict) -> bytes:
        text = json.dumps(doc)[:-1] + ', "winlog": ' + json.dumps(winlog) + "}"
        return text.encode()

    assert _both_ways(then_winlog(HIT, clean["winlog"])) == []
    hit_last = then_winlog(clean, HIT["winlog"])
    assert _both_ways(hit_last) == [RULES[0].rule_id]


def test_a_field_of_an_unexpected_type_goes_to_the_full_path():
    doc = json.loads(json.dumps(HIT))
    doc["winlog"]["event_data"] = [doc["winlog"]["event_data"]]  # a list of objects
    assert _both_ways(json.dumps(doc).encode()) == [RULES[0].rule_id]
    doc["winlog"] = None
    assert _both_ways(json.dumps(doc).encode()) == []


def test_bad_utf8_in_a_skipped_field_is_still_repaired_and_counted():
    doc = _miss(HIT)
    doc["agent"]["name"] = "WS-\udcff"  # becomes a lone 0xFF byte below
    line = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogateescape")
    assert b"\xff" in line
    assert _both_ways(line) == []
    _, detector = _check(line, every_line=False)
    assert detector.counters.repaired == 1


def test_another_layout_goes_to_the_full_path():
    # winlogbeat 8 without the Sysmon module: its ECS fields come from shapes.
    reader = NarrowReader(RULES)
    assert reader.no_match(HIT8) is None
    assert _both_ways(HIT8) == [RULES[0].rule_id]


def test_a_whole_file_of_near_misses_is_cleared_without_a_full_parse(monkeypatch):
    lines = [json.dumps(_miss(HIT)).encode() for _ in range(200)]
    lines[150] = json.dumps(HIT).encode()
    data = b"\n".join(lines) + b"\n"
    parsed: list[RawLine] = []
    import detector.detect as detect

    real_decode = detect.decode

    def counting_decode(raw):
        parsed.append(raw)
        return real_decode(raw)

    monkeypatch.setattr(detect, "decode", counting_decode)
    detector = Detector(RULES)
    alerts: list = []
    detector.check_lines([Block(1, 0, data, 200)], "t.ndjson", "t", alerts, [])
    assert [alert.line_number for alert in alerts] == [151]
    # Only the hit was parsed in full; the 199 near misses were cleared narrowly.
    assert [raw.number for raw in parsed] == [151]
    assert detector.counters.events == 200


def test_a_kept_verdict_is_only_reused_for_the_same_values():
    reader = NarrowReader(RULES)
    miss = _clean_trace(HIT)
    for second in range(3):  # timestamps differ: one document, one verdict kept
        miss["@timestamp"] = f"2026-11-30T09:12:0{second}.000Z"
        assert reader.no_match(json.dumps(miss).encode()) == "winlogbeat7"
    assert len(reader._cleared) == 1
    # One value a rule reads differs: judged afresh, and the hit is not cleared.
    hit = json.loads(json.dumps(HIT))
    hit["@timestamp"] = miss["@timestamp"]
    assert reader.no_match(json.dumps(hit).encode()) is None
    assert reader.no_match(json.dumps(hit).encode()) is None
    # A timestamp in a list is no plain timestamp (Kibana's fields view): kept.
    hit["@timestamp"] = [hit["@timestamp"]]
    assert _both_ways(json.dumps(hit).encode()) == [RULES[0].rule_id]


# --- a block read in one call ------------------------------------------------------

_MISS_LINE = json.dumps(_miss(HIT)).encode()


def _variants() -> list[bytes]:
    """Lines to mix into a block of near misses: each decodes narrowly in a way of
    its own, or makes the whole block fail to, or alerts."""
    hit = json.dumps(HIT).encode()
    odd = []
    for value in [True, 1.5, 2**63, 2**70, -(2**63), 64, None, ["0x40"], [["0x40"]]]:
        doc = _miss(HIT)
        doc["winlog"]["event_data"]["GrantedAccess"] = value
        odd.append(json.dumps(doc).encode())
    listed = json.loads(hit)
    listed["@timestamp"] = [listed["@timestamp"]]
    # Kibana's fields view, by its listed timestamp: another shape than the plain
    # near miss, which must keep a verdict of its own.
    listed_miss = _miss(HIT)
    listed_miss["@timestamp"] = [listed_miss["@timestamp"]]
    bad_utf8 = _MISS_LINE.replace(b"WS-042", b"WS-\xff", 1)
    assert bad_utf8 != _MISS_LINE
    return [
        _MISS_LINE,
        hit,
        hit + b"\r",
        json.dumps(listed).encode(),
        json.dumps({"_index": "w", "_id": "1", "_source": HIT}).encode(),
        json.dumps({"_id": "1", **HIT}).encode(),
        json.dumps(listed_miss).encode(),
        # A near miss around a search hit's _source that alerts.
        json.dumps({**_miss(HIT), "_source": HIT}).encode(),
        json.dumps(_dotted_only(HIT, "process.name")).encode(),
        hit.replace(b'"CallTrace"', b'"Call\\u0054race"'),
        hit[:-1] + b', "winlog": ' + json.dumps(_clean_trace(HIT)["winlog"]).encode()
        + b"}",
        _MISS_LINE + b"," + hit,  # two objects: one more element than lines
        # Two lines each, broken, that joined make one string, or one array.
        b'{"event":{"category":"x"},"k":"\n"}',
        b'{"a":[[{}\n{}]]}',
        hit + b" " + _MISS_LINE,
        b"",
        b"   ",
        b"{}",
        b"[1, 2]",
        b"42",
        hit[: len(hit) // 2],
        bad_utf8,
        HIT8,
        *odd,
    ]  # fmt: skip


VARIANTS = _variants()


def _outcome(block: bytes, lines: int, every_line: bool):
    detector = Detector(RULES, every_line=every_line)
    alerts: list = []
    bad: list = []
    detector.check_lines([Block(7, 1000, block, lines)], "t.ndjson", "t", alerts, bad)
    counters = detector.counters
    return (
        [(a.rule_id, a.line_number, a.offset) for a in alerts],
        [(b.number, b.offset, b.reason) for b in bad],
        (counters.lines, counters.events, counters.bad, counters.repaired),
        counters.shapes,
    )


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(range(len(VARIANTS))), max_size=30))
def test_a_block_of_near_misses_read_in_one_call_gets_every_lines_verdict(picks):
    # Enough near misses first that the prefilter hands the block on whole, and
    # the narrow reader reads it as one array (or line by line once that fails).
    lines = [_MISS_LINE] * 40 + [VARIANTS[i] for i in picks] + [_MISS_LINE]
    block = b"\n".join(lines) + b"\n"
    count = block.count(b"\n")
    detector = Detector(RULES)
    assert detector.prefilter.candidates(block, count) is None
    assert _outcome(block, count, False) == _outcome(block, count, True)


def test_two_broken_lines_and_a_line_of_two_objects_do_not_shift_verdicts():
    # Found by an adversarial run: the first two lines below join into one object
    # (the newline falls inside a string) and the last holds two, so a plain join
    # of the lines gave as many elements as lines, each after the first two one
    # line off: the hit took its neighbour's verdict and was let go.
    hit = json.dumps(HIT).encode()
    lines = [
        *[_MISS_LINE] * 40,
        b'{"event":{"category":"x"},"k":"',
        b'"}',
        hit,
        *[_MISS_LINE] * 20,
        _MISS_LINE + b"," + _MISS_LINE,
    ]
    block = b"\n".join(lines) + b"\n"
    assert Detector(RULES).prefilter.candidates(block, len(lines)) is None
    alerts, bad, counts, _ = _outcome(block, len(lines), False)
    assert (alerts, bad, counts) == _outcome(block, len(lines), True)[:3]
    assert [number for _, number, _ in alerts] == [7 + 42]
    # The same with an array opened on one line and closed on the next.
    lines[40:42] = [b'{"a":[[{}', b"{}]]}"]
    block = b"\n".join(lines) + b"\n"
    assert _outcome(block, len(lines), False) == _outcome(block, len(lines), True)


def test_an_element_that_does_not_carry_the_blocks_mark_is_seen(monkeypatch):
    # A line that spells an element of its own (`],[N,`) makes up for two lines
    # joined into one; only the block's mark, drawn at random, tells it apart.
    import detector.narrow as narrow

    monkeypatch.setattr(narrow.secrets, "randbits", lambda bits: 7)
    lines = [
        *[_MISS_LINE] * 40,
        b'{"a":[[{}',  # with the next line, inside its `[7, ...]`: one element
        b"{}]]}",
        json.dumps(HIT).encode(),
        _MISS_LINE + b"],[8," + _MISS_LINE,
    ]
    block = b"\n".join(lines) + b"\n"
    assert NarrowReader(RULES).uncleared(block, len(lines)) is None
    # Spelled with the mark, the line would pass: the mark must stay unknown.
    spelled = block.replace(b"],[8,", b"],[7,")
    assert NarrowReader(RULES).uncleared(spelled, len(lines)) is not None
    assert _outcome(block, len(lines), False) == _outcome(block, len(lines), True)


def test_a_block_read_in_one_call_is_read_so():
    reader = NarrowReader(RULES)
    hit = json.dumps(HIT).encode()
    block = b"\n".join([_MISS_LINE] * 30 + [hit] + [_MISS_LINE] * 3) + b"\n"
    assert reader.uncleared(block, 34) == [30]
    # A blank line, or a line of two objects, and the block is read line by line.
    assert reader.uncleared(block + b"\n", 35) is None
    assert reader.uncleared(block + _MISS_LINE + b"," + hit + b"\n", 35) is None
    # So is a block with bytes that are not UTF-8 (msgspec would not see them).
    assert reader.uncleared(block.replace(b"WS-042", b"WS-\xff", 1), 34) is None


@pytest.mark.parametrize("value", [True, 1, 1.0])
def test_values_equal_in_python_but_not_in_type_keep_no_shared_verdict(value):
    # 1 == 1.0 == True: the narrow reader must not reuse the verdict on one for
    # another. Only ints are read narrowly; the others go to the full path.
    reader = NarrowReader(RULES)
    doc = _miss(HIT)
    doc["winlog"]["event_data"]["GrantedAccess"] = value
    cleared = reader.no_match(json.dumps(doc).encode())
    assert cleared == ("winlogbeat7" if type(value) is int else None)
