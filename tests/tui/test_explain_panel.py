"""The explain panel driven with Pilot on a tiny host App, against real listeners on loopback."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import RichLog

from tests.helpers import child_listener, spawn_listener_with_args
from tests.tui.test_action_widgets import Host, log_text, messages
from widgets.explain_panel import ExplainPanel, start_explain


async def wait_event(pilot, event: threading.Event) -> None:  # type: ignore[no-untyped-def]
    """Like test_action_widgets' wait, with room for a run's live tests and firewall read."""
    for _ in range(400):
        if event.is_set():
            break
        await pilot.pause(0.05)
    assert event.is_set(), "the worker did not finish"
    await pilot.pause()


async def test_panel_shows_the_verdict_findings_and_suggestions_at_80x24() -> None:
    with child_listener("tcp", "127.0.0.1", name="ps-panel-srv") as child:
        app = Host()
        async with app.run_test(size=(80, 24)) as pilot:
            start_explain(app, child.port, "tcp")
            await pilot.pause()
            panel = app.screen
            assert isinstance(panel, ExplainPanel)
            await wait_event(pilot, panel.finished)
            text = log_text(panel)
            assert f"{child.port}/tcp: open on loopback only" in text.splitlines()[0]
            assert "ps-panel-srv" in text and "suggested commands (not run):" in text
            assert f"$ portscope kill {child.port}" in text
            assert panel.explanation is not None and panel.explanation.exit_code == 0
            log = panel.query_one("#log", RichLog)
            assert log.has_focus
            # wrapped at the log's width: nothing runs off its right edge (RichLog's default
            # min_width of 78 wrapped wider than the panel and cut every long line's end)
            assert log.max_scroll_x == 0
            assert max(strip.cell_length for strip in log.lines) <= log.scrollable_content_region.width
            # more lines than fit at 80x24: the keyboard scrolls the log
            assert log.max_scroll_y > 0
            await pilot.press("end")
            await pilot.pause()
            assert log.scroll_y == log.max_scroll_y
            await pilot.press("home")
            await pilot.pause()
            assert log.scroll_y == 0
            await pilot.press("pagedown")
            await pilot.pause()
            assert log.scroll_y > 0
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, ExplainPanel)
            assert app.is_running


async def test_the_ui_does_not_wait_for_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow run (held back here until released) leaves the panel answering keys."""
    import app.explain

    release = threading.Event()
    real = app.explain.explain

    def held(*args, **kwargs):  # type: ignore[no-untyped-def]
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(app.explain, "explain", held)
    with child_listener("tcp", "127.0.0.1") as child:
        host = Host()
        async with host.run_test(size=(80, 24)) as pilot:
            start_explain(host, child.port)
            await pilot.pause()
            panel = host.screen
            assert isinstance(panel, ExplainPanel)
            assert "explaining" in str(panel.query_one("#status").render())
            await pilot.press("end", "home")  # handled while the worker is still held
            await pilot.pause()
            assert not panel.finished.is_set() and host.is_running
            release.set()
            await wait_event(pilot, panel.finished)
            assert log_text(panel).startswith(f"{child.port}/tcp: open on loopback only")
            await pilot.press("r")  # run again
            await pilot.pause()
            await wait_event(pilot, panel.finished)
            assert log_text(panel).startswith(f"{child.port}/tcp: ")
            assert "done:" in str(panel.query_one("#status").render())


async def test_hostile_command_line_is_shown_literally() -> None:
    child = spawn_listener_with_args(["[bold red]boom[/]", "\x1b[2J"], name="ps-panel-evil")
    try:
        app = Host()
        async with app.run_test(size=(120, 40)) as pilot:
            start_explain(app, child.port)
            await pilot.pause()
            panel = app.screen
            assert isinstance(panel, ExplainPanel)
            await wait_event(pilot, panel.finished)
            text = log_text(panel)
            assert "[bold red]boom[/] \\x1b[2J" in text  # markup not applied, escape not interpreted
            assert "\x1b" not in text
    finally:
        child.stop()


async def test_bad_port_is_a_notification_and_the_app_keeps_running() -> None:
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        start_explain(app, 70000)
        start_explain(app, 80, "sctp")
        await pilot.pause()
        assert not isinstance(app.screen, ExplainPanel)
        assert sum("cannot explain" in m for m in messages(app)) == 2
        assert app.is_running


async def test_nothing_listening_port_shows_free_ports() -> None:
    from tests.helpers import free_port

    port = free_port()
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        start_explain(app, port)
        await pilot.pause()
        panel = app.screen
        assert isinstance(panel, ExplainPanel)
        await wait_event(pilot, panel.finished)
        text = log_text(panel)
        assert text.startswith(f"{port}/tcp: nothing listens")
        assert "nearest free tcp ports" in text
        assert panel.explanation.exit_code == 1
