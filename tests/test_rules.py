"""Rules are data: the bundled seed rule, user rule folders, rules that fail to load."""

from __future__ import annotations

from conftest import DATA, run_winlogwatch

from detector.rules import load_rules

SEED_ID = "02a4576a-7480-4284-9327-548a806b5e48"


def test_seed_rule_carries_every_field_of_its_published_text():
    rules, errors = load_rules()
    assert errors == []
    (rule,) = rules
    assert rule.rule_id == SEED_ID
    assert rule.name == "Potential Credential Access via DuplicateHandle in LSASS"
    assert rule.description.startswith(
        "Identifies suspicious access to a Local Security"
    )
    assert (rule.severity, rule.risk_score, rule.version) == ("medium", 47, 3)
    assert rule.index == ["winlogbeat-*", "logs-windows.*"]
    assert (rule.interval, rule.lookback, rule.max_signals) == ("5m", "now-9m", 100)
    assert rule.references == ["https://github.com/CCob/MirrorDump"]
    assert rule.tags == [
        "Elastic",
        "Host",
        "Windows",
        "Threat Detection",
        "Credential Access",
    ]
    assert rule.author == ["Elastic"] and rule.license == "Elastic License v2"
    assert rule.note.startswith("## Config") and "event.ingested" in rule.setup
    assert rule.query.category == "process"
    threat = rule.threat[0]
    assert threat["tactic"] == {
        "id": "TA0006",
        "name": "Credential Access",
        "reference": "https://attack.mitre.org/tactics/TA0006/",
    }
    assert threat["technique"][0]["id"] == "T1003"
    assert threat["technique"][0]["subtechnique"][0]["name"] == "LSASS Memory"


MY_ID = "11111111-2222-3333-4444-555555555555"
MY_RULE = """
[rule]
name = "Any access to lsass"
rule_id = "11111111-2222-3333-4444-555555555555"
description = "Test rule."
severity = "high"
risk_score = 73
language = "eql"
type = "eql"
query = '''
process where winlog.event_data.TargetImage : "*\\\\lsass.exe"
'''
"""


def test_a_second_rule_loads_from_a_user_directory(tmp_path):
    (tmp_path / "mine.toml").write_text(MY_RULE)
    rules, errors = load_rules([str(tmp_path)])
    assert errors == []
    assert [r.rule_id for r in rules] == [
        SEED_ID,
        "11111111-2222-3333-4444-555555555555",
    ]


def test_user_rule_fires_in_scan(tmp_path):
    (tmp_path / "mine.toml").write_text(MY_RULE)
    result = run_winlogwatch(
        "scan", "--rules", str(tmp_path), str(DATA / "cases" / "semantics.ndjson")
    )
    assert result.returncode == 0, result.stderr
    names = [
        line for line in result.stdout.splitlines() if b"Any access to lsass" in line
    ]
    assert len(names) == 1  # only case h08 has lsass as its target


def test_bad_toml_is_reported_with_line_and_column_and_skipped(tmp_path):
    (tmp_path / "broken.toml").write_text('[rule]\nname = "x\n')
    (tmp_path / "good.toml").write_text(MY_RULE)
    rules, errors = load_rules([str(tmp_path)])
    assert len(rules) == 2
    (error,) = errors
    assert error.path.endswith("broken.toml") and error.line == 2
    assert "not valid TOML" in error.message


def test_bad_query_is_reported_at_its_place_in_the_file(tmp_path):
    bad = MY_RULE.replace(
        'process where winlog.event_data.TargetImage : "*\\\\lsass.exe"',
        'process where\n  process.name ~= "x"',
    )
    (tmp_path / "bad.toml").write_text(bad)
    rules, errors = load_rules([str(tmp_path)])
    assert [r.rule_id for r in rules] == [SEED_ID]
    (error,) = errors
    query_line = bad.splitlines().index("query = '''") + 1
    assert error.line == query_line + 2
    assert error.column >= 3
    assert "bad query" in error.message


def test_unknown_function_is_a_load_error_not_a_silent_false(tmp_path):
    bad = MY_RULE.replace(
        'winlog.event_data.TargetImage : "*\\\\lsass.exe"',
        'cidrMatch(source.ip, "10.0.0.0/8")',
    )
    (tmp_path / "fn.toml").write_text(bad)
    _, errors = load_rules([str(tmp_path)])
    assert len(errors) == 1 and "cidrMatch" in errors[0].message


def test_missing_fields_and_other_languages_are_refused(tmp_path):
    (tmp_path / "kql.toml").write_text(
        MY_RULE.replace('language = "eql"', 'language = "kuery"')
    )
    (tmp_path / "nosev.toml").write_text(MY_RULE.replace('severity = "high"\n', ""))
    _, errors = load_rules([str(tmp_path)])
    messages = sorted(e.message for e in errors)
    assert any("kuery" in m for m in messages)
    assert any("no severity" in m for m in messages)


def test_scan_reports_a_skipped_rule_and_still_runs_the_others(tmp_path):
    (tmp_path / "broken.toml").write_text('[rule]\nname = "x\n')
    result = run_winlogwatch(
        "scan", "--rules", str(tmp_path), str(DATA / "cases" / "semantics.ndjson")
    )
    assert result.returncode == 0
    assert b"rule skipped" in result.stderr and b"broken.toml:2:" in result.stderr
    assert len(result.stdout.splitlines()) == 6
