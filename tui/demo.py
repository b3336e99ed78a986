"""`winlogwatch demo`: the real pipeline on replayed sample logs.

The sample logs are written, event by event, into a temporary winlogbeat output
folder while the dashboard follows that folder; every alert on screen went through
the follower, the shapes, the rules and the state database. Quitting removes the
folder and its state.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from detector.replay import Replayer, sample_files

#: Where the sample logs are: beside the package in a clone or an editable install.
SAMPLE_LOGS = Path(__file__).resolve().parent.parent / "sample_logs"


@contextmanager
def replayed_folder(speed: float = 1.0, samples: Path = SAMPLE_LOGS):
    """A temporary folder being filled with the sample logs; removed on exit.

    Yields (folder, state file). The replay runs in a plain thread: it only writes
    files, as winlogbeat would from another process.
    """
    sources = sample_files(samples)
    if not sources:
        raise FileNotFoundError(f"no sample logs (*.ndjson) in {samples}")
    folder = Path(tempfile.mkdtemp(prefix="winlogwatch-demo-"))
    logs = folder / "logs"
    logs.mkdir()
    replayer = Replayer(sources, logs / "winlogbeat.ndjson", speed=speed)
    stop = threading.Event()
    thread = threading.Thread(
        target=replayer.run, args=(stop,), name="demo-replay", daemon=True
    )
    thread.start()
    try:
        yield logs, folder / "state.sqlite3"
    finally:
        stop.set()
        thread.join(timeout=5)
        shutil.rmtree(folder, ignore_errors=True)


def demo_main(argv: list[str]) -> int:
    """`winlogwatch demo [--speed N] [--rules DIR]`: run the dashboard on the replay."""
    import argparse

    from detector.cli import add_rule_options, rules_or_exit, setup_logging
    from tui.launch import follow_app, run_app, tune_gc

    parser = argparse.ArgumentParser(
        prog="winlogwatch demo",
        description="Replay the sample logs into a temporary winlogbeat folder at a "
        "realistic pace and follow it live. Quitting removes the temporary files.",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="N",
        help="replay N times faster than the events' own timestamps (default 1)",
    )
    add_rule_options(parser)
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be above zero")
    setup_logging(args.verbose)
    tune_gc()
    rules = rules_or_exit(args.rules)
    with replayed_folder(args.speed) as (logs, state):
        app = follow_app(rules, [str(logs)], str(state), every_line=args.every_line)
        app.title = "winlogwatch demo"
        run_app(app)
    return 0
