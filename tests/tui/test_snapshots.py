"""SVG snapshot tests of each dashboard view, from fixed snapshots, clock, host name and interfaces.

Regenerate after an intended visual change with:
    .venv/bin/python -m pytest tests/tui/test_snapshots.py --snapshot-update
and look at the SVGs in tests/tui/__snapshots__/ before committing them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.tui.fixtures import SequenceCollector, make_app, second_snapshot, snapshot, until


@pytest.fixture(autouse=True)
def _utc(utc: None) -> None:
    """The top bar shows local time: the zone is pinned (conftest's utc) so the snapshots do not
    depend on the host."""


def two_polls_app() -> Any:
    """After two polls: 8443 new (green), 40000 gone (red), one connection changed (yellow)."""
    return make_app(SequenceCollector(snapshot(), second_snapshot()))


async def after_two_polls(pilot: Any) -> None:
    app = pilot.app
    await until(pilot, lambda: app.poll_count >= 1)
    await pilot.press("r")
    await until(pilot, lambda: app.poll_count >= 2)
    await pilot.pause()


def test_listening_view(snap_compare: Any) -> None:
    assert snap_compare(two_polls_app(), terminal_size=(120, 30), run_before=after_two_polls)


def test_connections_view(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        await after_two_polls(pilot)
        await pilot.press("2")
        await pilot.pause()

    assert snap_compare(two_polls_app(), terminal_size=(120, 24), run_before=run)


def test_interfaces_view(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        await after_two_polls(pilot)
        await pilot.press("3")
        await pilot.pause()

    assert snap_compare(two_polls_app(), terminal_size=(120, 20), run_before=run)


def test_detail_pane(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        app = pilot.app
        await until(pilot, lambda: app.poll_count >= 1)
        key = next(k for k, r in app.model().rows.items() if r.payload.sock.laddr.port == 55000)
        app.model().select_key(key)
        await pilot.press("enter")
        await until(pilot, lambda: "sockets held" in str(app.query_one("#detail-text").render()))
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(130, 30), run_before=run)


def test_help_screen(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        await until(pilot, lambda: pilot.app.poll_count >= 1)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(100, 42), run_before=run)


def test_filter_in_use(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        await until(pilot, lambda: pilot.app.poll_count >= 1)
        await pilot.press("slash", *"user:alice", "enter")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(100, 20), run_before=run)


def test_small_terminal(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        await until(pilot, lambda: pilot.app.poll_count >= 1)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(60, 15), run_before=run)


def test_tab_strip_and_status_line(snap_compare: Any) -> None:
    """Connections at 80x24 with everything in force: the active tab, the state bar counting what
    the filter lets through, and the status line (filter, counts, sort, state, paused, dns)."""

    async def run(pilot: Any) -> None:
        app = pilot.app
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("2", "c", "d", "space")
        await pilot.press("slash", *"proc:node", "enter")
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run)


def test_empty_state(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        await until(pilot, lambda: pilot.app.poll_count >= 1)
        await pilot.press("slash", *"zzzz", "enter")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run)


def test_bad_filter_error_inline(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        app = pilot.app
        await until(pilot, lambda: app.poll_count >= 1)
        await pilot.press("slash", *"exposed", "enter", "slash", *" pid:x", "enter")
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run)


def test_tiny_terminal(snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        await until(pilot, lambda: pilot.app.poll_count >= 1)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(40, 10), run_before=run)
