"""The state file: checkpoints and alerts committed together, de-duplicated, triaged."""

from __future__ import annotations

import sqlite3

import pytest

from detector.model import Alert, Condition
from detector.store import Checkpoint, Store, StoreError


def make_alert(key: str, rule_id: str = "rule-1", offset: int = 0) -> Alert:
    return Alert(
        document={"kibana": {"alert": {"workflow_status": "open"}}, "big": 2**70},
        raw='{"line": "as written"}',
        path="/logs/winlogbeat.ndjson",
        offset=offset,
        line_number=offset + 1,
        rule_id=rule_id,
        key=key,
        shape="winlogbeat-7",
        conditions=[Condition("process.name", ":", "lsass.exe", ["LSASS.EXE"], True)],
        seen_at=1700000000.5,
    )


def checkpoint(offset: int, identity: str = "2049:12") -> Checkpoint:
    return Checkpoint(
        identity, "17:abcd", "/logs/winlogbeat.ndjson", offset, offset, 900
    )


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "state" / "state.sqlite3")
    yield opened
    opened.close()


def test_commit_returns_only_new_alerts_with_their_store_ids(store):
    first = store.commit([make_alert("h|c|1"), make_alert("h|c|2")], [checkpoint(10)])
    again = store.commit(
        [make_alert("h|c|2"), make_alert("h|c|2", "rule-2"), make_alert("h|c|3")],
        [checkpoint(20)],
    )

    assert [a.key for a in first] == ["h|c|1", "h|c|2"]
    assert all(a.store_id for a in first)
    assert [(a.key, a.rule_id) for a in again] == [
        ("h|c|2", "rule-2"),
        ("h|c|3", "rule-1"),
    ]
    assert store.checkpoints()["2049:12"].offset == 20


def test_an_event_read_twice_in_one_batch_is_stored_once(store):
    new = store.commit([make_alert("h|c|7"), make_alert("h|c|7")], [])
    assert len(new) == 1
    assert len(store.load_alerts()) == 1


def test_alerts_and_checkpoints_survive_reopening(tmp_path):
    path = tmp_path / "state.sqlite3"
    first = Store(path)
    first.commit([make_alert("h|c|1")], [checkpoint(123)])
    first.close()

    second = Store(path)
    (alert,) = second.load_alerts()
    assert second.checkpoints()["2049:12"] == checkpoint(123)
    assert alert.document["big"] == 2**70
    assert alert.raw == '{"line": "as written"}'
    assert alert.conditions == [
        Condition("process.name", ":", "lsass.exe", ["LSASS.EXE"], True)
    ]
    assert (alert.seen_at, alert.status, alert.store_id) == (1700000000.5, "open", 1)
    second.close()


def test_failed_commit_stores_neither_alerts_nor_checkpoint(store):
    with pytest.raises(StoreError):
        store.commit([make_alert("h|c|1"), make_alert(None)], [checkpoint(50)])  # type: ignore[arg-type]
    assert store.load_alerts() == []
    assert store.checkpoints() == {}


def test_forget_drops_a_checkpoint(store):
    store.commit([], [checkpoint(5, "1:1"), checkpoint(6, "1:2")])
    store.forget("1:1")
    assert list(store.checkpoints()) == ["1:2"]


def test_load_alerts_oldest_first_and_limit_keeps_the_newest(store):
    store.commit([make_alert(f"h|c|{n}") for n in range(5)], [])
    assert [a.key for a in store.load_alerts()] == [f"h|c|{n}" for n in range(5)]
    assert [a.key for a in store.load_alerts(limit=2)] == ["h|c|3", "h|c|4"]


def test_triage_status_and_reason_are_kept(store):
    (alert,) = store.commit([make_alert("h|c|1")], [])
    store.set_status(alert.store_id, "acknowledged")
    assert store.load_alerts()[0].status == "acknowledged"

    store.set_status(alert.store_id, "closed", "false_positive")
    loaded = store.load_alerts()[0]
    assert (loaded.status, loaded.close_reason) == ("closed", "false_positive")
    assert loaded.document["kibana"]["alert"]["workflow_status"] == "closed"

    store.set_status(alert.store_id, "open")
    assert (store.load_alerts()[0].status, store.load_alerts()[0].close_reason) == (
        "open",
        None,
    )


@pytest.mark.parametrize(
    ("status", "reason"),
    [("closed", None), ("closed", "bored"), ("open", "duplicate"), ("done", None)],
)
def test_triage_refuses_what_elastic_does_not_know(store, status, reason):
    (alert,) = store.commit([make_alert("h|c|1")], [])
    with pytest.raises(ValueError):
        store.set_status(alert.store_id, status, reason)


def test_triage_of_an_unknown_alert_is_an_error(store):
    with pytest.raises(ValueError, match="42"):
        store.set_status(42, "acknowledged")


def test_a_second_connection_triages_while_the_first_writes(tmp_path):
    path = tmp_path / "state.sqlite3"
    follower, dashboard = Store(path), Store(path)
    (alert,) = follower.commit([make_alert("h|c|1")], [checkpoint(1)])
    dashboard.set_status(alert.store_id, "closed", "true_positive")
    follower.commit([make_alert("h|c|2")], [checkpoint(2)])

    assert [a.status for a in dashboard.load_alerts()] == ["closed", "open"]
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    follower.close()
    dashboard.close()


def test_a_file_that_is_no_database_is_refused_by_name(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database, but somebody's notes\n" * 100)
    with pytest.raises(StoreError, match="notes.txt") as error:
        Store(path)
    assert "--state" in str(error.value)


def test_a_state_path_under_a_file_is_refused_by_name(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="state.sqlite3"):
        Store(tmp_path / "file" / "state.sqlite3")


def test_default_path_is_in_the_user_state_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert Store.default_path().startswith(str(tmp_path))
    assert Store.default_path().endswith("state.sqlite3")


def test_a_corrupted_state_file_is_set_aside_and_a_new_one_started(tmp_path):
    path = tmp_path / "state.sqlite3"
    damaged = b"SQLite format 3\x00" + b"\x00garbage" * 512  # a header, then junk
    path.write_bytes(damaged)
    store = Store(path)
    try:
        assert store.set_aside is not None
        assert store.load_alerts() == [] and store.checkpoints() == {}
    finally:
        store.close()
    assert (tmp_path / store.set_aside).read_bytes() == damaged
    reopened = Store(path)
    assert reopened.set_aside is None  # the new file is a good one
    reopened.close()
