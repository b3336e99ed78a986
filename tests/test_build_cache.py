"""Kept parser tables and Hyperscan databases never change what a scan finds."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import winlogwatch_command

from detector import build_cache

SAMPLE = (
    Path(__file__).resolve().parent.parent / "sample_logs" / "ws-042.winlogbeat7.ndjson"
)


def _scan(cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*winlogwatch_command(), "scan", str(SAMPLE)],
        capture_output=True,
        env={**os.environ, "WINLOGWATCH_CACHE": str(cache)},
        timeout=60,
    )


def _alert_lines(run: subprocess.CompletedProcess) -> list[int]:
    return [json.loads(line)["log"]["file"]["line"] for line in run.stdout.splitlines()]


def test_a_scan_keeps_what_it_built_and_the_next_finds_the_same(tmp_path):
    cache = tmp_path / "cache"
    first = _scan(cache)
    kept = sorted(path.name for path in cache.iterdir())
    # The parser tables; the two Hyperscan databases every scan needs, and one
    # per anchor choice a long block needed (detector/prefilter.py).
    assert [name.split("-")[0] for name in kept[:3]] == [
        "eql",
        "hyperscan",
        "hyperscan",
    ]
    assert all(name.startswith("hyperscan-") for name in kept[1:])
    second = _scan(cache)
    assert sorted(path.name for path in cache.iterdir()) == kept  # nothing new built
    assert first.returncode == second.returncode == 0
    assert _alert_lines(first) == _alert_lines(second) == [25, 884, 1782, 2839]
    assert second.stderr.splitlines()[-1] == first.stderr.splitlines()[-1]


def test_damaged_kept_files_are_built_anew(tmp_path):
    cache = tmp_path / "cache"
    _scan(cache)
    for path in cache.iterdir():
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte, as a bad disk leaves it
        path.write_bytes(bytes(data[: len(data) - 7]))  # and torn short
    run = _scan(cache)
    assert run.returncode == 0, run.stderr
    assert _alert_lines(run) == [25, 884, 1782, 2839]
    assert b"Traceback" not in run.stderr
    # Rewritten whole: the next start loads them.
    for path in cache.iterdir():
        data = path.read_bytes()
        assert build_cache.hashlib.sha256(data[32:]).digest() == data[:32]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_cache_folder_that_cannot_be_written_only_costs_time(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    try:
        run = _scan(cache)
    finally:
        cache.chmod(0o700)
    assert run.returncode == 0
    assert _alert_lines(run) == [25, 884, 1782, 2839]
    assert list(cache.iterdir()) == []


def test_a_cache_path_that_is_a_file_only_costs_time(tmp_path):
    # Root can write anywhere; a file where the folder should be stops it too.
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    run = _scan(cache)
    assert run.returncode == 0
    assert _alert_lines(run) == [25, 884, 1782, 2839]
    assert b"Traceback" not in run.stderr and b"cache" not in run.stderr


def test_different_inputs_are_kept_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("WINLOGWATCH_CACHE", str(tmp_path))
    built = []

    def build(text: bytes):
        built.append(text)
        return text.upper()

    for text in (b"one", b"two", b"one"):
        value = build_cache.load_or_build(
            "test", [text], lambda text=text: build(text), bytes, bytes
        )
        assert value == text.upper()
    assert built == [b"one", b"two"]  # the second "one" was loaded
