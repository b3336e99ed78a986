"""The committed sample logs: reproducible, well formed, and their answer keys right.

These tests check the DATA in sample_logs/, not the detector. The rule is restated
below in a few lines of plain Python, independent of detector/, only to prove that
each .expect.tsv marks exactly the lines the rule matches; the real detector is
tested against these files elsewhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
STEMS = ("ws-042.winlogbeat7", "ws-042.winlogbeat8")
OUTPUTS = sorted(f"{stem}{ext}" for stem in STEMS for ext in (".ndjson", ".expect.tsv"))
COLUMNS = ("line", "offset", "alert", "case", "what")


def expect_rows(stem: str) -> list[dict[str, str]]:
    text = (SAMPLES / f"{stem}.expect.tsv").read_text(encoding="utf-8")
    header, *rows = text.split("\n")[:-1]
    assert header == "\t".join(COLUMNS)
    return [dict(zip(COLUMNS, row.split("\t"), strict=True)) for row in rows]


def ndjson_lines(stem: str) -> list[tuple[int, bytes]]:
    """Each line with the byte offset it starts at, newline included."""
    data = (SAMPLES / f"{stem}.ndjson").read_bytes()
    lines, offset = [], 0
    for line in data.splitlines(keepends=True):
        lines.append((offset, line))
        offset += len(line)
    return lines


def events(stem: str) -> list[dict]:
    return [json.loads(line) for _, line in ndjson_lines(stem)]


def run_generator(script_dir: Path, *args: str, cwd: Path) -> None:
    command = [sys.executable, str(script_dir / "generate.py"), *args]
    subprocess.run(command, check=True, cwd=cwd, capture_output=True)


# --- Reproducible --------------------------------------------------------------------


def test_regenerating_into_a_directory_gives_byte_identical_files(tmp_path):
    run_generator(SAMPLES, str(tmp_path), cwd=tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == OUTPUTS
    for name in OUTPUTS:
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name


def test_generator_writes_beside_itself_by_default(tmp_path):
    copy = tmp_path / "sample_logs"
    copy.mkdir()
    for script in SAMPLES.glob("*.py"):
        shutil.copy(script, copy)

    run_generator(copy, cwd=tmp_path)

    for name in OUTPUTS:
        assert (copy / name).read_bytes() == (SAMPLES / name).read_bytes(), name


# --- Well formed ---------------------------------------------------------------------


@pytest.mark.parametrize("stem", STEMS)
def test_every_line_is_one_compact_json_object(stem):
    for offset, line in ndjson_lines(stem):
        assert line.endswith(b"\n") and not line.endswith(b"\r\n"), offset
        event = json.loads(line)
        assert isinstance(event, dict), offset
        compact = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        assert line == compact.encode("utf-8") + b"\n", offset


@pytest.mark.parametrize("stem", STEMS)
def test_expect_rows_match_lines_and_byte_offsets(stem):
    lines, rows = ndjson_lines(stem), expect_rows(stem)

    assert len(rows) == len(lines)
    for number, ((offset, _), row) in enumerate(zip(lines, rows, strict=True), 1):
        assert row["line"] == str(number)
        assert row["offset"] == str(offset)
        assert row["alert"] in ("yes", "no")
        assert row["case"] and row["what"]


@pytest.mark.parametrize("stem", STEMS)
def test_records_are_numbered_and_timed_in_order(stem):
    records = [event["winlog"]["record_id"] for event in events(stem)]
    stamps = [event["@timestamp"] for event in events(stem)]

    assert records == list(range(records[0], records[0] + len(records)))
    assert stamps == sorted(stamps)


def test_winlogbeat7_file_has_the_ecs_shape():
    for event in events("ws-042.winlogbeat7"):
        assert event["agent"]["version"].startswith("7.17.")
        assert event["event"]["module"] == "sysmon"
        assert event["event"]["category"] and event["process"]["name"]
        assert isinstance(event["event"]["code"], str)
        if event["event"]["code"] == "10":
            assert "SourceImage" not in event["winlog"]["event_data"]


def test_winlogbeat8_file_has_the_raw_shape():
    for event in events("ws-042.winlogbeat8"):
        assert event["agent"]["version"].startswith("8.")
        assert "process" not in event
        assert "category" not in event["event"] and "module" not in event["event"]
        assert isinstance(event["event"]["code"], str)
        if event["event"]["code"] == "10":
            assert event["winlog"]["event_data"]["SourceImage"]


# --- The answer key ------------------------------------------------------------------


def rule_matches(event: dict) -> bool:
    """Elastic's "Potential Credential Access via DuplicateHandle in LSASS", by hand.

        process where event.code == "10" and process.name : "lsass.exe" and
          winlog.event_data.GrantedAccess == "0x40" and
          winlog.event_data.CallTrace : "*UNKNOWN*"

    `==` compares exactly; `:` ignores case and takes `*` wildcards; `process where`
    needs "process" among event.category. A check of the sample data only.
    """
    meta = event.get("event", {})
    data = event.get("winlog", {}).get("event_data", {})
    name = event.get("process", {}).get("name", "")
    return (
        "process" in meta.get("category", [])
        and meta.get("code") == "10"
        and name.casefold() == "lsass.exe"
        and data.get("GrantedAccess") == "0x40"
        and "unknown" in data.get("CallTrace", "").casefold()
    )


def as_ingested(event: dict) -> dict:
    """An 8.x raw Sysmon event with the two fields Elastic's pipeline would add.

    event.category comes from the Sysmon event id (10 is a process access) and
    process.name is the base name of winlog.event_data.SourceImage.
    """
    data = event["winlog"].get("event_data", {})
    meta = dict(event["event"])
    if meta.get("code") == "10":
        meta["category"] = ["process"]
    name = data.get("SourceImage", "").rsplit("\\", 1)[-1]
    return {**event, "event": meta, "process": {"name": name}}


@pytest.mark.parametrize(
    ("stem", "view", "hits"),
    [
        ("ws-042.winlogbeat7", lambda event: event, 4),
        ("ws-042.winlogbeat8", as_ingested, 2),
    ],
)
def test_rule_matches_exactly_the_yes_rows(stem, view, hits):
    matched = [
        n for n, event in enumerate(events(stem), 1) if rule_matches(view(event))
    ]
    expected = [int(row["line"]) for row in expect_rows(stem) if row["alert"] == "yes"]

    assert matched == expected
    assert len(expected) == hits


def test_first_hit_comes_early_enough_for_a_live_demo():
    rows = expect_rows("ws-042.winlogbeat7")
    first = next(int(row["line"]) for row in rows if row["alert"] == "yes")

    assert first <= 40


@pytest.mark.parametrize("stem", STEMS)
def test_every_near_miss_is_planted_and_marked_no(stem):
    rows = expect_rows(stem)
    near = ("near-target", "near-0x1040", "near-clean-trace", "near-upper-0X40")

    for case in (*near, "lsass-samsrv", "lsass-target", "lsass-other-access"):
        assert {row["alert"] for row in rows if row["case"] == case} == {"no"}, case


def test_readme_tables_point_at_the_planted_lines():
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    # Rows of the hits table (line, record id, what) and the near-miss table.
    pattern = r"^\| ([78])\.x \| (\d+) \| (\d+ \| hit.+|`near-.+)$"
    table_rows = re.findall(pattern, readme, re.MULTILINE)

    assert len(table_rows) == 6 + 9
    for version, line, rest in table_rows:
        stem = f"ws-042.winlogbeat{version}"
        row = expect_rows(stem)[int(line) - 1]
        assert row["case"] != "-" and row["case"] in rest, (stem, line)
        record_id = rest.split(" |", 1)[0]
        if record_id.isdigit():
            event = events(stem)[int(line) - 1]
            assert event["winlog"]["record_id"] == int(record_id), (stem, line)
