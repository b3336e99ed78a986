"""`winlogwatch PATH...`: load the rules, open the state, and run the dashboard."""

from __future__ import annotations

import argparse
import gc
import logging

log = logging.getLogger("winlogwatch")

EXIT_OK, EXIT_USAGE = 0, 2


def parser() -> argparse.ArgumentParser:
    from detector.cli import add_rule_options

    parser = argparse.ArgumentParser(
        prog="winlogwatch",
        description="Follow winlogbeat NDJSON files and triage the alerts of the "
        "rules, live, in the terminal. With no arguments, runs the demo.",
        epilog="Other commands: winlogwatch demo [--speed N], "
        "winlogwatch scan PATH..., winlogwatch follow PATH...",
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="file, directory or glob to follow"
    )
    add_rule_options(parser)  # --rules DIR, --verbose: as scan and follow take them
    parser.add_argument(
        "--state", metavar="FILE", help="state database (default: per-user state dir)"
    )
    parser.add_argument(
        "--poll", action="store_true", help="poll files (network shares, WSL)"
    )
    parser.add_argument(
        "--from-end",
        action="store_true",
        help="start new files at their end instead of their beginning",
    )
    return parser


def launch_main(argv: list[str]) -> int:
    """Parse the dashboard's arguments and run it; returns the exit status."""
    if argv[:1] == ["demo"]:
        from tui.demo import demo_main

        return demo_main(argv[1:])
    args = parser().parse_args(argv)
    if not args.paths and argv:
        parser().error("give a PATH to follow (with no arguments at all: the demo)")
    if not args.paths:
        # No arguments: show what the tool does, on the sample logs.
        from tui.demo import demo_main

        return demo_main([])

    from detector.cli import rules_or_exit, set_aside_message, setup_logging
    from detector.model import Notice
    from detector.store import FollowLock, Store, StoreError

    setup_logging(args.verbose)
    tune_gc()
    rules = rules_or_exit(args.rules)
    state = args.state or Store.default_path()
    # Open the state once before the screen takes the terminal: a state file that
    # cannot be used is a plain error message, and a corrupted one is set aside here,
    # before the follower and the dashboard each open their own connection.
    lock = FollowLock(state)
    try:
        store = Store(state)
        store.close()
        lock.acquire()  # after the state proved usable: no lock file beside junk
    except StoreError as error:
        log.error("%s", error)
        return EXIT_USAGE
    app = follow_app(
        rules,
        args.paths,
        state,
        poll=args.poll,
        from_end=args.from_end,
        every_line=args.every_line,
    )
    if store.set_aside:
        app.sink.on_notice(Notice("warning", set_aside_message(store)))
    try:
        run_app(app)
    finally:
        lock.release()
    return EXIT_OK


def run_app(app) -> None:
    """Run the dashboard; SIGTERM and SIGHUP (the terminal closed) quit it as `q`
    does, so the terminal is restored and the follower commits its place."""
    import signal

    def quit_app(signum, frame) -> None:
        app.exit()

    previous = {
        sig: signal.signal(sig, quit_app) for sig in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        app.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def tune_gc() -> None:
    """Collect cycles less often: the dashboard's process holds many long-lived
    objects, and a full collection stops every thread while it walks them all.

    Measured with the follower reading 20,000 events a second: Python's default
    thresholds ran a full collection every few seconds, each pausing keys for
    140-340 ms with 100,000 alerts held.
    """
    gc.set_threshold(GC_THRESHOLDS[0], GC_THRESHOLDS[1], GC_THRESHOLDS[2])


#: Allocations before a young collection, and young (then middle) collections
#: before the next older one. Python's defaults are (700, 10, 10).
GC_THRESHOLDS = (20_000, 20, 20)


def follow_app(rules, paths, state, *, poll=False, from_end=False, every_line=False):
    """The dashboard on a follower of `paths`, storing alerts and triage in `state`."""
    from detector.detect import Detector
    from tui.app import WinlogwatchApp

    detector = Detector(rules, every_line)
    run = FollowerRun(paths, detector, state, poll=poll, from_end=from_end)
    return WinlogwatchApp(
        rules,
        follower_factory=run.bind,
        counters=lambda: detector.counters,
        files=run.file_count,
        store_path=state,
    )


class FollowerRun:
    """One follower session: its own store connection, opened in the thread that
    runs it (SQLite connections belong to one thread at a time)."""

    def __init__(self, paths, detector, state, *, poll=False, from_end=False):
        self.paths = list(paths)
        self.detector = detector
        self.state = state
        self.poll = poll
        self.from_end = from_end
        self.sink = None
        self.follower = None

    def bind(self, sink) -> FollowerRun:
        self.sink = sink
        return self

    def file_count(self) -> int:
        return len(self.follower.followed()) if self.follower else 0

    def run(self, stop) -> None:
        from detector.follow import Follower
        from detector.store import Store

        store = Store(self.state)
        try:
            self.follower = Follower(
                self.paths,
                self.detector,
                self.sink,
                store,
                from_end=self.from_end,
                poll=self.poll,
            )
            self.follower.run(stop)
        finally:
            store.close()
