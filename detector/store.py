"""The state that survives a restart: per-file checkpoints and every alert, in SQLite.

A line's alerts and the checkpoint past it are written in one transaction, so after
any stop (SIGTERM, kill -9, power loss) the follower resumes at a checkpoint whose
alerts are all stored, and an alert read again is recognised by its event key and
not raised twice. The dashboard opens its own `Store` on the same file for triage;
WAL mode lets it read while the follower writes, and `busy_timeout` makes the two
writers wait for each other instead of failing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import platformdirs

from detector.model import Alert, Condition

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

STATUSES = ("open", "acknowledged", "closed")

#: Elastic's reasons for closing an alert.
CLOSE_REASONS = (
    "false_positive",
    "duplicate",
    "true_positive",
    "benign_positive",
    "other",
)

#: How long a writer waits for the other process's transaction before giving up.
BUSY_TIMEOUT_MS = 10_000

SCHEMA_VERSION = 1

#: Free space below which an I/O error on the state file is taken for a full disk.
_LOW_SPACE_BYTES = 64 * 1024

#: What SQLite says of a file that is not (or no longer) a database.
_CORRUPTED = ("file is not a database", "database disk image is malformed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    document TEXT NOT NULL,
    raw TEXT NOT NULL,
    path TEXT NOT NULL,
    offset INTEGER NOT NULL,
    line_number INTEGER NOT NULL,
    shape TEXT NOT NULL,
    conditions TEXT NOT NULL,
    seen_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    close_reason TEXT,
    status_changed_at REAL,
    UNIQUE (key, rule_id)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    identity TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    path TEXT NOT NULL,
    offset INTEGER NOT NULL,
    line_number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
"""

_INSERT_ALERT = """
INSERT INTO alerts (key, rule_id, document, raw, path, offset, line_number, shape,
                    conditions, seen_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key, rule_id) DO NOTHING
RETURNING id
"""

_UPSERT_CHECKPOINT = """
INSERT INTO checkpoints
    (identity, fingerprint, path, offset, line_number, size, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (identity) DO UPDATE SET
    fingerprint = excluded.fingerprint, path = excluded.path, offset = excluded.offset,
    line_number = excluded.line_number, size = excluded.size,
    updated_at = excluded.updated_at
"""

_ALERT_COLUMNS = (
    "id, key, rule_id, document, raw, path, offset, line_number, shape, conditions, "
    "seen_at, status, close_reason"
)


class StoreError(Exception):
    """The state file cannot be used; the message names it and says what to do."""


class StoreFull(StoreError):
    """A write found no room (the disk holding the state file is full, or SQLite's
    size limit was reached). SQLite rolled it back: nothing stored was changed, and
    the same write may succeed once there is room again."""


@dataclass(slots=True)
class Checkpoint:
    """How far one file has been read, and how to recognise that file again.

    `identity` is "device:inode"; `fingerprint` is "length:hash" of the file's first
    bytes, so a new file that reuses the inode is not taken for the old one.
    `offset` is the byte just past the last complete line evaluated, `line_number`
    the number of lines before it. `size` is the file's size when last seen: if the
    file disappears, `size - offset` bytes were never read.
    """

    identity: str
    fingerprint: str
    path: str
    offset: int
    line_number: int
    size: int = 0


class Store:
    """One SQLite connection to the state file.

    Use a `Store` from one thread at a time (it may be created in another thread
    and handed over, as the dashboard does with the follower's). A second process
    or thread opens its own `Store` on the same file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._synchronous = ""
        #: Where a corrupted state file was moved before a new one was started.
        self.set_aside: str | None = None
        #: Checkpoints to drop, whose DELETE found the disk full: done with the
        #: next commit that succeeds.
        self._unforgotten: set[str] = set()
        if self.path != ":memory:":
            self._refuse_read_only()
        self._db = self._connect()
        try:
            self._setup()
        except sqlite3.DatabaseError as error:
            self._db.close()
            if not (any(s in str(error) for s in _CORRUPTED) and self._was_ours()):
                raise self._error("cannot use", error) from None
            # A state file that is not a database any more (a crash of the disk, a
            # file copied over it) would otherwise stop every start: keep it for
            # inspection and begin again. Alerts in it are not lost, only set aside.
            self.set_aside = f"{self.path}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
            try:
                os.replace(self.path, self.set_aside)
                for suffix in ("-wal", "-shm"):
                    if os.path.exists(self.path + suffix):
                        os.replace(self.path + suffix, self.set_aside + suffix)
            except OSError as move_error:
                raise self._error(
                    "cannot set aside the corrupted", move_error
                ) from None
            self._db = self._connect()
            try:
                self._setup()
            except sqlite3.Error as again:
                self._db.close()
                raise self._error("cannot use", again) from None

    def _was_ours(self) -> bool:
        """Whether a damaged file was a state file, and so may be moved aside.

        A file that never was a database (`--state notes.txt` by mistake) is
        refused instead: it is somebody's file, not ours to move.
        """
        if os.path.abspath(self.path) == os.path.abspath(self.default_path()):
            return True
        try:
            with open(self.path, "rb") as stream:
                return stream.read(16) == b"SQLite format 3\x00"
        except OSError:
            return False

    def _refuse_read_only(self) -> None:
        """Refuse a state file (or folder) this process may not write, before SQLite
        touches it.

        SQLite would open a read-only file read-only without a word, create its
        -wal and -shm files beside it with the same read-only mode (which then stay
        in the way after the file is fixed), and fail at the first write. Refusing
        here leaves everything on disk as it was.
        """
        path = os.path.abspath(self.path)
        # O_RDWR without O_CREAT, as SQLite asks: the kernel's answer covers modes,
        # ACLs, `chattr +i` and read-only mounts alike. (No O_NONBLOCK on Windows.)
        flags = os.O_RDWR | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        for name in (path, path + "-wal", path + "-shm"):
            try:
                fd = os.open(name, flags)
            except (FileNotFoundError, IsADirectoryError):
                continue  # not there yet; or not a file, which SQLite reports
            except OSError as error:
                raise self._read_only(error.strerror or str(error), name) from None
            os.close(fd)

        # The folder must take new files: SQLite keeps its -wal and -shm beside the
        # state file. Where the folder does not exist yet, its nearest ancestor
        # must let it be made.
        folder = os.path.dirname(path)
        while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)
        if not os.access(folder, os.W_OK | os.X_OK):
            read_only_mount = hasattr(os, "statvfs") and (
                os.statvfs(folder).f_flag & os.ST_RDONLY
            )
            raise StoreError(
                f"cannot write in {folder}, where the state file {self.path} and "
                "the -wal and -shm files SQLite keeps beside it live ("
                + ("a read-only file system" if read_only_mount else "not writable")
                + "). Nothing was changed. Make the folder writable, or choose "
                "another state file with --state FILE."
            )

    def _read_only(self, reason: str, name: str | None = None) -> StoreError:
        which = f"the state file {self.path}"
        if name and os.path.abspath(name) != os.path.abspath(self.path):
            which = f"{name}, beside the state file {self.path},"
        return StoreError(
            f"{which} is read-only for this process ({reason}); winlogwatch must "
            "write checkpoints, alerts and triage there. Nothing was changed. Make "
            "it writable (owner, mode, or mount), or choose another state file with "
            "--state FILE."
        )

    def _connect(self) -> sqlite3.Connection:
        try:
            folder = os.path.dirname(os.path.abspath(self.path))
            if self.path != ":memory:":
                os.makedirs(folder, exist_ok=True)
            return sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                # Transactions are begun and ended here, explicitly.
                isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as error:
            raise self._error("cannot open", error) from None

    @staticmethod
    def default_path() -> str:
        """The state file used when `--state` is not given."""
        return os.path.join(platformdirs.user_state_dir("winlogwatch"), "state.sqlite3")

    def _setup(self) -> None:
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # WAL lets the dashboard read while the follower writes. On a file system
        # that cannot share memory maps (some network shares) SQLite keeps its
        # rollback journal; that still works, with more waiting.
        db.execute("PRAGMA journal_mode = WAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"written by a newer winlogwatch (schema {version}, this one knows "
                f"{SCHEMA_VERSION})"
            )
        try:
            with self._transaction():
                if version < SCHEMA_VERSION:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                # Written even when unchanged: SQLite opens a file it may not write
                # read-only without a word, and a write is where it says so.
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as error:
            # No room for even this write is no reason not to start on a state
            # file that is ready: the follower holds what it cannot store.
            if version < SCHEMA_VERSION or not self._no_room(error):
                raise

    def _error(self, doing: str, error: Exception) -> StoreError:
        code = _code(error)
        if self._no_room(error):
            return StoreFull(
                f"{doing} the state file {self.path}: {error} (no room left on the "
                "disk that holds it). Nothing stored was lost; free space there, or "
                "choose another state file with --state FILE."
            )
        if code == sqlite3.SQLITE_READONLY:
            return self._read_only(str(error))
        return StoreError(
            f"{doing} the state file {self.path}: {error}. Check that it is a "
            "winlogwatch state file you may write, or choose another with --state FILE."
        )

    def _no_room(self, error: Exception) -> bool:
        # A write that ran out of room says SQLITE_FULL; growing the -shm index
        # on a full disk says only "disk I/O error".
        code = _code(error)
        return code == sqlite3.SQLITE_FULL or (
            code == sqlite3.SQLITE_IOERR and self._disk_full()
        )

    def _disk_full(self) -> bool:
        """Whether the disk holding the state file has (next to) no room left."""
        try:
            info = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except (OSError, AttributeError):  # statvfs: not on Windows
            return False
        return info.f_bavail * info.f_frsize < _LOW_SPACE_BYTES

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        # IMMEDIATE takes the write lock now, so a concurrent writer makes this
        # wait (busy_timeout) rather than fail half-way through.
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            # After SQLITE_FULL or an I/O error SQLite may have rolled back on its
            # own; a COMMIT that failed may have left the transaction open.
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the error that got us here is the one to report
            raise

    def _sync(self, durable: bool) -> None:
        # A transaction that stores alerts is synced before they are handed on, so a
        # power loss cannot forget an alert that was already shown. One that only
        # moves a checkpoint may be lost: the lines are read again and their alerts
        # are recognised by key. In WAL mode the next synced commit syncs both.
        wanted = "FULL" if durable else "NORMAL"
        if wanted != self._synchronous:
            self._db.execute(f"PRAGMA synchronous = {wanted}")
            self._synchronous = wanted

    def checkpoints(self) -> dict[str, Checkpoint]:
        """Every saved checkpoint, by file identity."""
        try:
            rows = self._db.execute(
                "SELECT identity, fingerprint, path, offset, line_number, size "
                "FROM checkpoints"
            ).fetchall()
        except sqlite3.Error as error:
            raise self._error("cannot read", error) from None
        return {row[0]: Checkpoint(*row) for row in rows}

    def commit(self, alerts: list[Alert], checkpoints: list[Checkpoint]) -> list[Alert]:
        """Store new alerts and move checkpoints, all in one transaction.

        An alert whose (key, rule_id) is already stored is skipped. Returns the
        alerts that were new, with `store_id` set: only those are to be shown.
        Raises `StoreFull` when there is no room: then nothing was written.
        """
        now = time.time()
        ids: list[int | None] = []
        unforgotten = sorted(self._unforgotten)
        try:
            self._sync(durable=bool(alerts))
            with self._transaction() as db:
                db.executemany(
                    "DELETE FROM checkpoints WHERE identity = ?",
                    [(identity,) for identity in unforgotten],
                )
                for alert in alerts:
                    row = db.execute(_INSERT_ALERT, _alert_row(alert)).fetchone()
                    ids.append(row[0] if row else None)
                db.executemany(
                    _UPSERT_CHECKPOINT,
                    [
                        (
                            c.identity,
                            c.fingerprint,
                            c.path,
                            c.offset,
                            c.line_number,
                            c.size,
                            now,
                        )
                        for c in checkpoints
                    ],
                )
        except sqlite3.Error as error:
            raise self._error("cannot write", error) from None
        self._unforgotten.difference_update(unforgotten)

        new = []
        for alert, store_id in zip(alerts, ids, strict=True):
            if store_id is not None:
                alert.store_id = store_id
                new.append(alert)
        return new

    def forget(self, identity: str) -> None:
        """Drop the checkpoint of a file that is gone.

        On a full disk the checkpoint is dropped by the next commit that succeeds
        instead: a stale checkpoint costs nothing while this store runs.
        """
        try:
            with self._transaction() as db:
                db.execute("DELETE FROM checkpoints WHERE identity = ?", (identity,))
        except sqlite3.Error as error:
            failure = self._error("cannot write", error)
            if not isinstance(failure, StoreFull):
                raise failure from None
            # Limitation: if the follower stops before a commit succeeds, the next
            # start finds this checkpoint and may report bytes of the deleted file
            # as never read (those read while the disk was full).
            self._unforgotten.add(identity)
        else:
            self._unforgotten.discard(identity)

    def stored_keys(self, alerts: list[Alert]) -> set[tuple[str, str]]:
        """Which of `alerts` are already stored, as (key, rule_id); reads only, so
        it answers on a full disk too."""
        wanted = {(alert.key, alert.rule_id) for alert in alerts}
        try:
            return {
                pair
                for pair in wanted
                if self._db.execute(
                    "SELECT 1 FROM alerts WHERE key = ? AND rule_id = ?", pair
                ).fetchone()
            }
        except sqlite3.Error as error:
            raise self._error("cannot read", error) from None

    def load_alerts(self, limit: int | None = None) -> list[Alert]:
        """Stored alerts, oldest first; with `limit`, only the newest `limit`."""
        query = f"SELECT {_ALERT_COLUMNS} FROM alerts ORDER BY id"
        params: tuple = ()
        if limit is not None:
            query = (
                f"SELECT * FROM (SELECT {_ALERT_COLUMNS} FROM alerts "
                "ORDER BY id DESC LIMIT ?) ORDER BY id"
            )
            params = (limit,)
        try:
            rows = self._db.execute(query, params).fetchall()
        except sqlite3.Error as error:
            raise self._error("cannot read", error) from None
        return [_alert_from_row(row) for row in rows]

    def set_status(self, store_id: int, status: str, reason: str | None = None) -> None:
        """Triage one alert: open, acknowledged, or closed with Elastic's reasons.

        Raises `ValueError` for an unknown status or reason, a reason given for a
        status other than closed, or no stored alert with `store_id`.
        """
        if status not in STATUSES:
            raise ValueError(
                f"status must be one of {', '.join(STATUSES)}, not {status!r}"
            )
        if status == "closed":
            if reason not in CLOSE_REASONS:
                raise ValueError(
                    f"closing needs a reason, one of {', '.join(CLOSE_REASONS)}; "
                    f"got {reason!r}"
                )
        elif reason is not None:
            raise ValueError(f"a reason is only given when closing, not for {status}")
        try:
            self._sync(durable=True)
            with self._transaction() as db:
                changed = db.execute(
                    "UPDATE alerts SET status = ?, close_reason = ?, "
                    "status_changed_at = ? WHERE id = ?",
                    (status, reason, time.time(), store_id),
                ).rowcount
        except sqlite3.Error as error:
            raise self._error("cannot write", error) from None
        if not changed:
            raise ValueError(f"no stored alert has id {store_id}")

    def close(self) -> None:
        """Close the connection; committed work is already on disk."""
        self._db.close()


def _code(error: Exception) -> int | None:
    """SQLite's primary result code of an error (SQLITE_FULL, ...), if it has one."""
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _to_json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library does not.
        return json.dumps(value, default=str, ensure_ascii=False)


def _from_json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _alert_row(alert: Alert) -> tuple:
    return (
        alert.key,
        alert.rule_id,
        _to_json(alert.document),
        alert.raw,
        alert.path,
        alert.offset,
        alert.line_number,
        alert.shape,
        _to_json(alert.conditions),
        alert.seen_at,
    )


def _alert_from_row(row: tuple) -> Alert:
    store_id, key, rule_id, document, raw, path, offset, line_number = row[:8]
    shape, conditions, seen_at, status, close_reason = row[8:]
    document = _from_json(document)
    # The document was stored as first raised; its workflow fields follow triage.
    alert_fields = document.get("kibana", {}).get("alert")
    if isinstance(alert_fields, dict):
        alert_fields["workflow_status"] = status
        if close_reason:
            alert_fields["workflow_reason"] = close_reason
    return Alert(
        document=document,
        raw=raw,
        path=path,
        offset=offset,
        line_number=line_number,
        rule_id=rule_id,
        key=key,
        shape=shape,
        conditions=[Condition(**c) for c in _from_json(conditions)],
        status=status,
        close_reason=close_reason,
        seen_at=seen_at,
        store_id=store_id,
    )


class FollowLock:
    """Only one process follows with a given state file at a time.

    Two followers on one state would both read every file and race on its
    checkpoints. The lock is an advisory `flock` on `STATE.lock`, released by the
    kernel when the process ends however it ends, so a kill -9 leaves nothing stale.
    The lock file itself stays (deleting a flock file races with the next taker);
    the pid in it is only for the message.
    The dashboard's own triage connection needs no lock: it only changes statuses.
    """

    def __init__(self, state_path: str | os.PathLike):
        self.state_path = os.fspath(state_path)
        self.path = self.state_path + ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `StoreError` naming the process that holds it."""
        # Limitation: there is no flock on Windows; there two followers are not
        # prevented (alerts are still stored once, by event key).
        if fcntl is None:
            return
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise StoreError(
                f"cannot create the lock file {self.path}: {error}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreError(
                f"another winlogwatch (pid {holder}) is following with the state file "
                f"{self.state_path}; stop it, or give this one its own --state FILE"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FollowLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
