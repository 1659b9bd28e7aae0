"""A virtual table: renders only the visible lines of a :class:`~widgets.table_model.TableModel`.

Built on ScrollView and the Line API. Line 0 is the (fixed) column header; below it the model's
lines (group headers and rows) scroll. The cursor is a row key, so it stays on the same row
while rows appear and vanish around it. Cells are drawn as plain segments of literal text: no
markup is ever parsed from row data.

Drawing follows what changed: after each change of the model the table compares what each line on
screen would show now (its *signature*: the row's key, values, facets, flags, mark, age texts and
whether the cursor is on it) with what was last drawn there, and refreshes only the lines that
differ; a poll that rebuilt two rows on screen repaints two lines, not the whole table. Built lines
are kept by row key (for the rows on screen only), so a scroll re-uses the rows it moves. A change
that can alter every line (a resize, a theme or focus change, hidden columns, a full ``refresh()``
such as reverse DNS asks for) forgets what was drawn and repaints everything.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from math import ceil
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.strip import Strip

from widgets.table_model import HEADER_PREFIX, Column, Mark, Row, TableModel

_MARK_CLASS = {
    Mark.NEW: "vtable--new",
    Mark.CHANGED: "vtable--changed",
    Mark.GONE: "vtable--gone",
}


_UNDRAWN = object()  # a line not drawn yet (no signature is this)
_FULL_PENDING = object()  # the frame key while a full repaint is asked for


def _thumb(bar: ScrollBar | None) -> tuple[int, int] | None:
    """Where a vertical scrollbar's thumb is drawn, in eighths of a cell (as Textual's
    ``ScrollBarRender.render_bar`` places it): equal thumbs draw the same bar."""
    if bar is None:
        return None
    virtual = ceil(bar.window_virtual_size)
    window = ceil(bar.window_size if bar.window_size < bar.window_virtual_size else 0)
    length = bar.size.height
    if not (window and length and virtual and length != virtual):
        return (-1, -1)
    thumb = max(1, window / (virtual / length))
    position = (length - thumb) * (bar.position / (virtual - window))
    start = int(position * 8)
    return (start, start + ceil(thumb * 8))


def _only_ages(old: object, new: object) -> bool:
    """Both are row signatures that differ at most in their age texts."""
    return (
        isinstance(old, tuple)
        and isinstance(new, tuple)
        and old[0] == "row" == new[0]
        and old[:6] == new[:6]
        and old[7] == new[7]
    )


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
        # (width, hidden) -> the columns shown; of the age columns among them: their formats,
        # their (x, width) on screen and their (segment slot, column, width) in a row's line
        self._columns_cache: tuple[
            tuple[int, frozenset[str]],
            list[tuple[int, int]],
            tuple[Any, ...],
            list[tuple[int, int]],
            list[tuple[int, int, int]],
        ] = ((-1, frozenset()), [], (), [], [])
        self._last_cursor: str | None = None
        self._content_width_cache: tuple[object, int] = (None, 0)
        # what each screen line (y) shows now, as drawn: its signature (see _signature)
        self._drawn: dict[int, object] = {}
        # row key -> (signature, strip): built lines of the rows on screen, re-used while unchanged
        self._strips: dict[str, tuple[object, Strip, list[Segment]]] = {}
        self._styles: dict[object, Style] = {}  # component styles, until the styles change
        self._frame_key: object = None  # what every line depends on (width, columns, focus, styles)
        self._style_epoch = 0
        self.lines_built = 0  # lines rendered from scratch (not from the strip cache): for tests
        self.ages_restamped = 0  # row lines of which only the age cells were made again

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
        self._set_virtual_height(len(self.model.lines) + 1)
        if anchor and old_index is not None and old_index != new_index:
            self._scroll_now(self.scroll_y + (new_index - old_index))
        self._drawn_cursor_index = new_index
        self._ensure_cursor_visible()
        self._refresh_changed()
        self._announce_cursor()

    def _set_virtual_height(self, height: int) -> None:
        """The scroll area follows the number of lines without the full repaint (and layout) that
        assigning ``virtual_size`` asks for, and the scrollbar is repainted only when its thumb
        moves (a row more among 20,000 does not move it); when the scrollbar appears or goes,
        Textual's own update (with its layout) runs."""
        size = Size(self.size.width, height)
        if size == self.virtual_size:
            return
        if not self.is_mounted or not self.size:
            self.virtual_size = size
            return
        shown = self.show_vertical_scrollbar
        bar = self.vertical_scrollbar if shown else None
        before = _thumb(bar)
        self.set_reactive(VTable.virtual_size, size)
        self._refresh_scrollbars()
        if bar is None or self.show_vertical_scrollbar != shown or self.show_horizontal_scrollbar:
            self._scroll_update(size)
            return
        bar.set_reactive(ScrollBar.window_virtual_size, height)
        if _thumb(bar) != before:
            bar.refresh()
        self.scroll_y = self.validate_scroll_y(self.scroll_y)

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        """A layout of the screen that leaves this table's size as it was changes nothing here:
        the scroll area's size is the table's own (the number of lines), never the layout's, so
        Textual's comparison with the layout's figure (always unequal) would repaint the
        scrollbar at every layout of the screen (a status line growing a digit)."""
        if size == self.size and container_size == self.container_size:
            return False
        return super()._size_updated(size, virtual_size, container_size, layout)

    def _refresh_changed(self) -> None:
        """Refresh the lines on screen whose signature differs from what was drawn there."""
        height = self.size.height
        if not self.is_mounted or height <= 0:
            self.refresh()
            return
        if not self._check_frame():  # every line depends on what changed: all are repainted
            return
        drawn = self._drawn
        now = self.clock()
        width = self.size.width
        # per line: 0 unchanged, 1 changed, 2 only its age cells changed (the clock moved on)
        kinds = [0] * (height + 1)
        for y in range(height):
            old, new = drawn.get(y, _UNDRAWN), self._signature(y, now)
            if old != new:
                kinds[y] = 2 if _only_ages(old, new) else 1
        self.visible_columns()
        spans = [(0, width, (1,)), *((x, w, (2,)) for x, w in self._columns_cache[3])]
        for x, w, wanted in spans:  # whole lines, then the age columns, in runs of lines
            start = -1
            for y, kind in enumerate(kinds):
                if kind in wanted and start < 0:
                    start = y
                elif kind not in wanted and start >= 0:
                    super().refresh(Region(x, start, w, y - start))
                    start = -1
        if len(self._strips) > 2 * height + 8:  # keep the built lines of the rows on screen only
            shown = set(self._shown_keys(height))
            self._strips = {k: v for k, v in self._strips.items() if k in shown}

    def _shown_keys(self, height: int) -> list[str]:
        top = round(self.scroll_y)
        return self.model.lines[top : top + height]

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> VTable:
        """A full refresh (no regions: reverse DNS names arrived, the size changed, ...) builds
        every line again; a refresh of regions repaints those (lines already built are re-used
        where their signature is unchanged)."""
        if repaint and not regions:
            self._forget()
            self._frame_key = _FULL_PENDING
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def notify_style_update(self) -> None:
        """The theme, the focus or a class changed: every style (and so every line) may differ."""
        super().notify_style_update()
        self._style_epoch += 1

    def _frame(self) -> object:
        """What every line depends on: the size, the columns shown, the focus (the cursor's
        colour) and the styles."""
        return (self.size, self._content_width(), self.model.hidden, self.has_focus, self._style_epoch)

    def _check_frame(self) -> bool:
        """False when the frame changed since the last look: what was drawn is forgotten and
        every line repainted (unless a full repaint is on its way already)."""
        key = self._frame()
        if key == self._frame_key:
            return True
        if self._frame_key is not _FULL_PENDING:
            super().refresh()
        self._forget()
        self._frame_key = key
        return False

    def _forget(self) -> None:
        """Forget what was drawn, the built lines and the styles: every line is built again."""
        self._drawn = {}
        self._strips = {}
        self._styles = {}

    def _signature(self, y: int, now: float) -> object:
        """What screen line ``y`` shows (equal signatures: equal lines, in the same frame)."""
        model = self.model
        if y == 0:
            return ("header", model.sort_column, model.sort_reverse)
        lines = model.lines
        if not lines:
            text = self.empty_text if not model.rows else self.no_match_text
            return ("empty", text, y)
        index = round(self.scroll_y) + y - 1
        if index >= len(lines):
            return None
        key = lines[index]
        cursor = index == model.cursor_index
        if key.startswith(HEADER_PREFIX):
            group = key[len(HEADER_PREFIX) :]
            return (key, group in model.collapsed, model.group_label(group), model.group_count(group), cursor)
        row = model.rows.get(key)
        if row is None:
            return None
        return ("row", key, row.values, row.facets, row.flags, row.mark, self._ages(row, now), cursor)

    def _ages(self, row: Row, now: float) -> tuple[str, ...]:
        """The age cells' texts of ``row`` (they change with the clock, not with the row)."""
        self.visible_columns()
        return tuple(
            fmt(row.born, now) if fmt is not None else str(row.born) for fmt in self._columns_cache[2]
        )

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
        self.refresh()

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
        key = (self.size, self.show_vertical_scrollbar, self.show_horizontal_scrollbar)
        cached = self._content_width_cache
        if cached[0] != key:
            cached = self._content_width_cache = (
                key,
                self.scrollable_content_region.width or self.size.width,
            )
        return cached[1]

    def visible_columns(self) -> list[tuple[int, int]]:
        """``[(column_index, width)]`` of what fits now (hidden columns left out)."""
        key = (self._content_width(), self.model.hidden)
        if self._columns_cache[0] != key:
            shown = self.model.layout(key[0])
            columns = self.model.columns
            ages = tuple(columns[i].format for i, _w in shown if columns[i].age)
            spans, slots, x = [], [], 0
            for n, (i, w) in enumerate(shown):
                if columns[i].age:
                    spans.append((x, w))
                    slots.append((2 * n, i, w))
                x += w + 1
            self._columns_cache = (key, shown, ages, spans, slots)
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

    def _style(self, *names: str) -> Style:
        """The widget's style plus the named component styles, computed once until the styles
        change (``rich_style`` walks every ancestor: a fraction of a millisecond a call)."""
        style = self._styles.get(names)
        if style is None:
            style = self._styles.get(())
            if style is None:
                style = self._styles[()] = self.rich_style
            for name in names:
                style = style + self.get_component_rich_style(name)
            self._styles[names] = style
        return style

    def render_line(self, y: int) -> Strip:
        return self._line(y, drawn=True)

    def _line(self, y: int, drawn: bool) -> Strip:
        """Line ``y``, from the strip cache when its row is unchanged; ``drawn``: it goes on the
        screen (what is drawn there is noted, for the next comparison)."""
        self._check_frame()
        now = self.clock()
        sig = self._signature(y, now)
        if drawn:
            self._drawn[y] = sig
        key = sig[1] if isinstance(sig, tuple) and sig[0] == "row" else None
        if key is None:
            self.lines_built += drawn
            return self._build_line(y, now)
        cached = self._strips.get(key)
        if cached is not None:
            if cached[0] == sig:
                return cached[1]
            if _only_ages(cached[0], sig):
                strip, segments = self._restamp(key, cached[2], sig[7], now)  # type: ignore[index]
                self.ages_restamped += drawn
                self._strips[key] = (sig, strip, segments)
                return strip
        self.lines_built += drawn
        row = self.model.rows[key]
        segments = self._row_segments(row, sig[7], now)  # type: ignore[index]
        strip = self._strip(segments)
        self._strips[key] = (sig, strip, segments)
        return strip

    def _restamp(
        self, key: str, segments: list[Segment], cursor: bool, now: float
    ) -> tuple[Strip, list[Segment]]:
        """A row's line with only its age cells made again (the rest of its cells unchanged)."""
        row = self.model.rows[key]
        styles = self._row_styles(row, cursor)
        segments = list(segments)
        for slot, index, cw in self._columns_cache[4]:
            segments[slot] = self._cell(row, index, cw, now, styles)
        return self._strip(segments), segments

    def _build_line(self, y: int, now: float) -> Strip:
        width = self.size.width
        base = self._style()
        if y == 0:
            return self._render_header(width, base)
        lines = self.model.lines
        index = round(self.scroll_y) + y - 1
        if not lines:
            text = self.empty_text if not self.model.rows else self.no_match_text
            wrapped = textwrap.wrap(text, max(8, self._content_width() - 2))  # readable when narrow
            if 1 <= y <= len(wrapped):
                style = self._style("vtable--empty")
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
        return self._strip(self._row_segments(row, cursor, now))

    def _render_header(self, width: int, base: Style) -> Strip:
        style = self._style("vtable--header")
        sorted_style = self._style("vtable--header-sorted")
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
        style = self._style("vtable--group", "vtable--cursor") if cursor else self._style("vtable--group")
        arrow = "▸" if group in self.model.collapsed else "▾"
        text = f"{arrow} {self.model.group_label(group)} ({self.model.group_count(group)})"
        return Strip([Segment(fit(text, width), style)], width)

    def _row_styles(self, row: Row, cursor: bool) -> tuple[Style, Style, Style]:
        """(plain, emphasis, alert) styles of a row's cells."""
        mark_class = _MARK_CLASS.get(row.mark)
        names = (mark_class,) if mark_class else ()
        on = ("vtable--cursor",) if cursor else ()
        style = self._style(*names, *on)
        emphasis = self._style(*names, *on, "vtable--emphasis", *on) if not mark_class else style
        alert = self._style(*names, *on, "vtable--alert", *on)
        return style, emphasis, alert

    def _cell(self, row: Row, index: int, cw: int, now: float, styles: tuple[Style, Style, Style]) -> Segment:
        style, emphasis, alert = styles
        col: Column = self.model.columns[index]
        value = self.model.value(row, index)
        fmt = col.format
        text = fmt(value, now) if fmt is not None else ("" if value is None else str(value))
        facet, glyph = col.badge
        if facet and facet in row.facets:
            text = glyph + text
        cell_style = emphasis if col.emphasis is not None and col.emphasis(value) else style
        flags = row.flags
        if flags and col.marks:
            glyphs = "".join(g for flag, g in col.marks if flag in flags)
            if glyphs:
                text, cell_style = glyphs + text, alert
        return Segment(fit(text, cw, col.align), cell_style)

    def _strip(self, segments: list[Segment]) -> Strip:
        """A row's segments as a line as wide as the table (the padding in its last cell's style)."""
        return Strip(segments).adjust_cell_length(self.size.width, segments[-1].style)

    def _row_segments(self, row: Row, cursor: bool, now: float) -> list[Segment]:
        """A row's cells, each followed by one space (in the row's plain style, which is last)."""
        styles = self._row_styles(row, cursor)
        space = Segment(" ", styles[0])
        segments: list[Segment] = []
        for index, cw in self.visible_columns():
            segments.append(self._cell(row, index, cw, now, styles))
            segments.append(space)
        return segments or [Segment("", styles[0])]

    # ------------------------------------------------------------------------ inspection

    def visible_text(self) -> list[str]:
        """The text of the lines on screen (for tests and debugging)."""
        height = self.size.height
        return [strip.text for strip in (self._line(y, drawn=False) for y in range(height))]
