"""Whether `winlogwatch follow` keeps up with 50,000 events a second appended live.

    .venv/bin/python bench/follow_rate.py [--rate 50000] [--duration 20]
        [--hits-per-second 10] [--drain 60] [--tmp DIR] [--winlogwatch PATH]

Starts the real `winlogwatch follow DIR --state STATE` as a subprocess on a
temporary folder. Once it says it is following, a writer in this process appends
busy-host lines (corpus.py's `busy` kind: a Windows host's mixed Sysmon stream in
winlogbeat 7.x layout, about 2 KB a line) to DIR/winlogbeat.ndjson at `--rate` lines a
second: every `--tick` (10 ms) it writes, in one call, the lines the schedule owes
by then, timed on the monotonic clock. True alerts are planted `--hits-per-second`
times a second, each the last line of its batch, and one more in the very last
batch. A thread reads the follower's stdout (one alert per JSON line) and notes when
each planted hit, known by its `winlog.record_id`, is printed.

Reported: the rate the writer really achieved; per-hit latency (from the end of the
write that completed the line to the alert on stdout) p50, p95 and max; the median
latency of the first and last quarters of the run (growing latency means falling
behind); the time from the last write to the last alert; the follower's CPU time
(/proc/PID/stat) and peak RSS (VmHWM). It keeps up when every hit is printed, the
last one less than `--keep-up` (2 s) after the last write, and the last quarter's
median latency is no more than 0.25 s above the first quarter's.

The file grows by about 100 MiB a second at the default rate (2 GiB for 20 s) and is
deleted at the end; `--tmp /dev/shm` keeps it in memory, so no disk paces the run.
The writer shares the machine with the follower: on a small machine it takes part of
a core, and if it cannot reach the rate asked for it says so. Linux only (/proc).

A benchmark to read, not a test: the exit status is 1 only when the follower failed
or a hit was never printed.
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
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from bench_env import cpu_seconds, describe, peak_rss_mib, winlogwatch_command
from corpus import LineSource

GROWTH_ALLOWED = 0.25  # seconds the last quarter's median may exceed the first's


class Follower:
    """A `winlogwatch follow` process; its stdout lines are timed as they arrive."""

    def __init__(self, command: list[str], folder: Path, state: Path):
        self.process = subprocess.Popen(
            [*command, "follow", str(folder), "--state", str(state)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # (monotonic time, line) as read; parsed after the run, so the reader
        # thread takes as little of this process's time as it can.
        self.printed: list[tuple[float, bytes]] = []
        self.notices: deque[str] = deque(maxlen=20)
        self.ready = threading.Event()
        threading.Thread(target=self._stdout, name="stdout", daemon=True).start()
        threading.Thread(target=self._stderr, name="stderr", daemon=True).start()
        if not self.ready.wait(30):
            self.stop()
            raise SystemExit("the follower did not start within 30 s")
        self.startup_cpu = self.cpu_seconds()

    def _stdout(self) -> None:
        for line in self.process.stdout:
            self.printed.append((time.monotonic(), line))

    def _stderr(self) -> None:
        for line in self.process.stderr:
            self.notices.append(line.decode(errors="replace").rstrip())
            if b"following" in line:
                self.ready.set()

    def arrivals(self) -> dict[int, float]:
        """Record id of each alert printed so far, and when it was read."""
        seen = {}
        for when, line in list(self.printed):
            record_id = orjson.loads(line).get("winlog", {}).get("record_id")
            seen.setdefault(record_id, when)
        return seen

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.process.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        self.process.terminate()
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@dataclass(slots=True)
class Writing:
    """What the writer did."""

    started: float = 0.0
    finished: float = 0.0  # end of the last write
    lines: int = 0
    bytes: int = 0
    batches: int = 0
    largest: int = 0  # lines in the largest write: more than a tick's means late
    planted: dict[int, float] = field(default_factory=dict)  # record id -> written


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_live(
    path: Path, source: LineSource, args: argparse.Namespace, follower: Follower
) -> Writing:
    """Append lines at `args.rate` a second for `args.duration` seconds."""
    done = Writing()
    hit_gap = 1 / args.hits_per_second if args.hits_per_second > 0 else float("inf")
    next_hit = hit_gap / 2
    most = max(1, int(args.rate * args.tick * 10))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        done.started = time.monotonic()
        while True:
            elapsed = time.monotonic() - done.started
            last = elapsed >= args.duration
            owed = int(args.rate * min(elapsed, args.duration)) - done.lines
            # A late writer catches up in bounded steps, and stops on time anyway:
            # the rate it reached is reported, not forced.
            owed = min(owed, most)
            if last:
                owed = max(owed, 1)  # the final hit is the file's last line
            if owed > 0:
                batch = source.lines(owed - 1)
                planted = None
                if elapsed >= next_hit or last:
                    line, planted = source.hit()
                    next_hit += hit_gap
                else:
                    line = source.line()
                batch.append(line)
                data = b"".join(batch)
                write_all(fd, data)
                written_at = time.monotonic()
                if planted is not None:
                    done.planted[planted] = written_at
                done.finished = written_at
                done.lines += len(batch)
                done.bytes += len(data)
                done.batches += 1
                done.largest = max(done.largest, len(batch))
            if last or not follower.alive():
                return done

            # Sleep to the next tick boundary; a late writer just writes more.
            elapsed = time.monotonic() - done.started
            time.sleep(args.tick - elapsed % args.tick)
    finally:
        os.close(fd)


def wait_for_hits(follower: Follower, planted: dict[int, float], drain: float):
    """Wait until every planted hit is printed, or `drain` seconds have passed."""
    deadline = time.monotonic() + drain
    while time.monotonic() < deadline and follower.alive():
        arrived = follower.arrivals()
        if all(record_id in arrived for record_id in planted):
            return arrived
        time.sleep(0.05)
    return follower.arrivals()


def quarter_medians(latencies: list[tuple[float, float]]) -> tuple[float, float]:
    """Median latency of the hits written in the first and in the last quarter."""
    ordered = [latency for _, latency in sorted(latencies)]
    quarter = max(1, len(ordered) // 4)
    return statistics.median(ordered[:quarter]), statistics.median(ordered[-quarter:])


def report(args, done: Writing, arrived: dict[int, float], follower: Follower) -> bool:
    """Print what happened; True when the follower kept up."""
    span = done.finished - done.started
    print(
        f"writer: {done.lines:,} lines, {done.bytes / 2**20:,.0f} MiB in {span:.2f} s "
        f"in {done.batches:,} writes: {done.lines / span:,.0f} lines/s "
        f"({done.bytes / 2**20 / span:,.1f} MiB/s) for a target of {args.rate:,}; "
        f"largest write {done.largest:,} lines "
        f"({done.largest / args.rate * 1000:.0f} ms of the schedule)"
    )

    latencies = [
        (written, arrived[record_id] - written)
        for record_id, written in done.planted.items()
        if record_id in arrived
    ]
    missing = len(done.planted) - len(latencies)
    print(f"hits: {len(latencies)} of {len(done.planted)} planted hits printed")
    keeps_up = bool(latencies) and not missing
    if latencies:
        values = sorted(latency for _, latency in latencies)
        p95 = statistics.quantiles(values, n=100, method="inclusive")[94]
        first, last = quarter_medians(latencies)
        final_hit = max(done.planted, key=done.planted.get)
        print(
            f"latency: p50 {statistics.median(values) * 1000:,.0f} ms, "
            f"p95 {p95 * 1000:,.0f} ms, max {values[-1] * 1000:,.0f} ms; "
            f"median of the first quarter {first * 1000:,.0f} ms, "
            f"of the last quarter {last * 1000:,.0f} ms"
        )
        if final_hit in arrived:
            behind = arrived[final_hit] - done.finished
            print(f"last write to its alert (the file's last line): {behind:.2f} s")
        else:
            behind = float("inf")
            print("the last line's alert was never printed")
        keeps_up = keeps_up and behind < args.keep_up and last <= first + GROWTH_ALLOWED

    if follower.alive():
        cpu = follower.cpu_seconds() - follower.startup_cpu
        end = max(arrived.values(), default=done.finished)
        wall = end - done.started
        print(
            f"follower: {cpu:.1f} s of CPU over the {wall:.1f} s from the first write "
            f"to the last alert ({cpu / wall:.2f} cores; start-up took "
            f"{follower.startup_cpu:.2f} s more); "
            f"peak RSS {follower.peak_rss_mib():.1f} MiB"
        )
    verdict = "KEEPS UP" if keeps_up else "FALLS BEHIND"
    achieved = done.lines / span
    print(
        f"verdict: {verdict} with {achieved:,.0f} lines/s written "
        f"(every hit printed, the last < {args.keep_up:g} s after the last write, "
        f"last-quarter median <= first-quarter median + {GROWTH_ALLOWED:g} s)"
    )
    if achieved < 0.95 * args.rate:
        print(
            f"note: the writer reached only {achieved / args.rate:.0%} of the "
            f"{args.rate:,} lines/s asked for, so this says nothing about that rate"
        )
    return not missing


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rate", type=int, default=50_000, help="lines a second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds")
    parser.add_argument("--tick", type=float, default=0.01, help="seconds per write")
    parser.add_argument("--hits-per-second", type=float, default=10.0)
    parser.add_argument(
        "--drain", type=float, default=60.0, help="seconds to wait for late alerts"
    )
    parser.add_argument(
        "--keep-up", type=float, default=2.0, help="seconds allowed after the end"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--tmp", help="where the temporary folder goes (/dev/shm keeps disks out)"
    )
    parser.add_argument("--winlogwatch", help="the console script to measure")
    args = parser.parse_args()

    command = winlogwatch_command(args.winlogwatch)
    print(describe(command))
    source = LineSource("busy", args.seed)
    prefix = "winlogwatch-follow-bench-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=args.tmp) as tmp:
        folder = Path(tmp) / "logs"
        folder.mkdir()
        log = folder / "winlogbeat.ndjson"
        log.write_bytes(b"")
        follower = Follower(command, folder, Path(tmp) / "state.sqlite3")
        try:
            done = write_live(log, source, args, follower)
            arrived = wait_for_hits(follower, done.planted, args.drain)
            right = report(args, done, arrived, follower)
            if not follower.alive():
                right = False
                print(f"the follower exited early with status {follower.stop()}:")
                print("\n".join(follower.notices))
        finally:
            follower.stop()
    sys.exit(0 if right else 1)


if __name__ == "__main__":
    main()
