"""Follow growing NDJSON files the way winlogbeat writes them, and check every line.

Each file is tracked by identity (device and inode) with a fingerprint of its first
line, not by name: a rotation renames or replaces names, an identity stays put. The
follower holds followed files open, so a file renamed or deleted under it is still
read to its end, and its inode cannot be reused while it is held.

At most `held_files_limit()` files are held open at once (a directory of 10,000
files would otherwise pass the open-files limit, and then even listing it fails).
Past that, the file read least recently is closed: "parked". A parked file is
looked at through its path (stat) and opened again when its size or time
changed; the descriptor opened must have the file's identity, and its first line
is checked as after any absence. Files are read in windows of at most that many,
so a backlog of thousands of files never asks for more descriptors.

For each chunk read, the detector runs on the complete lines, the new alerts and the
checkpoint past the last complete line are committed together, and only then are
the alerts handed to the sink. An unfinished last line is held, not evaluated, until
its newline arrives. When the state file has no room, alerts are handed on unstored
and kept in memory until a commit finds room (`_commit`).
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from detector.lines import LineSplitter
from detector.model import Alert, BadLine, Notice
from detector.store import Checkpoint, Store, StoreError, StoreFull
from detector.watch import Changes, Watch, expand_safely, names_changed, watch_dirs

if TYPE_CHECKING:
    from detector.detect import Detector

#: Bytes read (and committed) at a time: what a burst holds in memory at once.
CHUNK_BYTES = 512 * 1024

#: The fingerprint covers the first line, or this many bytes of a longer one.
# Limitation: a file emptied and refilled with the same first line (a winlogbeat
# line starts with its timestamp, so only a copy would) is taken for the same file.
FINGERPRINT_BYTES = 1024

#: The safety net: how often every file is stat'ed and every path listed again,
#: whatever the watch reported.
# Limitation: the check lists and stats every followed file each time; with
# 10,000 files it costs about 0.15 s, so following them idle takes ~15% of a
# core, and an alert can wait for a check to end (p99 ~0.3 s).
CHECK_INTERVAL = 1.0

#: The most followed files held open at once. Enough for several winlogbeat
#: folders (7 files each by default) to be held whole, and well under the usual
#: limit of 1,024 descriptors, which the state file, the watch and the dashboard
#: share. A lower limit on this process lowers it further (`held_files_limit`).
MAX_HELD_FILES = 200

#: Alerts shown but kept only in memory while the state file has no room. Past
#: this many the follower stops (`StoreError`) rather than grow without bound.
UNSTORED_LIMIT = 10_000


class Sink(Protocol):
    """Where the follower hands what it found. Calls come from the follower's thread.

    A method may block until the consumer has room: that is the back-pressure, and
    the follower reads nothing more meanwhile.
    """

    def on_alerts(self, alerts: list[Alert]) -> None: ...
    def on_bad_lines(self, bad: list[BadLine]) -> None: ...
    def on_notice(self, notice: Notice) -> None: ...


@dataclass(slots=True, eq=False)
class FollowedFile:
    """One file being followed, and how far it has been read."""

    path: str
    fd: int  # -1 while parked (closed, to be opened again through its path)
    identity: str  # "device:inode"
    fingerprint: str  # "length:hash" of the first line (or first bytes)
    splitter: LineSplitter  # its offset is the checkpoint; its tail the unfinished line
    position: int  # the next byte to read
    size: int  # as last seen
    mtime: int = 0  # modification time (ns) when it was parked

    @property
    def origin(self) -> str:
        """Names this file's content in alert keys, including after a truncation."""
        return f"{self.identity}:{self.fingerprint.partition(':')[2]}"

    def checkpoint(self) -> Checkpoint:
        done = self.splitter
        size = max(self.size, self.position)
        return Checkpoint(
            self.identity, self.fingerprint, self.path, done.offset, done.number, size
        )


def fingerprint(fd: int) -> str:
    """Hash the first line of a file (or its first bytes), as "length:hash"."""
    head = os.pread(fd, FINGERPRINT_BYTES, 0)
    end = head.find(b"\n")
    if end >= 0:
        head = head[: end + 1]
    return f"{len(head)}:{hashlib.blake2b(head, digest_size=8).hexdigest()}"


def starts_with(fd: int, fingerprint: str) -> bool:
    """Whether a file still begins with the bytes a fingerprint was taken of."""
    length, _, digest = fingerprint.partition(":")
    head = os.pread(fd, int(length), 0)
    return (
        len(head) == int(length)
        and hashlib.blake2b(head, digest_size=8).hexdigest() == digest
    )


def _is_final(fingerprint: str) -> bool:
    """A fingerprint shorter than the cap may still grow with the first line."""
    return int(fingerprint.partition(":")[0]) >= FINGERPRINT_BYTES


def held_files_limit() -> int:
    """How many followed files to hold open: `MAX_HELD_FILES`, or half this
    process's open-files limit when that is lower."""
    try:
        import resource  # not on Windows
    except ImportError:
        return MAX_HELD_FILES
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_HELD_FILES
    return max(1, min(MAX_HELD_FILES, soft // 2))


class Follower:
    """Follow files, globs and directories until a stop event is set.

    `store` keeps checkpoints and alerts across restarts; without one, alerts are
    de-duplicated in memory for this run only. The store is used only from the
    thread that calls `run` (open it anywhere; see `Store`) and is not closed here.
    With `from_end`, files the store does not know start at their current end.
    With `poll`, every file is stat'ed every `poll_interval` seconds instead of
    waiting for file system events (network shares, WSL). At most `max_open`
    files are held open at once (default: `held_files_limit()`).
    """

    def __init__(
        self,
        paths: list[str],
        detector: Detector,
        sink: Sink,
        store: Store | None = None,
        *,
        from_end: bool = False,
        poll: bool = False,
        poll_interval: float = 0.3,
        check_interval: float = CHECK_INTERVAL,
        max_open: int | None = None,
    ):
        self.paths = list(paths)
        self.detector = detector
        self.sink = sink
        self.store = store
        self.from_end = from_end
        self.poll = poll
        self.poll_interval = poll_interval
        self.check_interval = poll_interval if poll else check_interval
        self.max_open = max_open or held_files_limit()
        # By identity. Changed by the follower's thread only; elsewhere, use
        # `followed()`.
        self.files: dict[str, FollowedFile] = {}
        self._followed: tuple[str, ...] = ()  # replaced whole: safe to read elsewhere
        self._raised: set[tuple[str, str]] = set()  # (key, rule_id), without a store
        #: Alerts handed to the sink; the detector's count also holds the repeats
        #: of alerts raised before (an event read again, or from a copy).
        self.shown = 0
        # Alerts handed on while the state file was full, not stored yet, by
        # (key, rule_id): reading their lines again does not show them twice.
        self._unstored: dict[tuple[str, str], Alert] = {}
        self._full = False  # the last write to the store found no room
        self._retry_at = 0.0  # while full, no write is tried before this time
        self._saved: dict[str, Checkpoint] = {}
        self._waiting: set[str] = set()  # arguments that name nothing yet
        self._unreadable: dict[str, str] = {}  # path -> the reason already reported
        self._unlistable: dict[str, str] = {}  # argument -> the reason reported
        self._present: set[str] = set()  # identities found by the last rescan
        # The files held open, least recently read first (by identity).
        self._open_files: OrderedDict[str, FollowedFile] = OrderedDict()
        # The followed set it was built for, and the files by absolute path.
        self._by_path: tuple[tuple[str, ...] | None, dict[str, FollowedFile]] = (
            None,
            {},
        )
        self._started = False
        self._stop = threading.Event()

    def followed(self) -> list[str]:
        """The paths being followed now (callable from any thread)."""
        return list(self._followed)

    # The loop

    def run(self, stop: threading.Event) -> None:
        """Follow until `stop` is set; return soon after, everything read committed.

        File problems become notices to the sink. A state file that cannot be
        written raises `StoreError`: alerts must not be shown that were not stored.
        """
        self._stop = stop
        self._saved = self.store.checkpoints() if self.store else {}
        watch = self._watch(None)
        try:
            self._rescan()
            self._report_lost()
            self._started = True
            self._notice("info", f"following {len(self.files)} file(s)")
            next_check = time.monotonic() + self.check_interval
            behind = not self._drain(list(self.files.values()), next_check)

            while not stop.is_set():
                # Behind (a backlog or a burst longer than the check interval):
                # no waiting, the periodic check runs now and reading goes on.
                timeout = 0.0 if behind else max(0.0, next_check - time.monotonic())
                changes = watch.wait(timeout, stop)
                if stop.is_set():
                    break
                now = time.monotonic()
                if (
                    behind
                    or watch.polling
                    or now >= next_check
                    or names_changed(changes)
                ):
                    next_check = now + self.check_interval
                    watch = self._watch(watch)
                    self._rescan()
                    behind = not self._drain(
                        list(self.files.values()), next_check, True
                    )
                else:
                    behind = not self._drain(self._changed_files(changes), next_check)
                self._store_unstored()
            self._store_unstored(stopping=True)
        finally:
            watch.close()
            for followed in list(self._open_files.values()):
                self._close(followed)
            self.files.clear()
            self._followed = ()

    def _watch(self, current: Watch | None) -> Watch:
        """The watch for the directories the paths live in, rebuilt when they change."""
        dirs = self._watch_dirs()
        if current is not None and current.dirs == sorted(dirs):
            return current
        if current is not None:
            current.close()
        if self.poll:
            return Watch(dirs, poll_interval=self.poll_interval)
        try:
            return Watch(dirs)
        except OSError as error:  # the inotify watch limit, or a directory just gone
            self._notice(
                "warning",
                f"cannot watch {', '.join(dirs)} ({error}); "
                f"checking every {self.check_interval:g} s instead",
            )
            return Watch(dirs, poll_interval=self.check_interval)

    def _watch_dirs(self) -> set[str]:
        return watch_dirs(self.paths, [f.path for f in self.files.values()])

    def _changed_files(self, changes: Changes) -> list[FollowedFile]:
        # Indexed by absolute path, rebuilt when the followed set or a name changed
        # (both replace `_followed`): a wake-up costs what changed, not the number
        # of files followed.
        if self._by_path[0] is not self._followed:
            index = {os.path.abspath(f.path): f for f in self.files.values()}
            self._by_path = (self._followed, index)
        index = self._by_path[1]
        found = (index.get(os.path.abspath(path)) for _, path in changes)
        return list({id(f): f for f in found if f is not None}.values())

    # Which files: names to identities

    def _rescan(self) -> None:
        """List every path again: open new files, note renames, release lost ones."""
        found: dict[str, str] = {}  # identity -> path
        for arg in self.paths:
            names, problem = expand_safely(arg)
            if problem and self._unlistable.get(arg) != problem:
                self._notice("error", f"cannot list {arg}: {problem}", arg)
            if problem:
                self._unlistable[arg] = problem
            else:
                self._unlistable.pop(arg, None)
            if not names and arg not in self._waiting:
                self._waiting.add(arg)
                self._notice(
                    "warning", f"nothing to follow at {arg} yet; waiting for it", arg
                )
            elif names and arg in self._waiting:
                self._waiting.discard(arg)
            for name in names:
                try:
                    info = os.stat(name)
                except OSError:
                    continue  # gone between listing and stat: the next rescan knows
                found.setdefault(f"{info.st_dev}:{info.st_ino}", name)

        renamed = []
        for identity, name in found.items():
            followed = self.files.get(identity)
            if followed is None:
                self._open(name)
            elif followed.path != name:
                renamed.append(f"{followed.path} -> {name}")
                followed.path = name
                self._commit(followed, [])
        if renamed:
            self._notice("info", "renamed (rotation): " + ", ".join(renamed))

        # A path that could not be listed (out of descriptors, a share gone for a
        # moment) says nothing about its files: let none go until it lists again.
        if not any(arg in self._unlistable for arg in self.paths):
            for identity in [i for i in self.files if i not in found]:
                self._release(self.files[identity])
        self._present = set(found)
        self._followed = tuple(f.path for f in self.files.values())

    def _open(self, path: str) -> None:
        try:
            # Non-blocking, so a FIFO named by mistake cannot hang the follower.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            self._unreadable_file(path, error.strerror or str(error))
            return
        try:
            info = os.fstat(fd)
            identity = f"{info.st_dev}:{info.st_ino}"
            if not stat.S_ISREG(info.st_mode):
                os.close(fd)
                self._unreadable_file(path, "not a regular file")
                return
            if identity in self.files:  # renamed between listing and opening
                os.close(fd)
                return
            followed = self._place(path, fd, identity, info.st_size)
        except OSError as error:
            os.close(fd)
            self._unreadable_file(path, error.strerror or str(error))
            return
        if self._unreadable.pop(path, None):
            self._notice("info", f"{path} can be read now", path)
        self.files[identity] = followed
        self._keep_open(followed)
        if self._started:
            self._notice("info", f"following {path} (new file)", path)

    def _place(self, path: str, fd: int, identity: str, size: int) -> FollowedFile:
        """Where reading starts: the saved checkpoint, the end, or the start."""
        saved = self._saved.pop(identity, None)
        offset = number = 0
        if saved is not None:
            same = starts_with(fd, saved.fingerprint)
            if same and saved.offset <= size:
                offset, number = saved.offset, saved.line_number
            elif same:
                message = (
                    f"{path} was truncated since it was last read; reading it again"
                )
                self._notice("warning", message, path)
            else:
                # Same inode, other content: the old file was deleted and its inode
                # reused, or it was rewritten while nobody watched.
                self._notice(
                    "warning",
                    f"{path} is not the file last read under its identity; "
                    "reading it from the start",
                    path,
                )
        elif self.from_end and not self._started:
            offset, number = _end_of_last_line(fd, size)
        splitter = LineSplitter(offset, number)
        return FollowedFile(path, fd, identity, fingerprint(fd), splitter, offset, size)

    def _release(self, followed: FollowedFile) -> None:
        """Read a file that left the followed set to its end, then close it."""
        del self.files[followed.identity]
        self._followed = tuple(f.path for f in self.files.values())
        try:
            reopened = followed.fd >= 0 or self._reopen(followed)
        except OSError:
            reopened = False
        if not reopened:
            self._parked_file_gone(followed)
            return
        try:
            finished = self._drain([followed], None)
            deleted = os.fstat(followed.fd).st_nlink == 0
        except OSError:
            finished = deleted = False
        finally:
            self._close(followed)
        if deleted and not finished:
            # Stopping while a deleted file still had lines: they cannot be
            # read after a restart, so say how much is lost.
            self._lost(followed.path, followed.size - followed.position)
        elif followed.splitter.pending:
            self._notice(
                "warning",
                f"{followed.path} ended with an unfinished line "
                f"({followed.splitter.pending} bytes), not evaluated",
                followed.path,
            )
        if deleted:
            self._notice(
                "info", f"{followed.path} was deleted; read to its end", followed.path
            )
            if self.store:
                self.store.forget(followed.identity)
        else:
            # Renamed out of what is followed; its checkpoint stays for later runs.
            message = f"{followed.path} is no longer followed; read to its end"
            self._notice("info", message, followed.path)

    def _report_lost(self) -> None:
        """Say which files vanished while nobody read them, and how much was unread."""
        # Limitation: a file created and deleted between two looks (the periodic
        # check runs every second even during a burst) is never known, so never
        # reported; winlogbeat would have to write 70 MiB within that second.
        dirs = {os.path.abspath(d) for d in self._watch_dirs()}
        for identity, saved in list(self._saved.items()):
            if identity in self._present:
                continue  # there, but could not be opened: reported as such
            if os.path.dirname(os.path.abspath(saved.path)) not in dirs:
                continue  # followed by another run with other paths
            del self._saved[identity]
            self._lost(saved.path, saved.size - saved.offset)
            if self.store:
                self.store.forget(identity)

    def _lost(self, path: str, unread: int) -> None:
        if unread > 0:
            self._notice(
                "warning",
                f"{path} was deleted or moved away before it was read to its end: "
                f"{unread} bytes never read (winlogwatch was stopped, or fell behind "
                "the rotation)",
                path,
            )

    def _unreadable_file(self, path: str, reason: str) -> None:
        if self._unreadable.get(path) != reason:
            self._unreadable[path] = reason
            self._notice(
                "error", f"cannot read {path}: {reason}; following the others", path
            )

    # Holding files open: at most `max_open`, the least recently read parked first

    def _keep_open(self, followed: FollowedFile) -> None:
        """Note an open file as just read; park the least recently read past the
        limit."""
        self._open_files[followed.identity] = followed
        self._open_files.move_to_end(followed.identity)
        while len(self._open_files) > self.max_open:
            self._park(next(iter(self._open_files.values())))

    def _park(self, followed: FollowedFile) -> None:
        """Close a file to free its descriptor, noting its size and time."""
        # Limitation: a parked file that grows and is deleted (or renamed out of
        # what is followed) before the next look loses the lines it grew by; the
        # loss is reported when a look saw them. Only files idle the longest
        # are parked, and winlogbeat deletes only its oldest.
        # Limitation: a parked file's unfinished last line stays in memory (up
        # to the line cap), as for an open one.
        try:
            info = os.fstat(followed.fd)
            followed.size, followed.mtime = info.st_size, info.st_mtime_ns
        except OSError:
            followed.mtime = -1  # unknown: the next look opens it again
        self._close(followed)

    def _parked_changed(self, followed: FollowedFile) -> bool:
        """Whether a parked file may have something to read (or was truncated or
        rewritten), from a stat of its path; False when the path names another
        file now (the next rescan sorts out the names)."""
        try:
            info = os.stat(followed.path)
        except FileNotFoundError:
            return False
        if f"{info.st_dev}:{info.st_ino}" != followed.identity:
            return False
        followed.size = info.st_size
        return info.st_size != followed.position or info.st_mtime_ns != followed.mtime

    def _reopen(self, followed: FollowedFile) -> bool:
        """Open a parked file again through its path, checking that the path still
        names it; then check it as after any absence (truncated? rewritten?)."""
        try:
            fd = os.open(followed.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            info = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        if f"{info.st_dev}:{info.st_ino}" != followed.identity:
            os.close(fd)
            return False
        followed.fd = fd
        self._keep_open(followed)
        self._check(followed, verify=True)
        return True

    def _close(self, followed: FollowedFile) -> None:
        self._open_files.pop(followed.identity, None)
        if followed.fd >= 0:
            os.close(followed.fd)
            followed.fd = -1

    def _parked_file_gone(self, followed: FollowedFile) -> None:
        """A parked file left the followed set: it cannot be read to its end."""
        self._lost(followed.path, followed.size - followed.position)
        self._notice(
            "info",
            f"{followed.path} was deleted or moved away while parked (more than "
            f"{self.max_open} files are followed); it had been read as far as it "
            "was last seen",
            followed.path,
        )

    # Reading

    def _drain(
        self,
        files: Iterable[FollowedFile],
        deadline: float | None,
        verify: bool = False,
    ) -> bool:
        """Read the files round-robin, a chunk each, until all are at their end.

        Returns False if it stopped early: when asked to, or at `deadline`, so that
        the periodic check still runs during a long burst.
        """
        waiting: deque[FollowedFile] = deque()
        for followed in files:
            try:
                if self._check(followed, verify):
                    waiting.append(followed)
            except OSError as error:
                self._read_failed(followed, error)

        # A window of at most `max_open` files is read at a time; the rest wait
        # for a place in it, so that a backlog of thousands of files is read
        # without parking and opening them again at every round.
        reading: list[FollowedFile] = []
        while reading or waiting:
            if self._stop.is_set() or (
                deadline is not None and time.monotonic() > deadline
            ):
                return False
            while waiting and len(reading) < self.max_open:
                reading.append(waiting.popleft())
            still = []
            for followed in reading:
                try:
                    if followed.fd < 0 and not self._reopen(followed):
                        continue  # no longer at its path: the next rescan finds it
                    self._keep_open(followed)
                    if self._read_chunk(followed):
                        still.append(followed)
                except OSError as error:
                    self._read_failed(followed, error)
            reading = still
        return True

    def _check(self, followed: FollowedFile, verify: bool) -> bool:
        """Notice a truncation or rewrite; say whether there is anything to read."""
        if followed.fd < 0:
            return self._parked_changed(followed)
        size = os.fstat(followed.fd).st_size
        followed.size = size
        if size < followed.position:
            self._restart(followed, f"was truncated to {size} bytes")
        elif verify and followed.position and not self._same_start(followed):
            self._restart(followed, "was rewritten (its first line changed)")
        return size > followed.position

    def _same_start(self, followed: FollowedFile) -> bool:
        return starts_with(followed.fd, followed.fingerprint)

    def _restart(self, followed: FollowedFile, what: str) -> None:
        message = f"{followed.path} {what}; reading it again from the start"
        self._notice("warning", message, followed.path)
        followed.splitter = LineSplitter()
        followed.position = 0
        followed.fingerprint = fingerprint(followed.fd)

    def _read_chunk(self, followed: FollowedFile) -> bool:
        """Read, check, commit and hand on one chunk. False at the end of the file."""
        data = os.pread(followed.fd, CHUNK_BYTES, followed.position)
        if not data:
            return False
        if followed.position == 0 or not _is_final(followed.fingerprint):
            # The first line is being read, or was still being written when last
            # fingerprinted: take it now, as it is.
            followed.fingerprint = fingerprint(followed.fd)
        elif not self._same_start(followed):
            # Checked after reading: a file emptied and written again from its
            # start has its new first line in place before any byte just read.
            self._restart(followed, "was rewritten (its first line changed)")
            return True
        followed.position += len(data)

        alerts: list[Alert] = []
        bad: list[BadLine] = []
        before = followed.splitter.offset
        lines = followed.splitter.feed_blocks(data)
        self.detector.check_lines(lines, followed.path, followed.origin, alerts, bad)

        if followed.splitter.offset != before:
            alerts = self._commit(followed, alerts)
            if alerts:
                self.shown += len(alerts)
                self.sink.on_alerts(alerts)
            if bad:
                self.sink.on_bad_lines(bad)
        return True

    def _commit(self, followed: FollowedFile, alerts: list[Alert]) -> list[Alert]:
        """Store alerts with the checkpoint past them; return those to hand on.

        When the state file has no room, nothing is written (the checkpoint stays
        before these lines) and the alerts not stored before are handed on all the
        same: an analyst must not miss an alert for a full disk. They are held, and
        the next commit that finds room stores them in the same transaction as its
        checkpoint, so no checkpoint is saved past an alert that is not stored.
        """
        if self.store is not None:
            unstored = self._unstored
            fresh = [a for a in alerts if (a.key, a.rule_id) not in unstored]
            if self._full and time.monotonic() < self._retry_at:
                return self._hold(fresh)  # no room a moment ago: try again later
            try:
                stored = self.store.commit(
                    [*self._unstored.values(), *fresh], [followed.checkpoint()]
                )
            except StoreFull as error:
                self._no_room(error)
                return self._hold(fresh)
            self._room_again()
            new = {id(alert) for alert in stored}
            return [alert for alert in fresh if id(alert) in new]
        new = []
        for alert in alerts:
            if (alert.key, alert.rule_id) not in self._raised:
                self._raised.add((alert.key, alert.rule_id))
                new.append(alert)
        return new

    def _no_room(self, error: StoreFull) -> None:
        if not self._full:
            self._notice(
                "error",
                f"{error} New alerts are still shown, and held in memory (up to "
                f"{UNSTORED_LIMIT:,}) until they can be stored.",
            )
        self._full = True
        # Every try serialises all unstored alerts again: at most one per check.
        self._retry_at = time.monotonic() + self.check_interval

    def _hold(self, alerts: list[Alert]) -> list[Alert]:
        """Keep alerts the full state file could not take; return those to show.

        Alerts already stored (lines read again) or already kept are left out."""
        try:
            stored = self.store.stored_keys(alerts)  # reading needs no room
        except StoreError:
            stored = set()  # cannot tell: rather shown twice than not at all
        shown = []
        for alert in alerts:
            pair = (alert.key, alert.rule_id)
            if pair not in stored and pair not in self._unstored:
                self._unstored[pair] = alert
                shown.append(alert)
        if len(self._unstored) > UNSTORED_LIMIT:
            # The caller would hand these on; it never gets the chance.
            self.shown += len(shown)
            self.sink.on_alerts(shown)
            raise StoreError(
                f"the state file {self.store.path} stayed full for "
                f"{len(self._unstored):,} alerts, too many to hold; stopped. Free "
                "space on its disk and start again: reading resumes after the last "
                "alert stored."
            )
        return shown

    def _store_unstored(self, stopping: bool = False) -> None:
        """While the state file is full, try now and then to store the alerts
        shown meanwhile, with every file's checkpoint."""
        if not self._full or (not stopping and time.monotonic() < self._retry_at):
            return
        checkpoints = [followed.checkpoint() for followed in self.files.values()]
        try:
            self.store.commit(list(self._unstored.values()), checkpoints)
        except StoreFull as error:
            self._no_room(error)
            if stopping and self._unstored:
                # Limitation: nothing on disk says these were shown, so the next
                # start reads their lines again and shows them a second time.
                self._notice(
                    "warning",
                    f"{len(self._unstored):,} alert(s) shown while the state file "
                    f"{self.store.path} was full are not stored; the next start "
                    "reads their lines again and raises them again",
                )
            return
        self._room_again()

    def _room_again(self) -> None:
        if not self._full:
            return
        self._full = False
        message = f"the state file {self.store.path} has room again"
        if self._unstored:
            message += (
                f": stored the {len(self._unstored):,} alert(s) shown while it was full"
            )
        self._notice("info", message)
        self._unstored.clear()

    def _read_failed(self, followed: FollowedFile, error: OSError) -> None:
        # Let go of it; the next rescan opens it again and resumes at the checkpoint.
        self._unreadable_file(followed.path, error.strerror or str(error))
        if self.files.pop(followed.identity, None) is not None:
            self._saved[followed.identity] = followed.checkpoint()
            self._close(followed)
            self._followed = tuple(f.path for f in self.files.values())

    def _notice(self, level: str, message: str, path: str | None = None) -> None:
        self.sink.on_notice(Notice(level, message, path))


def _end_of_last_line(fd: int, size: int) -> tuple[int, int]:
    """The offset after the last complete line, and how many lines come before it."""
    lines = end = position = 0
    while position < size:
        chunk = os.pread(fd, min(CHUNK_BYTES, size - position), position)
        if not chunk:
            break
        count = chunk.count(b"\n")
        if count:
            lines += count
            end = position + chunk.rindex(b"\n") + 1
        position += len(chunk)
    return end, lines
