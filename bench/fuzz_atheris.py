"""Coverage-guided fuzzing of the per-line path and the EQL compiler with atheris.

Not part of the test suite, and atheris is not a dependency: install it by hand
(`.venv/bin/pip install atheris`), then run for as long as you like, e.g.

    .venv/bin/python bench/fuzz_atheris.py -max_total_time=120 -max_len=4096

The first input byte picks the target; the rest is a line, or a query. A crash is
any exception other than the outcomes each target promises (alerts or a bad line;
a query or an EqlError), or an alert document that does not serialise.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from detector.cli import dump
    from detector.detect import Detector
    from detector.eql import EqlError, compile_query
    from detector.lines import RawLine
    from detector.model import BadLine
    from detector.rules import load_rules

RULES = load_rules()[0]
# A hit to mutate, so the alert path is reached without waiting for luck.
SEED_EVENT = (
    b'{"event":{"code":"10","category":["process"]},"process":{"name":"lsass.exe"},'
    b'"winlog":{"event_data":{"GrantedAccess":"0x40","CallTrace":"UNKNOWN(1)"}}}'
)


def check_line(data: bytes) -> None:
    outcome = Detector(RULES).check(RawLine(1, 0, data), "fuzz.ndjson", "fuzz")
    if isinstance(outcome, BadLine):
        return
    for alert in outcome:
        dump(alert.document)
        RULES[0].query.explain(alert.document)


def check_query(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        query = compile_query(text)
    except EqlError as error:
        assert error.line >= 1 and error.column >= 1, error
        return
    event = {"a": text, "process": {"name": [text, 1]}}
    query.matches(event)
    query.explain(event)
    query.literals()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] & 1:
        check_line(data[1:])
        check_line(SEED_EVENT[: len(data)] + data[1:] + SEED_EVENT[len(data) :])
    else:
        check_query(data[1:])
        check_query(b"any where " + data[1:])


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
