"""Hostile input: a log line or a query can hold anything, and nothing escapes.

Process names, command lines and call traces are the attacker's to choose. Each
line either gives alerts or is reported as a bad line; each query either compiles
or is refused with a position. The regression tests at the end each hold the
smallest input that once crashed or stalled the detector.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
import tracemalloc
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from detector.alerts import reason
from detector.cli import dump
from detector.detect import Detector
from detector.eql import EqlError, compile_query
from detector.eql_ops import number_of
from detector.lines import LineSplitter, RawLine
from detector.model import Alert, BadLine
from detector.rules import load_rules
from detector.scan import scan_stream

DATA = Path(__file__).parent / "data"
RULE = load_rules()[0][0]
SEMANTICS = (DATA / "cases" / "semantics.ndjson").read_bytes().splitlines()
HIT = orjson.loads(SEMANTICS[0])

# Every layout the detector knows, as parsed documents to mutate.
SKELETONS = [
    orjson.loads(path.read_bytes()) for path in sorted(DATA.glob("shapes/*.json"))
]
SKELETONS += [orjson.loads(line) for line in SEMANTICS if line.startswith(b'{"@')]

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strategies -------------------------------------------------------------------

HOSTILE_TEXT = [
    "[bold]",
    "[/x]",
    "[link=file:///etc/passwd]x[/link]",
    "\x1b[31m\x1b[2J\x1b]0;owned\x07",
    "\u202eexe.dmc",
    "\ud800",
    "\udfff\ud800",
    "\x00\r\n\t",
    "UNKNOWN(" + "F" * 16 + ")",
    "C:\\" + "\\" * 300,
    "lsass.exe",
    "0x40",
    "x" * 70_000,
]

texts = st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE_TEXT))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.sampled_from([-(2**63) - 1, 2**64, 10**40, -(10**300)]),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=10) | st.sampled_from(["a.b", ".", "a..b"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)


def encoded(value, ascii_only: bool) -> bytes:
    """A line as a shipper could write it: escaped, or raw (surrogates as WTF-8)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _at(node, path):
    for step in path:
        node = node[step]
    return node


@st.composite
def mutated_events(draw) -> dict:
    """A known layout with random leaves (or whole objects) replaced."""
    event = copy.deepcopy(draw(st.sampled_from(SKELETONS)))
    for _ in range(draw(st.integers(1, 5))):
        path = draw(st.sampled_from(list(_paths(event))[1:]))
        _at(event, path[:-1])[path[-1]] = draw(json_values)
    return event


def dotted_events(documents: st.SearchStrategy) -> st.SearchStrategy:
    """Documents with some objects folded into their parent as dotted keys."""

    @st.composite
    def build(draw) -> dict:
        event = copy.deepcopy(draw(documents))
        objects = [
            path
            for path in _paths(event)
            if path and type(path[-1]) is str and isinstance(_at(event, path), dict)
        ]
        chosen = draw(st.sets(st.sampled_from(objects), max_size=4)) if objects else ()
        # Deepest first, so every path chosen still leads somewhere when folded.
        for path in sorted(chosen, key=len, reverse=True):
            parent = _at(event, path[:-1])
            child = parent.pop(path[-1])
            for key, value in child.items():
                parent.setdefault(f"{path[-1]}.{key}", value)
        return event

    return build()


# --- the per-line path --------------------------------------------------------------


class _MappingFailures(logging.Handler):
    """Counts falls back on to_ecs's backstop, which would hide an event."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record):
        self.count += "mapping failed" in record.getMessage()


def run_line(data: bytes) -> list[Alert] | BadLine:
    """One line through the whole per-line path, with every alert serialised."""
    failures = _MappingFailures()
    shapes_log = logging.getLogger("detector.shapes")
    old_level = shapes_log.level
    shapes_log.addHandler(failures)
    shapes_log.setLevel(logging.DEBUG)
    try:
        outcome = Detector([RULE]).check(RawLine(1, 0, data), "hostile.ndjson", "o")
    finally:
        shapes_log.removeHandler(failures)
        shapes_log.setLevel(old_level)
    assert failures.count == 0, "the shape mapping raised on this event"

    if isinstance(outcome, BadLine):
        assert outcome.reason and outcome.number == 1
        return outcome
    assert isinstance(outcome, list)
    for alert in outcome:
        assert isinstance(alert, Alert)
        assert isinstance(orjson.loads(dump(alert.document)), dict)
        RULE.query.explain(alert.document)
    return outcome


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_are_a_bad_line_or_an_event(data):
    run_line(data)


@FUZZ
@given(json_values, st.booleans())
def test_random_json_values_never_escape(value, ascii_only):
    run_line(encoded(value, ascii_only))


@FUZZ
@given(mutated_events(), st.booleans())
def test_every_shape_with_random_values_never_escapes(event, ascii_only):
    run_line(encoded(event, ascii_only))


@FUZZ
@given(dotted_events(st.sampled_from(SKELETONS)))
def test_dotted_spellings_of_every_shape_never_escape(event):
    run_line(encoded(event, True))


@settings(max_examples=60, deadline=None)
@given(dotted_events(st.sampled_from([orjson.loads(SEMANTICS[i]) for i in (0, 4, 9)])))
def test_dotted_spellings_of_a_hit_still_alert(event):
    outcome = run_line(encoded(event, True))
    assert isinstance(outcome, list) and len(outcome) == 1, event


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 200), st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_a_bad_line_or_an_event(depth, opener):
    closer = "]" if opener == "[" else "}"
    data = ('{"x":' + opener * depth + "1" + closer * depth + "}").encode()
    run_line(data)


def test_huge_values_are_an_event_or_a_bad_line():
    for data in (
        b'{"a":"' + b"x" * 5_000_000 + b'"}',
        b'{"a":[' + b"1," * 1_000_000 + b"1]}",
        b'{"a":' + b"9" * 400 + b"}",
        b'{"a":' + b"9" * 30 + b"}",
        b'{"' + b"k." * 100_000 + b'":1}',
    ):
        run_line(data)


# --- alerts on hits holding hostile values ----------------------------------------

HOSTILE_VALUES = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.lists(st.sampled_from(HOSTILE_TEXT), max_size=3),
    st.dictionaries(st.sampled_from(["[b]", "a.b", ""]), texts, max_size=2),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
)
# Fields the rule does not read: any value keeps the event a hit.
FREE_FIELDS = [
    ("winlog", "event_data", "TargetImage"),
    ("host", "name"),
    ("process", "executable"),
    ("user", "name"),
    ("winlog", "user", "name"),
    ("winlog", "computer_name"),
    ("winlog", "record_id"),
    ("winlog", "channel"),
    ("@timestamp",),
    ("log",),
]


@FUZZ
@given(
    st.dictionaries(st.sampled_from(FREE_FIELDS), HOSTILE_VALUES, min_size=1),
    st.sampled_from(HOSTILE_TEXT),
    st.booleans(),
)
def test_hits_with_hostile_values_still_alert_and_serialise(changes, text, ascii_only):
    event = copy.deepcopy(HIT)
    for path, value in changes.items():
        node = event
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = value
    # Fields the rule reads can carry hostile text beside what makes the hit.
    data = event["winlog"]["event_data"]
    data["CallTrace"] = text + "|UNKNOWN(00000000001C119B)|" + text
    data["GrantedAccess"] = ["0x40", text]
    event["process"]["name"] = [text, "lsass.exe"]

    outcome = run_line(encoded(event, ascii_only))
    assert isinstance(outcome, list) and len(outcome) == 1
    sentence = reason(RULE, outcome[0].document)
    assert isinstance(sentence, str) and RULE.name in sentence


# --- the EQL parser -------------------------------------------------------------------

VALID_QUERIES = [
    RULE.query.text,
    'process where process.name : ("a*", "?b") and not x.y in~ (1, "2", true)',
    'any where startsWith~(a, "x") or endsWith(b, """raw\\""") and c != null',
    'file where `odd name`.x regex~ "a+b" and ?opt.field like "*\\u{41}*"',
    "any where (a < 1.5e3 or b >= -2) and not (c == false or d == null)",
    'registry where stringContains(a, "x\\"y") and b : 10 and c like~ "x?y"',
]
TOKEN = re.compile(r'"""[^"]*"""|"(?:[^"\\]|\\.)*"|`[^`]*`|\w+~?|[^\s\w]')
VOCABULARY = [
    *"( ) , . ? : == != < <= > >= ~ [ ] | = ' \" ` \\ /* */ //".split(),
    *"and or not in in~ like like~ regex regex~ where any process null true".split(),
    *"sequence join sample startsWith length 1e999 -0 .5 1.".split(),
    '"\\u{110000}"',
    '"\\q"',
    '"(("',
    '"*?*"',
    '"' + "9" * 5000 + '"',
    "9" * 5000,
]


@st.composite
def mutated_queries(draw) -> str:
    """A valid query with tokens inserted, deleted or replaced."""
    tokens = TOKEN.findall(draw(st.sampled_from(VALID_QUERIES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(tokens)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        word = draw(st.sampled_from(VOCABULARY) | st.text(max_size=3))
        if action == "insert":
            tokens.insert(at, word)
        elif at < len(tokens):
            tokens[at : at + 1] = [] if action == "delete" else [word]
    return draw(st.sampled_from([" ", "\n", ""])).join(tokens)


def compile_or_refuse(text: str):
    """compile_query's only two outcomes: a Query, or an EqlError that points
    into the text."""
    try:
        return compile_query(text)
    except EqlError as error:
        lines = text.split("\n")
        assert 1 <= error.line <= len(lines), str(error)
        assert 1 <= error.column <= len(lines[error.line - 1]) + 1, str(error)
        assert error.message
        return None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.text('()"`\\ano=:*~,.', max_size=60))
def test_random_query_text_compiles_or_is_refused(text):
    compile_or_refuse(text)
    compile_or_refuse("any where " + text)


@settings(max_examples=400, deadline=None)
@given(mutated_queries())
def test_mutated_queries_compile_or_are_refused(text):
    compile_or_refuse(text)


@pytest.mark.parametrize(
    "text",
    [
        "any where " + "(" * 5000,
        "any where " + "(" * 5000 + "a == 1" + ")" * 5000,
        "any where " + "not " * 5000 + "a == 1",
        "any where " + "a == 1 and (" * 2000 + "b == 1" + ")" * 2000,
        "any where a in (" + ", ".join(f'"{n}"' for n in range(100_000)) + ")",
        'any where a : "' + "x*" * 50_000 + '"',
        'any where a == "' + "\\u{41}" * 100_000 + '"',
        'any where a regex "' + "(" * 2000 + ")" * 2000 + '"',
        'any where a regex "a{4294967296}"',
        "any where a == 1e999 and b < -1e999",
        "/*" * 50_000,
    ],
    ids=lambda text: text[:30],
)
def test_extreme_queries_compile_or_are_refused(text):
    query = compile_or_refuse(text)
    if query is not None:
        query.matches({"a": "x"})
        query.explain({"a": "x"})


# Valid conditions built from the grammar, to run on random events.
FIELDS = st.sampled_from(["a", "a.b", "a.b.c", "process.name", "`x.y`"])
CONSTANTS = st.one_of(
    # JSON's escapes for `"` and `\\` are EQL's too; control characters are left out.
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8).map(
        lambda text: json.dumps(text, ensure_ascii=False)
    ),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["true", "false", '"*"', '"a*b?c"', '"10"', '"0x40"']),
)
PATTERNS = st.text("ab*?.\\", max_size=6).map(json.dumps)


def leaves() -> st.SearchStrategy:
    return st.one_of(
        st.tuples(FIELDS, st.sampled_from(["==", "!=", "<", ">="]), CONSTANTS).map(
            " ".join
        ),
        st.tuples(FIELDS, st.sampled_from([":", "like~", "like"]), PATTERNS).map(
            " ".join
        ),
        st.tuples(
            FIELDS,
            st.sampled_from(["in", "in~", "not in"]),
            st.lists(CONSTANTS, min_size=1, max_size=3),
        ).map(lambda t: f"{t[0]} {t[1]} ({', '.join(t[2])})"),
        st.tuples(
            st.sampled_from(["startsWith", "endsWith~", "stringContains"]),
            FIELDS,
            PATTERNS,
        ).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(FIELDS, st.sampled_from(["== null", "!= null"])).map(" ".join),
        st.sampled_from(["true", "false"]),
    )


conditions = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        inner.map(lambda c: f"not ({c})"),
        st.lists(inner, min_size=2, max_size=5).map(
            lambda cs: " and ".join(f"({c})" for c in cs)
        ),
        st.lists(inner, min_size=2, max_size=5).map(
            lambda cs: " or ".join(f"({c})" for c in cs)
        ),
    ),
    max_leaves=8,
)
events = st.dictionaries(
    st.sampled_from(["a", "a.b", "process", "x.y", "event"]), json_values, max_size=4
)


@settings(max_examples=300, deadline=None)
@given(conditions, st.sampled_from(["any", "process"]), st.lists(events, max_size=4))
def test_valid_queries_evaluate_on_random_events(condition, category, samples):
    query = compile_or_refuse(f"{category} where {condition}")
    assume(query is not None)
    groups = query.literals()
    for event in samples:
        matched = query.matches(event)
        assert len(query.explain(event)) == len(query._leaves)
        if matched:
            # The prefilter's promise: every group has a member in the JSON text.
            text = json.dumps(event, ensure_ascii=False).lower()
            assert all(any(word in text for word in group) for group in groups)


# --- the line splitter and resource limits ---------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.binary(max_size=40) | st.sampled_from([b"\n", b"\n\n", b"\r\n"]), max_size=20
    ),
    st.integers(1, 50),
    st.integers(0, 40),
)
def test_random_chunkings_give_exact_lines_and_offsets(pieces, chunk_size, max_line):
    stream = b"".join(pieces)
    splitter = LineSplitter(max_line=max_line)
    lines = []
    for start in range(0, len(stream), chunk_size):
        lines.extend(splitter.feed(stream[start : start + chunk_size]))
        # Memory held is capped whatever the chunking; skipped bytes are counted.
        assert len(splitter._tail) <= max_line
    lines.extend(splitter.flush())

    assert [line.number for line in lines] == list(range(1, len(lines) + 1))
    assert splitter.offset == len(stream)
    start = 0
    for line in lines:
        assert line.offset == start
        end = stream.find(b"\n", start)
        end = len(stream) if end < 0 else end
        whole = stream[start:end]
        if line.oversize:
            assert line.data == b"" and len(whole) > max_line
        else:
            assert line.data == whole and len(whole) <= max_line
        start = end + 1
    assert start >= len(stream)


def _scan(path: Path):
    alerts, bad = [], []
    detector = Detector([RULE])
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        with path.open("rb") as stream:
            scan_stream(stream, str(path), "o", detector, alerts.append, bad.append)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return alerts, bad, peak


def _write_long_line(stream, size: int) -> None:
    stream.write(b'{"a":"')
    for _ in range(size >> 20):
        stream.write(b"x" * (1 << 20))


def test_a_100_mb_file_without_a_newline_is_one_bad_line_in_bounded_memory(tmp_path):
    path = tmp_path / "one-line.ndjson"
    with path.open("wb") as stream:
        _write_long_line(stream, 100 << 20)
    alerts, bad, peak = _scan(path)
    assert alerts == [] and len(bad) == 1 and "longer than" in bad[0].reason
    assert peak < 40 << 20, f"peak {peak >> 20} MiB"


def test_a_hit_after_a_100_mb_line_still_alerts(tmp_path):
    path = tmp_path / "long-then-hit.ndjson"
    with path.open("wb") as stream:
        _write_long_line(stream, 100 << 20)
        stream.write(b"\n" + SEMANTICS[0])  # the hit ends the file without a newline
    alerts, bad, peak = _scan(path)
    assert [b.number for b in bad] == [1] and [a.line_number for a in alerts] == [2]
    assert alerts[0].offset == path.stat().st_size - len(SEMANTICS[0])
    assert peak < 40 << 20, f"peak {peak >> 20} MiB"


# --- regressions: the smallest input that showed each fault ------------------------


def test_lone_surrogate_escape_in_target_image_still_alerts():
    # Was a bad line ("no low surrogate in string"): an attacker naming a file with
    # half a UTF-16 pair hid the event from every rule.
    line = SEMANTICS[0].replace(b"MirrorDump.exe", b"\\ud800.exe")
    outcome = run_line(line)
    assert isinstance(outcome, list) and len(outcome) == 1
    target = outcome[0].document["winlog"]["event_data"]["TargetImage"]
    assert target.endswith("\ufffd.exe")


def test_escaped_backslash_before_u_is_not_taken_for_a_surrogate():
    line = SEMANTICS[0].replace(b"MirrorDump.exe", b"\\\\ud800\\udc00.exe")
    outcome = run_line(line)
    target = outcome[0].document["winlog"]["event_data"]["TargetImage"]
    assert target.endswith("\\ud800\ufffd.exe")


def test_many_wildcards_on_a_long_value_do_not_stall():
    # Was a backtracking regex: 200 characters took 7 s, 400 took 170 s.
    query = compile_query('any where a : "*a*a*a*a*b"')
    started = time.perf_counter()
    assert not query.matches({"a": "a" * 200})
    assert not query.matches({"a": "a" * 1_000_000})
    assert query.matches({"a": "a" * 1_000_000 + "b"})
    assert time.perf_counter() - started < 1


def test_long_digit_run_in_an_ordered_comparison_does_not_stall():
    # Was quadratic in the numeric-text check: 20,000 digits took 23 s.
    query = compile_query("any where a > 5")
    started = time.perf_counter()
    assert not query.matches({"a": "1" * 20_000 + "x"})
    assert time.perf_counter() - started < 1


def test_digits_beyond_the_int_limit_in_an_ordered_comparison_do_not_crash():
    # Was ValueError (Python's 4,300-digit limit) out of Detector.check.
    assert compile_query("any where a > 5").matches({"a": "1" * 4301})


def test_number_with_too_many_digits_in_a_query_is_refused():
    # Was ValueError out of compile_query.
    for text in (
        "any where a == " + "9" * 4301,
        "any where a in (1, " + "9" * 4301 + ")",
    ):
        with pytest.raises(EqlError, match="too many digits"):
            compile_query(text)


def test_deeply_nested_conditions_are_refused():
    # Were RecursionError out of compile_query (989 `not`, 495 nested `and`).
    for text in (
        "any where " + "not " * 989 + "a == 1",
        "any where " + "a == 1 and (" * 495 + "b == 1" + ")" * 495,
    ):
        with pytest.raises(EqlError, match="nested deeper"):
            compile_query(text)


def test_long_and_or_chains_compile_and_match():
    # Were RecursionError, at load time (999 terms) and again on every event.
    for joiner, expected in ((" and ", True), (" or ", True)):
        query = compile_query("any where " + joiner.join(["a == 1"] * 5000))
        assert query.matches({"a": 1}) is expected
        assert not query.matches({"a": 2})


def test_regex_beyond_python_limits_is_refused():
    # Were RecursionError (492 nested groups) and OverflowError out of compile_query.
    for text in (
        'any where a regex "' + "(" * 492 + ")" * 492 + '"',
        'any where a regex "a{4294967296}"',
    ):
        with pytest.raises(EqlError, match="regular expression"):
            compile_query(text)


def test_a_key_of_a_thousand_dotted_parts_does_not_crash_dump():
    # Was RecursionError in the CLI's `dump` of the alert: the key expanded into a
    # view 994 objects deep (orjson stops at 254, its fallback at the stack).
    line = b'{"' + b".".join([b"k"] * 994) + b'":1,' + SEMANTICS[0][1:]
    outcome = run_line(line)
    assert isinstance(outcome, list) and len(outcome) == 1


def test_dotted_keys_inside_dotted_keys_stay_within_orjson_depth():
    key = ".".join(["k"] * 16)
    value = "1"
    for _ in range(60):
        value = f'{{"{key}":{value}}}'
    outcome = run_line(f'{{"z":{value},'.encode() + SEMANTICS[0][1:])
    orjson.dumps(outcome[0].document)  # no fallback needed


# The wildcard matcher replaced a regex; it must agree with one on short values.
@settings(max_examples=300, deadline=None)
@given(st.text("ab*?", max_size=7), st.text("ab", max_size=7))
def test_wildcards_agree_with_a_regex(pattern, value):
    regex = "".join(
        {"*": ".*", "?": "."}.get(char, re.escape(char)) for char in pattern
    )
    query = compile_query(f'any where a like "{pattern}"')
    assert query.matches({"a": value}) == bool(re.fullmatch(regex, value, re.DOTALL))


@settings(max_examples=300, deadline=None)
@given(st.text("0123456789.eE+-x", max_size=12))
def test_numeric_text_reads_as_before(text):
    before = re.compile(r"-?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")
    assert (number_of(text) is not None) == bool(before.fullmatch(text))
