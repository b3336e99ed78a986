"""Resource limits: more files than descriptors, a line of many megabytes, a rule's
regex against a hostile value.

Every test runs the real `winlogwatch` in a subprocess on real files, with the
open-files limit lowered where the point is running out of descriptors, and reads
peak memory from the kernel (`wait4`) where the point is memory.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from conftest import DATA, winlogwatch_command
from test_follow_cli import _can_drop_capabilities, _drop_file_permission_override

from detector.follow import held_files_limit
from detector.rules import load_rules

TEMPLATE = orjson.loads(
    (DATA / "cases" / "semantics.ndjson").read_bytes().split(b"\n")[0]
)


def event(record_id: int, alerting: bool = True, user: str = "CORP\\jdoe") -> bytes:
    """One winlogbeat line; alerting means the bundled LSASS rule fires on it."""
    document = orjson.loads(orjson.dumps(TEMPLATE))
    document["winlog"]["record_id"] = record_id
    document["winlog"]["event_data"]["TargetUser"] = user
    if not alerting:
        document["winlog"]["event_data"]["GrantedAccess"] = "0x1010"
    return orjson.dumps(document) + b"\n"


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as stream:
        stream.write(data)


def open_files_limit(limit: int) -> Callable[[], None]:
    """A preexec_fn: the child may hold at most `limit` descriptors."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


class Run:
    """A running `winlogwatch`, its output collected, its peak memory kept on exit."""

    def __init__(self, *args: str, preexec_fn=None):
        self.process = subprocess.Popen(
            [*winlogwatch_command(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=preexec_fn,
        )
        self.lines: list[bytes] = []
        self._stderr: list[bytes] = []
        self.peak_rss_kib = 0
        self.most_fds = 0
        self._readers = [
            threading.Thread(target=self.lines.extend, args=(self.process.stdout,)),
            threading.Thread(target=self._stderr.extend, args=(self.process.stderr,)),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def stderr(self) -> bytes:
        return b"".join(self._stderr)

    def ids(self) -> list[int]:
        return [orjson.loads(line)["winlog"]["record_id"] for line in list(self.lines)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.process.poll() is None, self.stderr[-3000:]
            assert time.monotonic() < deadline, f"timed out: {self.stderr[-3000:]!r}"
            try:
                self.most_fds = max(
                    self.most_fds, len(os.listdir(f"/proc/{self.process.pid}/fd"))
                )
            except OSError:
                pass  # no /proc, or just exited
            time.sleep(0.02)

    def finish(self, timeout: float = 20, signum: int | None = signal.SIGTERM) -> int:
        """Stop it (unless it ends by itself) and reap it with its resource usage."""
        if signum is not None:
            self.process.send_signal(signum)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"did not finish in {timeout} s; stderr: {self.stderr!r}")
            time.sleep(0.02)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.peak_rss_kib = usage.ru_maxrss  # KiB on Linux
        for reader in self._readers:
            reader.join(5)
        return self.process.returncode


# --- a directory of more files than descriptors --------------------------------

FILES = 2000
NOFILE = 128  # the follower holds at most half of it: 64 files


def many_files(folder: Path) -> list[int]:
    """FILES small files, every tenth with an alerting line; the alerting ids."""
    folder.mkdir()
    ids = []
    for n in range(FILES):
        data = event(1_000_000 + n, alerting=False)
        if n % 10 == 0:
            data += event(n)
            ids.append(n)
        (folder / f"f{n:05d}.ndjson").write_bytes(data)
    return ids


def test_following_more_files_than_descriptors_finds_every_alert_and_later_lines(
    tmp_path,
):
    logs = tmp_path / "logs"
    expected = many_files(logs)
    follow = Run(
        "follow",
        str(logs),
        "--state",
        str(tmp_path / "state.sqlite3"),
        preexec_fn=open_files_limit(NOFILE),
    )
    try:
        follow.wait_for(lambda: len(follow.lines) >= len(expected))

        # The oldest files were parked long ago: written to, renamed, replaced.
        append(logs / "f00000.ndjson", event(90_001))
        append(logs / "f00999.ndjson", event(90_002))
        os.rename(logs / "f00005.ndjson", logs / "f00005.ndjson.1")
        append(logs / "f00005.ndjson.1", event(90_003))
        os.unlink(logs / "f00007.ndjson")
        (logs / "f00007.ndjson").write_bytes(event(90_004))
        follow.wait_for(lambda: len(follow.lines) >= len(expected) + 4)
        time.sleep(0.3)  # an alert printed twice would show by now
    finally:
        code = follow.finish()

    assert code == 0, follow.stderr
    assert sorted(follow.ids()) == expected + [90_001, 90_002, 90_003, 90_004]
    assert b"cannot" not in follow.stderr, follow.stderr[-2000:]
    assert f"following {FILES} file(s)".encode() in follow.stderr
    # Held: NOFILE // 2 files, plus stdio, the state file, its lock and the watch.
    assert follow.most_fds <= NOFILE // 2 + 20


def test_scan_of_more_files_than_descriptors_finds_every_alert(tmp_path):
    expected = many_files(tmp_path / "logs")
    scan = Run("scan", str(tmp_path / "logs"), preexec_fn=open_files_limit(32))
    assert scan.finish(signum=None) == 0, scan.stderr
    assert sorted(scan.ids()) == expected
    assert f"scanned {FILES} file(s)".encode() in scan.stderr


def test_held_files_follow_the_open_files_limit():
    # Run in a child so the limit lowered is not this test process's own.
    script = (
        "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (50, 50)); "
        "from detector.follow import held_files_limit; print(held_files_limit())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        check=True,
    )
    assert int(result.stdout) == 25
    assert 1 <= held_files_limit() <= 200


@pytest.mark.skipif(
    os.geteuid() == 0 and not _can_drop_capabilities(),
    reason="running as root without CAP_SETPCAP: a mode 300 folder stays listable",
)
def test_a_folder_that_cannot_be_listed_for_a_while_keeps_its_files_followed(
    tmp_path,
):
    # Was: every file let go ("no longer followed") when the listing failed, then
    # opened again as new and read from its start once listing worked again.
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "winlogbeat.ndjson"
    log.write_bytes(event(1))
    drop = _drop_file_permission_override if os.geteuid() == 0 else None
    follow = Run(
        "follow", str(logs), "--state", str(tmp_path / "s.sqlite3"), preexec_fn=drop
    )
    try:
        follow.wait_for(lambda: follow.ids() == [1])
        logs.chmod(0o300)  # its files can be opened by name, not listed
        follow.wait_for(lambda: b"cannot list" in follow.stderr)
        append(log, event(2))
        follow.wait_for(lambda: follow.ids() == [1, 2])
        logs.chmod(0o700)
        time.sleep(1.5)  # a periodic check with listing back
        append(log, event(3))
        follow.wait_for(lambda: follow.ids() == [1, 2, 3])
    finally:
        logs.chmod(0o700)
        code = follow.finish()
    assert code == 0, follow.stderr
    assert b"no longer followed" not in follow.stderr
    assert b"(new file)" not in follow.stderr


@pytest.mark.skipif(
    os.geteuid() == 0 and not _can_drop_capabilities(),
    reason="running as root without CAP_SETPCAP: a mode 000 file stays readable",
)
def test_a_parked_file_that_cannot_be_opened_again_resumes_where_it_stopped(
    tmp_path,
):
    # Was: read again from its start once it could be opened, its bad lines
    # reported a second time.
    logs = tmp_path / "logs"
    logs.mkdir()
    first = logs / "f00000.ndjson"
    first.write_bytes(b"not an event\n" + event(1))
    for n in range(1, 100):
        (logs / f"f{n:05d}.ndjson").write_bytes(event(100 + n, alerting=False))
    drop = _drop_file_permission_override if os.geteuid() == 0 else None

    def limited() -> None:
        open_files_limit(40)()  # 20 files held: the first one is parked
        if drop:
            drop()

    follow = Run(
        "follow", str(logs), "--state", str(tmp_path / "s.sqlite3"), preexec_fn=limited
    )
    try:
        follow.wait_for(lambda: follow.ids() == [1])
        first.chmod(0)
        append(first, event(2))
        follow.wait_for(lambda: b"Permission denied" in follow.stderr)
        first.chmod(0o644)
        follow.wait_for(lambda: follow.ids() == [1, 2])
    finally:
        first.chmod(0o644)
        code = follow.finish()
    assert code == 0, follow.stderr
    assert follow.stderr.count(f"{first}:1: ".encode()) == 1, follow.stderr


# --- one line far past the 8 MiB cap --------------------------------------------

HUGE_LINE_MIB = 64


def file_with_a_huge_line(path: Path) -> None:
    """An alerting line, then events run together with no newline for 64 MiB (one
    line, written a block at a time), then a newline and another alerting line."""
    block = event(5, alerting=False).rstrip(b"\n") * 600  # about 1 MiB
    with open(path, "wb") as stream:
        stream.write(event(1))
        written = 0
        while written < HUGE_LINE_MIB << 20:
            stream.write(block)
            written += len(block)
        stream.write(b"\n" + event(3))


def baseline_rss_kib(tmp_path: Path) -> int:
    small = tmp_path / "small.ndjson"
    small.write_bytes(event(1))
    run = Run("scan", str(small))
    assert run.finish(signum=None) == 0
    return run.peak_rss_kib


def test_scan_skips_a_huge_line_in_bounded_memory_and_reads_on(tmp_path):
    path = tmp_path / "huge.ndjson"
    file_with_a_huge_line(path)
    scan = Run("scan", str(path))
    assert scan.finish(signum=None) == 0, scan.stderr
    assert scan.ids() == [1, 3]
    assert f"{path}:2: line longer than the 8 MiB cap".encode() in scan.stderr
    # Holding the line would add its 64 MiB at least.
    assert scan.peak_rss_kib < baseline_rss_kib(tmp_path) + 24 * 1024


def test_follow_skips_a_huge_line_in_bounded_memory_and_reads_on(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    path = logs / "huge.ndjson"
    path.write_bytes(b"")
    follow = Run("follow", str(logs), "--state", str(tmp_path / "state.sqlite3"))
    try:
        follow.wait_for(lambda: b"following 1 file(s)" in follow.stderr)
        file_with_a_huge_line(path)  # written while it is followed
        follow.wait_for(lambda: follow.ids() == [1, 3])
    finally:
        code = follow.finish()
    assert code == 0, follow.stderr
    assert f"{path}:2: line longer than the 8 MiB cap".encode() in follow.stderr
    assert follow.peak_rss_kib < baseline_rss_kib(tmp_path) + 24 * 1024


# --- a rule's regex against an attacker's value ---------------------------------

REGEX_RULE = """
[rule]
name = "Nested quantifier"
rule_id = "22222222-3333-4444-5555-666666666666"
description = "A regex that backtracks exponentially in a backtracking engine."
severity = "low"
risk_score = 21
language = "eql"
type = "eql"
query = '''
any where winlog.event_data.TargetUser regex "(a+)+b"
'''
"""


def test_a_nested_quantifier_regex_meets_a_hostile_value_in_linear_time(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "nested.toml").write_text(REGEX_RULE)
    loaded, errors = load_rules([str(rules)])
    assert errors == [] and "Nested quantifier" in [r.name for r in loaded]

    log = tmp_path / "hostile.ndjson"
    # A backtracking engine tries 2**10000 ways to split the a's before failing.
    log.write_bytes(
        event(1, alerting=False, user="a" * 10_000 + "c")
        + event(2, alerting=False, user="aaaab")
    )
    started = time.monotonic()
    result = subprocess.run(
        [*winlogwatch_command(), "scan", "--rules", str(rules), str(log)],
        capture_output=True,
        timeout=20,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    names = [
        orjson.loads(line)["kibana"]["alert"]["rule"]["name"]
        for line in result.stdout.splitlines()
    ]
    assert names == ["Nested quantifier"]  # the aaaab event only
    assert elapsed < 10


def test_a_regex_rule_with_a_backreference_is_refused_at_its_place(tmp_path):
    text = REGEX_RULE.replace('"(a+)+b"', '"(a)\\\\1"')
    (tmp_path / "backref.toml").write_text(text)
    loaded, errors = load_rules([str(tmp_path)])
    assert [r.name for r in loaded] == [
        "Potential Credential Access via DuplicateHandle in LSASS"
    ]
    (error,) = errors
    assert error.path.endswith("backref.toml")
    query_line = text.splitlines()[error.line - 1]
    assert query_line[error.column - 1 :].startswith('"(a)\\\\1"')  # the pattern
    assert "backreferences and lookaround are not supported" in error.message

    result = subprocess.run(
        [*winlogwatch_command(), "scan", "--rules", str(tmp_path), str(DATA / "cases")],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert f"rule skipped: {error}".encode() in result.stderr
    assert result.stdout  # the bundled rule still ran
