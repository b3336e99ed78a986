"""Which files a path, a glob or a directory names.

A directory means every NDJSON file in it, rotated names included: winlogbeat 7.x
renames `winlogbeat.ndjson` to `winlogbeat.ndjson.1`, `.2` ...; 8.x writes
`winlogbeat-YYYYMMDD.ndjson`, then `winlogbeat-YYYYMMDD-1.ndjson` and so on.
"""

from __future__ import annotations

import glob
import os
import re

_EVENT_FILE = re.compile(r".*\.(ndjson|jsonl|json)(\.\d+)?$", re.IGNORECASE)


def is_event_file(name: str) -> bool:
    """Whether a file name inside a followed directory holds events."""
    return bool(_EVENT_FILE.fullmatch(os.path.basename(name)))


def has_magic(path: str) -> bool:
    return glob.has_magic(path)


def expand(path: str) -> list[str]:
    """The files `path` names now, oldest rotation first where names tell.

    A glob with no match and a missing path give an empty list; the caller says so.
    """
    if has_magic(path):
        found = [p for p in glob.glob(path, recursive=True) if os.path.isfile(p)]
    elif os.path.isdir(path):
        found = [
            entry.path
            for entry in os.scandir(path)
            if entry.is_file() and is_event_file(entry.name)
        ]
    elif os.path.exists(path):
        return [path]
    else:
        return []
    return sorted(found, key=rotation_order)


def why_empty(path: str) -> str:
    """Why `expand(path)` names no file, in words for the user."""
    if has_magic(path):
        return "no file matches this pattern"
    if os.path.isdir(path):
        return (
            "no event files in this folder (*.ndjson, *.jsonl, *.json, and rotated "
            "ones such as *.ndjson.1; subfolders are not searched)"
        )
    return "no such file or folder"


def rotation_order(path: str) -> tuple:
    """Sort key that puts older rotated files before newer ones.

    `x.ndjson.3` is older than `x.ndjson.1`, which is older than `x.ndjson`;
    `x-20261130-2.ndjson` is newer than `x-20261130-1.ndjson` and `x-20261130.ndjson`.
    """
    name = os.path.basename(path)
    old_style = re.fullmatch(r"(.*)\.(\d+)", name)
    if old_style:
        return (os.path.dirname(path), old_style[1], -int(old_style[2]))
    new_style = re.fullmatch(r"(.*-\d{8})-(\d+)(\.\w+)", name)
    if new_style:
        return (os.path.dirname(path), new_style[1] + new_style[3], int(new_style[2]))
    return (os.path.dirname(path), name, 0)
