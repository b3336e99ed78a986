"""`winlogwatch scan` against the floor of parsing every line, on the same files.

    .venv/bin/python bench/scan_throughput.py [--corpus busy|worst|both]
        [--size 500M] [--runs 5] [--dir DIR] [--keep] [--winlogwatch PATH]
    .venv/bin/python bench/scan_throughput.py --memory [--memory-sizes 512M,1G,2G]

For each corpus (see corpus.py: a busy host's mixed Sysmon stream, or a worst case in
which every line is an lsass event-10 near miss) the file is generated once, read
once to warm the page cache, and then, alternately, `--runs` times each:

* the floor: a fresh subprocess of this same Python that reads the file line by line
  and `orjson.loads` every line (so start-up is comparable and memory is its own);
* the scan: `winlogwatch scan FILE`, stdout to a file, whose alerts must be exactly
  the planted hits (matched by `winlog.record_id`).

It prints the medians (and min-max) of wall time, MiB/s and lines/s for each, their
ratio floor/scan (above 1: the scan beats the floor; the project's targets are at
least 5 on the busy corpus and at least 1 on the worst), peak RSS (from
/usr/bin/time) and CPU time (with the ratio by CPU time too: steadier on a shared
machine), and the start-up time of each on an empty file. `--memory` instead scans
files of growing size once each and prints the scan's peak RSS, which should stay
flat and under 150 MiB at 2 GiB.

Sizes take K, M and G (powers of 1024); throughput is in MiB/s. Corpora go to
`--dir`, or a temporary folder removed at the end; each file this run generated is
deleted once measured unless `--keep`, and a complete corpus of the same name
already in `--dir` is reused (and left there). Linux; without /usr/bin/time the peak
RSS is ru_maxrss, an upper bound (see `run_timed`).

A benchmark to read, not a test: the exit status is 1 only when a command failed or
the alerts were wrong, never because of a number.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from bench_env import children, describe, tree_peak_rss_mib, winlogwatch_command
from corpus import KINDS, Written, hits_path, load_written, parse_size, write_corpus

# Read every line, parse it, count: what any detector must at least do without a
# prefilter. Prints the count, so the run can be checked.
FLOOR = """\
import sys
from orjson import loads
count = 0
with open(sys.argv[1], "rb") as stream:
    for line in stream:
        loads(line)
        count += 1
print(count)
"""
TARGETS = {"busy": 5.0, "worst": 1.0}
TIME = Path("/usr/bin/time")
MEMORY_TARGET_MIB = 150


@dataclass(slots=True)
class Timing:
    """One finished child process."""

    wall: float  # seconds, from start to reaped
    cpu: float  # user + system seconds
    peak_rss: float  # MiB, the biggest process
    tree_rss: float  # MiB, the peaks of the process and its workers added up
    status: int
    stdout: bytes
    stderr: bytes


def run_timed(argv: list[str]) -> Timing:
    """Run `argv` to its end; its output goes to files, so no pipe can stall it.

    Peak RSS comes from /usr/bin/time when there is one: a child forked straight
    from this process inherits this process's high-water mark in its ru_maxrss
    (Linux keeps it across exec), so there it is only an upper bound.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(suffix=".rss") as rss,
    ):
        if TIME.exists():
            argv = [str(TIME), "-f", "%M", "-o", rss.name, *argv]
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        tree: list[float] = []
        sampler = threading.Thread(
            target=lambda: tree.append(tree_peak_rss_mib(_measured(child.pid)))
        )
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        peak_kib = usage.ru_maxrss
        if TIME.exists():
            # The last line is %M; a failing child adds a line about its status.
            peak_kib = int(Path(rss.name).read_text().split()[-1])
        out.seek(0)
        err.seek(0)
        return Timing(
            wall,
            usage.ru_utime + usage.ru_stime,
            peak_kib / 1024,
            tree[0] if tree else float("nan"),
            child.returncode,
            out.read(),
            err.read(),
        )


def _measured(pid: int) -> int:
    """The measured process: /usr/bin/time's child when it runs under it."""
    if not TIME.exists():
        return pid
    for _ in range(200):
        found = children(pid)
        if found:
            return found[0]
        time.sleep(0.005)
    return pid


def alert_problem(timing: Timing, written: Written) -> str:
    """Why a scan's output is not exactly the planted hits ('' when it is)."""
    if timing.status != 0:
        tail = timing.stderr.decode(errors="replace").strip()[-500:]
        return f"exit status {timing.status}: {tail}"
    alerts = [orjson.loads(line) for line in timing.stdout.splitlines() if line]
    found = [alert.get("winlog", {}).get("record_id") for alert in alerts]
    planted = {hit["record_id"] for hit in written.hits}
    missing = planted - set(found)
    extra = [record_id for record_id in found if record_id not in planted]
    if not missing and not extra and len(found) == len(planted):
        return ""
    return (
        f"{len(found)} alerts for {len(planted)} planted hits: "
        f"{len(missing)} hits missing, {len(extra)} alerts not planted "
        f"(record ids {sorted(missing)[:5]} / {extra[:5]})"
    )


def corpus_file(kind: str, size_text: str, args: argparse.Namespace, folder: Path):
    """The corpus to measure, and whether this run made it (and so may remove it)."""
    path = folder / f"{kind}-{size_text}-seed{args.seed}-hits{args.hits}.ndjson"
    if path.exists() and hits_path(path).exists():
        written = load_written(path)
        if path.stat().st_size == written.bytes:
            print(f"reusing {path}")
            return path, written, False
    started = time.perf_counter()
    size = parse_size(size_text)
    written = write_corpus(kind, size, path, args.seed, args.hits)
    took = time.perf_counter() - started
    print(f"generated {path} in {took:.1f} s")
    return path, written, True


def warm(path: Path) -> None:
    """Read the file once, so that every timed run finds it in the page cache."""
    with open(path, "rb", buffering=0) as stream:
        while stream.read(8 << 20):
            pass


def spread(values: list[float], fmt: str) -> str:
    median = statistics.median(values)
    return f"{median:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report_line(name: str, timings: list[Timing], written: Written) -> str:
    walls = [t.wall for t in timings]
    mib = written.bytes / 2**20
    return (
        f"  {name:6} {spread(walls, '.2f')} s  "
        f"{mib / statistics.median(walls):7.1f} MiB/s  "
        f"{written.lines / statistics.median(walls):9,.0f} lines/s  "
        f"peak RSS {max(t.peak_rss for t in timings):6.1f} MiB "
        f"(all processes {max(t.tree_rss for t in timings):.1f})  "
        f"CPU {statistics.median(t.cpu for t in timings):.2f} s"
    )


def startup(floor: list[str], scan: list[str], folder: Path) -> tuple[float, float]:
    """Median seconds each command takes on an empty file: its fixed cost."""
    empty = folder / "empty.ndjson"
    empty.write_bytes(b"")
    floors = [run_timed([*floor, str(empty)]).wall for _ in range(3)]
    scans = [run_timed([*scan, str(empty)]).wall for _ in range(3)]
    empty.unlink()
    return statistics.median(floors), statistics.median(scans)


def measure(
    kind: str,
    args: argparse.Namespace,
    folder: Path,
    scan_command: list[str],
    startups: tuple[float, float],
) -> bool:
    """Time floor and scan on one corpus; True when every scan got the right alerts."""
    path, written, made = corpus_file(kind, args.size, args, folder)
    floor = [sys.executable, "-c", FLOOR, str(path)]
    scan = [*scan_command, str(path)]
    warm(path)
    floors: list[Timing] = []
    scans: list[Timing] = []
    problems = []
    for _ in range(args.runs):
        floors.append(run_timed(floor))
        counted = floors[-1].stdout.strip()
        if floors[-1].status != 0 or int(counted or -1) != written.lines:
            problems.append(f"floor: status {floors[-1].status}, counted {counted!r}")
        scans.append(run_timed(scan))
        if problem := alert_problem(scans[-1], written):
            problems.append(f"scan: {problem}")
    if made and not args.keep:
        path.unlink()
        hits_path(path).unlink()

    floor_median = statistics.median(t.wall for t in floors)
    scan_median = statistics.median(t.wall for t in scans)
    ratio = floor_median / scan_median
    # Start-up is a fixed cost that weighs more the smaller the file.
    floor_net, scan_net = floor_median - startups[0], scan_median - startups[1]
    print(
        f"\n{kind}: {written.bytes / 2**20:,.0f} MiB, {written.lines:,} lines "
        f"({written.bytes / written.lines:,.0f} B a line), "
        f"{len(written.hits)} planted hits; median (min-max) of {args.runs} runs"
    )
    print(report_line("floor", floors, written))
    print(report_line("scan", scans, written))
    print(
        f"  floor/scan = {ratio:.2f}  (target: >= {TARGETS[kind]:g}; "
        f"the scan takes {1 / ratio:.2f}x the floor's time)"
    )
    if min(floor_net, scan_net) > 0.1:
        net_ratio = f"{floor_net / scan_net:.2f}"
    else:
        net_ratio = "n/a (the file is too small)"
    print(f"  floor/scan = {net_ratio} with each one's start-up time taken off")
    # CPU time is steadier than wall time when other work shares the machine.
    cpu_ratio = statistics.median(t.cpu for t in floors) / statistics.median(
        t.cpu for t in scans
    )
    print(f"  floor/scan = {cpu_ratio:.2f} by CPU time (user + system)")
    if problems:
        for problem in dict.fromkeys(problems):
            print(f"  WRONG: {problem}")
    else:
        print(f"  alerts: exactly the {len(written.hits)} planted hits in every run")
    return not problems


def measure_memory(
    kind: str, args: argparse.Namespace, folder: Path, scan_command: list[str]
) -> bool:
    """Scan files of growing size once each; print the scan's peak RSS."""
    print(f"\n{kind}: peak RSS of one scan per size (target < {MEMORY_TARGET_MIB} MiB)")
    peaks, right = [], True
    for size_text in args.memory_sizes.split(","):
        path, written, made = corpus_file(kind, size_text.strip(), args, folder)
        warm(path)
        timing = run_timed([*scan_command, str(path)])
        problem = alert_problem(timing, written)
        right = right and not problem
        if made and not args.keep:
            path.unlink()
            hits_path(path).unlink()
        peaks.append(timing.tree_rss)
        print(
            f"  {written.bytes / 2**30:5.2f} GiB  {written.lines:>10,} lines  "
            f"{timing.wall:7.1f} s  peak RSS {timing.peak_rss:6.1f} MiB, all "
            f"processes {timing.tree_rss:6.1f} MiB"
            + (f"  WRONG: {problem}" if problem else "")
        )
    print(
        f"  growth from smallest to largest file: {peaks[-1] - peaks[0]:+.1f} MiB; "
        f"largest peak, all processes added up: {max(peaks):.1f} MiB"
    )
    return right


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--corpus", choices=(*KINDS, "both"), default="both")
    parser.add_argument("--size", default="500M", help="corpus size (default 500M)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each command")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hits", type=int, default=100, help="planted alerts")
    parser.add_argument("--dir", type=Path, help="where corpora go (default: a temp)")
    parser.add_argument("--keep", action="store_true", help="keep generated corpora")
    parser.add_argument("--winlogwatch", help="the console script to measure")
    parser.add_argument(
        "--jobs",
        type=int,
        help="pass --jobs N to scan (default: scan's own, the usable cores)",
    )
    parser.add_argument(
        "--memory", action="store_true", help="peak RSS as the file grows, instead"
    )
    parser.add_argument(
        "--memory-sizes", default="512M,1G,2G", help="file sizes for --memory"
    )
    args = parser.parse_args()
    parse_size(args.size)  # a bad size fails here, before anything is generated

    command = winlogwatch_command(args.winlogwatch)
    jobs = [] if args.jobs is None else ["--jobs", str(args.jobs)]
    scan = [*command, "scan", *jobs]
    kinds = KINDS if args.corpus == "both" else (args.corpus,)
    print(describe(command))
    folder = args.dir or Path(tempfile.mkdtemp(prefix="winlogwatch-scan-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        floor_start, scan_start = startup([sys.executable, "-c", FLOOR], scan, folder)
        print(
            f"start-up on an empty file: floor {floor_start:.2f} s, "
            f"scan {scan_start:.2f} s (included in every time below)"
        )
        right = True
        for kind in kinds:
            if args.memory:
                right = measure_memory(kind, args, folder, scan) and right
            else:
                startups = (floor_start, scan_start)
                right = measure(kind, args, folder, scan, startups) and right
    finally:
        if args.dir is None and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        elif args.keep:
            print(f"corpora kept in {folder}")
    sys.exit(0 if right else 1)


if __name__ == "__main__":
    main()
