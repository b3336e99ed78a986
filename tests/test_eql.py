"""EQL event queries: Elasticsearch semantics, load-time errors, explain, literals."""

from __future__ import annotations

import json
import string
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.eql import EqlError, compile_query, lookup
from detector.eql_fields import compile_getter
from detector.model import Condition

SEED_QUERY = """process where event.code == "10" and

 /* LSASS requesting DuplicateHandle access right to another process */
 process.name : "lsass.exe" and winlog.event_data.GrantedAccess == "0x40" and

 /* call is coming from an unknown executable region */
 winlog.event_data.CallTrace : "*UNKNOWN*\""""

CALL_TRACE = (
    "C:\\Windows\\SYSTEM32\\ntdll.dll+9d234|UNKNOWN(00000000001C119B)|"
    "C:\\Windows\\System32\\KERNEL32.DLL+17034"
)

CASES = Path(__file__).resolve().parents[2] / "shared" / "cases"


def seed_event(**changes) -> dict:
    """A winlogbeat 7 Sysmon event 10 that the seed rule alerts on."""
    event = {
        "event": {"code": "10", "category": ["process"], "type": ["access"]},
        "process": {"name": "lsass.exe", "pid": 744},
        "winlog": {
            "event_data": {"GrantedAccess": "0x40", "CallTrace": CALL_TRACE},
        },
    }
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = event
        for part in path:
            node = node[part]
        node[last] = value
    return event


def holds(condition: str, event: dict) -> bool:
    return compile_query(f"any where {condition}").matches(event)


def error_of(query: str) -> EqlError:
    with pytest.raises(EqlError) as caught:
        compile_query(query)
    return caught.value


# --- the seed rule ---------------------------------------------------------------


def test_seed_rule_matches_the_canonical_hit():
    assert compile_query(SEED_QUERY).matches(seed_event())


@pytest.mark.parametrize(
    "changes",
    [
        {"winlog__event_data__GrantedAccess": "0X40"},
        {"winlog__event_data__GrantedAccess": "0x1040"},
        {"winlog__event_data__CallTrace": "C:\\Windows\\SYSTEM32\\ntdll.dll+9d234"},
        {"process__name": "powershell.exe"},
        {"event__category": ["file"]},
    ],
)
def test_seed_rule_rejects_near_misses(changes):
    assert not compile_query(SEED_QUERY).matches(seed_event(**changes))


def test_seed_rule_accepts_integer_code_and_upper_case_name():
    event = seed_event(event__code=10, process__name="LSASS.EXE")
    assert compile_query(SEED_QUERY).matches(event)


def test_seed_rule_on_case_lines_that_need_no_reshaping():
    ndjson, expect = CASES / "semantics.ndjson", CASES / "semantics.expect.tsv"
    if not ndjson.exists():
        pytest.skip("shared case files are not beside the project")
    # h07 (winlogbeat 8 raw) and h10 (flat Sysmon) only match after the shape
    # stage has built the ECS view; h11 is not JSON.
    needs_shape = {"h07", "h10", "h11"}
    query = compile_query(SEED_QUERY)
    lines = ndjson.read_text(encoding="utf-8").splitlines()
    rows = [row.split("\t") for row in expect.read_text().splitlines()[1:]]
    checked = 0
    for number, _offset, alert, case, _what in rows:
        if case in needs_shape:
            continue
        event = json.loads(lines[int(number) - 1])
        assert query.matches(event) == (alert == "yes"), case
        checked += 1
    assert checked == 9


def test_seed_rule_fields_in_query_order():
    assert compile_query(SEED_QUERY).fields == [
        "event.category",
        "event.code",
        "process.name",
        "winlog.event_data.GrantedAccess",
        "winlog.event_data.CallTrace",
    ]


def test_explain_reports_each_seed_comparison():
    query = compile_query(SEED_QUERY)
    assert query.explain(seed_event()) == [
        Condition("event.code", "==", '"10"', "10", True),
        Condition("process.name", ":", '"lsass.exe"', "lsass.exe", True),
        Condition("winlog.event_data.GrantedAccess", "==", '"0x40"', "0x40", True),
        Condition("winlog.event_data.CallTrace", ":", '"*UNKNOWN*"', CALL_TRACE, True),
    ]


def test_explain_shows_missing_values_as_none_and_unmet():
    event = seed_event(winlog__event_data__GrantedAccess="0X40")
    del event["winlog"]["event_data"]["CallTrace"]
    conditions = compile_query(SEED_QUERY).explain(event)
    assert conditions[2] == Condition(
        "winlog.event_data.GrantedAccess", "==", '"0x40"', "0X40", False
    )
    assert conditions[3].actual is None and not conditions[3].met


def test_explain_writes_lists_and_operators_as_in_the_query():
    query = compile_query('any where a : ("x*", "y") and b not in~ ("P", 1)')
    first, second = query.explain({"a": ["xa", "z"], "b": "q"})
    assert (first.operator, first.expected, first.actual, first.met) == (
        ":",
        '("x*", "y")',
        ["xa", "z"],
        True,
    )
    assert (second.operator, second.expected, second.met) == (
        "not in~",
        '("P", 1)',
        True,
    )


# --- == and != -----------------------------------------------------------------


def test_double_equals_is_case_sensitive():
    assert holds('a == "0x40"', {"a": "0x40"})
    assert not holds('a == "0x40"', {"a": "0X40"})


def test_double_equals_treats_star_as_a_plain_character():
    assert not holds('a == "lsass*"', {"a": "lsass.exe"})
    assert holds('a == "lsass*"', {"a": "lsass*"})


def test_not_equals_holds_for_a_different_value_only():
    assert holds('a != "x"', {"a": "y"})
    assert not holds('a != "x"', {"a": "x"})


def test_not_equals_and_not_in_never_hold_for_missing_or_null():
    for event in ({}, {"a": None}):
        assert not holds('a != "x"', event)
        assert not holds('a not in ("x", "y")', event)
        assert not holds('a : "*"', event)


def test_null_comparisons():
    assert holds("a == null", {})
    assert holds("a == null", {"a": None})
    assert not holds("a == null", {"a": ""})
    assert holds("a != null", {"a": ""})
    assert not holds("a != null", {"a": None})


def test_not_is_plain_negation_even_for_missing_fields():
    assert holds('not a == "x"', {})
    assert not holds('not a != "x"', {"a": "y"})


# --- : like regex -------------------------------------------------------------


def test_colon_ignores_case_and_matches_the_whole_value():
    assert holds('a : "LSASS.exe"', {"a": "lsass.EXE"})
    assert not holds('a : "lsass"', {"a": "lsass.exe"})


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*unknown*", "x|UNKNOWN(1)|y", True),
        ("c:\\windows\\*", "C:\\Windows\\System32\\x.exe", True),
        ("*.exe", "A.EXE", True),
        ("*.exe", "a.exe.bak", False),
        ("a?c", "abc", True),
        ("a?c", "abbc", False),
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "aXXc", False),
        ("*", "", True),
        ("", "", True),
        ("a.c", "abc", False),
    ],
)
def test_colon_wildcards(pattern, value, expected):
    escaped = pattern.replace("\\", "\\\\")
    assert holds(f'a : "{escaped}"', {"a": value}) is expected


def test_colon_with_a_list_holds_if_any_pattern_matches():
    condition = 'a : ("*.dll", "cmd.exe", "power*")'
    assert holds(condition, {"a": "PowerShell.exe"})
    assert holds(condition, {"a": "CMD.EXE"})
    assert not holds(condition, {"a": "notepad.exe"})


def test_like_is_case_sensitive_and_like_tilde_is_not():
    assert holds('a like "Power*"', {"a": "PowerShell"})
    assert not holds('a like "power*"', {"a": "PowerShell"})
    assert holds('a like~ "power*"', {"a": "PowerShell"})
    assert holds('a like ("x", "P?wer*")', {"a": "PowerShell"})


def test_regex_is_anchored_and_tilde_ignores_case():
    assert holds('a regex "ab+c"', {"a": "abbc"})
    assert not holds('a regex "b+"', {"a": "abbc"})
    assert not holds('a regex "ABC"', {"a": "abc"})
    assert holds('a regex~ "ABC"', {"a": "abc"})
    assert holds('a regex ("x", "a.c")', {"a": "abc"})


# --- in ------------------------------------------------------------------------


def test_in_is_exact_and_in_tilde_ignores_case():
    assert holds('a in ("x", "cmd.exe")', {"a": "cmd.exe"})
    assert not holds('a in ("x", "cmd.exe")', {"a": "CMD.exe"})
    assert holds('a in~ ("x", "cmd.exe")', {"a": "CMD.exe"})
    assert not holds('a in ("cmd*")', {"a": "cmd.exe"})


def test_not_in_and_not_in_tilde():
    assert holds('a not in ("x", "y")', {"a": "z"})
    assert not holds('a not in ("x", "y")', {"a": "x"})
    assert holds('a not in ("X")', {"a": "x"})
    assert not holds('a not in~ ("X")', {"a": "x"})


# --- ordering ------------------------------------------------------------------


def test_ordering_is_numeric_for_numbers_and_numeric_strings():
    assert holds("a < 10", {"a": 9})
    assert holds("a < 10", {"a": "9"})
    assert holds('a < "10"', {"a": "9"})
    assert holds("a >= 2.5", {"a": 3})
    assert not holds("a > 10", {"a": "9"})


def test_ordering_falls_back_to_text_for_other_strings():
    assert holds('a < "b"', {"a": "abc"})
    assert not holds('a <= "abc"', {"a": "b"})
    assert holds('a > "0x"', {"a": "0x40"})


def test_constant_on_the_left_mirrors_the_comparison():
    assert holds("5 < a", {"a": 6})
    assert not holds("5 < a", {"a": 4})
    assert holds('"10" == event.code', {"event": {"code": 10}})


# --- string functions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "value", "expected"),
    [
        ('startsWith(a, "C:\\\\Win")', "C:\\Windows", True),
        ('startsWith(a, "c:\\\\win")', "C:\\Windows", False),
        ('startsWith~(a, "c:\\\\win")', "C:\\Windows", True),
        ('endsWith(a, ".exe")', "x.exe", True),
        ('endsWith(a, ".exe")', "x.EXE", False),
        ('endsWith~(a, ".exe")', "x.EXE", True),
        ('stringContains(a, "UNKNOWN")', "x|UNKNOWN(1)", True),
        ('stringContains(a, "unknown")', "x|UNKNOWN(1)", False),
        ('stringContains~(a, "unknown")', "x|UNKNOWN(1)", True),
        ('STARTSWITH(a, "x")', "xy", True),
    ],
)
def test_string_functions(call, value, expected):
    assert holds(call, {"a": value}) is expected


def test_string_functions_never_hold_for_missing_fields():
    assert not holds('startsWith(a, "")', {})
    assert holds('not endsWith(a, "x")', {})


# --- how event values compare ----------------------------------------------------


def test_numbers_in_events_compare_as_their_decimal_text():
    assert holds('a == "10"', {"a": 10})
    assert holds('a : "1*"', {"a": 10})
    assert holds('a == "1.5"', {"a": 1.5})
    assert holds('a == "true"', {"a": True})
    assert not holds('a == "1"', {"a": True})
    assert not holds('a == "0x40"', {"a": 64})


def test_numeric_constants_compare_numerically_with_numbers_and_as_text_otherwise():
    assert holds("a == 10", {"a": 10})
    assert holds("a == 10", {"a": 10.0})
    assert holds("a == 10", {"a": "10"})
    assert not holds("a == 10", {"a": "10.0"})
    assert holds("a in (4688, 10)", {"a": "10"})
    assert holds("a == true", {"a": True})
    assert not holds("a == 1", {"a": True})


def test_objects_never_match_a_string_comparison():
    event = {"a": {"b": "x"}}
    assert not holds('a == "x"', event)
    assert not holds('a != "x"', event)
    assert not holds('a : "*"', event)
    assert holds("a != null", event)


def test_list_values_match_when_any_element_does():
    event = {"a": ["x", ["y", ["Z"]]], "event": {"category": ["process", "file"]}}
    assert holds('a == "y"', event)
    assert holds('a : "z"', event)
    assert holds('a in ("q", "Z")', event)
    assert not holds('a == "q"', event)
    assert compile_query('file where a == "x"').matches(event)


# --- field lookup ----------------------------------------------------------------


def test_lookup_dotted_nested_and_mixed_spellings():
    assert lookup({"process.name": "a"}, "process.name") == ["a"]
    assert lookup({"process": {"name": "a"}}, "process.name") == ["a"]
    event = {"winlog.event_data": {"GrantedAccess": "0x40"}}
    assert lookup(event, "winlog.event_data.GrantedAccess") == ["0x40"]
    event = {"winlog": {"event_data.GrantedAccess": "0x40"}}
    assert lookup(event, "winlog.event_data.GrantedAccess") == ["0x40"]


def test_lookup_collects_every_spelling_longest_key_first():
    event = {"process.name": "dotted", "process": {"name": "nested"}}
    assert lookup(event, "process.name") == ["dotted", "nested"]
    assert holds('process.name == "nested"', event)
    assert holds('process.name == "dotted"', event)


def test_lookup_maps_over_arrays_of_objects():
    event = {"dns": {"answers": [{"data": "a"}, {"data": ["b", None]}, {"x": 1}]}}
    assert lookup(event, "dns.answers.data") == ["a", "b"]
    assert holds('dns.answers.data == "b"', event)


def test_lookup_of_missing_or_null_is_empty():
    assert lookup({}, "a.b") == []
    assert lookup({"a": None}, "a.b") == []
    assert lookup({"a": "text"}, "a.b") == []
    assert lookup({"a": {"b": None}}, "a.b") == []


def test_special_field_names():
    event = {"@timestamp": "t", "my field": {"x": 1}, "a": {"b`c": 2}}
    assert holds('@timestamp == "t"', event)
    assert holds("`my field`.x == 1", event)
    assert holds("a.`b``c` == 2", event)


def test_optional_fields_are_null_when_missing():
    assert holds("?process.missing == null", {})
    assert not holds('?process.missing : "*"', {})
    assert holds('?process.name == "a"', {"process": {"name": "a"}})
    assert compile_query("any where ?a.b == 1").fields == ["a.b"]


_KEYS = st.sampled_from(["a", "b", "a.b", "b.c", "a.b.c", "c"])
_TREES = st.recursive(
    st.none() | st.integers(0, 3) | st.sampled_from(["x", "y"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    st.dictionaries(_KEYS, _TREES, max_size=4),
    st.sampled_from(["a", "a.b", "a.b.c", "a.b.c.d"]),
)
def test_compiled_lookup_agrees_with_the_general_resolver(event, field):
    assert list(compile_getter(field)(event)) == lookup(event, field)


# --- category ------------------------------------------------------------------


def test_category_accepts_a_string_or_a_list_and_is_exact():
    query = compile_query('process where a == "x"')
    assert query.category == "process"
    assert query.matches({"event": {"category": "process"}, "a": "x"})
    assert query.matches({"event": {"category": ["network", "process"]}, "a": "x"})
    assert not query.matches({"event": {"category": ["Process"]}, "a": "x"})
    assert not query.matches({"event": {"category": ["processes"]}, "a": "x"})
    assert not query.matches({"a": "x"})


def test_any_where_skips_the_category_check():
    query = compile_query('any where a == "x"')
    assert query.category is None
    assert query.matches({"a": "x"})
    assert query.fields == ["a"]


def test_any_where_true_matches_everything():
    assert compile_query("any where true").matches({})
    assert not compile_query("any where false").matches({})


# --- syntax --------------------------------------------------------------------


def test_not_binds_tighter_than_and_which_binds_tighter_than_or():
    event = {"a": "1", "b": "0", "c": "0"}
    assert holds('a == "1" or b == "1" and c == "1"', event)
    assert not holds('(a == "1" or b == "1") and c == "1"', event)
    assert not holds('not a == "1" and b == "0"', event)
    assert holds('not (a == "1" and b == "1")', event)


def test_keywords_are_case_insensitive():
    query = compile_query('PROCESS WHERE a == "x" AND NOT b IN ("y") OR c LIKE~ "Z"')
    assert query.matches({"event": {"category": "PROCESS"}, "c": "z"})
    assert compile_query('ANY WHERE a == "x"').category is None


def test_comments_are_ignored_anywhere():
    query = compile_query(
        '// leading\nany /* a */ where /* b\n c */ a == "x" // trailing'
    )
    assert query.matches({"a": "x"})


def test_triple_quoted_strings_take_backslashes_literally():
    assert holds('a : """C:\\Windows\\*"""', {"a": "c:\\windows\\x"})
    assert holds('a == """say "hi\\n""""', {"a": 'say "hi\\n"'})


def test_string_escapes():
    assert holds('a == "q\\"b\\\\s\\tt\\u{41}"', {"a": 'q"b\\s\ttA'})


def test_numbers_negative_and_float():
    assert holds("a == -1", {"a": -1})
    assert holds("a > -1.5e1", {"a": -3})


# --- errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "line", "column", "words"),
    [
        (
            "sequence by host.id [process where true] [file where true]",
            1,
            1,
            "sequence",
        ),
        ("/* c */\n  join [process where true] [file where true]", 2, 3, "join"),
        ("sample by host.id [any where true]", 1, 1, "sample"),
        ('process where a == "x" | head 5', 1, 24, "pipes"),
        ("process where a == 'x'", 1, 20, "double quotes"),
        ("process where\n  length(a) > 3", 2, 3, "unsupported function length"),
        ('process where cidrMatch(a, "10.0.0.0/8")', 1, 15, "cidrMatch"),
        ('process where wildcard(a, "x")', 1, 15, "unsupported function wildcard"),
        ("process where add(a, 1) == 2", 1, 15, "unsupported function add"),
        ('process where startsWith(a, "x") == true', 1, 15, "cannot be compared"),
        ("process where a + 1 > 2", 1, 17, "arithmetic"),
        ('process where a = "x"', 1, 17, "=="),
        ("process where a == b", 1, 17, "two fields"),
        ("process where a", 1, 15, "alone is not a condition"),
        ('process where a == "x', 1, 20, "never closed"),
        ('process where a == "\\q"', 1, 21, "invalid escape"),
        ('process where a regex "("', 1, 23, "regular expression"),
        ('process where a in ("x", null)', 1, 26, "null"),
        ("process where a like 5", 1, 22, "needs a string"),
        ("process where a ==", 1, 19, "ends too early"),
        ('process where a == "x" /* open', 1, 24, "comment"),
        ('process where a[0] == "x"', 1, 16, "array"),
    ],
)
def test_unsupported_constructs_are_errors_with_positions(query, line, column, words):
    error = error_of(query)
    assert (error.line, error.column) == (line, column), str(error)
    assert words in error.message
    assert str(error) == f"line {line}, column {column}: {error.message}"


# --- literals ------------------------------------------------------------------


def test_seed_rule_literals():
    # "unknown" splits at its `k`: KELVIN SIGN lower-cases to `k` under `:`.
    literals = compile_query(SEED_QUERY).literals()
    assert literals == [["10"], ["lsass.exe"], ["0x40"], ["nown"]]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('a like "C:\\\\Windows\\\\*.dll"', [["windows"], [".dll"]]),
        ('a == "x" or b == "yz"', [["x", "yz"]]),
        ('a == "xyz" or b != "q"', []),
        ('not a == "xyz"', []),
        ('a in ("abc", "de")', [["abc", "de"]]),
        ('a in ("abc", 10)', []),
        ("a == 10", []),
        ('a == "1.5"', []),
        ('a : "*100*"', []),
        ('a : "*ab*"', []),
        ('a == "x/y"', []),
        ('a regex "abc"', []),
        ('stringContains(a, "lsass")', [["lsass"]]),
        ('(a == "abc" or b == "abd") and c == "xyz"', [["abc", "abd"], ["xyz"]]),
    ],
)
def test_literals_are_conservative(condition, expected):
    assert compile_query(f"any where {condition}").literals() == expected


_SAFE_TEXT = st.text(string.ascii_letters + string.digits + " |()+.-_:", max_size=12)


def _mostly(matching: list, missing: list) -> st.SearchStrategy:
    """Values that usually satisfy the seed rule's leaf, so many events match."""
    choices = st.sampled_from(matching * 3 + missing)
    return st.integers(0, 9).flatmap(lambda n: _SAFE_TEXT if n == 0 else choices)


@st.composite
def seed_like_events(draw) -> dict:
    code = draw(_mostly(["10", 10, ["10"], ["x", "10"]], ["11", 11, 10.0]))
    name = draw(_mostly(["lsass.exe", "LSASS.EXE", "Lsass.Exe"], ["lsass"]))
    access = draw(_mostly(["0x40"], ["0X40", 64, "0x1040"]))
    unknown = draw(_mostly(["UNKNOWN", "unknown", "UnKnOwN"], ["UNKOWN", ""]))
    trace = draw(_SAFE_TEXT) + unknown + draw(_SAFE_TEXT)
    category = draw(st.sampled_from(["process", ["process"], ["file", "process"]]))
    fields = {
        "event.code": code,
        "event.category": category,
        "process.name": name,
        "winlog.event_data.GrantedAccess": access,
        "winlog.event_data.CallTrace": trace,
    }
    event: dict = {}
    for dotted, value in fields.items():
        if draw(st.booleans()):
            event[dotted] = value
            continue
        node = event
        *path, last = dotted.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return event


@settings(max_examples=300)
@given(seed_like_events())
def test_every_matching_event_contains_every_literal_group(event):
    query = compile_query(SEED_QUERY)
    if not query.matches(event):
        return
    text = orjson.dumps(event).lower().decode()
    for group in query.literals():
        assert any(literal in text for literal in group), (group, text)


_CONDITIONS = [
    'a : "*abc*"',
    'a == "abc"',
    'b in ("xyz", "Qrs")',
    'b in~ ("xyz", "qrs")',
    'a like~ "ab?d*"',
    'stringContains~(a, "bcd")',
    'startsWith(b, "xy")',
    'a : ("abc", "*xyz")',
    'a != "abc"',
]
_PIECES = st.sampled_from(["abc", "ABC", "xyz", "Qrs", "qrs", "bcd", "d", "1"])
_VALUES = st.lists(_PIECES | _SAFE_TEXT, min_size=1, max_size=3).map("".join)


@settings(max_examples=300)
@given(
    st.lists(st.sampled_from(_CONDITIONS), min_size=3, max_size=3),
    st.sampled_from(["({} or {}) and {}", "{} or {} or {}", "{} and not ({} or {})"]),
    st.fixed_dictionaries({"a": _VALUES | st.lists(_VALUES), "b": _VALUES}),
)
def test_literals_of_combined_conditions_are_sound(conditions, shape, event):
    query = compile_query("any where " + shape.format(*conditions))
    if query.matches(event):
        text = orjson.dumps(event).lower().decode()
        for group in query.literals():
            assert any(literal in text for literal in group), (group, text)
