"""Key-to-screen latency of the dashboard while it holds many alerts and follows a
file that grows fast.

    .venv/bin/python bench/tui_latency.py [--held 100000] [--rate 20000]

The app runs in-process with Textual's headless driver and the real follower,
detector and state database on a temporary file. A writer thread appends
winlogbeat lines at --rate events a second (--alert-share of them alerting).
Keys are sent the way the terminal driver sends them; the latency of a key is the
time from sending it to the first screen update that shows its effect, rendered
to terminal bytes (the write to the terminal itself is left out).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import random
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from textual import events  # noqa: E402

from detector.detect import Detector  # noqa: E402
from detector.lines import LineSplitter  # noqa: E402
from detector.rules import load_rules  # noqa: E402
from tui.alert_table import AlertTable  # noqa: E402
from tui.detail import DetailScreen  # noqa: E402
from tui.launch import follow_app, tune_gc  # noqa: E402
from tui.main_screen import MainScreen  # noqa: E402

CASES = REPO / "tests" / "data" / "tui" / "semantics.ndjson"
RECORD = re.compile(rb'"record_id":\d+')


def templates() -> tuple[bytes, bytes]:
    """An alerting line (case h01) and a near miss (h03, GrantedAccess 0X40)."""
    lines = CASES.read_bytes().splitlines()
    return lines[0], lines[2]


def numbered(template: bytes, number: int) -> bytes:
    # A fresh record id per line: each event is new to the store's de-duplication.
    return RECORD.sub(b'"record_id":%d' % number, template, count=1) + b"\n"


def held_alerts(rules, count: int, first_number: int):
    """`count` distinct alerts made by the real detector, as history would hold."""
    alerting, _ = templates()
    detector = Detector(rules)
    splitter = LineSplitter()
    data = b"".join(numbered(alerting, first_number + i) for i in range(count))
    alerts = []
    for raw in splitter.feed(data):
        alerts.extend(detector.check(raw, "history.ndjson", "history"))
    return alerts


def deliver_history(rules, sink, count: int, slice_size: int = 5000) -> None:
    """Make `count` alerts and hand them to `sink` a slice at a time, as the
    store worker hands over earlier sessions' alerts."""
    for start in range(0, count, slice_size):
        sink.on_alerts(held_alerts(rules, min(slice_size, count - start), start))


class Writer(threading.Thread):
    """Append lines at a steady rate, in small bursts as winlogbeat flushes."""

    def __init__(self, path: Path, rate: int, alert_share: float):
        super().__init__(daemon=True, name="writer")
        self.path, self.rate, self.alert_share = path, rate, alert_share
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        alerting, quiet = templates()
        tick = 0.01
        per_tick = max(1, round(self.rate * tick))
        every = max(1, round(1 / self.alert_share)) if self.alert_share else 0
        number = 10_000_000
        start = time.monotonic()
        with open(self.path, "ab", buffering=0) as out:
            while not self.stop.is_set():
                burst = []
                for _ in range(per_tick):
                    number += 1
                    hit = every and number % every == 0
                    burst.append(numbered(alerting if hit else quiet, number))
                out.write(b"".join(burst))
                self.written += per_tick
                delay = start + self.written / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)


class Frames:
    """Every screen update: when it was ready, and what it showed."""

    def __init__(self, app):
        self.app = app
        self.log: list[tuple[float, str, int, str]] = []
        original = app._display

        def display(screen, renderable):
            if renderable is not None:
                # Render to terminal bytes as the real driver would.
                renderable.render_segments(app.console)
                table = app.main.table
                self.log.append(
                    (
                        time.perf_counter(),
                        type(screen).__name__,
                        table.cursor,
                        app.view.filter.text,
                    )
                )
            return original(screen, renderable)

        app._display = display

    def first_since(self, index: int, wanted) -> float | None:
        """When the first frame from `index` on showed `wanted`, or None."""
        for stamp, screen, cursor, filter_text in self.log[index:]:
            if wanted(screen, cursor, filter_text):
                return stamp
        return None


async def press(app, frames: Frames, key: str, wanted, timeout: float = 5.0) -> float:
    """Send one key as the driver does; seconds until a frame shows `wanted`."""
    character = key if len(key) == 1 else None
    seen = len(frames.log)
    start = time.perf_counter()
    app._driver.send_message(events.Key(key, character))
    while time.perf_counter() - start < timeout:
        await asyncio.sleep(0.002)
        shown = frames.first_since(seen, wanted)
        if shown is not None:
            return shown - start
    return timeout


def summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    if not ms:
        return f"{name:<28} no samples"
    p95 = ms[min(len(ms) - 1, math.ceil(0.95 * len(ms)) - 1)]
    p99 = ms[min(len(ms) - 1, math.ceil(0.99 * len(ms)) - 1)]
    return (
        f"{name:<28} n={len(ms):<4} p50 {statistics.median(ms):6.1f} ms  "
        f"p95 {p95:6.1f} ms  p99 {p99:6.1f} ms  max {ms[-1]:6.1f} ms"
    )


async def measure(args) -> None:
    rules, _ = load_rules()

    folder = Path(tempfile.mkdtemp(prefix="winlogwatch-bench-"))
    log = folder / "winlogbeat.ndjson"
    log.write_bytes(b"")
    app = follow_app(rules, [str(log)], str(folder / "state.sqlite3"))
    gc_pauses: list[float] = []
    gc_started = [0.0]

    def gc_timer(phase, info):
        if phase == "start":
            gc_started[0] = time.perf_counter()
        elif info["generation"] == 2:
            gc_pauses.append(time.perf_counter() - gc_started[0])

    async with app.run_test(size=(160, 45)):
        frames = Frames(app)
        print(f"making {args.held:,} held alerts with the real detector ...")
        made = time.perf_counter()
        feeder = threading.Thread(
            target=deliver_history, args=(rules, app.sink, args.held)
        )
        feeder.start()
        while len(app.view.rows) < args.held:
            await asyncio.sleep(0.05)
        feeder.join()
        print(f"  {time.perf_counter() - made:.1f} s", flush=True)
        print(f"holding {len(app.view.rows):,} alerts", flush=True)

        gc.callbacks.append(gc_timer)
        writer = Writer(log, args.rate, args.alert_share)
        writer.start()
        await asyncio.sleep(args.warmup)
        counters = app.counters
        events_before, clock_before = counters().events, time.monotonic()

        table = app.query_one(AlertTable)
        table.focus()
        moves, opens, filters = [], [], []
        deadline = time.monotonic() + args.seconds
        turn = 0
        while time.monotonic() < deadline:
            turn += 1
            if turn % 10 == 0:
                # Drill down and back.
                opens.append(
                    await press(
                        app, frames, "enter", lambda s, c, f: s == "DetailScreen"
                    )
                )
                await press(app, frames, "escape", lambda s, c, f: s == "MainScreen")
                assert not isinstance(app.screen, DetailScreen)
            elif turn % 10 == 5:
                # Filter the whole list, then clear the filter again.
                await press(app, frames, "slash", lambda s, c, f: True)
                app.query_one("#filter").value = "lsass"
                filters.append(
                    await press(app, frames, "enter", lambda s, c, f: f == "lsass")
                )
                await press(app, frames, "slash", lambda s, c, f: True)
                app.query_one("#filter").value = ""
                await press(app, frames, "enter", lambda s, c, f: f == "")
            else:
                key = "down" if table.cursor == 0 else "up"
                target = 1 if key == "down" else 0
                moves.append(
                    await press(app, frames, key, lambda s, c, f, t=target: c == t)
                )
            if args.verbose:
                kind, samples = {0: ("open", opens), 5: ("filter", filters)}.get(
                    turn % 10, ("move", moves)
                )
                print(f"{turn:4d} {kind:<6} {samples[-1] * 1000:7.1f} ms", flush=True)
            await asyncio.sleep(random.uniform(0.5, 1.5) * args.interval)
            while not isinstance(app.screen, MainScreen):
                await asyncio.sleep(0.01)

        events_after, clock_after = counters().events, time.monotonic()
        writer.stop.set()
        writer.join()
        gc.callbacks.remove(gc_timer)
        held_now = len(app.view.rows)
        gc.collect()
        resident = _resident_mib()
        waiting = app.sink.drain()
        app.view.add(waiting.alerts)

    read_rate = (events_after - events_before) / (clock_after - clock_before)
    print()
    print(f"events written  {args.rate:,}/s target; {writer.written:,} in all")
    print(f"events read     {read_rate:,.0f}/s by the follower during the measurement")
    share = f"{args.alert_share:.0%} of events alert"
    print(f"alerts held     {held_now:,} at the end ({share})")
    print(summary("cursor move (down/up)", moves))
    print(summary("open drill-down (enter)", opens))
    print(summary("filter all alerts (enter)", filters))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"memory          {resident:,.0f} MiB resident at the end, "
        f"{peak:,.0f} MiB at the peak"
    )
    if gc_pauses:
        print(
            f"full GC pauses  {len(gc_pauses)}, longest {max(gc_pauses) * 1000:.0f} ms"
        )
    shutil.rmtree(folder, ignore_errors=True)


def _resident_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=100_000, help="alerts held")
    parser.add_argument("--rate", type=int, default=20_000, help="events per second")
    parser.add_argument(
        "--alert-share", type=float, default=0.01, help="share of events that alert"
    )
    parser.add_argument("--seconds", type=float, default=20, help="measuring time")
    parser.add_argument("--warmup", type=float, default=3, help="seconds before")
    parser.add_argument(
        "--interval", type=float, default=0.1, help="mean seconds between keys"
    )
    parser.add_argument("--verbose", action="store_true", help="print every sample")
    parser.add_argument(
        "--default-gc", action="store_true", help="keep Python's GC thresholds"
    )
    args = parser.parse_args()
    if not args.default_gc:
        tune_gc()  # as `winlogwatch PATH...` does
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
