"""Render the README's screenshot from the app itself: the dashboard following
`sample_logs/` (real follower, detector and state), saved as SVG.

    .venv/bin/python docs/make_screenshot.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from detector.rules import load_rules
from tui.launch import follow_app

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent / "sample_logs"


async def main() -> None:
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
    rules, _ = load_rules()
    with tempfile.TemporaryDirectory() as folder:
        app = follow_app(rules, [str(SAMPLES)], str(Path(folder) / "state.sqlite3"))
        async with app.run_test(size=(150, 24)) as pilot:
            deadline = time.monotonic() + 30
            while len(app.view.rows) < 6 and time.monotonic() < deadline:
                await pilot.pause(0.2)
            await pilot.pause(0.5)
            app.save_screenshot("screenshot.svg", str(HERE))
            await pilot.press("enter")
            await pilot.pause(0.8)
            app.save_screenshot("screenshot-alert.svg", str(HERE))
    print(f"wrote {HERE / 'screenshot.svg'} and screenshot-alert.svg")


if __name__ == "__main__":
    asyncio.run(main())
