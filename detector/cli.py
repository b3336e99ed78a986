"""Headless commands: `winlogwatch scan` and `winlogwatch follow`.

Alerts go to stdout, one JSON document per line; everything meant for a person
(progress, bad lines, the summary) goes to stderr through `logging`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import orjson

from detector.detect import Detector
from detector.model import Alert, BadLine
from detector.rules import Rule, load_rules
from detector.scan import scan_paths

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


def dump(document: dict[str, Any]) -> bytes:
    """One alert as one JSON line. Values orjson refuses (huge ints) become text."""
    try:
        return orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        import json

        return (json.dumps(document, default=str, ensure_ascii=False) + "\n").encode()


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
    add_rule_options(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    detector = Detector(rules_or_exit(args.rules))
    out = sys.stdout.buffer

    def on_alert(alert: Alert) -> None:
        out.write(dump(alert.document))

    def on_bad_line(bad: BadLine) -> None:
        log.warning("%s", bad)

    result = scan_paths(args.paths, detector, on_alert, on_bad_line)
    out.flush()
    for problem in result.unreadable:
        log.error("cannot read %s", problem)

    counters = detector.counters
    shapes = ", ".join(
        f"{name} {count}" for name, count in counters.shapes.most_common()
    )
    log.info(
        "scanned %d file(s): %d lines, %d events, %d alerts, %d unusable lines, "
        "%d repaired (bad UTF-8); shapes: %s",
        len(result.files),
        counters.lines,
        counters.events,
        counters.alerts,
        counters.bad,
        counters.repaired,
        shapes or "none",
    )
    if not result.files:
        return EXIT_USAGE
    if args.fail_on_alert and counters.alerts:
        return EXIT_ALERTS
    return EXIT_OK


def main(argv: list[str]) -> int:
    """Entry for the headless commands; argv starts with the command name."""
    command, rest = argv[0], argv[1:]
    if command == "scan":
        return scan_main(rest)
    if command == "follow":
        from detector.follow_cli import follow_main

        return follow_main(rest)
    raise SystemExit(f"unknown command {command}")
