"""`winlogwatch follow` as a user runs it: a real process, signals, kill -9."""

from __future__ import annotations

import ctypes
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from conftest import DATA, winlogwatch_command

from detector.store import Store

TEMPLATE = orjson.loads(
    (DATA / "cases" / "semantics.ndjson").read_bytes().split(b"\n")[0]
)

# Linux capability numbers (linux/capability.h) and prctl's PR_CAPBSET_DROP.
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24


def event(record_id: int) -> bytes:
    TEMPLATE["winlog"]["record_id"] = record_id
    return orjson.dumps(TEMPLATE) + b"\n"


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as stream:
        stream.write(data)


class Follow:
    """A running `winlogwatch follow`, its stdout collected line by line."""

    def __init__(self, *args: str, preexec_fn=None):
        self.process = subprocess.Popen(
            [*winlogwatch_command(), "follow", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=preexec_fn,
        )
        self.lines: list[bytes] = []
        self._stderr: list[bytes] = []
        self._out = threading.Thread(target=self._read_stdout, daemon=True)
        self._err = threading.Thread(target=self._read_stderr, daemon=True)
        self._out.start()
        self._err.start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> bytes:
        return b"".join(self._stderr)

    def ids(self) -> list[int]:
        """Record ids of the complete alert lines printed so far."""
        return [
            orjson.loads(line)["winlog"]["record_id"]
            for line in list(self.lines)
            if line.endswith(b"\n")
        ]

    def wait_for(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.process.poll() is None, self.finish()
            assert time.monotonic() < deadline, f"timed out; stderr: {self.stderr!r}"
            time.sleep(0.01)

    def finish(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        code = self.process.wait(10)
        self._out.join(5)
        self._err.join(5)
        return code


def test_alerts_are_printed_as_lines_complete_and_sigterm_exits_0(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(1))
    follow = Follow(str(tmp_path), "--state", str(tmp_path / "state.sqlite3"))
    try:
        follow.wait_for(lambda: follow.ids() == [1])
        append(log, event(2)[:200])
        time.sleep(0.1)
        append(log, event(2)[200:])
        follow.wait_for(lambda: follow.ids() == [1, 2], timeout=2)
    finally:
        code = follow.finish()
    assert code == 0, follow.stderr
    assert b"following 1 file(s)" in follow.stderr


def test_the_closing_summary_counts_repeats_apart_from_alerts_printed(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(1) + event(2))
    follow = Follow(str(log), "--state", str(tmp_path / "state.sqlite3"))
    try:
        follow.wait_for(lambda: follow.ids() == [1, 2])
        append(log, event(1) * 3)  # the same event again: no alert printed
        append(log, event(3))
        follow.wait_for(lambda: follow.ids() == [1, 2, 3])
    finally:
        code = follow.finish()
    assert code == 0, follow.stderr
    summary = follow.stderr.decode()
    assert "6 events, 3 alerts printed (3 more matched events already alerted on)" in (
        summary
    )


def test_follow_refuses_stdin_and_names_the_command_that_reads_it(tmp_path):
    result = subprocess.run(
        [*winlogwatch_command(), "follow", "-", "--state", str(tmp_path / "s")],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"winlogwatch scan -" in result.stderr
    assert not (tmp_path / "s").exists()


def test_kill_9_during_a_burst_then_restart_stores_every_alert_exactly_once(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "winlogbeat.ndjson"
    log.write_bytes(b"")
    state = tmp_path / "state.sqlite3"
    total = 6000

    first = Follow(str(logs), "--state", str(state))

    def burst() -> None:
        with open(log, "ab", buffering=0) as stream:
            for n in range(1, total + 1):
                stream.write(event(n))  # one write per event, as winlogbeat does

    writer = threading.Thread(target=burst)
    try:
        first.wait_for(lambda: b"following" in first.stderr)
        writer.start()
        first.wait_for(lambda: len(first.lines) >= 1000)
        first.process.kill()  # SIGKILL while lines keep coming
    finally:
        assert first.finish() == -signal.SIGKILL
        writer.join()
    second = Follow(str(logs), "--state", str(state))
    counter = sqlite3.connect(state)
    count = "SELECT count(*) FROM alerts"
    try:
        second.wait_for(lambda: counter.execute(count).fetchone()[0] == total, 30)
        time.sleep(0.2)  # anything repeated would show up by now
    finally:
        code = second.finish()
    assert code == 0, second.stderr
    counter.close()

    reader = Store(state)
    stored = {int(a.key.rsplit("|", 1)[1]): a.store_id for a in reader.load_alerts()}
    reader.close()
    assert sorted(stored) == list(range(1, total + 1))

    printed = Counter(first.ids() + second.ids())
    assert max(printed.values()) == 1, "an alert was printed twice"
    # Commit comes before print: the kill may land after an alert was stored and
    # before it reached stdout. Only the batch in flight may miss stdout that way.
    missing = [stored[n] for n in stored if n not in printed]
    last_printed_before_kill = max(stored[n] for n in first.ids())
    first_printed_after = min(stored[n] for n in second.ids())
    assert all(last_printed_before_kill < i < first_printed_after for i in missing)


def _drop_file_permission_override() -> None:
    """In the child: lose root's power to read files whatever their mode."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _can_drop_capabilities() -> bool:
    try:
        subprocess.run(["true"], preexec_fn=_drop_file_permission_override, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


@pytest.mark.skipif(
    os.geteuid() == 0 and not _can_drop_capabilities(),
    reason="running as root without CAP_SETPCAP: a mode 000 file stays readable",
)
def test_an_unreadable_file_is_reported_by_path_and_the_others_go_on(tmp_path):
    locked = tmp_path / "a.ndjson"
    locked.write_bytes(event(1))
    locked.chmod(0)
    open_file = tmp_path / "b.ndjson"
    open_file.write_bytes(event(2))
    # As root, the follower runs without the capabilities that bypass file modes,
    # so the kernel refuses it the file as it would refuse any other user.
    drop = _drop_file_permission_override if os.geteuid() == 0 else None

    follow = Follow(
        str(tmp_path), "--state", str(tmp_path / "state.sqlite3"), preexec_fn=drop
    )
    try:
        follow.wait_for(lambda: follow.ids() == [2])
        append(open_file, event(3))
        follow.wait_for(lambda: follow.ids() == [2, 3])
    finally:
        code = follow.finish()
    assert code == 0
    assert f"cannot read {locked}: Permission denied".encode() in follow.stderr


def test_a_state_file_that_cannot_be_opened_is_named_and_exits_2(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("somebody's notes, not a database\n" * 50)
    result = subprocess.run(
        [*winlogwatch_command(), "follow", str(tmp_path), "--state", str(notes)],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert str(notes).encode() in result.stderr
    assert result.stdout == b""
    assert not notes.with_name("notes.txt.lock").exists()  # nothing left beside it


def test_a_corrupted_state_file_is_set_aside_with_a_warning_and_following_goes_on(
    tmp_path,
):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "winlogbeat.ndjson").write_bytes(event(7))
    state = tmp_path / "state.sqlite3"
    state.write_bytes(b"SQLite format 3\x00" + b"torn by a crash\n" * 200)
    follow = Follow(str(logs), "--state", str(state))
    try:
        follow.wait_for(lambda: follow.ids() == [7])
    finally:
        code = follow.finish()
    assert code == 0, follow.stderr
    (old,) = tmp_path.glob("state.sqlite3.corrupt-*")
    assert old.read_bytes().startswith(b"SQLite format 3\x00torn by a crash")
    assert f"moved it to {old}".encode() in follow.stderr


def test_a_second_follower_on_the_same_state_refuses_and_names_the_first(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "winlogbeat.ndjson").write_bytes(event(1))
    state = str(tmp_path / "state.sqlite3")
    first = Follow(str(logs), "--state", state)
    try:
        first.wait_for(lambda: first.ids() == [1])
        second = subprocess.run(
            [*winlogwatch_command(), "follow", str(logs), "--state", state],
            capture_output=True,
            timeout=30,
        )
        assert second.returncode == 2
        assert f"pid {first.process.pid}".encode() in second.stderr
        assert second.stdout == b""
    finally:
        assert first.finish() == 0

    again = Follow(str(logs), "--state", state)  # the lock went with the first
    try:
        again.wait_for(lambda: b"following 1 file(s)" in again.stderr)
    finally:
        assert again.finish() == 0
    assert again.ids() == []  # and the alert was not printed twice
