"""The `winlogwatch` command: the dashboard by default, headless commands by name.

`winlogwatch scan ...` and `winlogwatch follow ...` never import Textual, so a CI
job driving them starts fast and needs no terminal.
"""

from __future__ import annotations

import sys

HEADLESS = ("scan", "follow")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in HEADLESS:
        from detector.cli import main as headless_main

        return headless_main(argv)
    from tui.launch import launch_main

    return launch_main(argv)


if __name__ == "__main__":
    sys.exit(main())
