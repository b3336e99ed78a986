"""Values from logs made safe to show: plain text, never markup or terminal control.

Every value that came from an event reaches the screen through `plain` or `safe`.
Markup is never parsed because the result is a `rich.text.Text`; control bytes and
the Unicode direction overrides are spelled out, because a terminal would act on
them (an escape sequence recolours the screen, an override reorders what follows).
"""

from __future__ import annotations

import re
from typing import Any

from rich.style import Style
from rich.text import Text

# C0 and C1 controls, DEL, and the bidirectional marks and overrides. Tab and
# newline are included: a table cell or a field value is one line.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _spell(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(value: Any, lines: bool = False) -> str:
    """A value as inert text: None is empty, lists are comma-joined.

    One line unless `lines`, which keeps newlines (for prose such as a rule's
    description); every other control character is spelt out either way.
    """
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(plain(item, lines) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return (_UNSAFE_BUT_NEWLINE if lines else _UNSAFE).sub(_spell, str(value))


def safe(value: Any, style: str | Style = "") -> Text:
    """A value as a `Text` that shows exactly its characters."""
    return Text(plain(value), style=style, no_wrap=True, end="")
