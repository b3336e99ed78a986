"""Rules are data: TOML files in the layout of Elastic's detection-rules repository.

The bundled rules are the TOML files in this package; `--rules DIR` adds a user's
own. A file that does not load is reported with its path, line and column and
skipped; every other rule still runs.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from detector.eql import EqlError, Query, compile_query

SEVERITIES = ("low", "medium", "high", "critical")

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_QUERY_KEY = re.compile(r"^[ \t]*query[ \t]*=[ \t]*('''|\"\"\"|'|\")", re.MULTILINE)


@dataclass(slots=True)
class Rule:
    """One loaded detection rule: its metadata and its compiled query."""

    rule_id: str
    name: str
    description: str
    severity: str
    risk_score: int
    query: Query
    path: str
    note: str = ""
    setup: str = ""
    references: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    threat: list[dict[str, Any]] = field(default_factory=list)
    version: int | None = None
    author: list[str] = field(default_factory=list)
    license: str = ""
    index: list[str] = field(default_factory=list)
    interval: str = ""
    lookback: str = ""  # the rule's `from`, a keyword in Python
    max_signals: int | None = None
    timestamp_override: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class RuleError:
    """A rule file that could not be loaded, and where the problem is."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class _Invalid(Exception):
    def __init__(self, message: str, line: int = 1, column: int = 1):
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


def bundled_rule_files() -> list[Path]:
    """The rules shipped with winlogwatch."""
    folder = resources.files(__name__)
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml"))


def load_rules(
    extra_dirs: list[str] | tuple[str, ...] = (),
) -> tuple[list[Rule], list[RuleError]]:
    """Load the bundled rules and every `*.toml` under each of `extra_dirs`.

    Returns the rules that loaded and one error per file that did not. A rule
    whose `rule_id` is already loaded is an error too: two rules with one id
    would make alerts ambiguous.
    """
    files = bundled_rule_files()
    errors: list[RuleError] = []
    for folder in extra_dirs:
        path = Path(folder)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(path.rglob("*.toml")))
        else:
            errors.append(RuleError(str(path), 0, 0, "no such rule file or directory"))

    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in files:
        try:
            rule = load_rule_file(path)
        except _Invalid as problem:
            errors.append(
                RuleError(str(path), problem.line, problem.column, problem.message)
            )
            continue
        if rule.rule_id in seen:
            errors.append(
                RuleError(
                    str(path),
                    1,
                    1,
                    f"rule_id {rule.rule_id} already loaded from {seen[rule.rule_id]}",
                )
            )
            continue
        seen[rule.rule_id] = str(path)
        rules.append(rule)
    return rules, errors


def load_rule_file(path: Path) -> Rule:
    """Parse and compile one rule file; raises `_Invalid` with a position."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _Invalid(f"cannot read: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        found = _TOML_POSITION.search(str(error))
        line, column = (int(found[1]), int(found[2])) if found else (1, 1)
        message = _TOML_POSITION.sub("", str(error)).strip()
        raise _Invalid(f"not valid TOML: {message}", line, column) from None

    rule = data.get("rule")
    if not isinstance(rule, dict):
        raise _Invalid("no [rule] table")
    for key in ("name", "rule_id", "severity", "risk_score", "query", "language"):
        if key not in rule:
            raise _Invalid(f"[rule] has no {key}", _key_line(text, key))
    if rule["language"] != "eql":
        raise _Invalid(
            f"language {rule['language']!r} is not supported (only eql)",
            _key_line(text, "language"),
        )
    severity = str(rule["severity"]).lower()
    if severity not in SEVERITIES:
        raise _Invalid(
            f"severity {rule['severity']!r} is not one of {', '.join(SEVERITIES)}",
            _key_line(text, "severity"),
        )
    if not isinstance(rule["risk_score"], int) or not 0 <= rule["risk_score"] <= 100:
        raise _Invalid(
            "risk_score must be an integer from 0 to 100", _key_line(text, "risk_score")
        )
    if not isinstance(rule["query"], str):
        raise _Invalid("query must be a string", _key_line(text, "query"))

    try:
        query = compile_query(rule["query"])
    except EqlError as error:
        line, column = _query_position(text, error.line, error.column)
        raise _Invalid(f"bad query: {error.message}", line, column) from None

    return Rule(
        rule_id=str(rule["rule_id"]),
        name=str(rule["name"]),
        description=str(rule.get("description", "")).strip(),
        severity=severity,
        risk_score=rule["risk_score"],
        query=query,
        path=str(path),
        note=str(rule.get("note", "")),
        setup=str(rule.get("setup", "")),
        references=[str(r) for r in rule.get("references", [])],
        tags=[str(t) for t in rule.get("tags", [])],
        threat=list(rule.get("threat", [])),
        version=rule.get("version"),
        author=[str(a) for a in rule.get("author", [])],
        license=str(rule.get("license", "")),
        index=[str(i) for i in rule.get("index", [])],
        interval=str(rule.get("interval", "")),
        lookback=str(rule.get("from", "")),
        max_signals=rule.get("max_signals"),
        timestamp_override=str(rule.get("timestamp_override", "")),
        metadata=dict(data.get("metadata", {})),
    )


def _key_line(text: str, key: str) -> int:
    found = re.search(rf"^[ \t]*{re.escape(key)}[ \t]*=", text, re.MULTILINE)
    return text.count("\n", 0, found.start()) + 1 if found else 1


def _query_position(text: str, line: int, column: int) -> tuple[int, int]:
    """Map a position inside the query string to a position in the file."""
    found = _QUERY_KEY.search(text)
    if not found:
        return line, column
    key_line = text.count("\n", 0, found.start()) + 1
    after = text[found.end() : text.find("\n", found.end())]
    if found[1] in ("'''", '"""') and not after.strip():
        # TOML drops the newline right after an opening triple quote.
        return key_line + line, column
    if line == 1:
        return key_line, column + (found.end() - text.rfind("\n", 0, found.end()) - 1)
    return key_line + line - 1, column
