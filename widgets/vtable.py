"""A virtual table: renders only the visible lines of a :class:`~widgets.table_model.TableModel`.

Built on ScrollView and the Line API. Line 0 is the (fixed) column header; below it the model's
lines (group headers and rows) scroll. The cursor is a row key, so it stays on the same row
while rows appear and vanish around it. Cells are drawn as plain segments of literal text: no
markup is ever parsed from row data.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from widgets.table_model import HEADER_PREFIX, Column, Mark, Row, TableModel

_MARK_CLASS = {
    Mark.NEW: "vtable--new",
    Mark.CHANGED: "vtable--changed",
    Mark.GONE: "vtable--gone",
}


def fit(text: str, width: int, align: str = "left") -> str:
    """``text`` cut (with an ellipsis) or padded to exactly ``width`` cells."""
    if width <= 0:
        return ""
    n = cell_len(text)
    if n > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else "…"
    if align == "right":
        return " " * (width - n) + text
    return text + " " * (width - n)


class VTable(ScrollView, can_focus=True):
    """Keyed, grouped, sortable table that draws only what is on screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("home,g", "cursor_home", "Top", show=False),
        Binding("end,G", "cursor_end", "Bottom", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False),
        Binding("left,h", "collapse", "Collapse", show=False),
        Binding("right,l", "expand", "Expand", show=False),
        Binding("enter", "select", "Detail"),
    ]

    COMPONENT_CLASSES = {
        "vtable--header",
        "vtable--header-sorted",
        "vtable--cursor",
        "vtable--group",
        "vtable--new",
        "vtable--changed",
        "vtable--gone",
        "vtable--emphasis",
        "vtable--alert",
        "vtable--empty",
    }

    DEFAULT_CSS = """
    VTable {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-gutter: stable;  /* the scrollbar never covers the last column */
        background: $surface;
    }
    VTable > .vtable--header { background: $panel; color: $text; text-style: bold; }
    VTable > .vtable--header-sorted { background: $panel; color: $text-accent; text-style: bold; }
    VTable > .vtable--cursor { background: $block-cursor-blurred-background; }
    VTable:focus > .vtable--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    VTable > .vtable--group { color: $text-accent; text-style: bold; }
    VTable > .vtable--new { color: $text-success; }
    VTable > .vtable--changed { color: $text-warning; }
    VTable > .vtable--gone { color: $text-error; text-style: strike; }
    VTable > .vtable--emphasis { color: $text-warning; }
    VTable > .vtable--alert { color: $text-error; text-style: bold; }
    VTable > .vtable--empty { color: $text-muted; }
    """

    class CursorMoved(Message):
        """The cursor moved to another line (or the line under it changed)."""

        def __init__(self, table: VTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> VTable:
            return self.table

    class Selected(Message):
        """Enter (or a double click) on a row."""

        def __init__(self, table: VTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> VTable:
            return self.table

    def __init__(
        self,
        model: TableModel,
        *,
        clock: Callable[[], float] = time.time,
        empty_text: str = "nothing to show",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.model = model
        self.clock = clock
        self.empty_text = empty_text
        self.no_match_text = "no rows match the filter (Esc clears it)"
        self._columns_cache: tuple[tuple[int, frozenset[str]], list[tuple[int, int]]] = (
            (-1, frozenset()),
            [],
        )
        self._last_cursor: str | None = None

    # ------------------------------------------------------------------------ model sync

    def on_mount(self) -> None:
        self.model.add_listener(self.model_changed)
        self.model_changed(anchor=False)

    def on_unmount(self) -> None:
        self.model.remove_listener(self.model_changed)

    def model_changed(self, anchor: bool = True) -> None:
        """Called by the model after each change (it need not be called by hand): resize the
        scroll area, keep the cursor's row where it was on screen when ``anchor`` (rows appearing
        above it do not push it away), else scroll to show the cursor; redraw."""
        old_index = getattr(self, "_drawn_cursor_index", None)
        new_index = self.model.cursor_index
        self.virtual_size = Size(self.size.width, len(self.model.lines) + 1)
        if anchor and old_index is not None and old_index != new_index:
            self._scroll_now(self.scroll_y + (new_index - old_index))
        self._drawn_cursor_index = new_index
        self._ensure_cursor_visible()
        self.refresh()
        self._announce_cursor()

    def _announce_cursor(self) -> None:
        key = self.model.cursor_key
        if key != self._last_cursor:
            self._last_cursor = key
            self.post_message(self.CursorMoved(self, key))

    def _ensure_cursor_visible(self) -> None:
        height = self.size.height - 1  # minus the header line
        if height <= 0:
            return
        i = self.model.cursor_index
        top = round(self.scroll_y)
        if i < top:
            self._scroll_now(i)
        elif i >= top + height:
            self._scroll_now(i - height + 1)

    def _scroll_now(self, y: float) -> None:
        """Scroll at once (not after the next refresh, when a later change may have moved the
        cursor again) and even before the scrollbar has appeared for the new virtual size."""
        self.scroll_to(y=y, animate=False, force=True, immediate=True)

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self.model.lines) + 1)
        self._ensure_cursor_visible()

    # --------------------------------------------------------------------------- actions

    def action_cursor_up(self) -> None:
        self.model.move_cursor(-1)

    def action_cursor_down(self) -> None:
        self.model.move_cursor(1)

    def action_cursor_home(self) -> None:
        self.model.move_cursor_to(0)

    def action_cursor_end(self) -> None:
        self.model.move_cursor_to(len(self.model.lines) - 1)

    def _page(self) -> int:
        return max(1, self.size.height - 2)

    def action_page_up(self) -> None:
        self.model.move_cursor(-self._page())

    def action_page_down(self) -> None:
        self.model.move_cursor(self._page())

    def action_collapse(self) -> None:
        group = self.model.cursor_group()
        if group is not None and self.model.grouped:
            self.model.set_collapsed(group, True)

    def action_expand(self) -> None:
        group = self.model.cursor_group()
        if group is not None and self.model.grouped:
            self.model.set_collapsed(group, False)

    def action_select(self) -> None:
        if not self.model.lines:
            return
        key = self.model.lines[self.model.cursor_index]
        if key.startswith(HEADER_PREFIX):
            self.model.toggle_group(key[len(HEADER_PREFIX) :])
            return
        self.post_message(self.Selected(self, key))

    def sort_by(self, column: int, reverse: bool | None = None) -> None:
        model = self.model
        if reverse is None:
            if column == model.sort_column:
                reverse = not model.sort_reverse
            else:
                reverse = model.columns[column].reverse_first
        model.set_sort(column, reverse)

    def _content_width(self) -> int:
        """The width columns may use: the scrollbar's gutter is kept free."""
        return self.scrollable_content_region.width or self.size.width

    def visible_columns(self) -> list[tuple[int, int]]:
        """``[(column_index, width)]`` of what fits now (hidden columns left out)."""
        key = (self._content_width(), self.model.hidden)
        if self._columns_cache[0] != key:
            self._columns_cache = (key, self.model.layout(key[0]))
        return self._columns_cache[1]

    # ----------------------------------------------------------------------------- mouse

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = 0
            for index, width in self.visible_columns():
                if x <= offset.x < x + width + 1:
                    self.sort_by(index)
                    return
                x += width + 1
            return
        line = round(self.scroll_y) + offset.y - 1
        if 0 <= line < len(self.model.lines):
            self.model.move_cursor_to(line)
            key = self.model.lines[line]
            if key.startswith(HEADER_PREFIX):
                self.model.toggle_group(key[len(HEADER_PREFIX) :])
            elif event.chain >= 2:
                self.post_message(self.Selected(self, key))

    # ---------------------------------------------------------------------------- render

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            return self._render_header(width, base)
        lines = self.model.lines
        index = round(self.scroll_y) + y - 1
        if not lines:
            text = self.empty_text if not self.model.rows else self.no_match_text
            wrapped = textwrap.wrap(text, max(8, self._content_width() - 2))  # readable when narrow
            if 1 <= y <= len(wrapped):
                style = base + self.get_component_rich_style("vtable--empty")
                return Strip([Segment(fit(" " + wrapped[y - 1], width), style)], width)
            return Strip.blank(width, base)
        if index >= len(lines):
            return Strip.blank(width, base)
        key = lines[index]
        cursor = index == self.model.cursor_index
        if key.startswith(HEADER_PREFIX):
            return self._render_group(key[len(HEADER_PREFIX) :], width, base, cursor)
        row = self.model.rows.get(key)
        if row is None:
            return Strip.blank(width, base)
        return self._render_row(row, width, base, cursor)

    def _render_header(self, width: int, base: Style) -> Strip:
        style = base + self.get_component_rich_style("vtable--header")
        sorted_style = base + self.get_component_rich_style("vtable--header-sorted")
        model = self.model
        segments: list[Segment] = []
        for index, cw in self.visible_columns():
            col = model.columns[index]
            is_sorted = index == model.sort_column
            if is_sorted:
                arrow = " ▼" if model.sort_reverse else " ▲"
                label = col.label + arrow
                if cell_len(label) > cw:  # cut the label, never the arrow
                    label = fit(col.label, cw - 2) + arrow if cw > 2 else arrow.strip()
                text = fit(label, cw, col.align)
            else:
                text = fit(col.label, cw, col.align)
            segments.append(Segment(text, sorted_style if is_sorted else style))
            segments.append(Segment(" ", style))
        return Strip(segments).adjust_cell_length(width, style)

    def _render_group(self, group: str, width: int, base: Style, cursor: bool) -> Strip:
        style = base + self.get_component_rich_style("vtable--group")
        if cursor:
            style += self.get_component_rich_style("vtable--cursor")
        arrow = "▸" if group in self.model.collapsed else "▾"
        text = f"{arrow} {self.model.group_label(group)} ({self.model.group_count(group)})"
        return Strip([Segment(fit(text, width), style)], width)

    def _render_row(self, row: Row, width: int, base: Style, cursor: bool) -> Strip:
        style = base
        mark_class = _MARK_CLASS.get(row.mark)
        if mark_class:
            style = style + self.get_component_rich_style(mark_class)
        if cursor:
            style = style + self.get_component_rich_style("vtable--cursor")
        emphasis = style + self.get_component_rich_style("vtable--emphasis") if not mark_class else style
        alert = style + self.get_component_rich_style("vtable--alert")
        if cursor:
            emphasis = emphasis + self.get_component_rich_style("vtable--cursor")
            alert = alert + self.get_component_rich_style("vtable--cursor")
        flags = row.flags
        now = self.clock()
        model = self.model
        segments: list[Segment] = []
        for index, cw in self.visible_columns():
            col: Column = model.columns[index]
            value = model.value(row, index)
            fmt = col.format
            text = fmt(value, now) if fmt is not None else ("" if value is None else str(value))
            facet, glyph = col.badge
            if facet and facet in row.facets:
                text = glyph + text
            cell_style = emphasis if col.emphasis is not None and col.emphasis(value) else style
            if flags and col.marks:
                glyphs = "".join(g for flag, g in col.marks if flag in flags)
                if glyphs:
                    text, cell_style = glyphs + text, alert
            segments.append(Segment(fit(text, cw, col.align), cell_style))
            segments.append(Segment(" ", style))
        return Strip(segments).adjust_cell_length(width, style)

    # ------------------------------------------------------------------------ inspection

    def visible_text(self) -> list[str]:
        """The text of the lines on screen (for tests and debugging)."""
        height = self.size.height
        return [strip.text for strip in (self.render_line(y) for y in range(height))]
