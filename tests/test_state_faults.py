"""The state file when the disk refuses: read-only, or full while alerts arrive.

Every fault here is produced for real. A state file this process may not write:
`chmod` in a child that dropped root's power to ignore file modes, or a read-only
mount. A full disk: a 1 MiB tmpfs filled to its last byte, or SQLite's own ceiling
(`PRAGMA max_page_count` at the database's current size), which fails the same
write with the same SQLITE_FULL and needs no privileges, so it runs everywhere.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import dashboard, run_winlogwatch, until, winlogwatch_command
from test_follow import append, event, following
from test_follow_cli import (
    Follow,
    _can_drop_capabilities,
    _drop_file_permission_override,
)

from detector import follow as follow_module
from detector.model import Alert
from detector.store import Checkpoint, Store, StoreError, StoreFull
from tui.alert_table import AlertTable
from tui.export import export
from tui.launch import follow_app

# Root ignores file modes; the child drops that power (see test_follow_cli.py).
AS_USER = _drop_file_permission_override if os.geteuid() == 0 else None
needs_file_modes = pytest.mark.skipif(
    os.geteuid() == 0 and not _can_drop_capabilities(),
    reason="running as root without CAP_SETPCAP: a mode 0444 file stays writable",
)


class SmallDisk:
    """A 1 MiB tmpfs of our own: a disk that really fills up, or turns read-only."""

    def __init__(self, root: Path):
        self.root = root
        self.filler = root / "filler"

    def fill(self) -> None:
        """Write until the kernel says ENOSPC: not one byte is left."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (64 * 1024, 4096, 1):
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError as error:
                        assert error.errno == errno.ENOSPC, error
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()

    def remount(self, mode: str) -> None:
        subprocess.run(
            ["mount", "-o", f"remount,{mode}", str(self.root)],
            check=True,
            capture_output=True,
        )


@pytest.fixture
def small_disk(tmp_path):
    root = tmp_path / "disk"
    root.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "winlogwatch-test", str(root)],
            capture_output=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield SmallDisk(root)
    finally:
        # Lazy: a follower still holding the state file must not fail the test.
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


class PageLimit:
    """SQLite's ceiling on one connection: the database may not grow a page."""

    def __init__(self, folder: Path):
        self.state = folder / "state.sqlite3"

    def full(self, store: Store) -> None:
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages}")

    def room(self, store: Store) -> None:
        store._db.execute("PRAGMA max_page_count = 1073741823")


class FullDisk:
    """The state file on a small tmpfs, filled to the last byte, then freed."""

    def __init__(self, disk: SmallDisk):
        self.disk = disk
        self.state = disk.root / "state.sqlite3"

    def full(self, store: Store) -> None:
        self.disk.fill()

    def room(self, store: Store) -> None:
        self.disk.free()


@pytest.fixture(params=["page limit", "full disk"])
def no_room(request, tmp_path):
    if request.param == "page limit":
        return PageLimit(tmp_path)
    return FullDisk(request.getfixturevalue("small_disk"))


def stored(state: Path) -> tuple[list[int], dict[str, int]]:
    """Record ids of the stored alerts and each checkpoint's offset, read on a
    read-only connection of the test's own."""
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        ids = [
            int(key.rsplit("|", 1)[1])
            for (key,) in db.execute("SELECT key FROM alerts ORDER BY id")
        ]
        offsets = dict(db.execute("SELECT path, offset FROM checkpoints"))
    finally:
        db.close()
    return ids, offsets


def digest(folder: Path) -> dict[str, str]:
    """Every file in a folder and a hash of its bytes: to show nothing changed."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()
    }


def a_state_with_one_alert(state: Path) -> None:
    store = Store(state)
    store.commit([alert(1)], [Checkpoint("1:1", "3:abc", "/logs/x.ndjson", 9, 1)])
    store.close()


def alert(n: int, pad: int = 6000) -> Alert:
    """An alert big enough to need pages of its own (as real ones with their event)."""
    return Alert(
        document={"n": n, "pad": "x" * pad},
        raw="{}",
        path="/logs/x.ndjson",
        offset=n,
        line_number=n,
        rule_id="rule",
        key=f"h|c|{n}",
        shape="winlogbeat7",
    )


# Read-only --------------------------------------------------------------------


@needs_file_modes
@pytest.mark.parametrize("command", [["follow"], []], ids=["follow", "dashboard"])
def test_a_read_only_state_file_is_refused_by_name_before_any_work(tmp_path, command):
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "winlogbeat.ndjson", event(1))
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state = state_dir / "state.sqlite3"
    a_state_with_one_alert(state)
    state.chmod(0o444)
    before = digest(state_dir)

    result = subprocess.run(
        [
            *winlogwatch_command(),
            *command,
            str(tmp_path / "logs"),
            "--state",
            str(state),
        ],
        capture_output=True,
        timeout=30,
        preexec_fn=AS_USER,
    )

    assert result.returncode == 2, result.stderr
    message = result.stderr.decode()
    assert f"the state file {state} is read-only" in message
    assert "Permission denied" in message and "--state FILE" in message
    assert result.stdout == b""  # no alert, and no screen either
    # SQLite would have left read-only -wal and -shm files beside it: nothing here.
    assert digest(state_dir) == before


@needs_file_modes
def test_a_read_only_wal_file_left_beside_the_state_is_named(tmp_path):
    state = tmp_path / "state.sqlite3"
    a_state_with_one_alert(state)
    wal = tmp_path / "state.sqlite3-wal"
    wal.write_bytes(b"")  # as a copy made by another user might leave it
    wal.chmod(0o444)

    result = subprocess.run(
        [*winlogwatch_command(), "follow", str(tmp_path), "--state", str(state)],
        capture_output=True,
        timeout=30,
        preexec_fn=AS_USER,
    )

    assert result.returncode == 2, result.stderr
    assert f"{wal}, beside the state file {state}, is read-only" in (
        result.stderr.decode()
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "state.sqlite3",
        "state.sqlite3-wal",
    ]


@needs_file_modes
def test_a_state_folder_that_takes_no_new_file_is_refused_by_name(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state = state_dir / "state.sqlite3"
    a_state_with_one_alert(state)
    state_dir.chmod(0o555)  # the file is writable; its -wal and -shm could not be
    before = digest(state_dir)

    result = subprocess.run(
        [*winlogwatch_command(), "follow", str(tmp_path), "--state", str(state)],
        capture_output=True,
        timeout=30,
        preexec_fn=AS_USER,
    )
    state_dir.chmod(0o755)

    assert result.returncode == 2, result.stderr
    assert f"cannot write in {state_dir}, where the state file {state}" in (
        result.stderr.decode()
    )
    assert "not writable" in result.stderr.decode()
    assert digest(state_dir) == before


def test_a_state_file_on_a_read_only_mount_is_refused_and_left_as_it_was(small_disk):
    state = small_disk.root / "state.sqlite3"
    a_state_with_one_alert(state)
    small_disk.remount("ro")  # root cannot write here either
    before = digest(small_disk.root)

    with pytest.raises(StoreError) as refused:
        Store(state)
    assert f"the state file {state} is read-only" in str(refused.value)
    assert "Read-only file system" in str(refused.value)
    with pytest.raises(StoreError, match="a read-only file system"):
        Store(small_disk.root / "new" / "state.sqlite3")

    small_disk.remount("rw")
    assert digest(small_disk.root) == before
    assert stored(state)[0] == [1]


# Full: the store ----------------------------------------------------------------


def test_a_commit_that_finds_no_room_changes_nothing_and_the_next_one_stores(
    no_room,
):
    store = Store(no_room.state)
    try:
        store.commit([alert(1)], [Checkpoint("1:1", "3:abc", "/logs/x.ndjson", 9, 1)])
        no_room.full(store)

        later = Checkpoint("1:1", "3:abc", "/logs/x.ndjson", 90, 9)
        with pytest.raises(StoreFull) as full:
            store.commit([alert(n) for n in range(2, 6)], [later])
        assert f"cannot write the state file {no_room.state}" in str(full.value)
        assert "full" in str(full.value) and "Nothing stored was lost" in str(
            full.value
        )
        assert stored(no_room.state) == ([1], {"/logs/x.ndjson": 9})
        assert not store._db.in_transaction  # usable for the next try

        no_room.room(store)
        new = store.commit([alert(n) for n in range(2, 6)], [later])
        assert [a.store_id for a in new] == [2, 3, 4, 5]
        assert stored(no_room.state) == ([1, 2, 3, 4, 5], {"/logs/x.ndjson": 90})
    finally:
        store.close()


def test_a_checkpoint_forgotten_on_a_full_disk_goes_with_the_next_commit(small_disk):
    state = small_disk.root / "state.sqlite3"
    store = Store(state)
    try:
        gone = Checkpoint("1:1", "3:abc", "/logs/gone.ndjson", 9, 1)
        kept = Checkpoint("1:2", "3:abd", "/logs/kept.ndjson", 9, 1)
        store.commit([], [gone, kept])
        small_disk.fill()

        store.forget("1:1")  # no room: deferred, not an error
        assert set(stored(state)[1]) == {"/logs/gone.ndjson", "/logs/kept.ndjson"}

        small_disk.free()
        kept.offset = 20
        store.commit([], [kept])
        assert stored(state)[1] == {"/logs/kept.ndjson": 20}
    finally:
        store.close()


def test_a_state_file_that_cannot_even_open_on_a_full_disk_says_the_disk_is_full(
    small_disk, tmp_path
):
    state = small_disk.root / "state.sqlite3"
    a_state_with_one_alert(state)  # closed: its -shm index is gone with it
    small_disk.fill()

    result = run_winlogwatch("follow", str(tmp_path), "--state", str(state))

    assert result.returncode == 2, result.stderr
    assert f"cannot use the state file {state}" in result.stderr.decode()
    assert "no room left on the disk that holds it" in result.stderr.decode()
    small_disk.free()
    assert stored(state)[0] == [1]


# Full: the follower ---------------------------------------------------------------


def test_alerts_found_while_the_state_file_is_full_are_shown_then_stored_once(
    no_room, tmp_path
):
    log = tmp_path / "logs" / "winlogbeat.ndjson"
    log.parent.mkdir()
    log.write_bytes(event(1) + event(2))
    store = Store(no_room.state)
    try:
        with following([log], store=store, check_interval=0.2) as (_, sink):
            sink.wait_for_ids(1, 2)
            no_room.full(store)

            append(log, event(3) + event(4))
            sink.wait_for_ids(3, 4)  # shown although they could not be stored
            assert sink.said(f"the state file {no_room.state}", "full", "still shown")
            # What was stored stays; the checkpoint stays before the unstored alerts.
            assert stored(no_room.state) == ([1, 2], {str(log): len(event(1)) * 2})

            no_room.room(store)
            sink.wait_for(lambda: sink.said("has room again", "stored the 2 alert"))
            assert stored(no_room.state) == ([1, 2, 3, 4], {str(log): log_size(log)})

            append(log, event(5))
            sink.wait_for_ids(5)
        assert max(sink.ids().values()) == 1, "an alert was shown twice"

        with following([log], store=store) as (_, again):
            again.wait_for(lambda: again.said("following 1 file"))
            time.sleep(0.3)  # an alert shown twice would be here by now
        assert again.alerts == []
    finally:
        store.close()


def test_lines_read_again_while_the_state_file_is_full_show_nothing_twice(tmp_path):
    no_room = PageLimit(tmp_path)
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(1))
    store = Store(no_room.state)
    try:
        with following([log], store=store, check_interval=0.2) as (_, sink):
            sink.wait_for_ids(1)
            no_room.full(store)
            append(log, event(2))
            sink.wait_for_ids(2)
            log.write_bytes(b"")  # truncated, then written again from the start
            sink.wait_for(lambda: sink.said("truncated", "reading it again"))
            append(log, event(1) + event(2) + event(3))
            sink.wait_for_ids(3)
            time.sleep(0.3)
        # 1 was stored, 2 is waiting to be: neither is shown again.
        assert sink.ids() == {1: 1, 2: 1, 3: 1}
    finally:
        store.close()


def test_stopping_while_the_state_file_is_full_warns_and_keeps_what_was_stored(
    tmp_path,
):
    no_room = PageLimit(tmp_path)
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(1))
    store = Store(no_room.state)
    try:
        with following([log], store=store) as (_, sink):
            sink.wait_for_ids(1)
            no_room.full(store)
            append(log, event(2) + event(3))
            sink.wait_for_ids(2, 3)
        assert sink.said("2 alert(s) shown while the state file", "are not stored")
        assert stored(no_room.state) == ([1], {str(log): len(event(1))})

        # The next start (with room) reads their lines again and stores them.
        no_room.room(store)
        with following([log], store=store) as (_, again):
            again.wait_for_ids(2, 3)
        assert stored(no_room.state) == ([1, 2, 3], {str(log): log_size(log)})
    finally:
        store.close()


def test_a_state_file_full_for_too_many_alerts_stops_the_follower_after_showing_them(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(follow_module, "UNSTORED_LIMIT", 2)
    no_room = PageLimit(tmp_path)
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(1))
    store = Store(no_room.state)
    try:
        with pytest.raises(StoreError, match="stayed full for 3 alerts"):
            with following([log], store=store) as (_, sink):
                sink.wait_for_ids(1)
                no_room.full(store)
                append(log, event(2) + event(3) + event(4))
                sink.wait_for_ids(2, 3, 4)
        assert stored(no_room.state)[0] == [1]
    finally:
        store.close()


def test_follow_prints_alerts_while_its_state_disk_is_full_and_stores_them_later(
    small_disk, tmp_path
):
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "winlogbeat.ndjson"
    log.write_bytes(event(1))
    state = small_disk.root / "state.sqlite3"

    follow = Follow(str(logs), "--state", str(state))
    try:
        follow.wait_for(lambda: follow.ids() == [1])
        small_disk.fill()
        append(log, event(2) + event(3))
        follow.wait_for(lambda: follow.ids() == [1, 2, 3])
        assert f"cannot write the state file {state}".encode() in follow.stderr
        assert stored(state)[0] == [1]

        small_disk.free()
        follow.wait_for(lambda: b"has room again" in follow.stderr)
        assert stored(state)[0] == [1, 2, 3]
    finally:
        code = follow.finish()
    assert code == 0, follow.stderr

    again = Follow(str(logs), "--state", str(state))
    try:
        again.wait_for(lambda: b"following 1 file(s)" in again.stderr)
        time.sleep(0.3)
    finally:
        assert again.finish() == 0
    assert again.ids() == []  # printed once, stored once


def log_size(path: Path) -> int:
    return path.stat().st_size


# Full: the dashboard -------------------------------------------------------------


async def test_triage_on_a_full_disk_is_a_notice_and_is_saved_once_there_is_room(
    small_disk,
):
    state = small_disk.root / "state.sqlite3"
    _, alerts, _ = dashboard()
    store = Store(state)
    store.commit(alerts, [])
    store.close()

    app, _, _ = dashboard(store_path=str(state))
    async with app.run_test(size=(130, 30)) as pilot:
        await until(lambda: len(app.view.rows) == len(alerts))
        app.drain()
        await pilot.pause()
        newest = app.query_one(AlertTable).current
        small_disk.fill()

        await pilot.press("a")
        await until(lambda: any("was not saved" in n.message for n in notices(app)))
        (failed,) = [n for n in notices(app) if "was not saved" in n.message]
        assert f"Triage of alert {newest.store_id} was not saved" in failed.message
        assert f"cannot write the state file {state}" in failed.message
        assert app.is_running

        small_disk.free()
        await pilot.press("down", "a")
        await until(lambda: statuses(state).count("acknowledged") == 1)
    assert statuses(state)[newest.store_id - 1] == "open"


async def test_the_dashboard_shows_alerts_while_its_state_disk_is_full(
    small_disk, tmp_path
):
    log = tmp_path / "winlogbeat.ndjson"
    log.write_bytes(event(1))
    state = small_disk.root / "state.sqlite3"
    rules = list(dashboard()[0].rules.values())

    app = follow_app(rules, [str(log)], str(state))
    async with app.run_test(size=(130, 30)):
        await until(lambda: len(app.view.rows) == 1)
        small_disk.fill()
        append(log, event(2))
        await until(lambda: len(app.view.rows) == 2)
        await until(lambda: any("state file" in n.message for n in notices(app)))
        (full,) = [n for n in notices(app) if "state file" in n.message]
        assert full.severity == "error" and str(state) in full.message

        small_disk.free()
        await until(lambda: any("has room again" in n.message for n in notices(app)))
        assert app.is_running
    assert stored(state)[0] == [1, 2]


async def test_an_export_to_a_full_disk_leaves_the_file_there_as_it_was(small_disk):
    app, alerts, _ = dashboard()
    app.sink.on_alerts(alerts)
    target = small_disk.root / "alerts.ndjson"
    target.write_text("an earlier export\n")
    small_disk.fill()
    async with app.run_test(size=(130, 30)) as pilot:
        await pilot.pause()
        app.ask_export()
        await until(lambda: app.screen.query("#export-path"))
        app.screen.query_one("#export-path").value = str(target)
        await pilot.press("enter")
        await until(lambda: any(n.title == "Export failed" for n in notices(app)))
        (failed,) = [n for n in notices(app) if n.title == "Export failed"]
        assert f"Nothing was written to {target}" in failed.message
        assert "No space left on device" in failed.message
        assert app.is_running
    assert target.read_text() == "an earlier export\n"
    assert sorted(p.name for p in small_disk.root.iterdir()) == [
        "alerts.ndjson",
        "filler",
    ]


def test_an_export_that_fails_names_the_path_asked_for(small_disk):
    _, alerts, _ = dashboard()
    from tui.rows import alert_row

    small_disk.fill()
    target = small_disk.root / "alerts.csv"
    with pytest.raises(OSError) as failed:
        export([alert_row(a) for a in alerts], str(target))
    assert failed.value.errno == errno.ENOSPC
    assert failed.value.filename == str(target)
    assert not target.exists()


def notices(app) -> list:
    return list(app._notifications)


def statuses(state: Path) -> list[str]:
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return [status for (status,) in db.execute("SELECT status FROM alerts")]
    finally:
        db.close()
