"""Scan one big file on several cores: split it into parts, check each in a process.

`winlogwatch scan` of a file of gigabytes is bound by the CPU (the prefilter, then
parsing the lines it lets through), and one Python process uses one core. So a big
regular file is cut into parts of about `part_bytes`, each starting right after a
newline, and a pool of forked worker processes checks the parts while this
process puts their findings back in file order.

How a part is checked, and why the output is the sequential scan's, byte for byte:

* The parent finds each boundary by reading forward from the nominal offset, one
  piece of `CHUNK_BYTES` at a time, until a newline; a line longer than a part
  only makes that part bigger. Nominal offsets are multiples of `CHUNK_BYTES`
  (`part_bytes` rounded up): the sequential scan's blocks start at the first line
  that starts at or after such a multiple (the line across it comes on its own),
  so every part starts where one of its blocks does. The last part reads to the
  end of the file as it is then (the file may grow while scanned, as it may for
  the sequential scan).
* A worker opens the file by its name, checks it is still the file the parent
  opened (device and inode), and feeds the part to a `LineSplitter` that starts at
  the part's offset with line number 0: offsets are absolute, line numbers count
  from the part's start. It reads on the same grid of `CHUNK_BYTES` as the
  sequential scan (the first read stops at the next multiple), so it gets the same
  blocks. That matters: the prefilter judges a block by its own bytes (a probe of
  its start may hand it on whole, and then the narrow reader sees every line), so
  the same blocks give the same lines parsed and the same counters.
* Of every line its detector checks, the worker keeps only those with something to
  say: for a line that gave alerts its number, offset and bytes; for a bad line
  its number, offset and reason. It hands those back with its counters and the
  number of lines it read.
* The parent takes the results strictly in file order, with at most `2 * jobs`
  parts in flight, so memory stays bounded and output is in file order. It gives
  each kept line its file-wide number (the lines of all earlier parts plus its
  own). A line that gave alerts is checked again by a private `Detector` that
  parses every line: `Detector.check` sees the same bytes, number and offset, so
  it makes exactly the sequential scan's alerts (an alert document holds the line
  number, which the worker did not know). A bad line becomes the same `BadLine`
  the sequential scan makes, from the reason the worker found, without a second
  parse. The worker's counters are added to the caller's detector's; the private
  detector's are thrown away.
* A worker stops early, after the read in which it kept `kept_max` lines (or
  `KEPT_BYTES_MAX` bytes of alerting lines), and says where it stopped; the parent
  asks for the rest of that part as a new task and takes its result next. A big
  file of bad lines (a pretty-printed JSON export) would otherwise have each
  worker hand back a whole part's worth of them at once.

Rules hold compiled queries, which cannot be pickled: workers are forked, and get
the rules through the pool's `initargs`, which fork hands over without pickling.
Each worker builds its own `Detector` (and Hyperscan database) once.

Known shortcomings:

* A worker opens the file by name. A file renamed away (rotated) or replaced while
  its parts are being read is reported unreadable from that part on (its earlier
  parts' alerts stand), where the sequential scan reads the open file to its end.
* What one result holds is bounded by `kept_max` lines plus one read's worth (the
  early stop comes between reads), and the parent may hold `2 * jobs` results: on
  a file of bad lines the scan holds several times what the sequential scan holds
  for one read. Nor is such a file scanned faster: making and printing each
  warning is the parent's work.
* A worker process that dies (killed, out of memory) fails the file it was
  reading; it is reported unreadable and the next big file gets a new pool.
* Fork only: where it is not available (Windows) every file is read sequentially.
"""

from __future__ import annotations

import ctypes
import errno
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import BinaryIO

from detector.detect import Counters, Detector
from detector.lines import LineSplitter, RawLine
from detector.model import Alert, BadLine
from detector.rules import Rule

#: Bytes read at a time, by the sequential scan and by workers alike (see above).
CHUNK_BYTES = 1 << 20

#: About how much of a file one worker task reads.
PART_BYTES = 32 << 20

#: Smaller files are read sequentially: starting the workers is not worth it.
PARALLEL_MIN_BYTES = 64 << 20

#: A worker hands back what it found once it has kept this many lines ...
KEPT_LINES_MAX = 4096

#: ... or this many bytes of lines that gave alerts.
KEPT_BYTES_MAX = 4 << 20


def parallel_available() -> bool:
    """Whether parts can be scanned by forked workers on this platform."""
    return "fork" in multiprocessing.get_all_start_methods()


def plan_parts(
    stream: BinaryIO, size: int, part_bytes: int
) -> Iterator[tuple[int, int | None]]:
    """(start, end) of each part of a file of `size` bytes; end None: to EOF.

    A part ends where the first line starts at or after the next multiple of
    CHUNK_BYTES at least `part_bytes` past its start. Lazy: each boundary is
    looked for only when its part is about to be handed out, by reading `stream`
    (which it moves) forward one piece at a time.
    """
    if part_bytes < 1:
        raise ValueError("part_bytes must be positive")
    start = 0
    while True:
        # On the read grid (see the module's notes), at least part_bytes on.
        nominal = -(-(start + part_bytes) // CHUNK_BYTES) * CHUNK_BYTES
        end = _line_start_from(stream, nominal) if nominal < size else None
        if end is None or end >= size:
            yield start, None
            return
        yield start, end
        start = end


def _line_start_from(stream: BinaryIO, offset: int) -> int | None:
    """The first offset at or after `offset` that starts a line, or None at EOF.

    Holds one piece of CHUNK_BYTES at most, however long the line is.
    """
    position = offset - 1  # a line starts at `offset` if the byte before is \n
    stream.seek(position)
    while piece := stream.read(CHUNK_BYTES):
        found = piece.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(piece)
    return None


@dataclass(slots=True)
class PartResult:
    """What a worker found in (the first stretch of) one part."""

    alerting: list[tuple[int, int, bytes]]  # number in the part, offset, bytes
    bad: list[tuple[int, int, str]]  # number in the part, offset, reason
    counters: Counters
    lines: int  # lines read, a last one without a newline included
    rest: int | None  # stopped early: the rest of the part starts at this offset


class Stopped(Exception):
    """A worker gave up its part because the scan is being stopped."""


@dataclass(slots=True)
class _WorkerSetup:
    """What the parent hands each worker when it forks it (never pickled)."""

    rules: list[Rule]
    every_line: bool
    stop: object  # a multiprocessing Event: set when the scan is interrupted
    parent: int  # the parent's pid


# This worker process's detector and the parent's stop event (see _start_worker).
_detector: Detector | None = None
_stop = None


def _start_worker(setup: _WorkerSetup) -> None:
    """Pool initializer, in each worker: its own detector; Ctrl-C is the parent's."""
    global _detector, _stop
    # The terminal sends SIGINT to the whole process group. The parent stops the
    # workers itself (through `stop`); a worker hit by KeyboardInterrupt while it
    # waits for work would die with a traceback on stderr and break the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(setup.parent)
    keep_freed_buffers()
    _stop = setup.stop
    _detector = Detector(setup.rules, setup.every_line)


def keep_freed_buffers() -> None:
    """glibc: serve the 1 MiB reads (and lines up to the 8 MiB cap) from the heap
    and keep freed memory for the next read, instead of mapping fresh pages
    for every read and unmapping them after. Measured on a 1 GiB scan: with two
    workers 110,000-200,000 page faults and 0.5 s of system time, against 15,000
    and 0.2 s with this; in one process 75,000 and 0.4 s against 6,600 and
    0.16 s. Peak memory unchanged. For the whole process: call it only in one
    that scans."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 16 << 20)
    mallopt(m_trim_threshold, 64 << 20)


def _die_with_parent(parent: int) -> None:
    """Linux: let the kernel kill this worker if the parent dies (kill -9, or
    SIGTERM, which the CLI leaves at its default): an orphaned worker would wait
    for work forever on a queue whose write end it holds itself."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - no usable libc
        return
    if os.getppid() != parent:  # the parent died before prctl: nobody to work for
        os._exit(1)


def scan_part(
    path: str, origin: str, start: int, end: int | None, kept_max: int
) -> PartResult:
    """In a worker: check the lines of bytes start..end of `path` (end None: EOF).

    Stops early, at the start of a line, once `kept_max` lines are kept (see
    `PartResult.rest`).
    """
    detector = _detector
    assert detector is not None, "scan_part runs in a pool started by PartScanner"
    detector.counters = Counters()
    splitter = LineSplitter(offset=start, number=0)
    alerting: list[tuple[int, int, bytes]] = []
    bad: list[tuple[int, int, str]] = []
    alerting_bytes = 0

    def check(items) -> None:
        nonlocal alerting_bytes
        for item in items:
            for raw in detector.lines_to_check(item):
                outcome = detector.check(raw, path, origin)
                if type(outcome) is BadLine:
                    bad.append((raw.number, raw.offset, outcome.reason))
                elif outcome:
                    alerting.append((raw.number, raw.offset, raw.data))
                    alerting_bytes += len(raw.data)

    def result(rest: int | None) -> PartResult:
        return PartResult(alerting, bad, detector.counters, splitter.number, rest)

    with open(path, "rb") as stream:
        info = os.fstat(stream.fileno())
        if f"{info.st_dev}:{info.st_ino}" != origin:
            raise OSError(errno.ESTALE, "replaced or rotated while being scanned")
        stream.seek(start)
        position = start
        while end is None or position < end:
            if len(alerting) + len(bad) >= kept_max or alerting_bytes >= KEPT_BYTES_MAX:
                # Between two reads, every line before `splitter.offset` is
                # checked and counted and the one starting there is not.
                return result(splitter.offset)
            if _stop.is_set():
                raise Stopped
            # Up to the next multiple of CHUNK_BYTES, as the sequential scan reads.
            size = CHUNK_BYTES - position % CHUNK_BYTES
            if end is not None:
                size = min(size, end - position)
            chunk = stream.read(size)
            if not chunk:
                break  # EOF; before `end` only if the file shrank meanwhile
            position += len(chunk)
            check(splitter.feed_blocks(chunk))
        # A part that ends at `end` ends after a newline: this gives nothing then.
        check(splitter.flush())
    return result(None)


class PartScanner:
    """Scan big files part by part in a pool of forked workers; one per scan.

    The pool is started at the first file and kept for the next ones; `close`
    ends it (call it in a `finally`: it also stops the workers on Ctrl-C).
    """

    def __init__(
        self,
        detector: Detector,
        jobs: int,
        part_bytes: int = PART_BYTES,
        kept_max: int = KEPT_LINES_MAX,
    ):
        if jobs < 2 or not parallel_available():
            raise ValueError("PartScanner needs jobs > 1 and fork")
        self.detector = detector
        self.jobs = jobs
        self.part_bytes = part_bytes
        self.kept_max = kept_max
        self.in_flight_max = 2 * jobs
        # Parses every line handed to it: lines with alerts get their alerts here.
        self._checker = Detector(detector.rules, every_line=True)
        self._context = multiprocessing.get_context("fork")
        self._pool: ProcessPoolExecutor | None = None
        self._stop = None

    def scan(
        self,
        stream: BinaryIO,
        path: str,
        origin: str,
        size: int,
        deliver: Callable[[list[Alert], list[BadLine]], None],
    ) -> None:
        """Check the regular file open as `stream` (`size` bytes when opened);
        `deliver` gets the alerts and bad lines of each stretch, in file order.

        Raises OSError when the file cannot be read (or a worker died reading it).
        """
        pool = self._pool_or_new()
        parts = plan_parts(stream, size, self.part_bytes)
        # Futures, oldest first (the order their results are taken in), each with
        # the end of its part, for the rest of it should the worker stop early.
        in_flight: deque[tuple[Future, int | None]] = deque()

        def submit(start: int, end: int | None) -> tuple[Future, int | None]:
            future = pool.submit(scan_part, path, origin, start, end, self.kept_max)
            return future, end

        base = 0  # lines in the stretches already delivered
        try:
            while True:
                while len(in_flight) < self.in_flight_max:
                    part = next(parts, None)
                    if part is None:
                        break
                    in_flight.append(submit(*part))
                if not in_flight:
                    return
                future, end = in_flight.popleft()
                done = future.result()
                if done.rest is not None:  # the rest of that part is next in order
                    in_flight.appendleft(submit(done.rest, end))
                base = self._deliver(done, base, path, origin, deliver)
        except BrokenProcessPool as error:
            self._end_pool(abort=True)
            raise OSError(f"a scan worker process died ({error})") from error
        finally:
            # Parts not started are dropped; running ones finish, unread.
            for future, _ in in_flight:
                future.cancel()

    def _deliver(self, done: PartResult, base, path, origin, deliver) -> int:
        """Hand on one result's alerts and bad lines; the lines delivered now."""
        bad = [
            BadLine(path, base + number, offset, reason)
            for number, offset, reason in done.bad
        ]
        alerts: list[Alert] = []
        check = self._checker.check
        for number, offset, data in done.alerting:
            outcome = check(RawLine(base + number, offset, data), path, origin)
            if type(outcome) is BadLine:  # cannot be: the worker parsed it
                bad.append(outcome)
            else:
                alerts.extend(outcome)
        self.detector.counters.merge(done.counters)
        deliver(alerts, bad)
        return base + done.lines

    def _pool_or_new(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._stop = self._context.Event()
            setup = _WorkerSetup(
                self.detector.rules,
                self.detector.prefilter is None,
                self._stop,
                os.getpid(),
            )
            # With fork the workers start at the first submit, all at once, before
            # the pool starts any thread of its own.
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs,
                mp_context=self._context,
                initializer=_start_worker,
                initargs=(setup,),
            )
        return self._pool

    def close(self, abort: bool = False) -> None:
        """End the pool and wait for its workers to exit. `abort` (an exception
        is on its way: Ctrl-C) drops the queued parts and makes the running ones
        give up before their next read, so this returns promptly."""
        self._end_pool(abort)

    def _end_pool(self, abort: bool) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if abort:
            self._stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
