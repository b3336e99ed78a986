"""The demo: sample logs replayed into a real folder, followed live, alerts shown."""

from __future__ import annotations

import threading
import time

from conftest import screen_text, until

from detector.replay import Replayer, sample_files
from detector.rules import load_rules
from tui.demo import SAMPLE_LOGS, replayed_folder
from tui.launch import follow_app


async def test_demo_shows_an_alert_that_came_through_the_follower():
    rules, _ = load_rules()
    started = time.monotonic()
    with replayed_folder(speed=2.0) as (logs, state):
        app = follow_app(rules, [str(logs)], str(state))
        async with app.run_test(size=(150, 30)) as pilot:
            await until(lambda: len(app.view.rows) >= 1, timeout=20)
            await pilot.pause()
            assert time.monotonic() - started < 15
            assert "lsass.exe" in screen_text(app)
            (row,) = app.view.rows
            alert = row.unpack()
            assert alert.path.startswith(str(logs))
            assert alert.document["log"]["file"]["line"] == 25
        folder = logs.parent
    assert not folder.exists()


def test_replay_writes_every_sample_line_and_rotates(tmp_path):
    sources = sample_files(SAMPLE_LOGS)
    target = tmp_path / "winlogbeat.ndjson"
    replayer = Replayer(sources, target, speed=1e9, rotate_bytes=1 << 20, loop=False)

    replayer.run(threading.Event())
    written = b"".join(p.read_bytes() for p in sorted(tmp_path.iterdir()))
    expected = sum(len(p.read_bytes().splitlines()) for p in sources)
    assert replayer.written == expected
    assert (tmp_path / "winlogbeat.ndjson.1").exists()
    assert all(p.stat().st_size <= 1 << 20 for p in tmp_path.iterdir())
    assert len(written.splitlines()) <= expected  # the oldest rotations are dropped


def test_sigterm_quits_the_demo_and_removes_its_folder(tmp_path):
    """Regression: a demo killed by SIGTERM (or its terminal closing) used to leave
    its temporary folder behind and the terminal unrestored."""
    import os
    import pty
    import select
    import signal
    import subprocess

    from conftest import winlogwatch_command

    leader, follower = pty.openpty()
    env = dict(os.environ, TMPDIR=str(tmp_path), TERM="xterm-256color")
    process = subprocess.Popen(
        [*winlogwatch_command(), "demo"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        start_new_session=True,
    )
    os.close(follower)
    try:
        deadline = time.monotonic() + 20
        while not list(tmp_path.glob("winlogwatch-demo-*/state.sqlite3")):
            assert time.monotonic() < deadline, "the demo never started"
            time.sleep(0.1)
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while process.poll() is None:
            assert time.monotonic() < deadline, "the demo ignored SIGTERM"
            # Keep the terminal drained, or the app blocks writing to it.
            if select.select([leader], [], [], 0.1)[0]:
                try:
                    os.read(leader, 65536)
                except OSError:
                    time.sleep(0.05)
        assert process.returncode == 0
        assert list(tmp_path.iterdir()) == []
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
