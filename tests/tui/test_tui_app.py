"""Pilot tests of the dashboard: real listeners in child processes, and fixed data for key tests."""

from __future__ import annotations

import pytest

from app.collector import PsutilCollector
from app.tui.app import PortscopeApp
from tests.helpers import child_listener, free_port, spawn_listener
from tests.tui.fixtures import (
    BlockingCollector,
    SequenceCollector,
    make_app,
    second_snapshot,
    snapshot,
    until,
)
from widgets.table_model import HEADER_PREFIX, Mark


def row_for_port(app: PortscopeApp, port: int, view: str = "listening") -> str | None:
    model = app.model(view)
    for key, row in model.rows.items():
        if row.payload.sock.laddr.port == port:
            return key
    return None


def listed_ports(app: PortscopeApp, view: str = "listening") -> list[int]:
    model = app.model(view)
    return [model.rows[k].payload.sock.laddr.port for k in model.lines if not k.startswith(HEADER_PREFIX)]


def live_app(interval: float = 0.2) -> PortscopeApp:
    from tests.tui.fixtures import fixed_interfaces

    return PortscopeApp(
        collector=PsutilCollector(), interval=interval, interfaces=fixed_interfaces, blink=False
    )


# ----------------------------------------------------------------------------- real sockets


async def test_real_listener_appears_with_owner_in_its_range_then_is_marked_and_removed() -> None:
    child = spawn_listener("tcp", "127.0.0.1", name="ps-tui-owner")
    try:
        app = live_app()
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: row_for_port(app, child.port) is not None)
            key = row_for_port(app, child.port)
            assert key is not None
            row = app.model().rows[key]
            assert row.payload.sock.pid == child.pid
            assert row.values[5] == "ps-tui-owner"
            assert row.group == row.payload.sock.range.value
            group_line = app.model().lines.index(HEADER_PREFIX + row.group)
            assert app.model().lines.index(key) > group_line
            app.set_filter_text(f":{child.port}")
            await pilot.pause()
            assert any("ps-tui-owner" in line for line in _screen_text(app))
            child.stop()
            await until(pilot, lambda: key in app.model().rows and app.model().rows[key].mark is Mark.GONE)
            await until(pilot, lambda: key not in app.model().rows)
    finally:
        child.stop()


async def test_cursor_stays_on_its_row_while_rows_appear_and_vanish_above() -> None:
    ports = sorted({free_port() for _ in range(4)})
    target_port = ports[-1]
    with child_listener("tcp", "127.0.0.1", target_port, name="ps-tui-target"):
        app = live_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: row_for_port(app, target_port) is not None)
            key = row_for_port(app, target_port)
            assert key is not None and app.model().select_key(key)
            others = [spawn_listener("tcp", "127.0.0.1", p, name="ps-tui-above") for p in ports[:-1]]
            try:
                await until(pilot, lambda: all(row_for_port(app, c.port) for c in others))
                assert app.model().cursor_key == key
                assert app.selected_socket() is not None
                assert app.selected_socket()[0].laddr.port == target_port  # type: ignore[index]
            finally:
                for c in others:
                    c.stop()
            await until(pilot, lambda: all(row_for_port(app, c.port) is None for c in others))
            assert app.model().cursor_key == key
            assert app.model().lines[app.model().cursor_index] == key


async def test_untrusted_process_name_is_shown_literally() -> None:
    evil = "[red]x\x1b[2J"
    with child_listener("tcp", "127.0.0.1", name=evil) as child:
        app = live_app()
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: row_for_port(app, child.port) is not None)
            app.set_filter_text(f":{child.port}")
            await pilot.pause()
            text = "\n".join(_screen_text(app))
            assert "[red]x\\x1b[2J" in text
            assert "\x1b" not in text


# ------------------------------------------------------------------------------ responsiveness


async def test_slow_collector_never_blocks_keys() -> None:
    collector = BlockingCollector(snapshot())
    app = make_app(collector, interval=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: collector.blocking.is_set())
        assert app.polling
        await pilot.press("2")
        assert app.view == "connections"
        await pilot.press("j", "k", "3", "1", "question_mark")
        assert app.view == "listening"
        assert len(app.screen_stack) == 2
        await pilot.press("escape")
        assert not collector.finished_slow.is_set()  # all of that happened during one slow poll
        collector.release.set()


async def test_quitting_while_a_poll_runs_exits_at_once() -> None:
    collector = BlockingCollector(snapshot(), limit=30)
    app = make_app(collector, interval=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: collector.blocking.is_set())
        await pilot.press("q")
    assert app.return_code == 0 or app.return_code is None
    assert not collector.finished_slow.is_set()  # the app did not wait for the poll
    collector.release.set()


# ------------------------------------------------------------------------------ keys


async def test_view_keys() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        for key, view in (("2", "connections"), ("3", "interfaces"), ("1", "listening")):
            await pilot.press(key)
            assert app.view == view
            assert app.focused is app.table(view)
        await pilot.press("4")
        assert app.view == "events" and app.focused is app.events_view.table
        await pilot.press("1", "tab")
        assert app.view == "connections"
        await pilot.press("tab", "tab", "tab")  # four views: interfaces, events, listening
        assert app.view == "listening"
        await pilot.press("shift+tab")
        assert app.view == "events"
        await pilot.press("shift+tab")
        assert app.view == "interfaces"


async def test_cursor_keys_and_enter_detail() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        model = app.model()
        first = model.cursor_index
        await pilot.press("j")
        assert model.cursor_index == first + 1
        await pilot.press("down", "k")
        assert model.cursor_index == first + 1
        await pilot.press("G")
        assert model.cursor_index == len(model.lines) - 1
        await pilot.press("g")
        assert model.cursor_index == 0
        await pilot.press("pagedown")
        assert model.cursor_index > 1
        await pilot.press("pageup")
        assert model.cursor_index == 0
        # a header: enter folds it, left/right too
        group = model.lines[0][len(HEADER_PREFIX) :]
        await pilot.press("enter")
        assert group in model.collapsed
        await pilot.press("right")
        assert group not in model.collapsed
        await pilot.press("j", "left")
        assert group in model.collapsed
        await pilot.press("l")
        # a row: enter opens the detail pane with its owner
        app.model().select_key(row_for_port(app, 5432) or "")
        await pilot.press("enter")
        await until(pilot, lambda: "postgres" in str(app.query_one("#detail-text").render()))
        await until(pilot, lambda: "sockets held" in str(app.query_one("#detail-text").render()))
        await pilot.press("escape")
        assert not app.query_one("#detail").has_class("shown")


async def test_sort_keys_and_header_click() -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        model = app.model()
        assert model.sort_column == 2  # port
        await pilot.press("s")
        assert model.sort_column == 3
        await pilot.press("S")
        assert model.sort_reverse
        await pilot.press("S")
        assert not model.sort_reverse
        table = app.table()
        await pilot.click(table, offset=(1, 0))  # the "Proto" header
        assert model.sort_column == 0
        await pilot.click(table, offset=(1, 0))
        assert model.sort_reverse
        # clicking a row selects it
        await pilot.click(table, offset=(3, 3))
        assert model.cursor_index == round(table.scroll_y) + 2


async def test_pause_and_refresh_keys() -> None:
    collector = SequenceCollector(snapshot(), second_snapshot())
    app = make_app(collector, interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("space")
        assert app.paused
        await until(pilot, lambda: not app.polling)
        count = app.poll_count
        await pilot.pause(0.3)
        assert app.poll_count <= count + 1  # at most the poll that was under way
        count = app.poll_count
        await pilot.press("r")
        await until(pilot, lambda: app.poll_count == count + 1)
        assert app.paused
        await pilot.press("space")
        assert not app.paused
        await until(pilot, lambda: app.poll_count >= count + 3)


async def test_range_keys_and_clicks_filter_listeners() -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("right_square_bracket")
        assert app.range_choice == "well-known"
        assert set(listed_ports(app)) == {80}
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert app.range_choice == "dynamic"
        assert set(listed_ports(app)) == {55000}
        await pilot.press("left_square_bracket")
        assert app.range_choice == "registered"
        app.action_select_range("exposed")
        await pilot.pause()
        assert set(listed_ports(app)) == {80}
        await pilot.press("escape")
        assert app.range_choice == "all"
        await pilot.click("#ranges", offset=(30, 0))  # somewhere on the bar: a range item
        assert app.range_choice != "all"


async def test_state_filter_and_reverse_dns_keys() -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("c")  # not in the listening view
        assert app.state_choice is None
        await pilot.press("2", "c")
        assert app.state_choice == "ESTABLISHED"  # the most common state first
        assert set(listed_ports(app, "connections")) == {8080, 41000, 5432}
        await pilot.press("c")
        assert app.state_choice in ("CLOSE_WAIT", "TIME_WAIT")
        await pilot.press("escape")
        assert app.state_choice is None
        await pilot.press("d")
        assert app.dns
        await until(pilot, lambda: any("localhost:" in line for line in _screen_text(app)))


async def test_filter_changes_already_applied_cost_nothing() -> None:
    """Keys typed faster than the tables follow leave changes queued whose text the box already
    holds and the tables already show: they do not filter again (3000 keys at 100k sockets took
    the dashboard 75 s to catch up)."""
    from textual.widgets import Input

    app = make_app(SequenceCollector(snapshot(), second_snapshot()))
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("slash", *"808")
        assert listed_ports(app) == [8080]
        model = app.model()
        passes: list[object] = []
        real = model.set_filter
        model.set_filter = lambda *a, **k: (passes.append(a), real(*a, **k))  # type: ignore[method-assign]
        box = app.query_one("#filter", Input)
        for _ in range(5):
            box.post_message(Input.Changed(box, box.value))
        await pilot.pause()
        assert passes == [] and listed_ports(app) == [8080]
        await pilot.press("0")
        assert len(passes) == 1 and listed_ports(app) == [8080]


async def test_filter_terms_bad_term_and_escape() -> None:
    app = make_app(SequenceCollector(snapshot(), second_snapshot()))
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("slash")
        assert app.focused is app.query_one("#filter")
        await pilot.press(*":8080", "enter")
        assert listed_ports(app) == [8080]
        assert app.focused is app.table()
        cases = {
            "port:5432": [5432],
            "pid:101": [80, 80],
            "user:alice": [5353, 8080],
            "proc:nginx": [80, 80],
            "range:dynamic": [55000],
            "exposed": [80, 80],
            "postgres": [5432],
        }
        for text, expected in cases.items():
            assert app.set_filter_text(text)
            assert sorted(listed_ports(app)) == expected, text
        assert app.set_filter_text("state:close_wait")
        assert listed_ports(app, "connections") == [42000]
        assert app.set_filter_text("new")
        assert listed_ports(app) == []
        await pilot.press("r")
        await until(pilot, lambda: app.poll_count >= 2)
        assert listed_ports(app) == [8443]
        # a bad term: a notification, the app keeps running with the old filter
        await pilot.press("slash", *"pid:abc", "enter")
        assert any(n.severity == "error" for n in app._notifications)
        assert app.is_running
        await pilot.press("escape")
        assert app.filter is None
        assert 5432 in listed_ports(app)


async def test_help_and_command_palette() -> None:
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        from app.tui.help import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in ("Listening view", "Filter", "Pause / resume", "Reverse DNS", "Detail pane", "Help"):
            assert wanted in titles


async def test_q_quits() -> None:
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


# ------------------------------------------------------------------------------ sizes


@pytest.mark.parametrize("size", [(60, 15), (40, 10)])
async def test_small_sizes_work(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        text = "\n".join(_screen_text(app))
        assert "Port" in text
        await pilot.press("j", "enter", "2", "3", "1", "question_mark", "escape", "slash", "x", "escape")
        assert app.is_running


async def test_rapid_resizes_do_not_crash() -> None:
    app = make_app(SequenceCollector(snapshot(), second_snapshot()), interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("enter")
        for i in range(16):
            await pilot.resize_terminal(20 + (i * 37) % 140, 5 + (i * 13) % 45)
        await pilot.resize_terminal(1, 1)
        await pilot.resize_terminal(60, 15)
        await pilot.pause()
        assert app.is_running
        assert "Port" in "\n".join(_screen_text(app))


def _screen_text(app: PortscopeApp) -> list[str]:
    return app.table().visible_text()
