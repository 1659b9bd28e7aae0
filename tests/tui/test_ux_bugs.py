"""Pilot tests for the dashboard bugs of issue #13, each at 80x24, 60x20 and 40x10.

Each test failed on the code before its fix. Screens are read from the compositor (what the
terminal would show, scrollbars and all), not from the widgets' own render methods.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual import events

from tests.tui.fixtures import (
    SIZE_IDS,
    SIZES,
    SequenceCollector,
    listed_ports,
    make_app,
    screen_lines,
    snapshot,
    tcp,
    until,
)


def burst(app: Any, text: str) -> None:
    """Queue keys the way a fast typist (or a loaded machine) delivers them: all at once, before
    the app has handled the first one."""
    names = {"/": "slash", " ": "space", ":": "colon", "\r": "enter", "\x1b": "escape"}
    for ch in text:
        app.post_message(events.Key(names.get(ch, ch), ch))


def many_listeners(n: int = 60) -> Any:
    """Enough rows that the table scrolls (its scrollbar shows)."""
    socks = [tcp("127.0.0.1", 20000 + i, pid=404) for i in range(n)]
    return snapshot([*snapshot().sockets, *socks])


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_malformed_filter_keeps_the_last_submitted_filter(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("slash", *"exposed", "enter")
        assert sorted(listed_ports(app)) == [80, 80]
        await pilot.press("slash", *" pid:x", "enter")
        await pilot.pause()
        assert app.filter is not None and app.filter.text == "exposed"  # not the prefix "exposed pid"
        assert sorted(listed_ports(app)) == [80, 80]
        error = str(app.screen.query_one("#filter-error").render())
        assert "pid" in error
        assert any("pid" in line for line in screen_lines(app)), "the error shows in the filter line"


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_keys_typed_right_after_slash_go_to_the_filter(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        model = app.model()
        sort = (model.sort_column, model.sort_reverse)
        burst(app, "/shGj")
        await until(pilot, lambda: app.screen.query_one("#filter").value == "shGj")
        assert (model.sort_column, model.sort_reverse) == sort  # `s` did not sort
        assert model.collapsed == set()  # `h` did not fold a group
        assert app.focused is app.screen.query_one("#filter")
        await pilot.press("escape")
        burst(app, "2/ab")  # a view key just before `/`, handled after it: the box keeps the focus
        await until(pilot, lambda: app.view == "connections")
        burst(app, "cd")
        await until(pilot, lambda: app.screen.query_one("#filter").value == "abcd")
        assert app.focused is app.screen.query_one("#filter") and app.state_choice is None
        burst(app, "/x/y")  # in the box, `/` is text (a path in a command line), not the key again
        await until(pilot, lambda: app.screen.query_one("#filter").value == "abcd/x/y")


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_keys_typed_right_after_enter_or_esc_in_the_box_go_to_the_table(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        model = app.model()
        column = model.sort_column
        burst(app, "/:80\rs")  # Enter, then `s` sorts (it does not land in the box)
        await until(pilot, lambda: model.sort_column != column)
        assert app.screen.query_one("#filter").value == ":80" and app.filter is not None
        assert app.filter.text == ":80" and app.focused is app.table()
        column = model.sort_column
        burst(app, "/x\x1bs")  # Esc clears, then `s` sorts again
        await until(pilot, lambda: model.sort_column != column)
        await pilot.pause()
        assert app.screen.query_one("#filter").value == "" and app.filter is None
        assert app.focused is app.table()


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_scrollbar_does_not_cover_the_last_column(size: tuple[int, int]) -> None:
    app = make_app(SequenceCollector(many_listeners()))
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.pause()
        table = app.table()
        assert table.show_vertical_scrollbar
        region = table.content_region
        header = screen_lines(app)[region.y][region.x : region.right]
        visible = table.visible_columns()
        last_index, _ = visible[-1]
        label = app.model().columns[last_index].label
        assert header.rstrip().endswith(label) or header.rstrip().endswith(label[:-1] + "…"), header
        # every column's text ends left of the scrollbar
        used = sum(w for _, w in visible) + len(visible) - 1
        assert used <= region.width - table.scrollbar_size_vertical


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_sort_arrow_is_never_cut(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        model = app.model()
        for index, _width in app.table().visible_columns():
            app.table().sort_by(index, reverse=False)
            await pilot.pause()
            header = app.table().visible_text()[0]
            assert "▲" in header, (model.columns[index].label, header)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_footer_shows_only_keys_that_apply(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("3")
        await pilot.pause()
        footer = screen_lines(app)[-1]
        assert "Detail" not in footer and "Kill" not in footer, footer
        await pilot.press("1")
        await pilot.pause()
        footer = screen_lines(app)[-1]
        if size[0] >= 80:
            for title in ("Kill", "Test", "Free"):
                assert title in footer, footer


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_keys_that_do_not_apply_here_say_so(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        for view_key, key, where in (
            ("1", "c", "Connections"),
            ("1", "d", "Connections"),
            ("2", "right_square_bracket", "Listening"),
            ("3", "K", "socket"),
        ):
            await pilot.press(view_key)
            before = len(app._notifications)
            await pilot.press(key)
            await pilot.pause()
            new = [str(n.message) for n in list(app._notifications)[before:]]
            assert any(where in m for m in new), (key, new)
        assert app.state_choice is None and not app.dns and app.range_choice == "all"


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_ctrl_c_quits(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert not app.is_running


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_ctrl_c_quits_from_the_filter_box(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("slash", "x", "ctrl+c")
        await pilot.pause()
        assert not app.is_running
