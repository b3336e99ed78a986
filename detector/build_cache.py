"""Keep what is slow to build and quick to load: the EQL parser, Hyperscan databases.

Every `winlogwatch` start builds lark's parser tables for the EQL grammar (~40 ms)
and compiles the prefilter's Hyperscan databases (~60 ms), the same each time for
the same grammar and rules. Most of a scan of a small file, or of a forked worker's
start, went there. `load_or_build` keeps each result in the user's cache folder
(`WINLOGWATCH_CACHE`, else platformdirs' user cache path), named by a digest of
everything it was built from, and loads it from there next time.

A cache must never change what the program does, nor stop it:

- the file name is the digest of the inputs (grammar or patterns, library and
  Python versions, the machine), so a change builds anew;
- each file starts with the digest of its own payload, checked before loading, and
  is written to a temporary name and renamed, so a torn or damaged file is rebuilt;
- a folder that cannot be created or written only costs the build.

The payload of lark's cache is a pickle, as lark makes it; it is only ever read
from the user's own cache folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import platformdirs

log = logging.getLogger(__name__)

T = TypeVar("T")

_DIGEST = 32  # bytes of sha256


def folder() -> Path:
    """Where built things are kept."""
    configured = os.environ.get("WINLOGWATCH_CACHE")
    if configured:
        return Path(configured)
    return platformdirs.user_cache_path("winlogwatch") / "built"


def load_or_build(
    kind: str,
    inputs: list[bytes],
    build: Callable[[], T],
    dump: Callable[[T], bytes],
    load: Callable[[bytes], T],
) -> T:
    """`load` of the kept bytes for these inputs, else `build()` (and keep `dump`
    of it). `inputs` must name everything the result depends on."""
    name = _name(kind, inputs)
    path = folder() / name
    try:
        kept = path.read_bytes()
    except OSError:
        kept = b""
    digest, payload = kept[:_DIGEST], kept[_DIGEST:]
    if payload and hashlib.sha256(payload).digest() == digest:
        try:
            return load(payload)
        except Exception:  # a library that changed under the same version string
            log.debug("kept %s %s could not be loaded; building", kind, path)
    built = build()
    try:
        payload = dump(built)
        _write(path, hashlib.sha256(payload).digest() + payload)
    except Exception as error:  # read-only home, full disk: only slower next time
        log.debug("cannot keep %s in %s: %s", kind, path, error)
    return built


def _name(kind: str, inputs: list[bytes]) -> str:
    digest = hashlib.sha256()
    for part in (
        sys.version.encode(),
        platform.machine().encode(),
        platform.platform().encode(),
        *inputs,
    ):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return f"{kind}-{digest.hexdigest()[:32]}"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
