"""The virtual table repaints what changed, and what it shows always equals a full render.

Counts, not times: ``VTable.lines_built`` (lines rendered from scratch) and ``ages_restamped``
(row lines of which only the age cells were made again). The screen is what a terminal would
show: every update the app sends (full or partial, cell runs at cursor positions) is applied to a
grid of cells, so a line or cell the table failed to refresh keeps its old content there; it is
compared with the same grid after a full refresh of the table.
"""

from __future__ import annotations

import random
from typing import Any

from rich.cells import cell_len
from rich.segment import ControlType
from rich.style import Style
from textual.app import App, ComposeResult
from textual.widgets import Input

from widgets.table_model import Column, Group, RowSpec, TableModel
from widgets.vtable import VTable


def fmt_age(born: object, now: float) -> str:
    return f"{int(now - float(born))}s"  # type: ignore[arg-type]


COLS = (
    Column("name", "Name", 8),
    Column("n", "N", 6, align="right", badge=("odd", "◦")),
    Column("age", "Age", 5, align="right", format=fmt_age, age=True),
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spec(name: str, n: int, group: str = "g") -> RowSpec:
    return RowSpec(name, (name, n), group, None, ("odd",) if n % 2 else ())


class Terminal:
    """A grid of (character, style) cells that the app's updates are written to."""

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], tuple[str, Style | None]] = {}

    def write(self, app: App[None], renderable: Any) -> None:
        x = y = 0
        for segment in renderable.__rich_console__(app.console, app.console.options):
            if segment.control:
                for code in segment.control:
                    if code[0] == ControlType.CURSOR_MOVE_TO:
                        x, y = code[1], code[2]
                continue
            if segment.text == "\n":
                continue
            style = None if segment.style is None else Style(**_style_fields(segment.style))
            for ch in segment.text:
                self.cells[(x, y)] = (ch, style)
                x += cell_len(ch)

    def lines(self) -> list[list[tuple[str, Style | None]]]:
        height = 1 + max((y for _x, y in self.cells), default=-1)
        width = 1 + max((x for x, _y in self.cells), default=-1)
        return [[self.cells.get((x, y), (" ", None)) for x in range(width)] for y in range(height)]


def _style_fields(style: Style) -> dict[str, Any]:
    return {"color": style.color, "bgcolor": style.bgcolor, "bold": style.bold, "strike": style.strike}


class Host(App[None]):
    def __init__(self, grouped: bool = False) -> None:
        super().__init__()
        self.terminal = Terminal()
        self.clock = Clock()
        groups = (Group("g", "first"), Group("h", "second")) if grouped else ()
        self.model = TableModel(COLS, groups, sort_column=0)

    def compose(self) -> ComposeResult:
        yield VTable(self.model, clock=self.clock, id="t")
        yield Input(id="box")

    def _display(self, screen: Any, renderable: Any) -> None:
        super()._display(screen, renderable)
        if renderable is not None:
            self.terminal.write(self, renderable)


def screen(app: Host) -> list[list[tuple[str, Style | None]]]:
    """What a terminal shows: each cell's character and colours."""
    return app.terminal.lines()


def screen_text(app: Host) -> list[str]:
    return ["".join(ch for ch, _style in line) for line in screen(app)]


async def settle(pilot: object) -> None:
    await pilot.pause()  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


async def assert_same_as_full_render(app: Host, pilot: object) -> None:
    shown = screen(app)
    table = app.query_one(VTable)
    table.refresh()  # forget every built line: a render from scratch
    table.vertical_scrollbar.refresh()  # (its own widget: a thumb left behind would show)
    await settle(pilot)
    assert shown == screen(app)


async def test_a_changed_row_repaints_and_unchanged_rows_do_not() -> None:
    app = Host()
    async with app.run_test(size=(40, 17)) as pilot:
        table = app.query_one(VTable)
        app.model.apply(added=[spec(f"r{i:03}", i) for i in range(100)], mark_new=False)
        await settle(pilot)
        built = table.lines_built
        app.model.apply(updated=[spec("r004", 999)])
        await settle(pilot)
        assert table.lines_built - built == 1  # that row's line only
        assert any("r004" in line and "999" in line for line in screen_text(app))  # on the terminal
        await assert_same_as_full_render(app, pilot)

        built = table.lines_built
        app.model.apply(updated=[spec("r090", 5), spec("r005", 5)])  # off screen; the same values
        await settle(pilot)
        assert table.lines_built == built


async def test_the_cursor_a_scroll_and_a_theme_change_repaint() -> None:
    app = Host()
    async with app.run_test(size=(40, 17)) as pilot:
        table = app.query_one(VTable)
        table.focus()
        app.model.apply(added=[spec(f"r{i:03}", i) for i in range(100)], mark_new=False)
        await settle(pilot)
        built = table.lines_built
        await pilot.press("down")
        await settle(pilot)
        assert table.lines_built - built == 2  # the row it left and the row it is on
        assert app.model.cursor_key == "r001"
        await assert_same_as_full_render(app, pilot)

        built = table.lines_built
        await pilot.press("pagedown")
        await settle(pilot)
        assert round(table.scroll_y) > 0
        assert table.lines_built > built  # rows that came into view were built
        assert "r013" in "\n".join(table.visible_text())
        await assert_same_as_full_render(app, pilot)

        before = screen(app)
        built = table.lines_built
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await settle(pilot)
        assert table.lines_built - built >= 13  # every line, in the new colours
        assert screen(app) != before
        await assert_same_as_full_render(app, pilot)


async def test_the_scrollbar_repaints_only_when_its_thumb_moves() -> None:
    app = Host()
    async with app.run_test(size=(40, 17)) as pilot:
        table = app.query_one(VTable)
        app.model.apply(added=[spec(f"r{i:04}", i) for i in range(2000)], mark_new=False)
        await settle(pilot)
        bar = table.vertical_scrollbar
        renders = []
        real = bar.render
        bar.render = lambda: renders.append(1) or real()  # type: ignore[method-assign]
        app.model.apply(added=[spec("r1500a", 1)], mark_new=False)  # a line more, far below
        await settle(pilot)
        assert table.virtual_size.height == 2002 and not renders
        app.screen.refresh(layout=True)  # a layout that leaves the table's size as it is
        await settle(pilot)
        assert not renders
        app.model.apply(dropped=[f"r{i:04}" for i in range(100, 2000)])  # the thumb grows
        await settle(pilot)
        assert renders
        await assert_same_as_full_render(app, pilot)


async def test_the_cursor_line_follows_the_focus() -> None:
    app = Host()
    async with app.run_test(size=(40, 17)) as pilot:
        table = app.query_one(VTable)
        table.focus()
        app.model.apply(added=[spec(f"r{i:03}", i) for i in range(30)], mark_new=False)
        await settle(pilot)
        focused = screen(app)
        app.query_one(Input).focus()
        await settle(pilot)
        assert screen(app)[1] != focused[1]  # the cursor's colour when the table has no focus
        await assert_same_as_full_render(app, pilot)
        table.focus()
        await settle(pilot)
        assert screen(app)[1] == focused[1]
        await assert_same_as_full_render(app, pilot)


async def test_only_the_age_cells_are_made_again_when_the_clock_moves() -> None:
    app = Host()
    async with app.run_test(size=(40, 17)) as pilot:
        table = app.query_one(VTable)
        app.model.apply(added=[spec(f"r{i:03}", i) for i in range(100)], mark_new=False, now=1000.0)
        await settle(pilot)
        built, restamped = table.lines_built, table.ages_restamped
        app.clock.now += 2
        app.model.apply(updated=[spec("r003", 7)])  # a poll: one row changed, every age moved
        await settle(pilot)
        assert table.lines_built - built == 1
        assert table.ages_restamped - restamped == 12  # the 13 rows on screen but r003
        assert all(line.rstrip().endswith("2s") for line in table.visible_text()[1:])
        assert sum("r003" in line and "◦7" in line and "2s" in line for line in screen_text(app)) == 1
        await assert_same_as_full_render(app, pilot)


async def test_the_screen_equals_a_full_render_after_random_polls() -> None:
    rng = random.Random(14)
    app = Host(grouped=True)
    async with app.run_test(size=(44, 19)) as pilot:
        table = app.query_one(VTable)
        table.focus()
        names = [f"k{i:03}" for i in range(60)]
        live: dict[str, int] = {}
        for step in range(40):
            added = [
                spec(k, rng.randrange(50), rng.choice("gh")) for k in rng.sample(names, 4) if k not in live
            ]
            updated = [
                spec(k, rng.randrange(50), "g" if k < "k030" else "h")
                for k in rng.sample(sorted(live), min(5, len(live)))
            ]
            gone = rng.sample(sorted(live), min(2, len(live)))
            for s in added + updated:
                live[s.key] = 1
            for k in gone:
                live.pop(k, None)
            app.clock.now += rng.choice((0.5, 1, 2))
            app.model.apply(added=added, updated=updated, gone=gone, now=app.clock.now)
            action = rng.randrange(8)
            if action == 0:
                await pilot.press(rng.choice(("down", "up", "pagedown", "pageup", "end", "home")))
            elif action == 1:
                app.model.set_sort(rng.randrange(3), rng.random() < 0.5)
            elif action == 2:
                low = rng.randrange(50)
                app.model.set_filter(None if rng.random() < 0.4 else (lambda r, low=low: r.values[1] >= low))
            elif action == 3:
                app.model.set_collapsed(rng.choice("gh"), rng.random() < 0.3)
            await settle(pilot)
            await assert_same_as_full_render(app, pilot)
            _ = step
