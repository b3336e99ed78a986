"""A table that draws only the rows on screen, over any sequence it is given.

Textual's DataTable keeps every row inside the widget: appending costs ~100 ms at
10k rows and removing one ~1.5 s at 100k (measured, see NOTES). This table owns no
rows at all; it reads `rows[i]` for the dozen or so lines in view, so holding a
hundred thousand alerts costs nothing at render time and a new batch costs a
length change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.text import safe


@dataclass(frozen=True, slots=True)
class Column:
    """A column: at least `width` cells wide, plus `flex` shares of spare width."""

    key: str
    label: str
    width: int
    flex: int = 0


def column_widths(columns: Sequence[Column], total: int) -> list[int]:
    """Share `total` cells between columns, one cell of gap after each."""
    widths = [column.width for column in columns]
    spare = total - sum(widths) - len(columns)
    shares = sum(column.flex for column in columns)
    if spare > 0 and shares:
        given = 0
        flexible = [i for i, column in enumerate(columns) if column.flex]
        for i in flexible:
            extra = spare * columns[i].flex // shares
            widths[i] += extra
            given += extra
        # Rounding leftovers go to the last flexible column.
        widths[flexible[-1]] += spare - given
    return widths


def plain_cells(item: Any) -> list[Text]:
    """The default: an item is a sequence of values, one per column."""
    return [safe(value) for value in item]


# The scrolling container's own keys (sideways scrolling among them) mean nothing
# here and would only crowd the help: they are not inherited.
class VirtualTable(ScrollView, can_focus=True, inherit_bindings=False):
    """Rows drawn on demand from `rows`, with a cursor and a fixed header line."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "virtual-table--header",
        "virtual-table--cursor",
        "virtual-table--cursor-blurred",
    }

    DEFAULT_CSS = """
    VirtualTable {
        overflow-x: hidden;
        overflow-y: auto;
        & > .virtual-table--header { text-style: bold; color: $text-muted; }
        & > .virtual-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .virtual-table--cursor-blurred {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First row", show=False),
        Binding("end", "last", "Last row", show=False),
        Binding("enter", "choose", "Open", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True, layout=False)

    class RowChosen(Message):
        """The user pressed Enter on a row or double-clicked it."""

        def __init__(self, table: VirtualTable, index: int, item: Any):
            super().__init__()
            self.table = table
            self.index = index
            self.item = item

        @property
        def control(self) -> VirtualTable:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        rows: Sequence[Any] = (),
        *,
        cells: Callable[[Any], list[Text]] = plain_cells,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ):
        super().__init__(name=name, id=id, classes=classes)
        self.columns = list(columns)
        self.rows: Sequence[Any] = rows
        self._cells = cells
        self._widths: tuple[int, list[int]] = (-1, [])
        # Drawn lines by (item, version, cursor?, focus?, width): a repaint after a
        # cursor move or a batch of arrivals draws only the lines it has not seen.
        self._lines: LRUCache[tuple, Strip] = LRUCache(1024)

    # Rows ------------------------------------------------------------------

    def show(self, rows: Sequence[Any]) -> None:
        """Display `rows` (kept by reference, never copied)."""
        self.rows = rows
        self.rows_changed()

    def rows_changed(self) -> None:
        """Call after the sequence shown changed length or content."""
        self.virtual_size = Size(self.size.width, len(self.rows) + 1)
        if self.cursor >= len(self.rows):
            self.cursor = max(len(self.rows) - 1, 0)
        self.refresh()

    @property
    def current(self) -> Any | None:
        """The item under the cursor, or None when there are no rows."""
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor]
        return None

    @property
    def body_height(self) -> int:
        """How many rows fit under the header."""
        return max(self.scrollable_content_region.height - 1, 1)

    def cells(self, item: Any) -> list[Text]:
        """The cells of one row; subclasses may override instead of passing `cells`."""
        return self._cells(item)

    def version(self, item: Any) -> object:
        """What, besides the item itself, changes how its row looks."""
        return None

    def notify_style_update(self) -> None:
        self._lines.clear()  # a new theme: every line is drawn again
        super().notify_style_update()

    # Cursor ----------------------------------------------------------------

    def validate_cursor(self, value: int) -> int:
        return min(max(value, 0), max(len(self.rows) - 1, 0))

    def watch_cursor(self, old: int, new: int) -> None:
        top = round(self.scroll_y)
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + self.body_height:
            self.scroll_to(y=new - self.body_height + 1, animate=False, immediate=True)
        else:
            # Only the two lines the cursor left and reached look different.
            self.refresh_line(old + 1)
            self.refresh_line(new + 1)

    def action_cursor_up(self) -> None:
        self.cursor -= 1

    def action_cursor_down(self) -> None:
        self.cursor += 1

    def action_page_up(self) -> None:
        self.cursor -= self.body_height

    def action_page_down(self) -> None:
        self.cursor += self.body_height

    def action_first(self) -> None:
        self.cursor = 0

    def action_last(self) -> None:
        self.cursor = len(self.rows) - 1

    def action_choose(self) -> None:
        item = self.current
        if item is not None:
            self.post_message(self.RowChosen(self, self.cursor, item))

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return
        index = offset.y - 1 + round(self.scroll_y)
        if index < len(self.rows):
            self.cursor = index
            if event.chain >= 2:
                self.action_choose()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # Drawing ---------------------------------------------------------------

    def _column_widths(self, width: int) -> list[int]:
        if self._widths[0] != width:
            self._widths = (width, column_widths(self.columns, width))
        return self._widths[1]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        widths = self._column_widths(width)
        if y == 0:
            header = self.get_component_rich_style("virtual-table--header")
            labels = [Text(column.label) for column in self.columns]
            return self._strip(labels, widths, width, base, header)

        index = y - 1 + round(self.scroll_y)
        if index >= len(self.rows):
            return Strip.blank(width, base)
        item = self.rows[index]
        on_cursor = index == self.cursor
        try:
            key = (item, self.version(item), on_cursor, self.has_focus, width)
            strip = self._lines.get(key)
        except TypeError:  # an unhashable item: drawn every time
            key, strip = None, None
        if strip is None:
            over = None
            if on_cursor:
                name = "cursor" if self.has_focus else "cursor-blurred"
                over = self.get_component_rich_style(f"virtual-table--{name}")
            strip = self._strip(self.cells(item), widths, width, base, over)
            if key is not None:
                self._lines[key] = strip
        return strip

    def _strip(
        self,
        cells: list[Text],
        widths: list[int],
        width: int,
        base: Style,
        over: Style | None,
    ) -> Strip:
        """One line: cells cut to their widths, each cell's style on `base`, and
        `over` (the cursor's colours) on top of everything."""
        line = Text(no_wrap=True, end="")
        for cell, cell_width in zip(cells, widths, strict=False):
            cell.truncate(cell_width, overflow="ellipsis", pad=True)
            line.append_text(cell)
            line.append(" ")
        segments = []
        for text, style, _ in line.render(self.app.console):
            style = base + style if style else base
            segments.append(Segment(text, style + over if over else style))
        return Strip(segments).adjust_cell_length(width, base + over if over else base)
