"""`winlogwatch scan`: the handed cases, real public data, bad input, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from conftest import DATA, REPO, SHARED, run_winlogwatch, winlogwatch_command

CASES = DATA / "cases"


def alerts_of(result) -> list[dict]:
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def expected_offsets(tsv) -> set[int]:
    rows = [row.split("\t") for row in tsv.read_text().splitlines()[1:]]
    return {int(row[1]) for row in rows if row[2] == "yes"}


def test_handed_cases_get_exactly_their_verdicts():
    result = run_winlogwatch("scan", str(CASES / "semantics.ndjson"))
    assert result.returncode == 0, result.stderr
    got = {alert["log"]["offset"] for alert in alerts_of(result)}
    assert got == expected_offsets(CASES / "semantics.expect.tsv")


@pytest.mark.skipif(
    not (SHARED / "tools").is_dir(), reason="no ../shared beside the repo"
)
def test_shared_check_cases_tool_agrees():
    """The team's own checker, on the team's current case files."""
    tool = SHARED / "tools" / "check_cases.py"
    for expect in sorted((SHARED / "cases").glob("*.expect.tsv")):
        cases = expect.with_name(expect.name.replace(".expect.tsv", ".ndjson"))
        result = subprocess.run(
            [
                sys.executable,
                str(tool),
                winlogwatch_command()[0],
                str(cases),
                str(expect),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_real_public_events_scan_without_alerts_or_bad_lines():
    result = run_winlogwatch("scan", str(DATA / "realdata"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    summary = result.stderr.decode()
    assert "0 alerts" in summary and "0 unusable lines" in summary
    assert "6 file(s)" not in summary  # the folder has 5 .ndjson files
    assert "5 file(s)" in summary


def test_alert_document_says_what_fired_and_where_from():
    result = run_winlogwatch("scan", str(CASES / "semantics.ndjson"))
    alert = alerts_of(result)[0]
    rule = alert["kibana"]["alert"]["rule"]
    assert rule["name"] == "Potential Credential Access via DuplicateHandle in LSASS"
    assert rule["rule_id"] == "02a4576a-7480-4284-9327-548a806b5e48"
    assert rule["severity"] == "medium" and rule["risk_score"] == 47
    assert alert["kibana"]["alert"]["severity"] == "medium"
    assert "lsass.exe" in alert["kibana"]["alert"]["reason"]
    assert alert["kibana"]["alert"]["reason"].endswith(".")
    assert alert["threat"][0]["tactic"]["id"] == "TA0006"
    assert alert["threat"][0]["technique"][0]["subtechnique"][0]["id"] == "T1003.001"
    assert alert["log"]["file"]["path"].endswith("semantics.ndjson")
    assert alert["log"]["offset"] == 0
    assert alert["winlog"]["event_data"]["GrantedAccess"] == "0x40"


def test_bad_line_is_reported_with_file_and_line_and_the_scan_goes_on():
    result = run_winlogwatch("scan", str(CASES / "semantics.ndjson"))
    stderr = result.stderr.decode()
    assert "semantics.ndjson:11: not JSON" in stderr
    assert "1 unusable lines" in stderr
    assert any(a["log"]["offset"] == 14996 for a in alerts_of(result))


def test_stdin_is_scanned_with_dash():
    data = (CASES / "semantics.ndjson").read_bytes()
    result = run_winlogwatch("scan", "-", stdin=data)
    assert result.returncode == 0
    assert len(alerts_of(result)) == 6
    assert all(a["log"]["file"]["path"] == "-" for a in alerts_of(result))


def test_globs_and_directories_expand(tmp_path):
    hit = (CASES / "semantics.ndjson").read_bytes().splitlines(keepends=True)[0]
    (tmp_path / "a.ndjson").write_bytes(hit)
    (tmp_path / "a.ndjson.1").write_bytes(hit)
    (tmp_path / "notes.txt").write_bytes(hit)
    by_dir = run_winlogwatch("scan", str(tmp_path))
    by_glob = run_winlogwatch("scan", str(tmp_path / "*.ndjson"))
    assert len(alerts_of(by_dir)) == 2
    assert len(alerts_of(by_glob)) == 1


def test_final_line_without_newline_and_crlf_and_bom_are_normal(tmp_path):
    lines = (CASES / "semantics.ndjson").read_bytes().splitlines()
    path = tmp_path / "odd.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + lines[0] + b"\r\n\r\n" + lines[1])
    result = run_winlogwatch("scan", str(path))
    offsets = [a["log"]["offset"] for a in alerts_of(result)]
    assert offsets == [0, len(lines[0]) + 7]
    assert "0 unusable lines" in result.stderr.decode()


def test_non_utf8_line_is_repaired_and_still_evaluated(tmp_path):
    line = (CASES / "semantics.ndjson").read_bytes().splitlines()[0]
    line = line.replace(b"CORP\\\\jdoe", b"CORP\\\\j\xe9r\xf4me")
    path = tmp_path / "latin1.ndjson"
    path.write_bytes(line + b"\n")
    result = run_winlogwatch("scan", str(path))
    assert len(alerts_of(result)) == 1
    assert "1 repaired" in result.stderr.decode()


def test_each_kind_of_bad_line_is_counted_and_named(tmp_path):
    hit = (CASES / "semantics.ndjson").read_bytes().splitlines()[0]
    deep = b'{"a":' * 80 + b"1" + b"}" * 80
    path = tmp_path / "bad.ndjson"
    path.write_bytes(b"\n".join([b"not json", b"[1,2]", deep, hit]) + b"\n")
    result = run_winlogwatch("scan", "--every-line", str(path))
    stderr = result.stderr.decode()
    assert f"{path}:1: not JSON" in stderr
    assert f"{path}:2: JSON list, not an object" in stderr
    assert f"{path}:3: JSON nested deeper than" in stderr
    assert "3 unusable lines" in stderr
    assert len(alerts_of(result)) == 1

    # Without --every-line the prefilter parses a line only if a rule could match
    # it or its outline is not one object's: the deep line, `{...}` and without
    # the rule's strings, is let go unparsed (detector/prefilter.py).
    result = run_winlogwatch("scan", str(path))
    stderr = result.stderr.decode()
    assert f"{path}:1: not JSON" in stderr
    assert f"{path}:2: JSON list, not an object" in stderr
    assert f"{path}:3:" not in stderr
    assert "2 unusable lines" in stderr
    assert "1 lines not parsed" in stderr
    assert len(alerts_of(result)) == 1


def test_exit_codes():
    cases = str(CASES / "semantics.ndjson")
    assert run_winlogwatch("scan", cases).returncode == 0
    assert run_winlogwatch("scan", "--fail-on-alert", cases).returncode == 1
    clean = str(DATA / "realdata")
    assert run_winlogwatch("scan", "--fail-on-alert", clean).returncode == 0
    missing = run_winlogwatch("scan", "/nonexistent/x.ndjson")
    assert missing.returncode == 2
    assert b"/nonexistent/x.ndjson" in missing.stderr
    assert run_winlogwatch("scan").returncode == 2


def test_a_path_that_names_nothing_says_why(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "events.log").write_bytes(b"{}\n")
    (tmp_path / "logs" / "deeper").mkdir()
    (tmp_path / "logs" / "deeper" / "winlogbeat.ndjson").write_bytes(b"{}\n")
    reasons = {
        "missing.ndjson": "no such file or folder",
        "empty": "no event files in this folder",
        "logs": "subfolders are not searched",
        "*.nothing": "no file matches this pattern",
    }
    for name, reason in reasons.items():
        result = run_winlogwatch("scan", str(tmp_path / name))
        assert result.returncode == 2
        stderr = result.stderr.decode()
        assert f"cannot read {tmp_path / name}: " in stderr
        assert reason in stderr


def test_scan_of_sample_logs_finds_exactly_the_planted_hits():
    samples = REPO / "sample_logs"
    result = run_winlogwatch("scan", str(samples))
    assert result.returncode == 0, result.stderr
    got = {
        (Path(a["log"]["file"]["path"]).name, a["log"]["offset"])
        for a in alerts_of(result)
    }
    want = {
        (expect.name.replace(".expect.tsv", ".ndjson"), offset)
        for expect in samples.glob("*.expect.tsv")
        for offset in expected_offsets(expect)
    }
    assert len(want) == 6 and got == want
