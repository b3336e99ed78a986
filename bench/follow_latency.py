"""How fast `winlogwatch follow` turns an appended line into an alert on stdout.

Runs the real command as a subprocess on a temporary directory, appends one
alerting line at a time (each with its own `winlog.record_id`, one write each, as
winlogbeat writes) at a steady pace, and times each write against the moment the
alert line for that record id is read from the follower's stdout. Then it leaves
the follower idle and reads its CPU time from /proc/PID/stat. With `--burst N` it
also appends N lines as fast as it can and reports the follower's peak resident
memory (VmHWM) before and after.

    .venv/bin/python bench/follow_latency.py [--lines 200] [--pace 0.05]
        [--idle 10] [--burst 1000000] [--mode inotify|poll|both]

Linux only (/proc). A benchmark to read, not a test: nothing here fails on a number.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
from bench_env import cpu_seconds, peak_rss_mib

REPO = Path(__file__).resolve().parent.parent
CASE = REPO / "tests" / "data" / "cases" / "semantics.ndjson"


class Follower:
    """A `winlogwatch follow` process; stdout lines are timed as they arrive."""

    def __init__(self, folder: Path, *options: str):
        script = Path(sys.executable).with_name("winlogwatch")
        command = (
            [str(script)] if script.exists() else [sys.executable, "-m", "tui.cli"]
        )
        self.process = subprocess.Popen(
            [*command, "follow", str(folder), "--state", str(folder / "state.sqlite3"),
             *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        self.arrived: dict[int, float] = {}
        self.ready = threading.Event()
        threading.Thread(target=self._stdout, daemon=True).start()
        threading.Thread(target=self._stderr, daemon=True).start()
        if not self.ready.wait(30):
            raise SystemExit("the follower did not start within 30 s")

    def _stdout(self) -> None:
        for line in self.process.stdout:
            now = time.perf_counter()
            self.arrived[orjson.loads(line)["winlog"]["record_id"]] = now

    def _stderr(self) -> None:
        for line in self.process.stderr:
            if b"following" in line:
                self.ready.set()

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.process.pid)

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(30)


def line_for(template: dict, record_id: int, alerting: bool = True) -> bytes:
    template["winlog"]["record_id"] = record_id
    template["winlog"]["event_data"]["GrantedAccess"] = "0x40" if alerting else "0x1010"
    return orjson.dumps(template) + b"\n"


def measure(mode: str, args: argparse.Namespace, template: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="winlogwatch-bench-") as tmp:
        folder = Path(tmp)
        log = folder / "winlogbeat.ndjson"
        log.write_bytes(b"")
        options = ["--poll"] if mode == "poll" else []
        follower = Follower(folder, *options)
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        written: dict[int, float] = {}
        try:
            for record_id in range(1, args.lines + 1):
                data = line_for(template, record_id)
                written[record_id] = time.perf_counter()
                os.write(fd, data)
                time.sleep(args.pace)
            deadline = time.monotonic() + 5
            while len(follower.arrived) < args.lines and time.monotonic() < deadline:
                time.sleep(0.01)

            latencies = sorted(
                (follower.arrived[n] - written[n]) * 1000
                for n in written
                if n in follower.arrived
            )
            missing = args.lines - len(latencies)
            centiles = statistics.quantiles(latencies, n=100, method="inclusive")
            print(
                f"{mode:8} {len(latencies):5d} lines every {args.pace * 1000:.0f} ms: "
                f"p50 {centiles[49]:6.1f} ms  p90 {centiles[89]:6.1f} ms  "
                f"p99 {centiles[98]:6.1f} ms  max {latencies[-1]:6.1f} ms"
                + (f"  ({missing} never arrived)" if missing else "")
            )

            time.sleep(1)
            before, started = follower.cpu_seconds(), time.monotonic()
            time.sleep(args.idle)
            used = follower.cpu_seconds() - before
            elapsed = time.monotonic() - started
            share = 100 * used / elapsed
            print(f"{mode:8} idle for {elapsed:.0f} s: {share:.2f}% of a core")

            if args.burst:
                burst(follower, fd, template, args.burst, args.lines, mode)
        finally:
            os.close(fd)
            follower.stop()


def burst(
    follower: Follower, fd: int, template: dict, count: int, done: int, mode: str
):
    """Append `count` lines (1 in 1000 alerting) as fast as possible; report memory."""
    before = follower.peak_rss_mib()
    quiet = line_for(template, 0, alerting=False)
    started = time.monotonic()
    alerts = 0
    for n in range(count):
        if n % 1000 == 999:
            alerts += 1
            os.write(fd, line_for(template, done + alerts))
        else:
            os.write(fd, quiet)
    written = time.monotonic() - started
    deadline = time.monotonic() + 600
    while len(follower.arrived) < done + alerts and time.monotonic() < deadline:
        time.sleep(0.05)
    caught_up = time.monotonic() - started
    print(
        f"{mode:8} burst of {count:,} lines ({count * len(quiet) / 2**20:,.0f} MiB) "
        f"written in {written:.1f} s, all {alerts} alerts out after {caught_up:.1f} s; "
        f"peak RSS {before:.0f} MiB before, {follower.peak_rss_mib():.0f} MiB after"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200, help="lines to time")
    parser.add_argument(
        "--pace", type=float, default=0.05, help="seconds between lines"
    )
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU")
    parser.add_argument(
        "--burst", type=int, default=0, help="lines in a burst (0: none)"
    )
    parser.add_argument("--mode", choices=("inotify", "poll", "both"), default="both")
    args = parser.parse_args()

    template = orjson.loads(CASE.read_bytes().split(b"\n")[0])
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load {load:.2f}; python {sys.version.split()[0]}")
    for mode in ("inotify", "poll") if args.mode == "both" else (args.mode,):
        measure(mode, args, template)


if __name__ == "__main__":
    main()
