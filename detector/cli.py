"""Headless commands: `winlogwatch scan` and `winlogwatch follow`.

Alerts go to stdout, one JSON document per line; everything meant for a person
(progress, bad lines, the summary) goes to stderr through `logging`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import Any, BinaryIO

import orjson

from detector.detect import Detector
from detector.model import Alert, BadLine, Notice
from detector.rules import Rule, load_rules
from detector.scan import default_jobs, scan_paths

log = logging.getLogger("winlogwatch")

EXIT_OK, EXIT_ALERTS, EXIT_USAGE = 0, 1, 2


def add_rule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="DIR",
        help="also load the *.toml rules in DIR (repeatable)",
    )
    parser.add_argument(
        "--every-line",
        action="store_true",
        help="parse every line, not only those that hold a rule's strings: slower, "
        "but every malformed line is reported",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="say more on stderr"
    )


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="winlogwatch: %(message)s",
        stream=sys.stderr,
    )


def rules_or_exit(extra_dirs: list[str]) -> list[Rule]:
    """Load rules, report each one that failed; exit 2 when none loaded."""
    rules, errors = load_rules(extra_dirs)
    for error in errors:
        log.error("rule skipped: %s", error)
    if not rules:
        log.error("no rule loaded; nothing to detect")
        raise SystemExit(EXIT_USAGE)
    log.debug("rules: %s", ", ".join(rule.name for rule in rules))
    return rules


def set_aside_message(store) -> str:
    """What to tell the user when a corrupted state file was replaced."""
    return (
        f"the state file {store.path} was corrupted: moved it to {store.set_aside} "
        "and started a new one (earlier checkpoints and triage are in the old file)"
    )


def dump(document: dict[str, Any]) -> bytes:
    """One alert as one JSON line. Values orjson refuses (huge ints) become text."""
    try:
        return orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        # ASCII escapes: a lone surrogate in a value must not break the line.
        return (json.dumps(document, default=str) + "\n").encode()


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number of 1 or more")
    return number


def scan_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="winlogwatch scan",
        description="Run the rules over files once; print each alert as a JSON line.",
        epilog="Exit status: 0 scan completed, 1 alerts found with --fail-on-alert, "
        "2 usage error or no input could be read.",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="file, directory, glob, or - for stdin"
    )
    parser.add_argument(
        "--fail-on-alert", action="store_true", help="exit 1 when there were alerts"
    )
    parser.add_argument(
        "--jobs",
        type=_positive,
        metavar="N",
        default=default_jobs(),
        help="processes that scan parts of a big file side by side "
        "(default: the usable cores, %(default)s here; 1 reads in this process only)",
    )
    add_rule_options(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    detector = Detector(rules_or_exit(args.rules), args.every_line)
    out = sys.stdout.buffer

    def on_alert(alert: Alert) -> None:
        out.write(dump(alert.document))

    def on_bad_line(bad: BadLine) -> None:
        log.warning("%s", bad)

    result = scan_paths(args.paths, detector, on_alert, on_bad_line, args.jobs)
    out.flush()
    for problem in result.unreadable:
        log.error("cannot read %s", problem)

    counters = detector.counters
    shapes = ", ".join(
        f"{name} {count}" for name, count in counters.shapes.most_common()
    )
    log.info(
        "scanned %d file(s): %d lines, %d events, %d alerts, %d unusable lines, "
        "%d repaired (bad UTF-8); %d lines not parsed (no rule could match them); "
        "shapes of the lines read: %s",
        len(result.files),
        counters.lines,
        counters.events,
        counters.alerts,
        counters.bad,
        counters.repaired,
        counters.skipped,
        shapes or "none",
    )
    if not result.files:
        return EXIT_USAGE
    if args.fail_on_alert and counters.alerts:
        return EXIT_ALERTS
    return EXIT_OK


class _PrintSink:
    """Alerts to stdout as they are committed; bad lines and notices to the log."""

    def __init__(self, out: BinaryIO):
        self.out = out

    def on_alerts(self, alerts: list[Alert]) -> None:
        # Limitation: alerts are stored before they are printed, so a kill -9
        # between the two leaves them out of stdout (never twice); the state file
        # holds every one. On a full state disk they are printed unstored (see
        # `Follower._commit`).
        self.out.write(b"".join(dump(alert.document) for alert in alerts))
        # One flush per batch: a reader of the pipe sees each alert as it is found.
        self.out.flush()

    def on_bad_lines(self, bad: list[BadLine]) -> None:
        for line in bad:
            log.warning("%s", line)

    def on_notice(self, notice: Notice) -> None:
        log.log(_NOTICE_LEVELS.get(notice.level, logging.INFO), "%s", notice.message)


_NOTICE_LEVELS = {
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

#: `follow` stopped because the state file could not be written.
EXIT_STATE_FAILED = 1


def follow_main(argv: list[str]) -> int:
    # Imported here: `scan` starts faster without watchfiles and SQLite.
    from detector.follow import Follower
    from detector.store import FollowLock, Store, StoreError

    parser = argparse.ArgumentParser(
        prog="winlogwatch follow",
        description="Follow files as they grow and print each alert as a JSON line "
        "the moment its line is complete, until SIGINT or SIGTERM.",
        epilog="Exit status: 0 stopped by a signal, 1 the state file failed while "
        "following, 2 usage error or the state file cannot be opened or written "
        "(read-only, or no room to open it).",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="file, directory or glob to follow"
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        help="SQLite file for checkpoints and alerts (default: %(default)s)",
        default=Store.default_path(),
    )
    parser.add_argument(
        "--from-end",
        action="store_true",
        help="start files the state does not know at their end, not their start",
    )
    parser.add_argument(
        "--poll",
        action="store_true",
        help="stat the files on a timer instead of waiting for file system events "
        "(network shares, WSL)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.3,
        metavar="SECONDS",
        help="time between two looks with --poll (default: %(default)s)",
    )
    add_rule_options(parser)
    args = parser.parse_args(argv)
    if "-" in args.paths:
        # A pipe has no place to come back to after a restart.
        parser.error("follow reads files, not stdin; `winlogwatch scan -` reads stdin")
    setup_logging(args.verbose)

    detector = Detector(rules_or_exit(args.rules), args.every_line)
    # The state file first: one that cannot be used gets no lock file beside it.
    lock = FollowLock(args.state)
    try:
        store = Store(args.state)
    except StoreError as error:
        log.error("%s", error)
        return EXIT_USAGE
    try:
        lock.acquire()
    except StoreError as error:
        store.close()
        log.error("%s", error)
        return EXIT_USAGE
    if store.set_aside:
        log.warning(set_aside_message(store))

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    follower = Follower(
        args.paths,
        detector,
        _PrintSink(sys.stdout.buffer),
        store,
        from_end=args.from_end,
        poll=args.poll,
        poll_interval=args.poll_interval,
    )
    try:
        follower.run(stop)
    except StoreError as error:
        log.error("%s", error)
        return EXIT_STATE_FAILED
    except BrokenPipeError:
        # The reader of stdout went away; what was read is committed.
        return EXIT_OK
    finally:
        store.close()
        lock.release()

    counters = detector.counters
    log.info(
        "stopped: %d lines, %d events, %d alerts printed "
        "(%d more matched events already alerted on), %d unusable lines",
        counters.lines,
        counters.events,
        follower.shown,
        counters.alerts - follower.shown,
        counters.bad,
    )
    return EXIT_OK


def main(argv: list[str]) -> int:
    """Entry for the headless commands; argv starts with the command name."""
    command, rest = argv[0], argv[1:]
    if command == "scan":
        return scan_main(rest)
    if command == "follow":
        return follow_main(rest)
    raise SystemExit(f"unknown command {command}")
