"""Following live files: real files in a temporary directory, real time, real rules.

Each test writes the way winlogbeat does (one write per event, rotations by rename
or by new names, deletion of the oldest) and waits for what the follower reports,
with a deadline rather than a fixed sleep.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from conftest import DATA

from detector.detect import Detector
from detector.follow import CHUNK_BYTES, Follower
from detector.lines import MAX_LINE_BYTES
from detector.model import Alert, BadLine, Notice
from detector.rules import load_rules
from detector.store import Checkpoint, Store

RULES = load_rules()[0]
TEMPLATE = orjson.loads(
    (DATA / "cases" / "semantics.ndjson").read_bytes().split(b"\n")[0]
)


def event(
    record_id: int | None, alerting: bool = True, pad: int = 0, when: str = ""
) -> bytes:
    """One winlogbeat line the bundled rule alerts on (or, not alerting, misses)."""
    document = orjson.loads(orjson.dumps(TEMPLATE))
    if when:
        document["@timestamp"] = when
    if record_id is None:
        del document["winlog"]["record_id"]
    else:
        document["winlog"]["record_id"] = record_id
    if not alerting:
        document["winlog"]["event_data"]["GrantedAccess"] = "0x1010"
    if pad:
        document["message"] = "x" * pad
    return orjson.dumps(document) + b"\n"


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as stream:
        stream.write(data)


def record_id(alert: Alert) -> int:
    return int(alert.key.rsplit("|", 1)[1])


class Recorder:
    """A sink that keeps everything, and lets a test wait for what it expects."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.bad: list[BadLine] = []
        self.notices: list[Notice] = []
        self._changed = threading.Condition()

    def on_alerts(self, alerts: list[Alert]) -> None:
        with self._changed:
            self.alerts.extend(alerts)
            self._changed.notify_all()

    def on_bad_lines(self, bad: list[BadLine]) -> None:
        with self._changed:
            self.bad.extend(bad)
            self._changed.notify_all()

    def on_notice(self, notice: Notice) -> None:
        with self._changed:
            self.notices.append(notice)
            self._changed.notify_all()

    def ids(self) -> Counter:
        return Counter(record_id(alert) for alert in self.alerts)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        with self._changed:
            assert self._changed.wait_for(predicate, timeout), (
                f"timed out; alerts {[a.key for a in self.alerts]}, "
                f"notices {[n.message for n in self.notices]}"
            )

    def wait_for_ids(self, *ids: int) -> None:
        self.wait_for(lambda: set(ids) <= set(self.ids()))

    def said(self, *words: str) -> bool:
        return any(all(w in n.message for w in words) for n in self.notices)


class Gate(Recorder):
    """Holds the follower inside its first delivery until the test lets it go.

    This is back-pressure on purpose: it fixes what the follower has read when the
    test changes the files, so the case under test happens every time.
    """

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.opened = threading.Event()

    def on_alerts(self, alerts: list[Alert]) -> None:
        self.entered.set()
        assert self.opened.wait(5)
        super().on_alerts(alerts)


@contextmanager
def following(
    paths: list[Path],
    sink: Recorder | None = None,
    store: Store | None = None,
    **options,
) -> Iterator[tuple[Follower, Recorder]]:
    sink = sink or Recorder()
    follower = Follower(
        [str(p) for p in paths], Detector(RULES), sink, store, **options
    )
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            follower.run(stop)
        except BaseException as error:  # handed to the test below
            failures.append(error)

    thread = threading.Thread(target=run, name="follower", daemon=True)
    thread.start()
    try:
        yield follower, sink
    finally:
        stop.set()
        if isinstance(sink, Gate):
            sink.opened.set()
        thread.join(2)
        assert not thread.is_alive(), "the follower did not stop within 2 s"
    if failures:
        raise failures[0]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_existing_lines_then_appended_lines_alert_once_each(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(1) + event(2, alerting=False) + event(3))
    with following([log]) as (_, sink):
        sink.wait_for_ids(1, 3)
        append(log, event(4))
        append(log, event(5, alerting=False) + event(6))
        sink.wait_for_ids(4, 6)
    assert sink.ids() == Counter({1: 1, 3: 1, 4: 1, 6: 1})
    assert sink.bad == []


def test_a_line_split_over_two_writes_is_checked_once_whole(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(b"")
    line = event(7).replace(b"\n", b"\r\n")
    with following([log]) as (follower, sink):
        append(log, line[:100])
        # The follower has read the first part, and holds it: nothing to report yet.
        wait_until(
            lambda: any(f.splitter.pending == 100 for f in follower.files.values())
        )
        time.sleep(0.05)
        assert sink.alerts == [] and sink.bad == []
        append(log, line[100:])
        sink.wait_for_ids(7)
    assert sink.ids() == Counter({7: 1})
    assert (sink.alerts[0].offset, sink.alerts[0].line_number) == (0, 1)
    assert sink.bad == []


def test_rename_rotation_reads_the_old_file_to_its_end_and_the_new_from_its_start(
    tmp_path,
):
    """winlogbeat 7.x: `winlogbeat.ndjson` is renamed to `winlogbeat.ndjson.1`."""
    active = tmp_path / "winlogbeat.ndjson"
    active.write_bytes(event(1))
    gate = Gate()
    with following([tmp_path], gate) as (follower, sink):
        assert gate.entered.wait(5)
        append(active, event(2))  # written just before the rotation, not yet read
        active.rename(tmp_path / "winlogbeat.ndjson.1")
        active.write_bytes(event(3))
        gate.opened.set()
        sink.wait_for_ids(1, 2, 3)
        append(active, event(4))
        sink.wait_for_ids(4)
        wait_until(lambda: len(follower.followed()) == 2)
        assert sorted(follower.followed()) == [str(active), str(active) + ".1"]
    assert sink.ids() == Counter({1: 1, 2: 1, 3: 1, 4: 1})
    assert sink.said("winlogbeat.ndjson -> ", "winlogbeat.ndjson.1")
    assert not sink.said("truncated") and not sink.said("rewritten")


def test_dated_rotation_follows_each_new_name_and_lets_the_oldest_go(tmp_path):
    """winlogbeat 8.x: `winlogbeat-YYYYMMDD.ndjson`, then `-1`, `-2`; oldest deleted."""
    first = tmp_path / "winlogbeat-20261130.ndjson"
    second = tmp_path / "winlogbeat-20261130-1.ndjson"
    third = tmp_path / "winlogbeat-20261130-2.ndjson"
    first.write_bytes(event(1))
    gate = Gate()
    with following([tmp_path], gate) as (follower, sink):
        assert gate.entered.wait(5)
        append(first, event(2))
        second.write_bytes(event(3))
        gate.opened.set()
        sink.wait_for_ids(1, 2, 3)
        append(second, event(4))
        third.write_bytes(event(5))
        first.unlink()
        sink.wait_for_ids(4, 5)
        wait_until(lambda: str(first) not in follower.followed())
        assert sorted(follower.followed()) == [str(second), str(third)]
    assert sink.ids() == Counter({1: 1, 2: 1, 3: 1, 4: 1, 5: 1})
    assert sink.said(str(first), "deleted")


def test_new_files_and_paths_that_do_not_exist_yet_are_waited_for(tmp_path):
    later = tmp_path / "later" / "winlogbeat.ndjson"
    with following([tmp_path / "logs", later]) as (_, sink):
        sink.wait_for(lambda: sink.said(str(later), "waiting"))
        assert sink.said(str(tmp_path / "logs"), "waiting")

        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "winlogbeat.ndjson").write_bytes(event(1))
        (tmp_path / "logs" / "notes.txt").write_text("not events")
        sink.wait_for_ids(1)

        later.parent.mkdir()
        later.write_bytes(event(2))
        sink.wait_for_ids(2)
        (tmp_path / "logs" / "winlogbeat.ndjson.1").write_bytes(event(3))
        sink.wait_for_ids(3)
    assert sink.ids() == Counter({1: 1, 2: 1, 3: 1})


def test_truncation_is_reported_and_the_file_read_again_from_the_start(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(1) + event(2))
    with following([log]) as (_, sink):
        sink.wait_for_ids(1, 2)
        with open(log, "r+b") as stream:  # copytruncate: same file, emptied
            stream.truncate(0)
        append(log, event(3, pad=10))
        sink.wait_for_ids(3)
        sink.wait_for(lambda: sink.said(str(log), "truncated"))
    assert sink.ids() == Counter({1: 1, 2: 1, 3: 1})


def test_content_rewritten_past_the_offset_is_caught_by_the_fingerprint(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(None))
    with following([log]) as (_, sink):
        sink.wait_for(lambda: len(sink.alerts) == 1)
        # Emptied and refilled beyond the old size before the follower looked:
        # the size alone does not tell, the first line does.
        later = "2026-12-01T08:00:00.000Z"
        with open(log, "r+b") as stream:
            stream.write(event(None, when=later) + event(None, pad=2, when=later))
        sink.wait_for(lambda: len(sink.alerts) == 3)
        assert sink.said(str(log), "rewritten")
    # Events without a record id are keyed by file content and offset: the new
    # line at offset 0 is another event than the old one there.
    assert [a.offset for a in sink.alerts] == [0, 0, len(event(None))]


def test_a_file_deleted_while_open_is_read_to_its_end_then_released(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(1))
    store = Store(tmp_path / "state.sqlite3")
    gate = Gate()
    with following([tmp_path], gate, store) as (follower, sink):
        assert gate.entered.wait(5)
        append(log, event(2))
        log.unlink()
        gate.opened.set()
        sink.wait_for(lambda: sink.said(str(log), "deleted"))
        assert follower.followed() == [] and follower.files == {}
    assert sink.ids() == Counter({1: 1, 2: 1})
    assert store.checkpoints() == {}  # nothing left to resume
    store.close()


def test_a_restart_resumes_at_the_last_complete_line(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    half = event(2)[:300]
    log.write_bytes(event(1) + half)
    store = Store(tmp_path / "state.sqlite3")
    with following([log], store=store) as (_, sink):
        sink.wait_for_ids(1)
    (saved,) = store.checkpoints().values()
    assert (saved.offset, saved.line_number) == (len(event(1)), 1)

    append(log, event(2)[300:] + event(3))
    with following([log], store=store) as (_, sink):
        sink.wait_for_ids(2, 3)
    assert sink.ids() == Counter({2: 1, 3: 1})
    assert sorted(record_id(a) for a in store.load_alerts()) == [1, 2, 3]
    store.close()


def test_an_inode_reused_by_another_file_is_read_from_its_start(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(1) + event(2))
    info = log.stat()
    store = Store(tmp_path / "state.sqlite3")
    # What the last run saved for this inode, when another file had it.
    other = Checkpoint(
        f"{info.st_dev}:{info.st_ino}", "40:0123456789abcdef", str(log), 1500, 1, 3000
    )
    store.commit([], [other])
    with following([log], store=store) as (_, sink):
        sink.wait_for_ids(1, 2)
    assert sink.said(str(log), "not the file last read")
    store.close()


def test_files_deleted_before_they_were_read_are_reported_with_unread_bytes(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(b"".join(event(n) for n in range(1, 1000)))
    assert log.stat().st_size > 2 * CHUNK_BYTES
    store = Store(tmp_path / "state.sqlite3")
    stop = threading.Event()

    class StopAfterFirstChunk(Recorder):
        def on_alerts(self, alerts: list[Alert]) -> None:
            super().on_alerts(alerts)
            stop.set()  # winlogwatch stopped (or fell behind) mid-file

    first = StopAfterFirstChunk()
    Follower([str(tmp_path)], Detector(RULES), first, store).run(stop)
    (saved,) = store.checkpoints().values()
    unread = log.stat().st_size - saved.offset
    assert unread > 0

    log.unlink()  # rotated away while nobody was reading
    with following([tmp_path], store=store) as (_, sink):
        sink.wait_for(lambda: sink.said(str(log), f"{unread} bytes never read"))
    assert store.checkpoints() == {}
    store.close()


def test_from_end_starts_after_the_last_complete_line(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(1) + event(2) + event(3)[:50])
    with following([log], from_end=True) as (_, sink):
        sink.wait_for(lambda: sink.said("following 1 file"))
        append(log, event(3)[50:] + event(4))
        sink.wait_for_ids(3, 4)
    assert sink.ids() == Counter({3: 1, 4: 1})
    assert sink.alerts[0].line_number == 3


def test_polling_sees_appends_without_file_system_events(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(1))
    with following([tmp_path], poll=True, poll_interval=0.05) as (_, sink):
        sink.wait_for_ids(1)
        append(log, event(2))
        log.rename(tmp_path / "winlogbeat.ndjson.1")
        log.write_bytes(event(3))
        sink.wait_for_ids(2, 3)
    assert sink.ids() == Counter({1: 1, 2: 1, 3: 1})


def test_long_lines_bad_bytes_and_crlf_are_handled_as_in_scan(tmp_path):
    log = tmp_path / "winlogbeat.ndjson"
    latin1 = event(2).replace(b"jdoe", b"j\xe9r\xf4me")
    huge = b'{"message": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n'
    log.write_bytes(b"not json\r\n" + event(1).replace(b"\n", b"\r\n") + latin1)
    with following([log]) as (_, sink):
        sink.wait_for_ids(1, 2)
        append(log, huge[: MAX_LINE_BYTES // 2])  # held back, then dropped unread
        append(log, huge[MAX_LINE_BYTES // 2 :] + event(3))
        sink.wait_for_ids(3)
        sink.wait_for(lambda: len(sink.bad) == 2)
    assert [(bad.number, bad.reason[:8]) for bad in sink.bad] == [
        (1, "not JSON"),
        (4, "line lon"),
    ]
    assert "j\ufffdr\ufffdme" in sink.alerts[1].raw
    assert sink.alerts[2].line_number == 5


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_a_burst_is_read_in_bounded_memory(tmp_path):
    """A burst far larger than memory allows is read a chunk at a time, not held."""
    log = tmp_path / "winlogbeat.ndjson"
    quiet = event(None, alerting=False)
    batches = 60
    with open(log, "wb") as stream:
        for n in range(batches):
            stream.write(quiet * 999 + event(n))
    size = log.stat().st_size
    store = Store(tmp_path / "state.sqlite3")

    class Counting(Recorder):
        count = 0

        def on_alerts(self, alerts: list[Alert]) -> None:
            self.count += len(alerts)  # keeps nothing: only the follower is measured

    sink = Counting()
    before = peak = resident_bytes()
    with following([log], sink, store) as (follower, _):
        deadline = time.monotonic() + 30
        while sink.count < batches:
            assert time.monotonic() < deadline, "timed out"
            peak = max(peak, resident_bytes())
            time.sleep(0.002)
        assert follower.detector.counters.lines == batches * 1000
    growth = peak - before
    assert growth < 24 * 2**20, (
        f"grew {growth / 2**20:.0f} MiB on {size / 2**20:.0f} MiB"
    )
    assert len(store.load_alerts()) == batches
    store.close()
