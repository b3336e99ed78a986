"""Wake-ups for the follower: something changed in one of these directories.

The directories are watched, never the files: a watch on a file path goes blind
once the file is renamed away (watchfiles #235), and a file that does not exist
yet cannot be watched at all. The follower decides what a change means; this
module only says when to look and, where it can, at which paths.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

from watchfiles import Change
from watchfiles._rust_notify import RustNotify

from detector.paths import expand, has_magic

#: How long the watcher waits for quiet after a change before it reports. It sets
#: the latency and the idle cost: RustNotify wakes every step to look at its queue
#: and the stop event, and reports one quiet step after the first change it sees
#: (1.5 steps on average). Measured here with bench/follow_latency.py, append to
#: alert on stdout: 5 ms gave p50 12 ms, p99 26 ms at 1.2% of a core idle; 10 ms
#: gave p50 18 ms, p99 29 ms at 0.5%; 7 ms gives p50 13 ms, p99 21 ms at 0.7%.
STEP_MS = 7

#: The longest a steady stream of changes is gathered before it is reported.
DEBOUNCE_MS = 30

#: What a change report holds: (kind, path) pairs, kind a `watchfiles.Change`.
Changes = set[tuple[Change, str]]


class Watch:
    """Report changes in a set of directories, non-recursively.

    `wait` returns the changes seen, or an empty set when the timeout passed or the
    watch polls (then every followed file must be looked at).
    """

    def __init__(self, dirs: list[str], poll_interval: float | None = None):
        self.dirs = sorted(set(dirs))
        self.polling = poll_interval is not None
        self._interval = poll_interval or 0.0
        self._notify: RustNotify | None = None
        if not self.polling and self.dirs:
            self._notify = RustNotify(self.dirs, False, False, 0, False, True)

    def wait(self, timeout: float, stop: threading.Event) -> Changes:
        """Block until something changed, `timeout` seconds passed, or `stop` is set."""
        if self._notify is None:
            # Polling (network shares, WSL): the caller stats every followed file
            # and lists every directory when this returns. That is what
            # watchfiles' own polling would do, without its thread and its
            # second copy of every directory's metadata.
            stop.wait(min(timeout, self._interval) if self.polling else timeout)
            return set()
        result = self._notify.watch(
            DEBOUNCE_MS, STEP_MS, max(1, int(timeout * 1000)), stop
        )
        if isinstance(result, str):  # "timeout", "stop" or "signal"
            return set()
        return {(Change(kind), path) for kind, path in result}

    def close(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None


def watch_dirs(paths: Iterable[str], followed: Iterable[str]) -> set[str]:
    """The directories to watch for `paths` (files, globs, directories) to change.

    `followed` adds the directories of files being followed now. A directory that
    does not exist yet is watched through the nearest one that does, so that its
    creation wakes the follower.
    """
    # Limitation: a recursive glob (`**`) watches only the directories it matched
    # in; a new subdirectory is found by the follower's periodic check.
    dirs = {os.path.dirname(path) or "." for path in followed}
    for path in paths:
        if has_magic(path):
            base = path[: min(path.index(c) for c in "*?[" if c in path)]
            dirs.add(os.path.dirname(base) or ".")
            dirs.update(os.path.dirname(p) or "." for p in expand_safely(path)[0])
        elif os.path.isdir(path):
            dirs.add(path)
        else:
            dirs.add(os.path.dirname(path) or ".")
    return {_existing_ancestor(os.path.abspath(d)) for d in dirs}


def names_changed(changes: Changes) -> bool:
    """Whether a file may have appeared, gone or been renamed (not just grown)."""
    return any(kind != Change.modified for kind, _ in changes)


def expand_safely(path: str) -> tuple[list[str], str | None]:
    """The files `path` names now, and why it could not be listed, if it could not."""
    try:
        return expand(path), None
    except OSError as error:  # an unreadable directory
        return [], error.strerror or str(error)


def _existing_ancestor(path: str) -> str:
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path
