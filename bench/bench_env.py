"""What the throughput benchmarks share: the command they measure and the machine.

Not a benchmark itself; `scan_throughput.py` and `follow_rate.py` import it.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent


def winlogwatch_command(given: str | None) -> list[str]:
    """The installed console script: `given`, else beside this Python, else on PATH."""
    if given:
        return [given]
    beside = Path(sys.executable).with_name("winlogwatch")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("winlogwatch")
    if found:
        return [found]
    raise SystemExit("winlogwatch is not beside this Python nor on PATH: --winlogwatch")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def source_state() -> str:
    """The commit, and which detector/ files differ from it (read-only git)."""
    git = ["git", "--no-optional-locks", "-C", str(REPO)]
    try:
        commit = subprocess.run(
            [*git, "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=all", "--", "detector"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    changed = [line[3:] for line in changed if line.strip()]
    if changed:
        return f"{commit[:60]}; uncommitted in detector/: {', '.join(changed)}"
    return f"{commit[:60]}; detector/ as committed"


def describe(command: list[str]) -> str:
    """A few lines that say where and on what a benchmark ran."""
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return "\n".join(
        (
            f"machine: {cpu_model()}, {cores} cores ({usable} usable), "
            f"{memory_gib():.1f} GiB RAM, load average {load}",
            f"python {platform.python_version()} ({sys.executable}), "
            f"orjson {orjson.__version__}",
            f"command: {' '.join(command)}",
            f"checkout {REPO}: {source_state()}",
        )
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a running process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]
    utime, stime = fields.split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """A running process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[int]:
    """The running child processes of pid (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def tree_peak_rss_mib(pid: int, every: float = 0.05) -> float:
    """Run until pid exits; the sum over pid and its children of each one's peak
    resident memory (VmHWM), sampled every `every` seconds. Shared pages count
    once per process: an upper bound."""
    peaks: dict[int, float] = {}
    while Path(f"/proc/{pid}").exists():
        for process in (pid, *children(pid)):
            try:
                peak = peak_rss_mib(process)
            except OSError:
                continue
            if peak == peak:  # a zombie has no VmHWM: nan
                peaks[process] = max(peaks.get(process, 0.0), peak)
        time.sleep(every)
    return sum(peaks.values())
