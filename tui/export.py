"""Write the alerts in view to NDJSON or CSV, for a ticket or a spreadsheet.

CSV cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
`@`, a tab or a carriage return) get a leading `'`, OWASP's advice for CSV
injection: an attacker who controls a process name must not control a formula.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterable
from datetime import datetime

from detector.cli import dump
from tui.describe import utc_text
from tui.rows import AlertRow
from tui.text import plain

CSV_COLUMNS = (
    "time",
    "host",
    "rule",
    "severity",
    "risk_score",
    "source_process",
    "target_process",
    "granted_access",
    "status",
    "close_reason",
    "reason",
    "seen_at",
    "rule_id",
    "file",
    "line",
    "offset",
)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """A CSV cell a spreadsheet shows as text, never runs."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def suggested_path(now: float, folder: str = ".") -> str:
    stamp = datetime.fromtimestamp(now).strftime("%Y%m%d-%H%M%S")
    return os.path.join(folder, f"winlogwatch-alerts-{stamp}.ndjson")


def export(rows: Iterable[AlertRow], path: str) -> int:
    """Write `rows` to `path`, CSV if it ends in .csv, else NDJSON; count them.

    The file is written beside `path` and renamed into place when complete: a
    full disk or any other failure leaves no half-written export, and a file
    already at `path` as it was. Raises `OSError` saying what failed.
    """
    path = os.path.expanduser(path)
    write = _write_csv if path.lower().endswith(".csv") else _write_ndjson
    partial = f"{path}.partial-{os.getpid()}"
    try:
        count = write(rows, partial)
        os.replace(partial, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.remove(partial)
        # Named by the path the analyst typed, not by the temporary one.
        raise OSError(error.errno, error.strerror, path) from None
    return count


def _write_ndjson(rows: Iterable[AlertRow], path: str) -> int:
    count = 0
    with open(path, "wb") as out:
        for row in rows:
            out.write(dump(_document(row)))
            count += 1
    return count


def _document(row: AlertRow) -> dict:
    """The alert document with its workflow fields as triaged now."""
    document = row.unpack().document  # a fresh copy: ours to change
    kibana = document.setdefault("kibana", {})
    fields = kibana.setdefault("alert", {}) if isinstance(kibana, dict) else {}
    fields["workflow_status"] = row.status
    if row.close_reason:
        fields["workflow_reason"] = row.close_reason
    else:
        fields.pop("workflow_reason", None)
    return document


def _write_csv(rows: Iterable[AlertRow], path: str) -> int:
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            alert = row.unpack()
            reason = alert.document.get("kibana", {}).get("alert", {}).get("reason", "")
            cells = (
                row.time,
                row.host,
                row.rule,
                row.severity,
                row.risk,
                row.source,
                row.target,
                row.access,
                alert.status,
                alert.close_reason or "",
                plain(reason),
                utc_text(alert.seen_at),
                alert.rule_id,
                plain(alert.path),
                str(alert.line_number),
                str(alert.offset),
            )
            writer.writerow([neutralise(cell) for cell in cells])
            count += 1
    return count
