"""The dashboard's always-visible state and its layout at any size (issue #13), with Pilot.

Tab strip, status line, bars that count what the filter lets through, empty states, the cursor
after filtering, the ephemeral mark, Pause/Resume in the footer, toggles that read in every theme,
columns and footer by priority, the help's stacked layout, the detail pane (hanging indent,
keyboard scrolling, the process tree of a real service) and the command palette.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil
import pytest
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Checkbox, RadioButton

from app.collector import PsutilCollector
from app.tui.app import PortscopeApp
from app.tui.help import help_text
from tests.helpers import kill_quietly
from tests.tui.fixtures import (
    SIZE_IDS,
    SIZES,
    fixed_detail,
    fixed_interfaces,
    listed_ports,
    make_app,
    screen_lines,
    until,
)
from widgets.table_model import HEADER_PREFIX


async def started(pilot: Any) -> Any:
    app = pilot.app
    await until(pilot, lambda: app.poll_count >= 1)
    await pilot.pause()
    return app


# ------------------------------------------------------------------------------ state shown


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_tab_strip_marks_the_active_view(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await started(pilot)
        for key, view, title in (("2", "connections", "Connections"), ("3", "interfaces", "Interfaces")):
            await pilot.press(key)
            await pilot.pause()
            tabs = app.screen.query_one("#tabs")
            assert tabs.active == view
            top = screen_lines(app)[0]
            assert title in top, top  # the active view's name reads at any width
            for n in "1234":
                assert n in top
        await pilot.press("1")
        await pilot.pause()
        if size[0] >= 80:
            assert "1 Listening  2 Connections  3 Interfaces  4 Events" in screen_lines(app)[0]


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_only_the_views_own_bar_shows(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await started(pilot)
        ranges, states = app.screen.query_one("#ranges"), app.screen.query_one("#states")
        assert ranges.display and not states.display
        await pilot.press("2")
        assert states.display and not ranges.display
        await pilot.press("3")
        assert not states.display and not ranges.display


async def test_the_status_line_says_everything_in_force() -> None:
    app = make_app()
    async with app.run_test(size=(160, 24)) as pilot:
        await started(pilot)
        app.set_filter_text("exposed")
        app.action_select_range("exposed")
        await pilot.press("space")
        await pilot.pause()
        status = str(app.screen.query_one("#status").render())
        assert status.startswith("filter: exposed · 2 of 7 listeners · sort Port ▲ · range exposed · paused")
        await pilot.press("2", "d")
        await pilot.pause()
        status = str(app.screen.query_one("#status").render())
        assert "filter: exposed · 0 of 5 connections · sort Local ▲" in status and "dns on" in status


async def test_bars_count_what_the_filter_lets_through_and_match_the_table() -> None:
    app = make_app()
    async with app.run_test(size=(160, 24)) as pilot:
        await started(pilot)
        bar = app.screen.query_one("#ranges")
        unfiltered = {i.label: i.count for i in bar.items}
        assert unfiltered["registered"] == "4" and unfiltered["exposed"] == "2"
        app.set_filter_text("user:alice")
        await pilot.pause()
        counts = {i.label: i.count for i in bar.items}
        assert counts["all"] == "2/7" and counts["registered"] == "2/4" and counts["exposed"] == "0/2"
        model = app.model()
        assert model.group_count("registered") == 2  # the "registered (2)" header says the same
        assert "registered 2/4" in screen_lines(app)[1]
        await pilot.press("2")
        await pilot.pause()
        states = {i.label: i.count for i in app.screen.query_one("#states").items}
        assert states["established"] == f"{len(listed_ports(app, 'connections'))}/3"


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_empty_state_says_what_matched_nothing_and_how_to_clear_it(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await started(pilot)
        await pilot.press("slash", *"zzzz", "enter")
        await pilot.pause()
        shown = " ".join(line.strip() for line in app.table().visible_text()[1:] if line.strip())
        assert shown == "No sockets match 'zzzz': Esc clears the filter"
        assert app.model().lines == []  # every group hides, none shows "(0)"
        await pilot.press("escape")
        assert listed_ports(app)


async def test_empty_groups_hide_while_a_range_is_selected() -> None:
    app = make_app()
    async with app.run_test(size=(100, 24)) as pilot:
        await started(pilot)
        app.action_select_range("dynamic")
        await pilot.pause()
        headers = [k for k in app.model().lines if k.startswith(HEADER_PREFIX)]
        assert headers == [HEADER_PREFIX + "dynamic"]
        app.action_select_range("all")
        await pilot.pause()
        headers = [k for k in app.model().lines if k.startswith(HEADER_PREFIX)]
        assert len(headers) == 3


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_after_filtering_the_cursor_is_on_the_first_match_not_a_header(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await started(pilot)
        await pilot.press("g")  # the first line: a group header
        assert app.model().cursor_row() is None
        await pilot.press("slash", *":8080", "enter")
        await pilot.pause()
        row = app.model().cursor_row()
        assert row is not None and row.payload.sock.laddr.port == 8080
        assert app.selected_socket() is not None


async def test_rows_in_the_ephemeral_range_are_marked() -> None:
    app = make_app()
    async with app.run_test(size=(120, 24)) as pilot:
        await started(pilot)
        text = "\n".join(screen_lines(app))
        assert "◦55000" in text and "◦40000" in text  # 32768-60999
        assert "◦8080" not in text and "◦5432" not in text
        assert "◦ before a port" in help_text()


async def test_pause_flips_the_footer_to_resume() -> None:
    app = make_app()
    async with app.run_test(size=(120, 24)) as pilot:
        await started(pilot)
        assert "Pause" in screen_lines(app)[-1] and "Resume" not in screen_lines(app)[-1]
        await pilot.press("space")
        await pilot.pause()
        assert "Resume" in screen_lines(app)[-1] and "Pause" not in screen_lines(app)[-1]
        await pilot.press("space")
        await pilot.pause()
        assert "Pause" in screen_lines(app)[-1]


class Toggles(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Checkbox("on", value=True, id="c-on")
        yield Checkbox("off", value=False, id="c-off")
        yield RadioButton("on", value=True, id="r-on")
        yield RadioButton("off", value=False, id="r-off")


async def test_ticked_and_selected_toggles_read_in_every_theme() -> None:
    """Not by colour alone: the ticked box and the selected radio button are drawn reversed and
    bold, so they differ from the others in every theme, the monochrome ones included."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        await app.push_screen(Toggles())
        await pilot.pause()
        for theme in sorted(app.available_themes):
            app.theme = theme
            await pilot.pause()
            for kind in ("c", "r"):
                on = app.screen.query_one(f"#{kind}-on").get_component_rich_style("toggle--button")
                off = app.screen.query_one(f"#{kind}-off").get_component_rich_style("toggle--button")
                assert on.reverse and not off.reverse, theme
                assert on.bold, theme


# ------------------------------------------------------------------------------ layout


def _header(app: Any) -> str:
    return app.table().visible_text()[0]


async def test_columns_drop_by_priority_and_a_wide_screen_gets_the_command() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        header = _header(app)
        for kept in ("Port", "Address", "Process", "PID", "Exposure"):
            assert kept in header, header
        for dropped in ("Age", "Proto", "Conns", "Command"):
            assert dropped not in header, header
        await pilot.resize_terminal(200, 24)
        await pilot.pause()
        header = _header(app)
        assert all(c in header for c in ("Proto", "Conns", "Age", "Command"))
        widths = dict(app.table().visible_columns())
        command = next(i for i, c in enumerate(app.model().columns) if c.key == "command")
        assert widths[command] == max(widths.values())  # the spare width went to the command
        assert "nginx: master process" in "\n".join(screen_lines(app))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_the_footer_keeps_the_important_keys(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await started(pilot)
        footer = screen_lines(app)[-1]
        assert "Quit" in footer and "Help" in footer
        assert len(footer.rstrip()) <= size[0]
        if size[0] >= 60:
            assert "Filter" in footer and "Kill" in footer


async def test_the_help_stacks_its_columns_when_narrow() -> None:
    app = make_app()
    async with app.run_test(size=(50, 30)) as pilot:
        await started(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.pause()
        lines = [line.strip(" │") for line in screen_lines(app)]
        assert "↑ ↓ j k" in lines  # the key alone on its line
        assert any(line.startswith("move the cursor") for line in lines)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.pause()
        assert any("↑ ↓ j k" in line and "move the cursor" in line for line in screen_lines(app))


# ------------------------------------------------------------------------------ detail pane


def long_detail(pid: int) -> Any:
    base = fixed_detail(pid)
    words = tuple(f"--option-{n}=value-{n}" for n in range(40))
    kids = tuple((1, 5000 + n, f"worker-{n}") for n in range(30))
    return dataclasses.replace(base, cmdline=("/usr/bin/server", *words), children=kids)


async def test_the_detail_pane_wraps_under_its_labels_and_scrolls_from_the_keyboard() -> None:
    app = make_app(process_detail_source=long_detail)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        key = next(k for k, r in app.model().rows.items() if r.payload.sock.laddr.port == 8080)
        app.model().select_key(key)
        await pilot.press("enter")
        pane = app.screen.query_one("#detail")
        await until(pilot, lambda: "worker-29" in str(app.query_one("#detail-text").render()))
        await pilot.pause()
        text = str(app.query_one("#detail-text").render()).splitlines()
        start = next(n for n, line in enumerate(text) if line.startswith("cmdline"))
        assert text[start + 1].startswith(" " * 9) and text[start + 1].strip().startswith("--option")
        assert all(len(line) <= pane.scrollable_content_region.width for line in text)
        assert pane.max_scroll_y > 0 and pane.scroll_y == 0
        await pilot.press("ctrl+d")
        await pilot.pause()
        assert pane.scroll_y > 0
        await pilot.press("ctrl+u")
        await pilot.pause()
        assert pane.scroll_y == 0
        assert app.focused is app.table()  # the table kept the keys


SERVICE = r"""
import ctypes, os, socket, sys, time
libc = ctypes.CDLL(None)
libc.prctl(15, b"ps-tree-master", 0, 0, 0)
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
for n in range(2):
    if os.fork() == 0:
        s.close()
        libc.prctl(15, ("ps-tree-w%d" % n).encode(), 0, 0, 0)
        libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the master
        time.sleep(120)
        os._exit(0)
print(s.getsockname()[1], flush=True)
time.sleep(120)
"""


@contextmanager
def master_with_workers() -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen([sys.executable, "-c", SERVICE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield proc, port
    finally:
        try:
            kids = [c.pid for c in psutil.Process(proc.pid).children()]
        except psutil.Error:
            kids = []
        for pid in kids:
            kill_quietly(pid)
        proc.kill()
        proc.wait(timeout=10)


async def test_the_detail_pane_shows_a_real_services_workers() -> None:
    with master_with_workers() as (master, port):
        app = PortscopeApp(
            collector=PsutilCollector(), interval=0.3, interfaces=fixed_interfaces, blink=False
        )
        async with app.run_test(size=(140, 40)) as pilot:
            rows = app.model().rows
            await until(pilot, lambda: any(r.payload.sock.laddr.port == port for r in rows.values()))
            app.set_filter_text(f":{port}")
            await pilot.pause()
            await pilot.press("enter")
            await until(pilot, lambda: "process tree" in str(app.query_one("#detail-text").render()))
            text = str(app.query_one("#detail-text").render())
            assert f"{master.pid} ps-tree-master" in text
            assert "ps-tree-w0" in text and "ps-tree-w1" in text
            assert "process tree (2 below it)" in text


# ------------------------------------------------------------------------------ palette


async def test_the_palette_shows_each_commands_key_and_sorts_by_any_column() -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert commands["Kill what holds the port"].help.startswith("K  ·")
        assert commands["Explain this port"].help.startswith("x  ·")
        assert commands["Filter"].help.startswith("/  ·")
        assert commands["Help"].help.startswith("?  ·")
        for label in ("Proto", "Address", "Port", "Process", "Age", "Command"):
            assert f"Sort by {label}" in commands
        commands["Sort by Process"].callback()
        await pilot.pause()
        assert app.model().columns[app.model().sort_column].key == "process"
        await commands["Pause / resume"].callback()  # type: ignore[misc]
        await pilot.pause()
        assert app.paused
